//! Goals, conversions and revenue through the consumer's statements and `POST /v0/query`, on SQLite
//! with the real migrations, against an independent computation from the raw events: shuffled batches,
//! browser and server-side goal events, revenue in several currencies as strings and numbers, a goal
//! created mid-visit, the goal filter over the rollups and over the visit-level path, and the numbers
//! of page visits unchanged by goal events.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use serde_json::{json, Value};
use starling_core::event::EnrichedEvent;
use starling_core::goals::{self, Goal, GoalKind};
use starling_core::query;
use starling_core::sql::Statement;

use common::{Rng, UTC};

/// 2025-04-02 12:20:00 UTC.
const NOW: i64 = 1_743_596_400;
/// 2025-03-28 00:00:00 UTC.
const START: i64 = 1_743_120_000;
const DAY: i64 = 86_400;

fn goal(name: &str, kind: GoalKind, pattern: &str, currency: Option<&str>) -> Goal {
    Goal {
        name: name.into(),
        kind,
        pattern: pattern.into(),
        currency: currency.map(Into::into),
    }
}

/// The goals of tenant `g1`; "Late" is created after the first half of the batches.
fn definitions() -> Vec<Goal> {
    vec![
        goal("Signup", GoalKind::Event, "signup", None),
        goal("Purchase USD", GoalKind::Event, "purchase", Some("USD")),
        goal("Purchase EUR", GoalKind::Event, "purchase", Some("EUR")),
        goal("Order JPY", GoalKind::Event, "order", Some("JPY")),
        goal("Blog", GoalKind::Page, "/blog/*", None),
        goal("Checkout", GoalKind::Page, "/checkout/done", None),
    ]
}

fn late() -> Goal {
    goal("Late", GoalKind::Page, "/pricing", None)
}

