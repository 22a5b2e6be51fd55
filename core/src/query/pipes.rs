//! One SQL plan per endpoint. All SQL text is static apart from the choice of clauses; every value is
//! bound, and the tenant is always the first bound value: statements are [`TenantSql`]s, whose
//! `from`/`from_joined` write and bind each tenant table's predicate.

use std::collections::BTreeMap;

use serde_json::Value;

use super::api::SegmentFilter;
use super::params::{Filters, Params};
use super::rollups::{self, KpiBucket, RollupKpis, Slice};
use super::timezone::{
    day_start, format_date, format_datetime, hour_label, local_day, offset_segments, to_local,
    Days, DAY,
};
use super::{Plan, QueryError, Request};
use crate::claims::TenantId;
use crate::rollup::visits::dim;
use crate::sql::{SqlValue, Statement, TenantSql};

/// Every pipe name [`plan`](super::plan) answers (and the list its 404 names).
pub const PIPES: &[&str] = &[
    "kpis",
    "kpis_summary",
    "trend",
    "current_visitors",
    "top_pages",
    "top_sources",
    "top_browsers",
    "top_devices",
    "top_locations",
    "top_os",
    "top_campaigns",
    "entry_pages",
    "exit_pages",
    "domains",
    "domain",
    "actions",
    "web_vitals_current",
    "web_vitals_routes",
    "web_vitals_distribution",
    "web_vitals_timeseries",
    "top_outbound_links",
    "top_file_downloads",
    "top_not_found_pages",
    "traffic_by_hour",
    "analytics_hits",
];

/// `current_visitors` counts sessions with a hit in this many seconds before `now`.
const CURRENT_WINDOW_SECS: i64 = 300;
/// `trend` covers this many minutes, the current one included.
const TREND_MINUTES: i64 = 30;
/// Offset changes in one query window beyond which we refuse (real zones have about two a year).
pub(super) const MAX_OFFSET_SEGMENTS: usize = 16;

/// The metrics of `kpis` per bucket: a bounce is a visit with one pageview; a visitor counts once per UTC
/// day it starts visits in (visitor ids rotate daily; the rollups count the same way).
const KPI_AGGREGATES: &str =
    ", COUNT(*) AS visits, COUNT(DISTINCT v || '|' || (CAST(t AS INTEGER) / 86400)) AS visitors, \
     SUM(pv) AS pageviews, SUM(pv = 1) AS bounces, SUM(d) AS duration FROM w GROUP BY bucket";

/// What [`super::assemble`] needs to shape each endpoint's rows.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    CurrentVisitors,
    /// `(UTC minute, local label)` for each of the 30 minutes.
    Trend(Vec<(i64, String)>),
    Kpis(KpiShape),
    /// kpis and kpis_summary over the visit rollups.
    RollupKpis(RollupKpis),
    Top(TopShape),
    Domains,
    Domain,
    Actions,
    /// The `web_vitals_*` endpoints (`super::vitals`).
    Vitals(super::vitals::Shape),
    /// Outbound links, downloads, 404 pages (`super::captures`).
    Captures(super::captures::Shape),
    /// `traffic_by_hour` (`super::hours`).
    Hours(super::hours::HourShape),
    /// `analytics_hits`: no statements; the worker reads the archive (`super::hits`).
    Hits(super::hits::HitsScan),
}

