//! Visit-level reads answered from visit segments ([`crate::segment`]) for the sealed UTC days and
//! from SQL for the other days, merged into exactly the rows the visit-level statement would return:
//! the top lists and kpis / kpis_summary with dashboard filters ([`scan_route`]) and `POST /v0/query`
//! ([`query_route`]). Each says whether a request can take this path, [`ScanRoute::sql`] plans the
//! SQL part, [`ScanRoute::assemble`] / [`ScanRoute::assemble_query`] merge.
//!
//! The parts are split by the visit's first hit: a sealed day's segment holds the visits that start
//! that day with all their pages, so the scan counts those (in the request's window: the page's
//! first hit for `top_pages`, the visit's otherwise) and the SQL counts the visits starting on the
//! other days, grouped as the visit-level statement groups but without order or limit, so the parts
//! add up (visitors are distinct per UTC day on both sides); the merged groups are then ranked, cut
//! and shaped by the request's own plan. Windows are whole UTC hours in every zone
//! (`timezone::day_start`), and the scan windows visits to the second, so a range starting mid-day
//! (any zone's midnight) reads the sealed day's segment for its part of that day.
//!
//! Routed (`Some`): the top lists with dashboard filters (`domain`, `pathname`, the session
//! columns); kpis and kpis_summary when their plan reads the visit rows (several filters, or one the
//! rollups cannot serve), hourly, daily or summed, in any zone: a visit's local bucket is computed
//! from its first hit by the statement's own rule (its UTC hour's start plus the offset in force,
//! rounded up to the hour), so spans of first hits map to buckets exactly; `/v0/query` on the
//! visit rows with visit, hostname and page filters (and, or, not; every operator) grouped by
//! nothing, a visit column, the hostname or `time:hour|day|week|month`. Not routed (`None`): a saved
//! segment on a pipe, a goal filter, `include_previous_period` / comparisons, `/v0/query` with goals,
//! properties or funnel steps, and every request the rollups answer.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::api::{self, ApiPlan, Dimension, Grain};
use super::params::{Filters, Params};
use super::pipes::{self, kpi_slice, top_slice, top_spec};
use super::rollups;
use super::timezone::{civil_from_days, format_date, format_datetime, TimeZone};
use super::{Output, Plan, QueryError, Request};
use crate::claims::TenantId;
use crate::segment::{cells, Column, Filter, Group, Op, Partial, PathFilter, Query, Sums, Target};
use crate::sql::{Statement, TenantSql};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// How `pipes::pages_from` names the pages table, and the same reading migration 0020's partial
/// index of pages at least a day after their visit's first hit. Named because SQLite without
/// statistics (D1 keeps none) prefers the primary key's range over the window to it, reading every
/// page of the window: 500 ms for the largest tenant at 10M (BENCHMARKS.md "Visit segments").
const PAGES_FROM: &str = " FROM page_visits pv WHERE ";
const LONG_PAGES: &str = " FROM page_visits pv INDEXED BY page_visits_after_a_day WHERE ";

/// A visit-level read the segment scan can answer, with what merging its parts needs.
pub struct ScanRoute<'a> {
    tenant: TenantId,
    query: Query,
    kind: Kind<'a>,
}

impl std::fmt::Debug for ScanRoute<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanRoute")
            .field("tenant", &self.tenant)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

/// What the request is, for the SQL part and the merge.
enum Kind<'a> {
    /// A top list.
    Top {
        pages: bool,
        /// `(sessions or page_visits column, output name)` of the keys.
        keys: &'static [(&'static str, &'static str)],
        skip_empty: bool,
        filters: Filters,
        skip: i64,
        limit: i64,
    },
    /// kpis (`series`: the offsets of the window and whether hourly) or kpis_summary (`None`);
    /// `buckets[i]`: the bucket of the scan's span `i`.
    Kpis {
        filters: Filters,
        series: Option<(Vec<(i64, i32)>, bool)>,
        buckets: Vec<i64>,
    },
    /// `POST /v0/query`; `labels[i]`: the key of the scan's span `i` (time grain).
    Api {
        tz: &'a dyn TimeZone,
        visits: &'a VisitQuery,
        labels: Vec<String>,
    },
}

/// The visit-level part of a `/v0/query` plan that [`query_route`] may answer from segments: one
/// window, no comparison, no goal, property or funnel statement (set by `api::plan_query`).
#[derive(Debug, Clone)]
pub(crate) struct VisitQuery {
    /// `[start, end)` on the visit's first hit, UTC seconds.
    pub(crate) window: (i64, i64),
    pub(crate) grain: Option<Grain>,
    pub(crate) group: Option<Dimension>,
    /// AND-ed.
    pub(crate) filters: Vec<api::Filter>,
}

