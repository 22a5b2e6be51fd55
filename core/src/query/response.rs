//! Rows in, `meta` and `data` out: gap filling, rates, growth, Tinybird's column names and types.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::pipes::{KpiShape, Shape, TopShape};
use super::rollups::RollupKpis;
use super::timezone::format_datetime;
use super::{Column, Output, QueryError};
use crate::rollup::visits::SEP;

type Row = Map<String, Value>;

pub(crate) fn assemble(shape: &Shape, results: Vec<Vec<Row>>) -> Result<Output, QueryError> {
    let rows_read = results.iter().map(|r| r.len() as u64).sum();
    if let Shape::RollupKpis(k) = shape {
        let (meta, data) = rollup_kpis(k, results)?;
        return Ok(Output {
            meta,
            data,
            rows_read,
        });
    }
    let rows = results.into_iter().next().unwrap_or_default();
    let (meta, data) = match shape {
        Shape::CurrentVisitors => {
            let visits = rows
                .first()
                .map(|r| int(r, "visits"))
                .transpose()?
                .unwrap_or(0);
            (
                vec![col("visits", "UInt64")],
                vec![obj([("visits", visits.into())])],
            )
        }
        Shape::Trend(minutes) => {
            let mut by_minute = BTreeMap::new();
            for r in &rows {
                by_minute.insert(int(r, "minute")?, int(r, "visits")?);
            }
            let data = minutes
                .iter()
                .map(|(m, label)| {
                    obj([
                        ("t", label.as_str().into()),
                        ("visits", by_minute.get(m).copied().unwrap_or(0).into()),
                    ])
                })
                .collect();
            (vec![col("t", "DateTime"), col("visits", "UInt64")], data)
        }
        Shape::Kpis(k) => kpis(k, &rows)?,
        Shape::RollupKpis(_) => unreachable!("handled above"),
        Shape::Vitals(v) => super::vitals::assemble(v, &rows)?,
        Shape::Captures(c) => super::captures::assemble(c, &rows)?,
        Shape::Hours(_) => super::hours::assemble(&rows)?,
        Shape::Hits(_) => {
            return Err(QueryError::ResultMismatch(
                "analytics_hits reads the archive (Plan::archive_scan), not statements".into(),
            ))
        }
        Shape::Top(t) => top(t, &rows)?,
        Shape::Domains => {
            let mut data = Vec::with_capacity(rows.len());
            for r in &rows {
                data.push(obj([
                    ("domain", text(r, "domain")?.into()),
                    ("first_seen", format_datetime(int(r, "first_seen")?).into()),
                    ("last_seen", format_datetime(int(r, "last_seen")?).into()),
                    ("total_hits", int(r, "total_hits")?.into()),
                ]));
            }
            let meta = vec![
                col("domain", "String"),
                col("first_seen", "DateTime"),
                col("last_seen", "DateTime"),
                col("total_hits", "UInt64"),
            ];
            (meta, data)
        }
        Shape::Domain => {
            let data = rows
                .iter()
                .map(|r| Ok(obj([("domain", text(r, "domain")?.into())])))
                .collect::<Result<_, QueryError>>()?;
            (vec![col("domain", "String")], data)
        }
        Shape::Actions => {
            let mut data = Vec::with_capacity(rows.len());
            for r in &rows {
                data.push(obj([
                    ("domain", text(r, "domain")?.into()),
                    ("action", text(r, "action")?.into()),
                    ("last_payload", text(r, "last_payload")?.into()),
                    ("last_seen", format_datetime(int(r, "last_seen")?).into()),
                    ("total_occurrences", int(r, "total_occurrences")?.into()),
                ]));
            }
            let meta = vec![
                col("domain", "String"),
                col("action", "String"),
                col("last_payload", "String"),
                col("last_seen", "DateTime"),
                col("total_occurrences", "UInt64"),
            ];
            (meta, data)
        }
    };
    Ok(Output {
        meta,
        data,
        rows_read,
    })
}

/// Per-bucket session totals, as the kpis statement returns them.
#[derive(Default, Clone, Copy)]
struct Totals {
    visits: i64,
    visitors: i64,
    pageviews: i64,
    bounces: i64,
    duration: i64,
}

