//! A tenant's data lifecycle: retention (rows and archive objects older than the tenant's
//! `retention_days` are deleted) and erasure (everything of the tenant is deleted).
//!
//! [`TENANT_TABLES`] is the one list of tables holding a tenant's data; a test reads the migrated
//! schema and fails when a table with a `tenant_id` column is missing from it, so a new table cannot
//! escape erasure. Two tables are deliberately absent: `tenants` (the tombstone that keeps an erased
//! tenant's tokens refused) and `audit_denials` (the security log, which holds no personal data).

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
    table("hits_hourly", Some(DateColumn::Secs("hour"))),
    table("active_minutes", Some(DateColumn::Secs("minute"))),
    table("visit_hourly", Some(DateColumn::Secs("hour"))),
    table("visit_daily", Some(DateColumn::Secs("day"))),
    table("open_visits", Some(DateColumn::Secs("last_ts"))),
    table("visitor_days", Some(DateColumn::Secs("day"))),
    table("domains", None),
    table("actions", None),
    table("bot_hits_daily", Some(DateColumn::Day("day"))),
    table("quarantine_daily", Some(DateColumn::Day("day"))),
    // Billing records outlive the analytics retention; erasure still removes them.
    table("usage_daily", None),
    table("tenant_settings", None),
    table("tokens", None),
    table("tenant_keys", None),
];

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

/// One `DELETE` per dated table removing the tenant's rows dated before `cutoff_secs` (retention).
/// Undated tables are untouched.
pub fn expire(tenant_id: &str, cutoff_secs: i64) -> Vec<Statement> {
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
        .collect()
}

/// The retention cutoff: the start of the UTC day `retention_days` days before the day of `now_secs`.
/// Rows dated before it are expired, so today plus `retention_days` whole days are kept.
pub fn cutoff(now_secs: i64, retention_days: u32) -> i64 {
    now_secs.div_euclid(DAY_SECS) * DAY_SECS - i64::from(retention_days) * DAY_SECS
}

/// The tenant's R2 archive prefixes: `events/{t}/` (keys `events/{t}/{YYYY-MM-DD}/{HH}/{batch}.ndjson`)
/// and `quarantine/{t}/` (keys `quarantine/{t}/{YYYY-MM-DD}/{batch}.ndjson`). The trailing `/` keeps
/// tenant `acme` from matching `acme2`'s objects.
pub fn archive_prefixes(tenant_id: &str) -> [String; 2] {
    [
        format!("events/{tenant_id}/"),
        format!("quarantine/{tenant_id}/"),
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
            ["events/acme/".to_owned(), "quarantine/acme/".to_owned()]
        );
    }

    #[test]
    fn erase_covers_every_table_and_expire_only_dated_ones() {
        let e = erase("acme");
        assert_eq!(e.len(), TENANT_TABLES.len());
        assert!(e
            .iter()
            .all(|s| s.binds == vec![SqlValue::Text("acme".into())]));
        let x = expire("acme", AUG_13);
        assert_eq!(x.len(), 10);
        let bots = x.iter().find(|s| s.sql.contains("bot_hits_daily")).unwrap();
        assert_eq!(bots.binds[1], SqlValue::Text("2025-08-13".into()));
        let hits = x.iter().find(|s| s.sql.contains("hits_hourly")).unwrap();
        assert_eq!(hits.binds[1], SqlValue::Int(AUG_13));
        assert!(x.iter().all(|s| !s.sql.contains("usage_daily")));
    }
}