/// The scan route of a pipe request, if it can take one (see the module docs).
pub fn scan_route<'a>(req: &Request<'a>) -> Result<Option<ScanRoute<'a>>, QueryError> {
    match req.pipe {
        "kpis" | "kpis_summary" => kpi_route(req, req.pipe == "kpis_summary"),
        _ => top_route(req),
    }
}

/// The dashboard filters (not a saved segment, not a goal) as scan filters, or `None`.
fn dashboard_filters(f: &Filters) -> Option<Vec<Filter>> {
    if f.segment.is_some() || f.goal.is_some() {
        return None;
    }
    let mut filters = Vec::new();
    if let Some(d) = &f.domain {
        filters.push(is(Column::Domain, d));
    }
    for (col, v) in &f.session {
        filters.push(is(Column::from_sessions(col)?, v));
    }
    Some(filters)
}

fn is(col: Column, v: &str) -> Filter {
    Filter::Leaf {
        op: Op::Is,
        target: Target::Visit(col),
        values: vec![v.to_owned()],
        case_sensitive: true,
    }
}

fn viewed(path: &str) -> Filter {
    Filter::Leaf {
        op: Op::Is,
        target: Target::ViewedPage,
        values: vec![path.to_owned()],
        case_sensitive: true,
    }
}

fn top_route<'a>(req: &Request<'a>) -> Result<Option<ScanRoute<'a>>, QueryError> {
    let Some(spec) = top_spec(req.pipe) else {
        return Ok(None);
    };
    let p = Params::new(req.params, req.fixed).for_tenant(req.tenant);
    let tenant = p.tenant()?;
    let mut key = BTreeMap::new();
    let w = pipes::window(req, &p, &mut key)?;
    let f = pipes::filters(&p, &mut key)?;
    let (skip, limit) = p.page()?;
    if w.previous.is_some() || top_slice(tenant, req.now_secs, &spec, &f).is_some() {
        return Ok(None);
    }
    let Some(mut filters) = dashboard_filters(&f) else {
        return Ok(None);
    };
    let group = if spec.pages {
        Group::Pages(f.pathname.as_ref().map(|p| PathFilter {
            op: Op::Is,
            values: vec![p.clone()],
            case_sensitive: true,
        }))
    } else {
        if let Some(p) = &f.pathname {
            filters.push(viewed(p));
        }
        let mut cols = Vec::new();
        for (col, _) in spec.keys {
            let Some(c) = col.strip_prefix("s.").and_then(Column::from_sessions) else {
                return Ok(None);
            };
            cols.push(c);
        }
        Group::Visits(cols)
    };
    if spec.skip_empty {
        if let Group::Visits(cols) = &group {
            filters.push(Filter::Not(Box::new(is(cols[0], ""))));
        }
    }
    Ok(Some(ScanRoute {
        tenant: tenant.clone(),
        query: Query {
            window: (w.start, w.end),
            filters,
            group,
        },
        kind: Kind::Top {
            pages: spec.pages,
            keys: spec.keys,
            skip_empty: spec.skip_empty,
            filters: f,
            skip,
            limit,
        },
    }))
}

/// kpis / kpis_summary on the visit-level path (the same test as `pipes::kpis`).
fn kpi_route<'a>(req: &Request<'a>, summary: bool) -> Result<Option<ScanRoute<'a>>, QueryError> {
    let p = Params::new(req.params, req.fixed).for_tenant(req.tenant);
    let tenant = p.tenant()?;
    let mut key = BTreeMap::new();
    let w = pipes::window(req, &p, &mut key)?;
    let f = pipes::filters(&p, &mut key)?;
    let series = !summary && w.from != w.to;
    let rollup = kpi_slice(tenant, req.now_secs, &f)
        .filter(|s| !(series && rollups::series_reads_visits(s, req.tz, w.from, w.to)))
        .is_some();
    if rollup || w.previous.is_some() {
        return Ok(None);
    }
    let Some(mut filters) = dashboard_filters(&f) else {
        return Ok(None);
    };
    if let Some(p) = &f.pathname {
        filters.push(viewed(p));
    }
    let window = (w.start, w.end);
    let (group, series, buckets) = if summary {
        (Group::Visits(Vec::new()), None, vec![1])
    } else {
        let hourly = w.from == w.to;
        let offsets = pipes::kpi_offsets(req.tz, window)?;
        let per = if hourly { HOUR } else { DAY };
        let (edges, buckets) = spans(&offsets, window, |local| local / per);
        (
            Group::Timed(edges, Vec::new()),
            Some((offsets, hourly)),
            buckets,
        )
    };
    Ok(Some(ScanRoute {
        tenant: tenant.clone(),
        query: Query {
            window,
            filters,
            group,
        },
        kind: Kind::Kpis {
            filters: f,
            series,
            buckets,
        },
    }))
}

