//! Visit segments (issue #11, `starling_core::segment`): the hourly cron seals closed UTC days of each
//! tenant's visits into R2 objects under `segments/{tenant}/{YYYY-MM-DD}/`, one per part of the day
//! (`seal::parts_for` its visit count; each part the visits of one range of visitor ids).
//!
//! Copy mode: the visit rows stay in D1. Sealing is on while `SEGMENT_SEAL_DAYS_PER_RUN` is above 0
//! (days sealed per run, across tenants), and reading while `SEGMENT_READS=1`: then a read of the
//! visit rows ([`answer`], `query::ScanRoute`: filtered top lists, kpis, `/v0/query`) reads the days
//! every part of which is sealed from their objects and the other days from SQL. Per tenant (its silo
//! database or the pool): the days to seal (closed, with visits, some part missing or stale:
//! `seal::days_to_seal`), then per day its plan (`seal::plan_day`) and per part to seal one D1 batch
//! reading the day's version and the part's rows, the object written, and the version recorded
//! (`seal::mark_part`); a write to the day's visit rows meanwhile leaves the part stale (migration
//! 0019's triggers), so it is sealed again on a later run. One part's rows are in memory at a time.
//! Erasure and retention delete the objects with the archive's (`lifecycle::archive_prefixes`) and the
//! `segment_days` and `segment_parts` rows with the other tables (`lifecycle::TENANT_TABLES`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures_util::future::join_all;
use serde_json::Value;
use starling_core::claims::TenantId;
use starling_core::query::{CellQuestion, ScanRoute};
use starling_core::segment::{self, cells, seal, Cells, Partial, Segment};
use starling_core::time::DAY_SECS;
use worker::{Bucket, D1Database, Env};

use crate::env;
use crate::error::ApiError;
use crate::store::{archive, d1, retention};

/// Tenants whose days to seal are looked up in one D1 batch.
const TENANTS_PER_BATCH: usize = 50;

/// Most parts one run seals, whatever the days: each part is a D1 batch scanning its day's visit rows
/// (about 2 s for a day of 1.4M visits natively, BENCHMARKS.md "Visit segments in parts"), so a run
/// stays minutes long; a day left unfinished keeps the parts marked and goes on at the next run.
const PARTS_PER_RUN: usize = 128;

/// What merging a day's cells (`merge_day`) counts for in a run's [`PARTS_PER_RUN`]: half a part per
/// part merged (natively, merging the 12 targets' cells of a day of t0000 costs 66 ms a part, about
/// 0.4 of a part's seal with its cells: BENCHMARKS.md "One-filter cells"), at most half a run, so a
/// day's last part and its merge always fit a run of its own.
fn merge_cost(parts: u32) -> usize {
    (parts as usize).div_ceil(2).min(PARTS_PER_RUN / 2)
}

/// Parts' cells objects merged in one step of [`merge_day`] (with the day's cells merged so far).
const MERGE_PARTS: usize = 16;

