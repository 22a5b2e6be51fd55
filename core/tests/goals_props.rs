//! Custom properties (`event:props:<key>`) through the consumer's statements and `POST /v0/query`, on
//! SQLite with the real migrations, against an independent computation from the raw events: page hit
//! and custom event properties, the plan's caps on keys and values (`(other)`), shuffled batches, alone
//! and with other filters (`session_props`).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use serde_json::{json, Value};
use starling_core::event::EnrichedEvent;
use starling_core::query;

use common::{Rng, UTC};

/// 2025-04-02 12:20:00 UTC.
const NOW: i64 = 1_743_596_400;
/// 2025-03-30 00:00:00 UTC.
const START: i64 = 1_743_292_800;
const DAY: i64 = 86_400;
/// The free plan's caps (the tests' consumer sets none): 10 keys, 100 values per key.
const MAX_KEYS: usize = 10;
const MAX_VALUES: usize = 100;

fn event(ts: i64, session: &str, visitor: &str, browser: &str) -> EnrichedEvent {
    EnrichedEvent {
        ts: ts * 1000,
        tenant_id: "p1".into(),
        domain: "app.example".into(),
        action: "page_hit".into(),
        session_id: Some(session.into()),
        visitor_id: visitor.into(),
        pathname: "/".into(),
        browser: browser.into(),
        payload: "{}".into(),
        ..Default::default()
    }
}

fn fixture() -> Vec<EnrichedEvent> {
    let mut rng = Rng(2);
    let mut out = Vec::new();
    let plans = ["free", "pro", "team"];
    for v in 0..150 {
        let visitor = format!("v{v}");
        let mut t = START + (rng.below(3) as i64) * DAY + rng.below(80_000) as i64;
        let session = format!("{visitor}-s");
        let browser = ["chrome", "firefox"][rng.below(2) as usize];
        for _ in 0..(1 + rng.below(3)) {
            let mut e = event(t, &session, &visitor, browser);
            e.payload = format!(
                r#"{{"pathname":"/","href":"https://app.example/","plan":"{}","ab":"{}"}}"#,
                plans[rng.below(3) as usize],
                if rng.below(2) == 0 { "A" } else { "B" }
            );
            out.push(e);
            t += 60;
        }
        // A custom event: a value per visitor (past the value cap), and sometimes many keys at once.
        let mut c = event(t, &session, &visitor, browser);
        c.action = "signup".into();
        c.payload = if v % 40 == 7 {
            let keys: Vec<String> = (0..12).map(|k| format!("\"k{k:02}\":\"x\"")).collect();
            format!("{{{}}}", keys.join(","))
        } else {
            format!(r#"{{"ref_id":"r{v}","plan":"{}"}}"#, plans[v % 3])
        };
        out.push(c);
    }
    // A backend's events with properties and no page hit.
    for k in 0..5 {
        let mut c = event(
            START + DAY + k * 100,
            &format!("srv{k}"),
            "backend",
            "unknown",
        );
        c.action = "invoice".into();
        c.payload = r#"{"plan":"pro"}"#.into();
        out.push(c);
    }
    out
}

/// Time order, shuffled within windows of 30 events.
fn shuffled(events: &[EnrichedEvent], seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].ts);
    let mut rng = Rng(seed);
    for w in order.chunks_mut(30) {
        for i in (1..w.len()).rev() {
            w.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    order
}

/// Per counted (key, value): its visits (sessions) and events, from the raw events in applied order
/// with the caps applied independently; and per session its pageviews, start, visitor and browser.
type PropVisits = BTreeMap<(String, String), (BTreeSet<String>, i64)>;
struct Visit {
    pageviews: i64,
    start: i64,
    visitor: String,
    browser: String,
}

fn oracle(events: &[EnrichedEvent], order: &[usize]) -> (PropVisits, BTreeMap<String, Visit>) {
    const RESERVED: [&str; 4] = ["pathname", "href", "referrer", "locale"];
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut out: PropVisits = BTreeMap::new();
    let mut visits: BTreeMap<String, Visit> = BTreeMap::new();
    for &i in order {
        let e = &events[i];
        let session = e.session_id.clone().unwrap();
        let payload: serde_json::Map<String, Value> = serde_json::from_str(&e.payload).unwrap();
        let mut pairs: Vec<(String, String)> = payload
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        pairs.sort();
        let mut counted = BTreeSet::new();
        for (k, v) in pairs {
            let pair = if !keys.contains_key(&k) && keys.len() >= MAX_KEYS {
                ("(other)".to_owned(), "(other)".to_owned())
            } else {
                let values = keys.entry(k.clone()).or_default();
                if values.contains(&v) || values.len() < MAX_VALUES {
                    values.insert(v.clone());
                    (k, v)
                } else {
                    (k, "(other)".to_owned())
                }
            };
            counted.insert(pair);
        }
        for pair in &counted {
            let x = out.entry(pair.clone()).or_default();
            x.0.insert(session.clone());
            x.1 += 1;
        }
        let page = e.action == "page_hit";
        if page || !counted.is_empty() {
            let v = visits.entry(session).or_insert(Visit {
                pageviews: 0,
                start: i64::MAX,
                visitor: e.visitor_id.clone(),
                browser: e.browser.clone(),
            });
            if page {
                if v.pageviews == 0 || e.ts_secs() < v.start {
                    v.browser.clone_from(&e.browser);
                }
                v.pageviews += 1;
            }
            v.start = v.start.min(e.ts_secs());
        }
    }
    (out, visits)
}

fn query(conn: &Connection, body: Value) -> (Value, bool) {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "p1".to_owned())].into();
    let plan = query::plan_query(&query::ApiRequest {
        body: &body,
        tenant: &starling_core::claims::TenantId::for_tests("p1").unwrap(),
        fixed: &fixed,
        now_secs: NOW,
        tz: &UTC,
    })
    .unwrap_or_else(|e| panic!("{body}: {e}"));
    let results = plan
        .statements
        .iter()
        .map(|s| common::rows(conn, s))
        .collect();
    (
        query::assemble_query(&plan, results).unwrap(),
        plan.uses_rollups(),
    )
}

