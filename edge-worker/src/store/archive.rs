//! R2: the raw event archive, NDJSON objects partitioned by tenant, date and hour.
//!
//! Keys: `events/{tenant}/{YYYY-MM-DD}/{HH}/{batch_id}.ndjson` and
//! `quarantine/{tenant}/{YYYY-MM-DD}/{batch_id}.ndjson`. A batch always writes the same keys, so a
//! redelivered batch overwrites its own objects instead of duplicating them.

use std::collections::BTreeMap;

use starling_core::event::{EnrichedEvent, Quarantined};
use starling_core::time::day_string;
use worker::{Bucket, Env, HttpMetadata, Objects, Result};

use crate::env;

/// The archive bucket binding.
pub fn bucket(env: &Env) -> Result<Bucket> {
    env.bucket(env::ARCHIVE)
}

/// Object key prefix for a tenant's events of one UTC day.
pub fn day_prefix(tenant: &str, day: &str) -> String {
    format!("events/{tenant}/{day}/")
}

/// Writes a batch's events, one object per (date, hour), and its quarantined rows. Returns the bytes
/// written (for usage metering).
pub async fn write_batch(
    bucket: &Bucket,
    tenant: &str,
    batch_id: &str,
    received_secs: i64,
    events: &[EnrichedEvent],
    quarantined: &[Quarantined],
) -> Result<usize> {
    let mut parts: BTreeMap<(String, i64), String> = BTreeMap::new();
    for e in events {
        let ts = e.ts_secs();
        let key = (day_string(ts), ts.rem_euclid(86_400) / 3600);
        let buf = parts.entry(key).or_default();
        buf.push_str(
            &serde_json::to_string(e).map_err(|e| worker::Error::RustError(e.to_string()))?,
        );
        buf.push('\n');
    }
    let mut written = 0;
    for ((day, hour), body) in parts {
        written += body.len();
        put(
            bucket,
            format!("events/{tenant}/{day}/{hour:02}/{batch_id}.ndjson"),
            body,
        )
        .await?;
    }
    if !quarantined.is_empty() {
        let mut body = String::new();
        for q in quarantined {
            body.push_str(
                &serde_json::to_string(q).map_err(|e| worker::Error::RustError(e.to_string()))?,
            );
            body.push('\n');
        }
        let day = day_string(received_secs);
        written += body.len();
        put(
            bucket,
            format!("quarantine/{tenant}/{day}/{batch_id}.ndjson"),
            body,
        )
        .await?;
    }
    Ok(written)
}

async fn put(bucket: &Bucket, key: String, body: String) -> Result<()> {
    bucket
        .put(key, body.into_bytes())
        .http_metadata(HttpMetadata {
            content_type: Some("application/x-ndjson".into()),
            ..Default::default()
        })
        .execute()
        .await?;
    Ok(())
}

/// Every archived event of a tenant for one UTC day, in key order.
pub async fn read_day(bucket: &Bucket, tenant: &str, day: &str) -> Result<Vec<EnrichedEvent>> {
    let prefix = day_prefix(tenant, day);
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = list_page(bucket, &prefix, false, cursor).await?;
        for obj in page.objects() {
            let Some(o) = bucket.get(obj.key()).execute().await? else {
                continue;
            };
            let Some(body) = o.body() else { continue };
            for line in body.text().await?.lines().filter(|l| !l.is_empty()) {
                match serde_json::from_str::<EnrichedEvent>(line) {
                    Ok(e) => events.push(e),
                    Err(_) => crate::log::event(
                        crate::log::Level::Warn,
                        "archive_bad_line",
                        &serde_json::json!({ "key": obj.key() }),
                    ),
                }
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(events)
}

/// Deletes every object under `prefix`; returns how many.
pub async fn delete_prefix(bucket: &Bucket, prefix: &str) -> Result<u64> {
    let mut deleted = 0;
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = list_page(bucket, prefix, false, cursor).await?;
        let keys: Vec<String> = page.objects().iter().map(|o| o.key()).collect();
        if !keys.is_empty() {
            deleted += keys.len() as u64;
            bucket.delete_multiple(keys).await?;
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(deleted)
}

/// Up to `max` object keys under `prefix`, in key order.
pub async fn list_keys(bucket: &Bucket, prefix: &str, max: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    while out.len() < max {
        let (page, next) = list_page(bucket, prefix, false, cursor).await?;
        out.extend(page.objects().iter().map(|o| o.key()));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.truncate(max);
    Ok(out)
}

/// The day folders (`{prefix}{YYYY-MM-DD}/`) directly under a tenant prefix.
pub async fn day_folders(bucket: &Bucket, prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = list_page(bucket, prefix, true, cursor).await?;
        out.extend(page.delimited_prefixes());
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(out)
}

/// One page (up to 1,000 entries) of a listing under `prefix`, grouped into folders at `/` when
/// `folders`; with the cursor of the next page, `None` after the last.
async fn list_page(
    bucket: &Bucket,
    prefix: &str,
    folders: bool,
    cursor: Option<String>,
) -> Result<(Objects, Option<String>)> {
    let mut list = bucket.list().prefix(prefix.to_owned()).limit(1000);
    if folders {
        list = list.delimiter("/");
    }
    if let Some(c) = cursor {
        list = list.cursor(c);
    }
    let page = list.execute().await?;
    let next = if page.truncated() {
        page.cursor()
    } else {
        None
    };
    Ok((page, next))
}
