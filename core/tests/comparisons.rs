//! `include.comparisons` of `POST /v0/query` against an independent oracle.
//!
//! Visits of two tenants on every day from 2024-03-01 to 2025-04-20, many of them near local midnight,
//! go through the real rollup statements into SQLite (the D1 migrations). Queries with each comparison
//! mode, in Europe/Madrid (both DST changes of 2024 and the spring one of 2025 inside the ranges) and
//! Asia/Kolkata (+05:30), are planned, run and assembled, and compared with metrics counted here from
//! the raw events, with comparison dates computed by `chrono` calendar arithmetic, not the planner's.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate};
use rusqlite::Connection;
use serde_json::{json, Value};
use starling_core::claims::TenantId;
use starling_core::event::EnrichedEvent;
use starling_core::query::{self, FixedOffset, TimeZone};

mod common;
use common::Rng;

/// 2025-04-21 12:00:00 UTC.
const NOW: i64 = 1_745_236_800;
/// 2024-03-01 00:00:00 UTC.
const START: i64 = 1_709_251_200;
const TENANTS: [&str; 2] = ["cmp1", "cmp2"];

/// Europe/Madrid for 2024–2025: +1h, +2h from the last Sunday of March 01:00 UTC to the last Sunday
/// of October 01:00 UTC (the instants written out).
struct Madrid;

impl TimeZone for Madrid {
    fn offset_secs(&self, t: i64) -> i32 {
        const SUMMER: [(i64, i64); 2] = [
            (1_711_846_800, 1_729_990_800), // 2024-03-31 .. 2024-10-27
            (1_743_296_400, 1_761_440_400), // 2025-03-30 .. 2025-10-26
        ];
        if SUMMER.iter().any(|(a, z)| (*a..*z).contains(&t)) {
            7200
        } else {
            3600
        }
    }
}

const KOLKATA: FixedOffset = FixedOffset(19_800);

struct Visit {
    tenant: &'static str,
    visitor: String,
    first: i64,
    pageviews: i64,
    browser: &'static str,
}

fn fixture() -> (Vec<EnrichedEvent>, Vec<Visit>) {
    let mut rng = Rng(7);
    let (mut events, mut visits) = (Vec::new(), Vec::new());
    let days = (NOW - START) / 86_400;
    for day in 0..days {
        for (ti, tenant) in TENANTS.iter().enumerate() {
            for k in 0..(3 + ti as u64 + rng.below(3)) {
                // Near the local midnights of both zones (22:00–00:30 UTC, 18:00–19:00 UTC) and anywhere.
                let base = START + day * 86_400;
                let ts = base
                    + match k % 3 {
                        0 => 79_200 + rng.below(9_000) as i64,
                        1 => 64_800 + rng.below(3_600) as i64,
                        _ => rng.below(86_400) as i64,
                    };
                if ts + 600 > NOW {
                    continue;
                }
                let visitor = format!("{tenant}-v{}-{}", rng.below(6), ts.div_euclid(86_400));
                let browser = ["chrome", "firefox", "safari"][rng.below(3) as usize];
                let hits = 1 + rng.below(3) as i64;
                let key = format!("{tenant}-{day}-{k}");
                for h in 0..hits {
                    events.push(EnrichedEvent {
                        ts: (ts + 60 * h) * 1000,
                        tenant_id: (*tenant).into(),
                        action: "page_hit".into(),
                        locale: "en-US".into(),
                        payload: "{}".into(),
                        domain: format!("{tenant}.example"),
                        session_id: Some(key.clone()),
                        visitor_id: visitor.clone(),
                        pathname: ["/", "/pricing", "/docs"][rng.below(3) as usize].into(),
                        browser: browser.into(),
                        os: "linux".into(),
                        device: "desktop".into(),
                        country: "ES".into(),
                        ..Default::default()
                    });
                }
                visits.push(Visit {
                    tenant,
                    visitor,
                    first: ts,
                    pageviews: hits,
                    browser,
                });
            }
        }
    }
    events.sort_by_key(|e| e.ts);
    (events, visits)
}

