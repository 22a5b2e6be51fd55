//! Plans over the pre-aggregated visit rollups (`visit_hourly`, `visit_daily`; see
//! `crate::rollup::visits`): the read cost grows with the range and the number of distinct values,
//! never with visits.
//!
//! A UTC window is split into whole UTC days (daily rows) and partial days (hourly rows). Unique
//! visitors add up over whole UTC days (visitor ids rotate daily); a partial day is always a prefix of
//! its UTC day (`visitors_first` summed), a suffix (`visitors_last`) or a single hour (`visitors`), so
//! every whole-local-day range and every hour bucket is exact. Windows are whole UTC hours: for zones
//! whose offset is not a whole number of hours, a local day or hour starts at the UTC hour that holds
//! its local start (see [`super::timezone::day_start`]).

use std::collections::{BTreeMap, BTreeSet};

use super::timezone::DAY;
use crate::rollup::visits::dim;
use crate::sql::{SqlValue, Statement};

const HOUR: i64 = 3600;

/// The rollup dimension and value that a session filter or top list maps to.
pub(crate) fn session_dim(column: &str) -> Option<&'static str> {
    Some(match column {
        "source" => dim::SOURCE,
        "browser" => dim::BROWSER,
        "os" => dim::OS,
        "device" => dim::DEVICE,
        "country" => dim::COUNTRY,
        "utm_source" => dim::UTM_SOURCE,
        "utm_medium" => dim::UTM_MEDIUM,
        "utm_campaign" => dim::UTM_CAMPAIGN,
        _ => return None,
    })
}

/// Which rows to read: tenant, dimension, optional value and domain.
#[derive(Debug, Clone)]
pub(crate) struct Slice<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) dim: &'static str,
    pub(crate) value: Option<&'a str>,
    pub(crate) domain: Option<&'a str>,
}

/// A `[start, end)` UTC window in whole hours.
pub(crate) type Piece = (i64, i64);

/// One output bucket of a kpis plan: its label, its UTC pieces and those of its previous bucket.
#[derive(Debug, Clone)]
pub(crate) struct KpiBucket {
    pub(crate) label: String,
    pub(crate) current: Vec<Piece>,
    pub(crate) previous: Vec<Piece>,
}

/// What the assembler needs for a kpis plan over the rollups.
#[derive(Debug, Clone)]
pub(crate) struct RollupKpis {
    pub(crate) hourly: bool,
    pub(crate) previous: bool,
    pub(crate) buckets: Vec<KpiBucket>,
    /// UTC days read from `visit_daily` (every other day is read hour by hour).
    pub(crate) whole: BTreeSet<i64>,
    /// Whether the daily and the hourly statement are in the plan (daily first).
    pub(crate) daily_stmt: bool,
    pub(crate) hourly_stmt: bool,
}

fn day_of(t: i64) -> i64 {
    t - t.rem_euclid(DAY)
}

/// Appends the slice's filters after `tenant_id = ? AND dim = ?` and the time range.
fn slice_filters(sql: &mut String, binds: &mut Vec<SqlValue>, s: &Slice) {
    if let Some(v) = s.value {
        sql.push_str(" AND value = ?");
        binds.push(v.into());
    }
    if let Some(d) = s.domain {
        sql.push_str(" AND domain = ?");
        binds.push(d.into());
    }
}

/// The kpis statements: per-day sums for the whole days, per-hour sums for the rest.
pub(crate) fn kpi_statements(
    s: &Slice,
    hourly: bool,
    previous: bool,
    buckets: Vec<KpiBucket>,
) -> (Vec<Statement>, RollupKpis) {
    let mut whole = BTreeSet::new();
    let mut partial = BTreeSet::new();
    for b in &buckets {
        for &(a, z) in b.current.iter().chain(&b.previous) {
            let mut d = day_of(a);
            while d < z {
                if a <= d && d + DAY <= z {
                    whole.insert(d);
                } else {
                    partial.insert(d);
                }
                d += DAY;
            }
        }
    }
    let mut statements = Vec::new();
    let measures = "SUM(visits) AS visits, SUM(pageviews) AS pageviews, SUM(bounces) AS bounces, \
                    SUM(duration) AS duration, SUM(visitors) AS visitors";
    if let (Some(first), Some(last)) = (whole.first(), whole.last()) {
        let mut sql = format!(
            "SELECT day AS t, {measures} FROM visit_daily WHERE tenant_id = ? AND dim = ? AND day >= ? AND day <= ?"
        );
        let mut binds: Vec<SqlValue> = vec![
            s.tenant.into(),
            s.dim.into(),
            (*first).into(),
            (*last).into(),
        ];
        slice_filters(&mut sql, &mut binds, s);
        sql.push_str(" GROUP BY day");
        statements.push(Statement::new(sql, binds));
    }
    if let (Some(first), Some(last)) = (partial.first(), partial.last()) {
        let mut sql = format!(
            "SELECT hour AS t, {measures}, SUM(visitors_first) AS visitors_first, SUM(visitors_last) AS visitors_last \
             FROM visit_hourly WHERE tenant_id = ? AND dim = ? AND hour >= ? AND hour < ?"
        );
        let mut binds: Vec<SqlValue> = vec![
            s.tenant.into(),
            s.dim.into(),
            (*first).into(),
            (last + DAY).into(),
        ];
        slice_filters(&mut sql, &mut binds, s);
        sql.push_str(" GROUP BY hour");
        statements.push(Statement::new(sql, binds));
    }
    let shape = RollupKpis {
        hourly,
        previous,
        buckets,
        daily_stmt: !whole.is_empty(),
        hourly_stmt: !partial.is_empty(),
        whole,
    };
    (statements, shape)
}

