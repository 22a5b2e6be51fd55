//! Custom properties as rollup cells (dimensions `pr` and `pe`): a property breakdown read from the
//! cells, on SQLite with the real migrations, against an independent computation from the raw events.
//!
//! Two tenants (one with a property key of its own) get visits on every day from 2025-03-20 to
//! 2025-04-20, many near local midnight, through the real rollup statements in shuffled batches:
//! property values on page hits and on custom events, visits of one page (bounces), a visitor with two
//! visits on a day, and server-side visits of custom events only (no page hit). The breakdown by a key
//! (unfiltered, filtered by one of its values, by the hostname, with a comparison), in UTC and
//! Europe/Madrid across the 2025-03-30 change, must read only the cells (plus, off UTC, the visit-level
//! rows of edge hours older than the hourly cells kept) and equal the raw events. A wrong cell (a
//! value's visitors, pageviews, events, a recent hourly cell) must make the check fail. Visit state
//! written before the cells existed (no `pc` flag) must not be subtracted from them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};
use rusqlite::Connection;
use serde_json::{json, Value};
use starling_core::claims::TenantId;
use starling_core::event::EnrichedEvent;
use starling_core::query::{self, TimeZone};

mod common;
use common::{Madrid, Rng, UTC};

/// 2025-04-21 12:00:00 UTC.
const NOW: i64 = 1_745_236_800;
/// 2025-03-20 00:00:00 UTC.
const START: i64 = 1_742_428_800;
const DAY: i64 = 86_400;
const TENANTS: [&str; 2] = ["pa", "pb"];
const METRICS: [&str; 7] = [
    "visitors",
    "visits",
    "pageviews",
    "bounce_rate",
    "visit_duration",
    "views_per_visit",
    "events",
];
/// `pr` and `pe` in the `dim` column.
const PR: i64 = 17;
const PE: i64 = 18;

fn base(tenant: &str, ts: i64, session: &str, visitor: &str, domain: &str) -> EnrichedEvent {
    EnrichedEvent {
        ts: ts * 1000,
        tenant_id: tenant.into(),
        domain: domain.into(),
        action: "page_hit".into(),
        session_id: Some(session.into()),
        visitor_id: visitor.into(),
        browser: "firefox".into(),
        os: "linux".into(),
        device: "desktop".into(),
        pathname: "/".into(),
        payload: "{}".into(),
        ..Default::default()
    }
}