/// The spans of `[start, end)` within which every first hit `t` gets the same bucket under the
/// visit-level statements' rule: `bucket((t / 3600 * 3600 + offset(t) + 3599) / 3600 * 3600)`, the
/// offset being that of the first of `offsets` (`(until, offset)`, as `timezone::offset_segments`)
/// with `t < until`. Returns the spans' edges and each span's bucket (adjacent spans differ).
fn spans<K: PartialEq>(
    offsets: &[(i64, i32)],
    (start, end): (i64, i64),
    bucket: impl Fn(i64) -> K,
) -> (Vec<i64>, Vec<K>) {
    let mut cuts: Vec<i64> = offsets
        .iter()
        .map(|o| o.0)
        .filter(|u| *u > start && *u < end)
        .collect();
    let mut h = start.div_euclid(HOUR) * HOUR + HOUR;
    while h < end {
        cuts.push(h);
        h += HOUR;
    }
    cuts.push(start);
    cuts.push(end);
    cuts.sort_unstable();
    cuts.dedup();
    let mut edges: Vec<i64> = Vec::new();
    let mut keys: Vec<K> = Vec::new();
    for w in cuts.windows(2) {
        let t = w[0];
        let off = offsets
            .iter()
            .find(|(until, _)| t < *until)
            .map_or(0, |o| i64::from(o.1));
        let local = (t.div_euclid(HOUR) * HOUR + off + HOUR - 1).div_euclid(HOUR) * HOUR;
        let k = bucket(local);
        if keys.last() != Some(&k) {
            edges.push(t);
            keys.push(k);
        }
    }
    if !keys.is_empty() {
        edges.push(end);
    }
    (edges, keys)
}

/// A `/v0/query` time bucket's label, as `api::grouped_statement`'s SQL writes it, of a local hour's
/// start (seconds).
fn grain_label(grain: Grain, local: i64) -> String {
    let day = local.div_euclid(DAY);
    match grain {
        Grain::Hour => format_datetime(local - local.rem_euclid(HOUR)),
        Grain::Day => format_date(day),
        // The Monday on or before (1970-01-01 was a Thursday).
        Grain::Week => format_date(day - (day + 3).rem_euclid(7)),
        Grain::Month => {
            let (y, m, _) = civil_from_days(day);
            format!("{y:04}-{m:02}-01")
        }
    }
}

/// The scan route of a `/v0/query` plan, if it can take one (see the module docs); `tz`: the zone
/// the plan was made in.
pub fn query_route<'a>(
    plan: &'a ApiPlan,
    tenant: &TenantId,
    tz: &'a dyn TimeZone,
) -> Option<ScanRoute<'a>> {
    let v = plan.visits.as_ref()?;
    fn convert(f: &api::Filter) -> Option<Filter> {
        Some(match f {
            api::Filter::Leaf {
                op,
                dim,
                values,
                case_sensitive,
            } => Filter::Leaf {
                op: match op {
                    api::Op::Is => Op::Is,
                    api::Op::IsNot => Op::IsNot,
                    api::Op::Contains => Op::Contains,
                    api::Op::ContainsNot => Op::ContainsNot,
                },
                target: match dim {
                    Dimension::Visit(col, _) => Target::Visit(Column::from_sessions(col)?),
                    Dimension::Host => Target::Visit(Column::Domain),
                    Dimension::Page => Target::ViewedPage,
                    _ => return None,
                },
                values: values.clone(),
                case_sensitive: *case_sensitive,
            },
            api::Filter::And(l) => Filter::And(l.iter().map(convert).collect::<Option<_>>()?),
            api::Filter::Or(l) => Filter::Or(l.iter().map(convert).collect::<Option<_>>()?),
            api::Filter::Not(inner) => Filter::Not(Box::new(convert(inner)?)),
        })
    }
    let filters = v.filters.iter().map(convert).collect::<Option<Vec<_>>>()?;
    let cols = match v.group {
        None => Vec::new(),
        Some(Dimension::Visit(col, _)) => vec![Column::from_sessions(col)?],
        Some(Dimension::Host) => vec![Column::Domain],
        Some(_) => return None,
    };
    let (group, labels) = match v.grain {
        None => (Group::Visits(cols), Vec::new()),
        Some(g) => {
            let mut samples: Vec<i64> = (v.window.0..v.window.1).step_by(DAY as usize).collect();
            samples.push(v.window.1);
            let offsets = super::timezone::offset_segments(tz, &samples);
            let (edges, labels) = spans(&offsets, v.window, |local| grain_label(g, local));
            (Group::Timed(edges, cols), labels)
        }
    };
    Some(ScanRoute {
        tenant: tenant.clone(),
        query: Query {
            window: v.window,
            filters,
            group,
        },
        kind: Kind::Api {
            tz,
            visits: v,
            labels,
        },
    })
}

