//! Queue consumer: accepted batches → R2 archive → D1 rollups, each batch applied at most once.
//!
//! Order matters for durability: the archive is written before the rollups, and a message is acked
//! only when both are done. A failure retries that message alone (`msg.retry()`); after the queue's
//! `max_retries` it goes to the dead-letter queue, from which it can be replayed.
//!
//! Each batch is applied to its tenant's database (a silo tenant's own D1, or the pool `DB`), with the
//! tenant's usage counters in the same transaction. Batches of an erased tenant are dropped.

use std::collections::{BTreeMap, HashSet};

use futures_util::future::join_all;
use starling_core::event::{EnrichedEvent, QueueBatch};
use starling_core::identity::assign_sessions;
use starling_core::rollup;
use starling_core::usage;
use worker::{Env, Message, MessageBatch, MessageExt, Result};

use crate::store::{archive, d1, visits};
use crate::tenants;

/// Most events one grouped transaction takes; larger deliveries are split into several groups.
const GROUP_EVENTS: usize = 2_000;

/// Applies every message of a queue delivery; never fails as a whole.
///
/// Fast path: the messages are applied in groups, each group as one D1 transaction (one guard per
/// batch id, rollup deltas aggregated over the whole group). Beacons arrive one event per message, so
/// this turns a hundred small transactions into one. If a group fails (a race with a redelivery, a D1
/// error), its messages are applied one by one, each acked or retried on its own.
pub async fn consume(batch: MessageBatch<QueueBatch>, env: &Env) {
    let messages = match batch.messages() {
        Ok(m) => m,
        Err(e) => {
            crate::log::event(
                "error",
                "queue_decode",
                &serde_json::json!({ "error": e.to_string() }),
            );
            batch.retry_all();
            return;
        }
    };
    // Messages by the database that holds their tenant's data; erased tenants' batches are dropped.
    let mut by_db: BTreeMap<String, Vec<Message<QueueBatch>>> = BTreeMap::new();
    for msg in messages {
        match tenants::state(env, &msg.body().tenant_id).await {
            Ok(state) if state.erased() => {
                log_batch(
                    msg.body(),
                    worker::Date::now().as_millis(),
                    Ok("dropped_erased"),
                );
                msg.ack();
            }
            Ok(state) => by_db
                .entry(state.database().to_owned())
                .or_default()
                .push(msg),
            Err(e) => {
                crate::log::event(
                    "error",
                    "queue_tenant_lookup",
                    &serde_json::json!({ "error": e.log_detail() }),
                );
                msg.retry();
            }
        }
    }
    let mut groups: Vec<(String, Vec<Message<QueueBatch>>)> = Vec::new();
    for (database, messages) in by_db {
        let mut events = GROUP_EVENTS;
        for msg in messages {
            let n = msg.body().events.len() + msg.body().quarantined.len();
            if events + n > GROUP_EVENTS && events > 0 {
                groups.push((database.clone(), Vec::new()));
                events = 0;
            }
            events += n;
            groups.last_mut().expect("one group").1.push(msg);
        }
    }
    for (database, group) in groups.into_iter().filter(|(_, g)| !g.is_empty()) {
        let started = worker::Date::now().as_millis();
        let bodies: Vec<QueueBatch> = group.iter().map(|m| m.body().clone()).collect();
        match apply_group(bodies, env, &database).await {
            Ok(outcomes) => {
                for (msg, outcome) in group.iter().zip(outcomes) {
                    log_batch(msg.body(), started, Ok(outcome));
                    msg.ack();
                }
            }
            Err(e) => {
                crate::log::event(
                    "warn",
                    "queue_group_fallback",
                    &serde_json::json!({ "messages": group.len(), "error": e.to_string() }),
                );
                for msg in group {
                    let started = worker::Date::now().as_millis();
                    let result = apply(msg.body().clone(), env).await;
                    let ok = result.is_ok();
                    log_batch(msg.body(), started, result);
                    if ok {
                        msg.ack();
                    } else {
                        msg.retry();
                    }
                }
            }
        }
    }
}

fn log_batch(body: &QueueBatch, started: u64, result: Result<&'static str>) {
    let ok = result.is_ok();
    let fields = serde_json::json!({
        "batch_id": body.batch_id,
        "tenant": body.tenant_id,
        "events": body.events.len(),
        "quarantined": body.quarantined.len(),
        "latency_ms": worker::Date::now().as_millis() - started,
        "outcome": match &result { Ok(o) => o.to_string(), Err(e) => e.to_string() },
    });
    crate::log::event(if ok { "info" } else { "error" }, "queue_batch", &fields);
}

/// Applies several batches in one D1 transaction; returns each batch's outcome in order. An error means
/// nothing was committed to D1 (archive objects may have been written; they are overwritten on retry).
async fn apply_group(
    mut batches: Vec<QueueBatch>,
    env: &Env,
    database: &str,
) -> Result<Vec<&'static str>> {
    let db = d1::named(env, database)?;
    let ids: Vec<&str> = batches.iter().map(|b| b.batch_id.as_str()).collect();
    let mut applied: HashSet<String> = HashSet::new();
    for lookup in rollup::batches_applied(&ids) {
        for row in d1::rows(&db, &lookup).await? {
            if let Some(id) = row.get("batch_id").and_then(|v| v.as_str()) {
                applied.insert(id.to_owned());
            }
        }
    }
    let fresh: Vec<usize> = (0..batches.len())
        .filter(|&i| !applied.contains(&batches[i].batch_id))
        .collect();

    // Sessions per tenant over the whole group, so one visitor's beacons in a delivery share a session.
    let mut tenants: Vec<String> = fresh
        .iter()
        .map(|&i| batches[i].tenant_id.clone())
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut prior = rollup::PriorState::default();
    for tenant in &tenants {
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

    // The archive first (each batch under its own keys), written concurrently.
    let bucket = archive::bucket(env)?;
    let writes = fresh.iter().map(|&i| {
        let b = &batches[i];
        archive::write_batch(
            &bucket,
            &b.tenant_id,
            &b.batch_id,
            b.received_at.div_euclid(1000),
            &b.events,
            &b.quarantined,
        )
    });
    let mut archived_bytes = Vec::with_capacity(fresh.len());
    for written in join_all(writes).await {
        archived_bytes.push(written? as i64);
    }

    let now_secs = (worker::Date::now().as_millis() / 1000) as i64;
    let mut statements: Vec<_> = fresh
        .iter()
        .map(|&i| rollup::batch_guard(&batches[i].batch_id, now_secs))
        .collect();
    let events: Vec<EnrichedEvent> = fresh
        .iter()
        .flat_map(|&i| batches[i].events.iter().cloned())
        .collect();
    statements.extend(rollup::statements_for(&events, &prior, now_secs));
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
    d1::run_atomic(&db, &statements).await?;
    Ok(batches
        .iter()
        .map(|b| {
            if applied.contains(&b.batch_id) {
                "duplicate"
            } else {
                "applied"
            }
        })
        .collect())
}

/// Applies one batch. Returns `"applied"` or `"duplicate"` (already applied earlier).
pub async fn apply(batch: QueueBatch, env: &Env) -> Result<&'static str> {
    let batch_id = batch.batch_id.clone();
    let state = tenants::state(env, &batch.tenant_id)
        .await
        .map_err(|e| worker::Error::RustError(e.log_detail()))?;
    if state.erased() {
        return Ok("dropped_erased");
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
