//! Queue consumer: accepted batches → R2 archive → D1 rollups, each batch applied at most once.
//!
//! Order matters for durability: the archive is written before the rollups, and a message is acked
//! only when both are done. A failure retries that message alone (`msg.retry()`); after the queue's
//! `max_retries` it goes to the dead-letter queue, from which it can be replayed.
//!
//! Each batch is applied to its tenant's database (a silo tenant's own D1, or the pool `DB`), with the
//! tenant's usage counters in the same transaction. Batches of an erased tenant, and batches accepted
//! for an older generation of their tenant (before an erasure), are dropped.

use std::collections::{BTreeMap, HashSet};

use starling_core::caps;
use starling_core::event::{EnrichedEvent, QueueBatch};
use starling_core::identity::assign_sessions;
use starling_core::lifecycle;
use starling_core::pack::pack;
use starling_core::plan::Quota;
use starling_core::rollup;
use starling_core::usage;
use worker::{
    D1Database, Env, Message, MessageBatch, MessageExt, QueueRetryOptions,
    QueueRetryOptionsBuilder, Result,
};

use crate::store::{archive, d1, spool, visits};
use crate::tenant_state;

/// Most events one grouped transaction takes; larger deliveries are split into several groups. Its
/// statements no longer grow with its visits (multi-row `json_each` writes), so a bigger group mostly
/// saves the fixed costs per group (lookups, archive objects, one D1 round trip) and coalesces more
/// deltas of the same cell. Its memory grows with it (bodies, visit states, the JSON rows): peak wasm
/// memory was 34 MB with 10,000-event groups of 1,000 visits and 59 MB with 10,000 distinct visits
/// (BENCHMARKS.md), so 5,000 keeps a delivery well inside an isolate's 128 MB.
pub(crate) const GROUP_EVENTS: usize = 5_000;
/// Seconds before a failed message is delivered again.
const RETRY_DELAY_SECS: u32 = 10;

/// Applies every message of a queue delivery; never fails as a whole.
///
/// Fast path: the messages are applied in groups, each group as one D1 transaction (one guard per
/// batch id, rollup deltas aggregated over the whole group). Beacons arrive one event per message, so
/// this turns a hundred small transactions into one. If a group fails (a race with a redelivery, a D1
/// error), its messages are applied one by one, each acked or retried on its own.
pub async fn consume(batch: MessageBatch<QueueBatch>, env: &Env) {
    let started = crate::clock::now_ms();
    let Some(messages) = decoded(&batch, "queue_decode") else {
        return;
    };
    // Messages by the database that holds their tenant's data; erased tenants' batches are dropped.
    let mut by_db: BTreeMap<String, Vec<Message<QueueBatch>>> = BTreeMap::new();
    for msg in messages {
        match tenant_state::state(env, &msg.body().tenant_id).await {
            Ok(state) if state.erased() => {
                log_batch(
                    msg.body(),
                    counts(Some(msg.body())),
                    crate::clock::now_ms(),
                    Ok("dropped_erased"),
                );
                msg.ack();
            }
            Ok(state) if lifecycle::batch_is_stale(msg.body().generation, state.generation()) => {
                let now = crate::clock::now_ms();
                log_batch(
                    msg.body(),
                    counts(Some(msg.body())),
                    now,
                    Ok("dropped_stale_generation"),
                );
                msg.ack();
            }
            Ok(state) => by_db
                .entry(state.database().to_owned())
                .or_default()
                .push(msg),
            Err(e) => {
                crate::log::event(
                    crate::log::Level::Error,
                    "queue_tenant_lookup",
                    &serde_json::json!({ "error": e.log_detail() }),
                );
                msg.retry_with_options(&retry_later());
            }
        }
    }
    // Groups of at most GROUP_EVENTS rows (a spooled batch counts its rows), one database each.
    let mut groups: Vec<(String, Vec<Message<QueueBatch>>)> = Vec::new();
    for (database, messages) in by_db {
        for group in pack(messages, GROUP_EVENTS, usize::MAX, |m| m.body().rows()) {
            groups.push((database.clone(), group));
        }
    }
    let (mut delivered, mut events) = (0usize, 0usize);
    for (database, group) in groups.into_iter().filter(|(_, g)| !g.is_empty()) {
        delivered += group.len();
        events += group.iter().map(|m| m.body().rows()).sum::<usize>();
        let started = crate::clock::now_ms();
        // Bodies are read one group at a time (spooled ones from R2), so memory stays bounded by a group.
        let bodies = match load(env, &group).await {
            Ok(b) => b,
            Err(e) => {
                crate::log::event(
                    crate::log::Level::Error,
                    "queue_spool_read",
                    &serde_json::json!({ "messages": group.len(), "error": e.to_string() }),
                );
                for msg in &group {
                    msg.retry_with_options(&retry_later());
                }
                continue;
            }
        };
        let loaded_ms = crate::clock::now_ms() - started;
        let present: Vec<QueueBatch> = bodies.iter().flatten().cloned().collect();
        match apply_group(present, env, &database).await {
            Ok(outcomes) => {
                let mut outcomes = outcomes.into_iter();
                for (msg, body) in group.iter().zip(&bodies) {
                    let outcome = match body {
                        Some(_) => outcomes.next().unwrap_or("applied"),
                        None => "duplicate",
                    };
                    log_batch(msg.body(), counts(body.as_ref()), started, Ok(outcome));
                    msg.ack();
                }
                let acked = crate::clock::now_ms();
                forget_spooled(env, &group).await;
                crate::log::event(
                    crate::log::Level::Info,
                    "queue_group",
                    &serde_json::json!({
                        "messages": group.len(),
                        "spool_read_ms": loaded_ms,
                        "apply_ms": acked - started - loaded_ms,
                        "spool_delete_ms": crate::clock::now_ms() - acked,
                        "latency_ms": crate::clock::now_ms() - started,
                    }),
                );
            }
            Err(e) => {
                crate::log::event(
                    crate::log::Level::Warn,
                    "queue_group_fallback",
                    &serde_json::json!({ "messages": group.len(), "error": e.to_string() }),
                );
                for (msg, body) in group.iter().zip(bodies) {
                    let started = crate::clock::now_ms();
                    let rows = counts(body.as_ref());
                    let result = match body {
                        Some(body) => apply(body, env).await,
                        None => Ok("duplicate"),
                    };
                    let ok = result.is_ok();
                    log_batch(msg.body(), rows, started, result);
                    if ok {
                        msg.ack();
                        forget_spooled(env, std::slice::from_ref(msg)).await;
                    } else {
                        msg.retry_with_options(&retry_later());
                    }
                }
            }
        }
    }
    crate::log::event(
        crate::log::Level::Info,
        "queue_delivery",
        &serde_json::json!({
            "messages": delivered,
            "events": events,
            "latency_ms": crate::clock::now_ms() - started,
            "wasm_memory_mb": wasm_memory_mb(),
        }),
    );
}

