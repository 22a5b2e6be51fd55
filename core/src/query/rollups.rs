//! Plans over the pre-aggregated visit rollups (`visit_hourly`, `visit_daily`; see
//! `crate::rollup::visits`): the read cost grows with the range and the number of distinct values,
//! never with visits, except for the partial days of a dimension older than the hourly rows kept.
//!
//! A UTC window is split into whole UTC days (daily rows) and partial days (hourly rows). Hourly rows
//! of a dimension other than all visits are kept for the last two UTC days only
//! (`visits::HOURLY_DAYS`); older partial days of a dimension are computed from `sessions` and
//! `page_visits` exactly as the consumer would have summed them ([`visit_level_hours`]), which costs
//! one scan of the visits of those hours: for a range in a zone off UTC, its two edge days, but every
//! day of a per-day series (each local day is two partial UTC days). Unique
//! visitors add up over whole UTC days (visitor ids rotate daily); a partial day is always a prefix of
//! its UTC day (`visitors_first` summed), a suffix (`visitors_last`) or a single hour (`visitors`), so
//! every whole-local-day range and every hour bucket is exact. Windows are whole UTC hours: for zones
//! whose offset is not a whole number of hours, a local day or hour starts at the UTC hour that holds
//! its local start (see [`super::timezone::day_start`]).

use std::collections::{BTreeMap, BTreeSet};

use super::timezone::{day_start, Days, TimeZone, DAY};
use crate::claims::TenantId;
use crate::rollup::visits::{self, dim};
use crate::sql::{Join, Statement, TenantSql};

const HOUR: i64 = 3600;

/// A page visit's (`pv`) session (`s`), by the session's primary key (migration 0007).
pub(crate) const SESSION_OF_PAGE: Join = Join {
    kind: "JOIN",
    table: "sessions",
    alias: "s",
    on: "s.first_ts = pv.first_ts - pv.since_visit AND s.session_key = pv.session_key",
};

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
    pub(crate) tenant: &'a TenantId,
    pub(crate) dim: &'static str,
    pub(crate) value: Option<&'a str>,
    pub(crate) domain: Option<&'a str>,
    /// The first hour with hourly rows of this dimension (`visits::hourly_kept_from`; every hour for
    /// [`dim::ALL`]); earlier hours are read from the visit-level tables.
    pub(crate) hourly_from: i64,
    /// With [`dim::PROP`] or [`dim::PROP_EVENTS`]: `value` is a property key's `key SEP` and the slice
    /// holds every value of that key (`value` from `key SEP` up to `key ' '`, SEP sorting before
    /// every printable character), as the `session_props` plan reads them. With [`dim::GOAL_PROP`]:
    /// `value` is `goal SEP key SEP`, every value of the key on the goal's events.
    pub(crate) key_prefix: bool,
}

impl<'a> Slice<'a> {
    /// A slice read at `now`.
    pub(crate) fn new(
        tenant: &'a TenantId,
        dim: &'static str,
        value: Option<&'a str>,
        domain: Option<&'a str>,
        now: i64,
    ) -> Self {
        let hourly_from = if dim == dim::ALL {
            i64::MIN
        } else {
            visits::hourly_kept_from(now)
        };
        Self {
            tenant,
            dim,
            value,
            domain,
            hourly_from,
            key_prefix: false,
        }
    }
}

/// Whether a per-day series of this slice over the local days `from..=to` would compute more than
/// two of its days from the visit-level tables: in a zone off UTC every local day is two partial UTC
/// days, so a series older than the hourly rows kept reads every visit of its range either way, and
/// the plain visit-level plan (one scan grouped by day) does it about four times faster than the
/// hourly cells derived per hour (measured at 1M, BENCHMARKS.md).
pub(crate) fn series_reads_visits(s: &Slice, tz: &dyn TimeZone, from: Days, to: Days) -> bool {
    s.dim != dim::ALL
        && (from..=to)
            .filter(|&d| {
                let a = day_start(tz, d);
                a.rem_euclid(DAY) != 0 && a < s.hourly_from
            })
            .count()
            > 2
}