/// Seals up to `SEGMENT_SEAL_DAYS_PER_RUN` days, at most [`PARTS_PER_RUN`] parts; returns a report
/// (also logged).
pub async fn seal(env: &Env) -> Value {
    let budget: usize = env::var(env, env::SEGMENT_SEAL_DAYS_PER_RUN)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if budget == 0 {
        return Value::Null;
    }
    let part_visits: i64 = env::var(env, env::SEGMENT_PART_VISITS)
        .and_then(|v| v.parse().ok())
        .unwrap_or(seal::PART_VISITS);
    let now = crate::clock::now_secs();
    let with_cells = cells_enabled(env);
    // Days tried (the budget), days sealed (every part due written), parts sealed, their bytes.
    let (mut tried, mut sealed, mut parts, mut bytes) = (0usize, 0usize, 0usize, 0usize);
    // The run's part budget spent: parts sealed and day cells merged ([`merge_cost`]).
    let mut spent = 0usize;
    let mut failures = Vec::new();
    let mut error = None;
    match retention::tasks(env).await {
        Err(e) => error = Some(e.to_string()),
        Ok(tasks) => {
            let tasks: Vec<_> = tasks.into_iter().filter(|t| !t.erased).collect();
            'all: for chunk in tasks.chunks(TENANTS_PER_BATCH) {
                // One batch per database among the chunk's tenants.
                let mut by_db: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
                for t in chunk {
                    by_db
                        .entry(t.database.as_deref().unwrap_or(env::DB))
                        .or_default()
                        .push(&t.tenant_id);
                }
                for (binding, tenants) in by_db {
                    let left = budget - tried;
                    let found = days_to_seal(env, binding, &tenants, now, left).await;
                    let (db, rows) = match found {
                        Ok(x) => x,
                        Err(e) => {
                            failures.push(
                                serde_json::json!({"database": binding, "error": e.to_string()}),
                            );
                            continue;
                        }
                    };
                    let bucket = match archive::bucket(env) {
                        Ok(b) => b,
                        Err(e) => {
                            error = Some(e.to_string());
                            break 'all;
                        }
                    };
                    for (tenant, days) in tenants.iter().zip(rows) {
                        for r in days {
                            if tried >= budget || spent >= PARTS_PER_RUN {
                                break 'all;
                            }
                            let Some(day) = starling_core::sql::int(r.get("day")) else {
                                continue;
                            };
                            let visits = starling_core::sql::int(r.get("visits")).unwrap_or(0);
                            tried += 1;
                            match seal_day(
                                &db,
                                &bucket,
                                tenant,
                                day,
                                seal::parts_for(visits, part_visits),
                                PARTS_PER_RUN - spent,
                                with_cells,
                            )
                            .await
                            {
                                Ok((n, b, done, cost)) => {
                                    sealed += usize::from(done);
                                    parts += n;
                                    spent += cost;
                                    bytes += b;
                                }
                                Err(e) => failures.push(serde_json::json!({
                                    "tenant_id": tenant, "day": day, "error": e.to_string()
                                })),
                            }
                        }
                    }
                }
            }
        }
    }
    let report = serde_json::json!({
        "days_sealed": sealed,
        "parts_sealed": parts,
        "bytes": bytes,
        "failures": failures,
        "error": error,
    });
    crate::log::cron_report("cron_segments", &report);
    report
}

/// The days to seal of `tenants` in database `binding`, one row set per tenant.
async fn days_to_seal(
    env: &Env,
    binding: &str,
    tenants: &[&str],
    now: i64,
    limit: usize,
) -> worker::Result<(D1Database, Vec<Vec<serde_json::Map<String, Value>>>)> {
    let db = d1::named(env, binding)?;
    let statements: Vec<_> = tenants
        .iter()
        .map(|t| seal::days_to_seal(t, now, limit as i64))
        .collect();
    let rows = d1::rows_batch(&db, &statements).await?;
    Ok((db, rows))
}

/// Seals one day in `parts` parts ([`seal::parts_for`] its visit count): plans it, deletes the
/// objects and rows of parts of an earlier count, then seals each part not current ([`seal_part`]),
/// one after the other, so one part's rows are in memory at a time, within `limit` parts of the run's
/// budget, a day's cells merge counted ([`merge_cost`]): a day that does not fit leaves at least its
/// last part to a later run, whose seal merges. Returns the parts sealed, their bytes, whether every
/// part due was (the others wait for a later run), and the budget spent.
async fn seal_day(
    db: &D1Database,
    bucket: &Bucket,
    tenant: &str,
    day: i64,
    parts: u32,
    limit: usize,
    with_cells: bool,
) -> worker::Result<(usize, usize, bool, usize)> {
    let plan = d1::rows_batch(db, &seal::plan_day(tenant, day, parts)).await?;
    let version = seal::version_of(&plan[1]);
    let (todo, stale) = seal::parts_to_seal(&plan[2], parts, version);
    if !stale.is_empty() {
        // The day was sealed in another count before: those objects no longer answer (readers
        // take only parts of the day's current count); the rows go after their objects.
        let keys = stale
            .iter()
            .flat_map(|&(part, count)| {
                std::iter::once(seal::object_key(tenant, day, part, count))
                    .chain(cells::TARGETS.map(|t| seal::cells_key(tenant, day, (part, count), t)))
            })
            .collect();
        archive::delete_keys(bucket, keys).await?;
        d1::run_atomic(db, &[seal::forget_parts(tenant, day, parts)]).await?;
    }
    let (mut sealed, mut bytes) = (0, 0);
    let cost = if with_cells && parts > 1 && !todo.is_empty() {
        merge_cost(parts)
    } else {
        0
    };
    let done = todo.len() + cost <= limit;
    let take = if done {
        todo.len()
    } else {
        limit.min(todo.len().saturating_sub(1))
    };
    for (i, &part) in todo.iter().take(take).enumerate() {
        // The day's last part to seal merges the parts' cells into the day's, when they all hold
        // the version it reads (`merge_day`).
        let merge = cost > 0 && done && i + 1 == todo.len();
        let cells = match (with_cells, merge) {
            (false, _) => CellWrites::No,
            (true, false) => CellWrites::Part,
            (true, true) => CellWrites::MergeDay,
        };
        if let Some(n) = seal_part(db, bucket, tenant, day, (part, parts), cells).await? {
            sealed += 1;
            bytes += n;
        }
    }
    let spent = sealed + if done { cost } else { 0 };
    Ok((sealed, bytes, done, spent))
}

