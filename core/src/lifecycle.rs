//! A tenant's data lifecycle: retention (rows and archive objects older than the tenant's
//! `retention_days` are deleted) and erasure (everything of the tenant is deleted).
//!
//! [`TENANT_TABLES`] is the one list of tables holding a tenant's data; a test reads the migrated
//! schema and fails when a table with a `tenant_id` column is missing from it, so a new table cannot
//! escape erasure. Two tables are deliberately absent: `tenants` (the tombstone that keeps an erased
//! tenant's tokens refused) and `audit_denials` (the security log, which holds no personal data).
//!
//! Retention also reaches undated tables that hold event payloads ([`PAYLOAD_COLUMNS`]: the last
//! payload of each custom event is cleared once it is older than the cutoff), and runs on every
//! database that may hold the tenant's rows ([`databases`]: a silo tenant's pool rows from before it
//! was registered too). [`batch_is_stale`] decides whether a queued batch belongs to an older
//! generation of its tenant (accepted before an erasure) and must be dropped.

use crate::sql::Statement;
use crate::time::{day_string, parse_day, DAY_SECS};

/// The column that dates a row, for retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateColumn {
    /// An INTEGER column of UTC unix seconds.
    Secs(&'static str),
    /// A TEXT column holding a UTC day as `YYYY-MM-DD`.
    Day(&'static str),
}

/// A table holding tenant data, keyed by `tenant_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantTable {
    /// The table's name.
    pub name: &'static str,
    /// The column retention compares with the cutoff; `None`: not dated (kept by retention, deleted by
    /// erasure).
    pub dated_by: Option<DateColumn>,
}

const fn table(name: &'static str, dated_by: Option<DateColumn>) -> TenantTable {
    TenantTable { name, dated_by }
}

/// The tables with a tenant's data (every table with a `tenant_id` column except `tenants` and
/// `audit_denials`), with the column that dates their rows.
pub const TENANT_TABLES: &[TenantTable] = &[
    table("sessions", Some(DateColumn::Secs("first_ts"))),
    table("page_visits", Some(DateColumn::Secs("first_ts"))),
    table("session_goals", Some(DateColumn::Secs("first_ts"))),
    table("session_props", Some(DateColumn::Secs("first_ts"))),
    table("session_goal_props", Some(DateColumn::Secs("first_ts"))),
    table("session_funnels", Some(DateColumn::Secs("first_ts"))),
    table("active_minutes", Some(DateColumn::Secs("minute"))),
    table("visit_hourly", Some(DateColumn::Secs("hour"))),
    table("visit_daily", Some(DateColumn::Secs("day"))),
    table("open_visits", Some(DateColumn::Secs("last_ts"))),
    table("visitor_days", Some(DateColumn::Secs("day"))),
    table("domains", None),
    table("actions", None),
    table("bot_hits_daily", Some(DateColumn::Day("day"))),
    table("quarantine_daily", Some(DateColumn::Day("day"))),
    table("web_vitals_daily", Some(DateColumn::Secs("day"))),
    table("captures_daily", Some(DateColumn::Secs("day"))),
    // Billing records outlive the analytics retention; erasure still removes them.
    table("usage_daily", None),
    table("tenant_settings", None),
    table("goals", None),
    table("funnels", None),
    table("prop_values", None),
    table("prop_keys", None),
    table("tokens", None),
    table("tenant_keys", None),
    table("segments", None),
    // Which days of visits are sealed into R2 objects (`crate::segment::seal`).
    table("segment_days", Some(DateColumn::Secs("day"))),
    // Each part's sealed version, size and visits (migration 0021).
    table("segment_parts", Some(DateColumn::Secs("day"))),
];

/// Payload columns in tables that retention does not delete by date: `(table, payload column, the
/// column dating the payload in unix seconds, the value a cleared payload gets)`. Expired payloads are
/// cleared in place, so all-time counts survive and no property outlives the retention.
pub const PAYLOAD_COLUMNS: &[(&str, &str, &str, &str)] =
    &[("actions", "last_payload", "last_seen", "{}")];

/// Tables with a `tenant_id` column that erasure and retention leave alone, on purpose.
pub const EXEMPT_TABLES: [&str; 2] = ["tenants", "audit_denials"];

/// One `DELETE` per table of [`TENANT_TABLES`] removing all of the tenant's rows (erasure). The number of
/// rows deleted is each statement's change count (D1's `meta.changes`).
pub fn erase(tenant_id: &str) -> Vec<Statement> {
    TENANT_TABLES
        .iter()
        .map(|t| {
            Statement::new(
                format!("DELETE FROM {} WHERE tenant_id = ?", t.name),
                vec![tenant_id.into()],
            )
        })
        .collect()
}

