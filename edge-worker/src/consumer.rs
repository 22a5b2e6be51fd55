//! Queue consumer: accepted batches → R2 archive → D1 rollups, each batch applied at most once.
//!
//! Order matters for durability: the archive is written before the rollups, and a message is acked
//! only when both are done. A failure retries that message alone (`msg.retry()`); after the queue's
//! `max_retries` it goes to the dead-letter queue, from which it can be replayed.

use std::collections::HashMap;

use starling_core::event::QueueBatch;
use starling_core::identity::assign_sessions;
use starling_core::rollup;
use worker::{D1Database, Env, MessageBatch, MessageExt, Result};

use crate::store::{archive, d1};

/// Applies every message of a queue batch; never fails as a whole.
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
    for msg in messages {
        let started = worker::Date::now().as_millis();
        let body = msg.body();
        let result = apply(body.clone(), env).await;
        let fields = serde_json::json!({
            "batch_id": body.batch_id,
            "tenant": body.tenant_id,
            "events": body.events.len(),
            "quarantined": body.quarantined.len(),
            "latency_ms": worker::Date::now().as_millis() - started,
            "outcome": match &result { Ok(o) => o.to_string(), Err(e) => e.to_string() },
        });
        match result {
            Ok(_) => {
                crate::log::event("info", "queue_batch", &fields);
                msg.ack();
            }
            Err(_) => {
                crate::log::event("error", "queue_batch", &fields);
                msg.retry();
            }
        }
    }
}

/// Applies one batch. Returns `"applied"` or `"duplicate"` (already applied earlier).
pub async fn apply(mut batch: QueueBatch, env: &Env) -> Result<&'static str> {
    let db = d1::db(env)?;
    if !d1::rows(&db, &rollup::batch_applied(&batch.batch_id))
        .await?
        .is_empty()
    {
        return Ok("duplicate");
    }
    let prior = prior_sessions(&db, &batch).await?;
    assign_sessions(&mut batch.events, &prior);

    let received_secs = batch.received_at.div_euclid(1000);
    archive::write_batch(
        &archive::bucket(env)?,
        &batch.tenant_id,
        &batch.batch_id,
        received_secs,
        &batch.events,
        &batch.quarantined,
    )
    .await?;

    let now_secs = (worker::Date::now().as_millis() / 1000) as i64;
    let mut statements = vec![rollup::batch_guard(&batch.batch_id, now_secs)];
    statements.extend(rollup::statements_for(&batch.events, now_secs));
    statements.extend(rollup::quarantine_statements(
        &batch.tenant_id,
        received_secs,
        &batch.quarantined,
    ));
    match d1::run_atomic(&db, &statements).await {
        Ok(()) => Ok("applied"),
        // A concurrent delivery of the same batch may have won the race: then this one is a duplicate.
        Err(e)
            if !d1::rows(&db, &rollup::batch_applied(&batch.batch_id))
                .await?
                .is_empty() =>
        {
            let _ = e;
            Ok("duplicate")
        }
        Err(e) => Err(e),
    }
}

/// The latest known session of each visitor in the batch that arrived without a client session id.
async fn prior_sessions(
    db: &D1Database,
    batch: &QueueBatch,
) -> Result<HashMap<String, (String, i64)>> {
    let mut visitors: Vec<&str> = batch
        .events
        .iter()
        .filter(|e| e.session_id.is_none() && !e.is_bot)
        .map(|e| e.visitor_id.as_str())
        .collect();
    visitors.sort_unstable();
    visitors.dedup();
    let mut prior = HashMap::new();
    for lookup in rollup::prior_sessions_lookup(&batch.tenant_id, &visitors) {
        for row in d1::rows(db, &lookup).await? {
            let (Some(v), Some(k), Some(t)) = (
                row.get("visitor_id").and_then(|v| v.as_str()),
                row.get("session_key").and_then(|v| v.as_str()),
                row.get("last_ts").and_then(|v| v.as_i64()),
            ) else {
                continue;
            };
            prior.insert(v.to_owned(), (k.to_owned(), t));
        }
    }
    Ok(prior)
}