/// What a part's seal writes of one-filter cells.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CellWrites {
    /// None (`SEGMENT_CELLS=0`).
    No,
    /// The part's cells, one object per target.
    Part,
    /// The part's cells, then (the day's last part to seal) the day's cells merged from every
    /// part's ([`merge_day`]) before the part's version is recorded, and the parts' cells deleted
    /// after it.
    MergeDay,
}

/// Seals one part of a day: reads the day's version and the part's visit rows in one batch (one
/// transaction), writes its one-filter cells (`cells`: one object per target, each holding the
/// version read) and then the object, for the day's last part merges the day's cells, records the
/// version. Returns the object's size, or `None` when the day was unregistered or planned in another
/// count meanwhile (its objects are then deleted again).
async fn seal_part(
    db: &D1Database,
    bucket: &Bucket,
    tenant: &str,
    day: i64,
    (part, parts): (u32, u32),
    cells: CellWrites,
) -> worker::Result<Option<usize>> {
    let with_cells = cells != CellWrites::No;
    let clock = crate::clock::now_ms;
    let t0 = clock();
    let read = d1::results_batch(db, &seal::read_part(tenant, day, part, parts)).await?;
    let t1 = clock();
    let version = seal::version_of(&d1::rows_of(&read[0])?);
    // Straight into typed rows (a JSON object per row would cost several times the bytes), joined
    // by moving each string into its visit. One part's rows at a time: D1's results go before the
    // encoding, the joined rows after it.
    let sessions: Vec<seal::SessionRow> = read[1].results()?;
    let pages: Vec<seal::PageVisitRow> = read[2].results()?;
    drop(read);
    let rows = seal::join(sessions, pages).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let visits = rows.len();
    let blob = segment::encode(day.div_euclid(DAY_SECS), &rows)
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    drop(rows);
    let size = blob.len();
    // The cells before the object: a part is read only once its version is recorded, after both.
    let mut cell_bytes = 0;
    if with_cells {
        let built: Vec<(String, Vec<u8>)> = {
            let seg = Segment::decode_again(&blob)
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            cells::TARGETS
                .iter()
                .map(|t| {
                    (
                        seal::cells_key(tenant, day, (part, parts), *t),
                        cells::build(&seg, *t, version),
                    )
                })
                .collect()
        };
        cell_bytes = built.iter().map(|(_, b)| b.len()).sum();
        let puts = built
            .into_iter()
            .map(|(k, b)| async move { bucket.put(k, b).execute().await.map(|_| ()) });
        for r in join_all(puts).await {
            r?;
        }
    }
    let key = seal::object_key(tenant, day, part, parts);
    bucket.put(key.clone(), blob).execute().await?;
    let t2 = clock();
    // The day's cells before the last part's version: the day is read (every part current) only
    // with them written, or their merge skipped or failed (then the parts' cells answer). A run
    // stopped meanwhile leaves the part unrecorded, so the next run seals it and merges again.
    let merged = if cells == CellWrites::MergeDay {
        match merge_day(bucket, tenant, day, parts, version).await {
            Ok(m) => m,
            Err(e) => {
                crate::log::event(
                    crate::log::Level::Warn,
                    "segment_cells_merge_failed",
                    &serde_json::json!({"tenant_id": tenant, "day": day, "error": e.to_string()}),
                );
                None
            }
        }
    } else {
        None
    };
    let t3 = clock();
    let marked = d1::run_counting(
        db,
        &[seal::mark_part(
            tenant,
            day,
            (part, parts),
            version,
            size,
            visits,
        )],
    )
    .await?;
    if marked == 0 {
        // The day's registration is gone (an erasure or retention deleted the tenant's rows while
        // this part was read and written; both delete D1 rows before R2 objects, so an object
        // written after their R2 pass is only caught here) or a later plan changed its count:
        // delete the object, so no copy outlives an erasure.
        let mut keys = vec![key];
        if with_cells {
            keys.extend(cells::TARGETS.map(|t| seal::cells_key(tenant, day, (part, parts), t)));
        }
        if merged.is_some() {
            keys.extend(cells::TARGETS.map(|t| seal::day_cells_key(tenant, day, t)));
        }
        archive::delete_keys(bucket, keys).await?;
        return Ok(None);
    }
    if merged.is_some() {
        // The parts' cells were the merge's only input: every part is now current, and a later
        // write to the day makes every part stale, so they are all sealed (and merged) again.
        delete_part_cells(bucket, tenant, day, parts).await?;
    }
    // Where a part's seal spends its time (workerd's clock advances at I/O only: `read_ms` is the D1
    // batch, `encode_put_ms` the encoding and the R2 write, `mark_ms` the version update).
    crate::log::event(
        crate::log::Level::Info,
        "segment_sealed",
        &serde_json::json!({
            "tenant_id": tenant, "day": day, "part": part, "parts": parts, "visits": visits,
            "bytes": size, "cell_bytes": cell_bytes, "read_ms": t1 - t0, "encode_put_ms": t2 - t1,
            "day_cell_bytes": merged, "merge_ms": t3 - t2, "mark_ms": clock() - t3,
        }),
    );
    Ok(Some(size))
}