/// One `DELETE` per dated table removing the tenant's rows dated before `cutoff_secs` (retention), and
/// one `UPDATE` per [`PAYLOAD_COLUMNS`] entry clearing payloads dated before it. Other undated tables are
/// untouched.
pub fn expire(tenant_id: &str, cutoff_secs: i64) -> Vec<Statement> {
    let payloads = PAYLOAD_COLUMNS.iter().map(|(table, column, dated, cleared)| {
        Statement::new(
            format!(
                "UPDATE {table} SET {column} = ? WHERE tenant_id = ? AND {dated} < ? AND {column} <> ?"
            ),
            vec![
                (*cleared).into(),
                tenant_id.into(),
                cutoff_secs.into(),
                (*cleared).into(),
            ],
        )
    });
    TENANT_TABLES
        .iter()
        .filter_map(|t| {
            let (column, bound) = match t.dated_by? {
                DateColumn::Secs(c) => (c, cutoff_secs.into()),
                DateColumn::Day(c) => (c, day_string(cutoff_secs).into()),
            };
            Some(Statement::new(
                format!(
                    "DELETE FROM {} WHERE tenant_id = ? AND {column} < ?",
                    t.name
                ),
                vec![tenant_id.into(), bound],
            ))
        })
        .chain(payloads)
        .collect()
}

/// The D1 bindings retention and erasure must visit for a tenant: always the pool (`pool`), where
/// events sent before a tenant was registered as a silo landed, and its silo database if it has one.
pub fn databases<'a>(pool: &'a str, silo: Option<&'a str>) -> Vec<&'a str> {
    let mut out = vec![pool];
    out.extend(silo.filter(|s| *s != pool));
    out
}

/// Whether a queued batch stamped with its tenant's `batch_generation` (at acceptance) must be dropped
/// because the tenant has since moved to `current` (it was erased, and maybe re-created): a retried or
/// replayed batch, one accepted by an isolate with a stale cache, or the leftover of an interrupted
/// erasure must never become the new tenant's data.
///
/// Generations 0 (a tenant never registered) and 1 (registered, never erased) are one epoch, so the
/// batches in flight when a tenant is first registered are kept. A batch without a generation (queued
/// before batches carried one) is taken as that first epoch: kept unless the tenant was erased since.
pub fn batch_is_stale(batch_generation: Option<i64>, current: i64) -> bool {
    let epoch = |g: i64| g.max(1);
    epoch(batch_generation.unwrap_or(1)) < epoch(current)
}

/// The retention cutoff: the start of the UTC day `retention_days` days before the day of `now_secs`.
/// Rows dated before it are expired, so today plus `retention_days` whole days are kept.
pub fn cutoff(now_secs: i64, retention_days: u32) -> i64 {
    now_secs.div_euclid(DAY_SECS) * DAY_SECS - i64::from(retention_days) * DAY_SECS
}

/// The tenant's R2 prefixes: `events/{t}/` (keys `events/{t}/{YYYY-MM-DD}/{HH}/{batch}.ndjson`),
/// `quarantine/{t}/` (keys `quarantine/{t}/{YYYY-MM-DD}/{batch}.ndjson`) and `segments/{t}/` (visit
/// segments, `segments/{t}/{YYYY-MM-DD}/visits`). Each holds a folder per UTC day, so erasure deletes
/// the prefixes and retention the day folders before the cutoff. The trailing `/` keeps tenant `acme`
/// from matching `acme2`'s objects.
pub fn archive_prefixes(tenant_id: &str) -> [String; 3] {
    [
        format!("events/{tenant_id}/"),
        format!("quarantine/{tenant_id}/"),
        format!("segments/{tenant_id}/"),
    ]
}