#[derive(Debug, Clone)]
pub(crate) struct KpiShape {
    pub(crate) hourly: bool,
    /// `(bucket number, label)` of every output row, oldest first, already cut at `now`.
    pub(crate) buckets: Vec<(i64, String)>,
    /// With `include_previous_period`: how far back the previous bucket of a bucket is.
    pub(crate) previous_shift: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct TopShape {
    /// Output names of the key columns.
    pub(crate) keys: Vec<&'static str>,
    pub(crate) previous: bool,
    /// The keys arrive packed in one column `k`, joined by [`crate::rollup::visits::SEP`].
    pub(crate) packed: bool,
}

/// The UTC window `[start, end)` of local dates `from..=to`, and of the period before it.
pub(super) struct Window {
    pub(super) from: Days,
    pub(super) to: Days,
    pub(super) start: i64,
    pub(super) end: i64,
    /// With `include_previous_period`: length in days, and the previous window's start.
    pub(super) previous: Option<(i64, i64)>,
}

impl Window {
    /// Where the statements' time filter starts: the previous window directly precedes this one.
    fn scan_start(&self) -> i64 {
        self.previous.map_or(self.start, |(_, s)| s)
    }
}

/// Pipes that take the dashboard filters, and so a saved segment.
fn takes_segment(pipe: &str) -> bool {
    matches!(pipe, "kpis" | "kpis_summary" | "traffic_by_hour") || top_spec(pipe).is_some()
}

pub(crate) fn plan(req: &Request) -> Result<Plan, QueryError> {
    plan_segmented(req, None)
}

/// [`plan`] with a saved segment: `(id, its stored filters)`.
pub(crate) fn plan_segmented(
    req: &Request,
    segment: Option<(i64, &Value)>,
) -> Result<Plan, QueryError> {
    let segment = match segment {
        None => None,
        Some(_) if !takes_segment(req.pipe) => {
            return Err(QueryError::invalid(
                "segment",
                "is taken only by kpis, kpis_summary and the top lists",
            ))
        }
        Some((id, stored)) => Some(SegmentFilter::parse(id, stored)?),
    };
    let p = Params::new(req.params, req.fixed)
        .for_tenant(req.tenant)
        .with_segment(segment.as_ref());
    let tenant = p.tenant()?;
    let tz_name = super::timezone_param(req.params, req.fixed)?;
    let mut key = BTreeMap::new();
    let (statements, shape) = match req.pipe {
        "current_visitors" => current_visitors(req, &p, tenant, &mut key)?,
        "trend" => trend(req, &p, tenant, &mut key)?,
        "kpis" => kpis(req, &p, tenant, false, &mut key)?,
        "kpis_summary" => kpis(req, &p, tenant, true, &mut key)?,
        "domains" | "domain" | "actions" => meta_pipe(req, &p, tenant, &mut key)?,
        "traffic_by_hour" => super::hours::plan(req, &p, tenant, &mut key)?,
        "analytics_hits" => super::hits::plan(req, &p, tenant, &mut key)?,
        pipe => match top_spec(pipe) {
            Some(spec) => top(req, &p, tenant, &spec, &mut key)?,
            None => match super::vitals::plan(req, &p, tenant, &mut key) {
                Some(planned) => planned.map(|(s, v)| (s, Shape::Vitals(v)))?,
                None => match super::captures::plan(req, &p, tenant, &mut key) {
                    Some(planned) => planned.map(|(s, c)| (s, Shape::Captures(c)))?,
                    None => return Err(QueryError::UnknownPipe(pipe.to_owned())),
                },
            },
        },
    };
    #[derive(serde::Serialize)]
    struct Key<'a> {
        tenant: &'a str,
        pipe: &'a str,
        params: &'a BTreeMap<String, String>,
        timezone: &'a str,
    }
    let key = serde_json::to_string(&Key {
        tenant: tenant.as_str(),
        pipe: req.pipe,
        params: &key,
        timezone: tz_name.as_deref().unwrap_or("UTC"),
    })
    .unwrap_or_default();
    Ok(Plan {
        statements,
        shape,
        key,
    })
}

pub(super) type Planned = (Vec<Statement>, Shape);

fn domain_filter(
    p: &Params,
    key: &mut BTreeMap<String, String>,
) -> Result<Option<String>, QueryError> {
    let domain = p.text(&["domain"])?.map(str::to_owned);
    if let Some(d) = &domain {
        key.insert("domain".into(), d.clone());
    }
    Ok(domain)
}

fn current_visitors(
    req: &Request,
    p: &Params,
    tenant: &TenantId,
    key: &mut BTreeMap<String, String>,
) -> Result<Planned, QueryError> {
    let domain = domain_filter(p, key)?;
    let since = req.now_secs - CURRENT_WINDOW_SECS;
    // Cached briefly by the worker; ten-second steps keep the key from changing every second.
    key.insert(
        "now".into(),
        (req.now_secs - req.now_secs.rem_euclid(10)).to_string(),
    );
    // Open visits hold every visit with a hit in the last hours (and a backend's goal events, which
    // have no page hit: `n`, the visit's pageviews, is 0).
    let mut q = TenantSql::new(tenant);
    q.push("SELECT COUNT(*) AS visits").from("open_visits", "");
    q.bind(" AND last_ts >= ?", since);
    q.push(" AND json_extract(state, '$.n') > 0");
    if let Some(d) = domain {
        q.bind(" AND domain = ?", d);
    }
    Ok((vec![q.finish()], Shape::CurrentVisitors))
}

fn trend(
    req: &Request,
    p: &Params,
    tenant: &TenantId,
    key: &mut BTreeMap<String, String>,
) -> Result<Planned, QueryError> {
    let domain = domain_filter(p, key)?;
    let last = req.now_secs - req.now_secs.rem_euclid(60);
    let first = last - (TREND_MINUTES - 1) * 60;
    key.insert("minute".into(), last.to_string());
    let minutes = (0..TREND_MINUTES)
        .map(|i| {
            let m = first + i * 60;
            (m, format_datetime(to_local(req.tz, m)))
        })
        .collect();
    let mut q = TenantSql::new(tenant);
    q.push("SELECT minute, COUNT(DISTINCT session_key) AS visits")
        .from("active_minutes", "");
    q.bind(" AND minute >= ?", first)
        .bind(" AND minute <= ?", last);
    if let Some(d) = domain {
        q.bind(" AND domain = ?", d);
    }
    q.push(" GROUP BY minute");
    Ok((vec![q.finish()], Shape::Trend(minutes)))
}

