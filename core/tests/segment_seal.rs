//! Sealing days into visit segments (`segment::seal`, `migrations/0019_segment_days.sql`) on SQLite with
//! the real migrations: which days the cron seals, that the rows it reads encode the day's visits with
//! all their pages, and that any later write to a sealed day's visit rows (insert, upsert, delete, on
//! `sessions` or `page_visits`, even one landing while the day is being encoded) makes it stale again,
//! for that tenant and day only.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use starling_core::claims::TenantId;
use starling_core::segment::{encode, seal, PageRow, Segment, VisitRow};
use starling_core::sql::Statement;

mod common;

const DAY: i64 = 86_400;
/// 2025-03-27 00:00 UTC.
const D0: i64 = 20_174 * DAY;
/// Five days later, 03:00: days D0 to D0 + 3 are closed; D0 + 4 (yesterday, whose visits may still be
/// open) and today are not.
const NOW: i64 = D0 + 5 * DAY + 3 * 3600;

fn visit(day: i64, at: i64, n: usize, visitor: &str, pages: &[(&str, i64)]) -> VisitRow {
    let first_ts = day + at;
    VisitRow {
        first_ts,
        last_ts: first_ts + pages.iter().map(|p| p.1).max().unwrap_or(0),
        pageviews: pages.len() as u32 + n as u32,
        domain: "a.example".into(),
        visitor: visitor.into(),
        entry_path: pages[0].0.into(),
        exit_path: pages[pages.len() - 1].0.into(),
        source: ["google.com", ""][n % 2].into(),
        browser: ["chrome", "firefox"][n % 2].into(),
        os: "linux".into(),
        device: "desktop".into(),
        country: "ES".into(),
        pages: pages
            .iter()
            .enumerate()
            .map(|(i, (p, since))| PageRow {
                pathname: (*p).into(),
                first_ts: first_ts + since,
                hits: 1 + (i == 0) as u32 * n as u32,
            })
            .collect(),
        ..Default::default()
    }
}

fn insert(conn: &Connection, tenant: &str, key: &str, v: &VisitRow) {
    conn.execute(
        "INSERT INTO sessions (tenant_id, session_key, domain, visitor_id, first_ts, last_ts, pageviews, \
         entry_path, exit_path, source, utm_source, utm_medium, utm_campaign, browser, os, device, country) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            tenant, key, v.domain, v.visitor, v.first_ts, v.last_ts, v.pageviews, v.entry_path,
            v.exit_path, v.source, v.utm_source, v.utm_medium, v.utm_campaign, v.browser, v.os,
            v.device, v.country
        ],
    )
    .unwrap();
    for p in &v.pages {
        insert_page(conn, tenant, key, v.first_ts, p);
    }
    // The all-visits rollup row the cron finds the day by.
    conn.execute(
        "INSERT INTO visit_daily (tenant_id, dim, day, value, domain, visits, pageviews, bounces, \
         duration, visitors) VALUES (?1, 0, ?2, '', ?3, 1, 1, 0, 0, 1) ON CONFLICT DO UPDATE SET \
         visits = visits + 1",
        params![tenant, v.first_ts / DAY * DAY, v.domain],
    )
    .unwrap();
}

fn insert_page(conn: &Connection, tenant: &str, key: &str, visit_first: i64, p: &PageRow) {
    conn.execute(
        "INSERT INTO page_visits (tenant_id, session_key, pathname, first_ts, hits, since_visit) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            tenant,
            key,
            p.pathname,
            p.first_ts,
            p.hits,
            p.first_ts - visit_first
        ],
    )
    .unwrap();
}