fn event(tenant: &str, ts_secs: i64, session: &str, visitor: &str) -> EnrichedEvent {
    EnrichedEvent {
        ts: ts_secs * 1000,
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

/// An amount in minor units written as its currency writes it (`exp` digits).
fn amount_text(minor: i64, exp: u32) -> String {
    if exp == 0 {
        return minor.to_string();
    }
    let p = 10i64.pow(exp);
    format!("{}.{:0w$}", minor / p, minor % p, w = exp as usize)
}

/// Raw events, and for each event with revenue the revenue in minor units (by index).
fn fixture() -> (Vec<EnrichedEvent>, BTreeMap<usize, (String, i64)>) {
    let mut rng = Rng(14);
    let mut out = Vec::new();
    let mut money = BTreeMap::new();
    let pages = [
        "/",
        "/blog/a",
        "/blog/b/c",
        "/pricing",
        "/checkout/done",
        "/about",
    ];
    let browsers = ["chrome", "firefox", "safari"];
    for tenant in ["g1", "g2"] {
        for v in 0..120 {
            let visitor = format!("{tenant}-v{v}");
            let day = START + (rng.below(5) as i64) * DAY;
            let mut t = day + rng.below(80_000) as i64;
            for visit in 0..(1 + rng.below(2)) {
                let session = format!("{visitor}-s{visit}");
                let browser = browsers[rng.below(3) as usize];
                let n = 1 + rng.below(4);
                for _ in 0..n {
                    let mut e = event(tenant, t, &session, &visitor);
                    e.browser = browser.into();
                    e.pathname = pages[rng.below(pages.len() as u64) as usize].into();
                    out.push(e);
                    // Custom events in the browser visit, some of them goals, with revenue.
                    if rng.below(3) == 0 {
                        let mut c = event(tenant, t + 5, &session, &visitor);
                        c.browser = browser.into();
                        let (action, currency, exp) = match rng.below(5) {
                            0 => ("signup", "", 0),
                            1 => ("purchase", "USD", 2),
                            2 => ("purchase", "EUR", 2),
                            3 => ("order", "JPY", 0),
                            _ => ("click", "", 0),
                        };
                        c.action = action.into();
                        if !currency.is_empty() && rng.below(4) > 0 {
                            let minor = 1 + rng.below(50_000) as i64;
                            let text = amount_text(minor, exp);
                            let amount = if rng.below(2) == 0 {
                                format!("\"{text}\"")
                            } else {
                                text
                            };
                            c.payload = format!(
                                r#"{{"revenue":{{"amount":{amount},"currency":"{currency}"}}}}"#
                            );
                            money.insert(out.len(), (currency.to_owned(), minor));
                        }
                        out.push(c);
                    }
                    t += 30 + rng.below(600) as i64;
                }
                t += 3_000;
            }
        }
        // Server-side events: a backend's own session and visitor (a plain HTTP client), no page hit.
        for k in 0..25 {
            let ts = START + (rng.below(5) as i64) * DAY + rng.below(80_000) as i64;
            let mut c = event(
                tenant,
                ts,
                &format!("{tenant}-srv{k}"),
                &format!("{tenant}-srv{}", k % 9),
            );
            c.browser = "unknown".into();
            c.os = "unknown".into();
            c.action = if k % 2 == 0 { "purchase" } else { "signup" }.into();
            if k % 2 == 0 {
                let minor = 100 + k as i64 * 7;
                c.payload = format!(
                    r#"{{"revenue":{{"amount":{},"currency":"USD"}}}}"#,
                    amount_text(minor, 2)
                );
                money.insert(out.len(), ("USD".into(), minor));
            }
            out.push(c);
        }
    }
    (out, money)
}

/// Applies events in shuffled batches; the "Late" goal is created once `late_after` batches are done.
fn build(
    events: &[EnrichedEvent],
    order: &[usize],
    with_goals: bool,
    late_after: usize,
) -> Connection {
    let mut conn = common::migrated_db();
    if with_goals {
        for (i, g) in definitions().iter().enumerate() {
            common::rows(&conn, &goals::insert("g1", g, 50, i as i64));
        }
    }
    for (b, chunk) in order.chunks(97).enumerate() {
        if with_goals && b == late_after {
            common::rows(&conn, &goals::insert("g1", &late(), 50, 99));
        }
        let batch: Vec<EnrichedEvent> = chunk.iter().map(|&i| events[i].clone()).collect();
        common::apply(&mut conn, &batch, NOW).unwrap();
    }
    conn
}

/// Per goal: the converting visits `(tenant, session)`, events and revenue, computed from the raw
/// events in the order they were applied (a goal counts the events applied after it exists).
#[derive(Default, Debug)]
struct Expected {
    visits: BTreeSet<String>,
    events: i64,
    revenue: i64,
    paid: i64,
}

struct Visit {
    start: i64,
    visitor: String,
    pageviews: i64,
    first_page: i64,
    last_page: i64,
    browser: String,
    first_goal_event: i64,
}

fn oracle(
    events: &[EnrichedEvent],
    money: &BTreeMap<usize, (String, i64)>,
    order: &[usize],
    late_after: usize,
) -> (BTreeMap<String, Expected>, BTreeMap<String, Visit>) {
    let mut exp: BTreeMap<String, Expected> = BTreeMap::new();
    let mut visits: BTreeMap<String, Visit> = BTreeMap::new();
    for (pos, &i) in order.iter().enumerate() {
        let e = &events[i];
        if e.tenant_id != "g1" {
            continue;
        }
        let session = e.session_id.clone().unwrap();
        let mut defs = definitions();
        if pos / 97 >= late_after {
            defs.push(late());
        }
        let page = e.action == "page_hit";
        let mut matched = false;
        for g in &defs {
            let hit = match g.kind {
                GoalKind::Event => !page && e.action == g.pattern,
                GoalKind::Page => {
                    page && (e.pathname == g.pattern
                        || (g.pattern.ends_with("/*")
                            && e.pathname.starts_with(&g.pattern[..g.pattern.len() - 1])))
                }
            };
            if !hit {
                continue;
            }
            matched = true;
            let x = exp.entry(g.name.clone()).or_default();
            x.visits.insert(session.clone());
            x.events += 1;
            if let (Some(c), Some((mc, minor))) = (&g.currency, money.get(&i)) {
                if c == mc {
                    x.revenue += minor;
                    x.paid += 1;
                }
            }
        }
        if page || matched {
            let v = visits.entry(session).or_insert(Visit {
                start: 0,
                visitor: String::new(),
                pageviews: 0,
                first_page: i64::MAX,
                last_page: i64::MIN,
                browser: String::new(),
                first_goal_event: i64::MAX,
            });
            if page {
                v.pageviews += 1;
                if e.ts < v.first_page {
                    v.browser.clone_from(&e.browser);
                    v.visitor.clone_from(&e.visitor_id);
                }
                v.first_page = v.first_page.min(e.ts);
                v.last_page = v.last_page.max(e.ts);
            } else {
                if v.pageviews == 0 && e.ts < v.first_goal_event {
                    v.visitor.clone_from(&e.visitor_id);
                }
                v.first_goal_event = v.first_goal_event.min(e.ts);
            }
        }
    }
    for v in visits.values_mut() {
        v.start = if v.pageviews > 0 {
            v.first_page
        } else {
            v.first_goal_event
        } / 1000;
    }
    (exp, visits)
}

fn query(conn: &Connection, body: Value) -> (Value, bool) {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "g1".to_owned())].into();
    let plan = query::plan_query(&query::ApiRequest {
        body: &body,
        tenant: &starling_core::claims::TenantId::for_tests("g1").unwrap(),
        fixed: &fixed,
        now_secs: NOW,
        tz: &UTC,
    })
    .unwrap();
    let results = plan
        .statements
        .iter()
        .map(|s: &Statement| common::rows(conn, s))
        .collect();
    (
        query::assemble_query(&plan, results).unwrap(),
        plan.uses_rollups(),
    )
}