/// The date window, with the cache-key entries for it.
pub(super) fn window(
    req: &Request,
    p: &Params,
    key: &mut BTreeMap<String, String>,
) -> Result<Window, QueryError> {
    let today = local_day(req.tz, req.now_secs);
    let (from, to) = p.dates(today)?;
    key.insert("date_from".into(), format_date(from));
    key.insert("date_to".into(), format_date(to));
    let previous = if p.flag("include_previous_period") {
        key.insert("include_previous_period".into(), "true".into());
        let days = to - from + 1;
        Some((days, day_start(req.tz, from - days)))
    } else {
        None
    };
    Ok(Window {
        from,
        to,
        start: day_start(req.tz, from),
        end: day_start(req.tz, to + 1),
        previous,
    })
}

pub(super) fn filters(
    p: &Params,
    key: &mut BTreeMap<String, String>,
) -> Result<Filters, QueryError> {
    let f = Filters::from_params(p)?;
    f.key_entries(key);
    Ok(f)
}

/// `FROM sessions s WHERE …`: tenant, first-hit window and the filters.
pub(super) fn sessions_from(q: &mut TenantSql, start: i64, end: i64, f: &Filters) {
    q.from("sessions", "s");
    q.bind(" AND s.first_ts >= ?", start)
        .bind(" AND s.first_ts < ?", end);
    if let Some(d) = &f.domain {
        q.bind(" AND s.domain = ?", d.as_str());
    }
    for (col, v) in &f.session {
        q.bind(&format!(" AND s.{col} = ?"), v.as_str());
    }
    if let Some(path) = &f.pathname {
        q.push(" AND ");
        pages_of_sessions(q, start, end, "pv.pathname = ?", [path.as_str().into()]);
    }
    if let Some(segment) = &f.segment {
        segment.push_sql((start, end), q);
    }
    if let Some(goal) = &f.goal {
        goal_of_session(q, goal);
    }
}

/// `WITH w AS (SELECT t, d, pv, v …)`: the visits of `[start, end)` that kpis count (start, duration,
/// pageviews, visitor). A goal filter alone (or with the hostname) reads `session_goals`, so a
/// backend's converting visits without page hits count as they do in the `gl` rollup cells; with any
/// visit-attribute, page or segment filter they match nothing (they have no `sessions` row), as in
/// `/v0/query`.
fn kpi_visits(q: &mut TenantSql, start: i64, end: i64, f: &Filters) {
    match &f.goal {
        Some(goal) if f.session.is_empty() && f.pathname.is_none() && f.segment.is_none() => {
            q.push("WITH w AS (SELECT g.first_ts AS t, g.duration AS d, g.pageviews AS pv, g.visitor_id AS v")
                .from("session_goals", "g")
                .bind(" AND g.first_ts >= ?", start)
                .bind(" AND g.first_ts < ?", end)
                .bind(" AND g.goal = ?", goal.as_str());
            if let Some(d) = &f.domain {
                q.bind(" AND g.domain = ?", d.as_str());
            }
        }
        _ => {
            q.push("WITH w AS (SELECT s.first_ts AS t, s.last_ts - s.first_ts AS d, s.pageviews AS pv, s.visitor_id AS v");
            sessions_from(q, start, end, f);
        }
    }
}

/// ` AND` whether the session `s` completed `goal`: its `session_goals` row, by primary key.
fn goal_of_session(q: &mut TenantSql, goal: &str) {
    q.push(" AND EXISTS (SELECT 1")
        .from("session_goals", "g")
        .push(" AND g.first_ts = s.first_ts AND g.session_key = s.session_key")
        .bind(" AND g.goal = ?)", goal);
}

/// `((s.first_ts, s.session_key) IN (…))`: whether a session of `[start, end)` viewed a page matching
/// `page_condition` (on `pv`, its `?`s bound to `values`). The pages of the window's sessions
/// are read once, from `start` to the window's last hit, and tied to their session by the session's
/// primary key (`first_ts - since_visit`, `session_key`): one scan, no per-session lookup and no index
/// on the session key (migration 0007).
pub(crate) fn pages_of_sessions(
    q: &mut TenantSql,
    start: i64,
    end: i64,
    page_condition: &str,
    values: impl IntoIterator<Item = SqlValue>,
) {
    q.push("((s.first_ts, s.session_key) IN (SELECT pv.first_ts - pv.since_visit, pv.session_key")
        .from("page_visits", "pv")
        .bind(" AND pv.first_ts >= ?", start)
        .push(" AND pv.first_ts <= (SELECT MAX(last_ts)")
        .from("sessions", "")
        .bind(" AND first_ts >= ?", start)
        .bind(" AND first_ts < ?", end)
        .push(")")
        .bind_all(&format!(" AND ({page_condition})))"), values);
}

