//! Many rows in one statement: a tenant's rows travel as one JSON array bound to a single parameter and
//! are expanded in SQLite with `json_each`, so a consumer group writes its visits, pages and rollup
//! cells in a handful of statements instead of one (or a tenth of one) per row.
//!
//! D1 allows 100 bound parameters per statement but values up to 2,000,000 bytes: each statement here
//! binds the tenant and one JSON text of at most [`MAX_JSON_BYTES`] (and [`MAX_ROWS`] rows). The work
//! per row inside SQLite is the same as with one statement per row; what goes away is the per-statement
//! cost outside it (binding, the runtime's round trip per statement of a batch), which was most of a
//! group's D1 time (BENCHMARKS.md, "Ingest (issue #13)").
//!
//! Every statement starts with `tenant_id = ?`-style binding of the tenant first: the rows never carry
//! it, so a statement can only ever write one tenant's rows.

use serde_json::Value;

use crate::sql::{SqlValue, Statement};

/// Most bytes of JSON rows one statement binds (well below D1's 2,000,000-byte value limit).
pub(crate) const MAX_JSON_BYTES: usize = 512 * 1024;
/// Most rows one statement carries.
pub(crate) const MAX_ROWS: usize = 1_000;

fn json(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(i) => Value::from(*i),
        SqlValue::Real(f) => Value::from(*f),
        SqlValue::Text(s) => Value::from(s.as_str()),
    }
}

/// `json_extract(value, '$[0]'), …` for `width` columns of a `json_each` row.
fn columns(width: usize) -> String {
    (0..width)
        .map(|i| format!("json_extract(value, '$[{i}]')"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows as JSON array texts of at most [`MAX_JSON_BYTES`] and [`MAX_ROWS`] rows each.
fn chunks(rows: &[Vec<SqlValue>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::from("[");
    let mut n = 0;
    for row in rows {
        let text = Value::Array(row.iter().map(json).collect()).to_string();
        if n > 0 && (current.len() + text.len() + 2 > MAX_JSON_BYTES || n == MAX_ROWS) {
            current.push(']');
            out.push(std::mem::replace(&mut current, String::from("[")));
            n = 0;
        }
        if n > 0 {
            current.push(',');
        }
        current.push_str(&text);
        n += 1;
    }
    if n > 0 {
        current.push(']');
        out.push(current);
    }
    out
}

/// `keys` as JSON arrays of strings of at most [`MAX_JSON_BYTES`] and [`MAX_ROWS`] keys each, for
/// `IN (SELECT value FROM json_each(?))` lookups.
pub(crate) fn key_lists(keys: &[&str]) -> Vec<String> {
    let rows: Vec<Vec<SqlValue>> = keys.iter().map(|k| vec![SqlValue::from(*k)]).collect();
    chunks(&rows)
        .into_iter()
        .map(|text| {
            // `[["a"],["b"]]` → `["a","b"]`: the chunking of single-value rows, flattened.
            let nested: Vec<Vec<Value>> = serde_json::from_str(&text).unwrap_or_default();
            Value::Array(nested.into_iter().flatten().collect()).to_string()
        })
        .collect()
}

/// `into` (`INSERT [OR …] INTO table (tenant_id, c1, …)`) for `tenant` and `rows` (the values of
/// `c1, …`, all of one width), then `tail` (an `ON CONFLICT …` clause or empty): as few statements as
/// the limits allow, none for no rows.
pub(crate) fn insert(
    into: &str,
    tail: &str,
    tenant: &str,
    rows: &[Vec<SqlValue>],
) -> Vec<Statement> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Vec::new();
    };
    // `WHERE true` lets SQLite parse an upsert after `INSERT … SELECT`.
    let sql = format!(
        "{into} SELECT ?, {} FROM json_each(?) WHERE true{tail}",
        columns(width)
    );
    chunks(rows)
        .into_iter()
        .map(|rows| Statement::new(sql.clone(), vec![tenant.into(), rows.into()]))
        .collect()
}

/// Deletes `tenant`'s rows of `table` whose `key` columns equal one of `keys` (each as wide as `key`).
pub(crate) fn delete(
    table: &str,
    key: &[&str],
    tenant: &str,
    keys: &[Vec<SqlValue>],
) -> Vec<Statement> {
    if keys.is_empty() {
        return Vec::new();
    }
    let sql = format!(
        "DELETE FROM {table} WHERE tenant_id = ? AND ({}) IN (SELECT {} FROM json_each(?))",
        key.join(", "),
        columns(key.len())
    );
    chunks(keys)
        .into_iter()
        .map(|rows| Statement::new(sql.clone(), vec![tenant.into(), rows.into()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_stay_within_the_limits_and_keep_every_row() {
        let rows: Vec<Vec<SqlValue>> = (0..2_500)
            .map(|i| {
                vec![
                    SqlValue::from(i as i64),
                    SqlValue::from("x".repeat(600).as_str()),
                ]
            })
            .collect();
        let texts = chunks(&rows);
        assert!(texts.len() > 1);
        let mut n = 0;
        for t in &texts {
            assert!(t.len() <= MAX_JSON_BYTES, "{}", t.len());
            let v: Vec<Value> = serde_json::from_str(t).unwrap();
            assert!(v.len() <= MAX_ROWS);
            n += v.len();
        }
        assert_eq!(n, rows.len());
        assert!(chunks(&[]).is_empty());
        let keys: Vec<String> = (0..2_500).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let lists = key_lists(&refs);
        let back: Vec<String> = lists
            .iter()
            .flat_map(|l| serde_json::from_str::<Vec<String>>(l).unwrap())
            .collect();
        assert_eq!(back, keys);
        assert_eq!(lists.len(), 3);
    }
}