/// `FROM page_visits pv WHERE …` for `top_pages`' SQL part of a run `[a, b)` of unsealed days: the
/// pages first hit in `[lo, hi)` less than a day into visits that start in the run, their own path
/// filter, and the visit filters as one semi-join on the run's filtered sessions (a set SQLite
/// builds once) rather than `pipes::pages_from`'s lookup of each page's session: 36 ms instead of
/// 62 for today's 55k pages of the largest tenant at 10M, natively.
fn run_pages_from(q: &mut TenantSql, (lo, hi): (i64, i64), (a, b): (i64, i64), f: &Filters) {
    q.from("page_visits", "pv");
    q.bind(" AND pv.first_ts >= ?", lo)
        .bind(" AND pv.first_ts < ?", hi);
    q.push(" AND pv.since_visit < 86400");
    q.bind(" AND pv.first_ts - pv.since_visit >= ?", a)
        .bind(" AND pv.first_ts - pv.since_visit < ?", b);
    if let Some(path) = &f.pathname {
        q.bind(" AND pv.pathname = ?", path.as_str());
    }
    if f.domain.is_some() || !f.session.is_empty() {
        q.push(" AND (pv.first_ts - pv.since_visit, pv.session_key) IN (SELECT s.first_ts, s.session_key")
            .from("sessions", "s")
            .bind(" AND s.first_ts >= ?", a)
            .bind(" AND s.first_ts < ?", b);
        if let Some(d) = &f.domain {
            q.bind(" AND s.domain = ?", d.as_str());
        }
        for (col, v) in &f.session {
            q.bind(&format!(" AND s.{col} = ?"), v.as_str());
        }
        q.push(")");
    }
}

/// Rows keyed by their group: the five additive measures.
type Merged = BTreeMap<Vec<String>, Sums>;

/// A top list with one equality filter that one-filter cells ([`crate::segment::cells`]) answer for
/// the sealed days the window holds wholly ([`ScanRoute::cells_day`], then `Cells::usable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellQuestion {
    /// The filter's target: the cells objects to read.
    pub target: Target,
    /// The filter's value.
    pub value: String,
    /// The grouping (index in `cells::GROUPINGS`).
    pub grouping: usize,
    /// Whether groups with an empty first key are left out (`top_campaigns`).
    pub skip_empty: bool,
}