fn range() -> Value {
    json!(["2025-03-28", "2025-04-01"])
}

/// Distinct (visitor, UTC day of the visit's start) of the visits.
fn visitors<'a>(vs: impl Iterator<Item = &'a Visit>) -> i64 {
    vs.map(|v| (v.visitor.clone(), v.start.div_euclid(DAY)))
        .collect::<BTreeSet<_>>()
        .len() as i64
}

fn money_json(minor: i64, currency: &str) -> Value {
    let exp = goals::exponent(currency).unwrap() as u32;
    let v: Value = serde_json::from_str(&amount_text(minor, exp)).unwrap();
    json!({ "value": v, "currency": currency })
}

/// Time order, shuffled within windows of 40 events (batches arrive out of order by up to a few
/// hours, well within the 6 h an open visit is kept).
fn shuffled(events: &[EnrichedEvent], seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].ts);
    let mut rng = Rng(seed);
    for w in order.chunks_mut(40) {
        for i in (1..w.len()).rev() {
            w.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    order
}

#[test]
fn goal_conversions_events_and_revenue_match_the_raw_events_in_any_order() {
    let (events, money) = fixture();
    for (seed, late_after) in [(1u64, 3usize), (2, 6)] {
        let order = shuffled(&events, seed);
        let conn = build(&events, &order, true, late_after);
        let (exp, visits) = oracle(&events, &money, &order, late_after);
        assert!(exp.len() == 7, "every goal is completed: {:?}", exp.keys());
        // The goal created mid-way counts only the hits applied after it: fewer than all of them.
        let pricing = events
            .iter()
            .filter(|e| e.tenant_id == "g1" && e.pathname == "/pricing")
            .count() as i64;
        assert!(
            exp["Late"].events > 0 && exp["Late"].events < pricing,
            "late goal"
        );
        let page_visitors = visitors(visits.values().filter(|v| v.pageviews > 0));

        let (out, rollups) = query(
            &conn,
            json!({"metrics": ["visitors", "visits", "events", "conversions", "conversion_rate",
                "total_revenue", "average_revenue"], "date_range": range(),
                "dimensions": ["event:goal"]}),
        );
        // Every goal metric from the rollups: `gl`, goal-event cells and the all-visits divisor.
        assert!(rollups);
        let mut seen = 0;
        for row in out["results"].as_array().unwrap() {
            let name = row["dimensions"][0].as_str().unwrap();
            let x = &exp[name];
            let conv = visitors(x.visits.iter().map(|s| &visits[s]));
            let currency = definitions()
                .into_iter()
                .chain([late()])
                .find(|g| g.name == name)
                .unwrap()
                .currency;
            let (total, avg) = match &currency {
                Some(c) if x.paid > 0 => (
                    money_json(x.revenue, c),
                    money_json((2 * x.revenue + x.paid) / (2 * x.paid), c),
                ),
                _ => (Value::Null, Value::Null),
            };
            let rate = (conv as f64 * 100.0 / page_visitors as f64 * 100.0).round() / 100.0;
            assert_eq!(
                row["metrics"],
                json!([conv, x.visits.len(), x.events, conv, rate, total, avg]),
                "goal {name}, seed {seed}"
            );
            seen += 1;
        }
        assert_eq!(seen, exp.len());

        // A goal filter over the rollups: every visit measure of the converting visits.
        for name in ["Blog", "Signup", "Purchase USD", "Late"] {
            let vs: Vec<&Visit> = exp[name].visits.iter().map(|s| &visits[s]).collect();
            let (out, rollups) = query(
                &conn,
                json!({"metrics": ["visitors", "visits", "pageviews", "conversions"],
                    "date_range": range(), "filters": [["is", "event:goal", [name]]]}),
            );
            assert!(rollups, "{name}: one goal filter reads the rollups");
            let pageviews: i64 = vs.iter().map(|v| v.pageviews).sum();
            let n = visitors(vs.iter().copied());
            assert_eq!(
                out["results"][0]["metrics"],
                json!([n, vs.len(), pageviews, n]),
                "{name}"
            );
            // The same through the visit-level path (contains): the same numbers.
            let (exact, rollups) = query(
                &conn,
                json!({"metrics": ["visitors", "visits", "pageviews", "conversions"],
                    "date_range": range(), "filters": [["contains", "event:goal", [name]]]}),
            );
            if name != "Purchase USD" {
                assert!(!rollups);
                assert_eq!(exact["results"], out["results"], "{name} exact");
            }
        }

        // A goal filter with a visit dimension: the visit-level path, per browser.
        let (out, _) = query(
            &conn,
            json!({"metrics": ["visitors", "visits", "events"], "date_range": range(),
                "dimensions": ["visit:browser"], "filters": [["is", "event:goal", ["Purchase EUR"]]]}),
        );
        let mut by_browser: BTreeMap<String, Vec<&Visit>> = BTreeMap::new();
        for s in &exp["Purchase EUR"].visits {
            let v = &visits[s];
            if v.pageviews > 0 {
                by_browser.entry(v.browser.clone()).or_default().push(v);
            }
        }
        let rows = out["results"].as_array().unwrap();
        assert_eq!(rows.len(), by_browser.len());
        for row in rows {
            let b = row["dimensions"][0].as_str().unwrap();
            let vs = &by_browser[b];
            assert_eq!(
                row["metrics"][0],
                json!(visitors(vs.iter().copied())),
                "{b}"
            );
            assert_eq!(row["metrics"][1], json!(vs.len()), "{b}");
        }

        // Two goals of different currencies together: events add up, revenue has no one currency.
        let (out, _) = query(
            &conn,
            json!({"metrics": ["events", "total_revenue"], "date_range": range(),
                "filters": [["contains", "event:goal", ["Purchase"]]]}),
        );
        assert_eq!(
            out["results"][0]["metrics"],
            json!([
                exp["Purchase USD"].events + exp["Purchase EUR"].events,
                null
            ])
        );
    }
}

#[test]
fn goal_events_leave_the_numbers_of_page_visits_unchanged() {
    let (events, _) = fixture();
    let order = shuffled(&events, 3);
    let with = build(&events, &order, true, 2);
    let without = build(&events, &order, false, 0);
    for body in [
        json!({"metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"],
            "date_range": range()}),
        json!({"metrics": ["visitors", "visits", "bounce_rate"], "date_range": range(),
            "dimensions": ["visit:browser"]}),
        json!({"metrics": ["visitors", "visits"], "date_range": range(), "dimensions": ["time:day"]}),
        json!({"metrics": ["visitors", "visits"], "date_range": range(),
            "filters": [["is", "visit:browser", ["unknown"]]]}),
        json!({"metrics": ["visits", "pageviews"], "date_range": range(),
            "filters": [["is_not", "visit:browser", ["safari"]], ["contains", "event:page", ["blog"]]]}),
    ] {
        assert_eq!(query(&with, body.clone()).0, query(&without, body).0);
    }
    // And the goals are there.
    let (out, _) = query(
        &with,
        json!({"metrics": ["conversions"], "date_range": range(), "dimensions": ["event:goal"]}),
    );
    assert!(out["results"].as_array().unwrap().len() >= 6);
    let (out, _) = query(
        &without,
        json!({"metrics": ["conversions"], "date_range": range(), "dimensions": ["event:goal"]}),
    );
    assert_eq!(out["results"], json!([]));
}

