//! The audit of denied requests, coalesced per isolate before it is written.
//!
//! Every denial is counted in memory under its audit key (minute, tenant, token name, route, reason,
//! status). The first denial of a quiet period schedules one flush a second later (`waitUntil`, after
//! the response), which writes every pending key as one upsert with its count. A flood of refused
//! requests is thus about one small D1 batch per isolate per second, not one write per request, so
//! a noisy tenant cannot turn its 429s into write load on the pool database. If the runtime evicts the
//! isolate inside that second, its pending counts are lost: the audit errs towards under-counting a
//! flood, never towards failing a request.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use starling_core::audit::{self, Denial, Reason};
use worker::{Context, D1Database, Delay};

use crate::store::d1;

/// How long denials are gathered before they are written.
const FLUSH_AFTER: Duration = Duration::from_millis(1_000);

#[derive(PartialEq, Eq, Hash)]
struct Key {
    minute: i64,
    tenant: Option<String>,
    token_name: Option<String>,
    route: String,
    reason: Reason,
    status: u16,
}

thread_local! {
    static PENDING: RefCell<HashMap<Key, i64>> = RefCell::new(HashMap::new());
    static SCHEDULED: Cell<bool> = const { Cell::new(false) };
}

/// Counts one denial and makes sure a flush is scheduled.
pub fn record(db: D1Database, ctx: &Context, denial: &Denial) {
    let key = Key {
        minute: denial.now_secs - denial.now_secs.rem_euclid(60),
        tenant: denial.tenant_id.map(str::to_owned),
        token_name: denial.token_name.map(str::to_owned),
        route: denial.route.to_owned(),
        reason: denial.reason,
        status: denial.status,
    };
    PENDING.with(|p| *p.borrow_mut().entry(key).or_insert(0) += 1);
    if SCHEDULED.with(|s| s.replace(true)) {
        return;
    }
    ctx.wait_until(async move {
        Delay::from(FLUSH_AFTER).await;
        SCHEDULED.with(|s| s.set(false));
        flush(&db).await;
    });
}

/// Writes every pending count as one D1 batch.
async fn flush(db: &D1Database) {
    let pending: Vec<(Key, i64)> = PENDING.with(|p| p.borrow_mut().drain().collect());
    if pending.is_empty() {
        return;
    }
    let statements: Vec<_> = pending
        .iter()
        .map(|(k, count)| {
            audit::record_count(
                &Denial {
                    now_secs: k.minute,
                    tenant_id: k.tenant.as_deref(),
                    token_name: k.token_name.as_deref(),
                    route: &k.route,
                    reason: k.reason,
                    status: k.status,
                },
                *count,
            )
        })
        .collect();
    if let Err(e) = d1::run_atomic(db, &statements).await {
        crate::log::event(
            crate::log::Level::Error,
            "audit_write",
            &serde_json::json!({ "error": e.to_string(), "denials": pending.iter().map(|(_, c)| c).sum::<i64>() }),
        );
    }
}
