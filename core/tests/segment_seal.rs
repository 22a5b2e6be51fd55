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

/// What the cron does for one day in one part, with `between` run after the read and before the mark;
/// the object written (empty when the day was current: nothing to seal).
fn seal_day(
    conn: &mut Connection,
    tenant: &str,
    day: i64,
    between: impl FnOnce(&Connection),
) -> Vec<u8> {
    let mut between = Some(between);
    let mut sealed = seal_parts(conn, tenant, day, 1, |c, _| {
        if let Some(f) = between.take() {
            f(c)
        }
    });
    assert!(sealed.len() <= 1);
    sealed.pop().map(|s| s.1).unwrap_or_default()
}

/// What the cron does for one day in `parts` parts: plan it, forget the parts of another count, then
/// per part to seal one transaction reading the version and the part's rows, the encoding, `between`
/// (after the read, before the mark), the mark. Returns the parts sealed and their objects.
fn seal_parts(
    conn: &mut Connection,
    tenant: &str,
    day: i64,
    parts: u32,
    mut between: impl FnMut(&Connection, u32),
) -> Vec<(u32, Vec<u8>)> {
    let plan = seal::plan_day(tenant, day, parts);
    let tx = conn.transaction().unwrap();
    common::exec(&tx, &plan[0]);
    let version = seal::version_of(&common::rows(&tx, &plan[1]));
    let (todo, _stale) = seal::parts_to_seal(&common::rows(&tx, &plan[2]), parts, version);
    tx.commit().unwrap();
    common::exec(conn, &seal::forget_parts(tenant, day, parts));
    let mut out = Vec::new();
    for part in todo {
        let statements = seal::read_part(tenant, day, part, parts);
        let tx = conn.transaction().unwrap();
        let version = seal::version_of(&common::rows(&tx, &statements[0]));
        let sessions = common::rows(&tx, &statements[1]);
        let pages = common::rows(&tx, &statements[2]);
        tx.commit().unwrap();
        let rows = seal::rows_of(&sessions, &pages).unwrap();
        let bytes = encode(day / DAY, &rows).unwrap();
        between(conn, part);
        common::exec(
            conn,
            &seal::mark_part(tenant, day, (part, parts), version, bytes.len(), rows.len()),
        );
        out.push((part, bytes));
    }
    out
}

