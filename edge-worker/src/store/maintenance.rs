//! Cron maintenance: prunes the short-lived tables (minute activity, old salts, old batch ids).

use starling_core::sql::Statement;
use starling_core::time::day_string;
use worker::Env;

use crate::store::d1;

/// Batch ids are kept longer than the queue's 14-day retention, so any redelivery is still recognised.
const BATCH_ID_RETENTION_SECS: i64 = 15 * 86_400;

/// Deletes `active_minutes` older than a day, salts older than yesterday and expired batch ids.
pub async fn prune(env: &Env) {
    let now = crate::clock::now_secs();
    let statements = [
        Statement::new(
            "DELETE FROM active_minutes WHERE minute < ?",
            vec![(now - 86_400).into()],
        ),
        Statement::new(
            "DELETE FROM salts WHERE day < ?",
            vec![day_string(now - 86_400).into()],
        ),
        Statement::new(
            "DELETE FROM applied_batches WHERE applied_at < ?",
            vec![(now - BATCH_ID_RETENTION_SECS).into()],
        ),
    ];
    let result = match d1::db(env) {
        Ok(db) => d1::run_atomic(&db, &statements).await,
        Err(e) => Err(e),
    };
    let (level, outcome) = match &result {
        Ok(()) => (crate::log::Level::Info, "ok".to_string()),
        Err(e) => (crate::log::Level::Error, e.to_string()),
    };
    crate::log::event(
        level,
        "cron_prune",
        &serde_json::json!({ "outcome": outcome }),
    );
}
