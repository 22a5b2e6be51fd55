//! Sealing closed UTC days into segments: the statements the hourly cron runs, and the rows it reads
//! turned into [`VisitRow`]s (copy mode: the visit rows stay in D1).
//!
//! A day is sealed in parts: [`parts_for`] its visit count, each part the visits of one range of
//! visitor ids ([`visitor_range`] of their last 8 hex characters), so one part's rows and encoding
//! stay bounded in memory ([`PART_VISITS`]) however large the tenant. Parts hold disjoint visitors,
//! so their distinct-visitor counts add up exactly, like days do (`scan`: visitor ordinals are per
//! segment).
//!
//! Per tenant: [`days_to_seal`] lists the closed days with visits (all-visits `visit_daily` rows, read
//! on the table's primary key, with their visit count) some part of which is missing or stale
//! (`migrations/0019_segment_days.sql`, `0021_segment_parts.sql`); for each, [`plan_day`] registers
//! the day with its part count and says which parts are current; for each other part,
//! [`read_part`] is one D1 batch (one transaction: the version and the rows agree) reading the day's
//! version, the part's visits and their pages; [`join`] joins them (typed rows; [`rows_of`] from
//! JSON objects); the worker encodes
//! ([`super::encode`]), writes the object at [`object_key`], then runs [`mark_part`] with the version
//! read. A write to the day's visit rows in between bumps the version, so the part stays stale and is
//! sealed again on a later run; a day answers from segments only when every part is current
//! ([`sealed_days`]).

use serde_json::{Map, Value};

use super::{PageRow, SegmentError, VisitRow};
use crate::claims::TenantId;
use crate::sql::{count, Join, SqlValue, Statement, TenantSql};
use crate::time::{day_string, DAY_SECS};

/// A day is sealed once this many seconds have passed since its end: its visits are closed (open
/// visits are pruned 6 h after their last hit) with an hour for a late delivery. Yesterday is then
/// sealed from 07:00 UTC on, so the SQL part of a read is mostly today's visits; a later write to the
/// day makes it stale until it is sealed again.
pub const SEAL_AFTER_SECS: i64 = 7 * 3600;

/// How far back the cron looks for days to seal (older days keep their state; a backfill of an
/// older day is answered by SQL as long as its segment is stale).
pub const LOOKBACK_DAYS: i64 = 35;

/// Visits per part, at most on average: a day of `n` visits is sealed in `ceil(n / PART_VISITS)`
/// parts. From measured bytes (`core/examples/segment_parts.rs`, BENCHMARKS.md "Visit segments in
/// parts"): a part's rows deserialized straight into [`SessionRow`]s and [`PageVisitRow`]s, joined
/// and encoded peak at about 800 B a visit natively (64-bit; less in wasm32), and the runtime's JS
/// objects of D1's rows take about 620 B a visit (V8, measured in Node), so a part of 8,000 visits
/// holds about 6 MB in Rust and 5 MB in JS: well under 20 MB of the worker's 128 MB. Smaller parts
/// would cost more D1 work: each part scans its day's visit rows once.
pub const PART_VISITS: i64 = 8_000;

/// Most parts a day is split into (a day of more than `MAX_PARTS * PART_VISITS` visits gets larger
/// parts rather than more objects).
pub const MAX_PARTS: u32 = 256;

/// How many parts a day of `visits` visits (its all-visits `visit_daily` rows) is sealed in, at
/// `part_visits` visits a part at most on average ([`PART_VISITS`] unless tuned).
pub fn parts_for(visits: i64, part_visits: i64) -> u32 {
    let part_visits = part_visits.max(1);
    let parts = (visits.max(1) + part_visits - 1) / part_visits;
    parts.clamp(1, i64::from(MAX_PARTS)) as u32
}

/// The bounds of part `part` of `parts` on the visitor id's last 8 characters ([`visitor_key`]),
/// `[lower, upper)` by SQLite's (bytewise) text order, `None` meaning unbounded: the range of 32-bit
/// values `[part, part + 1) * 2^32 / parts` written as 8 lowercase hex characters. Visitor ids are
/// 32 uniform lowercase hex characters (`identity::visitor_id`, a 128-bit SipHash), so the parts get
/// about equal shares of the day's visitors. The last characters rather than the first: a data set
/// whose ids are not hashes (the benchmark generator's start with the visitor's number) still
/// spreads. The first part has no lower bound and the last no upper one, so every text, hex or not,
/// is in exactly one part ([`part_of`]).
pub fn visitor_range(part: u32, parts: u32) -> (Option<String>, Option<String>) {
    let edge = |i: u32| format!("{:08x}", (u64::from(i) << 32) / u64::from(parts.max(1)));
    let lower = (part > 0).then(|| edge(part));
    let upper = (part + 1 < parts).then(|| edge(part + 1));
    (lower, upper)
}

