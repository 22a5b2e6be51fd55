//! The visit rollups (`visit_hourly`, `visit_daily`) against an independent computation from the raw
//! events, with batches arriving in any order (a visit's first hit last, a visit split over batches).

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use starling_core::event::EnrichedEvent;
use starling_core::rollup::prior_lookup;
use starling_core::rollup::visits::{dim_code, dim_name, hourly_written_from, prune_hourly};

mod common;
use common::{apply, migrated_db, rollup_statements, run, Rng};

/// 2025-03-29 00:00:00 UTC.
const START: i64 = 1_743_206_400;
const NOW: i64 = START + 3 * 86_400;

/// Sessions of 1 to 5 hits over three days, many crossing an hour, some crossing midnight; visitor ids
/// per domain and day; unique millisecond times (so the first and last hit do not depend on order).
fn events(seed: u64) -> Vec<EnrichedEvent> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut used = BTreeSet::new();
    for s in 0..300 {
        let mut ts = START * 1000 + rng.below(3 * 86_400_000 - 4_000_000) as i64;
        if s % 9 == 0 {
            ts = (START + 86_400) * 1000 - 600_000 + rng.below(500_000) as i64;
        }
        let domain = ["a.example", "b.example"][rng.below(2) as usize];
        let visitor = format!("v{}-{domain}-{}", rng.below(12), ts.div_euclid(86_400_000));
        let source = ["", "google.com", "t.co"][rng.below(3) as usize];
        let browser = ["chrome", "firefox"][rng.below(2) as usize];
        for _ in 0..1 + rng.below(5) {
            while !used.insert(ts) {
                ts += 1;
            }
            out.push(EnrichedEvent {
                ts,
                tenant_id: "acme".into(),
                domain: domain.into(),
                action: "page_hit".into(),
                session_id: Some(format!("s{s}")),
                visitor_id: visitor.clone(),
                pathname: ["/", "/a", "/b", "/c"][rng.below(4) as usize].into(),
                source: source.into(),
                browser: browser.into(),
                os: "linux".into(),
                device: "desktop".into(),
                country: "DE".into(),
                payload: "{}".into(),
                ..Default::default()
            });
            ts += 60_000 + rng.below(1_500_000) as i64;
        }
    }
    // The queue delivers roughly in time order (state older than the newest batch by more than the
    // TTLs is pruned).
    out.sort_by_key(|e| e.ts);
    out
}

type Cell = (String, i64, String, String); // dim, bucket, value, domain
/// (dim, value, domain, day) → visitor → hours with a visit start.
type Seen = BTreeMap<(String, String, String, i64), BTreeMap<String, BTreeSet<i64>>>;

/// Expected `visit_hourly` and `visit_daily` rows, computed from the events directly.
fn expected(events: &[EnrichedEvent]) -> (BTreeMap<Cell, [i64; 7]>, BTreeMap<Cell, [i64; 5]>) {
    let mut by_session: BTreeMap<&str, Vec<&EnrichedEvent>> = BTreeMap::new();
    for e in events {
        by_session
            .entry(e.session_id.as_deref().unwrap())
            .or_default()
            .push(e);
    }
    let mut hourly: BTreeMap<Cell, [i64; 7]> = BTreeMap::new();
    let mut daily: BTreeMap<Cell, [i64; 5]> = BTreeMap::new();
    let mut seen = Seen::new();
    for hits in by_session.values_mut() {
        hits.sort_by_key(|e| e.ts);
        let (f, l) = (hits[0], hits[hits.len() - 1]);
        let start = f.ts.div_euclid(1000);
        let (hour, day) = (start - start % 3600, start - start % 86_400);
        let pv = hits.len() as i64;
        let m = [1, pv, i64::from(pv == 1), l.ts.div_euclid(1000) - start];
        let mut keys = vec![
            ("", String::new()),
            ("src", f.source.clone()),
            ("br", f.browser.clone()),
            ("en", f.pathname.clone()),
            ("ex", l.pathname.clone()),
        ];
        let pages: BTreeSet<&str> = hits.iter().map(|e| e.pathname.as_str()).collect();
        keys.extend(pages.iter().map(|p| ("vp", (*p).to_owned())));
        for (d, v) in keys {
            let h = hourly
                .entry((d.into(), hour, v.clone(), f.domain.clone()))
                .or_default();
            let dd = daily
                .entry((d.into(), day, v.clone(), f.domain.clone()))
                .or_default();
            for i in 0..4 {
                h[i] += m[i];
                dd[i] += m[i];
            }
            seen.entry((d.into(), v, f.domain.clone(), day))
                .or_default()
                .entry(f.visitor_id.clone())
                .or_default()
                .insert(hour);
        }
        for p in pages {
            let first = hits
                .iter()
                .find(|e| e.pathname == p)
                .unwrap()
                .ts
                .div_euclid(1000);
            let n = hits.iter().filter(|e| e.pathname == p).count() as i64;
            for (bucket, is_hour) in [
                (first - first % 3600, true),
                (first - first % 86_400, false),
            ] {
                let key = ("pg".to_owned(), bucket, p.to_owned(), f.domain.clone());
                if is_hour {
                    let c = hourly.entry(key).or_default();
                    c[0] += 1;
                    c[1] += n;
                } else {
                    let c = daily.entry(key).or_default();
                    c[0] += 1;
                    c[1] += n;
                }
            }
        }
    }
    for ((d, v, domain, day), visitors) in seen {
        daily
            .get_mut(&(d.clone(), day, v.clone(), domain.clone()))
            .unwrap()[4] = visitors.len() as i64;
        for hours in visitors.values() {
            for h in hours {
                hourly
                    .get_mut(&(d.clone(), *h, v.clone(), domain.clone()))
                    .unwrap()[4] += 1;
            }
            let (first, last) = (hours.first().unwrap(), hours.last().unwrap());
            hourly
                .get_mut(&(d.clone(), *first, v.clone(), domain.clone()))
                .unwrap()[5] += 1;
            hourly
                .get_mut(&(d.clone(), *last, v.clone(), domain.clone()))
                .unwrap()[6] += 1;
        }
    }
    (hourly, daily)
}