/// `FROM page_visits pv WHERE …`: tenant, window and pathname on the page; domain and session-level
/// filters on the page's session.
pub(super) fn pages_from(q: &mut TenantSql, start: i64, end: i64, f: &Filters) {
    q.from("page_visits", "pv");
    q.bind(" AND pv.first_ts >= ?", start)
        .bind(" AND pv.first_ts < ?", end);
    if let Some(path) = &f.pathname {
        q.bind(" AND pv.pathname = ?", path.as_str());
    }
    if !f.session.is_empty() || f.domain.is_some() || f.segment.is_some() || f.goal.is_some() {
        // The page's session by its primary key (migration 0007).
        q.push(" AND EXISTS (SELECT 1").from("sessions", "s").push(
            " AND s.first_ts = pv.first_ts - pv.since_visit AND s.session_key = pv.session_key",
        );
        if let Some(d) = &f.domain {
            q.bind(" AND s.domain = ?", d.as_str());
        }
        for (col, v) in &f.session {
            q.bind(&format!(" AND s.{col} = ?"), v.as_str());
        }
        if let Some(segment) = &f.segment {
            segment.push_sql((start, end), q);
        }
        if let Some(goal) = &f.goal {
            goal_of_session(q, goal);
        }
        q.push(")");
    }
}

/// `kpis`: one row per bucket (hourly for a single day, daily otherwise). `kpis_summary` (`summary`):
/// one row for the whole range, so unique visitors are counted over the range, not summed per bucket.
fn kpis(
    req: &Request,
    p: &Params,
    tenant: &TenantId,
    summary: bool,
    key: &mut BTreeMap<String, String>,
) -> Result<Planned, QueryError> {
    let w = window(req, p, key)?;
    let f = filters(p, key)?;
    let series = !summary && w.from != w.to;
    if let Some(slice) = kpi_slice(tenant, req.now_secs, &f)
        .filter(|s| !(series && rollups::series_reads_visits(s, req.tz, w.from, w.to)))
    {
        return Ok(rollup_kpis(req, &w, &slice, summary));
    }
    if summary {
        return Ok((
            vec![kpi_summary_statement(
                tenant,
                &f,
                (w.scan_start(), w.end),
                w.start,
            )],
            Shape::Kpis(KpiShape {
                hourly: false,
                buckets: vec![(1, format_date(w.from))],
                previous_shift: w.previous.map(|_| 1),
            }),
        ));
    }
    let hourly = w.from == w.to;
    let tz = req.tz;

    // Output buckets, cut at now. Bucket numbers are local seconds / bucket length, as SQL computes.
    // The local hour now is in, by the hour rule of `timezone::day_start`.
    let local_now = hour_label(tz, req.now_secs - req.now_secs.rem_euclid(3600));
    let buckets: Vec<(i64, String)> = if hourly {
        (0..24)
            .map(|h| w.from * DAY + h * 3600)
            .filter(|local| *local <= local_now)
            .map(|local| (local / 3600, format_datetime(local)))
            .collect()
    } else {
        (w.from..=w.to)
            .filter(|d| *d * DAY <= local_now)
            .map(|d| (d, format_date(d)))
            .collect()
    };
    let previous_shift = w
        .previous
        .map(|(days, _)| if hourly { 24 * days } else { days });

    let segments = kpi_offsets(tz, (w.scan_start(), w.end))?;
    Ok((
        vec![kpi_series_statement(
            tenant,
            &f,
            (w.scan_start(), w.end),
            &segments,
            hourly,
        )],
        Shape::Kpis(KpiShape {
            hourly,
            buckets,
            previous_shift,
        }),
    ))
}

/// kpis_summary's visit-level statement over the visits starting in `[a, b)`: bucket 1 for those
/// from `current` on (0: the previous period).
pub(super) fn kpi_summary_statement(
    tenant: &TenantId,
    f: &Filters,
    (a, b): (i64, i64),
    current: i64,
) -> Statement {
    let mut q = TenantSql::new(tenant);
    kpi_visits(&mut q, a, b, f);
    q.bind(") SELECT (t >= ?) AS bucket", current);
    q.push(KPI_AGGREGATES);
    q.finish()
}

/// The offsets in force over a kpis window, sampled daily (one zone lookup per day), as
/// [`offset_segments`].
pub(super) fn kpi_offsets(
    tz: &dyn super::timezone::TimeZone,
    (start, end): (i64, i64),
) -> Result<Vec<(i64, i32)>, QueryError> {
    let mut samples: Vec<i64> = (start..end).step_by(DAY as usize).collect();
    samples.push(end);
    let segments = offset_segments(tz, &samples);
    if segments.len() > MAX_OFFSET_SEGMENTS {
        return Err(QueryError::invalid(
            "timezone",
            "changes its UTC offset too often in this date range; use a shorter range",
        ));
    }
    Ok(segments)
}