/// What [`visitor_range`] bounds: the visitor id's last 8 characters (all of it when shorter), as
/// SQLite's `substr(visitor_id, -8)`.
pub fn visitor_key(visitor: &str) -> &str {
    match visitor.char_indices().rev().nth(7) {
        Some((at, _)) => &visitor[at..],
        None => visitor,
    }
}

/// The part (of `parts`) whose [`visitor_range`] holds `visitor`.
pub fn part_of(visitor: &str, parts: u32) -> u32 {
    let key = visitor_key(visitor);
    (1..parts)
        .take_while(|&p| {
            visitor_range(p, parts)
                .0
                .is_some_and(|lo| key >= lo.as_str())
        })
        .last()
        .unwrap_or(0)
}

/// The R2 key of part `part` of `parts` of a tenant's segment of the UTC day starting at `day_secs`:
/// `segments/{tenant}/{YYYY-MM-DD}/visits` for a day in one part (the key of days sealed before
/// parts), `…/visits-{part}-of-{parts}` otherwise: a folder per day, so the archive's erasure and
/// retention (`lifecycle::archive_prefixes`) cover every part.
pub fn object_key(tenant_id: &str, day_secs: i64, part: u32, parts: u32) -> String {
    let day = day_string(day_secs);
    if parts <= 1 {
        format!("segments/{tenant_id}/{day}/visits")
    } else {
        format!("segments/{tenant_id}/{day}/visits-{part}-of-{parts}")
    }
}

/// The R2 key of a part's one-filter cells of `target` ([`super::cells`]), next to the part's object
/// ([`object_key`]) in the day's folder: `segments/{tenant}/{YYYY-MM-DD}/cells-{target}` for a day in
/// one part, `…/cells-{target}-{part}-of-{parts}` otherwise. Written by the same seal step, before the
/// part's object and its version, and deleted with them (the day folder: erasure and retention; a
/// day planned in another count: `forget_parts`' objects).
pub fn cells_key(
    tenant_id: &str,
    day_secs: i64,
    (part, parts): (u32, u32),
    target: super::Target,
) -> String {
    let day = day_string(day_secs);
    let name = super::cells::target_name(target);
    if parts <= 1 {
        format!("segments/{tenant_id}/{day}/cells-{name}")
    } else {
        format!("segments/{tenant_id}/{day}/cells-{name}-{part}-of-{parts}")
    }
}

/// The R2 key of a day's cells of `target` ([`super::cells::merge`] of its parts' cells): the key of
/// a one-part day's cells ([`cells_key`] of part 0 of 1), `segments/{tenant}/{YYYY-MM-DD}/cells-{target}`,
/// so a read fetches one object per day and target whatever the day's count. For a day of several
/// parts the cron writes it once every part is sealed at the same version, before the last part's
/// version is recorded, then deletes the parts' cells (their only reader was the merge; a read whose
/// day cells are missing or of another version takes the parts' cells if any, else scans the day).
pub fn day_cells_key(tenant_id: &str, day_secs: i64, target: super::Target) -> String {
    cells_key(tenant_id, day_secs, (0, 1), target)
}

/// Whether every part of the day `s` (a `segment_days` row) is sealed at its current version.
const ALL_PARTS_CURRENT: &str = "(SELECT COUNT(*) FROM segment_parts p WHERE p.tenant_id = s.tenant_id \
     AND p.day = s.day AND p.parts = s.parts AND p.part < s.parts AND p.sealed = s.version) = s.parts";

/// The closed days (`day`, UTC day starts, oldest first) of the tenant with visits some part of
/// which is missing or stale, at most `limit`, with their visit count (`visits`, for [`parts_for`]).
pub fn days_to_seal(tenant_id: &str, now_secs: i64, limit: i64) -> Statement {
    let last_closed = (now_secs - SEAL_AFTER_SECS).div_euclid(DAY_SECS) * DAY_SECS - DAY_SECS;
    let first = last_closed - (LOOKBACK_DAYS - 1) * DAY_SECS;
    Statement::new(
        format!(
            "SELECT d.day AS day, SUM(d.visits) AS visits FROM visit_daily d WHERE d.tenant_id = ? \
             AND d.dim = 0 AND d.day >= ? AND d.day <= ? AND NOT EXISTS (SELECT 1 FROM segment_days s \
             WHERE s.tenant_id = ? AND s.day = d.day AND {ALL_PARTS_CURRENT}) GROUP BY d.day \
             ORDER BY d.day LIMIT ?"
        ),
        vec![
            tenant_id.into(),
            first.into(),
            last_closed.into(),
            tenant_id.into(),
            limit.into(),
        ],
    )
}