impl ScanRoute<'_> {
    /// The question to scan over the sealed days' segments.
    pub fn query(&self) -> &Query {
        &self.query
    }

    fn pages(&self) -> bool {
        matches!(self.kind, Kind::Top { pages: true, .. })
    }

    /// The one-filter cells question of this route, if it has one: a top list whose only filter is
    /// one equality (case-sensitive, one value) on a target with cells (besides `top_campaigns`'
    /// `utm_campaign` not empty, which the cells' reader applies), grouped as the cells group.
    pub fn cells(&self) -> Option<CellQuestion> {
        let Kind::Top { skip_empty, .. } = &self.kind else {
            return None;
        };
        let grouping = cells::grouping_of(&self.query.group)?;
        let mut filters = self.query.filters.as_slice();
        if *skip_empty {
            let Group::Visits(cols) = &self.query.group else {
                return None;
            };
            let (last, rest) = filters.split_last()?;
            if *last != Filter::Not(Box::new(is(*cols.first()?, ""))) {
                return None;
            }
            filters = rest;
        }
        match filters {
            [Filter::Leaf {
                op: Op::Is,
                target,
                values,
                case_sensitive: true,
            }] if values.len() == 1 && cells::holds(*target, grouping) => Some(CellQuestion {
                target: *target,
                value: values[0].clone(),
                grouping,
                skip_empty: *skip_empty,
            }),
            _ => None,
        }
    }

    /// Whether the window holds the whole UTC day starting at `day` (a day cells may answer).
    pub fn cells_day(&self, day: i64) -> bool {
        let (start, end) = self.query.window;
        start <= day && day + DAY <= end
    }

    /// The UTC day starts `[first, end)` whose segments hold visits of the window (for `top_pages`
    /// the day before the window too, whose visits may have pages in it).
    pub fn days(&self) -> (i64, i64) {
        let (start, end) = self.query.window;
        let first = start.div_euclid(DAY) * DAY - if self.pages() { DAY } else { 0 };
        (first, (end + DAY - 1).div_euclid(DAY) * DAY)
    }

    /// The SQL part: statements (one per run of days in [`ScanRoute::days`] not in `sealed`, the
    /// UTC day starts whose segments are scanned) counting the visits that start in it, grouped
    /// without order or limit. Their rows go to [`ScanRoute::assemble`] or
    /// [`ScanRoute::assemble_query`], one row set per statement.
    pub fn sql(&self, sealed: &[i64]) -> Vec<Statement> {
        let (first, end) = self.days();
        let mut runs: Vec<(i64, i64)> = Vec::new();
        let mut day = first;
        while day < end {
            if !sealed.contains(&day) {
                match runs.last_mut() {
                    Some(r) if r.1 == day => r.1 = day + DAY,
                    _ => runs.push((day, day + DAY)),
                }
            }
            day += DAY;
        }
        // Pages of the window may belong to visits that started before the first day scanned: the
        // SQL counts those too, in a run of their own without a lower bound (see below).
        if self.pages() {
            runs.insert(0, (i64::MIN, first));
        }
        let (start, stop) = self.query.window;
        // Per run: the pages part(s) of `top_pages`, or the one statement of the others. A page of
        // a visit starting in `[a, b)` is from `a` on, and before `b + DAY` unless it is at least a
        // day into its visit (`since_visit >= 86400`): those few are read from migration 0020's
        // partial index (a literal condition: a partial index is usable only when the query names
        // it; `INDEXED BY`: see `LONG_PAGES`). So a run reads its own days of pages, not the
        // window's; the run before `first` reads the index only.
        let parts: Vec<(i64, i64, Option<bool>)> = runs
            .into_iter()
            .flat_map(|(a, b)| {
                if self.pages() {
                    vec![(a, b, Some(false)), (a, b, Some(true))]
                } else {
                    vec![(a, b, None)]
                }
            })
            .collect();
        parts
            .into_iter()
            .filter_map(|(a, b, long)| match &self.kind {
                Kind::Top {
                    keys,
                    skip_empty,
                    filters,
                    ..
                } => {
                    let mut q = TenantSql::new(&self.tenant);
                    q.push("WITH w AS (SELECT ");
                    for (i, (col, _)) in keys.iter().enumerate() {
                        q.push(&format!("{col} AS k{i}, "));
                    }
                    if let Some(long) = long {
                        let (lo, hi) = if long {
                            (start.max(a.saturating_add(DAY)), stop)
                        } else {
                            (start.max(a), stop.min(b.saturating_add(DAY)))
                        };
                        if lo >= hi {
                            return None;
                        }
                        q.push("pv.hits AS h");
                        if long {
                            pipes::pages_from(&mut q, lo, hi, filters);
                            q.push(" AND pv.since_visit >= 86400");
                            if a > i64::MIN {
                                q.bind(" AND pv.first_ts - pv.since_visit >= ?", a);
                            }
                            q.bind(" AND pv.first_ts - pv.since_visit < ?", b);
                        } else {
                            run_pages_from(&mut q, (lo, hi), (a, b), filters);
                        }
                    } else {
                        let (a, b) = (a.max(start), b.min(stop));
                        if a >= b {
                            return None;
                        }
                        q.push("s.pageviews AS h");
                        pipes::sessions_from(&mut q, a, b, filters);
                    }
                    if *skip_empty {
                        q.push(&format!(" AND {} <> ''", keys[0].0));
                    }
                    let ks: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
                    q.push(&format!(
                        ") SELECT {}, COUNT(*) AS visits, SUM(h) AS hits FROM w GROUP BY {}",
                        ks.join(", "),
                        ks.join(", ")
                    ));
                    let mut st = q.finish();
                    if long == Some(true) {
                        st.sql = st.sql.replacen(PAGES_FROM, LONG_PAGES, 1);
                    }
                    Some(st)
                }
                Kind::Kpis {
                    filters, series, ..
                } => {
                    let (a, b) = (a.max(start), b.min(stop));
                    if a >= b {
                        return None;
                    }
                    Some(match series {
                        None => pipes::kpi_summary_statement(&self.tenant, filters, (a, b), start),
                        Some((offsets, hourly)) => pipes::kpi_series_statement(
                            &self.tenant,
                            filters,
                            (a, b),
                            offsets,
                            *hourly,
                        ),
                    })
                }
                Kind::Api { tz, visits, .. } => {
                    let (a, b) = (a.max(start), b.min(stop));
                    if a >= b {
                        return None;
                    }
                    Some(api::grouped_statement_in(
                        &self.tenant,
                        *tz,
                        (a, b),
                        visits.grain,
                        (visits.group, None),
                        &visits.filters,
                        None,
                    ))
                }
            })
            .collect()
    }

    /// The scanned groups (span numbers replaced by their bucket or label) plus the SQL rows,
    /// keyed as the SQL keys them: `k0`.. (top lists), `bucket` (kpis) or `k` (`/v0/query`).
    fn merge(
        &self,
        scanned: Partial,
        sql: &[Vec<Map<String, Value>>],
    ) -> Result<Merged, QueryError> {
        let mut groups = Merged::new();
        for (mut k, s) in scanned.groups {
            match &self.kind {
                Kind::Kpis { buckets, .. } => {
                    // Summary: one group, bucket 1; series: span → bucket.
                    let b = match k.first() {
                        None => buckets.first().copied(),
                        Some(i) => i
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| buckets.get(i))
                            .copied(),
                    };
                    let b = b.ok_or_else(|| QueryError::ResultMismatch(format!("span {k:?}")))?;
                    k = vec![b.to_string()];
                }
                Kind::Api { labels, .. } if !labels.is_empty() => {
                    let l = k
                        .first()
                        .and_then(|i| i.parse::<usize>().ok())
                        .and_then(|i| labels.get(i))
                        .ok_or_else(|| QueryError::ResultMismatch(format!("span {k:?}")))?;
                    k = vec![l.clone()];
                }
                Kind::Api { .. } if k.is_empty() => k = vec![String::new()],
                _ => {}
            }
            groups.entry(k).or_default().add(&s);
        }
        for row in sql.iter().flatten() {
            let text = |c: &str| match row.get(c) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Null) => Ok(String::new()),
                other => Err(QueryError::ResultMismatch(format!("key {c}: {other:?}"))),
            };
            let n = |c: &str| crate::sql::count(row.get(c));
            let (k, sums) = match &self.kind {
                Kind::Top { keys, .. } => {
                    let k = (0..keys.len())
                        .map(|i| text(&format!("k{i}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    let sums = Sums {
                        visits: n("visits"),
                        pageviews: n("hits"),
                        ..Sums::default()
                    };
                    (k, sums)
                }
                Kind::Kpis { .. } | Kind::Api { .. } => {
                    let k = match &self.kind {
                        Kind::Kpis { .. } => crate::sql::int(row.get("bucket"))
                            .ok_or_else(|| QueryError::ResultMismatch("bucket".into()))?
                            .to_string(),
                        _ => text("k")?,
                    };
                    let sums = Sums {
                        visits: n("visits"),
                        pageviews: n("pageviews"),
                        bounces: n("bounces"),
                        duration: n("duration"),
                        visitors: n("visitors"),
                    };
                    (vec![k], sums)
                }
            };
            groups.entry(k).or_default().add(&sums);
        }
        Ok(groups)
    }

    /// A pipe's response: the scanned part (the segments of the sealed days passed to
    /// [`ScanRoute::sql`]) plus the SQL part's rows, ranked and cut as the visit-level statement of
    /// `plan` (the plan of the same request) would, shaped by it.
    pub fn assemble(
        &self,
        plan: &Plan,
        scanned: Partial,
        sql: Vec<Vec<Map<String, Value>>>,
    ) -> Result<Output, QueryError> {
        let groups = self.merge(scanned, &sql)?;
        let rows = match &self.kind {
            Kind::Top {
                keys, skip, limit, ..
            } => {
                let mut ranked: Vec<_> = groups.into_iter().collect();
                ranked.sort_by(|a, b| b.1.visits.cmp(&a.1.visits).then_with(|| a.0.cmp(&b.0)));
                ranked
                    .into_iter()
                    .skip(usize::try_from(*skip).unwrap_or(0))
                    .take(usize::try_from(*limit).unwrap_or(0))
                    .map(|(k, s)| {
                        let mut m = Map::new();
                        for ((_, name), v) in keys.iter().zip(k) {
                            m.insert((*name).to_owned(), v.into());
                        }
                        m.insert("visits".into(), s.visits.into());
                        m.insert("hits".into(), s.pageviews.into());
                        m
                    })
                    .collect()
            }
            Kind::Kpis { .. } => groups
                .into_iter()
                .map(|(k, s)| {
                    let mut m = measures(&s);
                    let b: i64 = k.first().and_then(|b| b.parse().ok()).unwrap_or_default();
                    m.insert("bucket".into(), b.into());
                    m
                })
                .collect(),
            Kind::Api { .. } => {
                return Err(QueryError::ResultMismatch(
                    "a /v0/query route is assembled by assemble_query".into(),
                ))
            }
        };
        super::assemble(plan, vec![rows])
    }

    /// A `/v0/query` response ([`query_route`] of `plan`): the scanned part plus the SQL part's
    /// rows, shaped by `api::assemble_query` as the visit-level statement's rows would be.
    pub fn assemble_query(
        &self,
        plan: &ApiPlan,
        scanned: Partial,
        sql: Vec<Vec<Map<String, Value>>>,
    ) -> Result<Value, QueryError> {
        if !matches!(self.kind, Kind::Api { .. }) {
            return Err(QueryError::ResultMismatch(
                "a pipe route is assembled by assemble".into(),
            ));
        }
        let rows = self
            .merge(scanned, &sql)?
            .into_iter()
            .map(|(k, s)| {
                let mut m = measures(&s);
                m.insert("k".into(), k.concat().into());
                m
            })
            .collect();
        api::assemble_query(plan, vec![rows])
    }
}