/// Consumes the dead-letter queue: every message whose retries ran out is written to the spool
/// (a pointer's object is there already), where the sweep applies it once D1 and R2 answer again.
/// Nothing leaves the dead-letter queue without being in R2.
pub async fn park_dead_letters(batch: MessageBatch<QueueBatch>, env: &Env) {
    let Some(messages) = decoded(&batch, "dlq_decode") else {
        return;
    };
    let bucket = match archive::bucket(env) {
        Ok(b) => b,
        Err(_) => {
            batch.retry_all_with_options(&retry_later());
            return;
        }
    };
    for msg in messages {
        let body = msg.body();
        let parked = match &body.spool {
            Some(_) => Ok(()),
            None => spool::put(&bucket, &spool::key(body.received_at, &body.batch_id), body).await,
        };
        crate::log::event(
            crate::log::Level::Warn,
            "dlq_parked",
            &serde_json::json!({ "batch_id": body.batch_id, "tenant": body.tenant_id, "ok": parked.is_ok() }),
        );
        if parked.is_ok() {
            msg.ack();
        } else {
            msg.retry_with_options(&retry_later());
        }
    }
}

/// The delivery's messages; `None` (logged as `kind`, the whole delivery retried later) when they do
/// not decode.
fn decoded(batch: &MessageBatch<QueueBatch>, kind: &str) -> Option<Vec<Message<QueueBatch>>> {
    match batch.messages() {
        Ok(m) => Some(m),
        Err(e) => {
            crate::log::event(
                crate::log::Level::Error,
                kind,
                &serde_json::json!({ "error": e.to_string() }),
            );
            batch.retry_all_with_options(&retry_later());
            None
        }
    }
}

/// A failed message comes back after a pause, so a D1 or R2 outage does not spend its retries in
/// seconds; spooled batches are also applied by the sweep whatever happens to their messages.
fn retry_later() -> QueueRetryOptions {
    QueueRetryOptionsBuilder::new()
        .with_delay_seconds(RETRY_DELAY_SECS)
        .build()
}

