//! R2: the raw event archive, NDJSON objects partitioned by tenant, date and hour.
//!
//! Keys: `events/{tenant}/{YYYY-MM-DD}/{HH}/{object}.ndjson` and
//! `quarantine/{tenant}/{YYYY-MM-DD}/{object}.ndjson`, one object per consumer group (a queue delivery
//! is one or a few groups), each row tagged with its `batch_id`. A batch can end up in two objects (its
//! group failed after writing, then it was applied alone); [`read_day`] reads it once. Objects written
//! before the tag existed hold one batch each, under the batch's id.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use starling_core::archive;
use starling_core::event::{EnrichedEvent, QueueBatch};
use starling_core::query::{HitsScan, TimeZone};
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

/// Writes the archive objects of one consumer group (several batches, possibly several tenants): one
/// object per (tenant, date, hour) for the events and one per (tenant, date) for the quarantined rows,
/// each row tagged with its batch id ([`starling_core::archive`]). `object_id` names the group's objects;
/// a batch applied again alone later (the group's transaction failed) is written under its own id and
/// read back once. Returns the bytes written per batch, in order (for usage metering).
pub async fn write_group(
    bucket: &Bucket,
    object_id: &str,
    batches: &[&QueueBatch],
) -> Result<Vec<usize>> {
    let mut bytes = vec![0; batches.len()];
    let mut objects: BTreeMap<String, String> = BTreeMap::new();
    for (i, b) in batches.iter().enumerate() {
        let mut by_hour: BTreeMap<(String, i64), Vec<&EnrichedEvent>> = BTreeMap::new();
        for e in &b.events {
            let ts = e.ts_secs();
            by_hour
                .entry((day_string(ts), ts.rem_euclid(86_400) / 3600))
                .or_default()
                .push(e);
        }
        for ((day, hour), events) in by_hour {
            let key = format!("events/{}/{day}/{hour:02}/{object_id}.ndjson", b.tenant_id);
            bytes[i] +=
                archive::append_events(objects.entry(key).or_default(), &b.batch_id, &events);
        }
        if !b.quarantined.is_empty() {
            let day = day_string(b.received_at.div_euclid(1000));
            let key = format!("quarantine/{}/{day}/{object_id}.ndjson", b.tenant_id);
            bytes[i] += archive::append_quarantined(
                objects.entry(key).or_default(),
                &b.batch_id,
                &b.quarantined,
            );
        }
    }
    let writes = objects
        .into_iter()
        .map(|(key, body)| put(bucket, key, body));
    for written in join_all(writes).await {
        written?;
    }
    Ok(bytes)
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

/// Every archived event of a tenant for one UTC day, in key order, each batch's rows once per hour
/// folder (see the module docs).
pub async fn read_day(bucket: &Bucket, tenant: &str, day: &str) -> Result<Vec<EnrichedEvent>> {
    let prefix = day_prefix(tenant, day);
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    let mut folder = (String::new(), archive::Reader::new());
    loop {
        let (page, next) = list_page(bucket, &prefix, false, cursor).await?;
        for obj in page.objects() {
            let key = obj.key();
            let hour = key[prefix.len()..].split('/').next().unwrap_or_default();
            if hour != folder.0 {
                folder = (hour.to_owned(), archive::Reader::new());
            }
            let Some(o) = bucket.get(&key).execute().await? else {
                continue;
            };
            let Some(body) = o.body() else { continue };
            let (mut read, bad) = folder.1.read_object(&body.text().await?);
            events.append(&mut read);
            if bad > 0 {
                crate::log::event(
                    crate::log::Level::Warn,
                    "archive_bad_line",
                    &serde_json::json!({ "key": key, "lines": bad }),
                );
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(events)
}

/// One page of `analytics_hits` ([`starling_core::query::HitsScan`]): the tenant's day folders newest
/// first, each day's hour folders newest first (one delimited listing per day), each folder's objects
/// in key order (fetched together), until the page is full or the next folder would pass the object
/// budget. Every listing is under `events/{tenant}/` of the verified tenant.
pub async fn read_hits(
    bucket: &Bucket,
    scan: &HitsScan,
    tz: &dyn TimeZone,
) -> Result<(starling_core::query::Output, bool)> {
    let mut collector = scan.collector();
    'days: for day in scan.day_prefixes() {
        let folders = day_folders(bucket, &day).await?;
        for (_, folder) in scan.newest_first(&folders) {
            let keys = list_keys(bucket, folder, collector.objects_left() + 1).await?;
            if keys.len() > collector.objects_left() {
                collector.stop_at_budget();
                break 'days;
            }
            let texts = join_all(keys.iter().map(|k| get_text(bucket, k))).await;
            let texts: Vec<String> = texts
                .into_iter()
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect();
            if collector.add_folder(&texts) {
                break 'days;
            }
        }
    }
    if collector.bad_lines() > 0 {
        crate::log::event(
            crate::log::Level::Warn,
            "archive_bad_line",
            &serde_json::json!({ "scan": "analytics_hits", "lines": collector.bad_lines() }),
        );
    }
    let truncated = collector.truncated();
    Ok((collector.finish(tz), truncated))
}

/// An object's text, or `None` when it is gone (deleted between the listing and the read).
async fn get_text(bucket: &Bucket, key: &str) -> Result<Option<String>> {
    let Some(o) = bucket.get(key).execute().await? else {
        return Ok(None);
    };
    match o.body() {
        Some(body) => Ok(Some(body.text().await?)),
        None => Ok(None),
    }
}

/// Deletes these objects (missing ones are no error), up to 1,000 keys per R2 call.
pub async fn delete_keys(bucket: &Bucket, keys: Vec<String>) -> Result<()> {
    for chunk in keys.chunks(1000) {
        bucket.delete_multiple(chunk.to_vec()).await?;
    }
    Ok(())
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

/// The folders directly under `prefix`: day folders (`{prefix}{YYYY-MM-DD}/`) under a tenant prefix,
/// hour folders (`{day}{HH}/`) under a day.
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
