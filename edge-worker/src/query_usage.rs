//! Served queries, counted in the isolate and written to usage coalesced.
//!
//! Every answered query (cache hits included) is one more `queries` in its tenant's usage of the day.
//! Writing that as its own D1 upsert per request made each query a write on the tenant's database;
//! instead the isolate counts per (database, tenant, day) and one flush a second later (`waitUntil`,
//! after the response) writes one upsert per key, as the audit of denials does ([`crate::denials`]).
//! A failed write keeps its counts for the next flush; an isolate evicted before that loses them:
//! usage errs towards under-counting queries, never towards failing one.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use starling_core::usage;
use worker::{Context, Delay, Env};

use crate::store::d1;

/// How long served queries are gathered before they are written.
const FLUSH_AFTER: Duration = Duration::from_millis(1_000);

/// (D1 binding, tenant, UTC day).
type Key = (String, String, String);

thread_local! {
    static PENDING: RefCell<HashMap<Key, i64>> = RefCell::new(HashMap::new());
    static SCHEDULED: Cell<bool> = const { Cell::new(false) };
}

/// Counts one served query of `tenant` (whose analytics live in D1 `binding`) and makes sure a flush
/// is scheduled.
pub fn record(env: &Env, ctx: &Context, binding: &str, tenant: &str, day: String) {
    PENDING.with(|p| {
        *p.borrow_mut()
            .entry((binding.to_owned(), tenant.to_owned(), day))
            .or_insert(0) += 1;
    });
    if SCHEDULED.with(|s| s.replace(true)) {
        return;
    }
    let env = env.clone();
    ctx.wait_until(async move {
        Delay::from(FLUSH_AFTER).await;
        SCHEDULED.with(|s| s.set(false));
        flush(&env).await;
    });
}

/// Drops the pending counts of `tenant` (its erasure: they must not bring a usage row back). Counts an
/// in-flight flush already took are refused by the statement itself ([`usage::add_unless_erased`]).
pub fn forget(tenant: &str) {
    PENDING.with(|p| p.borrow_mut().retain(|(_, t, _), _| t != tenant));
}

/// Writes every pending count: one D1 batch per database. A database that cannot be written keeps its
/// counts pending for the next flush.
async fn flush(env: &Env) {
    let pending: Vec<(Key, i64)> = PENDING.with(|p| p.borrow_mut().drain().collect());
    let mut by_db: HashMap<String, Vec<(Key, i64)>> = HashMap::new();
    for (key, n) in pending {
        by_db.entry(key.0.clone()).or_default().push((key, n));
    }
    for (binding, counts) in by_db {
        let statements: Vec<_> = counts
            .iter()
            .map(|((_, tenant, day), n)| {
                usage::add_unless_erased(
                    tenant,
                    day,
                    &usage::UsageDelta {
                        queries: *n,
                        ..Default::default()
                    },
                )
            })
            .collect();
        let result = match env.d1(&binding) {
            Ok(db) => d1::run_atomic(&db, &statements).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            crate::log::event(
                crate::log::Level::Error,
                "usage_write",
                &serde_json::json!({ "error": e.to_string(), "database": binding }),
            );
            PENDING.with(|p| {
                let mut p = p.borrow_mut();
                for (key, n) in counts {
                    *p.entry(key).or_insert(0) += n;
                }
            });
        }
    }
}