/// kpis' visit-level statement over the visits starting in `[a, b)`, bucketed by local hour
/// (`hourly`) or day under the offsets `segments` ([`kpi_offsets`] of the whole window).
pub(super) fn kpi_series_statement(
    tenant: &TenantId,
    f: &Filters,
    (a, b): (i64, i64),
    segments: &[(i64, i32)],
    hourly: bool,
) -> Statement {
    let mut q = TenantSql::new(tenant);
    kpi_visits(&mut q, a, b, f);
    // D1 binds numbers as REAL: cast back to integers before dividing into buckets. The local hour of a
    // visit is that of its UTC hour's start rounded up (the rule of `timezone::day_start`).
    q.push(") SELECT (CAST(t AS INTEGER) / 3600 * 3600 + CAST(");
    if let [(_, offset)] = segments {
        q.bind("?", i64::from(*offset));
    } else {
        q.push("CASE");
        for (until, offset) in &segments[..segments.len() - 1] {
            q.bind(" WHEN t < ?", *until)
                .bind(" THEN ?", i64::from(*offset));
        }
        q.bind(" ELSE ? END", i64::from(segments[segments.len() - 1].1));
    }
    q.push(if hourly {
        " AS INTEGER) + 3599) / 3600"
    } else {
        " AS INTEGER) + 3599) / 86400"
    });
    q.push(" AS bucket");
    q.push(KPI_AGGREGATES);
    q.finish()
}

/// A top list: its rows come from `sessions` or `page_visits`, grouped by `keys` (`column`, output name).
pub(crate) struct TopSpec {
    /// The rollup dimension that answers it unfiltered.
    dim: &'static str,
    pub(super) pages: bool,
    pub(super) keys: &'static [(&'static str, &'static str)],
    /// Rows whose first key is empty are left out.
    pub(super) skip_empty: bool,
}

pub(super) fn top_spec(pipe: &str) -> Option<TopSpec> {
    let s = |dim, keys, skip_empty| {
        Some(TopSpec {
            dim,
            pages: false,
            keys,
            skip_empty,
        })
    };
    match pipe {
        "top_pages" => Some(TopSpec {
            dim: dim::PAGE,
            pages: true,
            keys: &[("pv.pathname", "pathname")],
            skip_empty: false,
        }),
        // '' is direct traffic, kept as the kit does.
        "top_sources" => s(dim::SOURCE, &[("s.source", "referrer")], false),
        "top_browsers" => s(dim::BROWSER, &[("s.browser", "browser")], false),
        "top_devices" => s(dim::DEVICE, &[("s.device", "device")], false),
        "top_locations" => s(dim::COUNTRY, &[("s.country", "location")], false),
        "top_os" => s(dim::OS, &[("s.os", "os")], false),
        "top_campaigns" => s(
            dim::CAMPAIGN,
            &[
                ("s.utm_campaign", "utm_campaign"),
                ("s.utm_source", "utm_source"),
                ("s.utm_medium", "utm_medium"),
            ],
            true,
        ),
        "entry_pages" => s(dim::ENTRY, &[("s.entry_path", "pathname")], false),
        "exit_pages" => s(dim::EXIT, &[("s.exit_path", "pathname")], false),
        _ => None,
    }
}

/// Visits are sessions (or page visits for `top_pages`), hits their pageviews (or page hits).
fn top(
    req: &Request,
    p: &Params,
    tenant: &TenantId,
    spec: &TopSpec,
    key: &mut BTreeMap<String, String>,
) -> Result<Planned, QueryError> {
    let w = window(req, p, key)?;
    let f = filters(p, key)?;
    let (skip, limit) = p.page()?;
    key.insert("skip".into(), skip.to_string());
    key.insert("limit".into(), limit.to_string());
    if let Some(slice) = top_slice(tenant, req.now_secs, spec, &f) {
        let previous = w.previous.map(|(_, s)| (s, w.start));
        let q = rollups::top_statement(&slice, (w.start, w.end), previous, skip, limit);
        let shape = TopShape {
            keys: spec.keys.iter().map(|(_, n)| *n).collect(),
            previous: w.previous.is_some(),
            packed: true,
        };
        return Ok((vec![q], Shape::Top(shape)));
    }

    let keys: Vec<String> = (0..spec.keys.len()).map(|i| format!("k{i}")).collect();
    let mut q = TenantSql::new(tenant);
    q.push("WITH w AS (SELECT ");
    for (i, (col, _)) in spec.keys.iter().enumerate() {
        q.push(&format!("{col} AS k{i}, "));
    }
    q.push(if spec.pages {
        "pv.hits AS h, pv.first_ts AS t"
    } else {
        "s.pageviews AS h, s.first_ts AS t"
    });
    if spec.pages {
        pages_from(&mut q, w.scan_start(), w.end, &f);
    } else {
        sessions_from(&mut q, w.scan_start(), w.end, &f);
    }
    if spec.skip_empty {
        q.push(&format!(" AND {} <> ''", spec.keys[0].0));
    }
    q.push(") SELECT ");
    for (i, (_, name)) in spec.keys.iter().enumerate() {
        q.push(&format!("k{i} AS {name}, "));
    }
    if w.previous.is_some() {
        q.bind("SUM(t >= ?) AS visits", w.start);
        q.bind(", SUM(CASE WHEN t >= ? THEN h ELSE 0 END) AS hits", w.start);
        q.bind(", SUM(t < ?) AS previous_visits", w.start);
        q.bind(
            ", SUM(CASE WHEN t < ? THEN h ELSE 0 END) AS previous_hits",
            w.start,
        );
        q.push(&format!(
            " FROM w GROUP BY {} HAVING visits > 0",
            keys.join(", ")
        ));
    } else {
        q.push(&format!(
            "COUNT(*) AS visits, SUM(h) AS hits FROM w GROUP BY {}",
            keys.join(", ")
        ));
    }
    q.push(&format!(" ORDER BY visits DESC, {}", keys.join(", ")));
    q.bind(" LIMIT ?", limit).bind(" OFFSET ?", skip);
    let shape = TopShape {
        keys: spec.keys.iter().map(|(_, n)| *n).collect(),
        previous: w.previous.is_some(),
        packed: false,
    };
    Ok((vec![q.finish()], Shape::Top(shape)))
}