/// Merges the cells of every part of a day sealed in `parts` parts into the day's cells
/// (`cells::merge`, `seal::day_cells_key`), one target at a time and [`MERGE_PARTS`] parts' objects
/// a step with the day's cells merged so far, so memory stays bounded however many parts. Returns
/// their bytes, or `None` (nothing more written) when a part's cells are missing or do not hold
/// `version`: the day is then not current as a whole (it is sealed again), or a part was sealed
/// without cells (`SEGMENT_CELLS=0` then) and its one-filter reads scan the day until it is resealed.
async fn merge_day(
    bucket: &Bucket,
    tenant: &str,
    day: i64,
    parts: u32,
    version: i64,
) -> worker::Result<Option<usize>> {
    let mut bytes = 0;
    let fail = |e: segment::SegmentError| worker::Error::RustError(e.to_string());
    let all: Vec<u32> = (0..parts).collect();
    for target in cells::TARGETS {
        let mut merged: Option<Vec<u8>> = None;
        for chunk in all.chunks(MERGE_PARTS) {
            let reads = chunk
                .iter()
                .map(|&p| read_object(bucket, seal::cells_key(tenant, day, (p, parts), target)));
            let mut blobs = Vec::with_capacity(chunk.len());
            for b in join_all(reads).await {
                match b? {
                    Some(b) => blobs.push(b),
                    None => return Ok(None),
                }
            }
            let next = {
                let decoded = blobs
                    .iter()
                    .chain(&merged)
                    .map(|b| Cells::decode(b))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(fail)?;
                if decoded.iter().any(|c| {
                    c.sealed() != version || c.day() * DAY_SECS != day || c.target() != target
                }) {
                    return Ok(None);
                }
                cells::merge(&decoded).map_err(fail)?
            };
            merged = Some(next);
        }
        let Some(merged) = merged else {
            return Ok(None);
        };
        bytes += merged.len();
        bucket
            .put(seal::day_cells_key(tenant, day, target), merged)
            .execute()
            .await?;
    }
    Ok(Some(bytes))
}

