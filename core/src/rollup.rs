//! Rollups: enriched events in, idempotent D1 upserts out.
//!
//! A queue batch is first aggregated in memory (one delta per rollup key), then turned into upserts of
//! those keys, so the number of D1 rows written grows with distinct keys, not with events; the rows of
//! a table travel together in a few multi-row statements per tenant (`bulk`), so the number of
//! statements does not grow with them either. The statements are plain SQLite and run unchanged on D1
//! and on an in-memory SQLite in tests.
//!
//! Idempotency is not this module's job alone: the queue consumer runs [`batch_guard`] first in the same
//! D1 transaction, so a redelivered batch fails on its primary key and changes nothing. Bot events are
//! counted in `bot_hits_daily` and kept out of every other table.
//!
//! The pre-aggregated visit rollups that the query planner reads (`visit_hourly`, `visit_daily`) are
//! maintained by deltas against each visit's prior state: see [`visits`]. The visit-level tables
//! (`sessions`, `page_visits`) are still written, whole from that state and on their primary keys:
//! they are the exact path for filter combinations the rollups do not cover.

use std::collections::BTreeMap;

mod bulk;
pub mod visits;

pub use visits::{prior_lookup, PriorState};

use crate::event::{EnrichedEvent, Quarantined};
use crate::sql::{SqlValue, Statement};
use crate::time::day_string;

/// Events older than this (relative to `now`) do not feed `active_minutes`, which only serves the
/// last-30-minutes endpoints and is pruned daily.
const ACTIVE_WINDOW_SECS: i64 = 86_400;

/// The statement that makes a batch apply at most once: it must run first, in the same D1 batch
/// (transaction) as the rollup statements. A second run fails on the primary key and rolls back.
pub fn batch_guard(batch_id: &str, now_secs: i64) -> Statement {
    Statement::new(
        "INSERT INTO applied_batches (batch_id, applied_at) VALUES (?, ?)",
        vec![batch_id.into(), now_secs.into()],
    )
}

/// The statement that tells whether a batch was already applied (returns one row if so).
pub fn batch_applied(batch_id: &str) -> Statement {
    Statement::new(
        "SELECT 1 AS applied FROM applied_batches WHERE batch_id = ?",
        vec![batch_id.into()],
    )
}

/// Batch ids per lookup in [`batches_applied`] (D1 allows at most 100 bound parameters).
const IDS_PER_LOOKUP: usize = 90;

/// Queries that return the `batch_id` of every already applied batch among `batch_ids`: one lookup
/// for a whole queue delivery instead of one per message.
pub fn batches_applied(batch_ids: &[&str]) -> Vec<Statement> {
    batch_ids
        .chunks(IDS_PER_LOOKUP)
        .map(|chunk| {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            Statement::new(
                format!("SELECT batch_id FROM applied_batches WHERE batch_id IN ({placeholders})"),
                chunk.iter().map(|id| SqlValue::from(*id)).collect(),
            )
        })
        .collect()
}

#[derive(Default)]
struct Span {
    first: i64,
    last: i64,
    count: i64,
}

impl Span {
    fn add(&mut self, ts: i64) {
        if self.count == 0 || ts < self.first {
            self.first = ts;
        }
        if self.count == 0 || ts > self.last {
            self.last = ts;
        }
        self.count += 1;
    }
}