#[test]
fn another_tenants_goals_are_never_counted_or_visible() {
    let (events, _) = fixture();
    let order = shuffled(&events, 4);
    let conn = build(&events, &order, true, 0);
    // g2 sent the same actions and pages, but has no goals: nothing of g1's goals applies to it.
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "g2".to_owned())].into();
    let body =
        json!({"metrics": ["conversions"], "date_range": range(), "dimensions": ["event:goal"]});
    let plan = query::plan_query(&query::ApiRequest {
        body: &body,
        tenant: &starling_core::claims::TenantId::for_tests("g2").unwrap(),
        fixed: &fixed,
        now_secs: NOW,
        tz: &UTC,
    })
    .unwrap();
    let results = plan
        .statements
        .iter()
        .map(|s| common::rows(&conn, s))
        .collect();
    let out = query::assemble_query(&plan, results).unwrap();
    assert_eq!(out["results"], json!([]));
    assert!(common::rows(&conn, &goals::list("g2")).is_empty());
    assert_eq!(common::rows(&conn, &goals::list("g1")).len(), 7);
    // A delete names its tenant: g2 cannot delete g1's goal 1.
    assert!(common::rows(&conn, &goals::delete("g2", 1)).is_empty());
    assert_eq!(common::rows(&conn, &goals::list("g1")).len(), 7);
}

