//! The `web_vitals_*` endpoints (issue #12), read from the `web_vitals_daily` histogram
//! ([`crate::vitals`]): p75 (and p90/p95/p99) per metric, the share of good / needs-improvement / poor
//! measurements by the standard thresholds, per route or page, and per day.
//!
//! Same rules as every pipe: the tenant is the first bound value, every value is bound. Days are UTC
//! days (the rollup's resolution; the `timezone` parameter does not apply), so `web_vitals_timeseries`
//! has one row per day and metric where the kit has one per hour. Column names follow the kit's where
//! they mean the same; ratings use web.dev's three names rather than the kit's own scale.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::params::Params;
use super::response::round;
use super::timezone::{format_date, Days, DAY};
use super::{Column, QueryError, Request};
use crate::claims::TenantId;
use crate::sql::{SqlValue, Statement, TenantSql};
use crate::vitals::{quantile_rated, route, METRICS, RATINGS};

/// The four endpoints.
pub(crate) const PIPES: [&str; 4] = [
    "web_vitals_current",
    "web_vitals_routes",
    "web_vitals_distribution",
    "web_vitals_timeseries",
];

/// Groups with fewer measurements are left out of `web_vitals_routes` (as in the kit).
const MIN_ROUTE_MEASUREMENTS: u64 = 3;

/// What [`assemble`] needs besides the rows.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pipe: &'static str,
    /// `web_vitals_routes`: group by pathname instead of route.
    pathnames: bool,
    /// `web_vitals_routes`: best first.
    best_first: bool,
    skip: usize,
    limit: usize,
}

type Row = Map<String, Value>;

/// Plans one of [`PIPES`]; `None` for any other name.
pub(crate) fn plan(
    req: &Request,
    p: &Params,
    tenant: &TenantId,
    key: &mut BTreeMap<String, String>,
) -> Option<Result<(Vec<Statement>, Shape), QueryError>> {
    let pipe = *PIPES.iter().find(|n| **n == req.pipe)?;
    Some(plan_pipe(pipe, req, p, tenant, key))
}

fn plan_pipe(
    pipe: &'static str,
    req: &Request,
    p: &Params,
    tenant: &TenantId,
    key: &mut BTreeMap<String, String>,
) -> Result<(Vec<Statement>, Shape), QueryError> {
    let today: Days = req.now_secs.div_euclid(DAY);
    let (from, to) = match pipe {
        "web_vitals_distribution" | "web_vitals_timeseries" => p.dates(today)?,
        _ => {
            let days = p.int("days", 1, 1, 366)?;
            (today - days + 1, today)
        }
    };
    key.insert("from".into(), from.to_string());
    key.insert("to".into(), to.to_string());
    let mut shape = Shape {
        pipe,
        pathnames: false,
        best_first: false,
        skip: 0,
        limit: 0,
    };
    let group = match pipe {
        "web_vitals_routes" => {
            shape.pathnames = p.get("analysis_type") == Some("pathnames");
            shape.best_first = p.get("sort_order") == Some("desc");
            let (skip, limit) = p.page()?;
            (shape.skip, shape.limit) = (skip as usize, limit as usize);
            for (k, v) in [
                ("analysis_type", shape.pathnames.to_string()),
                ("sort_order", shape.best_first.to_string()),
                ("skip", skip.to_string()),
                ("limit", limit.to_string()),
            ] {
                key.insert(k.into(), v);
            }
            "pathname, metric, bucket, rating"
        }
        "web_vitals_timeseries" => "day, metric, bucket, rating",
        _ => "metric, bucket, rating",
    };
    let mut q = TenantSql::new(tenant);
    q.push(&format!("SELECT {group}, SUM(n) AS n, SUM(total) AS total"))
        .from("web_vitals_daily", "")
        .bind(" AND day >= ?", from * DAY)
        .bind(" AND day <= ?", to * DAY);
    if let Some(d) = p.text(&["domain"])? {
        key.insert("domain".into(), d.to_owned());
        q.bind(" AND domain = ?", d);
    }
    if pipe == "web_vitals_routes" {
        if let Some(r) = p.text(&["route"])? {
            key.insert("route".into(), r.to_owned());
            // A route is `/` or a first segment: its pages are `/r` and `/r/…`.
            if r == "/" {
                q.push(" AND pathname = '/'");
            } else {
                let prefix = format!("/{r}/");
                q.bind_all(
                    " AND (pathname = ? OR substr(pathname, 1, ?) = ?)",
                    [
                        format!("/{r}").into(),
                        SqlValue::Int(prefix.len() as i64),
                        prefix.into(),
                    ],
                );
            }
        }
    }
    q.push(&format!(" GROUP BY {group}"));
    Ok((vec![q.finish()], shape))
}