/// Whether `key` is one of the tenant's archive objects dated before the cutoff's day. Keys of other
/// tenants and keys whose date segment does not parse give `false` (never delete what is not understood).
pub fn archive_key_expired(key: &str, tenant_id: &str, cutoff_secs: i64) -> bool {
    let Some(rest) = archive_prefixes(tenant_id)
        .iter()
        .find_map(|p| key.strip_prefix(p.as_str()))
    else {
        return false;
    };
    let Some((day, _)) = rest.split_once('/') else {
        return false;
    };
    parse_day(day).is_some_and(|d| d * DAY_SECS < cutoff_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::SqlValue;

    const NOW: i64 = 1_755_081_662; // 2025-08-13T10:41:02Z
    const AUG_13: i64 = 1_755_043_200;

    #[test]
    fn cutoff_is_the_start_of_a_day() {
        assert_eq!(cutoff(NOW, 0), AUG_13);
        assert_eq!(cutoff(NOW, 1), AUG_13 - DAY_SECS);
        assert_eq!(day_string(cutoff(NOW, 395)), "2024-07-14");
        assert_eq!(cutoff(AUG_13, 1), cutoff(AUG_13 + DAY_SECS - 1, 1));
    }

    #[test]
    fn archive_keys_expire_by_their_date_segment() {
        let c = cutoff(NOW, 30); // 2025-07-14
        assert!(archive_key_expired(
            "events/acme/2025-07-13/23/b1.ndjson",
            "acme",
            c
        ));
        assert!(!archive_key_expired(
            "events/acme/2025-07-14/00/b1.ndjson",
            "acme",
            c
        ));
        assert!(archive_key_expired(
            "quarantine/acme/2024-01-01/b1.ndjson",
            "acme",
            c
        ));
        assert!(!archive_key_expired(
            "quarantine/acme/2025-08-13/b1.ndjson",
            "acme",
            c
        ));
    }

    #[test]
    fn archive_keys_of_other_tenants_or_unknown_shapes_never_expire() {
        let c = cutoff(NOW, 30);
        for key in [
            "events/acme2/2020-01-01/00/b.ndjson",
            "quarantine/acme2/2020-01-01/b.ndjson",
            "events/acm/2020-01-01/00/b.ndjson",
            "events/acme/latest.ndjson",
            "events/acme/2020-1-1/00/b.ndjson",
            "events/acme/2020-01-01",
            "other/acme/2020-01-01/b.ndjson",
            "events/acme//2020-01-01/b.ndjson",
        ] {
            assert!(!archive_key_expired(key, "acme", c), "{key}");
        }
        assert!(archive_key_expired(
            "events/acme2/2020-01-01/00/b.ndjson",
            "acme2",
            c
        ));
        assert_eq!(
            archive_prefixes("acme"),
            [
                "events/acme/".to_owned(),
                "quarantine/acme/".to_owned(),
                "segments/acme/".to_owned()
            ]
        );
        // Every part of a segment, in one part or several.
        for (part, parts) in [(0, 1), (0, 3), (2, 3)] {
            assert!(archive_key_expired(
                &crate::segment::seal::object_key("acme", AUG_13 - DAY_SECS, part, parts),
                "acme",
                AUG_13
            ));
            assert!(!archive_key_expired(
                &crate::segment::seal::object_key("acme", AUG_13, part, parts),
                "acme",
                AUG_13
            ));
            // The part's one-filter cells, every target, in the same day folder.
            for target in crate::segment::cells::TARGETS {
                let key = |day| crate::segment::seal::cells_key("acme", day, (part, parts), target);
                assert!(archive_key_expired(&key(AUG_13 - DAY_SECS), "acme", AUG_13));
                assert!(!archive_key_expired(&key(AUG_13), "acme", AUG_13));
                assert!(key(AUG_13).starts_with(&archive_prefixes("acme")[2]));
            }
        }
    }

    #[test]
    fn erase_covers_every_table_and_expire_only_dated_ones() {
        let e = erase("acme");
        assert_eq!(e.len(), TENANT_TABLES.len());
        assert!(e
            .iter()
            .all(|s| s.binds == vec![SqlValue::Text("acme".into())]));
        let x = expire("acme", AUG_13);
        assert_eq!(x.len(), 18); // the dated tables, segment_parts (0021) among them
        let goal_props = x
            .iter()
            .find(|s| s.sql.contains("session_goal_props"))
            .unwrap();
        assert!(goal_props.sql.contains("first_ts < ?"));
        assert_eq!(goal_props.binds[1], SqlValue::Int(AUG_13));
        let vitals = x
            .iter()
            .find(|s| s.sql.contains("web_vitals_daily"))
            .unwrap();
        assert_eq!(vitals.binds[1], SqlValue::Int(AUG_13));
        let payloads = x
            .iter()
            .find(|s| s.sql.starts_with("UPDATE actions"))
            .unwrap();
        assert_eq!(payloads.binds[1], SqlValue::Text("acme".into()));
        assert_eq!(payloads.binds[2], SqlValue::Int(AUG_13));
        let bots = x.iter().find(|s| s.sql.contains("bot_hits_daily")).unwrap();
        assert_eq!(bots.binds[1], SqlValue::Text("2025-08-13".into()));
        let hourly = x.iter().find(|s| s.sql.contains("visit_hourly")).unwrap();
        assert_eq!(hourly.binds[1], SqlValue::Int(AUG_13));
        assert!(x.iter().all(|s| !s.sql.contains("usage_daily")));
    }

    #[test]
    fn retention_visits_the_pool_and_the_silo() {
        assert_eq!(databases("DB", None), ["DB"]);
        assert_eq!(databases("DB", Some("SILO_1")), ["DB", "SILO_1"]);
        assert_eq!(databases("DB", Some("DB")), ["DB"]);
    }

    #[test]
    fn batches_of_an_older_generation_are_stale() {
        // Never registered (0) or registered once (1): one epoch, nothing in flight is lost.
        for (batch, current) in [
            (Some(0), 0),
            (Some(0), 1),
            (Some(1), 1),
            (None, 0),
            (None, 1),
        ] {
            assert!(!batch_is_stale(batch, current), "{batch:?} {current}");
        }
        // Erased (tombstone 2) and re-created (3): everything accepted before is dropped.
        for (batch, current) in [
            (Some(1), 2),
            (Some(0), 3),
            (Some(1), 3),
            (Some(2), 3),
            (None, 3),
        ] {
            assert!(batch_is_stale(batch, current), "{batch:?} {current}");
        }
        assert!(!batch_is_stale(Some(3), 3));
        // A batch from a newer generation than a stale consumer cache is not dropped by this rule.
        assert!(!batch_is_stale(Some(4), 3));
    }
}