#[test]
fn goal_creation_refuses_duplicates_and_the_plan_cap() {
    let conn = common::migrated_db();
    let g = goal("Signup", GoalKind::Event, "signup", None);
    assert_eq!(common::rows(&conn, &goals::insert("a", &g, 2, 1)).len(), 1);
    // Same name: refused; same name in another tenant: fine.
    assert!(common::rows(&conn, &goals::insert("a", &g, 2, 1)).is_empty());
    assert_eq!(common::rows(&conn, &goals::insert("b", &g, 2, 1)).len(), 1);
    let g2 = goal("Buy", GoalKind::Event, "buy", Some("EUR"));
    let id = common::rows(&conn, &goals::insert("a", &g2, 2, 1));
    assert_eq!(id[0]["id"], json!(2));
    let g3 = goal("Third", GoalKind::Page, "/x", None);
    assert!(common::rows(&conn, &goals::insert("a", &g3, 2, 1)).is_empty());
    let listed: Vec<_> = common::rows(&conn, &goals::list("a"))
        .iter()
        .filter_map(goals::from_row)
        .map(|(id, g, _)| (id, g.name, g.currency))
        .collect();
    assert_eq!(
        listed,
        vec![
            (1, "Signup".into(), None),
            (2, "Buy".into(), Some("EUR".into()))
        ]
    );
    assert_eq!(common::rows(&conn, &goals::delete("a", 1)).len(), 1);
    assert_eq!(
        common::rows(&conn, &goals::insert("a", &g3, 2, 1))[0]["id"],
        json!(3)
    );
}

