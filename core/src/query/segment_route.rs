//! A top list on the visit-level path (a filter on another dimension, or several filters) answered
//! from visit segments ([`crate::segment`]) for the sealed UTC days and from SQL for the other days,
//! merged into exactly the rows the visit-level statement would return. Not routed by the worker
//! yet: [`scan_route`] says whether a request can take this path, [`ScanRoute::sql`] plans the SQL
//! part, [`ScanRoute::assemble`] merges.
//!
//! The parts are split by the visit's first hit: a sealed day's segment holds the visits that start
//! that day with all their pages, so the scan counts those (in the request's window: the page's
//! first hit for `top_pages`, the visit's otherwise) and the SQL counts the visits starting on the
//! other days, grouped without order or limit so the parts add up; the merged groups are then ranked
//! as the statement ranks them (visits descending, keys ascending) and cut by `skip` and `limit`.
//! Served: the top lists with dashboard filters (`domain`, `pathname`, the session columns). Not
//! served (`None`): a saved segment, a goal filter, `include_previous_period`, or a request the
//! rollups answer.

use serde_json::{Map, Value};

use super::params::Params;
use super::pipes::{self, top_slice, top_spec};
use super::{Output, Plan, QueryError, Request};
use crate::claims::TenantId;
use crate::segment::{Column, Filter, Group, Op, Partial, PathFilter, Query, Target};
use crate::sql::{Statement, TenantSql};

const DAY: i64 = 86_400;

/// A top list the segment scan can answer, with what merging its parts needs.
#[derive(Debug, Clone)]
pub struct ScanRoute {
    tenant: TenantId,
    query: Query,
    pages: bool,
    /// `(sessions or page_visits column, output name)` of the keys.
    keys: &'static [(&'static str, &'static str)],
    skip_empty: bool,
    filters: super::params::Filters,
    skip: i64,
    limit: i64,
}

/// The scan route of a request, if it can take one (see the module docs).
pub fn scan_route(req: &Request) -> Result<Option<ScanRoute>, QueryError> {
    let Some(spec) = top_spec(req.pipe) else {
        return Ok(None);
    };
    let p = Params::new(req.params, req.fixed).for_tenant(req.tenant);
    let tenant = p.tenant()?;
    let mut key = std::collections::BTreeMap::new();
    let w = pipes::window(req, &p, &mut key)?;
    let f = pipes::filters(&p, &mut key)?;
    let (skip, limit) = p.page()?;
    if w.previous.is_some()
        || f.segment.is_some()
        || f.goal.is_some()
        || top_slice(tenant, req.now_secs, &spec, &f).is_some()
    {
        return Ok(None);
    }
    let is = |col: Column, v: &str| Filter::Leaf {
        op: Op::Is,
        target: Target::Visit(col),
        values: vec![v.to_owned()],
        case_sensitive: true,
    };
    let mut filters = Vec::new();
    if let Some(d) = &f.domain {
        filters.push(is(Column::Domain, d));
    }
    for (col, v) in &f.session {
        let Some(c) = Column::from_sessions(col) else {
            return Ok(None);
        };
        filters.push(is(c, v));
    }
    let group = if spec.pages {
        Group::Pages(f.pathname.as_ref().map(|p| PathFilter {
            op: Op::Is,
            values: vec![p.clone()],
            case_sensitive: true,
        }))
    } else {
        if let Some(p) = &f.pathname {
            filters.push(Filter::Leaf {
                op: Op::Is,
                target: Target::ViewedPage,
                values: vec![p.clone()],
                case_sensitive: true,
            });
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
        pages: spec.pages,
        keys: spec.keys,
        skip_empty: spec.skip_empty,
        filters: f,
        skip,
        limit,
    }))
}