/// Deletes the cells of every part of a day sealed in `parts` parts.
async fn delete_part_cells(
    bucket: &Bucket,
    tenant: &str,
    day: i64,
    parts: u32,
) -> worker::Result<()> {
    let keys = (0..parts)
        .flat_map(|p| cells::TARGETS.map(|t| seal::cells_key(tenant, day, (p, parts), t)))
        .collect();
    archive::delete_keys(bucket, keys).await
}

/// Whether the cron writes one-filter cells with each part and a top list with one filter reads
/// them (`SEGMENT_CELLS` unset or anything but `0`).
pub fn cells_enabled(env: &Env) -> bool {
    env::var(env, env::SEGMENT_CELLS).as_deref() != Some("0")
}

/// Whether reads of the visit rows (filtered top lists and kpis, `/v0/query`) take sealed days from
/// segments (`SEGMENT_READS=1`; off by default).
pub fn reads_enabled(env: &Env) -> bool {
    env::var(env, env::SEGMENT_READS).as_deref() == Some("1")
}

/// A visit-level read (`query::ScanRoute`: a filtered top list, kpis, `/v0/query`) from the sealed
/// days' segments plus SQL for the other days. A top list with one filter (`ScanRoute::cells`) takes
/// the sealed days its window holds wholly from their one-filter cells (`segment::cells`) when cells
/// are on: those days' segments are not read. A sealed day whose cells are missing, of another
/// version or not usable (pages past the window) is scanned from its segments; one whose object is
/// missing or does not decode is read by SQL instead. Returns the scanned part (cells added), the SQL
/// part's rows (for `ScanRoute::assemble` or `assemble_query`) and what the read did, for the
/// request's log line.
pub async fn answer(
    env: &Env,
    db: &D1Database,
    (tenant, generation): (&TenantId, i64),
    route: &ScanRoute<'_>,
) -> Result<(Partial, Rows, SegmentRead), ApiError> {
    let (first, end) = route.days();
    // Where the time goes, logged per request (workerd's clock advances at I/O only: the CPU-bound
    // decode and scan show up inside the next I/O phase or not at all).
    let clock = crate::clock::now_ms;
    let t0 = clock();
    let listed = d1::rows(db, &seal::sealed_days(tenant, first, end)).await?;
    let t1 = clock();
    let listed: Vec<(i64, i64, i64, u32)> = listed
        .iter()
        .filter_map(|r| {
            let int = |c| starling_core::sql::int(r.get(c));
            let parts = u32::try_from(int("parts").unwrap_or(1)).ok()?;
            Some((
                int("day")?,
                int("sealed")?,
                int("bytes").unwrap_or(0),
                parts,
            ))
        })
        .collect();
    // The days whose objects (all their parts) fit one read's memory; the others go to SQL.
    let budget: Vec<(i64, i64, i64)> = listed.iter().map(|&(d, v, b, _)| (d, v, b)).collect();
    let days = seal::within_budget(&budget, seal::READ_BUDGET_BYTES);
    let parts_of: std::collections::HashMap<i64, u32> =
        listed.iter().map(|&(d, _, _, p)| (d, p)).collect();
    let bucket = archive::bucket(env)?;

    // The one-filter cells of the days the window holds wholly: each day's cells of the filter's
    // target (one object: `seal::day_cells_key`), decoded, of the day's version and usable for the
    // grouping; for a day of several parts whose day cells are not, every part's cells (a day sealed
    // before day cells, or whose merge failed); else the day is scanned.
    let ask = route.cells().filter(|_| cells_enabled(env));
    let whole: Vec<(i64, i64)> = match &ask {
        Some(_) => days
            .iter()
            .copied()
            .filter(|(d, _)| route.cells_day(*d))
            .collect(),
        None => Vec::new(),
    };
    let day_objects: Vec<(i64, i64, String)> = match &ask {
        Some(ask) => whole
            .iter()
            .map(|&(d, version)| {
                let key = seal::day_cells_key(tenant.as_str(), d, ask.target);
                (d, version, key)
            })
            .collect(),
        None => Vec::new(),
    };
    let day_blobs = fetch_all(&bucket, generation, &day_objects).await;
    let mut cell_days: Vec<i64> = Vec::new();
    let mut cell_parts: Vec<Cells> = Vec::new();
    let window = route.query().window;
    // Days whose day cells are current but do not answer the window: their parts' would not either.
    let mut unusable: Vec<i64> = Vec::new();
    for_each_day(&day_objects, &day_blobs, |day, version, objects| {
        if let Some(ask) = &ask {
            let at = (day, version);
            match take_cells(ask, window, generation, at, objects, &mut cell_parts) {
                Taken::Yes => cell_days.push(day),
                Taken::Unusable => unusable.push(day),
                Taken::No => {}
            }
        }
    });
    let day_cell_days = cell_days.len();
    let part_objects: Vec<(i64, i64, String)> = match &ask {
        Some(ask) => whole
            .iter()
            .filter(|(d, _)| !cell_days.contains(d) && !unusable.contains(d))
            .filter_map(|&(d, version)| {
                let parts = parts_of.get(&d).copied().unwrap_or(1);
                (parts > 1).then_some((d, version, parts))
            })
            .flat_map(|(d, version, parts)| {
                (0..parts).map(move |p| {
                    let key = seal::cells_key(tenant.as_str(), d, (p, parts), ask.target);
                    (d, version, key)
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let part_blobs = fetch_all(&bucket, generation, &part_objects).await;
    for_each_day(&part_objects, &part_blobs, |day, version, objects| {
        if let Some(ask) = &ask {
            let at = (day, version);
            if take_cells(ask, window, generation, at, objects, &mut cell_parts) == Taken::Yes {
                cell_days.push(day);
            }
        }
    });

    // Every part of every other day read: (day, version, key).
    let objects: Vec<(i64, i64, String)> = days
        .iter()
        .filter(|(d, _)| !cell_days.contains(d))
        .flat_map(|&(d, version)| {
            let parts = parts_of.get(&d).copied().unwrap_or(1);
            (0..parts).map(move |p| (d, version, seal::object_key(tenant.as_str(), d, p, parts)))
        })
        .collect();
    let blobs = fetch_all(&bucket, generation, &objects).await;
    let mut sealed = cell_days.clone();
    let mut segments = Vec::new();
    // A day counts only with every one of its parts decoded (parts are disjoint visitors of one
    // day: a missing part would drop its visitors), else the whole day is read by SQL.
    for_each_day(&objects, &blobs, |day, version, objects| {
        let n = parts_of.get(&day).copied().unwrap_or(1);
        let mut parts = Vec::with_capacity(n as usize);
        let mut failed = None;
        for (key, blob, kept) in objects.into_iter().flatten() {
            let seg = if kept {
                Segment::decode_again(blob)
            } else {
                Segment::decode(blob)
            };
            match seg {
                Ok(seg) if seg.day() * DAY_SECS == day => parts.push((seg, key, blob, kept)),
                Ok(_) => {
                    failed = Some("wrong day".to_owned());
                    break;
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if parts.len() < n as usize && failed.is_none() {
            failed = Some("missing".to_owned());
        }
        if let Some(error) = failed {
            crate::log::event(
                crate::log::Level::Warn,
                "segment_unreadable",
                &serde_json::json!({
                    "tenant_id": tenant.as_str(), "day": day, "parts": n, "error": error,
                }),
            );
            return;
        }
        for (seg, key, blob, kept) in parts {
            if !kept {
                keep(generation, key, version, blob);
            }
            segments.push(seg);
        }
        sealed.push(day);
    });
    sealed.sort_unstable();
    let t2 = clock();
    // The SQL part is sent first (`join!` polls in order: the batch is in flight before the scan
    // starts), and the scan runs while D1 answers.
    let statements = route.sql(&sealed);
    let sql = async {
        if statements.is_empty() {
            Ok(Vec::new())
        } else {
            d1::rows_batch(db, &statements).await
        }
    };
    let scan = async {
        let mut scanned = segment::scan(&segments, route.query())?;
        if let Some(ask) = &ask {
            scanned.merge(cells::answer(
                &cell_parts,
                &ask.value,
                ask.grouping,
                ask.skip_empty,
            )?);
        }
        Ok::<_, segment::SegmentError>(scanned)
    };
    let (rows, scanned) = futures_util::join!(sql, scan);
    let rows = rows?;
    let scanned = scanned.map_err(|e| ApiError::from(worker::Error::RustError(e.to_string())))?;
    let t3 = clock();
    let all = || blobs.iter().chain(&day_blobs).chain(&part_blobs).flatten();
    let read = SegmentRead {
        days: sealed.len(),
        cell_days: cell_days.len(),
        day_cell_days,
        bytes: all().map(|b| b.0.len()).sum(),
        fetched: all().filter(|b| !b.1).count(),
        list_ms: t1 - t0,
        fetch_decode_ms: t2 - t1,
        scan_sql_ms: t3 - t2,
    };
    Ok((scanned, rows, read))
}

/// What [`take_cells`] made of a day's cells objects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// The day is answered by them.
    Yes,
    /// They are current but do not answer this window (pages past its end): no other cells of the
    /// day would.
    Unusable,
    /// One is missing, does not decode, or is of another day, version or target.
    No,
}

/// Takes a day's cells objects into `into` when each decodes, of the day and its version, of the
/// question's target and usable for its grouping over `window` (keeping this isolate's copy of
/// each). `objects` is `None` when one could not be read.
fn take_cells<'b>(
    ask: &CellQuestion,
    window: (i64, i64),
    generation: i64,
    (day, version): (i64, i64),
    objects: Option<Vec<Fetched<'b>>>,
    into: &mut Vec<Cells<'b>>,
) -> Taken {
    let Some(objects) = objects else {
        return Taken::No;
    };
    let mut parts = Vec::with_capacity(objects.len());
    for (key, blob, kept) in objects {
        let decoded = if kept {
            Cells::decode_again(blob)
        } else {
            Cells::decode(blob)
        };
        match decoded {
            Ok(c)
                if c.day() * DAY_SECS == day
                    && c.sealed() == version
                    && c.target() == ask.target =>
            {
                if !c.usable(window, ask.grouping) {
                    return Taken::Unusable;
                }
                parts.push((c, key, blob, kept))
            }
            _ => return Taken::No,
        }
    }
    for (c, key, blob, kept) in parts {
        if !kept {
            keep(generation, key, version, blob);
        }
        into.push(c);
    }
    Taken::Yes
}

/// An object read for a day: its key, bytes, and whether this isolate kept it from an earlier read
/// (then it decoded before).
type Fetched<'b> = (&'b str, &'b Rc<Vec<u8>>, bool);

/// An object's bytes and whether they are this isolate's copy, or `None` when it could not be read.
type Blob = Option<(Rc<Vec<u8>>, bool)>;

/// Calls `f(day, version, parts)` for each day of `objects` (grouped by day, in order): `parts` is
/// every object of the day, or `None` when one of them could not be read.
fn for_each_day<'b>(
    objects: &'b [(i64, i64, String)],
    blobs: &'b [Blob],
    mut f: impl FnMut(i64, i64, Option<Vec<Fetched<'b>>>),
) {
    let mut at = 0;
    while at < objects.len() {
        let (day, version, _) = objects[at];
        let n = objects[at..].iter().take_while(|o| o.0 == day).count();
        let parts: Option<Vec<Fetched>> = objects[at..at + n]
            .iter()
            .zip(&blobs[at..at + n])
            .map(|((_, _, key), b)| b.as_ref().map(|(b, kept)| (key.as_str(), b, *kept)))
            .collect();
        at += n;
        f(day, version, parts);
    }
}

/// Reads `objects` (`(day, version, key)`) concurrently: this isolate's copy of the same version
/// when it has one (`true`), else from R2 (`None`: missing or unreadable).
async fn fetch_all(bucket: &Bucket, generation: i64, objects: &[(i64, i64, String)]) -> Vec<Blob> {
    // The copies are keyed by the tenant's generation too: an erased and re-created tenant starts
    // its days' versions again from 0, and must never be answered from its previous generation's
    // objects. Only objects that decoded are kept ([`keep`]), so a kept one is decoded again without
    // its checksum.
    let reads = objects.iter().map(|(_, version, key)| {
        let cached = format!("{generation}/{key}");
        async move {
            if let Some(hit) = CACHE.with(|c| c.borrow().get(&cached, *version)) {
                return Some((hit, true));
            }
            let blob = Rc::new(read_object(bucket, key.clone()).await.ok().flatten()?);
            Some((blob, false))
        }
    });
    join_all(reads).await
}

/// Keeps an object that decoded in this isolate's copies.
fn keep(generation: i64, key: &str, version: i64, blob: &Rc<Vec<u8>>) {
    CACHE.with(|c| {
        c.borrow_mut()
            .put(format!("{generation}/{key}"), version, blob.clone())
    });
}

/// What one read from segments did, written in its request's log line (`segments`): days answered
/// from segments, bytes of their objects and how many were fetched from R2 (the others were this
/// isolate's copies), and where the time went. The clock advances at I/O only: `scan_sql_ms` is the SQL
/// batch with the scan overlapping it, and CPU-bound decoding shows in the next I/O phase or not at all.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentRead {
    /// Days read from segments (the others from the visit rows), cells included.
    pub days: usize,
    /// Of those, days read from one-filter cells rather than scanned.
    pub cell_days: usize,
    /// Of those, days read from their day's cells (one object: `seal::day_cells_key`), the others
    /// from every part's.
    pub day_cell_days: usize,
    /// Bytes of the objects read.
    pub bytes: usize,
    /// Objects fetched from R2.
    pub fetched: usize,
    /// Milliseconds listing the sealed days (`segment_days`, `segment_parts`).
    pub list_ms: i64,
    /// Milliseconds fetching and decoding the objects.
    pub fetch_decode_ms: i64,
    /// Milliseconds of the SQL part, the scan overlapping it.
    pub scan_sql_ms: i64,
}

/// The SQL part's row sets.
pub type Rows = Vec<Vec<serde_json::Map<String, Value>>>;

/// Segment objects this isolate has read, oldest first, at most [`CACHE_BYTES`] in all. An entry is
/// used only for the same day and version (`segment_days.sealed`), so a resealed day is fetched again.
struct ObjectCache {
    entries: VecDeque<(String, i64, Rc<Vec<u8>>)>,
    bytes: usize,
}

/// What the isolate keeps of segment objects (the largest tenant of the 10M set: 24 MB for 28 days).
const CACHE_BYTES: usize = 32 << 20;

thread_local! {
    static CACHE: RefCell<ObjectCache> = const {
        RefCell::new(ObjectCache { entries: VecDeque::new(), bytes: 0 })
    };
}

impl ObjectCache {
    fn get(&self, key: &str, version: i64) -> Option<Rc<Vec<u8>>> {
        self.entries
            .iter()
            .find(|(k, v, _)| k == key && *v == version)
            .map(|(_, _, b)| b.clone())
    }

    fn put(&mut self, key: String, version: i64, blob: Rc<Vec<u8>>) {
        if blob.len() > CACHE_BYTES {
            return;
        }
        if let Some(at) = self.entries.iter().position(|(k, _, _)| *k == key) {
            if let Some((_, _, old)) = self.entries.remove(at) {
                self.bytes -= old.len();
            }
        }
        self.bytes += blob.len();
        self.entries.push_back((key, version, blob));
        while self.bytes > CACHE_BYTES {
            match self.entries.pop_front() {
                Some((_, _, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
    }
}

async fn read_object(bucket: &Bucket, key: String) -> worker::Result<Option<Vec<u8>>> {
    let Some(object) = bucket.get(key).execute().await? else {
        return Ok(None);
    };
    match object.body() {
        Some(body) => Ok(Some(body.bytes().await?)),
        None => Ok(None),
    }
}
