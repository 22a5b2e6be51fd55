//! Tenant settings statements against an in-memory SQLite loaded with the real D1 migrations.

use rusqlite::Connection;
use serde_json::{json, Map, Value};
use starling_core::settings::{from_row, select, upsert, validate};
mod common;

use common::{exec, migrated_db as db, rows};
use starling_core::sql::Statement;

fn row(conn: &Connection, s: &Statement) -> Option<Map<String, Value>> {
    rows(conn, s).into_iter().next()
}

#[test]
fn upsert_then_select_per_tenant() {
    let conn = db();
    assert_eq!(row(&conn, &select("acme")), None);
    assert_eq!(
        from_row(row(&conn, &select("acme")).as_ref()),
        Default::default()
    );
    let acme = validate(&json!({"display_name": "Acme Analytics", "primary_color": "#0a7d32", "hide_branding": true})).unwrap();
    exec(&conn, &upsert("acme", &acme, 100));
    assert_eq!(from_row(row(&conn, &select("acme")).as_ref()), acme);
    assert_eq!(
        row(&conn, &select("globex")),
        None,
        "other tenants see nothing"
    );
    // A second PUT replaces every field.
    let again = validate(&json!({"theme": "dark"})).unwrap();
    exec(&conn, &upsert("acme", &again, 200));
    assert_eq!(from_row(row(&conn, &select("acme")).as_ref()), again);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM tenant_settings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}