/// One batch (run it as one transaction): register the day to be sealed in `parts` parts (a day
/// registered with another count keeps its version; its parts of the other count no longer answer),
/// then read its version and its parts' state (`part`, `parts`, `sealed`). Pass the two row sets of
/// statements 1 and 2 to [`version_of`] and [`parts_to_seal`].
pub fn plan_day(tenant_id: &str, day_secs: i64, parts: u32) -> Vec<Statement> {
    vec![
        Statement::new(
            "INSERT INTO segment_days (tenant_id, day, parts) VALUES (?, ?, ?) \
             ON CONFLICT (tenant_id, day) DO UPDATE SET parts = excluded.parts",
            vec![tenant_id.into(), day_secs.into(), i64::from(parts).into()],
        ),
        Statement::new(
            "SELECT version FROM segment_days WHERE tenant_id = ? AND day = ?",
            vec![tenant_id.into(), day_secs.into()],
        ),
        Statement::new(
            "SELECT part, parts, sealed FROM segment_parts WHERE tenant_id = ? AND day = ?",
            vec![tenant_id.into(), day_secs.into()],
        ),
    ]
}

/// Of a day planned in `parts` parts at `version` ([`plan_day`]'s rows of `segment_parts`): the parts
/// to seal (not sealed at `version` in this count), and the `(part, parts)` recorded in another count,
/// whose objects and rows are left over from an earlier plan ([`forget_parts`]).
pub fn parts_to_seal(
    rows: &[Map<String, Value>],
    parts: u32,
    version: i64,
) -> (Vec<u32>, Vec<(u32, u32)>) {
    let int = |r: &Map<String, Value>, c: &str| crate::sql::int(r.get(c)).unwrap_or(-1);
    let current: std::collections::HashSet<u32> = rows
        .iter()
        .filter(|r| int(r, "parts") == i64::from(parts) && int(r, "sealed") == version)
        .filter_map(|r| u32::try_from(int(r, "part")).ok())
        .collect();
    let stale = rows
        .iter()
        .filter(|r| int(r, "parts") != i64::from(parts))
        .filter_map(|r| {
            Some((
                u32::try_from(int(r, "part")).ok()?,
                u32::try_from(int(r, "parts")).ok()?,
            ))
        })
        .collect();
    ((0..parts).filter(|p| !current.contains(p)).collect(), stale)
}

/// Deletes the tenant's `segment_parts` rows of the day recorded in another count than `parts`
/// (run after their objects are deleted).
pub fn forget_parts(tenant_id: &str, day_secs: i64, parts: u32) -> Statement {
    Statement::new(
        "DELETE FROM segment_parts WHERE tenant_id = ? AND day = ? AND parts <> ?",
        vec![tenant_id.into(), day_secs.into(), i64::from(parts).into()],
    )
}

/// ` AND substr({column}, -8) >= ? AND substr({column}, -8) < ?` for the part's [`visitor_range`]
/// (the bounds it has), with the binds appended to `binds`.
fn visitor_bounds(column: &str, part: u32, parts: u32, binds: &mut Vec<SqlValue>) -> String {
    let (lower, upper) = visitor_range(part, parts);
    let mut sql = String::new();
    if let Some(lo) = lower {
        sql.push_str(&format!(" AND substr({column}, -8) >= ?"));
        binds.push(lo.into());
    }
    if let Some(hi) = upper {
        sql.push_str(&format!(" AND substr({column}, -8) < ?"));
        binds.push(hi.into());
    }
    sql
}