#[test]
fn bad_goal_queries_get_a_400_naming_the_field() {
    let conn = common::migrated_db();
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "g1".to_owned())].into();
    let tenant = starling_core::claims::TenantId::for_tests("g1").unwrap();
    let _ = &conn;
    for (body, field) in [
        (
            json!({"metrics": ["conversions"], "date_range": "7d"}),
            "metrics[0]",
        ),
        (
            json!({"metrics": ["visits", "total_revenue"], "date_range": "7d"}),
            "metrics[1]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d",
                "filters": [["is_not", "event:goal", ["Signup"]]]}),
            "filters[0][0]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d",
                "filters": [["or", [["is", "event:goal", ["Signup"]], ["is", "visit:browser", ["x"]]]]]}),
            "filters[0]",
        ),
        (
            json!({"metrics": ["conversions"], "date_range": "7d", "dimensions": ["event:goal"],
                "include": {"comparisons": {"mode": "previous_week"}}}),
            "include.comparisons.mode",
        ),
    ] {
        let err = query::plan_query(&query::ApiRequest {
            body: &body,
            tenant: &tenant,
            fixed: &fixed,
            now_secs: NOW,
            tz: &UTC,
        })
        .err()
        .unwrap_or_else(|| panic!("{body} was accepted"));
        assert!(
            err.to_string().contains(&format!("'{field}'")) || err.to_string().contains(field),
            "{err} for {body}"
        );
    }
}

fn pipe(
    conn: &Connection,
    name: &str,
    params: &[(&str, &str)],
) -> Vec<serde_json::Map<String, Value>> {
    pipe_in(conn, name, params, &UTC)
}

fn pipe_in(
    conn: &Connection,
    name: &str,
    params: &[(&str, &str)],
    tz: &dyn query::TimeZone,
) -> Vec<serde_json::Map<String, Value>> {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "g1".to_owned())].into();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let plan = query::plan(&query::Request {
        pipe: name,
        params: &params,
        tenant: &starling_core::claims::TenantId::for_tests("g1").unwrap(),
        fixed: &fixed,
        now_secs: NOW,
        tz,
    })
    .unwrap();
    let results = plan
        .statements
        .iter()
        .map(|s| common::rows(conn, s))
        .collect();
    query::assemble(&plan, results).unwrap().data
}

#[test]
fn the_dashboards_pipes_take_the_goal_filter() {
    let (events, money) = fixture();
    let order = shuffled(&events, 5);
    let conn = build(&events, &order, true, 1);
    let (exp, visits) = oracle(&events, &money, &order, 1);
    let range = [("date_from", "2025-03-28"), ("date_to", "2025-04-01")];
    for name in ["Blog", "Checkout", "Purchase EUR"] {
        let vs: Vec<&Visit> = exp[name].visits.iter().map(|s| &visits[s]).collect();
        // kpis_summary: the rollups (one filter), every converting visit.
        let mut params = range.to_vec();
        params.push(("goal", name));
        let summary = pipe(&conn, "kpis_summary", &params);
        assert_eq!(summary[0]["visits"], json!(vs.len()), "{name}");
        assert_eq!(
            summary[0]["visitors"],
            json!(visitors(vs.iter().copied())),
            "{name}"
        );
        let pageviews: i64 = vs.iter().map(|v| v.pageviews).sum();
        assert_eq!(summary[0]["pageviews"], json!(pageviews), "{name}");
        // With a second filter: the visit-level path, page visits of that browser.
        let mut two = params.clone();
        two.push(("browser", "firefox"));
        let ff: Vec<&Visit> = vs
            .iter()
            .copied()
            .filter(|v| v.pageviews > 0 && v.browser == "firefox")
            .collect();
        let summary = pipe(&conn, "kpis_summary", &two);
        assert_eq!(summary[0]["visits"], json!(ff.len()), "{name} firefox");
        // A top list with the goal filter: per browser.
        let top = pipe(&conn, "top_browsers", &params);
        for row in &top {
            let b = row["browser"].as_str().unwrap();
            let n = vs
                .iter()
                .filter(|v| v.pageviews > 0 && v.browser == b)
                .count();
            assert_eq!(row["visits"], json!(n), "{name} {b}");
        }
        assert!(!top.is_empty());
    }
}