/// Measurements of one metric in one group: histogram, ratings, sum.
#[derive(Default)]
struct Cell {
    /// `((bucket, rating), count)`: the rows, so a quantile's rating is its measurement's, exactly.
    histogram: Vec<((i64, u8), u64)>,
    ratings: [u64; 3],
    total: f64,
}

impl Cell {
    fn n(&self) -> u64 {
        self.ratings.iter().sum()
    }

    /// The rating of the cell's p75 measurement (that of the measurement, not of the bucket's value).
    fn p75_rating(&self, metric: &str) -> &'static str {
        let rating = quantile_rated(metric, &self.histogram, 0.75).map_or(2, |x| x.1);
        RATINGS[usize::from(rating).min(2)]
    }
}

fn num(r: &Row, c: &str) -> Result<f64, QueryError> {
    match r.get(c) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| mismatch(c)),
        Some(Value::Null) => Ok(0.0),
        _ => Err(mismatch(c)),
    }
}

fn mismatch(c: &str) -> QueryError {
    QueryError::ResultMismatch(format!("column '{c}' is missing or not a number"))
}

/// Decimals a metric's values are given with: 4 for CLS, 2 for milliseconds.
fn decimals(metric: &str) -> i32 {
    if metric == "CLS" {
        4
    } else {
        2
    }
}

fn col(name: &str, ty: &str) -> Column {
    Column {
        name: name.to_owned(),
        r#type: ty.to_owned(),
    }
}

/// Quantiles and their columns for one metric's cell.
fn stats(metric: &str, c: &Cell, out: &mut Row) {
    let d = decimals(metric);
    for (name, q) in [("p75", 0.75), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
        let v = quantile_rated(metric, &c.histogram, q).map_or(0.0, |x| x.0);
        out.insert(name.into(), round(v, d).into());
    }
    out.insert(
        "avg_value".into(),
        round(c.total / c.n().max(1) as f64, d).into(),
    );
    out.insert("measurements".into(), c.n().into());
}

fn thresholds(metric: &str) -> (String, &'static str) {
    let (_, units, good, ni, _) = crate::vitals::metric(metric).copied().unwrap_or(METRICS[0]);
    (format!("good <= {good}, poor > {ni}"), units)
}