/// Each message's batch: inline, or read from the spool (`None`: its object is gone, so it was applied).
/// The spool objects of a group are read concurrently (a group holds up to `GROUP_EVENTS` rows).
async fn load(env: &Env, group: &[Message<QueueBatch>]) -> Result<Vec<Option<QueueBatch>>> {
    let bucket = if group.iter().any(|m| m.body().spool.is_some()) {
        Some(archive::bucket(env)?)
    } else {
        None
    };
    let reads = group.iter().map(|msg| {
        let bucket = bucket.as_ref();
        async move {
            match (&msg.body().spool, bucket) {
                (Some(spooled), Some(bucket)) => spool::get(bucket, &spooled.key).await,
                _ => Ok(Some(msg.body().clone())),
            }
        }
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .collect()
}

/// Deletes the spool objects of applied messages (a failure only leaves work for the sweep, which
/// finds them applied).
async fn forget_spooled(env: &Env, group: &[Message<QueueBatch>]) {
    let keys: Vec<String> = group
        .iter()
        .filter_map(|m| m.body().spool.as_ref().map(|s| s.key.clone()))
        .collect();
    if keys.is_empty() {
        return;
    }
    let result = match archive::bucket(env) {
        Ok(bucket) => spool::delete(&bucket, keys).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        crate::log::event(
            crate::log::Level::Warn,
            "spool_delete",
            &serde_json::json!({ "error": e.to_string() }),
        );
    }
}

/// The size of this instance's wasm linear memory (it only grows), for the delivery log.
fn wasm_memory_mb() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) * 65_536 / (1024 * 1024)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// A batch's (events, quarantined rows) for its log line: a pointer message carries no rows itself, so
/// the counts come from the batch as loaded (`None`: a spooled batch already gone).
fn counts(loaded: Option<&QueueBatch>) -> (usize, usize) {
    loaded.map_or((0, 0), |b| (b.events.len(), b.quarantined.len()))
}

/// Logs one message's outcome with its batch's [`counts`].
fn log_batch(
    message: &QueueBatch,
    (events, quarantined): (usize, usize),
    started: i64,
    result: Result<&'static str>,
) {
    let ok = result.is_ok();
    let fields = serde_json::json!({
        "batch_id": message.batch_id,
        "tenant": message.tenant_id,
        "spooled": message.spool.is_some(),
        "events": events,
        "quarantined": quarantined,
        "latency_ms": crate::clock::now_ms() - started,
        "outcome": match &result { Ok(o) => o.to_string(), Err(e) => e.to_string() },
    });
    crate::log::event(
        if ok {
            crate::log::Level::Info
        } else {
            crate::log::Level::Error
        },
        "queue_batch",
        &fields,
    );
}

/// Applies several batches in one D1 transaction; returns each batch's outcome in order. An error means
/// nothing was committed to D1 (archive objects may have been written; they are overwritten on retry).
async fn apply_group(
    mut batches: Vec<QueueBatch>,
    env: &Env,
    database: &str,
) -> Result<Vec<&'static str>> {
    let db = d1::named(env, database)?;
    let started = crate::clock::now_ms();
    let mut steps: Vec<(&'static str, i64)> = Vec::new();
    let mut last = started;
    let mut mark = |name: &'static str| {
        let now = crate::clock::now_ms();
        steps.push((name, now - last));
        last = now;
    };
    let ids: Vec<&str> = batches.iter().map(|b| b.batch_id.as_str()).collect();
    let mut applied: HashSet<String> = HashSet::new();
    for lookup in rollup::batches_applied(&ids) {
        for row in d1::rows(&db, &lookup).await? {
            if let Some(id) = row.get("batch_id").and_then(|v| v.as_str()) {
                applied.insert(id.to_owned());
            }
        }
    }
    // A batch id seen twice in one group (a request resent with its idempotency key, both copies in one
    // delivery) is applied with its first copy; the others are duplicates like an applied one.
    let mut seen: HashSet<&str> = HashSet::new();
    let fresh: Vec<usize> = (0..batches.len())
        .filter(|&i| {
            !applied.contains(&batches[i].batch_id) && seen.insert(batches[i].batch_id.as_str())
        })
        .collect();
    let fresh_set: HashSet<usize> = fresh.iter().copied().collect();
    let mut tenants: Vec<String> = fresh
        .iter()
        .map(|&i| batches[i].tenant_id.clone())
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    mark("applied_lookup");
    enforce_caps(env, &db, &mut batches, &fresh, &tenants).await?;
    mark("caps");

    // Sessions per tenant over the whole group, so one visitor's beacons in a delivery share a session.
    let mut prior = rollup::PriorState::default();
    let limits = crate::env::plan_limits(env).unwrap_or_default();
    for tenant in &tenants {
        // The plan's caps on custom property keys and values (`starling_core::props`).
        let plan = plan_of(env, tenant).await?;
        prior.set_prop_caps(
            tenant,
            limits.cap(&plan, Quota::PropKeys),
            limits.cap(&plan, Quota::PropValues),
        );
        let members: Vec<usize> = fresh
            .iter()
            .copied()
            .filter(|&i| batches[i].tenant_id == *tenant)
            .collect();
        let mut merged: Vec<EnrichedEvent> = Vec::new();
        let mut sizes = Vec::with_capacity(members.len());
        for &i in &members {
            sizes.push(batches[i].events.len());
            merged.append(&mut batches[i].events);
        }
        visits::load_prior(&db, tenant, &merged, &mut prior).await?;
        assign_sessions(&mut merged, &prior.latest_sessions(tenant));
        let mut rest = merged.into_iter();
        for (&i, n) in members.iter().zip(sizes) {
            batches[i].events = rest.by_ref().take(n).collect();
        }
    }

    mark("prior_state");
    // The archive first: one object per tenant and hour for the whole group, rows tagged by batch.
    let bucket = archive::bucket(env)?;
    let fresh_batches: Vec<&QueueBatch> = fresh.iter().map(|&i| &batches[i]).collect();
    let Some(first) = fresh_batches.first() else {
        return Ok(vec!["duplicate"; batches.len()]);
    };
    let object_id = format!("{}-g{}", first.batch_id, fresh_batches.len());
    let archived_bytes: Vec<i64> = archive::write_group(&bucket, &object_id, &fresh_batches)
        .await?
        .into_iter()
        .map(|n| n as i64)
        .collect();
    mark("archive_put");
    if fresh.len() > 1
        && crate::env::var(env, crate::env::FAULT_GROUP_COMMIT).as_deref() == Some("1")
    {
        // Test-only fault: a group's D1 transaction fails after its archive objects are written.
        return Err(worker::Error::RustError(
            "injected group commit failure".into(),
        ));
    }

    let now_secs = crate::clock::now_secs();
    let mut statements: Vec<_> = fresh
        .iter()
        .map(|&i| rollup::batch_guard(&batches[i].batch_id, now_secs))
        .collect();
    let events: Vec<EnrichedEvent> = fresh
        .iter()
        .flat_map(|&i| batches[i].events.iter().cloned())
        .collect();
    statements.extend(rollup::statements_for(&events, &prior, now_secs));
    statements.extend(starling_core::vitals::statements_for(&events));
    statements.extend(starling_core::captures::statements_for(&events));
    for &i in &fresh {
        let b = &batches[i];
        statements.extend(rollup::quarantine_statements(
            &b.tenant_id,
            b.received_at.div_euclid(1000),
            &b.quarantined,
        ));
    }
    // Usage is metered in the same transaction, so a batch is counted exactly once.
    let metered: Vec<(&QueueBatch, i64)> = fresh
        .iter()
        .zip(archived_bytes)
        .map(|(&i, bytes)| (&batches[i], bytes))
        .collect();
    statements.extend(usage::statements_for_batches(&metered));
    mark("build");
    let binds: usize = statements.iter().map(|s| s.binds.len()).sum();
    let profile = d1::run_atomic_profiled(&db, &statements).await?;
    mark("d1_batch");
    let events_in: usize = fresh.iter().map(|&i| batches[i].events.len()).sum();
    let kinds: serde_json::Map<String, serde_json::Value> = profile
        .iter()
        .map(|(k, (n, rows, ms))| {
            (
                k.clone(),
                serde_json::json!({ "n": n, "rows": rows, "ms": (ms * 10.0).round() / 10.0 }),
            )
        })
        .collect();
    crate::log::event(
        crate::log::Level::Info,
        "queue_apply",
        &serde_json::json!({
            "batches": fresh.len(),
            "events": events_in,
            "statements": statements.len(),
            "binds": binds,
            "d1_sql_ms": (profile.values().map(|p| p.2).sum::<f64>() * 10.0).round() / 10.0,
            "steps": steps.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
            "kinds": kinds,
            "latency_ms": crate::clock::now_ms() - started,
        }),
    );
    Ok((0..batches.len())
        .map(|i| {
            if fresh_set.contains(&i) {
                "applied"
            } else {
                "duplicate"
            }
        })
        .collect())
}

