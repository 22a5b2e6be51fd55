//! Funnels through the consumer's statements and `POST /v0/funnel`, on SQLite with the real
//! migrations, against an independent computation from the raw events: shuffled (out-of-order)
//! batches, page-pattern and goal steps, a repeated step, steps reached only in the wrong order, two
//! visits of one visitor, a funnel created mid-way, date ranges in UTC and in a zone 3 hours east (its
//! days start at 21:00 UTC, so the older edge hours come from `session_funnels`), and a filtered funnel
//! over the visit-level path.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use serde_json::{json, Value};
use starling_core::event::EnrichedEvent;
use starling_core::funnels::{self, Funnel, Step};
use starling_core::goals::{self, Goal, GoalKind};
use starling_core::query::{self, FixedOffset, TimeZone};
use starling_core::sql::Statement;

use common::Rng;

/// 2025-04-02 12:20:00 UTC.
const NOW: i64 = 1_743_596_400;
/// 2025-03-28 00:00:00 UTC.
const START: i64 = 1_743_120_000;
const DAY: i64 = 86_400;
const BATCH: usize = 61;

fn goal_defs() -> Vec<Goal> {
    vec![
        Goal {
            name: "Signup".into(),
            kind: GoalKind::Event,
            pattern: "signup".into(),
            currency: None,
        },
        Goal {
            name: "Checkout".into(),
            kind: GoalKind::Page,
            pattern: "/checkout/done".into(),
            currency: None,
        },
    ]
}

fn page(p: &str) -> Step {
    Step::Page(p.into())
}
fn goal(g: &str) -> Step {
    Step::Goal(g.into())
}

/// (name, steps) of funnels 1 and 2 (from the start) and 3 (created after `late_after` batches).
fn funnel_defs() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        (
            "Buy",
            vec![
                page("/"),
                page("/pricing"),
                goal("Signup"),
                goal("Checkout"),
            ],
        ),
        ("Blog twice", vec![page("/blog/*"), page("/blog/*")]),
        ("Late", vec![page("/pricing"), goal("Signup")]),
    ]
}

fn event(tenant: &str, ts_ms: i64, session: &str, visitor: &str) -> EnrichedEvent {
    EnrichedEvent {
        ts: ts_ms,
        tenant_id: tenant.into(),
        domain: "shop.example".into(),
        action: "page_hit".into(),
        session_id: Some(session.into()),
        visitor_id: visitor.into(),
        browser: "chrome".into(),
        os: "linux".into(),
        device: "desktop".into(),
        payload: "{}".into(),
        ..Default::default()
    }
}

/// Random visits of two tenants, and hand-made ones of `f1` (session names `hand-*`).
fn fixture() -> Vec<EnrichedEvent> {
    let mut rng = Rng(16);
    let mut out = Vec::new();
    let pages = [
        "/",
        "/pricing",
        "/blog/a",
        "/blog/b",
        "/checkout/done",
        "/about",
    ];
    let browsers = ["chrome", "firefox"];
    for tenant in ["f1", "f2"] {
        for v in 0..150 {
            let visitor = format!("{tenant}-v{v}");
            let day = START + (rng.below(5) as i64) * DAY;
            // Some visits start shortly before midnight UTC or 21:00 UTC (local midnight at +3 h).
            let mut t = match rng.below(4) {
                0 => day + DAY - 600 + rng.below(500) as i64,
                1 => day + 21 * 3600 - 600 + rng.below(500) as i64,
                _ => day + rng.below(80_000) as i64,
            } * 1000;
            // Two visits of one visitor for some.
            for visit in 0..(1 + rng.below(2)) {
                let session = format!("{visitor}-s{visit}");
                let browser = browsers[rng.below(2) as usize];
                for _ in 0..(1 + rng.below(6)) {
                    let mut e = event(tenant, t, &session, &visitor);
                    e.browser = browser.into();
                    e.pathname = pages[rng.below(pages.len() as u64) as usize].into();
                    out.push(e);
                    if rng.below(3) == 0 {
                        let mut c = event(tenant, t + 5_000, &session, &visitor);
                        c.browser = browser.into();
                        c.action = if rng.below(3) == 0 { "click" } else { "signup" }.into();
                        out.push(c);
                    }
                    t += (30 + rng.below(300) as i64) * 1000;
                }
                t += 3_000_000;
            }
        }
    }
    // Hand-made visits of f1 at 2025-04-01 22:00 UTC (within the 6 hours an open visit is kept
    // before the batch's newest event, as they are applied last; times in ms).
    let d = (START + 4 * DAY + 22 * 3600) * 1000;
    let hand = |s: &str, steps: &[(i64, &str)]| -> Vec<EnrichedEvent> {
        steps
            .iter()
            .map(|&(dt, what)| {
                let mut e = event(
                    "f1",
                    d + dt * 1000,
                    &format!("hand-{s}"),
                    &format!("hand-{s}"),
                );
                if let Some(p) = what.strip_prefix('/').map(|_| what) {
                    e.pathname = p.into();
                } else {
                    e.action = what.into();
                }
                e
            })
            .collect()
    };
    // Every step of "Buy" in order: reaches 4.
    out.extend(hand(
        "all",
        &[
            (0, "/"),
            (60, "/pricing"),
            (70, "signup"),
            (120, "/checkout/done"),
        ],
    ));
    // Wrong order: signup and /pricing before "/": reaches 1 of "Buy" (and "/pricing" then signup
    // reaches 2 of "Late" if it exists by then).
    out.extend(hand("wrong", &[(0, "/pricing"), (10, "signup"), (60, "/")]));
    // Repeated step: one blog page is step 1 of "Blog twice", the second reaches 2.
    out.extend(hand("blog1", &[(0, "/blog/a"), (30, "/about")]));
    out.extend(hand(
        "blog2",
        &[(0, "/blog/a"), (30, "/about"), (90, "/blog/a")],
    ));
    // Step 2 repeated before step 1 comes again: "/", "/pricing", "/", "/pricing" reaches 2.
    out.extend(hand(
        "repeat",
        &[
            (0, "/pricing"),
            (20, "/"),
            (40, "/pricing"),
            (60, "/"),
            (80, "/pricing"),
        ],
    ));
    out
}

