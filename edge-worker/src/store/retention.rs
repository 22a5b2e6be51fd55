//! Retention and the erasure sweep, run by the hourly cron (and `POST /v0/admin/retention/run`).
//!
//! For every tenant: rollup rows dated before its cutoff (`retention_days`, or `DEFAULT_RETENTION_DAYS`
//! for tenants never created through the admin API) are deleted, as are per-dimension hourly rows
//! older than the last two UTC days (`visits::prune_hourly`), and custom-event payloads older than the
//! cutoff cleared, in the pool and in its silo database (`lifecycle::databases`: events sent before a
//! tenant was registered as a silo are in the pool), and its R2 day folders before the cutoff are
//! deleted. Tombstoned (erased) tenants are erased again, which removes
//! anything a batch in flight at the moment of erasure wrote afterwards.

use serde_json::Value;
use starling_core::lifecycle;
use starling_core::rollup::visits;
use starling_core::tenant::{self, Status, DEFAULT_RETENTION_DAYS};
use worker::Env;

use crate::env;
use crate::store::{archive, d1};

/// One tenant's retention task.
pub(crate) struct Task {
    pub(crate) tenant_id: String,
    retention_days: u32,
    /// The tenant's silo database binding, if it has one (else the pool).
    pub(crate) database: Option<String>,
    pub(crate) erased: bool,
}

/// Runs retention for every tenant; returns a report (also logged).
pub async fn run(env: &Env) -> Value {
    let now = crate::clock::now_secs();
    let (tasks, error) = match tasks(env).await {
        Ok(t) => (t, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let (mut rows, mut objects, mut failures) = (0u64, 0u64, Vec::new());
    for task in &tasks {
        let result = if task.erased {
            erase(env, &task.tenant_id, task.database.as_deref()).await
        } else {
            expire(env, task, now).await
        };
        match result {
            Ok((r, o)) => {
                rows += r;
                objects += o;
            }
            Err(e) => failures.push(serde_json::json!({
                "tenant_id": task.tenant_id, "error": e.to_string()
            })),
        }
    }
    let report = serde_json::json!({
        "tenants": tasks.len(),
        "d1_rows_deleted": rows,
        "r2_objects_deleted": objects,
        "failures": failures,
        "error": error,
    });
    crate::log::cron_report("cron_retention", &report);
    report
}

/// Deletes every row of the tenant in its databases and every object of it in R2; returns the counts.
pub async fn erase(env: &Env, id: &str, silo: Option<&str>) -> worker::Result<(u64, u64)> {
    let statements = lifecycle::erase(id);
    let mut rows = 0;
    for binding in lifecycle::databases(env::DB, silo) {
        rows += d1::run_counting(&d1::named(env, binding)?, &statements).await?;
    }
    let bucket = archive::bucket(env)?;
    let mut objects = 0;
    for prefix in lifecycle::archive_prefixes(id) {
        objects += archive::delete_prefix(&bucket, &prefix).await?;
    }
    Ok((rows, objects))
}

/// Registered tenants (active and erased) plus the tenants of the pool that were never registered.
pub(crate) async fn tasks(env: &Env) -> worker::Result<Vec<Task>> {
    let db = d1::db(env)?;
    let default_days = env::var(env, env::DEFAULT_RETENTION_DAYS)
        .and_then(|v| v.parse().ok())
        .filter(|d| (1..=3650).contains(d))
        .unwrap_or(DEFAULT_RETENTION_DAYS);
    let results = d1::rows_batch(&db, &[tenant::list_every(), tenant::unregistered()]).await?;
    let mut out: Vec<Task> = results[0]
        .iter()
        .filter_map(tenant::from_row)
        .map(|t| Task {
            erased: t.status == Status::Deleted,
            retention_days: t.retention_days,
            database: t.database,
            tenant_id: t.tenant_id,
        })
        .collect();
    out.extend(results[1].iter().filter_map(|r| {
        Some(Task {
            tenant_id: r.get("tenant_id")?.as_str()?.to_owned(),
            retention_days: default_days,
            database: None,
            erased: false,
        })
    }));
    Ok(out)
}

/// Deletes what is older than the tenant's cutoff in D1 and R2.
async fn expire(env: &Env, task: &Task, now: i64) -> worker::Result<(u64, u64)> {
    let cutoff = lifecycle::cutoff(now, task.retention_days);
    let mut statements = lifecycle::expire(&task.tenant_id, cutoff);
    // Per-dimension hourly rows live a couple of days only (`visits::HOURLY_DAYS`).
    statements.push(visits::prune_hourly(&task.tenant_id, now));
    let mut rows = 0;
    for binding in lifecycle::databases(env::DB, task.database.as_deref()) {
        rows += d1::run_counting(&d1::named(env, binding)?, &statements).await?;
    }
    let bucket = archive::bucket(env)?;
    let mut objects = 0;
    for prefix in lifecycle::archive_prefixes(&task.tenant_id) {
        // Whole day folders (`{prefix}{YYYY-MM-DD}/`) before the cutoff, without listing each object.
        for folder in archive::day_folders(&bucket, &prefix).await? {
            if lifecycle::archive_key_expired(&folder, &task.tenant_id, cutoff) {
                objects += archive::delete_prefix(&bucket, &folder).await?;
            }
        }
    }
    Ok((rows, objects))
}