/// Rollup statements for events (all of one or several tenants), without the idempotency guard.
///
/// `prior` is the state of the visits and visitor-days the events touch, read before the batch with
/// [`prior_lookup`] (empty for the first batch of a database). Page hits must already carry a
/// `session_id` (see [`crate::identity::assign_sessions`]); a page hit without one is skipped rather
/// than attributed to a made-up session.
pub fn statements_for(
    events: &[EnrichedEvent],
    prior: &PriorState,
    now_secs: i64,
) -> Vec<Statement> {
    let mut minutes: BTreeMap<(&str, i64, &str, &str), ()> = BTreeMap::new();
    let mut domains: BTreeMap<(&str, &str), Span> = BTreeMap::new();
    let mut actions: BTreeMap<(&str, &str, &str), (Span, &str)> = BTreeMap::new();
    let mut bots: BTreeMap<(&str, String), i64> = BTreeMap::new();

    for e in events {
        let ts = e.ts_secs();
        if e.is_bot {
            *bots.entry((&e.tenant_id, day_string(ts))).or_default() += 1;
            continue;
        }
        let action = actions
            .entry((&e.tenant_id, &e.domain, &e.action))
            .or_insert((Span::default(), ""));
        if action.0.count == 0 || ts >= action.0.last {
            action.1 = &e.payload;
        }
        action.0.add(ts);

        if !e.is_page_hit() {
            continue;
        }
        let Some(session) = e.session_id.as_deref() else {
            continue;
        };
        if ts > now_secs - ACTIVE_WINDOW_SECS {
            minutes.insert(
                (&e.tenant_id, ts - ts.rem_euclid(60), &e.domain, session),
                (),
            );
        }
        domains
            .entry((&e.tenant_id, &e.domain))
            .or_default()
            .add(ts);
    }

    let mut out = visits::statements(events, prior, now_secs);
    // One multi-row insert per tenant (`bulk`): a queue group touches a minute row per visit.
    let mut by_tenant: BTreeMap<&str, Vec<Vec<SqlValue>>> = BTreeMap::new();
    for (tenant, minute, domain, session) in minutes.keys() {
        by_tenant.entry(tenant).or_default().push(vec![
            (*minute).into(),
            (*domain).into(),
            (*session).into(),
        ]);
    }
    for (tenant, rows) in &by_tenant {
        out.extend(bulk::insert(
            "INSERT OR IGNORE INTO active_minutes (tenant_id, minute, domain, session_key)",
            "",
            tenant,
            rows,
        ));
    }
    for ((tenant, domain), span) in &domains {
        out.push(Statement::new(
            "INSERT INTO domains (tenant_id, domain, first_seen, last_seen, total_hits) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, domain) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen), \
             last_seen = max(last_seen, excluded.last_seen), total_hits = total_hits + excluded.total_hits",
            vec![(*tenant).into(), (*domain).into(), span.first.into(), span.last.into(), span.count.into()],
        ));
    }
    for ((tenant, domain, action), (span, payload)) in &actions {
        out.push(Statement::new(
            "INSERT INTO actions (tenant_id, domain, action, last_payload, last_seen, total) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, domain, action) DO UPDATE SET \
             last_payload = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_payload ELSE last_payload END, \
             last_seen = max(last_seen, excluded.last_seen), total = total + excluded.total",
            vec![(*tenant).into(), (*domain).into(), (*action).into(), (*payload).into(), span.last.into(), span.count.into()],
        ));
    }
    for ((tenant, day), hits) in bots {
        out.push(Statement::new(
            "INSERT INTO bot_hits_daily (tenant_id, day, hits) VALUES (?, ?, ?) \
             ON CONFLICT (tenant_id, day) DO UPDATE SET hits = hits + excluded.hits",
            vec![tenant.into(), day.into(), hits.into()],
        ));
    }
    out
}

/// Counts of quarantined rows per tenant, day (of receipt) and reason.
pub fn quarantine_statements(
    tenant: &str,
    received_secs: i64,
    rows: &[Quarantined],
) -> Vec<Statement> {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for q in rows {
        *counts.entry(q.reason.as_str()).or_default() += 1;
    }
    let day = day_string(received_secs);
    counts
        .into_iter()
        .map(|(reason, n)| {
            Statement::new(
                "INSERT INTO quarantine_daily (tenant_id, day, reason, rows) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, day, reason) DO UPDATE SET rows = rows + excluded.rows",
                vec![tenant.into(), day.as_str().into(), reason.into(), n.into()],
            )
        })
        .collect()
}

/// Statements that delete a tenant's time-keyed rollups for sessions and pages starting in
/// `[from_secs, to_secs)`, before those hours are replayed from the R2 archive. `domains` and `actions`
/// are all-time aggregates: they are reset only by a full rebuild (`full = true`), which deletes every
/// rollup row of the tenant.
pub fn rebuild_reset(tenant: &str, from_secs: i64, to_secs: i64, full: bool) -> Vec<Statement> {
    let mut out = Vec::new();
    let ranged = [
        ("sessions", "first_ts"),
        ("page_visits", "first_ts"),
        ("session_goals", "first_ts"),
        ("session_props", "first_ts"),
        ("session_goal_props", "first_ts"),
        ("session_funnels", "first_ts"),
        ("active_minutes", "minute"),
        ("visit_hourly", "hour"),
        ("visit_daily", "day"),
        ("visitor_days", "day"),
        // Issue #12's rollups (`vitals`, `captures`), replayed with the others.
        ("web_vitals_daily", "day"),
        ("captures_daily", "day"),
    ];
    for (table, col) in ranged {
        if full {
            out.push(Statement::new(
                format!("DELETE FROM {table} WHERE tenant_id = ?"),
                vec![tenant.into()],
            ));
        } else {
            out.push(Statement::new(
                format!("DELETE FROM {table} WHERE tenant_id = ? AND {col} >= ? AND {col} < ?"),
                vec![tenant.into(), from_secs.into(), to_secs.into()],
            ));
        }
    }
    // Open visits are a few hours of state: a replay starts them afresh (a visit crossing the start of
    // a ranged rebuild is split there).
    out.push(Statement::new(
        "DELETE FROM open_visits WHERE tenant_id = ?",
        vec![tenant.into()],
    ));
    if full {
        for table in ["domains", "actions", "bot_hits_daily"] {
            out.push(Statement::new(
                format!("DELETE FROM {table} WHERE tenant_id = ?"),
                vec![tenant.into()],
            ));
        }
    } else {
        out.push(Statement::new(
            "DELETE FROM bot_hits_daily WHERE tenant_id = ? AND day >= ? AND day < ?",
            vec![
                tenant.into(),
                day_string(from_secs).into(),
                day_string(to_secs).into(),
            ],
        ));
    }
    out
}