/// A goal alone counts the same visits whichever table answers: the per-day series of a zone off UTC
/// over days before yesterday reads the visit-level rows, the summary the rollups, and both count a
/// backend's page-less converting visits (`Purchase EUR` has some).
#[test]
fn a_goal_filter_counts_the_same_visits_on_the_rollups_and_the_visit_rows() {
    let (events, money) = fixture();
    let order = shuffled(&events, 5);
    let conn = build(&events, &order, true, 1);
    let (exp, visits) = oracle(&events, &money, &order, 1);
    let pageless = exp["Purchase EUR"]
        .visits
        .iter()
        .filter(|s| visits[*s].pageviews == 0)
        .count();
    assert!(pageless > 0, "the fixture has page-less converting visits");
    let range = [("date_from", "2025-03-28"), ("date_to", "2025-04-01")];
    for name in ["Blog", "Checkout", "Purchase EUR"] {
        let mut params = range.to_vec();
        params.push(("goal", name));
        let summary = pipe_in(&conn, "kpis_summary", &params, &common::Madrid);
        let series = pipe_in(&conn, "kpis", &params, &common::Madrid);
        assert_eq!(series.len(), 5, "{name}: one row per local day");
        for m in ["visits", "pageviews"] {
            let sum: i64 = series.iter().map(|r| r[m].as_i64().unwrap()).sum();
            assert_eq!(
                json!(sum),
                summary[0][m],
                "{name}: {m} per day add up to the summary"
            );
        }
        let mut two = params.clone();
        two.push(("domain", "shop.example"));
        let summary = pipe_in(&conn, "kpis_summary", &two, &common::Madrid);
        let series = pipe_in(&conn, "kpis", &two, &common::Madrid);
        let sum: i64 = series.iter().map(|r| r["visits"].as_i64().unwrap()).sum();
        assert_eq!(json!(sum), summary[0]["visits"], "{name} on one hostname");
    }
}

#[test]
fn a_backends_goal_events_are_not_current_visitors() {
    let mut conn = common::migrated_db();
    common::rows(
        &conn,
        &goals::insert(
            "g1",
            &goal("Buy", GoalKind::Event, "buy", Some("USD")),
            5,
            0,
        ),
    );
    let page = event("g1", NOW - 60, "b-1", "browser");
    let mut browser_buy = event("g1", NOW - 30, "b-1", "browser");
    browser_buy.action = "buy".into();
    let mut server = event("g1", NOW - 20, "srv-1", "backend");
    server.action = "buy".into();
    common::apply(&mut conn, &[page, browser_buy, server], NOW).unwrap();
    let live = pipe(&conn, "current_visitors", &[]);
    assert_eq!(live[0]["visits"], json!(1));
    let (out, _) = query(
        &conn,
        json!({"metrics": ["conversions", "events"], "date_range": "day", "dimensions": ["event:goal"]}),
    );
    assert_eq!(out["results"][0]["metrics"], json!([2, 2]));
}