fn same_visits(mut got: Vec<VisitRow>, mut expected: Vec<VisitRow>) {
    for r in got.iter_mut().chain(expected.iter_mut()) {
        r.visitor.clear();
        r.pages.sort_by(|a, b| a.pathname.cmp(&b.pathname));
    }
    got.sort_by_key(|r| (r.first_ts, r.pageviews));
    expected.sort_by_key(|r| (r.first_ts, r.pageviews));
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
    let key = seal::object_key("ta", D0, 0, 1);
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
    let parts = |c: &Connection, t: &str| -> i64 {
        c.query_row(
            "SELECT COUNT(*) FROM segment_parts WHERE tenant_id = ?1",
            [t],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(parts(&conn, "ta"), 0);
    assert_eq!(parts(&conn, "tb"), 4);
}

/// A 32-hex-character visitor id, as `identity::visitor_id` writes them.
fn hex_id(n: u64) -> String {
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef;
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 29;
    format!("{x:016x}{:016x}", x.rotate_left(17) ^ n)
}

/// `n` visits of tenant `ta` on day `day` by `n * 2 / 3` hex visitors, every tenth starting before
/// midnight with a page on the next day.
fn hex_day(conn: &Connection, day: i64, n: usize) -> Vec<VisitRow> {
    let paths = ["/", "/pricing", "/docs", "/blog"];
    let visits: Vec<VisitRow> = (0..n)
        .map(|i| {
            let late = i % 10 == 0;
            let at = if late {
                DAY - 300 + i as i64
            } else {
                (i as i64 * 37) % (DAY - 4_000)
            };
            let pages: Vec<(&str, i64)> = (0..1 + i % 3)
                .map(|k| (paths[(i + k) % 4], k as i64 * if late { 600 } else { 40 }))
                .collect();
            visit(day, at, i, &hex_id((i % (n * 2 / 3)) as u64), &pages)
        })
        .collect();
    for (i, v) in visits.iter().enumerate() {
        insert(conn, "ta", &format!("h{day}-{i}"), v);
    }
    visits
}

fn listed(conn: &Connection, tenant: &str) -> Vec<i64> {
    days(
        conn,
        &seal::sealed_days(&TenantId::for_tests(tenant).unwrap(), 0, NOW),
    )
}

#[test]
fn a_day_in_parts_holds_each_visit_once_in_its_visitors_range() {
    let mut conn = common::migrated_db();
    let day = D0 + DAY;
    let visits = hex_day(&conn, day, 300);
    let whole = seal_day(&mut conn, "ta", day, |_| {});
    let whole = Segment::decode(&whole).unwrap();
    same_visits(whole.rows(), visits.clone());
    assert_eq!(listed(&conn, "ta"), [day]);
    for parts in [2u32, 5, 16] {
        // A new count: the day is planned again, the parts of the old count no longer answer.
        let sealed = seal_parts(&mut conn, "ta", day, parts, |_, _| {});
        assert_eq!(
            sealed.iter().map(|s| s.0).collect::<Vec<_>>(),
            (0..parts).collect::<Vec<_>>()
        );
        let mut all = Vec::new();
        let mut visitors = 0;
        let mut pages = 0;
        for (part, bytes) in &sealed {
            let seg = Segment::decode(bytes).unwrap();
            assert_eq!(seg.day() * DAY, day);
            visitors += seg.visitors();
            pages += seg.pages();
            let rows = seg.rows();
            // Every visit of the part has its visitor in the part's range (rows() keeps no ids:
            // compare with the day's visits by first hit and pageviews, unique here).
            for r in &rows {
                let v = visits
                    .iter()
                    .find(|v| v.first_ts == r.first_ts && v.pageviews == r.pageviews)
                    .unwrap();
                assert_eq!(seal::part_of(&v.visitor, parts), *part);
            }
            all.extend(rows);
        }
        same_visits(all, visits.clone());
        // Disjoint visitors: the parts' distinct visitors add up to the day's.
        assert_eq!(visitors, whole.visitors());
        assert_eq!(pages, whole.pages());
        assert!(sealed
            .iter()
            .all(|(_, b)| Segment::decode(b).unwrap().visits() > 0));
        assert_eq!(listed(&conn, "ta"), [day], "{parts} parts");
        assert!(days(&conn, &seal::days_to_seal("ta", NOW, 100)).is_empty());
    }
}

#[test]
fn a_day_answers_only_when_every_part_is_current() {
    let mut conn = common::migrated_db();
    let day = D0 + DAY;
    hex_day(&conn, day, 120);
    // The cron plans the day from its visit count.
    let due: Vec<(i64, i64)> = common::rows(&conn, &seal::days_to_seal("ta", NOW, 100))
        .iter()
        .map(|r| {
            let int = |c| starling_core::sql::int(r.get(c)).unwrap();
            (int("day"), int("visits"))
        })
        .collect();
    assert_eq!(due, [(day, 120)]);
    // Sealing stops after part 1 of 4 (a failure, or the run's end): not listed, still due.
    let parts = 4;
    let plan = seal::plan_day("ta", day, parts);
    common::exec(&conn, &plan[0]);
    for part in [0, 1] {
        let s = seal::read_part("ta", day, part, parts);
        let version = seal::version_of(&common::rows(&conn, &s[0]));
        let rows = seal::rows_of(&common::rows(&conn, &s[1]), &common::rows(&conn, &s[2])).unwrap();
        let n = common::exec(
            &conn,
            &seal::mark_part("ta", day, (part, parts), version, 10, rows.len()),
        );
        assert_eq!(n, 1);
    }
    assert!(listed(&conn, "ta").is_empty());
    assert_eq!(days(&conn, &seal::days_to_seal("ta", NOW, 100)), [day]);
    // The next run seals only the two parts left.
    let sealed = seal_parts(&mut conn, "ta", day, parts, |_, _| {});
    assert_eq!(sealed.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(listed(&conn, "ta"), [day]);
    let bytes = common::rows(
        &conn,
        &seal::sealed_days(&TenantId::for_tests("ta").unwrap(), 0, NOW),
    )[0]
    .get("bytes")
    .and_then(|v| v.as_i64())
    .unwrap();
    assert_eq!(
        bytes,
        20 + sealed.iter().map(|s| s.1.len() as i64).sum::<i64>(),
        "the day's bytes are all its parts'"
    );
    // A write to the day makes every part stale; a write landing while part 2 is encoded leaves
    // that part (and so the day) stale, the others current.
    insert(
        &conn,
        "ta",
        "late",
        &visit(day, 10, 0, &hex_id(7), &[("/", 0)]),
    );
    assert!(listed(&conn, "ta").is_empty());
    let sealed = seal_parts(&mut conn, "ta", day, parts, |c, part| {
        if part == 2 {
            insert(
                c,
                "ta",
                "racing",
                &visit(day, 20, 0, &hex_id(8), &[("/", 0)]),
            );
        }
    });
    assert_eq!(sealed.len(), 4);
    assert!(listed(&conn, "ta").is_empty());
    assert_eq!(days(&conn, &seal::days_to_seal("ta", NOW, 100)), [day]);
    // Part 3 was read after the write: only the parts read before it are sealed again.
    let sealed = seal_parts(&mut conn, "ta", day, parts, |_, _| {});
    assert_eq!(sealed.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(listed(&conn, "ta"), [day]);
    // Planned again in another count: the old count's parts are reported and no longer answer.
    let plan = seal::plan_day("ta", day, 3);
    common::exec(&conn, &plan[0]);
    let version = seal::version_of(&common::rows(&conn, &plan[1]));
    let (todo, stale) = seal::parts_to_seal(&common::rows(&conn, &plan[2]), 3, version);
    assert_eq!(todo, [0, 1, 2]);
    assert_eq!(stale, [(0, 4), (1, 4), (2, 4), (3, 4)]);
    assert!(listed(&conn, "ta").is_empty());
    // A part sealed in the old count, marked late, changes nothing (the worker deletes its object).
    assert_eq!(
        common::exec(&conn, &seal::mark_part("ta", day, (3, 4), version, 1, 1)),
        0
    );
    // And a part whose day was erased meanwhile changes nothing either.
    for s in starling_core::lifecycle::erase("ta") {
        common::exec(&conn, &s);
    }
    assert_eq!(
        common::exec(&conn, &seal::mark_part("ta", day, (0, 3), version, 1, 1)),
        0
    );
    assert!(listed(&conn, "ta").is_empty());
}

#[test]
fn days_sealed_before_parts_still_answer_after_migration_0021() {
    let conn = Connection::open_in_memory().unwrap();
    let (before, after): (Vec<_>, Vec<_>) = common::migration_files()
        .into_iter()
        .partition(|f| f.file_name().unwrap().to_str().unwrap() < "0021");
    common::apply_migrations(&conn, &before);
    // Under 0019: one day sealed at version 2, one stale, one registered but never sealed.
    conn.execute_batch(&format!(
        "INSERT INTO segment_days (tenant_id, day, version, sealed, bytes, visits) VALUES \
         ('ta', {D0}, 2, 2, 500, 40), ('ta', {}, 3, 1, 400, 30), ('ta', {}, 0, -1, 0, 0)",
        D0 + DAY,
        D0 + 2 * DAY
    ))
    .unwrap();
    common::apply_migrations(&conn, &after);
    let rows = common::rows(
        &conn,
        &seal::sealed_days(&TenantId::for_tests("ta").unwrap(), 0, NOW),
    );
    assert_eq!(rows.len(), 1);
    let int = |c: &str| starling_core::sql::int(rows[0].get(c)).unwrap();
    assert_eq!(
        (int("day"), int("sealed"), int("parts"), int("bytes")),
        (D0, 2, 1, 500)
    );
    // Its object keeps its key: part 0 of 1.
    assert_eq!(
        seal::object_key("ta", D0, 0, 1),
        "segments/ta/2025-03-27/visits"
    );
}