/// The rows of a kpis plan's statements: measures per UTC day and per UTC hour.
#[derive(Debug, Default)]
pub(crate) struct BucketRows {
    daily: BTreeMap<i64, [i64; 5]>,
    hourly: BTreeMap<i64, [i64; 7]>,
}

impl RollupKpis {
    /// Reads the daily and hourly statements' rows (in plan order). Integers may arrive as floats
    /// (D1); a missing or NULL measure is 0.
    pub(crate) fn rows(
        &self,
        results: Vec<Vec<serde_json::Map<String, serde_json::Value>>>,
    ) -> BucketRows {
        const NAMES: [&str; 7] = [
            "visits",
            "pageviews",
            "bounces",
            "duration",
            "visitors",
            "visitors_first",
            "visitors_last",
        ];
        let int = |r: &serde_json::Map<String, serde_json::Value>, n: &str| {
            r.get(n)
                .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
                .unwrap_or(0)
        };
        let mut sets = results.into_iter();
        let mut out = BucketRows::default();
        if self.daily_stmt {
            for r in sets.next().unwrap_or_default() {
                out.daily
                    .insert(int(&r, "t"), std::array::from_fn(|i| int(&r, NAMES[i])));
            }
        }
        if self.hourly_stmt {
            for r in sets.next().unwrap_or_default() {
                out.hourly
                    .insert(int(&r, "t"), std::array::from_fn(|i| int(&r, NAMES[i])));
            }
        }
        out
    }

    /// Sums of the pieces of one bucket: visits, pageviews, bounces, duration, visitors.
    pub(crate) fn totals(&self, rows: &BucketRows, pieces: &[Piece]) -> [i64; 5] {
        bucket_totals(pieces, &self.whole, &rows.daily, &rows.hourly)
    }
}

/// Sums of one bucket: visits, pageviews, bounces, duration, visitors.
pub(crate) fn bucket_totals(
    pieces: &[Piece],
    whole: &BTreeSet<i64>,
    daily: &BTreeMap<i64, [i64; 5]>,
    hourly: &BTreeMap<i64, [i64; 7]>,
) -> [i64; 5] {
    let mut out = [0i64; 5];
    for &(a, z) in pieces {
        let mut d = day_of(a);
        while d < z {
            let (s, e) = (a.max(d), z.min(d + DAY));
            d += DAY;
            if s >= e {
                continue;
            }
            let day = s - s.rem_euclid(DAY);
            if s == day && e == day + DAY && whole.contains(&day) {
                if let Some(row) = daily.get(&day) {
                    for (o, v) in out.iter_mut().zip(row) {
                        *o += v;
                    }
                }
                continue;
            }
            // A prefix of the UTC day counts each visitor at its first hour, a suffix at its last;
            // a single hour counts its distinct visitors.
            let slot = if s == day {
                5
            } else if e == day + DAY {
                6
            } else {
                4
            };
            let mut h = s;
            while h < e {
                if let Some(row) = hourly.get(&h) {
                    for i in 0..4 {
                        out[i] += row[i];
                    }
                    out[4] += row[slot];
                }
                h += HOUR;
            }
        }
    }
    out
}

/// The arms of a top list: `(hourly?, start, end)` covering `[a, z)` with whole days from
/// `visit_daily`.
pub(crate) fn arms(a: i64, z: i64) -> Vec<(bool, i64, i64)> {
    let first_day = if a == day_of(a) { a } else { day_of(a) + DAY };
    let last_day = day_of(z);
    if first_day > last_day {
        return vec![(true, a, z)];
    }
    let mut out = Vec::new();
    if a < first_day {
        out.push((true, a, first_day));
    }
    if first_day < last_day {
        out.push((false, first_day, last_day));
    }
    if last_day < z {
        out.push((true, last_day, z));
    }
    out
}