/// One batch (run it as one transaction): the day's version, then the visits of part `part` of
/// `parts` (those whose [`visitor_key`] is in its [`visitor_range`]) and their pages (pages first hit
/// after midnight included). Pass the three row sets to [`version_of`] and [`rows_of`].
///
/// Pages have no visitor id: a part of several reads the pages of the day's visits whose visit
/// (`first_ts - since_visit`, `session_key`: the session's primary key, migration 0007) is among the
/// part's sessions. Each part thus scans the day's visit rows once in D1, and holds only its own.
pub fn read_part(tenant_id: &str, day_secs: i64, part: u32, parts: u32) -> Vec<Statement> {
    let (start, end) = (day_secs, day_secs + DAY_SECS);
    let mut session_binds: Vec<SqlValue> = vec![tenant_id.into(), start.into(), end.into()];
    let range = visitor_bounds("visitor_id", part, parts, &mut session_binds);
    // The pages of those visits: first hit from the day's start to the latest last hit of the day's
    // visits, tied to their visit by its primary key.
    let mut page_binds: Vec<SqlValue> = vec![
        tenant_id.into(),
        start.into(),
        tenant_id.into(),
        start.into(),
        end.into(),
        start.into(),
        end.into(),
    ];
    let of_part = if range.is_empty() {
        String::new()
    } else {
        page_binds.extend(session_binds.iter().cloned());
        format!(
            " AND (first_ts - since_visit, session_key) IN (SELECT first_ts, session_key FROM sessions \
             WHERE tenant_id = ? AND first_ts >= ? AND first_ts < ?{range})"
        )
    };
    vec![
        Statement::new(
            "SELECT version FROM segment_days WHERE tenant_id = ? AND day = ?",
            vec![tenant_id.into(), day_secs.into()],
        ),
        Statement::new(
            format!(
                "SELECT session_key, domain, visitor_id, first_ts, last_ts, pageviews, entry_path, \
                 exit_path, source, utm_source, utm_medium, utm_campaign, browser, os, device, country \
                 FROM sessions WHERE tenant_id = ? AND first_ts >= ? AND first_ts < ?{range}"
            ),
            session_binds,
        ),
        Statement::new(
            format!(
                "SELECT session_key, pathname, first_ts, hits, since_visit FROM page_visits \
                 WHERE tenant_id = ? AND first_ts >= ? AND first_ts <= (SELECT MAX(last_ts) FROM \
                 sessions WHERE tenant_id = ? AND first_ts >= ? AND first_ts < ?) \
                 AND first_ts - since_visit >= ? AND first_ts - since_visit < ?{of_part}"
            ),
            page_binds,
        ),
    ]
}

/// The day's version: statement 1 of [`plan_day`], statement 0 of [`read_part`].
pub fn version_of(rows: &[Map<String, Value>]) -> i64 {
    rows.first().map_or(0, |r| count(r.get("version")))
}

/// A `sessions` row as statement 1 of [`read_part`] returns it (deserialize D1's rows straight into
/// it: a JSON object per row costs several times the bytes, BENCHMARKS.md "Visit segments in parts").
#[derive(Debug, Clone, serde::Deserialize)]
#[allow(missing_docs)] // the columns of `sessions`
pub struct SessionRow {
    pub session_key: String,
    pub domain: String,
    pub visitor_id: String,
    pub first_ts: i64,
    pub last_ts: i64,
    pub pageviews: i64,
    pub entry_path: String,
    pub exit_path: String,
    pub source: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub browser: String,
    pub os: String,
    pub device: String,
    pub country: String,
}

/// A `page_visits` row as statement 2 of [`read_part`] returns it.
#[derive(Debug, Clone, serde::Deserialize)]
#[allow(missing_docs)] // the columns of `page_visits`
pub struct PageVisitRow {
    pub session_key: String,
    pub pathname: String,
    pub first_ts: i64,
    pub hits: i64,
    pub since_visit: i64,
}

