//! R2 spool: accepted batches written before the `202` (a claim check), so a batch survives whatever
//! happens to its queue message.
//!
//! A request with more than [`inline_max_rows`] rows is written here in objects of at most
//! [`OBJECT_MAX_ROWS`] rows, and the queue carries one small pointer per object. The consumer deletes an
//! object only after its batch is committed to D1, so an object that is still here is a batch that may
//! not be applied yet: [`sweep`] (the cron, every minute) applies every object older than
//! [`SWEEP_AFTER_MS`] itself. A lost, dead-lettered or stalled message therefore never loses events,
//! and `applied_batches` keeps the application exactly-once whoever gets there first.
//!
//! Keys are `spool/{received_ms, 13 digits}/{batch_id}.json`, so a listing is oldest first.

use starling_core::event::QueueBatch;
use worker::{Bucket, Env, Result};

use crate::store::archive;

/// Requests with at most this many rows travel inline in their queue message (beacons, small batches)
/// unless `SPOOL_INLINE_MAX_ROWS` says otherwise.
const INLINE_MAX_ROWS: usize = 100;

/// Rows up to which a request travels inline: `SPOOL_INLINE_MAX_ROWS`, or [`INLINE_MAX_ROWS`]. Queues
/// are durable in production, so inline messages are safe there and cost no R2 write; the local
/// runtime's queue is kept in memory (and stalls under long deliveries), so `scripts/dev.sh` and the
/// tests set 0: every accepted request is in R2 before its `202`.
pub fn inline_max_rows(env: &Env) -> usize {
    crate::env::var(env, crate::env::SPOOL_INLINE_MAX_ROWS)
        .and_then(|v| v.parse().ok())
        .unwrap_or(INLINE_MAX_ROWS)
}
/// Rows per spooled object: one consumer group's worth, so one object is read per group.
pub const OBJECT_MAX_ROWS: usize = 2_000;
/// A spooled batch older than this is applied by the sweep (its message is late, lost or dead);
/// `SPOOL_SWEEP_AFTER_SECS` overrides it (tests use a few seconds).
const SWEEP_AFTER_MS: i64 = 120_000;
/// Objects one sweep applies at most (the rest wait for the next run).
const SWEEP_MAX_OBJECTS: usize = 200;
/// A sweep takes no new object after this long (the rest wait for the next minute). Locally, a
/// 1,000-row object takes about 0.3 to 0.7 s to apply on its own, and the local runtime starts no
/// fetch or queue event while a scheduled event runs (measured: health checks waited up to 25 s
/// behind a 32-object sweep), so an unbounded sweep stalls the whole worker there.
const SWEEP_BUDGET_MS: i64 = 8_000;

/// The key of a spooled batch.
pub fn key(received_ms: i64, batch_id: &str) -> String {
    format!("spool/{received_ms:013}/{batch_id}.json")
}

/// The batch id of part `n` of a streamed request. Parts are written before the request is decided,
/// so the sweep applies them only once the request's commit marker exists ([`commit`]).
pub fn part_id(request_id: &str, n: usize) -> String {
    format!("{request_id}-p{n}")
}

/// The key of a streamed request's commit marker: written after all its parts, before its `2xx`.
fn commit_key(received_ms: i64, request_id: &str) -> String {
    format!("spool/{received_ms:013}/{request_id}.commit")
}

/// Marks a streamed request's parts as accepted.
pub async fn commit(bucket: &Bucket, received_ms: i64, request_id: &str) -> Result<()> {
    bucket
        .put(commit_key(received_ms, request_id), Vec::<u8>::new())
        .execute()
        .await?;
    Ok(())
}

/// For a part key (`spool/{ms}/{request}-p{n}.json`): its commit marker's key.
fn part_commit_key(key: &str) -> Option<String> {
    let name = key.strip_suffix(".json")?;
    let (request, n) = name.rsplit_once("-p")?;
    n.parse::<usize>().ok()?;
    Some(format!("{request}.commit"))
}

/// Streamed parts whose request never committed (refused, or the isolate died mid-request) are
/// deleted by the sweep after this long.
const ORPHAN_AFTER_MS: i64 = 600_000;

/// The time a spool key was written, from the key itself.
fn received_ms(key: &str) -> Option<i64> {
    key.strip_prefix("spool/")?.split('/').next()?.parse().ok()
}

/// Writes a batch (its events and quarantined rows) under `key`.
pub async fn put(bucket: &Bucket, key: &str, batch: &QueueBatch) -> Result<()> {
    let body = serde_json::to_vec(batch).map_err(|e| worker::Error::RustError(e.to_string()))?;
    bucket.put(key, body).execute().await?;
    Ok(())
}

/// Reads a spooled batch; `None` when the object is gone (it was applied and deleted).
pub async fn get(bucket: &Bucket, key: &str) -> Result<Option<QueueBatch>> {
    let Some(object) = bucket.get(key).execute().await? else {
        return Ok(None);
    };
    let Some(body) = object.body() else {
        return Ok(None);
    };
    let bytes = body.bytes().await?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| worker::Error::RustError(format!("spooled batch {key}: {e}")))
}

/// Deletes applied batches' objects.
pub async fn delete(bucket: &Bucket, keys: Vec<String>) -> Result<()> {
    if !keys.is_empty() {
        bucket.delete_multiple(keys).await?;
    }
    Ok(())
}