/// Time order, shuffled within windows of 50 events, and the hand-made visits reversed.
fn shuffled(events: &[EnrichedEvent], seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].ts);
    let mut rng = Rng(seed);
    for w in order.chunks_mut(50) {
        for i in (1..w.len()).rev() {
            w.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    // Apply the hand-made visits last, each event in reverse time order (separate batches).
    let (mut rest, mut hand): (Vec<usize>, Vec<usize>) = order.into_iter().partition(|&i| {
        !events[i]
            .session_id
            .as_deref()
            .unwrap_or("")
            .starts_with("hand-")
    });
    hand.sort_by_key(|&i| std::cmp::Reverse(events[i].ts));
    rest.extend(hand);
    rest
}

/// Applies the events in batches of `BATCH`; funnel 3 is created after `late_after` batches.
fn build(events: &[EnrichedEvent], order: &[usize], late_after: usize) -> Connection {
    let mut conn = common::migrated_db();
    for t in ["f1", "f2"] {
        for (i, g) in goal_defs().iter().enumerate() {
            common::rows(&conn, &goals::insert(t, g, 50, i as i64));
        }
    }
    let defs = funnel_defs();
    let create = |conn: &Connection, t: &str, i: usize| {
        let r = common::rows(
            conn,
            &funnels::insert(t, defs[i].0, &defs[i].1, 20, i as i64),
        );
        assert_eq!(starling_core::sql::int(r[0].get("id")), Some(i as i64 + 1));
    };
    for t in ["f1", "f2"] {
        create(&conn, t, 0);
        create(&conn, t, 1);
    }
    for (b, chunk) in order.chunks(BATCH).enumerate() {
        if b == late_after {
            create(&conn, "f1", 2);
        }
        let batch: Vec<EnrichedEvent> = chunk.iter().map(|&i| events[i].clone()).collect();
        common::apply(&mut conn, &batch, NOW).unwrap();
    }
    conn
}

/// A visit of the oracle: its start (first page hit, secs), visitor, first-hit browser and the
/// furthest step per funnel id.
#[derive(Debug, Default)]
struct Visit {
    start: i64,
    visitor: String,
    browser: String,
    /// Whether the visit completed the goal "Signup".
    signup: bool,
    /// The paths of its page hits.
    pages: BTreeSet<String>,
    reached: BTreeMap<i64, usize>,
}

fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// Whether raw event `e` completes `step` (goal steps by the goal's own rule).
fn completes(step: &Step, e: &EnrichedEvent) -> bool {
    let page = e.action == "page_hit";
    match step {
        Step::Page(p) => page && path_matches(p, &e.pathname),
        Step::Goal(g) => match g.as_str() {
            "Signup" => !page && e.action == "signup",
            "Checkout" => page && e.pathname == "/checkout/done",
            _ => unreachable!(),
        },
    }
}

/// The visits of tenant `f1` with pages, from the raw events: each event counts for the funnels that
/// existed when it was applied; steps are matched in time order, each event advancing a funnel once.
fn oracle(events: &[EnrichedEvent], order: &[usize], late_after: usize) -> BTreeMap<String, Visit> {
    // session → [(ts, event index, funnels existing when applied)]
    let mut per: BTreeMap<String, Vec<(i64, usize, usize)>> = BTreeMap::new();
    for (pos, &i) in order.iter().enumerate() {
        let e = &events[i];
        if e.tenant_id != "f1" {
            continue;
        }
        let existing = if pos / BATCH >= late_after { 3 } else { 2 };
        per.entry(e.session_id.clone().unwrap())
            .or_default()
            .push((e.ts, i, existing));
    }
    let defs = funnel_defs();
    let mut out = BTreeMap::new();
    for (session, mut list) in per {
        list.sort();
        let pages: Vec<&(i64, usize, usize)> = list
            .iter()
            .filter(|x| events[x.1].action == "page_hit")
            .collect();
        let Some(first) = pages.first() else { continue };
        let mut v = Visit {
            start: first.0.div_euclid(1000),
            visitor: events[first.1].visitor_id.clone(),
            browser: events[first.1].browser.clone(),
            signup: list.iter().any(|x| events[x.1].action == "signup"),
            pages: pages.iter().map(|x| events[x.1].pathname.clone()).collect(),
            ..Default::default()
        };
        for (fi, (_, steps)) in defs.iter().enumerate() {
            let mut cur = 0;
            for &(_, i, existing) in &list {
                if fi < existing && cur < steps.len() && completes(&steps[cur], &events[i]) {
                    cur += 1;
                }
            }
            if cur > 0 {
                v.reached.insert(fi as i64 + 1, cur);
            }
        }
        out.insert(session, v);
    }
    out
}

fn stored_funnel(conn: &Connection, tenant: &str, id: i64) -> Funnel {
    let rows = common::rows(
        conn,
        &funnels::get(
            &starling_core::claims::TenantId::for_tests(tenant).unwrap(),
            id,
        ),
    );
    funnels::from_row(&rows[0]).unwrap().0
}

fn funnel_query(conn: &Connection, body: Value, tz: &dyn TimeZone) -> (Value, bool) {
    funnel_query_with(conn, body, tz, &query::Segments::new()).unwrap()
}

/// [`funnel_query`] with saved segments (as the route reads them for the verified tenant).
fn funnel_query_with(
    conn: &Connection,
    body: Value,
    tz: &dyn TimeZone,
    segments: &query::Segments,
) -> Result<(Value, bool), query::QueryError> {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "f1".to_owned())].into();
    let id = query::funnel_id(&body).unwrap();
    let funnel = stored_funnel(conn, "f1", id);
    let plan = query::plan_funnel_with_segments(
        &query::ApiRequest {
            body: &body,
            tenant: &starling_core::claims::TenantId::for_tests("f1").unwrap(),
            fixed: &fixed,
            now_secs: NOW,
            tz,
        },
        &funnel,
        segments,
    )?;
    let results = plan
        .statements
        .iter()
        .map(|s: &Statement| common::rows(conn, s))
        .collect();
    Ok((
        query::assemble_funnel(&plan, results).unwrap(),
        plan.uses_rollups(),
    ))
}

