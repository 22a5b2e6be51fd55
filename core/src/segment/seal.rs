//! Sealing closed UTC days into segments: the statements the hourly cron runs, and the rows it reads
//! turned into [`VisitRow`]s (copy mode: the visit rows stay in D1).
//!
//! Per tenant: [`days_to_seal`] lists the closed days with visits (all-visits `visit_daily` rows, read
//! on the table's primary key) whose segment is missing or stale (`migrations/0019_segment_days.sql`);
//! for each, [`read_day`] is one D1 batch (one transaction: the version and the rows agree) that
//! registers the day, reads its version, its visits and their pages; [`rows_of`] joins them; the
//! worker encodes ([`super::encode`]), writes the object at [`object_key`], then runs
//! [`mark_sealed`] with the version read. A write to the day's visit rows in between bumps the
//! version, so the day stays stale and is sealed again on a later run.

use serde_json::{Map, Value};

use super::{PageRow, SegmentError, VisitRow};
use crate::claims::TenantId;
use crate::sql::{count, Statement, TenantSql};
use crate::time::{day_string, DAY_SECS};

/// A day is sealed once this many seconds have passed since its end: its visits are closed (open
/// visits are pruned 6 h after their last hit) with an hour for a late delivery. Yesterday is then
/// sealed from 07:00 UTC on, so the SQL part of a read is mostly today's visits; a later write to the
/// day makes it stale until it is sealed again.
pub const SEAL_AFTER_SECS: i64 = 7 * 3600;

/// How far back the cron looks for days to seal (older days keep their state; a backfill of an
/// older day is answered by SQL as long as its segment is stale).
pub const LOOKBACK_DAYS: i64 = 35;

/// The R2 key of a tenant's segment of the UTC day starting at `day_secs`:
/// `segments/{tenant}/{YYYY-MM-DD}/visits` (a folder per day, so the archive's erasure and retention,
/// `lifecycle::archive_prefixes`, cover it).
pub fn object_key(tenant_id: &str, day_secs: i64) -> String {
    format!("segments/{tenant_id}/{}/visits", day_string(day_secs))
}

/// The closed days (UTC day starts, oldest first) of the tenant with visits whose segment is missing
/// or stale, at most `limit`.
pub fn days_to_seal(tenant_id: &str, now_secs: i64, limit: i64) -> Statement {
    let last_closed = (now_secs - SEAL_AFTER_SECS).div_euclid(DAY_SECS) * DAY_SECS - DAY_SECS;
    let first = last_closed - (LOOKBACK_DAYS - 1) * DAY_SECS;
    Statement::new(
        "SELECT d.day AS day FROM visit_daily d WHERE d.tenant_id = ? AND d.dim = 0 AND d.day >= ? \
         AND d.day <= ? AND NOT EXISTS (SELECT 1 FROM segment_days s WHERE s.tenant_id = ? \
         AND s.day = d.day AND s.sealed = s.version) GROUP BY d.day ORDER BY d.day LIMIT ?",
        vec![
            tenant_id.into(),
            first.into(),
            last_closed.into(),
            tenant_id.into(),
            limit.into(),
        ],
    )
}

/// One batch (run it as one transaction): register the day, then read its version, its visits and
/// their pages (pages first hit after midnight included). Pass the three row sets of statements 1 to
/// 3 to [`rows_of`] and [`version_of`].
pub fn read_day(tenant_id: &str, day_secs: i64) -> Vec<Statement> {
    let (start, end) = (day_secs, day_secs + DAY_SECS);
    vec![
        Statement::new(
            "INSERT INTO segment_days (tenant_id, day) VALUES (?, ?) ON CONFLICT DO NOTHING",
            vec![tenant_id.into(), day_secs.into()],
        ),
        Statement::new(
            "SELECT version FROM segment_days WHERE tenant_id = ? AND day = ?",
            vec![tenant_id.into(), day_secs.into()],
        ),
        Statement::new(
            "SELECT session_key, domain, visitor_id, first_ts, last_ts, pageviews, entry_path, \
             exit_path, source, utm_source, utm_medium, utm_campaign, browser, os, device, country \
             FROM sessions WHERE tenant_id = ? AND first_ts >= ? AND first_ts < ?",
            vec![tenant_id.into(), start.into(), end.into()],
        ),
        // The pages of those visits: first hit from the day's start to the latest last hit of its
        // visits, tied to their visit by its primary key (`first_ts - since_visit`, migration 0007).
        Statement::new(
            "SELECT session_key, pathname, first_ts, hits, since_visit FROM page_visits \
             WHERE tenant_id = ? AND first_ts >= ? AND first_ts <= (SELECT MAX(last_ts) FROM sessions \
             WHERE tenant_id = ? AND first_ts >= ? AND first_ts < ?) \
             AND first_ts - since_visit >= ? AND first_ts - since_visit < ?",
            vec![
                tenant_id.into(),
                start.into(),
                tenant_id.into(),
                start.into(),
                end.into(),
                start.into(),
                end.into(),
            ],
        ),
    ]
}

/// The day's version from statement 1 of [`read_day`].
pub fn version_of(rows: &[Map<String, Value>]) -> i64 {
    rows.first().map_or(0, |r| count(r.get("version")))
}

