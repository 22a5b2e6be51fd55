//! The daily visitor-id salt: random per UTC day, stored in D1 so every isolate agrees, cached in the
//! isolate, and deleted by the cron after two days so old visitor ids can never be recomputed.

use std::cell::RefCell;

use starling_core::sql::Statement;
use worker::{D1Database, Result};

use crate::{random, store::d1};

thread_local! {
    static CACHE: RefCell<Option<(String, [u8; 16])>> = const { RefCell::new(None) };
}

/// The salt for `day` (`YYYY-MM-DD`, UTC), created on first use.
pub async fn for_day(db: &D1Database, day: &str) -> Result<[u8; 16]> {
    if let Some(salt) = CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(d, _)| d == day)
            .map(|(_, s)| *s)
    }) {
        return Ok(salt);
    }
    let fresh = random::hex(&random::bytes::<16>());
    let insert = Statement::new(
        "INSERT OR IGNORE INTO salts (day, salt) VALUES (?, ?)",
        vec![day.into(), fresh.into()],
    );
    let select = Statement::new("SELECT salt FROM salts WHERE day = ?", vec![day.into()]);
    let rows = d1::rows_batch(db, &[insert, select]).await?;
    let hex = rows
        .get(1)
        .and_then(|r| r.first())
        .and_then(|row| row.get("salt"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| worker::Error::RustError("salt row missing after insert".into()))?;
    let salt = parse_hex(hex)
        .ok_or_else(|| worker::Error::RustError("stored salt is not 32 hex chars".into()))?;
    CACHE.with(|c| *c.borrow_mut() = Some((day.to_owned(), salt)));
    Ok(salt)
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
