//! Rollup statements run against an in-memory SQLite loaded with the real D1 migrations.

use rusqlite::{params_from_iter, Connection};
use starling_core::event::EnrichedEvent;
use starling_core::rollup::{batch_guard, batches_applied, rebuild_reset};
mod common;

use common::{apply, bind, migrated_db as db, rollup_statements, run};

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn hit(session: &str, ts_secs: i64, path: &str) -> EnrichedEvent {
    EnrichedEvent {
        ts: ts_secs * 1000,
        tenant_id: "acme".into(),
        domain: "acme.example".into(),
        action: "page_hit".into(),
        session_id: Some(session.into()),
        visitor_id: format!("v-{session}"),
        pathname: path.into(),
        href: format!("https://acme.example{path}"),
        source: if path == "/" {
            "google.com".into()
        } else {
            String::new()
        },
        browser: "firefox".into(),
        os: "linux".into(),
        device: "desktop".into(),
        country: "DE".into(),
        locale: "de-DE".into(),
        payload: "{}".into(),
        ..Default::default()
    }
}

const T0: i64 = 1_763_000_000 - 1_763_000_000 % 3600;

#[test]
fn sessions_merge_across_batches_in_any_order() {
    let mut conn = db();
    // The later half of the session arrives first.
    apply(
        &mut conn,
        &[
            hit("s1", T0 + 600, "/pricing"),
            hit("s1", T0 + 900, "/signup"),
        ],
        T0,
    )
    .unwrap();
    apply(
        &mut conn,
        &[hit("s1", T0, "/"), hit("s1", T0 + 60, "/pricing")],
        T0,
    )
    .unwrap();
    let (first, last, pv, entry, exit, source): (i64, i64, i64, String, String, String) = conn
        .query_row(
            "SELECT first_ts, last_ts, pageviews, entry_path, exit_path, source FROM sessions WHERE session_key = 's1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!((first, last, pv), (T0, T0 + 900, 4));
    assert_eq!((entry.as_str(), exit.as_str()), ("/", "/signup"));
    assert_eq!(
        source, "google.com",
        "session attributes come from the first hit, whenever it arrives"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM page_visits WHERE session_key = 's1'"
        ),
        3
    );
    assert_eq!(
        count(
            &conn,
            "SELECT hits FROM page_visits WHERE session_key = 's1' AND pathname = '/pricing'"
        ),
        2
    );
    assert_eq!(count(&conn, "SELECT sum(hits) FROM page_visits"), 4);
    assert_eq!(count(&conn, "SELECT total_hits FROM domains"), 4);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM page_visits pv JOIN sessions s ON s.tenant_id = pv.tenant_id \
             AND s.first_ts = pv.first_ts - pv.since_visit AND s.session_key = pv.session_key"
        ),
        3,
        "every page finds its session by the session's primary key after the visit's start moved"
    );
}

#[test]
fn visit_level_tables_have_no_index_besides_their_primary_key() {
    // Migration 0007: the rows are written on their primary keys; a second index on the session key
    // cost 89 B/event at 1M. The one exception is migration 0020's partial index, which holds only the
    // pages at least a day after their visit's first hit (none in the 10M set: about 0 B/event).
    let conn = db();
    let mut stmt = conn
        .prepare(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' \
             AND tbl_name IN ('sessions', 'page_visits') AND sql IS NOT NULL",
        )
        .unwrap();
    let indexes: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        indexes,
        vec![
            "CREATE INDEX page_visits_after_a_day ON page_visits (tenant_id, first_ts) \
             WHERE since_visit >= 86400"
                .to_owned()
        ]
    );
}

#[test]
fn a_batch_applied_twice_counts_once() {
    let mut conn = db();
    let mut statements = vec![batch_guard("b-1", T0)];
    statements.extend(rollup_statements(
        &conn,
        &[hit("s1", T0, "/"), hit("s2", T0 + 5, "/")],
        T0,
    ));
    run(&mut conn, &statements).unwrap();
    let again = run(&mut conn, &statements);
    assert!(again.is_err(), "the guard's primary key rejects a replay");
    assert_eq!(count(&conn, "SELECT sum(hits) FROM page_visits"), 2);
    assert_eq!(count(&conn, "SELECT sum(pageviews) FROM sessions"), 2);
    assert_eq!(count(&conn, "SELECT count(*) FROM applied_batches"), 1);
}