impl ScanRoute {
    /// The question to scan over the sealed days' segments.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The UTC day starts `[first, end)` whose segments hold visits of the window (for `top_pages`
    /// the day before the window too, whose visits may have pages in it).
    pub fn days(&self) -> (i64, i64) {
        let (start, end) = self.query.window;
        let first = start.div_euclid(DAY) * DAY - if self.pages { DAY } else { 0 };
        (first, (end + DAY - 1).div_euclid(DAY) * DAY)
    }

    /// The SQL part: one statement per run of days in [`ScanRoute::days`] not in `sealed` (UTC day
    /// starts whose segments are scanned), counting the visits that start in it, grouped (columns
    /// `k0`.., `visits`, `hits`; no order, no limit).
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
        // SQL counts those too (its first run has no lower bound).
        if self.pages {
            match runs.first_mut() {
                Some(r) if r.0 == first => r.0 = i64::MIN,
                _ => runs.insert(0, (i64::MIN, first)),
            }
        }
        let (start, stop) = self.query.window;
        runs.into_iter()
            .filter_map(|(a, b)| {
                let mut q = TenantSql::new(&self.tenant);
                q.push("WITH w AS (SELECT ");
                for (i, (col, _)) in self.keys.iter().enumerate() {
                    q.push(&format!("{col} AS k{i}, "));
                }
                if self.pages {
                    q.push("pv.hits AS h");
                    pipes::pages_from(&mut q, start, stop, &self.filters);
                    if a > i64::MIN {
                        q.bind(" AND pv.first_ts - pv.since_visit >= ?", a);
                    }
                    q.bind(" AND pv.first_ts - pv.since_visit < ?", b);
                } else {
                    let (a, b) = (a.max(start), b.min(stop));
                    if a >= b {
                        return None;
                    }
                    q.push("s.pageviews AS h");
                    pipes::sessions_from(&mut q, a, b, &self.filters);
                }
                if self.skip_empty {
                    q.push(&format!(" AND {} <> ''", self.keys[0].0));
                }
                let ks: Vec<String> = (0..self.keys.len()).map(|i| format!("k{i}")).collect();
                q.push(&format!(
                    ") SELECT {}, COUNT(*) AS visits, SUM(h) AS hits FROM w GROUP BY {}",
                    ks.join(", "),
                    ks.join(", ")
                ));
                Some(q.finish())
            })
            .collect()
    }

    /// The response: the scanned part (the segments of the sealed days passed to [`ScanRoute::sql`])
    /// plus the SQL part's rows, ranked and cut as the visit-level statement of `plan` (the plan of
    /// the same request) would, shaped by it.
    pub fn assemble(
        &self,
        plan: &Plan,
        scanned: Partial,
        sql: Vec<Vec<Map<String, Value>>>,
    ) -> Result<Output, QueryError> {
        let mut groups: std::collections::BTreeMap<Vec<String>, (i64, i64)> = Default::default();
        for (k, s) in scanned.groups {
            let g = groups.entry(k).or_default();
            g.0 += s.visits;
            g.1 += s.pageviews;
        }
        for row in sql.iter().flatten() {
            let k = (0..self.keys.len())
                .map(|i| match row.get(&format!("k{i}")) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    other => Err(QueryError::ResultMismatch(format!("key k{i}: {other:?}"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let g = groups.entry(k).or_default();
            g.0 += crate::sql::count(row.get("visits"));
            g.1 += crate::sql::count(row.get("hits"));
        }
        let mut ranked: Vec<_> = groups.into_iter().collect();
        ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
        let rows = ranked
            .into_iter()
            .skip(usize::try_from(self.skip).unwrap_or(0))
            .take(usize::try_from(self.limit).unwrap_or(0))
            .map(|(k, (visits, hits))| {
                let mut m = Map::new();
                for ((_, name), v) in self.keys.iter().zip(k) {
                    m.insert((*name).to_owned(), v.into());
                }
                m.insert("visits".into(), visits.into());
                m.insert("hits".into(), hits.into());
                m
            })
            .collect();
        super::assemble(plan, vec![rows])
    }
}
