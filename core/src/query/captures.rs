//! `top_outbound_links`, `top_file_downloads` and `top_not_found_pages` (issue #12): the tracker's opt-in
//! captures per target over `date_from..=date_to` (UTC days), most frequent first, from
//! `captures_daily` ([`crate::captures`]). Tenant first, every value bound.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::params::Params;
use super::timezone::{Days, DAY};
use super::{Column, QueryError, Request};
use crate::captures::CAPTURES;
use crate::claims::TenantId;
use crate::sql::{Statement, TenantSql};

type Row = Map<String, Value>;

/// The output column of the target (`url` or `pathname`).
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    column: &'static str,
}

/// Plans one of the three endpoints; `None` for any other name.
pub(crate) fn plan(
    req: &Request,
    p: &Params,
    tenant: &TenantId,
    key: &mut BTreeMap<String, String>,
) -> Option<Result<(Vec<Statement>, Shape), QueryError>> {
    let (_, kind, _, _, column) = CAPTURES.iter().find(|c| c.3 == req.pipe)?;
    let planned = (|| {
        let today: Days = req.now_secs.div_euclid(DAY);
        let (from, to) = p.dates(today)?;
        let (skip, limit) = p.page()?;
        for (k, v) in [("from", from), ("to", to), ("skip", skip), ("limit", limit)] {
            key.insert(k.into(), v.to_string());
        }
        let mut q = TenantSql::new(tenant);
        q.push("SELECT target, SUM(n) AS n")
            .from("captures_daily", "")
            .bind(" AND kind = ?", *kind)
            .bind(" AND day >= ?", from * DAY)
            .bind(" AND day <= ?", to * DAY);
        if let Some(d) = p.text(&["domain"])? {
            key.insert("domain".into(), d.to_owned());
            q.bind(" AND domain = ?", d);
        }
        q.push(" GROUP BY target ORDER BY n DESC, target")
            .bind(" LIMIT ?", limit)
            .bind(" OFFSET ?", skip);
        Ok((vec![q.finish()], Shape { column }))
    })();
    Some(planned)
}

/// Rows in, `meta` and `data` out: the target and its count.
pub(crate) fn assemble(shape: &Shape, rows: &[Row]) -> Result<(Vec<Column>, Vec<Row>), QueryError> {
    let mut data = Vec::with_capacity(rows.len());
    for r in rows {
        let target = r.get("target").and_then(Value::as_str).ok_or_else(|| {
            QueryError::ResultMismatch("column 'target' is missing or not text".into())
        })?;
        let n = r.get("n").and_then(Value::as_f64).unwrap_or(0.0) as u64;
        let mut row = Map::new();
        row.insert(shape.column.into(), target.into());
        row.insert("count".into(), n.into());
        data.push(row);
    }
    let meta = vec![
        Column {
            name: shape.column.into(),
            r#type: "String".into(),
        },
        Column {
            name: "count".into(),
            r#type: "UInt64".into(),
        },
    ];
    Ok((meta, data))
}