/// Visit-level ranges per statement beyond which one covering range is scanned instead (D1 allows 100
/// bound parameters per statement).
const MAX_VISIT_RANGES: usize = 4;

/// Sorted, merged `[start, end)` ranges.
fn merged(mut ranges: Vec<Piece>) -> Vec<Piece> {
    ranges.retain(|(a, z)| a < z);
    ranges.sort_unstable();
    let mut out: Vec<Piece> = Vec::new();
    for (a, z) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(z),
            _ => out.push((a, z)),
        }
    }
    out
}

/// Hourly cells of the slice in `[from, to)` as a row source with the columns of `visit_hourly`
/// (`hour, value, domain, visits, pageviews, bounces, duration, visitors, visitors_first,
/// visitors_last`): `visit_hourly` from [`Slice::hourly_from`], the visit-level tables before it
/// ([`visit_level_hours`]).
fn hourly_source(s: &Slice, ranges: &[Piece], q: &mut TenantSql) {
    let mut old: Vec<Piece> = ranges
        .iter()
        .map(|&(a, z)| (a, z.min(s.hourly_from)))
        .collect();
    old = merged(old);
    if old.len() > MAX_VISIT_RANGES {
        old = vec![(old[0].0, old[old.len() - 1].1)];
    }
    let recent: Vec<Piece> = merged(
        ranges
            .iter()
            .map(|&(a, z)| (a.max(s.hourly_from), z))
            .collect(),
    );
    let mut parts = 0;
    if let (Some(first), Some(last)) = (recent.first(), recent.last()) {
        // One covering range: hourly rows of whole days in between are few and left unused.
        q.push(
            "SELECT hour, value, domain, visits, pageviews, bounces, duration, visitors, visitors_first, \
             visitors_last",
        )
        .from("visit_hourly", "")
        .bind(" AND dim = ?", visits::dim_code(s.dim))
        .bind(" AND hour >= ?", first.0)
        .bind(" AND hour < ?", last.1);
        slice_filters(q, s);
        parts += 1;
    }
    for (a, z) in old {
        if parts > 0 {
            q.push(" UNION ALL ");
        }
        visit_level_hours(s, a, z, q);
        parts += 1;
    }
    if parts == 0 {
        q.push(
            "SELECT 0 AS hour, '' AS value, '' AS domain, 0 AS visits, 0 AS pageviews, 0 AS bounces, \
             0 AS duration, 0 AS visitors, 0 AS visitors_first, 0 AS visitors_last WHERE 0",
        );
    }
}

/// The slice's hourly cells over `[from, to)` as a row source with the columns of `visit_hourly`,
/// appended to `q`: `visit_hourly` from [`Slice::hourly_from`], the visit-level tables before it (one
/// scan of those hours' visits). For `traffic_by_hour`.
pub(crate) fn hourly_cells(s: &Slice, (from, to): Piece, q: &mut TenantSql) {
    hourly_source(s, &[(from, to)], q);
}