fn db(events: &[EnrichedEvent]) -> Connection {
    let mut conn = common::migrated_db();
    for chunk in events.chunks(2000) {
        common::apply(&mut conn, chunk, NOW).unwrap();
    }
    conn
}

/// The local date a visit counts on: local time for whole-hour offsets; otherwise the local time of
/// its UTC hour's start, rounded up to the hour (the README's rule for half-hour zones).
fn local_date(tz: &dyn TimeZone, t: i64) -> NaiveDate {
    let off = i64::from(tz.offset_secs(t));
    let local = if off % 3600 == 0 {
        t + off
    } else {
        let l = t - t.rem_euclid(3600) + off;
        l + (3600 - l.rem_euclid(3600)) % 3600
    };
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + Duration::days(local.div_euclid(86_400))
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The comparison dates by Plausible's rule, with chrono: the plain period, then (matching weekdays)
/// the first later-or-equal date on the main start's weekday, or the week before when that is the
/// main start itself.
fn oracle_range(
    mode: &str,
    matched: bool,
    from: NaiveDate,
    to: NaiveDate,
) -> (NaiveDate, NaiveDate) {
    let (f, t) = match mode {
        "previous_period" => {
            let n = (to - from).num_days() + 1;
            (from - Duration::days(n), from - Duration::days(1))
        }
        _ => {
            let back = |d: NaiveDate| {
                NaiveDate::from_ymd_opt(d.year() - 1, d.month(), d.day())
                    .unwrap_or_else(|| NaiveDate::from_ymd_opt(d.year() - 1, 2, 28).unwrap())
            };
            (back(from), back(to))
        }
    };
    if !matched {
        return (f, t);
    }
    let mut s = f;
    while s.weekday() != from.weekday() {
        s += Duration::days(1);
    }
    if s == from {
        s -= Duration::days(7);
    }
    (s, t + (s - f))
}

/// `[visitors, visits, pageviews]` of a tenant's visits on local dates `from..=to`, per `key`.
fn oracle(
    visits: &[Visit],
    tenant: &str,
    tz: &dyn TimeZone,
    (from, to): (NaiveDate, NaiveDate),
    browser: Option<&str>,
    key: impl Fn(&Visit) -> String,
) -> BTreeMap<String, [i64; 3]> {
    let mut groups: BTreeMap<String, Vec<&Visit>> = BTreeMap::new();
    for v in visits.iter().filter(|v| v.tenant == tenant) {
        let d = local_date(tz, v.first);
        if d < from || d > to || browser.is_some_and(|b| b != v.browser) {
            continue;
        }
        groups.entry(key(v)).or_default().push(v);
    }
    groups
        .into_iter()
        .map(|(k, vs)| {
            let visitors = vs.iter().map(|v| &v.visitor).collect::<BTreeSet<_>>().len() as i64;
            let pv = vs.iter().map(|v| v.pageviews).sum();
            (k, [visitors, vs.len() as i64, pv])
        })
        .collect()
}

fn run(conn: &Connection, tenant: &str, body: &Value, tz: &dyn TimeZone) -> (Value, bool) {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), tenant.to_owned())].into();
    let plan = query::plan_query(&query::ApiRequest {
        body,
        tenant: &TenantId::for_tests(tenant).unwrap(),
        fixed: &fixed,
        now_secs: NOW,
        tz,
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

fn ints(v: &Value) -> [i64; 3] {
    let a = v.as_array().unwrap();
    [0, 1, 2].map(|i| a[i].as_i64().unwrap())
}

#[test]
fn comparisons_match_the_oracle_across_dst_and_in_kolkata() {
    let (events, visits) = fixture();
    let conn = db(&events);
    let zones: [(&str, &dyn TimeZone); 2] =
        [("Europe/Madrid", &Madrid), ("Asia/Kolkata", &KOLKATA)];
    // (main range, comparison) — ranges cross 2025-03-30 and (a year back) 2024-03-31 and 2024-10-27.
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "2025-03-27",
            "2025-04-02",
            json!({"mode": "previous_period"}),
        ),
        (
            "2025-03-28",
            "2025-04-01",
            json!({"mode": "previous_period", "match_day_of_week": true}),
        ),
        (
            "2025-03-05",
            "2025-04-03",
            json!({"mode": "previous_period", "match_day_of_week": true}),
        ),
        (
            "2025-03-26",
            "2025-04-05",
            json!({"mode": "year_over_year"}),
        ),
        (
            "2025-03-26",
            "2025-04-05",
            json!({"mode": "year_over_year", "match_day_of_week": true}),
        ),
        (
            "2025-03-30",
            "2025-03-30",
            json!({"mode": "previous_period"}),
        ),
        (
            "2025-03-30",
            "2025-04-01",
            json!({"mode": "custom", "date_range": ["2024-10-25", "2024-10-29"]}),
        ),
        (
            "2025-04-01",
            "2025-04-14",
            json!({"mode": "custom", "date_range": ["2024-03-29", "2024-04-02"], "match_day_of_week": true}),
        ),
    ];
    let (mut rollup_plans, mut visit_plans, mut compared_rows) = (0, 0, 0);
    for (zone, tz) in zones {
        for tenant in TENANTS {
            for (from, to, cmp) in &cases {
                let (from, to) = (date(from), date(to));
                let mode = cmp["mode"].as_str().unwrap();
                let matched = cmp["match_day_of_week"] == true;
                let expected_range = if mode == "custom" {
                    (
                        date(cmp["date_range"][0].as_str().unwrap()),
                        date(cmp["date_range"][1].as_str().unwrap()),
                    )
                } else {
                    oracle_range(mode, matched, from, to)
                };
                // No filter and one `is` filter read the rollups; `contains` reads the visits.
                for (browser, op) in [
                    (None, ""),
                    (Some("firefox"), "is"),
                    (Some("firefox"), "contains"),
                ] {
                    let filters =
                        browser.map_or(json!([]), |b| json!([[op, "visit:browser", [b]]]));
                    // Totals.
                    let body = json!({
                        "metrics": ["visitors", "visits", "pageviews"],
                        "date_range": [from.to_string(), to.to_string()],
                        "filters": filters,
                        "timezone": zone,
                        "include": {"comparisons": cmp},
                    });
                    let (out, rollups) = run(&conn, tenant, &body, tz);
                    if rollups {
                        rollup_plans += 1
                    } else {
                        visit_plans += 1
                    }
                    let what = format!("{tenant} {zone} {from}..{to} {cmp} {op} {browser:?}");
                    assert_eq!(
                        out["meta"]["comparison_date_range"],
                        json!([expected_range.0.to_string(), expected_range.1.to_string()]),
                        "{what}"
                    );
                    let all = |_: &Visit| String::new();
                    let cur = oracle(&visits, tenant, tz, (from, to), browser, all);
                    let prev = oracle(&visits, tenant, tz, expected_range, browser, all);
                    let row = &out["results"][0];
                    assert_eq!(ints(&row["metrics"]), cur[""], "current {what}");
                    assert_eq!(
                        ints(&row["comparison"]["metrics"]),
                        prev[""],
                        "comparison {what}"
                    );
                    compared_rows += 1;

                    // By local day (by hour for one day): rows pair with the comparison's buckets by
                    // position.
                    let hourly = from == to;
                    let mut body = body.clone();
                    body["dimensions"] = json!([if hourly { "time:hour" } else { "time:day" }]);
                    body["include"]["time_labels"] = true.into();
                    let (out, _) = run(&conn, tenant, &body, tz);
                    let labels: Vec<String> = if hourly {
                        // Local hours that exist on the day (23 on the spring DST day in Madrid).
                        hours_of(tz, from)
                    } else {
                        dates(from, to)
                    };
                    let cmp_labels = if hourly {
                        hours_of(tz, expected_range.0)
                    } else {
                        dates(expected_range.0, expected_range.1)
                    };
                    assert_eq!(out["meta"]["time_labels"], json!(labels), "{what}");
                    let bucket = |v: &Visit| bucket_label(tz, v.first, hourly);
                    let cur = oracle(&visits, tenant, tz, (from, to), browser, bucket);
                    let prev = oracle(&visits, tenant, tz, expected_range, browser, bucket);
                    let rows = out["results"].as_array().unwrap();
                    assert_eq!(
                        rows.len(),
                        cur.len(),
                        "{what}: one row per non-empty bucket"
                    );
                    for r in rows {
                        let label = r["dimensions"][0].as_str().unwrap();
                        let i = labels.iter().position(|l| l == label).unwrap();
                        assert_eq!(ints(&r["metrics"]), cur[label], "{what} {label}");
                        let cl = cmp_labels.get(i).cloned().unwrap_or_default();
                        assert_eq!(
                            r["comparison"]["dimensions"][0],
                            json!(cl),
                            "{what} {label}"
                        );
                        let expected = prev.get(&cl).copied().unwrap_or_default();
                        assert_eq!(
                            ints(&r["comparison"]["metrics"]),
                            expected,
                            "{what} {label} vs {cl}"
                        );
                        compared_rows += 1;
                    }
                }
            }
        }
    }
    assert!(
        rollup_plans > 10 && visit_plans > 10,
        "{rollup_plans} rollup plans, {visit_plans} visit-level"
    );
    assert!(compared_rows > 500, "{compared_rows} rows compared");
}