fn actual(conn: &Connection) -> (BTreeMap<Cell, [i64; 7]>, BTreeMap<Cell, [i64; 5]>) {
    let dims = format!(
        "dim IN ({})",
        ["", "src", "br", "en", "ex", "vp", "pg"]
            .map(|d| dim_code(d).to_string())
            .join(", ")
    );
    let name = |r: &rusqlite::Row| -> String { dim_name(r.get(0).unwrap()).unwrap().to_owned() };
    let mut hourly = BTreeMap::new();
    let mut st = conn
        .prepare(&format!("SELECT dim, hour, value, domain, visits, pageviews, bounces, duration, visitors, visitors_first, visitors_last FROM visit_hourly WHERE {dims}"))
        .unwrap();
    let mut rows = st.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let m: [i64; 7] = std::array::from_fn(|i| r.get(4 + i).unwrap());
        if m.iter().any(|v| *v != 0) {
            hourly.insert(
                (
                    name(r),
                    r.get(1).unwrap(),
                    r.get(2).unwrap(),
                    r.get(3).unwrap(),
                ),
                m,
            );
        }
    }
    let mut daily = BTreeMap::new();
    let mut st = conn
        .prepare(&format!("SELECT dim, day, value, domain, visits, pageviews, bounces, duration, visitors FROM visit_daily WHERE {dims}"))
        .unwrap();
    let mut rows = st.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let m: [i64; 5] = std::array::from_fn(|i| r.get(4 + i).unwrap());
        if m.iter().any(|v| *v != 0) {
            daily.insert(
                (
                    name(r),
                    r.get(1).unwrap(),
                    r.get(2).unwrap(),
                    r.get(3).unwrap(),
                ),
                m,
            );
        }
    }
    (hourly, daily)
}

fn compare(label: &str, conn: &Connection, events: &[EnrichedEvent]) {
    let (mut eh, ed) = expected(events);
    // Per-dimension hourly rows are kept for the last `HOURLY_DAYS` UTC days only (day 0 of the three
    // is older); the all-visits series for every day.
    let kept_from = hourly_written_from(NOW);
    let before = eh.len();
    eh.retain(|(d, hour, _, _), _| d.is_empty() || *hour >= kept_from);
    assert!(
        eh.len() < before
            && eh
                .keys()
                .any(|(d, h, _, _)| !d.is_empty() && *h >= kept_from)
    );
    assert!(eh.keys().any(|(d, h, _, _)| d.is_empty() && *h < kept_from));
    let (ah, ad) = actual(conn);
    for (k, v) in &eh {
        assert_eq!(ah.get(k), Some(v), "{label}: hourly {k:?}");
    }
    assert_eq!(ah.len(), eh.len(), "{label}: hourly rows");
    assert_eq!(ad, ed, "{label}: daily rows");
}

#[test]
fn rollups_match_the_raw_events_in_arrival_order() {
    let events = events(7);
    let mut conn = migrated_db();
    for chunk in events.chunks(97) {
        apply(&mut conn, chunk, NOW).unwrap();
    }
    compare("in order", &conn, &events);
}

