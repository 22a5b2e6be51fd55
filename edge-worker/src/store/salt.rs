//! The daily visitor-id salt: random per UTC day, stored in D1 so every isolate agrees, cached in the
//! isolate, and deleted by the cron after two days so old visitor ids can never be recomputed.

use std::cell::RefCell;

use starling_core::sql::Statement;
use worker::{D1Database, Result};

use crate::{random, store::d1};

thread_local! {
    /// Salts this isolate holds, by day: today's and tomorrow's, so ingest keeps its visitor ids through
    /// a D1 outage, even one that spans midnight UTC.
    static CACHE: RefCell<Vec<(String, [u8; 16])>> = const { RefCell::new(Vec::new()) };
}

fn cached(day: &str) -> Option<[u8; 16]> {
    CACHE.with(|c| c.borrow().iter().find(|(d, _)| d == day).map(|(_, s)| *s))
}

/// The salt for `day` (`YYYY-MM-DD`, UTC), created on first use; the next day's salt is created and
/// cached at the same time, and both are snapshotted in the Cache API. When D1 cannot be read, an
/// isolate that holds no salt for `day` takes it from that snapshot ([`super::snapshot`]).
pub async fn for_day(db: &D1Database, day: &str) -> Result<[u8; 16]> {
    if let Some(salt) = cached(day) {
        return Ok(salt);
    }
    match from_d1(db, day).await {
        Ok((salt, found)) => {
            for (d, s) in &found {
                save_snapshot(d, s).await;
            }
            CACHE.with(|c| *c.borrow_mut() = found);
            Ok(salt)
        }
        Err(e) => {
            let snap = super::snapshot::get(&snapshot_name(day))
                .await
                .and_then(|v| v.as_str().and_then(parse_hex));
            let Some(salt) = snap else { return Err(e) };
            crate::log::event(
                crate::log::Level::Warn,
                "salt_from_snapshot",
                &serde_json::json!({ "day": day, "error": e.to_string() }),
            );
            CACHE.with(|c| c.borrow_mut().push((day.to_owned(), salt)));
            Ok(salt)
        }
    }
}

fn snapshot_name(day: &str) -> String {
    format!("salt/{day}")
}

/// Snapshots a day's salt until the end of the next UTC day (the cron deletes it from D1 about then).
async fn save_snapshot(day: &str, salt: &[u8; 16]) {
    let Some(days) = starling_core::time::parse_day(day) else {
        return;
    };
    let now = crate::clock::now_secs();
    let max_age = ((days + 2) * 86_400 - now).max(0) as u64;
    let value = serde_json::Value::from(random::hex(salt));
    if let Err(e) = super::snapshot::put(&snapshot_name(day), &value, max_age).await {
        crate::log::event(
            crate::log::Level::Warn,
            "salt_snapshot_write",
            &serde_json::json!({ "day": day, "error": e.to_string() }),
        );
    }
}

/// Reads (creating if needed) the salts of `day` and the next day from D1.
async fn from_d1(db: &D1Database, day: &str) -> Result<([u8; 16], Vec<(String, [u8; 16])>)> {
    let next = next_day(day);
    let mut statements = Vec::new();
    for d in [day, next.as_str()] {
        let fresh = random::hex(&random::bytes::<16>());
        statements.push(Statement::new(
            "INSERT OR IGNORE INTO salts (day, salt) VALUES (?, ?)",
            vec![d.into(), fresh.into()],
        ));
    }
    statements.push(Statement::new(
        "SELECT day, salt FROM salts WHERE day IN (?, ?)",
        vec![day.into(), next.as_str().into()],
    ));
    let rows = d1::rows_batch(db, &statements).await?;
    let mut found: Vec<(String, [u8; 16])> = Vec::new();
    for row in rows.last().into_iter().flatten() {
        let (Some(d), Some(hex)) = (
            row.get("day").and_then(|v| v.as_str()),
            row.get("salt").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let salt = parse_hex(hex)
            .ok_or_else(|| worker::Error::RustError("stored salt is not 32 hex chars".into()))?;
        found.push((d.to_owned(), salt));
    }
    let salt = found
        .iter()
        .find(|(d, _)| d == day)
        .map(|(_, s)| *s)
        .ok_or_else(|| worker::Error::RustError("salt row missing after insert".into()))?;
    Ok((salt, found))
}

/// The UTC day after `day` (`YYYY-MM-DD`); `day` itself if it does not parse.
fn next_day(day: &str) -> String {
    starling_core::time::parse_day(day)
        .map(|days| starling_core::time::day_string((days + 1) * 86_400))
        .unwrap_or_else(|| day.to_owned())
}

fn parse_hex(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}