fn fixture() -> Vec<EnrichedEvent> {
    let mut rng = Rng(23);
    let mut out = Vec::new();
    let plans = ["pro", "free", "team"];
    let pages = ["/", "/pricing", "/docs", "/blog"];
    for day in 0..=31i64 {
        for tenant in TENANTS {
            for v in 0..12 {
                let visitor = format!("{tenant}-d{day}-v{v}");
                let domain = if v % 5 == 0 {
                    "docs.example"
                } else {
                    "shop.example"
                };
                // Visitor 3 comes twice a day (two visits, one visitor of the day).
                for visit in 0..(if v == 3 { 2 } else { 1 }) {
                    // Many visits near midnight UTC (22:00 to 02:00) and some anywhere in the day.
                    let mut t = START
                        + day * DAY
                        + if v % 2 == 0 {
                            -7200 + rng.below(4 * 3600) as i64
                        } else {
                            rng.below(DAY as u64) as i64
                        };
                    let session = format!("{visitor}-s{visit}");
                    // Server-side visits (v = 11): custom events only.
                    let n = if v == 11 { 0 } else { 1 + rng.below(4) };
                    for _ in 0..n {
                        let mut e = base(tenant, t, &session, &visitor, domain);
                        e.pathname = pages[rng.below(pages.len() as u64) as usize].into();
                        match rng.below(4) {
                            0 => {
                                e.payload =
                                    format!(r#"{{"plan":"{}"}}"#, plans[rng.below(3) as usize])
                            }
                            1 => {
                                e.payload = format!(
                                    r#"{{"plan":"{}","ab":"{}"}}"#,
                                    plans[rng.below(3) as usize],
                                    if rng.below(2) == 0 { "A" } else { "B" }
                                )
                            }
                            _ => {}
                        }
                        out.push(e);
                        t += 20 + rng.below(600) as i64;
                    }
                    for _ in 0..rng.below(4) {
                        let mut c = base(tenant, t, &session, &visitor, domain);
                        c.action = "click".into();
                        c.payload = match rng.below(4) {
                            0 | 1 => format!(r#"{{"plan":"{}"}}"#, plans[rng.below(3) as usize]),
                            2 if tenant == "pb" => r#"{"secret":"x","plan":"pro"}"#.into(),
                            // Without properties: the event does not join the visit.
                            _ => "{}".into(),
                        };
                        out.push(c);
                        t += 10 + rng.below(300) as i64;
                    }
                }
            }
        }
    }
    out
}

/// Applies the events in batches of 57, shuffled within windows of 40 (time order otherwise).
fn build(events: &[EnrichedEvent]) -> Connection {
    let mut conn = common::migrated_db();
    apply_shuffled(&mut conn, events, 7);
    conn
}

fn apply_shuffled(conn: &mut Connection, events: &[EnrichedEvent], seed: u64) {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].ts);
    let mut rng = Rng(seed);
    for w in order.chunks_mut(40) {
        for i in (1..w.len()).rev() {
            w.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    for chunk in order.chunks(57) {
        let batch: Vec<EnrichedEvent> = chunk.iter().map(|&i| events[i].clone()).collect();
        common::apply(conn, &batch, NOW).unwrap();
    }
}

/// One visit as the raw events say.
#[derive(Default)]
struct Visit {
    /// First and last page hit.
    pages: Option<(i64, i64)>,
    pageviews: i64,
    /// First and last custom event that carried a property.
    customs: Option<(i64, i64)>,
    visitor: String,
    domain: String,
    /// `(key, value)` → events that carried it.
    props: BTreeMap<(String, String), i64>,
}

impl Visit {
    fn start(&self) -> i64 {
        self.pages.or(self.customs).unwrap().0
    }
    fn duration(&self) -> i64 {
        let (a, z) = self.pages.or(self.customs).unwrap();
        z - a
    }
}

fn span(s: Option<(i64, i64)>, t: i64) -> Option<(i64, i64)> {
    Some(s.map_or((t, t), |(a, z)| (a.min(t), z.max(t))))
}

/// The raw events' visits of `tenant` that count: with a page hit or a custom event with properties.
fn visits(events: &[EnrichedEvent], tenant: &str) -> Vec<Visit> {
    let mut out: BTreeMap<String, Visit> = BTreeMap::new();
    for e in events.iter().filter(|e| e.tenant_id == tenant) {
        let props: Vec<(String, String)> = match serde_json::from_str::<Value>(&e.payload).unwrap()
        {
            Value::Object(m) => m
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
                .collect(),
            _ => Vec::new(),
        };
        let page = e.action == "page_hit";
        if !page && props.is_empty() {
            continue;
        }
        let v = out.entry(e.session_id.clone().unwrap()).or_default();
        let secs = e.ts / 1000;
        v.visitor.clone_from(&e.visitor_id);
        v.domain.clone_from(&e.domain);
        if page {
            v.pages = span(v.pages, secs);
            v.pageviews += 1;
        } else {
            v.customs = span(v.customs, secs);
        }
        for p in props {
            *v.props.entry(p).or_default() += 1;
        }
    }
    out.into_values().collect()
}

/// The UTC window of local dates `from..=to` in `tz` (whole-hour offsets).
fn window(tz: &dyn TimeZone, from: NaiveDate, to: NaiveDate) -> (i64, i64) {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let start = |d: NaiveDate| {
        let local = (d - epoch).num_days() * DAY;
        let guess = local - i64::from(tz.offset_secs(local));
        local - i64::from(tz.offset_secs(guess))
    };
    (start(from), start(to + Duration::days(1)))
}

fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// Per value of `key` over `[a, z)` (only `value`, only `domain` when given): the breakdown's
/// [`METRICS`] from the raw visits.
fn expected(
    vs: &[Visit],
    key: &str,
    (a, z): (i64, i64),
    value: Option<&str>,
    domain: Option<&str>,
) -> BTreeMap<String, Value> {
    // value → (visitor-days, visits, pageviews, bounces, duration, events)
    type Sums = (BTreeSet<(String, i64)>, i64, i64, i64, i64, i64);
    let mut per: BTreeMap<String, Sums> = BTreeMap::new();
    for v in vs.iter().filter(|v| (a..z).contains(&v.start())) {
        if domain.is_some_and(|d| d != v.domain) {
            continue;
        }
        for ((k, val), n) in &v.props {
            if k != key || value.is_some_and(|x| x != val) {
                continue;
            }
            let x = per.entry(val.clone()).or_default();
            x.0.insert((v.visitor.clone(), v.start().div_euclid(DAY)));
            x.1 += 1;
            x.2 += v.pageviews;
            x.3 += i64::from(v.pageviews == 1);
            x.4 += v.duration();
            x.5 += n;
        }
    }
    per.into_iter()
        .map(|(val, (u, visits, pv, b, d, ev))| {
            let per_visit = |n: i64| n as f64 / visits as f64;
            let m = json!([
                u.len(),
                visits,
                pv,
                round(per_visit(b) * 100.0, 2),
                per_visit(d).round() as i64,
                round(per_visit(pv), 2),
                ev
            ]);
            (val, m)
        })
        .collect()
}

/// The answer, whether it read the rollups and the planned SQL.
fn run(conn: &Connection, tenant: &str, body: &Value, tz: &dyn TimeZone) -> (Value, bool, String) {
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
    let sql: Vec<&str> = plan.statements.iter().map(|s| s.sql.as_str()).collect();
    (
        query::assemble_query(&plan, results).unwrap(),
        plan.uses_rollups(),
        sql.join(";\n"),
    )
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn by_value(rows: &Value) -> BTreeMap<String, Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dimensions"][0].as_str().unwrap().to_owned(),
                r["metrics"].clone(),
            )
        })
        .collect()
}

