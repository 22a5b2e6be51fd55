//! Tenant operations (erasure, retention, usage metering, the audit log) against an in-memory SQLite
//! loaded with the real D1 migrations.

use rusqlite::{params_from_iter, Connection};
use serde_json::json;
use starling_core::audit::{self, Denial, Reason};
use starling_core::lifecycle::{cutoff, erase, expire, DateColumn, EXEMPT_TABLES, TENANT_TABLES};
use starling_core::sql::Statement;
use starling_core::time::{day_string, DAY_SECS};
use starling_core::usage::{self, UsageDelta};
mod common;

use common::{bind, migrated_db as db, rows, run};

const NOW: i64 = 1_755_081_662; // 2025-08-13T10:41:02Z

/// Executes statements one by one, returning the rows each changed (D1's `meta.changes`).
fn changes(conn: &Connection, statements: &[Statement]) -> usize {
    statements
        .iter()
        .map(|s| {
            conn.execute(&s.sql, params_from_iter(s.binds.iter().map(bind)))
                .unwrap()
        })
        .sum()
}

/// `(name, declared type)` of a table's columns.
fn columns(conn: &Connection, table: &str) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT name, type FROM pragma_table_info('{table}')"
        ))
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn tables(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn count(conn: &Connection, table: &str, tenant: &str) -> i64 {
    conn.query_row(
        &format!("SELECT count(*) FROM {table} WHERE tenant_id = ?"),
        [tenant],
        |r| r.get(0),
    )
    .unwrap()
}

/// Inserts one row of `tenant` into `table`, dated `at_secs` in the table's date column (if any). Every
/// other column gets a value unique to (tenant, n), so rows only collide in tables keyed by the tenant
/// alone (one row per tenant): there the later rows are ignored.
fn seed(conn: &Connection, table: &str, tenant: &str, n: i64, at_secs: i64) {
    let date = TENANT_TABLES
        .iter()
        .find(|t| t.name == table)
        .and_then(|t| t.dated_by);
    let cols = columns(conn, table);
    let values: Vec<rusqlite::types::Value> = cols
        .iter()
        .map(|(name, ty)| match (name.as_str(), date) {
            ("tenant_id", _) => tenant.to_owned().into(),
            (c, Some(DateColumn::Secs(d))) if c == d => at_secs.into(),
            (c, Some(DateColumn::Day(d))) if c == d => day_string(at_secs).into(),
            (_, _) if ty.eq_ignore_ascii_case("INTEGER") => n.into(),
            (c, _) => format!("{tenant}-{c}-{n}").into(),
        })
        .collect();
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    let marks = vec!["?"; cols.len()].join(", ");
    conn.execute(
        &format!(
            "INSERT OR IGNORE INTO {table} ({}) VALUES ({marks})",
            names.join(", ")
        ),
        params_from_iter(values),
    )
    .unwrap();
}

#[test]
fn every_table_with_a_tenant_id_is_erased_or_deliberately_exempt() {
    let conn = db();
    let mut with_tenant = Vec::new();
    for table in tables(&conn) {
        if columns(&conn, &table).iter().any(|(c, _)| c == "tenant_id") {
            assert!(
                TENANT_TABLES.iter().any(|t| t.name == table)
                    || EXEMPT_TABLES.contains(&table.as_str()),
                "table '{table}' has a tenant_id column but is not in lifecycle::TENANT_TABLES: \
                 add it there so erasure (and retention, if dated) covers it"
            );
            with_tenant.push(table);
        }
    }
    for t in TENANT_TABLES {
        assert!(
            with_tenant.iter().any(|w| w == t.name),
            "{} is not a table with tenant_id",
            t.name
        );
        let cols = columns(&conn, t.name);
        let expected_type = match t.dated_by {
            None => continue,
            Some(DateColumn::Secs(c)) => (c, "INTEGER"),
            Some(DateColumn::Day(c)) => (c, "TEXT"),
        };
        assert!(
            cols.iter()
                .any(|(c, ty)| c == expected_type.0 && ty == expected_type.1),
            "{}.{} is not an {} column",
            t.name,
            expected_type.0,
            expected_type.1
        );
    }
    for e in EXEMPT_TABLES {
        assert!(with_tenant.iter().any(|w| w == e), "{e}");
    }
}

#[test]
fn erase_deletes_everything_of_one_tenant_and_nothing_else() {
    let conn = db();
    for t in TENANT_TABLES {
        for (i, tenant) in ["acme", "acme2"].iter().enumerate() {
            seed(
                &conn,
                t.name,
                tenant,
                1 + i as i64 * 10,
                NOW - 400 * DAY_SECS,
            );
            seed(&conn, t.name, tenant, 2 + i as i64 * 10, NOW);
        }
    }
    for e in EXEMPT_TABLES {
        seed(&conn, e, "acme", 1, NOW);
    }
    let before: Vec<(i64, i64)> = TENANT_TABLES
        .iter()
        .map(|t| (count(&conn, t.name, "acme"), count(&conn, t.name, "acme2")))
        .collect();
    assert!(before.iter().all(|(a, b)| *a >= 1 && a == b));
    let deleted = changes(&conn, &erase("acme"));
    assert_eq!(deleted as i64, before.iter().map(|(a, _)| a).sum::<i64>());
    for (t, (_, b)) in TENANT_TABLES.iter().zip(before) {
        assert_eq!(count(&conn, t.name, "acme"), 0, "{}", t.name);
        assert_eq!(count(&conn, t.name, "acme2"), b, "{}", t.name);
    }
    for e in EXEMPT_TABLES {
        assert_eq!(count(&conn, e, "acme"), 1, "{e} is kept");
    }
    assert_eq!(changes(&conn, &erase("acme")), 0, "erasure is idempotent");
}

#[test]
fn expire_deletes_only_rows_before_the_cutoff() {
    let conn = db();
    let c = cutoff(NOW, 30);
    for t in TENANT_TABLES {
        for (i, tenant) in ["acme", "globex"].iter().enumerate() {
            let k = i as i64 * 10;
            seed(&conn, t.name, tenant, 1 + k, c - 1); // the last second before the cutoff
            seed(&conn, t.name, tenant, 2 + k, c); // the first second kept
            seed(&conn, t.name, tenant, 3 + k, NOW);
        }
    }
    let before: Vec<i64> = TENANT_TABLES
        .iter()
        .map(|t| count(&conn, t.name, "acme"))
        .collect();
    let dated = TENANT_TABLES
        .iter()
        .filter(|t| t.dated_by.is_some())
        .count();
    // Plus the custom-event payloads cleared in place: `actions` is seeded with last_seen 1..3, long
    // before the cutoff.
    let payloads = 3;
    assert_eq!(changes(&conn, &expire("acme", c)), dated + payloads);
    let cleared = |tenant: &str| -> i64 {
        conn.query_row(
            "SELECT COUNT(*) FROM actions WHERE tenant_id = ? AND last_payload = '{}'",
            [tenant],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!((cleared("acme"), cleared("globex")), (3, 0));
    for (t, n) in TENANT_TABLES.iter().zip(before) {
        if t.dated_by.is_some() {
            assert_eq!(n, 3, "{}", t.name);
            assert_eq!(count(&conn, t.name, "acme"), 2, "{}", t.name);
        } else {
            assert_eq!(count(&conn, t.name, "acme"), n, "{} is not dated", t.name);
        }
        assert_eq!(count(&conn, t.name, "globex"), n, "{}", t.name);
    }
    assert_eq!(
        count(&conn, "usage_daily", "acme"),
        3,
        "billing records survive retention"
    );
    assert_eq!(changes(&conn, &expire("acme", c)), 0);
}

#[test]
fn expire_clears_custom_event_payloads_older_than_the_cutoff_only() {
    let conn = db();
    let c = cutoff(NOW, 30);
    for (action, last_seen) in [("old", c - 1), ("kept", c)] {
        conn.execute(
            "INSERT INTO actions (tenant_id, domain, action, last_payload, last_seen, total) \
             VALUES ('acme', 'a.example', ?, '{\"plan\":\"pro\"}', ?, 5)",
            rusqlite::params![action, last_seen],
        )
        .unwrap();
    }
    changes(&conn, &expire("acme", c));
    let rows: Vec<(String, String, i64)> = conn
        .prepare("SELECT action, last_payload, total FROM actions ORDER BY action")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            ("kept".into(), r#"{"plan":"pro"}"#.into(), 5),
            ("old".into(), "{}".into(), 5),
        ],
        "the payload goes, the all-time count stays"
    );
}

#[test]
fn usage_accumulates_per_day_and_reports_totals() {
    let mut conn = db();
    let d = UsageDelta {
        events_accepted: 10,
        events_quarantined: 1,
        bot_hits: 2,
        queries: 0,
        bytes_archived: 1000,
    };
    run(
        &mut conn,
        &[
            usage::add("acme", "2025-08-12", &d),
            usage::add("acme", "2025-08-12", &d),
            usage::add("acme", "2025-08-13", &UsageDelta::query()),
            usage::add("globex", "2025-08-12", &d),
            usage::add("acme", "2025-09-01", &d),
        ],
    )
    .unwrap();
    let kind: String = conn
        .query_row(
            "SELECT typeof(events_accepted) FROM usage_daily WHERE tenant_id = 'acme' AND day = '2025-08-12'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kind, "integer", "D1's REAL binds are stored as integers");
    let r = rows(&conn, &usage::select("acme", "2025-08-01", "2025-08-31"));
    let j = usage::to_json("acme", "2025-08-01", "2025-08-31", &r);
    assert_eq!(
        j,
        json!({
            "tenant_id": "acme", "date_from": "2025-08-01", "date_to": "2025-08-31",
            "data": [
                {"day": "2025-08-12", "events_accepted": 20, "events_quarantined": 2, "bot_hits": 4, "queries": 0, "bytes_archived": 2000},
                {"day": "2025-08-13", "events_accepted": 0, "events_quarantined": 0, "bot_hits": 0, "queries": 1, "bytes_archived": 0},
            ],
            "totals": {"events_accepted": 20, "events_quarantined": 2, "bot_hits": 4, "queries": 1, "bytes_archived": 2000},
        })
    );
}

#[test]
fn audit_counts_per_minute_and_filters() {
    let mut conn = db();
    let denial = |now_secs, tenant_id, reason, status| Denial {
        now_secs,
        tenant_id,
        token_name: tenant_id.map(|_| "site"),
        route: "/v0/events",
        reason,
        status,
    };
    run(
        &mut conn,
        &[
            audit::record(&denial(NOW, Some("acme"), Reason::Expired, 403)),
            audit::record(&denial(NOW + 5, Some("acme"), Reason::Expired, 403)),
            audit::record(&denial(NOW + 60, Some("acme"), Reason::Expired, 403)),
            audit::record(&denial(NOW, Some("acme"), Reason::RateLimited, 429)),
            audit::record(&denial(NOW, None, Reason::MissingToken, 401)),
            audit::record(&denial(
                NOW - 10 * DAY_SECS,
                Some("acme"),
                Reason::Expired,
                403,
            )),
        ],
    )
    .unwrap();
    let list = |pairs: &[(&str, &str)]| {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let f = audit::parse_filter(&params, NOW + 120).unwrap();
        audit::to_json(&rows(&conn, &audit::select(&f)))
    };
    let all = list(&[]);
    assert_eq!(all["rows"], 4, "{all}");
    assert_eq!(
        all["data"][0],
        json!({"time": "2025-08-13T10:42:00Z", "tenant_id": "acme", "token_name": "site",
               "route": "/v0/events", "reason": "expired", "status": 403, "count": 1}),
        "newest first"
    );
    assert_eq!(
        all["data"][1]["count"], 2,
        "two denials in one minute are one row"
    );
    assert_eq!(all["data"][1]["reason"], "expired");
    assert!(all["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["tenant_id"].is_null() && d["reason"] == "missing_token"));
    let acme_expired = list(&[("tenant_id", "acme"), ("reason", "expired")]);
    assert_eq!(acme_expired["rows"], 2);
    assert_eq!(list(&[("tenant_id", "globex")])["rows"], 0);
    let older = list(&[("date_from", "2025-08-01"), ("date_to", "2025-08-05")]);
    assert_eq!(older["rows"], 1);
    assert_eq!(older["data"][0]["time"], "2025-08-03T10:41:00Z");
    assert_eq!(list(&[("limit", "1")])["rows"], 1);
}

#[test]
fn late_query_usage_never_brings_back_an_erased_tenant() {
    let mut conn = db();
    let now = 1_795_428_000;
    let acme =
        starling_core::tenant::validate_create(&json!({"tenant_id": "acme"}), None, now).unwrap();
    run(&mut conn, &[starling_core::tenant::upsert(&acme)]).unwrap();
    run(
        &mut conn,
        &[usage::add_unless_erased(
            "acme",
            "2026-11-23",
            &UsageDelta::query(),
        )],
    )
    .unwrap();
    run(
        &mut conn,
        &[usage::add_unless_erased(
            "globex",
            "2026-11-23",
            &UsageDelta::query(),
        )],
    )
    .unwrap();
    assert_eq!(
        count(&conn, "usage_daily", "acme"),
        1,
        "an active tenant counts"
    );
    assert_eq!(
        count(&conn, "usage_daily", "globex"),
        1,
        "an unregistered tenant counts"
    );
    // Erased: the tombstone is written, then the rows go; a flush arriving after that writes nothing.
    let tomb = starling_core::tenant::tombstone(&acme, now + 1);
    run(&mut conn, &[starling_core::tenant::upsert(&tomb)]).unwrap();
    run(&mut conn, &erase("acme")).unwrap();
    run(
        &mut conn,
        &[usage::add_unless_erased(
            "acme",
            "2026-11-23",
            &UsageDelta::query(),
        )],
    )
    .unwrap();
    assert_eq!(count(&conn, "usage_daily", "acme"), 0);
    // Re-created: active again, counted again.
    let again = starling_core::tenant::validate_create(
        &json!({"tenant_id": "acme"}),
        Some(&tomb),
        now + 10,
    )
    .unwrap();
    run(&mut conn, &[starling_core::tenant::upsert(&again)]).unwrap();
    run(
        &mut conn,
        &[usage::add_unless_erased(
            "acme",
            "2026-11-24",
            &UsageDelta::query(),
        )],
    )
    .unwrap();
    assert_eq!(count(&conn, "usage_daily", "acme"), 1);
}