/// Per step of funnel `id`: (visitors, visits) of the visits starting in `[from, to)` that `keep`.
fn expected(
    visits: &BTreeMap<String, Visit>,
    id: i64,
    steps: usize,
    (from, to): (i64, i64),
    keep: impl Fn(&Visit) -> bool,
) -> Vec<(i64, i64)> {
    (1..=steps)
        .map(|k| {
            let vs: Vec<&Visit> = visits
                .values()
                .filter(|v| v.start >= from && v.start < to && keep(v))
                .filter(|v| v.reached.get(&id).is_some_and(|r| *r >= k))
                .collect();
            let visitors = vs
                .iter()
                .map(|v| (v.visitor.clone(), v.start.div_euclid(DAY)))
                .collect::<BTreeSet<_>>()
                .len() as i64;
            (visitors, vs.len() as i64)
        })
        .collect()
}

fn got(out: &Value) -> Vec<(i64, i64)> {
    out["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["visitors"].as_i64().unwrap(),
                s["visits"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn hand_made_visits_reach_the_steps_a_reader_expects() {
    let events = fixture();
    let order = shuffled(&events, 1);
    let visits = oracle(&events, &order, 0);
    let r = |s: &str| visits[&format!("hand-{s}")].reached.clone();
    assert_eq!(r("all"), BTreeMap::from([(1, 4), (3, 2)]));
    assert_eq!(r("wrong"), BTreeMap::from([(1, 1), (3, 2)]));
    assert_eq!(r("blog1"), BTreeMap::from([(2, 1)]));
    assert_eq!(r("blog2"), BTreeMap::from([(2, 2)]));
    assert_eq!(r("repeat"), BTreeMap::from([(1, 2), (3, 1)]));
}

#[test]
fn funnel_steps_match_the_raw_events_in_any_order_and_zone() {
    let events = fixture();
    for (seed, late_after) in [(1u64, 4usize), (2, 9)] {
        let order = shuffled(&events, seed);
        let conn = build(&events, &order, late_after);
        let visits = oracle(&events, &order, late_after);
        let defs = funnel_defs();
        let d = |n: i64| START + n * DAY;
        let mut nonzero = 0;
        for id in 1..=3i64 {
            let steps = defs[id as usize - 1].1.len();
            // UTC, whole days.
            let (out, rollups) = funnel_query(
                &conn,
                json!({"funnel": id, "date_range": ["2025-03-28", "2025-04-01"]}),
                &FixedOffset(0),
            );
            assert!(rollups, "an unfiltered funnel reads the rollups");
            let exp = expected(&visits, id, steps, (d(0), d(5)), |_| true);
            assert_eq!(got(&out), exp, "funnel {id} seed {seed} UTC");
            nonzero += exp.iter().filter(|x| x.1 > 0).count();
            // Conversion and drop-off follow from the visitors.
            let s = out["steps"].as_array().unwrap();
            for (i, step) in s.iter().enumerate().skip(1) {
                let (v0, vp, v) = (exp[0].0, exp[i - 1].0, exp[i].0);
                assert_eq!(step["drop_off"], json!(vp - v));
                let rate = if v0 == 0 {
                    0.0
                } else {
                    ((v as f64 * 10_000.0 / v0 as f64).round()) / 100.0
                };
                assert_eq!(step["conversion_rate"].as_f64().unwrap(), rate);
            }
            assert_eq!(s[0]["name"], json!(defs[id as usize - 1].1[0].label()));
            // 3 hours east: local days start at 21:00 UTC; the range's edges are partial UTC days.
            let (out, rollups) = funnel_query(
                &conn,
                json!({"funnel": id, "date_range": ["2025-03-29", "2025-03-31"]}),
                &FixedOffset(3 * 3600),
            );
            assert!(rollups);
            let exp = expected(
                &visits,
                id,
                steps,
                (d(1) - 3 * 3600, d(4) - 3 * 3600),
                |_| true,
            );
            assert_eq!(got(&out), exp, "funnel {id} seed {seed} +03:00");
            // With a filter: the visit-level path, exact.
            let (out, rollups) = funnel_query(
                &conn,
                json!({"funnel": id, "date_range": ["2025-03-28", "2025-04-01"],
                    "filters": [["is", "visit:browser", ["firefox"]]]}),
                &FixedOffset(0),
            );
            assert!(!rollups, "a filtered funnel reads the visits");
            let exp = expected(&visits, id, steps, (d(0), d(5)), |v| v.browser == "firefox");
            assert_eq!(got(&out), exp, "funnel {id} seed {seed} firefox");
            // The same filter as a saved segment (the dashboard's segment selector); an id the
            // tenant does not have is a 400.
            let segments: query::Segments =
                [(7, json!([["is", "visit:browser", ["firefox"]]]))].into();
            let body = json!({"funnel": id, "date_range": ["2025-03-28", "2025-04-01"],
                "filters": [["is", "segment", [7]]]});
            let (out, _) =
                funnel_query_with(&conn, body.clone(), &FixedOffset(0), &segments).unwrap();
            assert_eq!(got(&out), exp, "funnel {id} seed {seed} firefox segment");
            let missing = funnel_query_with(&conn, body, &FixedOffset(0), &query::Segments::new());
            assert!(missing.is_err(), "an unknown segment is refused");
            // A filter and a zone together.
            let (out, _) = funnel_query(
                &conn,
                json!({"funnel": id, "date_range": ["2025-03-29", "2025-03-31"],
                    "filters": [["is", "visit:browser", ["chrome"]]]}),
                &FixedOffset(3 * 3600),
            );
            let exp = expected(
                &visits,
                id,
                steps,
                (d(1) - 3 * 3600, d(4) - 3 * 3600),
                |v| v.browser == "chrome",
            );
            assert_eq!(got(&out), exp, "funnel {id} seed {seed} chrome +03:00");
            // The body's own step filter (the visits that reached step 2 of "Buy"), ahead of the
            // funnel's.
            let (out, _) = funnel_query(
                &conn,
                json!({"funnel": id, "date_range": ["2025-03-28", "2025-04-01"],
                    "filters": [["is", "event:funnel", ["1:2"]], ["is", "visit:browser", ["chrome"]]]}),
                &FixedOffset(0),
            );
            let exp = expected(&visits, id, steps, (d(0), d(5)), |v| {
                v.browser == "chrome" && v.reached.get(&1).is_some_and(|r| *r >= 2)
            });
            assert_eq!(
                got(&out),
                exp,
                "funnel {id} seed {seed} chrome, reached 1:2"
            );
            nonzero += exp.iter().filter(|x| x.1 > 0).count();
            // A negated filter and a page filter together (the visits that viewed a page), +03:00.
            let (out, rollups) = funnel_query(
                &conn,
                json!({"funnel": id, "date_range": ["2025-03-28", "2025-03-31"],
                    "filters": [["is_not", "visit:browser", ["chrome"]],
                        ["contains", "event:page", ["/about"]]]}),
                &FixedOffset(3 * 3600),
            );
            assert!(!rollups);
            let exp = expected(
                &visits,
                id,
                steps,
                (d(0) - 3 * 3600, d(4) - 3 * 3600),
                |v| v.browser != "chrome" && v.pages.iter().any(|p| p.contains("/about")),
            );
            assert_eq!(got(&out), exp, "funnel {id} seed {seed} not chrome, /about");
            nonzero += exp.iter().filter(|x| x.1 > 0).count();
        }
        assert!(nonzero > 6, "the fixture reaches most steps");
        // With a goal filter: the goal's visit-level rows, each checked against its funnel steps.
        let (out, rollups) = funnel_query(
            &conn,
            json!({"funnel": 1, "date_range": ["2025-03-28", "2025-04-01"],
                "filters": [["is", "event:goal", ["Signup"]]]}),
            &FixedOffset(0),
        );
        assert!(!rollups);
        let exp = expected(&visits, 1, 4, (d(0), d(5)), |v| v.signup);
        assert!(exp[0].1 > 0);
        assert_eq!(got(&out), exp, "funnel 1 seed {seed} with the Signup goal");
        // The funnel created mid-way counts fewer visits than one that existed from the start would.
        let all_late = oracle(&events, &order, 0);
        let late = |vs: &BTreeMap<String, Visit>| {
            vs.values().filter(|v| v.reached.contains_key(&3)).count()
        };
        assert!(
            late(&visits) > 0 && late(&visits) < late(&all_late),
            "late funnel"
        );
    }
}

#[test]
fn the_other_tenant_does_not_count_and_a_deleted_id_is_not_reused() {
    let events = fixture();
    let order = shuffled(&events, 3);
    let conn = build(&events, &order, 2);
    // f2's step rows never reach f1's funnel 1 (both have an id 1).
    let (out, _) = funnel_query(
        &conn,
        json!({"funnel": 1, "date_range": ["2025-03-28", "2025-04-01"]}),
        &FixedOffset(0),
    );
    let visits = oracle(&events, &order, 2);
    assert_eq!(
        got(&out),
        expected(&visits, 1, 4, (START, START + 5 * DAY), |_| true)
    );
    let del = common::rows(&conn, &funnels::delete("f1", 3));
    assert_eq!(del.len(), 1);
    assert!(common::rows(
        &conn,
        &funnels::get(
            &starling_core::claims::TenantId::for_tests("f1").unwrap(),
            3
        )
    )
    .is_empty());
    let r = common::rows(
        &conn,
        &funnels::insert("f1", "Again", &[page("/"), page("/pricing")], 20, 0),
    );
    assert_eq!(starling_core::sql::int(r[0].get("id")), Some(4));
    // The cap counts live funnels only.
    assert_eq!(common::rows(&conn, &funnels::list("f1")).len(), 3);
    let refused = common::rows(
        &conn,
        &funnels::insert("f1", "Over", &[page("/"), page("/x")], 3, 0),
    );
    assert!(refused.is_empty());
}