/// Every breakdown check of `tenant`: the mismatches found (empty when all agree).
fn breakdown_mismatches(conn: &Connection, events: &[EnrichedEvent], tenant: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let mut checked = 0;
    let vs = visits(events, tenant);
    let zones: [(&str, &dyn TimeZone); 2] = [("UTC", &UTC), ("Europe/Madrid", &Madrid)];
    // Across the DST change with edge hours older than the hourly cells kept, and up to yesterday
    // (its hourly cells).
    let ranges = [("2025-03-26", "2025-04-04"), ("2025-04-12", "2025-04-20")];
    for ((zone, tz), (from, to)) in zones.into_iter().flat_map(|z| ranges.map(move |r| (z, r))) {
        let (f, t) = (date(from), date(to));
        let n = (t - f).num_days() + 1;
        let previous = (f - Duration::days(n), f - Duration::days(1));
        for key in ["plan", "ab"] {
            for (filter, value, domain) in [
                (json!([]), None, None),
                (
                    json!([["is", format!("event:props:{key}"), ["B"]]]),
                    Some("B"),
                    None,
                ),
                (
                    json!([["is", format!("event:props:{key}"), ["pro"]]]),
                    Some("pro"),
                    None,
                ),
                (
                    json!([["is", "event:hostname", ["docs.example"]]]),
                    None,
                    Some("docs.example"),
                ),
            ] {
                for cmp in [false, true] {
                    let mut body = json!({"metrics": METRICS, "date_range": [from, to],
                        "timezone": zone, "dimensions": [format!("event:props:{key}")],
                        "filters": filter});
                    if cmp {
                        body["include"] = json!({"comparisons": {"mode": "previous_period"}});
                    }
                    let what = format!("{tenant} {zone} {from}..{to} {key} {filter} cmp={cmp}");
                    let (out, rollups, sql) = run(conn, tenant, &body, tz);
                    if !rollups {
                        bad.push(format!("{what}: not read from the rollups"));
                    }
                    // In UTC, old whole days are read from the daily cells only.
                    if zone == "UTC" && from < "2025-04-10" && sql.contains("session_props") {
                        bad.push(format!("{what}: reads session_props"));
                    }
                    let want = expected(&vs, key, window(tz, f, t), value, domain);
                    let got = by_value(&out["results"]);
                    if got != want {
                        bad.push(format!("{what}: {got:?} != {want:?}"));
                    }
                    checked += want.len();
                    if cmp {
                        let prev =
                            expected(&vs, key, window(tz, previous.0, previous.1), value, domain);
                        for r in out["results"].as_array().unwrap() {
                            let v = r["dimensions"][0].as_str().unwrap();
                            let p = prev
                                .get(v)
                                .cloned()
                                .unwrap_or_else(|| json!([0, 0, 0, 0.0, 0, 0.0, 0]));
                            if r["comparison"]["metrics"] != p {
                                bad.push(format!(
                                    "{what} {v}: comparison {} != {p}",
                                    r["comparison"]["metrics"]
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    // 2 zones × 2 ranges × 2 comparison settings × (plan: 3 values, 1 filtered, 3 on one host; ab: 2,
    // 1, 2): every value present in every range.
    if checked != 2 * 2 * 2 * (3 + 1 + 3 + 2 + 1 + 2) {
        bad.push(format!("only {checked} rows checked"));
    }
    bad
}

#[test]
fn property_breakdowns_from_the_cells_match_the_raw_events_in_both_tenants() {
    let events = fixture();
    let conn = build(&events);
    // The fixture exercises what the checks are about.
    let vs = visits(&events, "pa");
    assert!(vs.iter().any(|v| v.pages.is_none() && !v.props.is_empty()));
    assert!(vs.iter().any(|v| v.pageviews == 1 && !v.props.is_empty()));
    let cells = |dim: i64| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM visit_daily WHERE tenant_id = 'pa' AND dim = ?1",
            [dim],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(cells(PR) > 0 && cells(PE) > 0, "property cells are written");

    for tenant in TENANTS {
        let bad = breakdown_mismatches(&conn, &events, tenant);
        assert!(
            bad.is_empty(),
            "{} mismatches:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }

    // Isolation: pb's own key is in its cells only, and pa's answers are its own.
    let secret = |tenant: &str| {
        let (out, rollups, _) = run(
            &conn,
            tenant,
            &json!({"metrics": ["visitors", "events"], "date_range": ["2025-03-20", "2025-04-20"],
                "dimensions": ["event:props:secret"]}),
            &UTC,
        );
        assert!(rollups);
        by_value(&out["results"])
    };
    assert!(secret("pa").is_empty());
    assert!(secret("pb").contains_key("x"));
    let plan = |tenant: &str| {
        let (out, _, _) = run(
            &conn,
            tenant,
            &json!({"metrics": METRICS, "date_range": ["2025-03-20", "2025-04-20"],
                "dimensions": ["event:props:plan"]}),
            &UTC,
        );
        by_value(&out["results"])
    };
    assert_ne!(plan("pa"), plan("pb"));

    // Other property queries keep the exact visit-level plan, and agree with the cells.
    let body = |filters: Value, dims: Value| {
        json!({"metrics": METRICS, "date_range": ["2025-03-27", "2025-04-02"],
            "timezone": "Europe/Madrid", "dimensions": dims, "filters": filters})
    };
    for (filters, dims) in [
        (
            json!([["is", "event:props:ab", ["A"]]]),
            json!(["event:props:plan"]),
        ),
        (
            json!([["is", "visit:browser", ["firefox"]]]),
            json!(["event:props:plan"]),
        ),
        (
            json!([["is", "event:props:plan", ["pro", "free"]]]),
            json!(["event:props:plan"]),
        ),
        (json!([]), json!(["event:props"])),
        (
            json!([["is", "event:props:plan", ["pro"]]]),
            json!(["time:day"]),
        ),
    ] {
        let (_, rollups, _) = run(&conn, "pa", &body(filters.clone(), dims.clone()), &Madrid);
        assert!(!rollups, "{filters} {dims}");
    }
    // Two values of the key as a filter: the exact plan, equal to those values' cells (old edge
    // hours in a zone off UTC).
    let (cells, fast, _) = run(
        &conn,
        "pa",
        &body(json!([]), json!(["event:props:plan"])),
        &Madrid,
    );
    let (exact, slow, _) = run(
        &conn,
        "pa",
        &body(
            json!([["is", "event:props:plan", ["pro", "free"]]]),
            json!(["event:props:plan"]),
        ),
        &Madrid,
    );
    assert!(fast && !slow);
    let mut cells = by_value(&cells["results"]);
    cells.retain(|v, _| v == "pro" || v == "free");
    assert_eq!(cells.len(), 2);
    assert_eq!(cells, by_value(&exact["results"]));
}

#[test]
fn a_wrong_property_cell_is_caught() {
    let events = fixture();
    let conn = build(&events);
    assert!(breakdown_mismatches(&conn, &events, "pa").is_empty());
    let day = 1_743_120_000; // 2025-03-28
    let recent_hour: i64 = conn
        .query_row(
            "SELECT MIN(hour) FROM visit_hourly WHERE tenant_id = 'pa' AND dim = ?1 \
             AND value = 'plan' || char(31) || 'pro' AND domain = 'shop.example' \
             AND hour >= 1745107200 AND hour < 1745164800",
            [PR],
            |r| r.get(0),
        )
        .unwrap();
    for (table, bucket, at, column, dim) in [
        ("visit_daily", "day", day, "visitors", PR),
        ("visit_daily", "day", day, "pageviews", PR),
        ("visit_daily", "day", day, "bounces", PR),
        ("visit_daily", "day", day, "visits", PE),
        ("visit_hourly", "hour", recent_hour, "visits", PR),
    ] {
        let bump = |d: i64| {
            conn.execute(
                &format!(
                    "UPDATE {table} SET {column} = {column} + ?1 WHERE tenant_id = 'pa' \
                     AND dim = ?2 AND {bucket} = ?3 AND value = 'plan' || char(31) || 'pro' \
                     AND domain = 'shop.example'"
                ),
                rusqlite::params![d, dim, at],
            )
            .unwrap()
        };
        assert_eq!(bump(1), 1, "{table} {column} of dim {dim}");
        assert!(
            !breakdown_mismatches(&conn, &events, "pa").is_empty(),
            "a wrong {table} {column} cell of dim {dim} goes unnoticed"
        );
        bump(-1);
    }
    assert!(breakdown_mismatches(&conn, &events, "pa").is_empty());
}

/// The property cells and the visitor-days' property counts of `tenant`, for comparing databases.
fn prop_cells(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT dim, day, value, domain, visits, pageviews, bounces, duration, visitors FROM visit_daily \
         WHERE dim IN (17, 18) AND (visits <> 0 OR visitors <> 0 OR pageviews <> 0) ORDER BY 1, 2, 3, 4",
        "SELECT dim, hour, value, domain, visits, pageviews, bounces, duration, visitors, visitors_first, \
         visitors_last FROM visit_hourly WHERE dim IN (17, 18) AND (visits <> 0 OR visitors <> 0 \
         OR visitors_first <> 0 OR visitors_last <> 0) ORDER BY 1, 2, 3, 4",
    ] {
        let mut st = conn.prepare(sql).unwrap();
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join(" "))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

#[test]
fn visit_state_written_before_the_property_cells_is_not_subtracted() {
    // Visits with properties, each split over two batches an hour apart.
    let mut first = Vec::new();
    let mut second = Vec::new();
    let t0 = NOW - 3 * 3600;
    for v in 0..6 {
        let visitor = format!("v{v}");
        let session = format!("s{v}");
        let mut e = base("pa", t0 + v * 60, &session, &visitor, "shop.example");
        e.payload = r#"{"plan":"pro"}"#.into();
        first.push(e);
        let mut c = base("pa", t0 + v * 60 + 30, &session, &visitor, "shop.example");
        c.action = "click".into();
        c.payload = format!(
            r#"{{"plan":"{}"}}"#,
            if v % 2 == 0 { "pro" } else { "team" }
        );
        first.push(c);
        let mut e = base("pa", t0 + v * 60 + 600, &session, &visitor, "shop.example");
        e.pathname = "/docs".into();
        e.payload = r#"{"ab":"A"}"#.into();
        second.push(e);
    }
    // The reference: both batches with the cells from the start.
    let mut reference = common::migrated_db();
    common::apply(&mut reference, &first, NOW).unwrap();
    common::apply(&mut reference, &second, NOW).unwrap();

    // As a consumer before the cells left the database: the first batch's state without `pc`, no
    // property cells and no property counts in the visitor-days.
    let mut conn = common::migrated_db();
    common::apply(&mut conn, &first, NOW).unwrap();
    conn.execute("DELETE FROM visit_daily WHERE dim IN (17, 18)", [])
        .unwrap();
    conn.execute("DELETE FROM visit_hourly WHERE dim IN (17, 18)", [])
        .unwrap();
    let states: Vec<(String, String)> = {
        let mut st = conn
            .prepare("SELECT session_key, state FROM open_visits")
            .unwrap();
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(states.len(), 6);
    for (key, state) in states {
        let mut s: serde_json::Map<String, Value> = serde_json::from_str(&state).unwrap();
        assert_eq!(s.remove("pc"), Some(Value::Bool(true)), "{state}");
        conn.execute(
            "UPDATE open_visits SET state = ?1 WHERE session_key = ?2",
            rusqlite::params![Value::Object(s).to_string(), key],
        )
        .unwrap();
    }
    let days: Vec<(String, i64, String)> = {
        let mut st = conn
            .prepare("SELECT visitor_id, day, state FROM visitor_days")
            .unwrap();
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    for (visitor, day, state) in days {
        let mut s: BTreeMap<String, BTreeMap<String, Value>> =
            serde_json::from_str(&state).unwrap();
        for dims in s.values_mut() {
            assert!(dims.remove("pr").is_some(), "{state}");
        }
        conn.execute(
            "UPDATE visitor_days SET state = ?1 WHERE visitor_id = ?2 AND day = ?3",
            rusqlite::params![serde_json::to_string(&s).unwrap(), visitor, day],
        )
        .unwrap();
    }
    assert!(prop_cells(&conn).is_empty());

    // The second batch counts each touched visit whole, once: the same cells as the reference.
    common::apply(&mut conn, &second, NOW).unwrap();
    let want = prop_cells(&reference);
    assert!(want.iter().any(|r| r.contains("plan\\u{1f}team")));
    assert_eq!(prop_cells(&conn), want);
}

/// The property key list by `events` (`dimensions: ["event:props"]`, what the dashboard's property
/// picker asks) read from the property-event cells, against the visit-row answer of the same query
/// (the same body with `visits` added reads `session_props`, as every key list did before): the same
/// keys in the same order with the same events, with comparisons, a hostname, orders and pages, in
/// UTC and Madrid across the DST change. The mismatches found (empty when all agree).
fn key_list_mismatches(conn: &Connection, tenant: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let mut checked = 0;
    let zones: [(&str, &dyn TimeZone); 2] = [("UTC", &UTC), ("Europe/Madrid", &Madrid)];
    let ranges = [
        ("2025-03-26", "2025-04-04"),
        ("2025-04-12", "2025-04-20"),
        ("2025-03-20", "2025-04-20"),
    ];
    for ((zone, tz), (from, to)) in zones.into_iter().flat_map(|z| ranges.map(move |r| (z, r))) {
        for site in [None, Some("docs.example")] {
            for cmp in [false, true] {
                for (order, page) in [
                    (Value::Null, Value::Null),
                    (json!([["event:props", "asc"]]), Value::Null),
                    (Value::Null, json!({"limit": 1, "offset": 1})),
                ] {
                    let mut body = json!({"metrics": ["events"], "date_range": [from, to],
                        "timezone": zone, "dimensions": ["event:props"]});
                    if let Some(s) = site {
                        body["site_id"] = json!(s);
                    }
                    if cmp {
                        body["include"] = json!({"comparisons": {"mode": "previous_period"}});
                    }
                    if !order.is_null() {
                        body["order_by"] = order.clone();
                    }
                    if !page.is_null() {
                        body["pagination"] = page.clone();
                    }
                    let what =
                        format!("{tenant} {zone} {from}..{to} {site:?} cmp={cmp} {order} {page}");
                    let (got, rollups, sql) = run(conn, tenant, &body, tz);
                    if !rollups || !sql.contains("visit_daily") {
                        bad.push(format!("{what}: not read from the cells"));
                    }
                    if zone == "UTC" && from < "2025-04-10" && sql.contains("session_props") {
                        bad.push(format!("{what}: reads session_props"));
                    }
                    body["metrics"] = json!(["events", "visits"]);
                    let (mut want, rollups, _) = run(conn, tenant, &body, tz);
                    assert!(!rollups, "{what}: the visit-row answer reads the visits");
                    for r in want["results"].as_array_mut().unwrap() {
                        r["metrics"] = json!([r["metrics"][0]]);
                        if cmp {
                            let c = &mut r["comparison"];
                            c["metrics"] = json!([c["metrics"][0]]);
                            c["change"] = json!([c["change"][0]]);
                        }
                    }
                    if got["results"] != want["results"] {
                        bad.push(format!("{what}: {} != {}", got["results"], want["results"]));
                    }
                    checked += want["results"].as_array().unwrap().len();
                }
            }
        }
    }
    if checked < 2 * 3 * 2 * 2 * 2 {
        bad.push(format!("only {checked} rows checked"));
    }
    bad
}

#[test]
fn the_key_list_by_events_from_the_cells_equals_the_visit_row_answer() {
    let events = fixture();
    let conn = build(&events);
    for tenant in TENANTS {
        let bad = key_list_mismatches(&conn, tenant);
        assert!(
            bad.is_empty(),
            "{} mismatches:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }
    // pb's own key is listed for pb only.
    let keys = |tenant: &str| {
        let (out, _, _) = run(
            &conn,
            tenant,
            &json!({"metrics": ["events"], "date_range": ["2025-03-20", "2025-04-20"],
                "dimensions": ["event:props"]}),
            &UTC,
        );
        by_value(&out["results"]).into_keys().collect::<Vec<_>>()
    };
    assert_eq!(keys("pa"), ["ab", "plan"]);
    assert_eq!(keys("pb"), ["ab", "plan", "secret"]);
    // Other shapes keep the visit rows: a key's visitors (a visit with two values of one key counts
    // once for it), a goal's keys, a property value filter, time buckets.
    for body in [
        json!({"metrics": ["visitors"], "dimensions": ["event:props"]}),
        json!({"metrics": ["events"], "dimensions": ["event:props"],
            "filters": [["is", "event:goal", ["Signup"]]]}),
        json!({"metrics": ["events"], "dimensions": ["event:props"],
            "filters": [["is", "event:props:plan", ["pro"]]]}),
    ] {
        let mut body = body;
        body["date_range"] = json!(["2025-03-20", "2025-04-20"]);
        let (_, rollups, sql) = run(&conn, "pa", &body, &UTC);
        assert!(!rollups && sql.contains("session_"), "{body}");
    }
    // A wrong property-event cell (daily, or hourly of the last days) changes the answer.
    for (table, bucket, at) in [
        ("visit_daily", "day", "1743120000"),
        (
            "visit_hourly",
            "hour",
            "(SELECT MIN(hour) FROM visit_hourly WHERE tenant_id = 'pa' AND dim = 18 \
             AND hour >= 1745107200)",
        ),
    ] {
        let bump = |d: i64| {
            conn.execute(
                &format!(
                    "UPDATE {table} SET visits = visits + ?1 WHERE tenant_id = 'pa' AND dim = ?2 \
                     AND {bucket} = {at} AND value = 'plan' || char(31) || 'pro' \
                     AND domain = 'shop.example'"
                ),
                rusqlite::params![d, PE],
            )
            .unwrap()
        };
        assert_eq!(bump(1), 1, "{table}");
        assert!(
            !key_list_mismatches(&conn, "pa").is_empty(),
            "a wrong {table} cell goes unnoticed"
        );
        bump(-1);
    }
}
