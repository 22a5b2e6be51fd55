//! The `web_vitals_*` endpoints on SQLite with the real migrations: web_vital events go through
//! `vitals::statements_for` (as the consumer runs them), the endpoints are planned, executed and
//! assembled, and compared with percentiles and rating shares computed here from the raw values.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use starling_core::event::EnrichedEvent;
use starling_core::query::{self, FixedOffset, Output, Request};
use starling_core::vitals::statements_for;

mod common;
use common::{migrated_db, rows, run};

/// 2026-01-10 12:00:00 UTC.
const NOW: i64 = 1_768_046_400;
const DAY: i64 = 86_400;

fn vital(tenant: &str, days_ago: i64, path: &str, name: &str, value: f64) -> EnrichedEvent {
    EnrichedEvent {
        ts: (NOW - days_ago * DAY) * 1000,
        tenant_id: tenant.into(),
        domain: "a.example".into(),
        action: "web_vital".into(),
        pathname: path.into(),
        payload: json!({"name": name, "value": value}).to_string(),
        ..Default::default()
    }
}

fn get(conn: &rusqlite::Connection, tenant: &str, pipe: &str, params: &[(&str, &str)]) -> Output {
    let fixed = BTreeMap::from([("tenant_id".to_owned(), tenant.to_owned())]);
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let plan = query::plan(&Request {
        pipe,
        params: &params,
        tenant: &starling_core::claims::TenantId::for_tests(&fixed["tenant_id"])
            .expect("valid tenant"),
        fixed: &fixed,
        now_secs: NOW,
        tz: &FixedOffset(0),
    })
    .unwrap_or_else(|e| panic!("{pipe}: {e}"));
    let results = plan.statements.iter().map(|s| rows(conn, s)).collect();
    query::assemble(&plan, results).unwrap()
}

/// The exact p-quantile by rank ⌈q·n⌉ (the oracle).
fn exact(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1]
}

fn row<'a>(out: &'a Output, col: &str, val: &str) -> &'a serde_json::Map<String, Value> {
    out.data
        .iter()
        .find(|r| r[col] == val)
        .unwrap_or_else(|| panic!("no {col}={val} in {:?}", out.data))
}