/// The rollup slice that answers kpis with these filters: none or one besides `domain`.
pub(super) fn kpi_slice<'a>(tenant: &'a TenantId, now: i64, f: &'a Filters) -> Option<Slice<'a>> {
    if f.segment.is_some() {
        return None;
    }
    let (d, value) = match (&f.pathname, f.session.as_slice(), &f.goal) {
        (None, [], None) => (dim::ALL, None),
        (None, [], Some(g)) => (dim::GOAL, Some(g.as_str())),
        (Some(p), [], None) => (dim::VIEWED, Some(p.as_str())),
        (None, [(col, v)], None) => (rollups::session_dim(col)?, Some(v.as_str())),
        _ => return None,
    };
    Some(Slice::new(tenant, d, value, f.domain.as_deref(), now))
}

/// The rollup slice that answers a top list with these filters: none besides `domain`, or one on the
/// list's own dimension.
pub(super) fn top_slice<'a>(
    tenant: &'a TenantId,
    now: i64,
    spec: &TopSpec,
    f: &'a Filters,
) -> Option<Slice<'a>> {
    if f.segment.is_some() || f.goal.is_some() {
        return None;
    }
    let value = match (&f.pathname, f.session.as_slice()) {
        (None, []) => None,
        (Some(p), []) if spec.dim == dim::PAGE => Some(p.as_str()),
        (None, [(col, v)]) if rollups::session_dim(col) == Some(spec.dim) => Some(v.as_str()),
        _ => return None,
    };
    Some(Slice::new(
        tenant,
        spec.dim,
        value,
        f.domain.as_deref(),
        now,
    ))
}

/// kpis (one row per local hour of a single day, else per local day, cut at now) or kpis_summary (one
/// row for the range) over the visit rollups.
fn rollup_kpis(req: &Request, w: &Window, slice: &Slice, summary: bool) -> Planned {
    let tz = req.tz;
    // The local hour now is in, by the hour rule of `timezone::day_start`.
    let local_now = hour_label(tz, req.now_secs - req.now_secs.rem_euclid(3600));
    let days = w.previous.map(|(d, _)| d);
    let hourly = !summary && w.from == w.to;
    let buckets: Vec<KpiBucket> = if summary {
        vec![KpiBucket {
            label: format_date(w.from),
            current: vec![(w.start, w.end)],
            previous: w
                .previous
                .map(|(_, s)| vec![(s, w.start)])
                .unwrap_or_default(),
        }]
    } else if hourly {
        // Every UTC hour of both days, by its local label.
        let mut by_label: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
        let mut u = w.scan_start();
        while u < w.end {
            by_label
                .entry(hour_label(tz, u))
                .or_default()
                .push((u, u + 3600));
            u += 3600;
        }
        (0..24)
            .map(|h| w.from * DAY + h * 3600)
            .filter(|local| *local <= local_now)
            .map(|local| KpiBucket {
                label: format_datetime(local),
                current: by_label.get(&local).cloned().unwrap_or_default(),
                previous: days
                    .and_then(|d| by_label.get(&(local - d * DAY)).cloned())
                    .unwrap_or_default(),
            })
            .collect()
    } else {
        (w.from..=w.to)
            .filter(|d| *d * DAY <= local_now)
            .map(|d| KpiBucket {
                label: format_date(d),
                current: vec![(day_start(tz, d), day_start(tz, d + 1))],
                previous: days
                    .map(|n| vec![(day_start(tz, d - n), day_start(tz, d - n + 1))])
                    .unwrap_or_default(),
            })
            .collect()
    };
    let (statements, shape) = rollups::kpi_statements(slice, hourly, days.is_some(), buckets);
    (statements, Shape::RollupKpis(shape))
}