/// The part's visits with their pages, from statements 1 and 2 of [`read_part`], consumed (each
/// string moves into the visit it belongs to). A page whose visit is not among the sessions (a row
/// written between two of its visit's writes) is left out.
pub fn join(
    sessions: Vec<SessionRow>,
    pages: Vec<PageVisitRow>,
) -> Result<Vec<VisitRow>, SegmentError> {
    if sessions.iter().any(|r| u32::try_from(r.pageviews).is_err()) {
        return Err(SegmentError::Rows("pageviews out of range".into()));
    }
    if pages.iter().any(|r| u32::try_from(r.hits).is_err()) {
        return Err(SegmentError::Rows("hits out of range".into()));
    }
    let mut at = std::collections::HashMap::with_capacity(sessions.len());
    // A row becomes its visit in place (same size: the collect reuses the rows' buffer), its key
    // moving into the index.
    let mut out: Vec<VisitRow> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            at.insert((r.first_ts, r.session_key), i);
            VisitRow {
                first_ts: r.first_ts,
                last_ts: r.last_ts,
                pageviews: r.pageviews as u32,
                domain: r.domain,
                visitor: r.visitor_id,
                entry_path: r.entry_path,
                exit_path: r.exit_path,
                source: r.source,
                utm_source: r.utm_source,
                utm_medium: r.utm_medium,
                utm_campaign: r.utm_campaign,
                browser: r.browser,
                os: r.os,
                device: r.device,
                country: r.country,
                pages: Vec::new(),
            }
        })
        .collect();
    // Each visit's pages, then each list allocated once at its size.
    let of: Vec<Option<u32>> = pages
        .iter()
        .map(|r| {
            at.get(&(r.first_ts - r.since_visit, r.session_key.clone()))
                .map(|&i| i as u32)
        })
        .collect();
    drop(at);
    let mut counts = vec![0u32; out.len()];
    for &i in of.iter().flatten() {
        counts[i as usize] += 1;
    }
    for (v, n) in out.iter_mut().zip(counts) {
        v.pages.reserve_exact(n as usize);
    }
    for (r, i) in pages.into_iter().zip(of) {
        if let Some(i) = i {
            out[i as usize].pages.push(PageRow {
                pathname: r.pathname,
                first_ts: r.first_ts,
                hits: r.hits as u32,
            });
        }
    }
    Ok(out)
}

fn typed<T: serde::de::DeserializeOwned>(
    rows: &[Map<String, Value>],
) -> Result<Vec<T>, SegmentError> {
    rows.iter()
        .map(|r| {
            serde_json::from_value(Value::Object(r.clone()))
                .map_err(|e| SegmentError::Rows(e.to_string()))
        })
        .collect()
}

/// [`join`] from rows as JSON objects (the shape `d1::rows` and the native tests hand over).
pub fn rows_of(
    sessions: &[Map<String, Value>],
    pages: &[Map<String, Value>],
) -> Result<Vec<VisitRow>, SegmentError> {
    join(typed(sessions)?, typed(pages)?)
}

/// Records that the object of part `part` of `parts` holds `version` (read by [`read_part`]), its size
/// and visits. Changes no row (the worker then deletes the object it wrote) when the day is no longer
/// registered in that many parts: an erasure or retention deleted it, or a later plan changed the
/// count, while the part was being sealed.
pub fn mark_part(
    tenant_id: &str,
    day_secs: i64,
    (part, parts): (u32, u32),
    version: i64,
    bytes: usize,
    visits: usize,
) -> Statement {
    Statement::new(
        "INSERT INTO segment_parts (tenant_id, day, part, parts, sealed, bytes, visits) \
         SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM segment_days WHERE tenant_id = ? \
         AND day = ? AND parts = ?) ON CONFLICT (tenant_id, day, part) DO UPDATE SET \
         parts = excluded.parts, sealed = excluded.sealed, bytes = excluded.bytes, \
         visits = excluded.visits",
        vec![
            tenant_id.into(),
            day_secs.into(),
            i64::from(part).into(),
            i64::from(parts).into(),
            version.into(),
            (bytes as i64).into(),
            (visits as i64).into(),
            tenant_id.into(),
            day_secs.into(),
            i64::from(parts).into(),
        ],
    )
}

/// The tenant's days in `[start, end)` (UTC day starts) every part of which is current, with the
/// version they hold, their count and their total size (`day`, `sealed`, `parts`, `bytes`): a scan
/// may answer for them instead of the visit rows, and a copy of an object read earlier is current
/// while its version is. A day with a missing or stale part is not listed (its visits are read by
/// SQL).
pub fn sealed_days(tenant: &TenantId, start: i64, end: i64) -> Statement {
    let mut q = TenantSql::new(tenant);
    q.push("SELECT s.day AS day, s.version AS sealed, s.parts AS parts, SUM(p.bytes) AS bytes")
        .from_joined(
            "segment_days",
            "s",
            &[Join {
                kind: "JOIN",
                table: "segment_parts",
                alias: "p",
                on: "p.day = s.day AND p.parts = s.parts AND p.part < s.parts \
                     AND p.sealed = s.version",
            }],
        )
        .bind(" AND s.day >= ?", start)
        .bind(" AND s.day < ?", end)
        .push(" GROUP BY s.day HAVING COUNT(*) = s.parts ORDER BY s.day");
    q.finish()
}