fn visitors<'a>(vs: impl Iterator<Item = &'a Visit>) -> usize {
    vs.map(|v| (v.visitor.clone(), v.start.div_euclid(DAY)))
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn property_breakdowns_and_filters_match_the_raw_events_with_the_caps() {
    let events = fixture();
    let order = shuffled(&events, 9);
    let mut conn = common::migrated_db();
    for chunk in order.chunks(53) {
        let batch: Vec<EnrichedEvent> = chunk.iter().map(|&i| events[i].clone()).collect();
        common::apply(&mut conn, &batch, NOW).unwrap();
    }
    let (exp, visits) = oracle(&events, &order);
    let range = json!(["2025-03-30", "2025-04-01"]);
    assert!(
        exp.contains_key(&("ref_id".to_owned(), "(other)".to_owned())),
        "the value cap is reached"
    );
    assert!(
        exp.contains_key(&("(other)".to_owned(), "(other)".to_owned())),
        "the key cap is reached"
    );

    for key in ["plan", "ab", "ref_id", "(other)"] {
        let (out, rollups) = query(
            &conn,
            json!({"metrics": ["visitors", "visits"], "date_range": range,
                "dimensions": [format!("event:props:{key}")], "pagination": {"limit": 1000}}),
        );
        assert!(rollups, "{key}: a breakdown reads the property cells");
        let got: BTreeMap<String, Value> = out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["dimensions"][0].as_str().unwrap().to_owned(),
                    r["metrics"].clone(),
                )
            })
            .collect();
        let want: BTreeMap<String, Value> = exp
            .iter()
            .filter(|((k, _), _)| k == key)
            .map(|((_, v), (sessions, _))| {
                let n = visitors(sessions.iter().map(|s| &visits[s]));
                (v.clone(), json!([n, sessions.len()]))
            })
            .collect();
        assert_eq!(got, want, "event:props:{key}");
        // The same with events, from the property-event cells.
        let (out, rollups) = query(
            &conn,
            json!({"metrics": ["visits", "events"], "date_range": range,
                "dimensions": [format!("event:props:{key}")], "pagination": {"limit": 1000}}),
        );
        assert!(rollups);
        for r in out["results"].as_array().unwrap() {
            let v = r["dimensions"][0].as_str().unwrap();
            let (sessions, n) = &exp[&(key.to_owned(), v.to_owned())];
            assert_eq!(r["metrics"], json!([sessions.len(), n]), "{key}={v}");
        }
    }

    // A property filter: every visit measure of the visits whose events carried the value.
    let pro = &exp[&("plan".to_owned(), "pro".to_owned())].0;
    let (out, rollups) = query(
        &conn,
        json!({"metrics": ["visitors", "visits", "pageviews"], "date_range": range,
            "filters": [["is", "event:props:plan", ["pro"]]]}),
    );
    assert!(!rollups);
    let pageviews: i64 = pro.iter().map(|s| visits[s].pageviews).sum();
    assert_eq!(
        out["results"][0]["metrics"],
        json!([
            visitors(pro.iter().map(|s| &visits[s])),
            pro.len(),
            pageviews
        ])
    );
    // With a visit dimension: the visit-level path; visits without a page hit have no browser.
    let (out, rollups) = query(
        &conn,
        json!({"metrics": ["visits"], "date_range": range, "dimensions": ["visit:browser"],
            "filters": [["is", "event:props:plan", ["pro"]]]}),
    );
    assert!(!rollups);
    let mut by_browser: BTreeMap<String, usize> = BTreeMap::new();
    for s in pro {
        if visits[s].pageviews > 0 {
            *by_browser.entry(visits[s].browser.clone()).or_default() += 1;
        }
    }
    let got: BTreeMap<String, usize> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dimensions"][0].as_str().unwrap().to_owned(),
                r["metrics"][0].as_u64().unwrap() as usize,
            )
        })
        .collect();
    assert_eq!(got, by_browser);

    // Page numbers are page visits' only: the backend's property events start none.
    let (out, _) = query(&conn, json!({"metrics": ["visits"], "date_range": range}));
    let page_visits = visits.values().filter(|v| v.pageviews > 0).count();
    assert_eq!(out["results"][0]["metrics"], json!([page_visits]));
    assert!(page_visits < visits.len());
}

#[test]
fn bad_property_queries_get_a_400_naming_the_field() {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "p1".to_owned())].into();
    let tenant = starling_core::claims::TenantId::for_tests("p1").unwrap();
    for (body, field) in [
        (
            json!({"metrics": ["visits"], "date_range": "7d", "dimensions": ["event:props:"]}),
            "dimensions[0]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "filters": [["contains", "event:props:plan", ["p"]]]}),
            "filters[0][0]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d",
                "filters": [["not", ["is", "event:props:plan", ["pro"]]]]}),
            "filters[0]",
        ),
        (
            json!({"metrics": ["visits", "conversion_rate"], "date_range": "7d", "dimensions": ["event:goal"],
                "filters": [["is", "event:props:plan", ["pro"]]]}),
            "metrics[1]",
        ),
        (
            json!({"metrics": ["conversions"], "date_range": "7d", "dimensions": ["event:props:plan"]}),
            "metrics[0]",
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
            err.to_string().contains(&format!("'{field}'")),
            "{err} for {body}"
        );
    }
}