/// The five measures as the visit-level statements name them.
fn measures(s: &Sums) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("visits".into(), s.visits.into());
    m.insert("pageviews".into(), s.pageviews.into());
    m.insert("bounces".into(), s.bounces.into());
    m.insert("duration".into(), s.duration.into());
    m.insert("visitors".into(), s.visitors.into());
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{plan_query, ApiRequest, FixedOffset};
    use serde_json::json;

    /// 2025-04-03 12:00 UTC.
    const NOW: i64 = 1_743_681_600;

    fn pipe_routed(pipe: &str, params: &[(&str, &str)]) -> bool {
        let tenant = TenantId::for_tests("t1").unwrap();
        let mut all: Vec<(String, String)> = vec![
            ("date_from".into(), "2025-03-27".into()),
            ("date_to".into(), "2025-04-02".into()),
        ];
        all.extend(params.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        let fixed = Default::default();
        let req = Request {
            pipe,
            params: &all,
            tenant: &tenant,
            fixed: &fixed,
            now_secs: NOW,
            tz: &FixedOffset(0),
        };
        scan_route(&req).unwrap().is_some()
    }

    fn query_routed(body: Value) -> bool {
        let tenant = TenantId::for_tests("t1").unwrap();
        let fixed = Default::default();
        let tz = FixedOffset(3600);
        let mut body = body;
        body["date_range"] = json!(["2025-03-27", "2025-04-02"]);
        let plan = plan_query(&ApiRequest {
            body: &body,
            tenant: &tenant,
            fixed: &fixed,
            now_secs: NOW,
            tz: &tz,
        })
        .unwrap();
        query_route(&plan, &tenant, &tz).is_some()
    }

    #[test]
    fn pipes_routed_and_not() {
        let two = [("browser", "chrome"), ("country", "US")];
        // Routed: what the visit rows answer today.
        for (pipe, params) in [
            ("top_sources", &[("browser", "chrome")][..]),
            ("top_pages", &[("browser", "chrome")]),
            ("top_pages", &two),
            ("entry_pages", &[("pathname", "/a"), ("os", "mac")]),
            ("kpis", &two),
            ("kpis_summary", &two),
            ("kpis_summary", &[("pathname", "/a"), ("browser", "chrome")]),
            (
                "kpis",
                &[
                    ("date_from", "2025-04-01"),
                    ("date_to", "2025-04-01"),
                    two[0],
                    two[1],
                ],
            ),
        ] {
            assert!(pipe_routed(pipe, params), "{pipe} {params:?} not routed");
        }
        // Not routed: the rollups answer, or the scan cannot.
        for (pipe, params) in [
            ("top_sources", &[][..]),
            ("top_sources", &[("source", "t.co")]),
            ("top_sources", &[("domain", "a.example")]),
            ("kpis", &[("browser", "chrome")]),
            ("kpis_summary", &[]),
            ("kpis_summary", &[("goal", "Signup"), ("browser", "chrome")]),
            ("top_os", &[("goal", "Signup")]),
            (
                "kpis",
                &[("include_previous_period", "true"), two[0], two[1]],
            ),
            ("top_os", &[("include_previous_period", "true"), two[0]]),
            ("trend", &two),
            ("traffic_by_hour", &two),
            ("domains", &two),
        ] {
            assert!(!pipe_routed(pipe, params), "{pipe} {params:?} routed");
        }
    }

    #[test]
    fn queries_routed_and_not() {
        let two = json!([
            ["is", "visit:browser", ["chrome"]],
            ["is", "visit:device", ["mobile"]]
        ]);
        let routed = [
            json!({"metrics": ["visitors"], "filters": two}),
            json!({"metrics": ["visits", "bounce_rate"], "dimensions": ["visit:source"], "filters": two}),
            json!({"metrics": ["visits"], "dimensions": ["event:hostname"], "filters": two}),
            json!({"metrics": ["pageviews"], "dimensions": ["time:day"], "filters": two}),
            json!({"metrics": ["pageviews"], "dimensions": ["time:hour"], "filters": two}),
            json!({"metrics": ["visitors"], "dimensions": ["time:week"], "filters": [["contains", "event:page", ["/blog"]]]}),
            json!({"metrics": ["visitors"], "filters": [["not", ["or", [["is", "visit:os", ["mac"]], ["contains", "visit:source", ["goo"]]]]]]}),
        ];
        for b in routed {
            assert!(query_routed(b.clone()), "not routed: {b}");
        }
        let not_routed = [
            // The rollups answer these.
            json!({"metrics": ["visitors"]}),
            json!({"metrics": ["visitors"], "dimensions": ["visit:source"]}),
            json!({"metrics": ["visitors"], "filters": [["is", "visit:browser", ["chrome"]]]}),
            // Goals, properties, comparisons: other tables or two windows.
            json!({"metrics": ["visitors"], "filters": [["is", "event:goal", ["Signup"]], two[0]]}),
            json!({"metrics": ["visitors"], "dimensions": ["event:goal"], "filters": two}),
            json!({"metrics": ["visitors"], "dimensions": ["event:props:plan"], "filters": two}),
            json!({"metrics": ["visitors"], "filters": two, "include": {"comparisons": {"mode": "previous_period"}}}),
            // A funnel step: `session_funnels`, which segments do not hold.
            json!({"metrics": ["visitors"], "filters": [["is", "event:funnel", [crate::funnels::value(1, 2)]], two[0]]}),
        ];
        for b in not_routed {
            assert!(!query_routed(b.clone()), "routed: {b}");
        }
    }

    /// `top_pages` reads the pages of visits that started before its first scanned day from the
    /// partial index of long visits' pages, and the pages of later unsealed days from their day on.
    #[test]
    fn top_pages_sql_is_bounded() {
        let tenant = TenantId::for_tests("t1").unwrap();
        let params: Vec<(String, String)> = [
            ("date_from", "2025-03-27"),
            ("date_to", "2025-04-02"),
            ("browser", "chrome"),
        ]
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
        let fixed = Default::default();
        let req = Request {
            pipe: "top_pages",
            params: &params,
            tenant: &tenant,
            fixed: &fixed,
            now_secs: NOW,
            tz: &FixedOffset(0),
        };
        let route = scan_route(&req).unwrap().unwrap();
        let (first, end) = route.days();
        // Every day sealed but the last: one statement for the visits before `first`, one for it.
        let sealed: Vec<i64> = (first..end - DAY).step_by(DAY as usize).collect();
        let sql = route.sql(&sealed);
        assert_eq!(sql.len(), 2);
        assert!(sql[0].sql.contains(LONG_PAGES), "{}", sql[0].sql);
        assert!(
            sql[0].sql.contains("pv.since_visit >= 86400"),
            "{}",
            sql[0].sql
        );
        assert!(!sql[1].sql.contains("INDEXED BY"), "{}", sql[1].sql);
        // The last day's run reads pages from that day on.
        assert!(
            sql[1].binds.contains(&(end - DAY).into()),
            "{:?}",
            sql[1].binds
        );
    }

    /// Spans split at UTC hours and offset changes and merge into buckets exactly.
    #[test]
    fn spans_follow_the_bucket_rule() {
        // +1h until 01:00 UTC on day 1, then +2h; daily buckets over two UTC days.
        let change = DAY + 3600;
        let offsets = [(change, 3600), (i64::MAX, 7200)];
        let (edges, keys) = spans(&offsets, (-3600, 2 * DAY - 7200), |l| l.div_euclid(DAY));
        // Local day 0 runs from -1h (local 00:00) to 23:00 UTC; day 1 from 23:00 to 22:00 UTC.
        assert_eq!(edges, vec![-3600, DAY - 3600, 2 * DAY - 7200]);
        assert_eq!(keys, vec![0, 1]);
        // A half-hour zone: the UTC hour holding local midnight starts the day.
        let (edges, keys) = spans(&[(i64::MAX, 19_800)], (-19_800 - 1800, DAY), |l| l / DAY);
        assert_eq!((edges[1], keys[..2].to_vec()), (DAY - 21_600, vec![0, 1]));
    }
}