#[test]
fn a_visit_split_over_batches_in_the_same_second_is_one_visit() {
    // Visits are clustered by (tenant, first_ts, session): a later batch carrying the same first second
    // must update the visit (known from its state in open_visits), not fail on the primary key.
    let mut conn = db();
    apply(&mut conn, &[hit("s1", T0, "/")], T0).unwrap();
    apply(&mut conn, &[hit("s1", T0, "/")], T0).unwrap();
    apply(&mut conn, &[hit("s1", T0 - 30, "/pricing")], T0).unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM sessions"), 1);
    assert_eq!(count(&conn, "SELECT pageviews FROM sessions"), 3);
    assert_eq!(count(&conn, "SELECT first_ts FROM sessions"), T0 - 30);
    assert_eq!(count(&conn, "SELECT count(*) FROM page_visits"), 2);
    assert_eq!(
        count(&conn, "SELECT hits FROM page_visits WHERE pathname = '/'"),
        2
    );
}

#[test]
fn applied_batches_are_found_in_one_lookup_per_90_ids() {
    let mut conn = db();
    run(
        &mut conn,
        &[batch_guard("b-1", T0), batch_guard("b-150", T0)],
    )
    .unwrap();
    let ids: Vec<String> = (0..200).map(|i| format!("b-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let lookups = batches_applied(&refs);
    assert_eq!(
        lookups.len(),
        3,
        "200 ids need 3 lookups of at most 90 binds"
    );
    let mut found = Vec::new();
    for s in &lookups {
        assert!(s.binds.len() <= 90);
        let mut stmt = conn.prepare(&s.sql).unwrap();
        let rows = stmt
            .query_map(params_from_iter(s.binds.iter().map(bind)), |r| {
                r.get::<_, String>(0)
            })
            .unwrap();
        found.extend(rows.map(Result::unwrap));
    }
    found.sort();
    assert_eq!(found, ["b-1", "b-150"]);
}

#[test]
fn bots_are_counted_and_kept_out_of_metrics() {
    let mut conn = db();
    let mut bot = hit("b1", T0, "/");
    bot.is_bot = true;
    bot.device = "bot".into();
    apply(&mut conn, &[bot, hit("s1", T0, "/")], T0).unwrap();
    assert_eq!(count(&conn, "SELECT sum(hits) FROM bot_hits_daily"), 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM sessions"), 1);
    assert_eq!(count(&conn, "SELECT sum(hits) FROM page_visits"), 1);
    assert_eq!(count(&conn, "SELECT count(*) FROM actions"), 1);
}

#[test]
fn custom_events_feed_actions_only() {
    let mut conn = db();
    let mut e = hit("s1", T0 + 10, "/");
    e.action = "add_to_cart".into();
    e.payload = r#"{"sku":"A1"}"#.into();
    let mut older = e.clone();
    older.ts -= 5000;
    older.payload = r#"{"sku":"OLD"}"#.into();
    apply(&mut conn, &[e, older], T0).unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM sessions"), 0);
    let (total, payload): (i64, String) = conn
        .query_row(
            "SELECT total, last_payload FROM actions WHERE action = 'add_to_cart'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((total, payload.as_str()), (2, r#"{"sku":"A1"}"#));
}

#[test]
fn partial_rebuild_reset_deletes_only_the_range_and_tenant() {
    let mut conn = db();
    let mut other = hit("o1", T0, "/");
    other.tenant_id = "other".into();
    apply(
        &mut conn,
        &[hit("s1", T0, "/"), hit("s2", T0 + 86_400, "/"), other],
        T0,
    )
    .unwrap();
    run(
        &mut conn,
        &rebuild_reset("acme", T0 - T0 % 86_400, T0 - T0 % 86_400 + 86_400, false),
    )
    .unwrap();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sessions WHERE tenant_id = 'acme'"
        ),
        1
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sessions WHERE tenant_id = 'other'"
        ),
        1
    );
    run(&mut conn, &rebuild_reset("acme", 0, 0, true)).unwrap();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM sessions WHERE tenant_id = 'acme'"
        ),
        0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM domains WHERE tenant_id = 'acme'"
        ),
        0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM domains WHERE tenant_id = 'other'"
        ),
        1
    );
}