fn meta_pipe(
    req: &Request,
    p: &Params,
    tenant: &TenantId,
    key: &mut BTreeMap<String, String>,
) -> Result<Planned, QueryError> {
    let domain = domain_filter(p, key)?;
    let (columns, table, shape) = match req.pipe {
        "domains" => (
            "domain, first_seen, last_seen, total_hits",
            "domains",
            Shape::Domains,
        ),
        "domain" => ("domain", "domains", Shape::Domain),
        _ => (
            "domain, action, last_payload, last_seen, total AS total_occurrences",
            "actions",
            Shape::Actions,
        ),
    };
    let mut q = TenantSql::new(tenant);
    q.push(&format!("SELECT {columns}")).from(table, "");
    if let Some(d) = domain {
        q.bind(" AND domain = ?", d);
    }
    match shape {
        Shape::Domains => {
            q.push(" ORDER BY total_hits DESC, domain");
        }
        Shape::Domain => {
            // The kit's `domain`: the most-hit domain seen in the last hour, else the most-hit one.
            let hour_ago = req.now_secs - 3600;
            key.insert(
                "hour".into(),
                (hour_ago - hour_ago.rem_euclid(3600)).to_string(),
            );
            q.bind(
                " ORDER BY last_seen >= ? DESC, total_hits DESC, domain LIMIT 1",
                hour_ago,
            );
        }
        _ => {
            if let Some(filter) = p.text(&["action_filter"])? {
                key.insert("action_filter".into(), filter.to_owned());
                q.bind(
                    " AND action LIKE ? ESCAPE '\\'",
                    format!("%{}%", escape_like(filter)),
                );
            }
            q.push(" ORDER BY last_seen DESC, domain, action");
        }
    }
    Ok((vec![q.finish()], shape))
}

