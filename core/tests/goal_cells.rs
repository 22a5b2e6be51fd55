//! A goal's events and revenue as rollup cells, goals with comparisons and a goal's properties, on
//! SQLite with the real migrations, against an independent computation from the raw events.
//!
//! Two tenants with the same goal names (one with an extra goal and property key of its own) get
//! visits on every day from 2025-03-20 to 2025-04-20, many near local midnight, through the real rollup
//! statements in shuffled batches: goal events with revenue in three currencies (and a revenue in a
//! currency its goal does not take), server-side goal events without a page hit, property values on
//! the goal events and on other events of the same visit. The Goals table query (per goal and for one
//! goal, in UTC and Europe/Madrid across the 2025-03-30 change) must read only rollups and equal the
//! raw events; so must each comparison mode, and a goal's property breakdown and key list. A wrong
//! cell (events, revenue, the divisor) must make the check fail.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate};
use rusqlite::Connection;
use serde_json::{json, Value};
use starling_core::claims::TenantId;
use starling_core::event::EnrichedEvent;
use starling_core::goals::{self, Goal, GoalKind};
use starling_core::query::{self, TimeZone};

mod common;
use common::{Madrid, Rng, UTC};

/// 2025-04-21 12:00:00 UTC.
const NOW: i64 = 1_745_236_800;
/// 2025-03-20 00:00:00 UTC.
const START: i64 = 1_742_428_800;
const DAY: i64 = 86_400;
const TENANTS: [&str; 2] = ["ga", "gb"];

fn goal(name: &str, kind: GoalKind, pattern: &str, currency: Option<&str>) -> Goal {
    Goal {
        name: name.into(),
        kind,
        pattern: pattern.into(),
        currency: currency.map(Into::into),
    }
}

fn definitions(tenant: &str) -> Vec<Goal> {
    let mut out = vec![
        goal("Signup", GoalKind::Event, "signup", None),
        goal("Buy USD", GoalKind::Event, "purchase", Some("USD")),
        goal("Buy EUR", GoalKind::Event, "purchase", Some("EUR")),
        goal("Order JPY", GoalKind::Event, "order", Some("JPY")),
        goal("Pricing", GoalKind::Page, "/pricing*", None),
    ];
    if tenant == "gb" {
        out.push(goal("OnlyB", GoalKind::Event, "b_only", None));
    }
    out
}

fn base(tenant: &str, ts: i64, session: &str, visitor: &str) -> EnrichedEvent {
    EnrichedEvent {
        ts: ts * 1000,
        tenant_id: tenant.into(),
        domain: "shop.example".into(),
        action: "page_hit".into(),
        session_id: Some(session.into()),
        visitor_id: visitor.into(),
        browser: "chrome".into(),
        os: "linux".into(),
        device: "desktop".into(),
        pathname: "/".into(),
        payload: "{}".into(),
        ..Default::default()
    }
}

fn amount_text(minor: i64, exp: u32) -> String {
    if exp == 0 {
        return minor.to_string();
    }
    let p = 10i64.pow(exp);
    format!("{}.{:0w$}", minor / p, minor % p, w = exp as usize)
}