/// Most bytes of objects one read holds at once (`within_budget`): a worker has 128 MB, and the
/// isolate keeps up to 32 MB of objects besides. The largest tenant of the 10M set needs 25 MB for 29
/// days; a tenant of 100M events a month would need about 48 MB a day (all its parts), so its days
/// are read by SQL.
pub const READ_BUDGET_BYTES: i64 = 40 << 20;

/// Of the sealed days `(day, sealed, bytes)` a read listed ([`sealed_days`]; `bytes`: all the day's
/// parts), the `(day, sealed)` it reads from their objects (every part of each): the newest first while their bytes fit `budget`; the others are read by
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

#[cfg(test)]
mod part_tests {
    use super::*;

    #[test]
    fn parts_grow_with_the_days_visits() {
        assert_eq!(parts_for(0, PART_VISITS), 1);
        assert_eq!(parts_for(PART_VISITS, PART_VISITS), 1);
        assert_eq!(parts_for(PART_VISITS + 1, PART_VISITS), 2);
        assert_eq!(parts_for(1_400_000, PART_VISITS), 175);
        assert_eq!(parts_for(i64::MAX / 2, PART_VISITS), MAX_PARTS);
        assert_eq!(parts_for(3, 1), 3);
        assert_eq!(parts_for(3, 0), 3);
    }

    #[test]
    fn the_ranges_cover_every_visitor_once_in_order() {
        assert_eq!(visitor_range(0, 1), (None, None));
        assert_eq!(visitor_range(0, 4), (None, Some("40000000".to_owned())));
        assert_eq!(
            visitor_range(1, 4),
            (Some("40000000".to_owned()), Some("80000000".to_owned()))
        );
        assert_eq!(visitor_range(3, 4), (Some("c0000000".to_owned()), None));
        for parts in [1, 2, 3, 7, 70, MAX_PARTS] {
            // Consecutive ranges meet: each part's upper bound is the next one's lower bound.
            for p in 0..parts.saturating_sub(1) {
                assert_eq!(visitor_range(p, parts).1, visitor_range(p + 1, parts).0);
            }
            let mut seen = vec![0u32; parts as usize];
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for i in 0..4_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = format!("{x:016x}{:016x}", x.rotate_left(29) ^ i);
                let p = part_of(&id, parts);
                let (lo, hi) = visitor_range(p, parts);
                assert!(
                    lo.is_none_or(|lo| visitor_key(&id) >= lo.as_str()),
                    "{id} {p}/{parts}"
                );
                assert!(
                    hi.is_none_or(|hi| visitor_key(&id) < hi.as_str()),
                    "{id} {p}/{parts}"
                );
                seen[p as usize] += 1;
            }
            // Uniform ids spread over the parts (a part of 7 gets about 571 of 4,000).
            if parts <= 7 {
                let even = 4_000 / parts;
                assert!(
                    seen.iter().all(|&n| n > even * 3 / 4 && n < even * 5 / 4),
                    "{seen:?}"
                );
            }
            // Texts that are not hex ids still land in exactly one part.
            for odd in ["", "v1", "zzz", "FFFF", "00000000"] {
                assert!(part_of(odd, parts) < parts.max(1));
            }
        }
        assert_eq!(part_of("00000000", 4), 0);
        assert_eq!(part_of("ffffffff3fffffff", 4), 0);
        assert_eq!(part_of("0000000040000000", 4), 1);
        assert_eq!(part_of("ffffffff", 4), 3);
        assert_eq!(part_of("v1", 4), 3);
        assert_eq!(visitor_key("0123456789abcdef"), "89abcdef");
        assert_eq!(visitor_key("v1"), "v1");
        assert_eq!(visitor_key("añbcdéfgh"), "ñbcdéfgh");
    }

    #[test]
    fn keys_of_one_part_are_the_keys_before_parts() {
        assert_eq!(object_key("ta", 0, 0, 1), "segments/ta/1970-01-01/visits");
        assert_eq!(
            object_key("ta", DAY_SECS, 2, 5),
            "segments/ta/1970-01-02/visits-2-of-5"
        );
        let page = crate::segment::Target::ViewedPage;
        assert_eq!(
            cells_key("ta", 0, (0, 1), page),
            "segments/ta/1970-01-01/cells-page"
        );
        assert_eq!(
            cells_key("ta", DAY_SECS, (2, 5), page),
            "segments/ta/1970-01-02/cells-page-2-of-5"
        );
        assert_eq!(
            day_cells_key("ta", DAY_SECS, page),
            "segments/ta/1970-01-02/cells-page"
        );
    }
}