#[test]
fn rollups_do_not_depend_on_the_order_batches_arrive_in() {
    let events = events(11);
    // Out of order within windows of 40 events (about three hours): first hits arrive after later ones.
    let mut shuffled = events.clone();
    let mut rng = Rng(3);
    for window in shuffled.chunks_mut(40) {
        for i in (1..window.len()).rev() {
            window.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    let mut conn = migrated_db();
    for chunk in shuffled.chunks(53) {
        apply(&mut conn, chunk, NOW).unwrap();
    }
    compare("shuffled", &conn, &events);
    // Each batch's events in reverse, batches in order.
    let mut conn = migrated_db();
    for chunk in events.chunks(31) {
        let reversed: Vec<EnrichedEvent> = chunk.iter().rev().cloned().collect();
        apply(&mut conn, &reversed, NOW).unwrap();
    }
    compare("reversed", &conn, &events);
}

#[test]
fn the_cron_prunes_exactly_the_hourly_rows_the_consumer_stops_writing() {
    let events = events(13);
    let hourly = |conn: &Connection| -> Vec<(i64, i64, String, String, i64)> {
        let mut st = conn
            .prepare(
                "SELECT dim, hour, value, domain, visits FROM visit_hourly ORDER BY 1, 2, 3, 4",
            )
            .unwrap();
        st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    // Applied while every day was recent: per-dimension hourly rows for all three days.
    let mut early = migrated_db();
    for chunk in events.chunks(97) {
        apply(&mut early, chunk, START).unwrap();
    }
    let before = hourly(&early);
    run(&mut early, &[prune_hourly("acme", NOW)]).unwrap();
    let pruned = hourly(&early);
    assert!(pruned.len() < before.len());
    assert!(pruned
        .iter()
        .any(|r| r.0 == dim_code("") && r.1 < hourly_written_from(NOW)));
    // Applied at NOW: the consumer wrote only what the cron keeps.
    let mut late = migrated_db();
    for chunk in events.chunks(97) {
        apply(&mut late, chunk, NOW).unwrap();
    }
    assert_eq!(pruned, hourly(&late));
}

#[test]
fn a_writer_with_stale_state_fails_its_whole_transaction() {
    let events = events(5);
    let mut conn = migrated_db();
    apply(&mut conn, &events[..10], NOW).unwrap();
    // Two consumers read the same prior state for the next events; the second to commit must fail.
    let first = rollup_statements(&conn, &events[10..20], NOW);
    let second = rollup_statements(&conn, &events[10..20], NOW);
    run(&mut conn, &first).unwrap();
    let before: i64 = conn
        .query_row(
            "SELECT sum(visits) FROM visit_daily WHERE dim = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        run(&mut conn, &second).is_err(),
        "stale revision is refused"
    );
    let after: i64 = conn
        .query_row(
            "SELECT sum(visits) FROM visit_daily WHERE dim = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(before, after, "nothing of the failed transaction remains");
}

#[test]
fn stale_state_is_pruned_and_lookups_stay_within_the_bind_limit() {
    let mut events = events(13);
    let mut conn = migrated_db();
    apply(&mut conn, &events, NOW).unwrap();
    let open: i64 = conn
        .query_row("SELECT count(*) FROM open_visits", [], |r| r.get(0))
        .unwrap();
    assert!(open > 0);
    // A batch ten days later prunes every open visit and visitor-day of the tenant older than the TTLs.
    let mut late = events[0].clone();
    late.ts += 10 * 86_400_000;
    late.session_id = Some("late".into());
    apply(&mut conn, &[late.clone()], NOW).unwrap();
    let (open, days): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM open_visits), (SELECT count(*) FROM visitor_days)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((open, days), (1, 1));
    events.truncate(250);
    for s in prior_lookup("acme", &events) {
        assert!(s.binds.len() <= 100, "{}", s.sql);
        assert!(s.sql.contains("tenant_id = ?"));
        assert_eq!(s.binds[0], "acme".into());
    }
}

#[test]
fn every_statement_stays_within_d1_bind_limit() {
    let events = events(17);
    let conn = migrated_db();
    let statements = rollup_statements(&conn, &events, NOW);
    assert!(statements.iter().any(|s| s.sql.contains("visit_hourly")));
    for s in &statements {
        assert!(
            s.binds.len() <= 100,
            "{} binds: {}",
            s.binds.len(),
            &s.sql[..60]
        );
        assert_eq!(s.sql.matches('?').count(), s.binds.len());
        // D1: statements up to 100,000 bytes, values up to 2,000,000 bytes.
        assert!(s.sql.len() <= 100_000, "{}", &s.sql[..60]);
        for b in &s.binds {
            if let starling_core::sql::SqlValue::Text(t) = b {
                assert!(t.len() <= 2_000_000, "{} bytes: {}", t.len(), &s.sql[..60]);
            }
        }
    }
}

#[test]
fn a_group_writes_its_visits_in_a_few_statements_not_one_per_visit() {
    // The consumer's D1 batch used to cost about four statements per visit (sessions, page_visits,
    // open_visits, active_minutes), most of a group's time outside SQLite. Rows now travel in
    // multi-row statements, so the count depends on tables and tenants, not on visits.
    let events = events(23);
    let conn = migrated_db();
    let visits: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.session_id.as_deref())
        .collect();
    assert!(visits.len() >= 300);
    let few = rollup_statements(&conn, &events[..20], NOW + 86_400);
    let all = rollup_statements(&conn, &events, NOW + 86_400);
    assert!(
        all.len() <= 20,
        "{} statements for {} visits",
        all.len(),
        visits.len()
    );
    assert!(all.len() <= few.len() + 2, "{} vs {}", all.len(), few.len());
    // Applied in one transaction, a second writer with the same (empty) prior state fails whole: a
    // visit read as absent is written with revision 1, refused when the row appeared meanwhile.
    let mut conn = conn;
    run(&mut conn, &all).unwrap();
    assert!(
        run(&mut conn, &all).is_err(),
        "stale (absent) state is refused"
    );
}