#[test]
fn endpoints_agree_with_the_raw_values() {
    let mut conn = migrated_db();
    let mut events = Vec::new();
    // Today: 200 LCPs on /blog/* from 500 to 5,475 ms, 40 CLS on /, 12 INPs on /pricing.
    let lcp: Vec<f64> = (0..200).map(|i| 500.0 + f64::from(i) * 25.0).collect();
    for (i, v) in lcp.iter().enumerate() {
        events.push(vital(
            "acme",
            0,
            if i % 2 == 0 { "/blog/a" } else { "/blog/b" },
            "LCP",
            *v,
        ));
    }
    let cls: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.01).collect();
    for v in &cls {
        events.push(vital("acme", 0, "/", "CLS", *v));
    }
    for i in 0..12 {
        events.push(vital(
            "acme",
            0,
            "/pricing",
            "INP",
            100.0 + f64::from(i) * 40.0,
        ));
    }
    // Two days ago, and another tenant: never in today's answers for acme.
    events.push(vital("acme", 2, "/old", "TTFB", 300.0));
    events.push(vital("other", 0, "/", "LCP", 99_999.0 / 3.0));
    // Applied in two batches: upserts add up.
    let (a, b) = events.split_at(100);
    run(&mut conn, &statements_for(a)).unwrap();
    run(&mut conn, &statements_for(b)).unwrap();
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM web_vitals_daily", [], |r| r.get(0))
        .unwrap();
    assert!(
        stored < 120,
        "{stored} rows for {} measurements: the rollup is a histogram",
        events.len()
    );

    let current = get(&conn, "acme", "web_vitals_current", &[]);
    assert_eq!(
        current
            .data
            .iter()
            .map(|r| r["metric_name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["LCP", "INP", "CLS"]
    );
    let l = row(&current, "metric_name", "LCP");
    let p75 = l["p75"].as_f64().unwrap();
    let want = exact(&mut lcp.clone(), 0.75);
    assert!((p75 - want).abs() / want < 0.05, "p75 {p75} vs {want}");
    assert_eq!(l["measurements"], 200);
    let rating = if want <= 2500.0 {
        "good"
    } else if want <= 4000.0 {
        "needs-improvement"
    } else {
        "poor"
    };
    assert_eq!(l["rating"], rating, "the rating of the p75 ({want})");
    let good = lcp.iter().filter(|v| **v <= 2500.0).count() as f64 / 2.0;
    assert_eq!(l["good_percentage"].as_f64().unwrap(), good);
    let avg = lcp.iter().sum::<f64>() / 200.0;
    assert!((l["avg_value"].as_f64().unwrap() - avg).abs() < 0.01);
    let c = row(&current, "metric_name", "CLS");
    let cls_p75 = c["p75"].as_f64().unwrap();
    assert!(
        (cls_p75 - exact(&mut cls.clone(), 0.75)).abs() < 0.02,
        "{cls_p75}"
    );
    assert_eq!(c["units"], "score");

    let three_days = get(&conn, "acme", "web_vitals_current", &[("days", "3")]);
    assert_eq!(row(&three_days, "metric_name", "TTFB")["measurements"], 1);

    let dist = get(&conn, "acme", "web_vitals_distribution", &[]);
    let cats: Vec<_> = dist
        .data
        .iter()
        .filter(|r| r["metric_name"] == "CLS")
        .map(|r| {
            (
                r["performance_category"].as_str().unwrap(),
                r["measurement_count"].as_u64().unwrap(),
            )
        })
        .collect();
    let count = |lo: f64, hi: f64| cls.iter().filter(|v| **v > lo && **v <= hi).count() as u64;
    assert_eq!(
        cats,
        [
            ("good", count(-1.0, 0.1)),
            ("needs-improvement", count(0.1, 0.25)),
            ("poor", count(0.25, 9.0))
        ]
    );
    let sum: f64 = dist
        .data
        .iter()
        .filter(|r| r["metric_name"] == "LCP")
        .map(|r| r["percentage"].as_f64().unwrap())
        .sum();
    assert!((sum - 100.0).abs() < 0.2);

    let routes = get(&conn, "acme", "web_vitals_routes", &[]);
    let names: Vec<_> = routes
        .data
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(row(&routes, "route", "blog")["measurements"], 200);
    assert!(row(&routes, "route", "blog")["inp_p75"].is_null());
    // Worst first by default; best first with sort_order=desc.
    let scores: Vec<f64> = routes
        .data
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
    let best = get(
        &conn,
        "acme",
        "web_vitals_routes",
        &[("sort_order", "desc"), ("limit", "1")],
    );
    assert_eq!(best.data.len(), 1);
    assert_eq!(best.data[0]["score"].as_f64(), scores.last().copied());
    let pages = get(
        &conn,
        "acme",
        "web_vitals_routes",
        &[("analysis_type", "pathnames"), ("route", "blog")],
    );
    let mut paths: Vec<_> = pages
        .data
        .iter()
        .map(|r| r["pathname"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/blog/a", "/blog/b"]);

    let series = get(
        &conn,
        "acme",
        "web_vitals_timeseries",
        &[("date_from", "2026-01-08"), ("date_to", "2026-01-10")],
    );
    let keys: Vec<_> = series
        .data
        .iter()
        .map(|r| {
            (
                r["day"].as_str().unwrap(),
                r["metric_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("2026-01-08", "TTFB"),
            ("2026-01-10", "LCP"),
            ("2026-01-10", "INP"),
            ("2026-01-10", "CLS")
        ]
    );

    // The other tenant sees only its own measurement.
    let other = get(&conn, "other", "web_vitals_current", &[]);
    assert_eq!(other.data.len(), 1);
    assert_eq!(other.data[0]["measurements"], 1);
}

#[test]
fn outbound_downloads_and_404_pages_are_listed_most_frequent_first() {
    let mut conn = migrated_db();
    let ev = |tenant: &str, days_ago: i64, action: &str, payload: Value| EnrichedEvent {
        ts: (NOW - days_ago * DAY) * 1000,
        tenant_id: tenant.into(),
        domain: "a.example".into(),
        action: action.into(),
        payload: payload.to_string(),
        ..Default::default()
    };
    let mut events = Vec::new();
    for (url, n) in [("https://b.example/", 3), ("https://c.example/x", 1)] {
        for _ in 0..n {
            events.push(ev("acme", 0, "Outbound Link: Click", json!({ "url": url })));
        }
    }
    events.push(ev(
        "acme",
        9,
        "Outbound Link: Click",
        json!({"url": "https://old.example/"}),
    ));
    events.push(ev(
        "acme",
        0,
        "File Download",
        json!({"url": "https://a.example/r.pdf"}),
    ));
    events.push(ev("acme", 1, "404", json!({"path": "/gone"})));
    events.push(ev("other", 0, "404", json!({"path": "/theirs"})));
    run(&mut conn, &statements_for(&events)).unwrap();
    run(&mut conn, &starling_core::captures::statements_for(&events)).unwrap();

    let out = get(&conn, "acme", "top_outbound_links", &[]);
    assert_eq!(
        out.data,
        [
            json!({"url": "https://b.example/", "count": 3}),
            json!({"url": "https://c.example/x", "count": 1})
        ]
        .map(|v| v.as_object().unwrap().clone())
    );
    let one = get(
        &conn,
        "acme",
        "top_outbound_links",
        &[("limit", "1"), ("skip", "1")],
    );
    assert_eq!(one.data[0]["url"], "https://c.example/x");
    assert_eq!(
        get(&conn, "acme", "top_file_downloads", &[]).data[0]["count"],
        1
    );
    let missing = get(&conn, "acme", "top_not_found_pages", &[]);
    assert_eq!(missing.data.len(), 1);
    assert_eq!(missing.data[0]["pathname"], "/gone");
    assert_eq!(
        get(
            &conn,
            "acme",
            "top_not_found_pages",
            &[("date_from", "2026-01-10")]
        )
        .data
        .len(),
        0
    );
}

/// A single measurement just under a threshold shares its histogram bucket with values above it: the
/// endpoints rate the p75 as the measurement is rated (INP 199 ms is good, 201 ms needs improvement),
/// not as the bucket's middle would be.
#[test]
fn a_p75_next_to_a_threshold_is_rated_like_its_measurement() {
    for (value, want) in [(199.0, "good"), (201.0, "needs-improvement")] {
        let mut conn = migrated_db();
        run(
            &mut conn,
            &statements_for(&[vital("acme", 0, "/", "INP", value)]),
        )
        .unwrap();
        let current = get(&conn, "acme", "web_vitals_current", &[]);
        assert_eq!(
            row(&current, "metric_name", "INP")["rating"],
            json!(want),
            "INP {value}"
        );
    }
}
