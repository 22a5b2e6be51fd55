//! D1: executes `starling_core::sql::Statement`s. No SQL is written here except in `salt`/`maintenance`.

use serde_json::{Map, Value};
use starling_core::sql::{SqlValue, Statement};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result, Env, Result};

use crate::env;

/// The rollup database binding.
pub fn db(env: &Env) -> Result<D1Database> {
    env.d1(env::DB)
}

fn js(v: &SqlValue) -> JsValue {
    match v {
        SqlValue::Null => JsValue::NULL,
        SqlValue::Int(i) => JsValue::from_f64(*i as f64),
        SqlValue::Real(f) => JsValue::from_f64(*f),
        SqlValue::Text(s) => JsValue::from_str(s),
    }
}

/// Prepares a statement with its binds.
pub fn prepare(db: &D1Database, s: &Statement) -> Result<D1PreparedStatement> {
    let binds: Vec<JsValue> = s.binds.iter().map(js).collect();
    db.prepare(&s.sql).bind(&binds)
}

/// Runs statements as one D1 batch: one transaction, all or nothing. Chunks are not used: a batch that
/// must be atomic has to fit D1's limits, which the callers keep (one queue message's worth of keys).
pub async fn run_atomic(db: &D1Database, statements: &[Statement]) -> Result<()> {
    if statements.is_empty() {
        return Ok(());
    }
    let prepared = statements
        .iter()
        .map(|s| prepare(db, s))
        .collect::<Result<Vec<_>>>()?;
    db.batch(prepared).await?;
    Ok(())
}

/// What one [`run_atomic_profiled`] batch did per statement kind (`INSERT INTO sessions`, `DELETE FROM
/// open_visits`, ...): statements, rows written and D1's own time (its result `meta.duration`, ms).
pub type BatchProfile = std::collections::BTreeMap<String, (u64, u64, f64)>;

/// A statement's kind for [`BatchProfile`]: its verb and table, without columns or values.
pub fn statement_kind(sql: &str) -> String {
    let mut kind = Vec::new();
    let mut words = sql.split_whitespace();
    while let Some(w) = words.next() {
        kind.push(w);
        if matches!(w, "INTO" | "FROM" | "UPDATE") {
            if let Some(table) = words.next() {
                kind.push(table);
            }
            break;
        }
    }
    kind.join(" ")
}

/// [`run_atomic`], returning what each statement kind cost inside D1 ([`BatchProfile`]).
pub async fn run_atomic_profiled(
    db: &D1Database,
    statements: &[Statement],
) -> Result<BatchProfile> {
    let mut profile = BatchProfile::new();
    if statements.is_empty() {
        return Ok(profile);
    }
    let prepared = statements
        .iter()
        .map(|s| prepare(db, s))
        .collect::<Result<Vec<_>>>()?;
    let results = db.batch(prepared).await?;
    for (s, r) in statements.iter().zip(results) {
        let meta = r.meta()?;
        let entry = profile.entry(statement_kind(&s.sql)).or_default();
        entry.0 += 1;
        entry.1 += meta.as_ref().and_then(|m| m.rows_written).unwrap_or(0) as u64;
        entry.2 += meta.and_then(|m| m.duration).unwrap_or(0.0);
    }
    Ok(profile)
}

/// Runs one query and returns its rows as JSON objects, with whole numbers as integers.
pub async fn rows(db: &D1Database, s: &Statement) -> Result<Vec<Map<String, Value>>> {
    let result = prepare(db, s)?.all().await?;
    Ok(integers(result.results()?))
}

/// Runs several queries as one D1 batch (one round trip) and returns each one's rows.
pub async fn rows_batch(
    db: &D1Database,
    statements: &[Statement],
) -> Result<Vec<Vec<Map<String, Value>>>> {
    let prepared = statements
        .iter()
        .map(|s| prepare(db, s))
        .collect::<Result<Vec<_>>>()?;
    let results = db.batch(prepared).await?;
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        out.push(integers(r.results()?));
    }
    Ok(out)
}

/// Runs several queries as one D1 batch (one round trip, one transaction) and returns D1's results,
/// for callers that deserialize rows into their own types (`D1Result::results::<T>`), or [`rows_of`].
pub async fn results_batch(db: &D1Database, statements: &[Statement]) -> Result<Vec<D1Result>> {
    let prepared = statements
        .iter()
        .map(|s| prepare(db, s))
        .collect::<Result<Vec<_>>>()?;
    db.batch(prepared).await
}

/// One result's rows as JSON objects, with whole numbers as integers (as [`rows`]).
pub fn rows_of(result: &D1Result) -> Result<Vec<Map<String, Value>>> {
    Ok(integers(result.results()?))
}

/// D1 returns every number as a JS double; whole numbers become JSON integers again.
fn integers(mut rows: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    for v in rows.iter_mut().flat_map(|r| r.values_mut()) {
        if let Some(f) = v.as_f64() {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *v = Value::from(f as i64);
            }
        }
    }
    rows
}

/// Runs statements as one D1 batch (one transaction) and returns how many rows they changed in all.
pub async fn run_counting(db: &D1Database, statements: &[Statement]) -> Result<u64> {
    if statements.is_empty() {
        return Ok(0);
    }
    let prepared = statements
        .iter()
        .map(|s| prepare(db, s))
        .collect::<Result<Vec<_>>>()?;
    let mut changed = 0;
    for r in db.batch(prepared).await? {
        changed += r.meta()?.and_then(|m| m.changes).unwrap_or(0) as u64;
    }
    Ok(changed)
}

/// A D1 database by binding name (the pool `DB` or a silo tenant's own database).
pub fn named(env: &Env, binding: &str) -> Result<D1Database> {
    env.d1(binding)
}