/// Applies every spooled batch older than [`SWEEP_AFTER_MS`] (at most [`SWEEP_MAX_OBJECTS`] per run)
/// and deletes it. Returns (objects applied or found already applied, objects that failed).
pub async fn sweep(env: &Env) -> (usize, usize) {
    let now = crate::clock::now_ms();
    let after_ms = crate::env::var(env, crate::env::SPOOL_SWEEP_AFTER_SECS)
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(SWEEP_AFTER_MS, |s| s.max(0) * 1000);
    let listed = match archive::bucket(env) {
        Ok(bucket) => archive::list_keys(&bucket, "spool/", SWEEP_MAX_OBJECTS)
            .await
            .map(|keys| (bucket, keys)),
        Err(e) => Err(e),
    };
    let (bucket, keys) = match listed {
        Ok(found) => found,
        Err(e) => {
            crate::log::event(
                crate::log::Level::Error,
                "spool_sweep",
                &serde_json::json!({ "error": e.to_string() }),
            );
            return (0, 0);
        }
    };
    let (mut done, mut failed) = (0, 0);
    let mut pending: Vec<(String, QueueBatch)> = Vec::new();
    let mut pending_rows = 0;
    for key in keys {
        if crate::clock::now_ms() - now > SWEEP_BUDGET_MS {
            break; // the next run continues, oldest first
        }
        let Some(at) = received_ms(&key) else {
            continue;
        };
        if now - at < after_ms {
            break; // oldest first: everything after this is younger
        }
        if let Some(prefix) = key.strip_suffix(".commit") {
            // A commit marker outlives its parts only until they are all applied.
            let parts = archive::list_keys(&bucket, &format!("{prefix}-p"), 1).await;
            if parts.is_ok_and(|p| p.is_empty()) {
                let _ = delete(&bucket, vec![key.clone()]).await;
            }
            continue;
        }
        if let Some(marker) = part_commit_key(&key) {
            match bucket.head(&marker).await {
                Ok(Some(_)) => {}
                Ok(None) if now - at >= ORPHAN_AFTER_MS => {
                    let _ = delete(&bucket, vec![key.clone()]).await;
                    continue;
                }
                _ => continue, // not (yet) accepted: never applied by the sweep
            }
        }
        // Due batches are applied in groups, as a queue delivery's are (`consumer::apply_many`).
        match get(&bucket, &key).await {
            Ok(Some(batch)) => {
                pending_rows += batch.rows();
                pending.push((key, batch));
            }
            Ok(None) => done += 1, // gone: applied and deleted meanwhile
            Err(e) => {
                failed += 1;
                crate::log::event(
                    crate::log::Level::Error,
                    "spool_sweep_batch",
                    &serde_json::json!({ "key": key, "error": e.to_string() }),
                );
            }
        }
        if pending_rows >= crate::consumer::GROUP_EVENTS {
            let (d, f) = apply_pending(env, &bucket, std::mem::take(&mut pending)).await;
            (done, failed, pending_rows) = (done + d, failed + f, 0);
        }
    }
    let (d, f) = apply_pending(env, &bucket, pending).await;
    (done, failed) = (done + d, failed + f);
    if done + failed > 0 {
        crate::log::event(
            if failed > 0 {
                crate::log::Level::Warn
            } else {
                crate::log::Level::Info
            },
            "spool_sweep",
            &serde_json::json!({ "applied": done, "failed": failed }),
        );
    }
    (done, failed)
}

/// Applies spooled batches as groups and deletes the objects of those applied (or found applied);
/// returns (applied, failed). A failed batch keeps its object for the next run.
async fn apply_pending(
    env: &Env,
    bucket: &Bucket,
    pending: Vec<(String, QueueBatch)>,
) -> (usize, usize) {
    if pending.is_empty() {
        return (0, 0);
    }
    let (keys, batches): (Vec<String>, Vec<QueueBatch>) = pending.into_iter().unzip();
    let outcomes = crate::consumer::apply_many(batches, env).await;
    let (mut applied, mut failed) = (Vec::new(), 0);
    for (key, outcome) in keys.into_iter().zip(outcomes) {
        match outcome {
            Ok(_) => applied.push(key),
            Err(e) => {
                failed += 1;
                crate::log::event(
                    crate::log::Level::Error,
                    "spool_sweep_batch",
                    &serde_json::json!({ "key": key, "error": e.to_string() }),
                );
            }
        }
    }
    let done = applied.len();
    if let Err(e) = delete(bucket, applied).await {
        crate::log::event(
            crate::log::Level::Warn,
            "spool_delete",
            &serde_json::json!({ "error": e.to_string() }),
        );
    }
    (done, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_and_give_it_back() {
        let a = key(1_700_000_000_000, "r1-0");
        let b = key(1_700_000_000_001, "r0-0");
        assert!(a < b);
        assert_eq!(received_ms(&a), Some(1_700_000_000_000));
        assert_eq!(received_ms("events/x"), None);
    }

    #[test]
    fn parts_name_their_commit_marker_and_other_batches_need_none() {
        let part = key(1_700_000_000_000, &part_id("req1", 3));
        assert_eq!(
            part_commit_key(&part).as_deref(),
            Some("spool/1700000000000/req1.commit")
        );
        assert_eq!(part_commit_key(&key(1, "req1-s0")), None);
        assert_eq!(part_commit_key(&key(1, "req-pig-0")), None);
    }
}