/// Escapes `\`, `%` and `_` so a LIKE pattern matches them literally (with `ESCAPE '\'`).
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::timezone::tests::TestDst;
    use super::super::timezone::{parse_date, TimeZone};
    use super::super::FixedOffset;
    use super::*;
    use crate::claims::TenantId;

    fn fixed(tenant: &str) -> BTreeMap<String, String> {
        [("tenant_id".to_owned(), tenant.to_owned())]
            .into_iter()
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const NOW: i64 = 1_755_081_662; // 2025-08-13 10:41:02 UTC

    fn plan_with(
        pipe: &str,
        params: &[(&str, &str)],
        fixed: &BTreeMap<String, String>,
        tz: &dyn TimeZone,
    ) -> Result<Plan, QueryError> {
        let params = pairs(params);
        let tenant = fixed
            .get("tenant_id")
            .and_then(|t| TenantId::for_tests(t))
            .expect("the tests' fixed params name a valid tenant");
        plan(&Request {
            pipe,
            params: &params,
            tenant: &tenant,
            fixed,
            now_secs: NOW,
            tz,
        })
    }

    #[test]
    fn every_statement_binds_the_tenant_first() {
        let f = fixed("acme");
        let params = [
            ("tenant_id", "evil"),
            ("domain", "x.com"),
            ("browser", "firefox"),
            ("pathname", "/a"),
            ("include_previous_period", "true"),
        ];
        for pipe in PIPES {
            let plan = plan_with(pipe, &params, &f, &TestDst).unwrap();
            for s in &plan.statements {
                assert_eq!(
                    s.binds.first(),
                    Some(&SqlValue::Text("acme".into())),
                    "{pipe}: {}",
                    s.sql
                );
                assert!(!s.binds.contains(&SqlValue::Text("evil".into())), "{pipe}");
                assert!(s.sql.contains("tenant_id = ?"), "{pipe}");
                assert!(
                    !s.sql.contains("x.com") && !s.sql.contains("firefox"),
                    "values are bound: {}",
                    s.sql
                );
                assert!(s.binds.len() < 100, "D1's bind limit");
            }
        }
    }

    #[test]
    fn unknown_pipe_is_404_and_lists_the_pipes() {
        let e = plan_with("top_secrets", &[], &fixed("a"), &FixedOffset(0)).unwrap_err();
        assert_eq!(e.status(), 404);
        assert!(e.message().contains("top_pages"));
    }

    #[test]
    fn the_tenant_is_the_verified_one_never_a_parameter() {
        // The planner takes the verified `TenantId`: a `tenant_id` in the fixed params or the request
        // is ignored, and every statement binds the verified tenant first.
        let acme = TenantId::for_tests("acme").unwrap();
        let params = pairs(&[("tenant_id", "evil")]);
        let p = plan(&Request {
            pipe: "kpis",
            params: &params,
            tenant: &acme,
            fixed: &fixed("evil"),
            now_secs: NOW,
            tz: &FixedOffset(0),
        })
        .unwrap();
        assert!(p
            .statements
            .iter()
            .all(|s| s.binds.first() == Some(&SqlValue::Text("acme".into()))));
    }

    #[test]
    fn cache_keys_separate_tenants_and_params_but_not_order() {
        let utc = FixedOffset(0);
        let a = [
            ("date_from", "2025-08-01"),
            ("date_to", "2025-08-10"),
            ("browser", "firefox"),
            ("unused", "1"),
        ];
        let b = [
            ("browser", "firefox"),
            ("unused", "2"),
            ("date_to", "2025-08-10"),
            ("date_from", "2025-08-01"),
        ];
        let key = |pipe, params: &[(&str, &str)], tenant| {
            plan_with(pipe, params, &fixed(tenant), &utc)
                .unwrap()
                .cache_key()
        };
        assert_eq!(key("top_pages", &a, "t1"), key("top_pages", &b, "t1"));
        assert_ne!(key("top_pages", &a, "t1"), key("top_pages", &a, "t2"));
        assert_ne!(key("top_pages", &a, "t1"), key("top_sources", &a, "t1"));
        assert_eq!(
            key("top_pages", &a, "t1"),
            key("top_pages", &a[..3], "t1"),
            "unused params are ignored"
        );
        assert_ne!(key("top_pages", &a, "t1"), key("top_pages", &a[1..], "t1"));
        assert_ne!(
            key("top_pages", &a, "t1"),
            key("top_pages", &[("limit", "10")], "t1")
        );
        // Defaults are resolved: an explicit default equals an absent one.
        assert_eq!(
            key("top_pages", &[("limit", "50")], "t1"),
            key("top_pages", &[], "t1")
        );
        // A tenant id that could forge another key cannot even be constructed.
        assert!(TenantId::for_tests("t1\",\"pipe").is_none());
        let tz = |name: &str| {
            let params = pairs(&[("timezone", name)]);
            plan(&Request {
                pipe: "kpis",
                params: &params,
                tenant: &TenantId::for_tests("t1").unwrap(),
                fixed: &fixed("t1"),
                now_secs: NOW,
                tz: &utc,
            })
            .unwrap()
            .cache_key()
        };
        assert_ne!(tz("Europe/Berlin"), tz("UTC"));
        assert!(key("kpis", &[], "t1").starts_with("{\"tenant\":\"t1\""));
    }

    #[test]
    fn kpi_buckets_are_local_and_cut_at_now() {
        let f = fixed("a");
        let plan = plan_with(
            "kpis",
            &[("date_from", "2025-08-13"), ("date_to", "2025-08-13")],
            &f,
            &FixedOffset(7200),
        )
        .unwrap();
        let Shape::RollupKpis(k) = &plan.shape else {
            panic!()
        };
        assert!(k.hourly);
        // 10:41 UTC is 12:41 at +2h: hours 00..=12, each one UTC hour.
        assert_eq!(k.buckets.len(), 13);
        assert_eq!(k.buckets[12].label, "2025-08-13 12:00:00");
        assert_eq!(
            k.buckets[12].current,
            vec![(NOW - NOW % 3600, NOW - NOW % 3600 + 3600)]
        );
        let plan = plan_with("kpis", &[], &f, &FixedOffset(0)).unwrap();
        let Shape::RollupKpis(k) = &plan.shape else {
            panic!()
        };
        assert_eq!(k.buckets.first().unwrap().label, "2025-08-06");
        assert_eq!(k.buckets.last().unwrap().label, "2025-08-13");
        assert!(
            k.daily_stmt && !k.hourly_stmt,
            "UTC days are read from daily rows"
        );
        // Two filters: the visit-level path, with the same buckets.
        let two = [("browser", "firefox"), ("os", "linux")];
        let plan = plan_with("kpis", &two, &f, &FixedOffset(0)).unwrap();
        let Shape::Kpis(k) = &plan.shape else {
            panic!()
        };
        assert_eq!(k.buckets.last().unwrap().1, "2025-08-13");
    }

    #[test]
    fn kpi_window_across_dst_uses_both_offsets() {
        let plan = plan_with(
            "kpis",
            &[
                ("date_from", "2025-03-20"),
                ("date_to", "2025-04-05"),
                ("browser", "firefox"),
                ("os", "linux"),
            ],
            &fixed("a"),
            &TestDst,
        )
        .unwrap();
        let s = &plan.statements[0];
        assert!(
            s.sql.contains("FROM sessions"),
            "two filters: the visit-level path"
        );
        let start = day_start(&TestDst, parse_date("2025-03-20").unwrap());
        assert!(s.binds.contains(&SqlValue::Int(start)));
        assert!(s.binds.contains(&SqlValue::Int(3600)) && s.binds.contains(&SqlValue::Int(7200)));
        assert!(s
            .binds
            .contains(&SqlValue::Int(super::super::timezone::tests::SPRING)));
    }

    #[test]
    fn action_filter_escapes_wildcards() {
        assert_eq!(escape_like("50%_off\\"), "50\\%\\_off\\\\");
        let plan = plan_with(
            "actions",
            &[("action_filter", "a_b")],
            &fixed("a"),
            &FixedOffset(0),
        )
        .unwrap();
        assert_eq!(
            plan.statements[0].binds[1],
            SqlValue::Text("%a\\_b%".into())
        );
    }
}
