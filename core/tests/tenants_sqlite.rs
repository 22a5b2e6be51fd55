//! Tenant registry, minted token and tenant key statements against an in-memory SQLite loaded with the
//! real D1 migrations.

use rusqlite::Connection;
use serde_json::{json, Map, Value};
use starling_core::{keys, mint, tenant};
mod common;

use common::{exec, migrated_db as db, rows};

const NOW: i64 = 1_795_428_000;

fn create(conn: &Connection, body: Value) -> tenant::Tenant {
    let t = tenant::validate_create(&body, None, NOW).unwrap();
    exec(conn, &tenant::upsert(&t));
    t
}

fn read(conn: &Connection, id: &str) -> Option<tenant::Tenant> {
    rows(conn, &tenant::select(id))
        .first()
        .and_then(tenant::from_row)
}

fn ids(rows: &[Map<String, Value>], column: &str) -> Vec<String> {
    rows.iter()
        .map(|r| r[column].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn tenants_round_trip_and_list_in_pages() {
    let conn = db();
    assert_eq!(read(&conn, "acme"), None);
    let acme = create(
        &conn,
        json!({"tenant_id": "acme", "display_name": "Acme", "plan": "enterprise",
        "allowed_origins": ["https://acme.com", "https://*.acme.com"], "isolation": "silo",
        "database": "SILO_1", "retention_days": 30}),
    );
    assert_eq!(read(&conn, "acme"), Some(acme.clone()));
    for id in ["globex", "initech", "hooli"] {
        create(&conn, json!({ "tenant_id": id }));
    }
    // An update replaces the row.
    let patched = tenant::validate_update(
        &acme,
        &json!({"display_name": "Acme Corp", "allowed_origins": []}),
        NOW + 5,
    )
    .unwrap();
    exec(&conn, &tenant::upsert(&patched));
    assert_eq!(read(&conn, "acme"), Some(patched.clone()));
    // Pages in id order; erased tenants are not listed, but their tombstone is still selectable.
    let hooli = read(&conn, "hooli").unwrap();
    exec(&conn, &tenant::upsert(&tenant::tombstone(&hooli, NOW + 9)));
    let page = rows(&conn, &tenant::list(None, 2));
    assert_eq!(ids(&page, "tenant_id"), ["acme", "globex"]);
    let page = rows(&conn, &tenant::list(Some("globex"), 2));
    assert_eq!(ids(&page, "tenant_id"), ["initech"]);
    assert!(page.iter().all(|r| tenant::from_row(r).is_some()));
    let stone = read(&conn, "hooli").unwrap();
    assert_eq!(
        (stone.status, stone.generation),
        (tenant::Status::Deleted, 2)
    );
    let active = rows(&conn, &tenant::list_all_active());
    assert_eq!(ids(&active, "tenant_id"), ["acme", "globex", "initech"]);
    assert_eq!(active[0]["retention_days"], json!(30));
    // Re-creating the erased id continues its generation, in the same row.
    let again =
        tenant::validate_create(&json!({"tenant_id": "hooli"}), Some(&stone), NOW + 20).unwrap();
    exec(&conn, &tenant::upsert(&again));
    assert_eq!(read(&conn, "hooli").unwrap().generation, 3);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 4);
}

#[test]
fn retention_sees_registered_and_unregistered_tenants() {
    let conn = db();
    create(&conn, json!({"tenant_id": "acme", "retention_days": 30}));
    let gone = create(&conn, json!({"tenant_id": "gone"}));
    exec(&conn, &tenant::upsert(&tenant::tombstone(&gone, NOW + 1)));
    conn.execute_batch(
        "INSERT INTO domains VALUES ('acme', 'acme.com', 1, 2, 3), ('legacy', 'legacy.com', 1, 2, 3), \
             ('legacy', 'www.legacy.com', 1, 2, 3), ('gone', 'gone.com', 1, 2, 3); \
         INSERT INTO bot_hits_daily VALUES ('botsonly', '2026-11-01', 4); \
         INSERT INTO quarantine_daily VALUES ('badrows', '2026-11-01', 'invalid_json', 2);",
    )
    .unwrap();
    let every = rows(&conn, &tenant::list_every());
    let every: Vec<tenant::Tenant> = every.iter().filter_map(tenant::from_row).collect();
    assert_eq!(
        every
            .iter()
            .map(|t| (t.tenant_id.as_str(), t.status))
            .collect::<Vec<_>>(),
        [
            ("acme", tenant::Status::Active),
            ("gone", tenant::Status::Deleted)
        ]
    );
    assert_eq!(
        ids(&rows(&conn, &tenant::unregistered()), "tenant_id"),
        ["badrows", "botsonly", "legacy"]
    );
}

fn mint_token(conn: &Connection, tenant_id: &str, token_id: &str, body: Value, now: i64) {
    let req = mint::validate(tenant_id, &body, now).unwrap();
    exec(conn, &mint::record(&req, token_id, now));
}

#[test]
fn tokens_are_listed_and_revoked_per_tenant() {
    let conn = db();
    mint_token(
        &conn,
        "acme",
        "t1",
        json!({"name": "site", "kind": "tracker", "rps": 50}),
        NOW,
    );
    mint_token(
        &conn,
        "acme",
        "t2",
        json!({"name": "dash", "kind": "read", "expires_in": 3600}),
        NOW + 1,
    );
    mint_token(
        &conn,
        "globex",
        "g1",
        json!({"name": "dash", "kind": "read"}),
        NOW,
    );
    let listed = rows(&conn, &mint::list("acme"));
    assert_eq!(ids(&listed, "token_id"), ["t2", "t1"]);
    let meta = mint::metadata_json(&listed[1]);
    assert_eq!(meta["scopes"][0]["fixed_params"]["tenant_id"], "acme");
    assert_eq!(
        (meta["kind"].clone(), meta["rps"].clone()),
        (json!("tracker"), json!(50))
    );
    assert_eq!(meta["revoked_at"], Value::Null);
    assert!(rows(&conn, &mint::select("acme", "g1")).is_empty());

    // Revoking another tenant's token id changes nothing.
    assert_eq!(exec(&conn, &mint::revoke("acme", "g1", NOW + 10)), 0);
    assert_eq!(
        rows(&conn, &mint::select("globex", "g1"))[0]["revoked_at"],
        Value::Null
    );
    // Revoking its own: once; the first time stays.
    assert_eq!(exec(&conn, &mint::revoke("acme", "t2", NOW + 10)), 1);
    assert_eq!(exec(&conn, &mint::revoke("acme", "t2", NOW + 99)), 0);
    let meta = mint::metadata_json(&rows(&conn, &mint::select("acme", "t2"))[0]);
    assert_eq!(meta["revoked_at"], "2026-11-23T10:00:10Z");

    // The revocation set: revoked and still verifiable (expiry plus the leeway), per tenant.
    assert_eq!(
        ids(
            &rows(&conn, &mint::revoked_ids("acme", NOW + 20)),
            "token_id"
        ),
        ["t2"]
    );
    assert!(rows(&conn, &mint::revoked_ids("globex", NOW + 20)).is_empty());
    let past_expiry = NOW + 1 + 3600 + 60;
    assert_eq!(
        rows(&conn, &mint::revoked_ids("acme", past_expiry)).len(),
        1
    );
    assert!(rows(&conn, &mint::revoked_ids("acme", past_expiry + 1)).is_empty());

    // Erasure revokes them all.
    exec(&conn, &mint::revoke_all("acme", NOW + 30));
    assert_eq!(
        ids(
            &rows(&conn, &mint::revoked_ids("acme", NOW + 30)),
            "token_id"
        ),
        ["t1", "t2"]
    );
    assert!(rows(&conn, &mint::revoked_ids("globex", NOW + 30)).is_empty());
}

#[test]
fn keys_are_found_by_kid_until_revoked() {
    let conn = db();
    let pk = keys::validate(&json!({"public_key": {"kty": "OKP", "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}))
    .unwrap();
    exec(&conn, &keys::insert("acme", "k1", &pk, NOW));
    exec(&conn, &keys::insert("acme", "k2", &pk, NOW + 1));
    exec(&conn, &keys::insert("globex", "g1", &pk, NOW));
    assert_eq!(
        ids(&rows(&conn, &keys::list("acme")), "key_id"),
        ["k2", "k1"]
    );
    let active = rows(&conn, &keys::select_active("k1"));
    assert_eq!(active[0]["tenant_id"], "acme");
    assert_eq!(
        keys::decode(active[0]["public_key"].as_str().unwrap()).map(|b| b.len()),
        Some(32)
    );
    // Another tenant's key id: nothing happens.
    assert_eq!(exec(&conn, &keys::revoke("acme", "g1", NOW + 5)), 0);
    assert_eq!(rows(&conn, &keys::select_active("g1")).len(), 1);
    assert_eq!(exec(&conn, &keys::revoke("acme", "k1", NOW + 5)), 1);
    assert!(rows(&conn, &keys::select_active("k1")).is_empty());
    let k1 = keys::to_json(&rows(&conn, &keys::select("acme", "k1"))[0]);
    assert_eq!(k1["revoked_at"], "2026-11-23T10:00:05Z");
    assert!(rows(&conn, &keys::select("globex", "k1")).is_empty());
    assert_eq!(
        ids(&rows(&conn, &keys::select_all_active()), "key_id"),
        ["g1", "k2"]
    );
    exec(&conn, &keys::revoke_all("acme", NOW + 6));
    assert!(rows(&conn, &keys::select_active("k2")).is_empty());
    assert_eq!(rows(&conn, &keys::select_active("g1")).len(), 1);
    assert_eq!(
        ids(&rows(&conn, &keys::select_all_active()), "key_id"),
        ["g1"]
    );
}