fn fixture() -> Vec<EnrichedEvent> {
    let mut rng = Rng(17);
    let mut out = Vec::new();
    let plans = ["pro", "free", "team"];
    let pages = ["/", "/pricing", "/pricing/team", "/docs", "/blog"];
    for day in 0..=31i64 {
        for tenant in TENANTS {
            for v in 0..14 {
                let visitor = format!("{tenant}-d{day}-v{v}");
                // Many visits near local midnight (22:00 to 02:00 UTC) and some anywhere in the day.
                let mut t = START
                    + day * DAY
                    + if v % 2 == 0 {
                        -7200 + rng.below(4 * 3600) as i64
                    } else {
                        rng.below(DAY as u64) as i64
                    };
                let session = format!("{visitor}-s");
                let n = rng.below(4);
                for k in 0..n {
                    let mut e = base(tenant, t, &session, &visitor);
                    e.pathname = pages[rng.below(pages.len() as u64) as usize].into();
                    if k == 0 && rng.below(3) == 0 {
                        // A property on a page hit (not a goal event unless the page is a goal's).
                        e.payload = format!(r#"{{"plan":"{}"}}"#, plans[rng.below(3) as usize]);
                    }
                    out.push(e);
                    t += 20 + rng.below(400) as i64;
                }
                // Custom events of the visit (a visit without page hits: server-side events).
                for _ in 0..rng.below(4) {
                    let mut c = base(tenant, t, &session, &visitor);
                    let plan = plans[rng.below(3) as usize];
                    let (action, currency, exp) = match rng.below(7) {
                        0 | 1 => ("signup", "", 0),
                        2 => ("purchase", "USD", 2),
                        3 => ("purchase", "EUR", 2),
                        4 => ("order", "JPY", 0),
                        5 if tenant == "gb" => ("b_only", "", 0),
                        _ => ("click", "", 0),
                    };
                    c.action = action.into();
                    let mut fields = Vec::new();
                    match rng.below(3) {
                        0 => fields.push(format!(r#""plan":"{plan}""#)),
                        1 if tenant == "gb" => fields.push(r#""secret":"x""#.to_owned()),
                        _ => {}
                    }
                    if !currency.is_empty() && rng.below(4) > 0 {
                        // Now and then a currency the goal does not take: no revenue for it.
                        let cur = if rng.below(8) == 0 { "GBP" } else { currency };
                        let minor = 1 + rng.below(90_000) as i64;
                        fields.push(format!(
                            r#""revenue":{{"amount":"{}","currency":"{cur}"}}"#,
                            amount_text(minor, exp)
                        ));
                    }
                    c.payload = format!("{{{}}}", fields.join(","));
                    out.push(c);
                    t += 10 + rng.below(300) as i64;
                }
            }
        }
    }
    out
}

/// Applies the events in batches of 61, shuffled within windows of 50 (time order otherwise).
fn build(events: &[EnrichedEvent]) -> Connection {
    let mut conn = common::migrated_db();
    for tenant in TENANTS {
        for (i, g) in definitions(tenant).iter().enumerate() {
            common::rows(&conn, &goals::insert(tenant, g, 50, i as i64));
        }
    }
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].ts);
    let mut rng = Rng(5);
    for w in order.chunks_mut(50) {
        for i in (1..w.len()).rev() {
            w.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    for chunk in order.chunks(61) {
        let batch: Vec<EnrichedEvent> = chunk.iter().map(|&i| events[i].clone()).collect();
        common::apply(&mut conn, &batch, NOW).unwrap();
    }
    conn
}

/// One visit as the raw events say: its start (first page hit, else its first custom event that joined
/// it: one that completed a goal or carried a property), visitor,
/// whether it had page hits, and per goal its events, revenue and events with revenue; per goal and
/// property `key SEP value` the goal's events that carried it; the property keys of all its events.
#[derive(Default)]
struct Visit {
    first_page: Option<i64>,
    /// The first custom event that joined the visit (completed a goal or carried a property).
    first_goal: Option<(i64, String)>,
    first_page_visitor: String,
    goals: BTreeMap<String, (i64, i64, i64)>,
    goal_props: BTreeMap<(String, String, String), i64>,
    keys: BTreeSet<String>,
}

impl Visit {
    fn start(&self) -> i64 {
        self.first_page
            .or(self.first_goal.as_ref().map(|g| g.0))
            .unwrap()
    }
    fn visitor(&self) -> (String, i64) {
        let v = if self.first_page.is_some() {
            self.first_page_visitor.clone()
        } else {
            self.first_goal.as_ref().unwrap().1.clone()
        };
        (v, self.start().div_euclid(DAY))
    }
}

/// The raw events' visits of `tenant` that count: with a page hit or a completed goal.
fn visits(events: &[EnrichedEvent], tenant: &str) -> Vec<Visit> {
    let defs = definitions(tenant);
    let mut out: BTreeMap<String, Visit> = BTreeMap::new();
    for e in events.iter().filter(|e| e.tenant_id == tenant) {
        let v = out.entry(e.session_id.clone().unwrap()).or_default();
        let secs = e.ts / 1000;
        let page = e.action == "page_hit";
        let props: Vec<(String, String)> = match serde_json::from_str::<Value>(&e.payload).unwrap()
        {
            Value::Object(m) => m
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
                .collect(),
            _ => Vec::new(),
        };
        for (k, _) in &props {
            v.keys.insert(k.clone());
        }
        if page && v.first_page.is_none_or(|f| secs < f) {
            v.first_page = Some(secs);
            v.first_page_visitor.clone_from(&e.visitor_id);
        }
        let hit = |g: &Goal| match g.kind {
            GoalKind::Event => !page && e.action == g.pattern,
            GoalKind::Page => page && e.pathname.starts_with("/pricing"),
        };
        let joins = !props.is_empty() || defs.iter().any(hit);
        if !page && joins && v.first_goal.as_ref().is_none_or(|f| secs < f.0) {
            v.first_goal = Some((secs, e.visitor_id.clone()));
        }
        for g in &defs {
            if !hit(g) {
                continue;
            }
            let t = v.goals.entry(g.name.clone()).or_default();
            t.0 += 1;
            let revenue: Option<(String, i64)> = serde_json::from_str::<Value>(&e.payload)
                .unwrap()
                .get("revenue")
                .map(|r| {
                    let c = r["currency"].as_str().unwrap().to_owned();
                    let text = r["amount"].as_str().unwrap().replace('.', "");
                    (c, text.parse().unwrap())
                });
            if let (Some(c), Some((rc, minor))) = (&g.currency, revenue) {
                if *c == rc {
                    t.1 += minor;
                    t.2 += 1;
                }
            }
            for (k, val) in &props {
                *v.goal_props
                    .entry((g.name.clone(), k.clone(), val.clone()))
                    .or_default() += 1;
            }
        }
    }
    out.into_values()
        .filter(|v| v.first_page.is_some() || !v.goals.is_empty())
        .collect()
}

/// The UTC window of local dates `from..=to` in `tz` (whole-hour offsets).
fn window(tz: &dyn TimeZone, from: NaiveDate, to: NaiveDate) -> (i64, i64) {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let start = |d: NaiveDate| {
        let local = (d - epoch).num_days() * DAY;
        // The offset at the local midnight: try the offset of the instant an offset earlier.
        let guess = local - i64::from(tz.offset_secs(local));
        local - i64::from(tz.offset_secs(guess))
    };
    (start(from), start(to + Duration::days(1)))
}

fn currency_of(tenant: &str, goal: &str) -> Option<String> {
    definitions(tenant)
        .into_iter()
        .find(|g| g.name == goal)
        .unwrap()
        .currency
}

fn money(minor: i64, currency: &str) -> Value {
    let exp = goals::exponent(currency).unwrap() as u32;
    let v: Value = serde_json::from_str(&amount_text(minor, exp)).unwrap();
    json!({ "value": v, "currency": currency })
}

/// A goal's converting (visitor, UTC day) pairs, events, revenue and events with revenue.
type Tally = (BTreeSet<(String, i64)>, i64, i64, i64);

/// The Goals table's metrics per goal over `[a, z)` from the raw visits: visitors, conversions,
/// events, conversion_rate, total_revenue, average_revenue.
fn expected_goals(tenant: &str, vs: &[Visit], (a, z): (i64, i64)) -> BTreeMap<String, Value> {
    let inside: Vec<&Visit> = vs.iter().filter(|v| (a..z).contains(&v.start())).collect();
    let all: BTreeSet<(String, i64)> = inside
        .iter()
        .filter(|v| v.first_page.is_some())
        .map(|v| v.visitor())
        .collect();
    let mut per: BTreeMap<String, Tally> = BTreeMap::new();
    for v in &inside {
        for (g, (ev, rev, paid)) in &v.goals {
            let x = per.entry(g.clone()).or_default();
            x.0.insert(v.visitor());
            x.1 += ev;
            x.2 += rev;
            x.3 += paid;
        }
    }
    per.into_iter()
        .map(|(g, (conv, ev, rev, paid))| {
            let n = conv.len() as i64;
            let rate = if all.is_empty() {
                0.0
            } else {
                (n as f64 * 100.0 / all.len() as f64 * 100.0).round() / 100.0
            };
            let (total, avg) = match currency_of(tenant, &g) {
                Some(c) if paid > 0 => (money(rev, &c), money((2 * rev + paid) / (2 * paid), &c)),
                _ => (Value::Null, Value::Null),
            };
            (g, json!([n, n, ev, rate, total, avg]))
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

const GOALS_TABLE: [&str; 6] = [
    "visitors",
    "conversions",
    "events",
    "conversion_rate",
    "total_revenue",
    "average_revenue",
];

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A metric as a number, for the expected change.
fn number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Object(m) => m["value"].as_f64().unwrap(),
        v => v.as_f64().unwrap(),
    }
}

/// Revenue's change is computed on minor units; for the check, the same ratio from the values.
fn change(cur: f64, prev: f64) -> f64 {
    if prev == 0.0 {
        if cur > 0.0 {
            100.0
        } else {
            0.0
        }
    } else {
        ((cur - prev) * 100.0 / prev * 100.0).round() / 100.0
    }
}

/// Every Goals-table check of tenant `ga`: the mismatches found (empty when all agree).
fn goals_table_mismatches(conn: &Connection, events: &[EnrichedEvent]) -> Vec<String> {
    let mut bad = Vec::new();
    let mut checked = 0;
    let vs = visits(events, "ga");
    let zones: [(&str, &dyn TimeZone); 2] = [("UTC", &UTC), ("Europe/Madrid", &Madrid)];
    // Across the DST change with edge hours older than the hourly cells kept, and up to yesterday
    // (its hourly cells).
    let ranges = [("2025-03-26", "2025-04-04"), ("2025-04-12", "2025-04-20")];
    for ((zone, tz), (from, to)) in zones.into_iter().flat_map(|z| ranges.map(move |r| (z, r))) {
        let (f, t) = (date(from), date(to));
        let n = (t - f).num_days() + 1;
        let previous = (f - Duration::days(n), f - Duration::days(1));
        // Plausible's weekday match: the first date on the main start's weekday from the plain start,
        // or the week before when that is the main start itself.
        let mut matched = previous.0;
        while matched.weekday() != f.weekday() {
            matched += Duration::days(1);
        }
        if matched == f {
            matched -= Duration::days(7);
        }
        let year = |d: NaiveDate| d.with_year(d.year() - 1).unwrap();
        let custom = (date("2025-03-20"), date("2025-03-29"));
        let comparisons = [
            (Value::Null, None),
            (json!({"mode": "previous_period"}), Some(previous)),
            (
                json!({"mode": "previous_period", "match_day_of_week": true}),
                Some((matched, previous.1 + (matched - previous.0))),
            ),
            (json!({"mode": "year_over_year"}), Some((year(f), year(t)))),
            (
                json!({"mode": "custom", "date_range": ["2025-03-20", "2025-03-29"]}),
                Some(custom),
            ),
        ];
        for (cmp, cmp_dates) in &comparisons {
            for filter in [None, Some("Buy EUR"), Some("Signup"), Some("Order JPY")] {
                let mut body = json!({"metrics": GOALS_TABLE, "date_range": [from, to],
                    "timezone": zone});
                match filter {
                    Some(g) => body["filters"] = json!([["is", "event:goal", [g]]]),
                    None => body["dimensions"] = json!(["event:goal"]),
                }
                if !cmp.is_null() {
                    body["include"] = json!({ "comparisons": cmp });
                }
                let (out, rollups) = run(conn, "ga", &body, tz);
                let what = format!("{zone} {filter:?} {cmp}");
                if !rollups {
                    bad.push(format!("{what}: not read from the rollups"));
                }
                let cur = expected_goals("ga", &vs, window(tz, f, t));
                let prev = cmp_dates
                    .map(|(f, t)| expected_goals("ga", &vs, window(tz, f, t)))
                    .unwrap_or_default();
                let want: Vec<(&String, &Value)> = cur
                    .iter()
                    .filter(|(g, _)| filter.is_none_or(|f| f == g.as_str()))
                    .collect();
                let rows = out["results"].as_array().unwrap();
                if rows.len() != want.len() {
                    bad.push(format!("{what}: {} rows, want {}", rows.len(), want.len()));
                    continue;
                }
                if let Some((f, t)) = cmp_dates {
                    let dates = json!([f.to_string(), t.to_string()]);
                    if out["meta"]["comparison_date_range"] != dates {
                        bad.push(format!("{what}: comparison dates {}", out["meta"]));
                    }
                }
                for (g, metrics) in want {
                    let row = rows
                        .iter()
                        .find(|r| filter.is_some() || r["dimensions"][0] == json!(g));
                    let Some(row) = row else {
                        bad.push(format!("{what}: no row for {g}"));
                        continue;
                    };
                    checked += 1;
                    if row["metrics"] != *metrics {
                        bad.push(format!("{what} {g}: {} != {metrics}", row["metrics"]));
                    }
                    if cmp_dates.is_some() {
                        let p = prev
                            .get(g)
                            .cloned()
                            .unwrap_or_else(|| json!([0, 0, 0, 0.0, null, null]));
                        let c = &row["comparison"];
                        if c["metrics"] != p {
                            bad.push(format!("{what} {g}: comparison {} != {p}", c["metrics"]));
                        }
                        let changes: Vec<Value> = (0..6)
                            .map(|i| change(number(&metrics[i]), number(&p[i])).into())
                            .collect();
                        if c["change"] != json!(changes) {
                            bad.push(format!("{what} {g}: change {} != {changes:?}", c["change"]));
                        }
                    }
                }
            }
        }
    }
    // 2 zones × 2 ranges × 5 comparison settings × (5 goals + 3 single goals).
    if checked != 2 * 2 * 5 * 8 {
        bad.push(format!("{checked} rows checked"));
    }
    bad
}

#[test]
fn goal_events_revenue_and_rate_from_the_rollups_match_the_raw_events_with_each_comparison() {
    let events = fixture();
    let conn = build(&events);
    let vs = visits(&events, "ga");
    // The fixture exercises what the checks are about.
    let cur = expected_goals(
        "ga",
        &vs,
        window(&Madrid, date("2025-03-26"), date("2025-04-04")),
    );
    for g in ["Signup", "Buy USD", "Buy EUR", "Order JPY", "Pricing"] {
        assert!(cur.contains_key(g), "{g} converts in the range");
    }
    for g in ["Buy USD", "Buy EUR", "Order JPY"] {
        assert!(cur[g][4].is_object(), "{g} has revenue");
    }
    assert!(
        vs.iter().any(|v| v.first_page.is_none()),
        "server-side visits without a page hit"
    );
    let cells: i64 = conn
        .query_row(
            "SELECT count(*) FROM visit_daily WHERE tenant_id = 'ga' AND dim = 16",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(cells > 0, "goal-event cells are written");

    let bad = goals_table_mismatches(&conn, &events);
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );

    // A deliberately wrong cell makes the checks fail: one goal's events, one goal's revenue, and the
    // divisor (all-visits visitors) on a day inside the range.
    let day = 1_743_120_000; // 2025-03-28
    for (column, dim, value) in [
        ("visits", 16, "Signup\u{1f}"),
        ("pageviews", 16, "Buy EUR\u{1f}EUR"),
        ("visitors", 0, ""),
    ] {
        let wrong = conn
            .execute(
                &format!(
                    "UPDATE visit_daily SET {column} = {column} + 1 WHERE tenant_id = 'ga' \
                     AND dim = ?1 AND day = ?2 AND value = ?3"
                ),
                rusqlite::params![dim, day, value],
            )
            .unwrap();
        assert_eq!(wrong, 1, "{column} of {value:?}");
        let bad = goals_table_mismatches(&conn, &events);
        assert!(
            !bad.is_empty(),
            "a wrong {column} cell of {value:?} goes unnoticed"
        );
        conn.execute(
            &format!(
                "UPDATE visit_daily SET {column} = {column} - 1 WHERE tenant_id = 'ga' \
                 AND dim = ?1 AND day = ?2 AND value = ?3"
            ),
            rusqlite::params![dim, day, value],
        )
        .unwrap();
    }
    assert!(goals_table_mismatches(&conn, &events).is_empty());
}

#[test]
fn goal_cells_agree_with_the_visit_level_path_over_old_edge_hours() {
    // The `contains` filter takes the visit-level path (`session_goals`): both paths agree, in a zone
    // whose edge hours are older than the hourly cells kept (read from `session_goals` by the rollup
    // plan too).
    let events = fixture();
    let conn = build(&events);
    for g in ["Buy USD", "Signup", "Pricing"] {
        for cmp in [Value::Null, json!({"mode": "previous_period"})] {
            let body = |op: &str| {
                let mut b = json!({"metrics": GOALS_TABLE, "date_range": ["2025-03-27", "2025-04-02"],
                    "timezone": "Europe/Madrid", "filters": [[op, "event:goal", [g]]]});
                if !cmp.is_null() {
                    b["include"] = json!({ "comparisons": cmp });
                }
                b
            };
            let (cells, fast) = run(&conn, "ga", &body("is"), &Madrid);
            let (exact, slow) = run(&conn, "ga", &body("contains"), &Madrid);
            assert!(fast && !slow);
            assert_eq!(
                cells["results"][0]["metrics"], exact["results"][0]["metrics"],
                "{g}"
            );
            assert_eq!(
                cells["results"][0]["comparison"]["metrics"],
                exact["results"][0]["comparison"]["metrics"],
                "{g} {cmp}"
            );
        }
    }
}

/// Per property value of `key`: [visitors, events] of `goal`'s conversions whose goal events carried
/// it (`goal` None: of the visits whose events carried it; events = all events with it).
fn expected_props(
    vs: &[Visit],
    goal: &str,
    key: &str,
    (a, z): (i64, i64),
) -> BTreeMap<String, Value> {
    let mut per: BTreeMap<String, (BTreeSet<(String, i64)>, i64)> = BTreeMap::new();
    for v in vs.iter().filter(|v| (a..z).contains(&v.start())) {
        for ((g, k, val), n) in &v.goal_props {
            if g == goal && k == key {
                let x = per.entry(val.clone()).or_default();
                x.0.insert(v.visitor());
                x.1 += n;
            }
        }
    }
    per.into_iter()
        .map(|(val, (u, n))| (val, json!([u.len(), n])))
        .collect()
}

#[test]
fn a_goals_properties_are_those_of_its_own_events_and_never_another_tenants() {
    let events = fixture();
    let conn = build(&events);
    let vs = visits(&events, "ga");
    let range = ("2025-03-22", "2025-04-18");
    let w = window(&UTC, date(range.0), date(range.1));
    // A visit whose goal events carry no `plan` while another of its events does: it must not count
    // under the goal's `plan` values (the fixture has such visits).
    let elsewhere = vs
        .iter()
        .filter(|v| (w.0..w.1).contains(&v.start()))
        .any(|v| {
            v.goals.contains_key("Signup")
                && v.keys.contains("plan")
                && !v
                    .goal_props
                    .keys()
                    .any(|(g, k, _)| g == "Signup" && k == "plan")
        });
    assert!(
        elsewhere,
        "the fixture has a property on a non-goal event of a converting visit"
    );
    for goal in ["Signup", "Buy USD", "Pricing"] {
        let want = expected_props(&vs, goal, "plan", w);
        assert!(!want.is_empty(), "{goal} has plan values");
        let (out, rollups) = run(
            &conn,
            "ga",
            &json!({"metrics": ["visitors", "events"], "date_range": [range.0, range.1],
                "dimensions": ["event:props:plan"], "filters": [["is", "event:goal", [goal]]]}),
            &UTC,
        );
        assert!(rollups, "{goal} × plan reads the goal property cells");
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
        assert_eq!(got, want, "{goal} × plan");
        // The other way round: goals per property value, by the value as a filter.
        for (val, metrics) in &want {
            let (out, _) = run(
                &conn,
                "ga",
                &json!({"metrics": ["conversions", "events"], "date_range": [range.0, range.1],
                    "dimensions": ["event:goal"], "filters": [["is", "event:props:plan", [val]]]}),
                &UTC,
            );
            let row = out["results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["dimensions"][0] == json!(goal))
                .unwrap_or_else(|| panic!("{goal} with plan {val}"));
            assert_eq!(row["metrics"], *metrics, "{goal} with plan {val}");
        }
    }

    // The property key list: all of a tenant's keys in the range, and one goal's.
    let key_list = |filters: Value| {
        let (out, _) = run(
            &conn,
            "ga",
            &json!({"metrics": ["visitors"], "date_range": [range.0, range.1],
                "dimensions": ["event:props"], "filters": filters}),
            &UTC,
        );
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["dimensions"][0].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(key_list(json!([])), ["plan"]);
    assert_eq!(
        key_list(json!([["is", "event:goal", ["Signup"]]])),
        ["plan"]
    );
    assert!(key_list(json!([["is", "event:goal", ["Pricing"]]])).contains(&"plan".to_owned()));

    // Isolation: tenant gb's own goal and key never show for ga, and are there for gb.
    let goals_of = |tenant: &str| {
        let (out, _) = run(
            &conn,
            tenant,
            &json!({"metrics": GOALS_TABLE, "date_range": [range.0, range.1],
                "dimensions": ["event:goal"]}),
            &UTC,
        );
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["dimensions"][0].as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert!(!goals_of("ga").contains("OnlyB"));
    assert!(goals_of("gb").contains("OnlyB"));
    let (b_keys, _) = run(
        &conn,
        "gb",
        &json!({"metrics": ["visitors"], "date_range": [range.0, range.1],
            "dimensions": ["event:props"]}),
        &UTC,
    );
    assert!(b_keys.to_string().contains("secret"));
    assert!(!key_list(json!([])).contains(&"secret".to_owned()));
    let (out, _) = run(
        &conn,
        "ga",
        &json!({"metrics": ["visitors"], "date_range": [range.0, range.1],
            "dimensions": ["event:props:secret"], "filters": [["is", "event:goal", ["Signup"]]]}),
        &UTC,
    );
    assert_eq!(out["results"], json!([]));
    // ga's numbers are its own although gb has the same goal names.
    let want = expected_props(&vs, "Signup", "plan", w);
    let (out, _) = run(
        &conn,
        "gb",
        &json!({"metrics": ["visitors", "events"], "date_range": [range.0, range.1],
            "dimensions": ["event:props:plan"], "filters": [["is", "event:goal", ["Signup"]]]}),
        &UTC,
    );
    let b_want = expected_props(&visits(&events, "gb"), "Signup", "plan", w);
    assert_ne!(want, b_want);
    assert_eq!(out["results"].as_array().unwrap().len(), b_want.len());
}

#[test]
fn goal_and_property_queries_that_cannot_be_answered_get_a_400_naming_the_field() {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "ga".to_owned())].into();
    for (body, field) in [
        (
            json!({"metrics": ["visitors", "conversion_rate"], "date_range": "7d",
                "dimensions": ["event:props:plan"], "filters": [["is", "event:goal", ["Signup"]]]}),
            "metrics[1]",
        ),
        (
            json!({"metrics": ["total_revenue"], "date_range": "7d",
                "dimensions": ["event:props"], "filters": [["is", "event:goal", ["Signup"]]]}),
            "metrics[0]",
        ),
        (
            json!({"metrics": ["visitors"], "date_range": "7d",
                "filters": [["is", "event:props", ["plan"]]]}),
            "filters[0][1]",
        ),
        (
            json!({"metrics": ["events"], "date_range": "7d", "dimensions": ["event:goal"],
                "include": {"comparisons": {"mode": "sideways"}}}),
            "include.comparisons.mode",
        ),
    ] {
        let err = query::plan_query(&query::ApiRequest {
            body: &body,
            tenant: &TenantId::for_tests("ga").unwrap(),
            fixed: &fixed,
            now_secs: NOW,
            tz: &UTC,
        })
        .map(|_| ())
        .expect_err(&body.to_string());
        assert!(err.to_string().contains(field), "{body}: {err}");
    }
}

/// The `ge` cells of tenant `ga`: value → [events, revenue, events with revenue], daily rows summed.
fn goal_event_cells(conn: &Connection) -> BTreeMap<String, [i64; 3]> {
    let mut st = conn
        .prepare(
            "SELECT value, SUM(visits), SUM(pageviews), SUM(bounces) FROM visit_daily \
             WHERE tenant_id = 'ga' AND dim = 16 GROUP BY value HAVING SUM(visits) <> 0",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?])))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn goal_event_cells_stay_exact_across_deliveries_retries_and_state_from_before_them() {
    use starling_core::rollup::batch_guard;
    let t = START + 10 * DAY + 3600;
    let purchase = |k: i64, cents: i64| {
        let mut e = base("ga", t + 60 * k, "s-1", "v-1");
        e.action = "purchase".into();
        e.payload =
            format!(r#"{{"plan":"pro","revenue":{{"amount":"{cents}","currency":"EUR"}}}}"#);
        e
    };
    let first = vec![base("ga", t, "s-1", "v-1"), purchase(1, 1000)];
    let second = vec![purchase(2, 250), purchase(3, 5)];
    let third = vec![purchase(4, 1)];
    let want = |events: i64, revenue: i64| {
        BTreeMap::from([
            (
                "Buy EUR\u{1f}EUR".to_owned(),
                [events, revenue * 100, events],
            ),
            ("Buy USD\u{1f}USD".to_owned(), [events, 0, 0]),
        ])
    };
    let batch = |conn: &Connection, id: &str, events: &[EnrichedEvent]| {
        let mut s = vec![batch_guard(id, NOW)];
        s.extend(common::rollup_statements(conn, events, NOW));
        s
    };
    let mut conn = common::migrated_db();
    for (i, g) in definitions("ga").iter().enumerate() {
        common::rows(&conn, &goals::insert("ga", g, 50, i as i64));
    }
    let s = batch(&conn, "b-1", &first);
    common::run(&mut conn, &s).unwrap();
    assert_eq!(goal_event_cells(&conn), want(1, 1000));
    // The goal's events grow in a later delivery: the visit's old tally is replaced, not added to.
    let s = batch(&conn, "b-2", &second);
    common::run(&mut conn, &s).unwrap();
    assert_eq!(goal_event_cells(&conn), want(3, 1255));
    // A re-delivered batch is refused whole by its guard; the cells do not move.
    let again = batch(&conn, "b-2", &second);
    assert!(common::run(&mut conn, &again).is_err());
    assert_eq!(goal_event_cells(&conn), want(3, 1255));
    // Two consumers with the same prior state: the second fails its transaction.
    let a = batch(&conn, "b-3", &third);
    let b = batch(&conn, "b-3x", &third);
    common::run(&mut conn, &a).unwrap();
    assert!(common::run(&mut conn, &b).is_err());
    assert_eq!(goal_event_cells(&conn), want(4, 1256));
    // The goal's property rows follow the visit: one per goal, 4 events with plan=pro each.
    let gp: Vec<(String, String, i64)> = conn
        .prepare("SELECT goal, prop, events FROM session_goal_props WHERE tenant_id = 'ga' ORDER BY goal")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        gp,
        [
            ("Buy EUR".to_owned(), "plan\u{1f}pro".to_owned(), 4),
            ("Buy USD".to_owned(), "plan\u{1f}pro".to_owned(), 4)
        ]
    );

    // State written before the goal-event cells existed (no `gc` flag, no cells): the next delivery
    // adds the visit's whole tally once and subtracts nothing it never added.
    let mut old = common::migrated_db();
    for (i, g) in definitions("ga").iter().enumerate() {
        common::rows(&old, &goals::insert("ga", g, 50, i as i64));
    }
    let s = batch(&old, "b-1", &first);
    common::run(&mut old, &s).unwrap();
    old.execute_batch(
        "UPDATE open_visits SET state = json_remove(state, '$.gc'); \
         DELETE FROM visit_daily WHERE dim = 16; DELETE FROM visit_hourly WHERE dim = 16;",
    )
    .unwrap();
    assert!(goal_event_cells(&old).is_empty());
    let s = batch(&old, "b-2", &second);
    common::run(&mut old, &s).unwrap();
    assert_eq!(goal_event_cells(&old), want(3, 1255));
}
