//! Snapshots in the Cache API of what ingest reads from D1: a tenant's registry row with its revoked
//! token ids, and the daily salts. An isolate keeps what it read in memory (`tenants`, `salt`), but a
//! *new* isolate starts empty: during a D1 outage it reads these instead, so it can still accept
//! events (the consumer applies them once D1 is back). The Cache API is per location and persisted by
//! the local runtime across restarts; entries expire by `max-age` (a salt with its day, so it cannot
//! outlive the copy in D1 by more than a day).

use serde_json::Value;
use worker::{Cache, Response, Result};

const BASE: &str = "https://snapshot.starling.internal/v1/";

/// Stores `value` under `name` for `max_age_secs`.
pub async fn put(name: &str, value: &Value, max_age_secs: u64) -> Result<()> {
    let mut resp = Response::from_json(value)?;
    resp.headers_mut()
        .set("Cache-Control", &format!("public, max-age={max_age_secs}"))?;
    Cache::default().put(format!("{BASE}{name}"), resp).await
}

/// The value stored under `name`, if any and not expired.
pub async fn get(name: &str) -> Option<Value> {
    let mut hit = Cache::default()
        .get(format!("{BASE}{name}"), false)
        .await
        .ok()??;
    hit.json().await.ok()
}