/// The hourly cells of `[from, to)` computed from `sessions` and `page_visits`, exactly as the consumer
/// would have written them: a visit at the hour of its first hit under each of its keys (`vp`: every
/// page it viewed), a page (`pg`) at the hour of its first hit in the visit. `visitors` counts the
/// distinct visitors of the hour; `visitors_first`/`visitors_last` those whose first/last hour it is
/// among the hours of their UTC day in the range, which is their first/last hour of the day for a
/// range starting/ending at midnight, the only cases in which the planner reads them. Costs one scan
/// of the visits (and, for pages, the page visits) of the range.
fn visit_level_hours(s: &Slice, from: i64, to: i64, q: &mut TenantSql) {
    if s.dim == dim::GOAL_EVENTS {
        // A goal's events and revenue per currency, at the hour of its visit's start, as the consumer
        // sums them (`visits` = events, `pageviews` = revenue, `bounces` = events with revenue).
        q.push(
            "SELECT first_ts - first_ts % 3600 AS hour, goal || char(31) || currency AS value, domain, \
             SUM(events) AS visits, SUM(revenue) AS pageviews, SUM(paid) AS bounces, 0 AS duration, \
             0 AS visitors, 0 AS visitors_first, 0 AS visitors_last",
        )
        .from("session_goals", "")
        .bind(" AND first_ts >= ?", from)
        .bind(" AND first_ts < ?", to);
        if let Some(v) = s.value {
            q.bind(" AND goal = ?", v);
        }
        if let Some(d) = s.domain {
            q.bind(" AND domain = ?", d);
        }
        q.push(" GROUP BY 1, 2, 3");
        return;
    }
    if s.dim == dim::PROP_EVENTS {
        // A property value's events, at the hour of its visit's start, as the consumer sums them
        // (`visits` = events).
        q.push(
            "SELECT first_ts - first_ts % 3600 AS hour, prop AS value, domain, SUM(events) AS visits, \
             0 AS pageviews, 0 AS bounces, 0 AS duration, 0 AS visitors, 0 AS visitors_first, \
             0 AS visitors_last",
        )
        .from("session_props", "")
        .bind(" AND first_ts >= ?", from)
        .bind(" AND first_ts < ?", to);
        value_filter(q, s, "prop");
        if let Some(d) = s.domain {
            q.bind(" AND domain = ?", d);
        }
        q.push(" GROUP BY 1, 2, 3");
        return;
    }
    if s.dim == dim::PAGE {
        // A page's domain is its visit's (the session by its primary key; a page whose visit started
        // before the retention cutoff has lost it: still counted, without a domain).
        q.push(
            "SELECT pv.first_ts - pv.first_ts % 3600 AS hour, pv.pathname AS value, s.domain AS domain, \
             COUNT(*) AS visits, SUM(pv.hits) AS pageviews, 0 AS bounces, 0 AS duration, 0 AS visitors, \
             0 AS visitors_first, 0 AS visitors_last",
        )
        .from_joined("page_visits", "pv", &[Join {
                kind: "LEFT JOIN",
                ..SESSION_OF_PAGE
            }])
        .bind(" AND pv.first_ts >= ?", from)
            .bind(" AND pv.first_ts < ?", to);
        if let Some(v) = s.value {
            q.bind(" AND pv.pathname = ?", v);
        }
        if let Some(d) = s.domain {
            q.bind(" AND s.domain = ?", d);
        }
        q.push(" GROUP BY 1, 2, 3");
        return;
    }
    // (first_ts, value, domain, visitor, pageviews, last_ts) per visit and key.
    let value = match s.dim {
        d if d == dim::ALL => "''",
        d if d == dim::SOURCE => "s.source",
        d if d == dim::BROWSER => "s.browser",
        d if d == dim::OS => "s.os",
        d if d == dim::DEVICE => "s.device",
        d if d == dim::COUNTRY => "s.country",
        d if d == dim::UTM_SOURCE => "s.utm_source",
        d if d == dim::UTM_MEDIUM => "s.utm_medium",
        d if d == dim::UTM_CAMPAIGN => "s.utm_campaign",
        d if d == dim::CAMPAIGN => {
            "s.utm_campaign || char(31) || s.utm_source || char(31) || s.utm_medium"
        }
        d if d == dim::ENTRY => "s.entry_path",
        d if d == dim::EXIT => "s.exit_path",
        d if d == dim::GOAL => "s.goal",
        d if d == dim::FUNNEL => "s.step",
        d if d == dim::PROP => "s.prop",
        d if d == dim::GOAL_PROP => "s.goal || char(31) || s.prop",
        _ => "pv.pathname",
    };
    // A goal's (a funnel step's, a property value's) visits are its `session_goals`
    // (`session_funnels`, `session_props`) rows, visits without a page hit included.
    let duration = if s.dim == dim::GOAL || s.dim == dim::FUNNEL || s.dim == dim::PROP {
        "s.duration"
    } else if s.dim == dim::GOAL_PROP {
        // A goal property value's cells hold the goal's events in `duration`.
        "s.events"
    } else {
        "s.last_ts - s.first_ts"
    };
    // Per (hour, key, visitor) first; then each visitor's first and last hour of its UTC day among
    // them (a window over those groups), then per (hour, key).
    q.push(&format!(
        "SELECT hour, value, domain, SUM(n) AS visits, SUM(pv) AS pageviews, SUM(b) AS bounces, \
         SUM(d) AS duration, COUNT(*) AS visitors, SUM(hour = first_hour) AS visitors_first, \
         SUM(hour = last_hour) AS visitors_last \
         FROM (SELECT hour, value, domain, n, pv, b, d, MIN(hour) OVER day AS first_hour, \
         MAX(hour) OVER day AS last_hour \
         FROM (SELECT s.first_ts - s.first_ts % 3600 AS hour, {value} AS value, s.domain AS domain, \
         s.visitor_id AS visitor, COUNT(*) AS n, SUM(s.pageviews) AS pv, SUM(s.pageviews = 1) AS b, \
         SUM({duration}) AS d"
    ));
    if s.dim == dim::VIEWED {
        // The pages of the range's visits, read once from the range's start to its visits' last hit,
        // each joined to its visit by the visit's primary key.
        q.from_joined("page_visits", "pv", &[SESSION_OF_PAGE])
            .bind(" AND pv.first_ts >= ?", from)
            .push(" AND pv.first_ts <= (SELECT MAX(last_ts)")
            .from("sessions", "")
            .bind(" AND first_ts >= ?", from)
            .bind(" AND first_ts < ?", to)
            .push(")")
            .bind(" AND pv.first_ts - pv.since_visit >= ?", from)
            .bind(" AND pv.first_ts - pv.since_visit < ?", to);
    } else {
        let table = match s.dim {
            d if d == dim::GOAL => "session_goals",
            d if d == dim::FUNNEL => "session_funnels",
            d if d == dim::PROP => "session_props",
            d if d == dim::GOAL_PROP => "session_goal_props",
            _ => "sessions",
        };
        q.from(table, "s")
            .bind(" AND s.first_ts >= ?", from)
            .bind(" AND s.first_ts < ?", to);
    }
    if s.dim == dim::CAMPAIGN {
        q.push(" AND s.utm_campaign <> ''");
    }
    match s.value.and_then(|v| v.split_once(visits::SEP)) {
        // `goal SEP key SEP [value]` on the table's own columns (a goal name holds no SEP).
        Some((goal, prop)) if s.dim == dim::GOAL_PROP => {
            q.bind(" AND s.goal = ?", goal);
            let sub = Slice {
                value: Some(prop),
                ..s.clone()
            };
            value_filter(q, &sub, "s.prop");
        }
        _ => value_filter(q, s, value),
    }
    if let Some(d) = s.domain {
        q.bind(" AND s.domain = ?", d);
    }
    q.push(
        " GROUP BY 1, 2, 3, 4) WINDOW day AS (PARTITION BY value, domain, visitor, hour / 86400)) \
         GROUP BY hour, value, domain",
    );
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
fn slice_filters(q: &mut TenantSql, s: &Slice) {
    match s.value {
        // A goal's cells in each of its currencies: `name SEP currency`.
        Some(v) if s.dim == dim::GOAL_EVENTS => stem_range(q, "value", v),
        _ => value_filter(q, s, "value"),
    }
    if let Some(d) = s.domain {
        q.bind(" AND domain = ?", d);
    }
}

/// The slice's value on `column`: equal to it, or (a property key, [`Slice::key_prefix`]) every
/// `key SEP value` of the key.
fn value_filter(q: &mut TenantSql, s: &Slice, column: &str) {
    match s.value {
        // `key SEP` (a key holds no SEP: `crate::props`).
        Some(key) if s.key_prefix => {
            stem_range(q, column, key.strip_suffix(visits::SEP).unwrap_or(key));
        }
        Some(v) => {
            q.bind(&format!(" AND {column} = ?"), v);
        }
        None => {}
    }
}

/// Every `stem SEP ...` on `column`: from `stem SEP` up to `stem ' '` (SEP sorts before every
/// printable character).
fn stem_range(q: &mut TenantSql, column: &str, stem: &str) {
    q.bind(
        &format!(" AND {column} >= ?"),
        format!("{stem}{}", visits::SEP),
    )
    .bind(&format!(" AND {column} < ?"), format!("{stem} "));
}

/// The rows of `dim` in `visit_daily` over the UTC days `[from, to)` (`to` included with `through`).
fn daily_rows(q: &mut TenantSql, s: &Slice, from: i64, to: i64, through: bool) {
    q.from("visit_daily", "")
        .bind(" AND dim = ?", visits::dim_code(s.dim))
        .bind(" AND day >= ?", from)
        .bind(
            if through {
                " AND day <= ?"
            } else {
                " AND day < ?"
            },
            to,
        );
    slice_filters(q, s);
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
        let mut q = TenantSql::new(s.tenant);
        q.push(&format!("SELECT day AS t, {measures}"));
        daily_rows(&mut q, s, *first, *last, true);
        q.push(" GROUP BY day");
        statements.push(q.finish());
    }
    if !partial.is_empty() {
        // The hours the pieces take from partial days.
        let mut ranges = Vec::new();
        for b in &buckets {
            for &(a, z) in b.current.iter().chain(&b.previous) {
                let mut d = day_of(a);
                while d < z {
                    if partial.contains(&d) {
                        ranges.push((a.max(d), z.min(d + DAY)));
                    }
                    d += DAY;
                }
            }
        }
        let mut q = TenantSql::new(s.tenant);
        q.push(&format!(
            "SELECT hour AS t, {measures}, SUM(visitors_first) AS visitors_first, SUM(visitors_last) AS visitors_last \
             FROM ("
        ));
        hourly_source(s, &merged(ranges), &mut q);
        q.push(") GROUP BY hour");
        statements.push(q.finish());
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
        let int =
            |r: &serde_json::Map<String, serde_json::Value>, n: &str| crate::sql::count(r.get(n));
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

/// The ` FROM ...` of one arm of [`arms`]: the slice's hourly rows of `[from, to)`, or its daily rows.
fn arm_rows(q: &mut TenantSql, s: &Slice, hourly: bool, from: i64, to: i64) {
    if hourly {
        q.push(" FROM (");
        hourly_source(s, &[(from, to)], q);
        q.push(")");
    } else {
        daily_rows(q, s, from, to, false);
    }
}

/// Per value (or per domain) over `[a, z)`: `k`, `visits`, `pageviews`, `bounces`, `duration` and exact
/// `visitors` (daily rows for whole UTC days; at a partial day's edges each visitor is counted at its
/// first hour of a prefix or its last hour of a suffix).
pub(crate) fn value_statement(s: &Slice, (a, z): Piece, by_domain: bool) -> Statement {
    let mut q = TenantSql::new(s.tenant);
    q.push("WITH w AS (");
    let key = if by_domain { "domain" } else { "value" };
    for (i, (hourly, from, to)) in arms(a, z).into_iter().enumerate() {
        if i > 0 {
            q.push(" UNION ALL ");
        }
        let visitors = if !hourly {
            "visitors"
        } else if from == day_of(from) {
            "visitors_first"
        } else if to == day_of(from) + DAY {
            "visitors_last"
        } else {
            "visitors"
        };
        q.push(&format!(
            "SELECT {key} AS k, visits, pageviews, bounces, duration, {visitors} AS u"
        ));
        arm_rows(&mut q, s, hourly, from, to);
    }
    q.push(
        ") SELECT k, SUM(visits) AS visits, SUM(pageviews) AS pageviews, SUM(bounces) AS bounces, \
         SUM(duration) AS duration, SUM(u) AS visitors FROM w GROUP BY k HAVING SUM(visits) > 0",
    );
    q.finish()
}

/// The property keys of a property-event slice ([`dim::PROP_EVENTS`], every value: `key SEP value`)
/// over one window: `k` (the key) and `visits` (the events that carried any value of the key; the
/// other measures 0), only keys with events in the window. Rows: days × values, never visits (the
/// edge hours older than the hourly rows kept come from `session_props`, as for every slice).
pub(crate) fn prop_key_statement(s: &Slice, (a, z): Piece) -> Statement {
    debug_assert!(s.dim == dim::PROP_EVENTS && s.value.is_none());
    let mut q = TenantSql::new(s.tenant);
    q.push("WITH w AS (");
    for (i, (hourly, from, to)) in arms(a, z).into_iter().enumerate() {
        if i > 0 {
            q.push(" UNION ALL ");
        }
        q.push("SELECT value AS v, visits");
        arm_rows(&mut q, s, hourly, from, to);
    }
    q.push(
        ") SELECT substr(v, 1, instr(v, char(31)) - 1) AS k, SUM(visits) AS visits, 0 AS pageviews, \
         0 AS bounces, 0 AS duration, 0 AS visitors FROM w GROUP BY 1 HAVING SUM(visits) > 0",
    );
    q.finish()
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
    let mut q = TenantSql::new(s.tenant);
    q.push("WITH w AS (");
    let windows = std::iter::once((current, 1)).chain(previous.map(|p| (p, 0)));
    let mut first = true;
    for ((a, z), cur) in windows {
        for (hourly, from, to) in arms(a, z) {
            if !first {
                q.push(" UNION ALL ");
            }
            first = false;
            q.push(&format!(
                "SELECT value AS k, visits AS v, pageviews AS h, {cur} AS c"
            ));
            arm_rows(&mut q, s, hourly, from, to);
        }
    }
    q.push(") SELECT k, SUM(v * c) AS visits, SUM(h * c) AS hits");
    if previous.is_some() {
        q.push(", SUM(v * (1 - c)) AS previous_visits, SUM(h * (1 - c)) AS previous_hits");
    }
    q.push(" FROM w GROUP BY k HAVING SUM(v * c) > 0 ORDER BY visits DESC, k")
        .bind(" LIMIT ?", limit)
        .bind(" OFFSET ?", skip);
    q.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_edge_hours_are_one_scan_per_range_and_one_covering_scan_beyond_four() {
        let d = 20_000 * DAY;
        let t = TenantId::for_tests("t").unwrap();
        let s = Slice::new(&t, dim::BROWSER, Some("chrome"), None, d + 60 * DAY);
        // Week boundaries in a zone off UTC: each a suffix and a prefix around a midnight.
        let ranges: Vec<Piece> = (0..6)
            .map(|w| (d + w * 7 * DAY - 3 * HOUR, d + w * 7 * DAY + 21 * HOUR))
            .collect();
        let scans = |ranges: &[Piece]| {
            let mut q = TenantSql::new(s.tenant);
            hourly_source(&s, ranges, &mut q);
            assert!(q.bind_count() <= 100);
            let sql = q.sql();
            (
                sql.matches("FROM sessions s").count(),
                sql.contains("visit_hourly"),
            )
        };
        assert_eq!(scans(&ranges[..4]), (4, false));
        assert_eq!(scans(&ranges), (1, false));
        // From the first hour kept on, the hourly rows.
        let recent = [(d + 59 * DAY - 3 * HOUR, d + 59 * DAY + 2 * HOUR)];
        assert_eq!(scans(&recent), (1, true));
    }

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