/// Applies several batches (the spool sweep's) the way a delivery's messages are: by database, as one
/// group each (the caller keeps them within [`GROUP_EVENTS`] rows), one by one ([`apply`]) if a group
/// fails. Returns each batch's outcome, in order.
pub async fn apply_many(batches: Vec<QueueBatch>, env: &Env) -> Vec<Result<&'static str>> {
    let mut out: Vec<Option<Result<&'static str>>> = batches.iter().map(|_| None).collect();
    let mut by_db: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, b) in batches.iter().enumerate() {
        match tenant_state::state(env, &b.tenant_id).await {
            Ok(state) if state.erased() => out[i] = Some(Ok("dropped_erased")),
            Ok(state) if lifecycle::batch_is_stale(b.generation, state.generation()) => {
                out[i] = Some(Ok("dropped_stale_generation"));
            }
            Ok(state) => by_db
                .entry(state.database().to_owned())
                .or_default()
                .push(i),
            Err(e) => out[i] = Some(Err(worker::Error::RustError(e.log_detail()))),
        }
    }
    for (database, members) in by_db {
        let group: Vec<QueueBatch> = members.iter().map(|&i| batches[i].clone()).collect();
        match apply_group(group, env, &database).await {
            Ok(outcomes) => {
                for (&i, outcome) in members.iter().zip(outcomes) {
                    out[i] = Some(Ok(outcome));
                }
            }
            Err(e) => {
                crate::log::event(
                    crate::log::Level::Warn,
                    "sweep_group_fallback",
                    &serde_json::json!({ "batches": members.len(), "error": e.to_string() }),
                );
                for &i in &members {
                    out[i] = Some(apply(batches[i].clone(), env).await);
                }
            }
        }
    }
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| Err(worker::Error::RustError("not applied".into()))))
        .collect()
}