/// Rows in, `meta` and `data` out.
pub(crate) fn assemble(shape: &Shape, rows: &[Row]) -> Result<(Vec<Column>, Vec<Row>), QueryError> {
    // (group, metric) → cell; the group is the day, the route/pathname, or empty.
    let mut cells: BTreeMap<(String, &'static str), Cell> = BTreeMap::new();
    for r in rows {
        let metric = r
            .get("metric")
            .and_then(Value::as_str)
            .and_then(crate::vitals::metric)
            .map(|m| m.0)
            .ok_or_else(|| mismatch("metric"))?;
        let group = match shape.pipe {
            "web_vitals_timeseries" => format_date((num(r, "day")? as i64).div_euclid(DAY)),
            "web_vitals_routes" => {
                let path = r.get("pathname").and_then(Value::as_str).unwrap_or("/");
                if shape.pathnames {
                    path.to_owned()
                } else {
                    route(path).to_owned()
                }
            }
            _ => String::new(),
        };
        let n = num(r, "n")? as u64;
        let cell = cells.entry((group, metric)).or_default();
        let rating = (num(r, "rating")? as usize).min(2);
        cell.histogram
            .push(((num(r, "bucket")? as i64, rating as u8), n));
        cell.ratings[rating] += n;
        cell.total += num(r, "total")?;
    }
    let order = |m: &str| METRICS.iter().position(|x| x.0 == m).unwrap_or(9);
    let mut data = Vec::new();
    let meta = match shape.pipe {
        "web_vitals_current" => {
            let mut sorted: Vec<_> = cells.iter().collect();
            sorted.sort_by_key(|((_, m), _)| order(m));
            for ((_, m), c) in sorted {
                let mut row = Row::new();
                row.insert("metric_name".into(), (*m).into());
                stats(m, c, &mut row);
                row.insert("rating".into(), c.p75_rating(m).into());
                for (i, name) in ["good", "needs_improvement", "poor"].iter().enumerate() {
                    let pct = c.ratings[i] as f64 * 100.0 / c.n().max(1) as f64;
                    row.insert(format!("{name}_percentage"), round(pct, 1).into());
                }
                let (t, units) = thresholds(m);
                row.insert("units".into(), units.into());
                row.insert("thresholds".into(), t.into());
                data.push(row);
            }
            let mut meta = vec![col("metric_name", "String")];
            meta.extend(["p75", "p90", "p95", "p99", "avg_value"].map(|c| col(c, "Float64")));
            meta.extend([col("measurements", "UInt64"), col("rating", "String")]);
            meta.extend(
                [
                    "good_percentage",
                    "needs_improvement_percentage",
                    "poor_percentage",
                ]
                .map(|c| col(c, "Float64")),
            );
            meta.extend([col("units", "String"), col("thresholds", "String")]);
            meta
        }
        "web_vitals_distribution" => {
            let mut sorted: Vec<_> = cells.iter().collect();
            sorted.sort_by_key(|((_, m), _)| order(m));
            for ((_, m), c) in sorted {
                for (i, category) in RATINGS.iter().enumerate() {
                    let count = c.ratings[i];
                    let (t, units) = thresholds(m);
                    let mut row = Row::new();
                    row.insert("metric_name".into(), (*m).into());
                    row.insert("performance_category".into(), (*category).into());
                    row.insert("measurement_count".into(), count.into());
                    row.insert("total_measurements".into(), c.n().into());
                    let pct = count as f64 * 100.0 / c.n().max(1) as f64;
                    row.insert("percentage".into(), round(pct, 1).into());
                    row.insert("units".into(), units.into());
                    row.insert("thresholds".into(), t.into());
                    data.push(row);
                }
            }
            vec![
                col("metric_name", "String"),
                col("performance_category", "String"),
                col("measurement_count", "UInt64"),
                col("total_measurements", "UInt64"),
                col("percentage", "Float64"),
                col("units", "String"),
                col("thresholds", "String"),
            ]
        }
        "web_vitals_timeseries" => {
            let mut sorted: Vec<_> = cells.iter().collect();
            sorted.sort_by(|((da, ma), _), ((db, mb), _)| (da, order(ma)).cmp(&(db, order(mb))));
            for ((day, m), c) in sorted {
                let mut row = Row::new();
                row.insert("day".into(), day.as_str().into());
                row.insert("metric_name".into(), (*m).into());
                stats(m, c, &mut row);
                row.insert("rating".into(), c.p75_rating(m).into());
                data.push(row);
            }
            let mut meta = vec![col("day", "Date"), col("metric_name", "String")];
            meta.extend(["p75", "p90", "p95", "p99", "avg_value"].map(|c| col(c, "Float64")));
            meta.extend([col("measurements", "UInt64"), col("rating", "String")]);
            meta
        }
        _ => {
            // web_vitals_routes: one row per route (or page) with each metric's p75 and rating; the
            // score is the share of good measurements over all metrics.
            let mut groups: BTreeMap<&str, Vec<(&'static str, &Cell)>> = BTreeMap::new();
            for ((g, m), c) in &cells {
                groups.entry(g.as_str()).or_default().push((m, c));
            }
            let mut scored: Vec<_> = groups
                .into_iter()
                .map(|(g, ms)| {
                    let n: u64 = ms.iter().map(|(_, c)| c.n()).sum();
                    let good: u64 = ms.iter().map(|(_, c)| c.ratings[0]).sum();
                    (g, ms, n, good as f64 * 100.0 / n.max(1) as f64)
                })
                .filter(|(_, _, n, _)| *n >= MIN_ROUTE_MEASUREMENTS)
                .collect();
            scored.sort_by(|a, b| {
                let by = a.3.total_cmp(&b.3);
                (if shape.best_first { by.reverse() } else { by }).then(a.0.cmp(b.0))
            });
            let key = if shape.pathnames { "pathname" } else { "route" };
            for (g, ms, n, score) in scored.into_iter().skip(shape.skip).take(shape.limit) {
                let mut row = Row::new();
                row.insert(key.into(), g.into());
                row.insert("score".into(), round(score, 1).into());
                row.insert("measurements".into(), n.into());
                for (m, ..) in METRICS {
                    let lower = m.to_ascii_lowercase();
                    let cell = ms.iter().find(|(x, _)| *x == m).map(|(_, c)| *c);
                    let p75 = cell.and_then(|c| quantile_rated(m, &c.histogram, 0.75).map(|x| x.0));
                    row.insert(
                        format!("{lower}_p75"),
                        p75.map_or(Value::Null, |v| round(v, decimals(m)).into()),
                    );
                    row.insert(
                        format!("{lower}_rating"),
                        cell.map_or(Value::Null, |c| c.p75_rating(m).into()),
                    );
                }
                row.insert(
                    "analysis_type".into(),
                    if shape.pathnames {
                        "pathnames"
                    } else {
                        "routes"
                    }
                    .into(),
                );
                data.push(row);
            }
            let mut meta = vec![
                col(key, "String"),
                col("score", "Float64"),
                col("measurements", "UInt64"),
            ];
            for (m, ..) in METRICS {
                let lower = m.to_ascii_lowercase();
                meta.push(col(&format!("{lower}_p75"), "Nullable(Float64)"));
                meta.push(col(&format!("{lower}_rating"), "Nullable(String)"));
            }
            meta.push(col("analysis_type", "String"));
            meta
        }
    };
    Ok((meta, data))
}