fn dates(from: NaiveDate, to: NaiveDate) -> Vec<String> {
    from.iter_days()
        .take_while(|d| *d <= to)
        .map(|d| d.to_string())
        .collect()
}

/// The local hour label of a visit (whole-hour zones: its local hour; half-hour: the rounded rule) or
/// its local date.
fn bucket_label(tz: &dyn TimeZone, t: i64, hourly: bool) -> String {
    if !hourly {
        return local_date(tz, t).to_string();
    }
    let off = i64::from(tz.offset_secs(t));
    let l = t - t.rem_euclid(3600) + off;
    let l = l + (3600 - l.rem_euclid(3600)) % 3600;
    chrono::DateTime::from_timestamp(l, 0)
        .unwrap()
        .naive_utc()
        .format("%Y-%m-%d %H:00:00")
        .to_string()
}

/// The local hour labels of a local date: each UTC hour of the day mapped by [`bucket_label`].
fn hours_of(tz: &dyn TimeZone, d: NaiveDate) -> Vec<String> {
    let day = (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() * 86_400;
    let mut out: Vec<String> = (day - 86_400..day + 2 * 86_400)
        .step_by(3600)
        .filter(|t| local_date(tz, *t) == d)
        .map(|t| bucket_label(tz, t, true))
        .collect();
    out.dedup();
    out
}

#[test]
fn another_tenants_visits_never_count_in_a_comparison() {
    let (events, visits) = fixture();
    let conn = db(&events);
    let body = json!({
        "metrics": ["visits"],
        "date_range": ["2025-04-01", "2025-04-07"],
        "include": {"comparisons": {"mode": "year_over_year"}},
    });
    let (out, _) = run(&conn, "cmp1", &body, &FixedOffset(0));
    let own = visits
        .iter()
        .filter(|v| v.tenant == "cmp1")
        .filter(|v| {
            let d = local_date(&FixedOffset(0), v.first);
            d >= date("2024-04-01") && d <= date("2024-04-07")
        })
        .count() as i64;
    assert_eq!(out["results"][0]["comparison"]["metrics"], json!([own]));
}