/// Applies one batch. Returns `"applied"` or `"duplicate"` (already applied earlier).
pub async fn apply(batch: QueueBatch, env: &Env) -> Result<&'static str> {
    let batch_id = batch.batch_id.clone();
    let state = tenant_state::state(env, &batch.tenant_id)
        .await
        .map_err(|e| worker::Error::RustError(e.log_detail()))?;
    if state.erased() {
        return Ok("dropped_erased");
    }
    if lifecycle::batch_is_stale(batch.generation, state.generation()) {
        return Ok("dropped_stale_generation");
    }
    let database = state.database().to_owned();
    match apply_group(vec![batch], env, &database).await {
        Ok(outcomes) => Ok(outcomes.into_iter().next().unwrap_or("applied")),
        // A concurrent delivery of the same batch may have won the race: then this one is a duplicate.
        Err(e) => {
            let db = d1::named(env, &database)?;
            if d1::rows(&db, &rollup::batch_applied(&batch_id))
                .await?
                .is_empty()
            {
                Err(e)
            } else {
                Ok("duplicate")
            }
        }
    }
}

/// The tenant's plan (its own, or the default plan for a tenant never registered).
async fn plan_of(env: &Env, tenant: &str) -> Result<String> {
    let state = tenant_state::state(env, tenant)
        .await
        .map_err(|e| worker::Error::RustError(e.log_detail()))?;
    Ok(state.tenant.as_ref().map_or_else(
        || crate::env::default_plan(env),
        |t| t.plan.as_str().to_owned(),
    ))
}

/// Quarantines the events of `fresh` batches that would take their tenant past its plan's caps on
/// distinct domains and action names (`caps::enforce`), so free text cannot grow those tables without
/// bound. Deterministic for a batch, so a retried batch is capped the same way.
async fn enforce_caps(
    env: &Env,
    db: &D1Database,
    batches: &mut [QueueBatch],
    fresh: &[usize],
    tenants: &[String],
) -> Result<()> {
    let limits = crate::env::plan_limits(env).unwrap_or_default();
    for tenant in tenants {
        let plan = plan_of(env, tenant).await?;
        let domain_cap = limits.cap(&plan, Quota::Domains);
        let action_cap = limits.cap(&plan, Quota::Actions);
        let lookups = caps::lookups(tenant, domain_cap.max(action_cap).saturating_add(1));
        let found = d1::rows_batch(db, &lookups).await?;
        let values = |i: usize| -> Vec<String> {
            found
                .get(i)
                .into_iter()
                .flatten()
                .filter_map(|r| r.get("value").and_then(|v| v.as_str()).map(str::to_owned))
                .collect()
        };
        let mut domains = caps::Known::new(values(0), domain_cap);
        let mut actions = caps::Known::new(values(1), action_cap);
        for &i in fresh {
            if batches[i].tenant_id != *tenant {
                continue;
            }
            let events = std::mem::take(&mut batches[i].events);
            let (kept, mut refused) = caps::enforce(events, &mut domains, &mut actions);
            batches[i].events = kept;
            batches[i].quarantined.append(&mut refused);
        }
    }
    Ok(())
}