impl Totals {
    fn ratio(n: i64, d: i64) -> f64 {
        if d == 0 {
            0.0
        } else {
            n as f64 / d as f64
        }
    }

    /// `(name, raw value, rounding decimals or None for an integer)` in output order.
    fn metrics(&self) -> [(&'static str, f64, Option<i32>); 6] {
        [
            ("visits", self.visits as f64, None),
            ("pageviews", self.pageviews as f64, None),
            (
                "bounce_rate",
                Self::ratio(self.bounces, self.visits),
                Some(4),
            ),
            (
                "avg_session_sec",
                Self::ratio(self.duration, self.visits),
                Some(2),
            ),
            ("visitors", self.visitors as f64, None),
            (
                "views_per_visit",
                Self::ratio(self.pageviews, self.visits),
                Some(2),
            ),
        ]
    }
}

/// The `meta` of kpis: the date column, the metrics, and with a previous period their previous values
/// and growth.
fn kpi_meta(hourly: bool, previous: bool) -> Vec<Column> {
    let mut meta = vec![col("date", if hourly { "DateTime" } else { "Date" })];
    let names = Totals::default().metrics();
    let kind = |d: Option<i32>| if d.is_some() { "Float64" } else { "UInt64" };
    meta.extend(names.iter().map(|(n, _, d)| col(n, kind(*d))));
    if previous {
        meta.extend(
            names
                .iter()
                .map(|(n, _, d)| col(&format!("previous_{n}"), kind(*d))),
        );
        meta.extend(
            names
                .iter()
                .map(|(n, _, _)| col(&format!("{n}_growth_percentage"), "Float64")),
        );
    }
    meta
}

/// One kpis row from the current and (with a previous period) the previous totals.
fn kpi_row(label: &str, cur: Totals, prev: Option<Totals>) -> Row {
    let cur = cur.metrics();
    let mut row = Row::new();
    row.insert("date".into(), label.into());
    for (name, v, d) in cur {
        row.insert(name.into(), number(v, d));
    }
    if let Some(prev) = prev {
        let prev = prev.metrics();
        for (name, v, d) in prev {
            row.insert(format!("previous_{name}"), number(v, d));
        }
        for ((name, c, _), (_, p, _)) in cur.iter().zip(prev.iter()) {
            row.insert(format!("{name}_growth_percentage"), growth(*c, *p).into());
        }
    }
    row
}

/// kpis over the visit rollups: daily rows (`t` = UTC day) and hourly rows (`t` = UTC hour) summed
/// into each bucket's pieces.
fn rollup_kpis(
    k: &RollupKpis,
    results: Vec<Vec<Row>>,
) -> Result<(Vec<Column>, Vec<Row>), QueryError> {
    let rows = k.rows(results);
    let totals = |pieces: &[(i64, i64)]| {
        let t = k.totals(&rows, pieces);
        Totals {
            visits: t[0],
            pageviews: t[1],
            bounces: t[2],
            duration: t[3],
            visitors: t[4],
        }
    };
    let data = k
        .buckets
        .iter()
        .map(|b| {
            let prev = k.previous.then(|| totals(&b.previous));
            kpi_row(&b.label, totals(&b.current), prev)
        })
        .collect();
    Ok((kpi_meta(k.hourly, k.previous), data))
}

fn kpis(k: &KpiShape, rows: &[Row]) -> Result<(Vec<Column>, Vec<Row>), QueryError> {
    let mut by_bucket = BTreeMap::new();
    for r in rows {
        let t = Totals {
            visits: int(r, "visits")?,
            visitors: int(r, "visitors")?,
            pageviews: int(r, "pageviews")?,
            bounces: int(r, "bounces")?,
            duration: int(r, "duration")?,
        };
        by_bucket.insert(int(r, "bucket")?, t);
    }
    let totals = |b: i64| by_bucket.get(&b).copied().unwrap_or_default();
    let data = k
        .buckets
        .iter()
        .map(|(bucket, label)| {
            let prev = k.previous_shift.map(|shift| totals(bucket - shift));
            kpi_row(label, totals(*bucket), prev)
        })
        .collect();
    Ok((kpi_meta(k.hourly, k.previous_shift.is_some()), data))
}

fn top(t: &TopShape, rows: &[Row]) -> Result<(Vec<Column>, Vec<Row>), QueryError> {
    let mut meta: Vec<Column> = t.keys.iter().map(|k| col(k, "String")).collect();
    meta.extend([col("visits", "UInt64"), col("hits", "UInt64")]);
    if t.previous {
        meta.extend([
            col("previous_visits", "UInt64"),
            col("previous_hits", "UInt64"),
            col("visits_growth_percentage", "Float64"),
            col("hits_growth_percentage", "Float64"),
        ]);
    }
    let mut data = Vec::with_capacity(rows.len());
    for r in rows {
        let mut row = Row::new();
        if t.packed {
            let mut parts = text(r, "k")?.split(SEP);
            for k in &t.keys {
                row.insert((*k).into(), parts.next().unwrap_or_default().into());
            }
        } else {
            for k in &t.keys {
                row.insert((*k).into(), text(r, k)?.into());
            }
        }
        let (visits, hits) = (int(r, "visits")?, int(r, "hits")?);
        row.insert("visits".into(), visits.into());
        row.insert("hits".into(), hits.into());
        if t.previous {
            let (pv, ph) = (int(r, "previous_visits")?, int(r, "previous_hits")?);
            row.insert("previous_visits".into(), pv.into());
            row.insert("previous_hits".into(), ph.into());
            row.insert(
                "visits_growth_percentage".into(),
                growth(visits as f64, pv as f64).into(),
            );
            row.insert(
                "hits_growth_percentage".into(),
                growth(hits as f64, ph as f64).into(),
            );
        }
        data.push(row);
    }
    Ok((meta, data))
}

/// The kit's growth: 100 when growing from nothing, 0 when both are 0, else the change in percent
/// rounded to 2 decimals.
pub(crate) fn growth(cur: f64, prev: f64) -> f64 {
    if prev == 0.0 {
        if cur > 0.0 {
            100.0
        } else {
            0.0
        }
    } else {
        round((cur - prev) * 100.0 / prev, 2)
    }
}

pub(crate) fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// An integer column as a JSON integer, a rate rounded.
fn number(v: f64, decimals: Option<i32>) -> Value {
    match decimals {
        None => (v as i64).into(),
        Some(d) => round(v, d).into(),
    }
}

fn col(name: &str, ty: &str) -> Column {
    Column {
        name: name.to_owned(),
        r#type: ty.to_owned(),
    }
}

fn obj<const N: usize>(fields: [(&str, Value); N]) -> Row {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn mismatch(column: &str, what: &str) -> QueryError {
    QueryError::ResultMismatch(format!("column '{column}' {what}"))
}

/// An integer column (D1 may hand integers over as floats; NULL from an empty SUM is 0).
fn int(r: &Row, column: &str) -> Result<i64, QueryError> {
    match r.get(column) {
        Some(v @ Value::Number(_)) => {
            crate::sql::int(Some(v)).ok_or_else(|| mismatch(column, "is not an integer"))
        }
        Some(Value::Null) => Ok(0),
        Some(_) => Err(mismatch(column, "is not a number")),
        None => Err(mismatch(column, "is missing")),
    }
}

fn text<'r>(r: &'r Row, column: &str) -> Result<&'r str, QueryError> {
    match r.get(column) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(mismatch(column, "is not text")),
        None => Err(mismatch(column, "is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_follows_the_kit() {
        assert_eq!(growth(5.0, 0.0), 100.0);
        assert_eq!(growth(0.0, 0.0), 0.0);
        assert_eq!(growth(412.0, 380.0), 8.42);
        assert_eq!(growth(0.0, 4.0), -100.0);
    }

    #[test]
    fn trend_is_gap_filled() {
        let shape = Shape::Trend(vec![(60, "a".into()), (120, "b".into())]);
        let rows = vec![vec![obj([("minute", 120.into()), ("visits", 3.into())])]];
        let out = assemble(&shape, rows).unwrap();
        assert_eq!(out.data[0]["visits"], 0);
        assert_eq!(out.data[1]["visits"], 3);
        assert_eq!(out.rows_read, 1);
    }

    #[test]
    fn malformed_rows_are_an_internal_error() {
        let rows = vec![vec![obj([("visits", "x".into())])]];
        let e = assemble(&Shape::CurrentVisitors, rows).unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(
            !e.message().contains("visits"),
            "internal detail stays out of the message"
        );
    }
}