/// Per value (or per domain) over `[a, z)`: `k`, `visits`, `pageviews`, `bounces`, `duration` and exact
/// `visitors` (daily rows for whole UTC days; at a partial day's edges each visitor is counted at its
/// first hour of a prefix or its last hour of a suffix).
pub(crate) fn value_statement(s: &Slice, (a, z): Piece, by_domain: bool) -> Statement {
    let mut sql = String::from("WITH w AS (");
    let mut binds: Vec<SqlValue> = Vec::new();
    let key = if by_domain { "domain" } else { "value" };
    for (i, (hourly, from, to)) in arms(a, z).into_iter().enumerate() {
        if i > 0 {
            sql.push_str(" UNION ALL ");
        }
        let (table, col, visitors) = if !hourly {
            ("visit_daily", "day", "visitors")
        } else if from == day_of(from) {
            ("visit_hourly", "hour", "visitors_first")
        } else if to == day_of(from) + DAY {
            ("visit_hourly", "hour", "visitors_last")
        } else {
            ("visit_hourly", "hour", "visitors")
        };
        sql.push_str(&format!(
            "SELECT {key} AS k, visits, pageviews, bounces, duration, {visitors} AS u FROM {table} \
             WHERE tenant_id = ? AND dim = ? AND {col} >= ? AND {col} < ?"
        ));
        binds.extend([s.tenant.into(), s.dim.into(), from.into(), to.into()]);
        slice_filters(&mut sql, &mut binds, s);
    }
    sql.push_str(
        ") SELECT k, SUM(visits) AS visits, SUM(pageviews) AS pageviews, SUM(bounces) AS bounces, \
         SUM(duration) AS duration, SUM(u) AS visitors FROM w GROUP BY k HAVING SUM(visits) > 0",
    );
    Statement::new(sql, binds)
}

/// A top list over the rollups: `k` (the packed value), `visits`, `hits` and, with a previous window,
/// `previous_visits` and `previous_hits`; only values with visits in the current window.
pub(crate) fn top_statement(
    s: &Slice,
    current: Piece,
    previous: Option<Piece>,
    skip: i64,
    limit: i64,
) -> Statement {
    let mut sql = String::from("WITH w AS (");
    let mut binds: Vec<SqlValue> = Vec::new();
    let windows = std::iter::once((current, 1)).chain(previous.map(|p| (p, 0)));
    let mut first = true;
    for ((a, z), cur) in windows {
        for (hourly, from, to) in arms(a, z) {
            if !first {
                sql.push_str(" UNION ALL ");
            }
            first = false;
            let (table, col) = if hourly {
                ("visit_hourly", "hour")
            } else {
                ("visit_daily", "day")
            };
            sql.push_str(&format!(
                "SELECT value AS k, visits AS v, pageviews AS h, {cur} AS c FROM {table} \
                 WHERE tenant_id = ? AND dim = ? AND {col} >= ? AND {col} < ?"
            ));
            binds.extend([s.tenant.into(), s.dim.into(), from.into(), to.into()]);
            slice_filters(&mut sql, &mut binds, s);
        }
    }
    sql.push_str(") SELECT k, SUM(v * c) AS visits, SUM(h * c) AS hits");
    if previous.is_some() {
        sql.push_str(", SUM(v * (1 - c)) AS previous_visits, SUM(h * (1 - c)) AS previous_hits");
    }
    sql.push_str(
        " FROM w GROUP BY k HAVING SUM(v * c) > 0 ORDER BY visits DESC, k LIMIT ? OFFSET ?",
    );
    binds.push(limit.into());
    binds.push(skip.into());
    Statement::new(sql, binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_split_into_whole_days_and_edge_hours() {
        let d = 20_000 * DAY;
        assert_eq!(arms(d, d + 3 * DAY), vec![(false, d, d + 3 * DAY)]);
        assert_eq!(
            arms(d - 2 * HOUR, d + 2 * DAY - 2 * HOUR),
            vec![
                (true, d - 2 * HOUR, d),
                (false, d, d + DAY),
                (true, d + DAY, d + 2 * DAY - 2 * HOUR)
            ]
        );
        assert_eq!(
            arms(d + HOUR, d + 5 * HOUR),
            vec![(true, d + HOUR, d + 5 * HOUR)]
        );
    }

    #[test]
    fn visitors_use_first_hours_for_prefixes_and_last_hours_for_suffixes() {
        let d = 20_000 * DAY;
        let mut hourly = BTreeMap::new();
        // hour: visits, pageviews, bounces, duration, visitors, first, last
        hourly.insert(d - HOUR, [1, 1, 1, 0, 3, 0, 2]);
        hourly.insert(d, [1, 1, 1, 0, 4, 4, 1]);
        hourly.insert(d + HOUR, [1, 1, 1, 0, 5, 1, 5]);
        let none = BTreeMap::new();
        let t = bucket_totals(
            &[(d - HOUR, d + 2 * HOUR)],
            &BTreeSet::new(),
            &none,
            &hourly,
        );
        assert_eq!(t, [3, 3, 3, 0, 2 + 4 + 1]);
        let t = bucket_totals(
            &[(d + HOUR, d + 2 * HOUR)],
            &BTreeSet::new(),
            &none,
            &hourly,
        );
        assert_eq!(
            t[4], 5,
            "a single inner hour counts its own distinct visitors"
        );
    }
}