fn fixture() -> (Connection, BTreeMap<(&'static str, i64), Vec<VisitRow>>) {
    let conn = common::migrated_db();
    let mut by_day: BTreeMap<(&'static str, i64), Vec<VisitRow>> = BTreeMap::new();
    for tenant in ["ta", "tb"] {
        for d in 0..6 {
            let day = D0 + d * DAY;
            let visits = [
                visit(day, 3_600, 0, "v1", &[("/", 0)]),
                visit(day, 7_200, 1, "v1", &[("/", 0), ("/pricing", 60)]),
                visit(day, 9_000, 2, "v2", &[("/docs", 0)]),
                // Starts 10 minutes before midnight; its second and third pages are on the next day.
                visit(
                    day,
                    DAY - 600,
                    3,
                    "v3",
                    &[("/", 0), ("/blog", 900), ("/pricing", 4_000)],
                ),
            ];
            for (i, v) in visits.iter().enumerate() {
                insert(&conn, tenant, &format!("{tenant}-{d}-{i}"), v);
            }
            by_day.insert((tenant, day), visits.to_vec());
        }
    }
    (conn, by_day)
}

fn days(conn: &Connection, s: &Statement) -> Vec<i64> {
    common::rows(conn, s)
        .iter()
        .map(|r| starling_core::sql::int(r.get("day")).unwrap())
        .collect()
}

/// What the cron does for one day, with `between` run after the read and before the mark.
fn seal_day(
    conn: &mut Connection,
    tenant: &str,
    day: i64,
    between: impl FnOnce(&Connection),
) -> Vec<u8> {
    let statements = seal::read_day(tenant, day);
    let tx = conn.transaction().unwrap();
    common::exec(&tx, &statements[0]);
    let version = seal::version_of(&common::rows(&tx, &statements[1]));
    let sessions = common::rows(&tx, &statements[2]);
    let pages = common::rows(&tx, &statements[3]);
    tx.commit().unwrap();
    let rows = seal::rows_of(&sessions, &pages).unwrap();
    let bytes = encode(day / DAY, &rows).unwrap();
    between(conn);
    common::exec(
        conn,
        &seal::mark_sealed(tenant, day, version, bytes.len(), rows.len()),
    );
    bytes
}

fn same_visits(mut got: Vec<VisitRow>, mut expected: Vec<VisitRow>) {
    for r in got.iter_mut().chain(expected.iter_mut()) {
        r.visitor.clear();
        r.pages.sort_by(|a, b| a.pathname.cmp(&b.pathname));
    }
    got.sort_by_key(|r| r.first_ts);
    expected.sort_by_key(|r| r.first_ts);
    assert_eq!(got, expected);
}

#[test]
fn the_cron_seals_closed_days_with_every_page_of_their_visits() {
    let (mut conn, fixture) = fixture();
    let closed: Vec<i64> = (0..4).map(|d| D0 + d * DAY).collect();
    assert_eq!(days(&conn, &seal::days_to_seal("ta", NOW, 100)), closed);
    assert_eq!(days(&conn, &seal::days_to_seal("ta", NOW, 2)), closed[..2]);
    // Yesterday is closed from 07:00 (its visits closed for an hour), today never.
    let at_seven = D0 + 5 * DAY + 7 * 3600;
    assert_eq!(
        days(&conn, &seal::days_to_seal("ta", at_seven - 1, 100)),
        closed
    );
    assert_eq!(
        days(&conn, &seal::days_to_seal("ta", at_seven, 100)),
        (0..5).map(|d| D0 + d * DAY).collect::<Vec<_>>()
    );
    for &day in &closed {
        let bytes = seal_day(&mut conn, "ta", day, |_| {});
        let seg = Segment::decode(&bytes).unwrap();
        assert_eq!(seg.day() * DAY, day);
        same_visits(seg.rows(), fixture[&("ta", day)].clone());
        assert_eq!(
            seg.pages(),
            7,
            "the visit across midnight keeps its next-day pages"
        );
    }
    assert!(days(&conn, &seal::days_to_seal("ta", NOW, 100)).is_empty());
    assert_eq!(
        days(
            &conn,
            &seal::sealed_days(&TenantId::for_tests("ta").unwrap(), D0, D0 + 10 * DAY)
        ),
        closed
    );
    // The other tenant is untouched.
    assert_eq!(days(&conn, &seal::days_to_seal("tb", NOW, 100)), closed);
    assert!(days(
        &conn,
        &seal::sealed_days(&TenantId::for_tests("tb").unwrap(), D0, D0 + 10 * DAY)
    )
    .is_empty());
    let key = seal::object_key("ta", D0);
    assert_eq!(key, "segments/ta/2025-03-27/visits");
}

#[test]
fn any_write_to_a_sealed_days_visit_rows_makes_it_stale_for_that_tenant_and_day_only() {
    let (mut conn, _) = fixture();
    type Write<'a> = (&'a str, &'a dyn Fn(&Connection));
    let writes: [Write; 5] = [
        (
            "a late page of a visit across midnight (next day's page)",
            &|c| {
                insert_page(
                    c,
                    "ta",
                    "ta-1-3",
                    D0 + 2 * DAY - 600,
                    &PageRow {
                        pathname: "/late".into(),
                        first_ts: D0 + 2 * DAY + 7_000,
                        hits: 1,
                    },
                )
            },
        ),
        ("a backfilled visit", &|c| {
            insert(c, "ta", "late", &visit(D0 + DAY, 50, 0, "v9", &[("/", 0)]))
        }),
        ("an upsert of a visit row", &|c| {
            c.execute(
                "INSERT INTO sessions (tenant_id, session_key, domain, visitor_id, first_ts, last_ts, \
                 pageviews, entry_path, exit_path, source, utm_source, utm_medium, utm_campaign, \
                 browser, os, device, country) SELECT tenant_id, session_key, domain, visitor_id, \
                 first_ts, last_ts + 5, pageviews, entry_path, exit_path, source, utm_source, \
                 utm_medium, utm_campaign, browser, os, device, country FROM sessions \
                 WHERE tenant_id = 'ta' AND session_key = 'ta-1-0' ON CONFLICT DO UPDATE SET \
                 last_ts = excluded.last_ts",
                [],
            )
            .unwrap();
        }),
        ("a deleted page", &|c| {
            c.execute(
                "DELETE FROM page_visits WHERE tenant_id = 'ta' AND session_key = 'ta-1-1' \
                 AND pathname = '/pricing'",
                [],
            )
            .unwrap();
        }),
        ("a deleted visit", &|c| {
            c.execute(
                "DELETE FROM sessions WHERE tenant_id = 'ta' AND session_key = 'ta-1-2'",
                [],
            )
            .unwrap();
        }),
    ];
    let day1 = D0 + DAY;
    for (what, write) in writes {
        for d in 0..4 {
            seal_day(&mut conn, "ta", D0 + d * DAY, |_| {});
            seal_day(&mut conn, "tb", D0 + d * DAY, |_| {});
        }
        assert!(days(&conn, &seal::days_to_seal("ta", NOW, 100)).is_empty());
        write(&conn);
        assert_eq!(
            days(&conn, &seal::days_to_seal("ta", NOW, 100)),
            [day1],
            "{what}"
        );
        assert!(
            days(&conn, &seal::days_to_seal("tb", NOW, 100)).is_empty(),
            "{what}"
        );
        assert!(!days(
            &conn,
            &seal::sealed_days(&TenantId::for_tests("ta").unwrap(), D0, NOW)
        )
        .contains(&day1));
    }
    // A write landing while the day is encoded: the version read is older, so it stays stale.
    seal_day(&mut conn, "ta", day1, |c| {
        insert(c, "ta", "racing", &visit(day1, 70, 0, "v8", &[("/", 0)]))
    });
    assert_eq!(days(&conn, &seal::days_to_seal("ta", NOW, 100)), [day1]);
    let bytes = seal_day(&mut conn, "ta", day1, |_| {});
    assert!(days(&conn, &seal::days_to_seal("ta", NOW, 100)).is_empty());
    let seg = Segment::decode(&bytes).unwrap();
    assert!(seg.rows().iter().any(|r| r.first_ts == day1 + 70));
}

#[test]
fn erasure_and_retention_reach_the_sealed_days() {
    let (mut conn, _) = fixture();
    for d in 0..4 {
        seal_day(&mut conn, "ta", D0 + d * DAY, |_| {});
        seal_day(&mut conn, "tb", D0 + d * DAY, |_| {});
    }
    let count = |c: &Connection, t: &str| -> i64 {
        c.query_row(
            "SELECT COUNT(*) FROM segment_days WHERE tenant_id = ?1",
            [t],
            |r| r.get(0),
        )
        .unwrap()
    };
    for s in starling_core::lifecycle::expire("ta", D0 + 2 * DAY) {
        common::exec(&conn, &s);
    }
    assert_eq!(
        days(
            &conn,
            &seal::sealed_days(&TenantId::for_tests("ta").unwrap(), 0, NOW)
        ),
        [D0 + 2 * DAY, D0 + 3 * DAY]
    );
    for s in starling_core::lifecycle::erase("ta") {
        common::exec(&conn, &s);
    }
    assert_eq!(count(&conn, "ta"), 0);
    assert_eq!(count(&conn, "tb"), 4);
}