fn text(r: &Map<String, Value>, c: &str) -> Result<String, SegmentError> {
    match r.get(c) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(SegmentError::Rows(format!("column {c} is not text"))),
    }
}

fn number(r: &Map<String, Value>, c: &str) -> Result<i64, SegmentError> {
    crate::sql::int(r.get(c))
        .ok_or_else(|| SegmentError::Rows(format!("column {c} is not an integer")))
}

/// The day's visits with their pages, from statements 2 and 3 of [`read_day`]. A page whose visit is
/// not among the sessions (a row written between two of its visit's writes) is left out.
pub fn rows_of(
    sessions: &[Map<String, Value>],
    pages: &[Map<String, Value>],
) -> Result<Vec<VisitRow>, SegmentError> {
    let mut at = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(sessions.len());
    for r in sessions {
        let first_ts = number(r, "first_ts")?;
        at.insert((first_ts, text(r, "session_key")?), out.len());
        out.push(VisitRow {
            first_ts,
            last_ts: number(r, "last_ts")?,
            pageviews: u32::try_from(number(r, "pageviews")?)
                .map_err(|_| SegmentError::Rows("pageviews out of range".into()))?,
            domain: text(r, "domain")?,
            visitor: text(r, "visitor_id")?,
            entry_path: text(r, "entry_path")?,
            exit_path: text(r, "exit_path")?,
            source: text(r, "source")?,
            utm_source: text(r, "utm_source")?,
            utm_medium: text(r, "utm_medium")?,
            utm_campaign: text(r, "utm_campaign")?,
            browser: text(r, "browser")?,
            os: text(r, "os")?,
            device: text(r, "device")?,
            country: text(r, "country")?,
            pages: Vec::new(),
        });
    }
    for r in pages {
        let first_ts = number(r, "first_ts")?;
        let visit = (
            first_ts - number(r, "since_visit")?,
            text(r, "session_key")?,
        );
        if let Some(&i) = at.get(&visit) {
            out[i].pages.push(PageRow {
                pathname: text(r, "pathname")?,
                first_ts,
                hits: u32::try_from(number(r, "hits")?)
                    .map_err(|_| SegmentError::Rows("hits out of range".into()))?,
            });
        }
    }
    Ok(out)
}

/// Records that the object of the day holds `version` (read by [`read_day`]), its size and visits.
pub fn mark_sealed(
    tenant_id: &str,
    day_secs: i64,
    version: i64,
    bytes: usize,
    visits: usize,
) -> Statement {
    Statement::new(
        "UPDATE segment_days SET sealed = ?, bytes = ?, visits = ? WHERE tenant_id = ? AND day = ?",
        vec![
            version.into(),
            (bytes as i64).into(),
            (visits as i64).into(),
            tenant_id.into(),
            day_secs.into(),
        ],
    )
}

/// The tenant's days in `[start, end)` (UTC day starts) whose object is current, with the version it
/// holds and its size (`day`, `sealed`, `bytes`): a scan may answer for them instead of the visit
/// rows, and a copy of the object read earlier is current while its version is.
pub fn sealed_days(tenant: &TenantId, start: i64, end: i64) -> Statement {
    let mut q = TenantSql::new(tenant);
    q.push("SELECT day, sealed, bytes")
        .from("segment_days", "")
        .bind(" AND day >= ?", start)
        .bind(" AND day < ?", end)
        .push(" AND sealed = version ORDER BY day");
    q.finish()
}

/// Most bytes of objects one read holds at once (`within_budget`): a worker has 128 MB, and the
/// isolate keeps up to 32 MB of objects besides. The largest tenant of the 10M set needs 25 MB for 29
/// days; a tenant of 100M events a month would need about 48 MB a day.
pub const READ_BUDGET_BYTES: i64 = 40 << 20;

/// Of the sealed days `(day, sealed, bytes)` a read listed ([`sealed_days`]), the `(day, sealed)` it
/// reads from their objects: the newest first while their bytes fit `budget`; the others are read by
/// SQL like unsealed days, so a tenant whose days outgrow the budget gets slower, never wrong or out
/// of memory. Ascending by day.
pub fn within_budget(days: &[(i64, i64, i64)], budget: i64) -> Vec<(i64, i64)> {
    let mut left = budget;
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &(day, sealed, bytes) in days.iter().rev() {
        if bytes > left {
            break;
        }
        left -= bytes;
        out.push((day, sealed));
    }
    out.reverse();
    out
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn the_newest_days_that_fit_are_read_from_objects() {
        let days = [(1, 0, 30), (2, 3, 30), (3, 1, 30), (4, 0, 10)];
        assert_eq!(
            within_budget(&days, 1_000),
            vec![(1, 0), (2, 3), (3, 1), (4, 0)]
        );
        assert_eq!(within_budget(&days, 70), vec![(2, 3), (3, 1), (4, 0)]);
        assert_eq!(within_budget(&days, 40), vec![(3, 1), (4, 0)]);
        // Contiguous from the newest: an older day after one that does not fit is SQL too.
        assert_eq!(within_budget(&days, 39), vec![(4, 0)]);
        assert_eq!(within_budget(&days, 5), Vec::<(i64, i64)>::new());
    }
}
