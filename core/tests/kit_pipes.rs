//! The kit's `traffic_by_hour` and `analytics_hits` against an independent oracle.
//!
//! `traffic_by_hour`: deterministic raw events for two tenants over a week that crosses Madrid's 2025
//! spring DST change go through the consumer's rollup statements into SQLite (the real migrations);
//! the pipe is planned, run and assembled, and compared with visits and pageviews per local hour
//! computed here from the raw events with plain loops, in UTC, Europe/Madrid and Asia/Kolkata, with
//! no filter, a domain, one filter (rollups when recent, the visit scan when older) and two filters.
//!
//! `analytics_hits`: archive objects written with `archive::append_events` (a batch in two objects,
//! another tenant's folder next to it) are read the way the worker reads them, newest hour first; the
//! pages concatenated equal the oracle's newest-first list, `like_filter` included.

use std::collections::BTreeMap;

use serde_json::Value;
use starling_core::archive;
use starling_core::claims::TenantId;
use starling_core::event::EnrichedEvent;
use starling_core::query::{self, FixedOffset, Output, Request, TimeZone};

mod common;
use common::{Madrid, Rng};

/// 2025-04-02 12:20:00 UTC.
const NOW: i64 = 1_743_596_400;
/// 2025-03-26 00:00:00 UTC.
const START: i64 = 1_742_947_200;
const DAY: i64 = 86_400;

const KOLKATA: FixedOffset = FixedOffset(19_800);

fn fixture() -> Vec<EnrichedEvent> {
    let mut rng = Rng(7);
    let mut out = Vec::new();
    // k1: a week of traffic; k2: a few visits on one day, so most of its hours are zero.
    for (tenant, sessions, from, span) in [
        ("k1", 900, START, NOW - START),
        ("k2", 12, NOW - 30_000, 20_000),
    ] {
        for s in 0..sessions {
            let mut ts = from + rng.below(span as u64) as i64;
            // Some visits start at hh:50 or later so they run into the next hour.
            if s % 6 == 0 {
                ts = ts - ts % 3600 + 3000 + rng.below(500) as i64;
            }
            let domain = ["a.example", "b.example"][rng.below(2) as usize];
            let browser = rng.pick(&["chrome", "firefox", "safari"]);
            let os = rng.pick(&["windows", "ios", "android", "linux"]);
            let key = format!("{tenant}-s{s}");
            let visitor = format!("{tenant}-v{}-{}", rng.below(40), ts / DAY);
            for h in 0..1 + rng.below(4) {
                if ts > NOW {
                    break;
                }
                let path = rng.pick(&["/", "/pricing", "/docs", "/blog"]);
                out.push(EnrichedEvent {
                    ts: ts * 1000 + rng.below(1000) as i64,
                    tenant_id: tenant.into(),
                    domain: domain.into(),
                    action: "page_hit".into(),
                    session_id: Some(key.clone()),
                    visitor_id: visitor.clone(),
                    pathname: path.into(),
                    href: format!("https://{domain}{path}"),
                    browser: browser.into(),
                    os: os.into(),
                    device: "desktop".into(),
                    country: "ES".into(),
                    payload: format!("{{\"pathname\":\"{path}\",\"n\":{s},\"h\":{h}}}"),
                    ..Default::default()
                });
                ts += 60 + rng.below(1500) as i64;
            }
            if s % 5 == 0 {
                // A custom event and a bot hit: in no hour's count.
                let t = (ts - 1).min(NOW);
                for (action, bot) in [("signup", false), ("page_hit", true)] {
                    out.push(EnrichedEvent {
                        ts: t * 1000,
                        tenant_id: tenant.into(),
                        domain: domain.into(),
                        action: action.into(),
                        session_id: Some(format!("{key}-{action}-{bot}")),
                        visitor_id: "x".into(),
                        pathname: "/bot".into(),
                        is_bot: bot,
                        device: if bot { "bot" } else { "desktop" }.into(),
                        payload: "{}".into(),
                        ..Default::default()
                    });
                }
            }
        }
    }
    out.sort_by_key(|e| e.ts);
    out
}

// ---------- the oracle: plain loops over the raw events ----------

/// The UTC instant of local midnight of `date` (days since the epoch), floored to the UTC hour: try
/// each offset the zone uses around it.
fn local_midnight(tz: &dyn TimeZone, date: i64) -> i64 {
    let local = date * DAY;
    let mut candidates: Vec<i64> = [-DAY, 0, DAY]
        .iter()
        .map(|d| local - i64::from(tz.offset_secs(local + d)))
        .filter(|t| t + i64::from(tz.offset_secs(*t)) == local)
        .collect();
    candidates.sort_unstable();
    let t = candidates[0];
    t - t % 3600
}

fn date_of(label: &str) -> i64 {
    let (y, m, d) = (&label[..4], &label[5..7], &label[8..]);
    let (y, m, d): (i64, i64, i64) = (y.parse().unwrap(), m.parse().unwrap(), d.parse().unwrap());
    // Days before each month in a non-leap year; the fixture is in 2025.
    let before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][(m - 1) as usize];
    assert_eq!(y, 2025);
    (2025 - 1970) * 365 + 14 + before + d - 1
}

/// Visits and pageviews per local hour of the visits of `tenant` that start in the local dates
/// `from..=to` and pass `filters` (session attributes are those of the first hit).
fn oracle(
    events: &[EnrichedEvent],
    tenant: &str,
    tz: &dyn TimeZone,
    from: &str,
    to: &str,
    filters: &[(&str, &str)],
) -> Vec<(i64, i64)> {
    let mut sessions: BTreeMap<&str, Vec<&EnrichedEvent>> = BTreeMap::new();
    for e in events {
        if e.tenant_id == tenant && e.action == "page_hit" && !e.is_bot {
            sessions
                .entry(e.session_id.as_deref().unwrap())
                .or_default()
                .push(e);
        }
    }
    let (start, end) = (
        local_midnight(tz, date_of(from)),
        local_midnight(tz, date_of(to) + 1),
    );
    let mut hours = vec![(0i64, 0i64); 24];
    for hits in sessions.values() {
        let first = hits.iter().min_by_key(|e| e.ts).unwrap();
        let t = first.ts / 1000;
        if t < start || t >= end {
            continue;
        }
        let keep = filters.iter().all(|(k, v)| match *k {
            "domain" => first.domain == *v,
            "browser" => first.browser == *v,
            "os" => first.os == *v,
            "pathname" => hits.iter().any(|h| h.pathname == *v),
            other => panic!("{other}"),
        });
        if !keep {
            continue;
        }
        // The UTC hour holding the first hit, at local time, rounded up to a whole hour.
        let u = t - t % 3600;
        let local = u + i64::from(tz.offset_secs(u));
        let hour = ((local + 3599) / 3600).rem_euclid(24) as usize;
        hours[hour].0 += 1;
        hours[hour].1 += hits.len() as i64;
    }
    hours
}

// ---------- the planner over SQLite ----------

fn get(
    conn: &rusqlite::Connection,
    tenant: &str,
    tz: &dyn TimeZone,
    pipe: &str,
    params: &[(&str, &str)],
) -> (Output, Option<&'static str>) {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), tenant.to_owned())].into();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let plan = query::plan(&Request {
        pipe,
        params: &params,
        tenant: &TenantId::for_tests(tenant).unwrap(),
        fixed: &fixed,
        now_secs: NOW,
        tz,
    })
    .unwrap_or_else(|e| panic!("{params:?}: {e}"));
    for s in &plan.statements {
        assert!(s.binds.len() <= 100, "D1's bind limit");
    }
    let rows = plan
        .statements
        .iter()
        .map(|s| common::rows(conn, s))
        .collect();
    (query::assemble(&plan, rows).unwrap(), plan.query_path())
}

#[test]
fn traffic_by_hour_matches_the_oracle_in_three_zones_with_and_without_filters() {
    let events = fixture();
    let mut conn = common::migrated_db();
    for chunk in events.chunks(400) {
        common::apply(&mut conn, chunk, NOW).unwrap();
    }
    let zones: [(&str, &dyn TimeZone); 3] = [
        ("UTC", &FixedOffset(0)),
        ("Europe/Madrid", &Madrid),
        ("Asia/Kolkata", &KOLKATA),
    ];
    // A week across the DST change, the day of the change, and the two recent days whose
    // per-dimension hourly rows are kept.
    let ranges = [
        ("2025-03-27", "2025-04-02"),
        ("2025-03-30", "2025-03-30"),
        ("2025-04-01", "2025-04-02"),
    ];
    let filter_sets: [(&[(&str, &str)], &str); 5] = [
        (&[], "rollups"),
        (&[("domain", "a.example")], "rollups"),
        (&[("browser", "chrome")], "?"),
        (&[("pathname", "/pricing")], "?"),
        (&[("browser", "firefox"), ("os", "ios")], "visits"),
    ];
    let mut nonzero_hours = 0;
    let mut paths = BTreeMap::new();
    for tenant in ["k1", "k2"] {
        for (zone, tz) in zones {
            for (from, to) in ranges {
                for (filters, want_path) in filter_sets {
                    let mut params = vec![("date_from", from), ("date_to", to)];
                    params.extend(filters.iter().copied());
                    let (out, path) = get(&conn, tenant, tz, "traffic_by_hour", &params);
                    let want = oracle(&events, tenant, tz, from, to, filters);
                    let got: Vec<(i64, i64, i64)> = out
                        .data
                        .iter()
                        .map(|r| {
                            let n = |k: &str| r[k].as_i64().unwrap();
                            (n("hour"), n("visits"), n("pageviews"))
                        })
                        .collect();
                    let want: Vec<(i64, i64, i64)> = want
                        .iter()
                        .enumerate()
                        .map(|(h, (v, p))| (h as i64, *v, *p))
                        .collect();
                    assert_eq!(got, want, "{tenant} {zone} {from}..{to} {filters:?}");
                    nonzero_hours += got.iter().filter(|r| r.1 > 0).count();
                    let path = path.unwrap();
                    if want_path != "?" {
                        assert_eq!(path, want_path, "{filters:?}");
                    }
                    paths.insert((zone, filters.len(), from), path);
                }
            }
        }
    }
    assert!(nonzero_hours > 500, "the fixture has traffic in most hours");
    // One filter: rollups over the recent days, the visit scan over older ones.
    for (zone, _) in zones {
        assert_eq!(paths[&(zone, 1, "2025-04-01")], "rollups", "{zone}");
        assert_eq!(paths[&(zone, 1, "2025-03-27")], "visits", "{zone}");
    }
    // k2 has traffic in a few hours only: the rest are zero rows, all 24 present.
    let (out, _) = get(
        &conn,
        "k2",
        &Madrid,
        "traffic_by_hour",
        &[("date_from", "2025-04-02")],
    );
    assert_eq!(out.data.len(), 24);
    assert!(out.data.iter().filter(|r| r["visits"] == 0).count() >= 12);
    let names: Vec<(&str, &str)> = out
        .meta
        .iter()
        .map(|c| (c.name.as_str(), c.r#type.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("hour", "UInt8"),
            ("visits", "UInt64"),
            ("pageviews", "UInt64")
        ]
    );
}

#[test]
fn traffic_by_hour_unfiltered_reads_hourly_rows_not_visits() {
    let events = fixture();
    let mut conn = common::migrated_db();
    common::apply(&mut conn, &events, NOW).unwrap();
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "k1".to_owned())].into();
    let params: Vec<(String, String)> = vec![("date_from".into(), "2025-03-27".into())];
    let plan = query::plan(&Request {
        pipe: "traffic_by_hour",
        params: &params,
        tenant: &TenantId::for_tests("k1").unwrap(),
        fixed: &fixed,
        now_secs: NOW,
        tz: &Madrid,
    })
    .unwrap();
    let sql = &plan.statements[0].sql;
    assert!(
        sql.contains("FROM visit_hourly") && !sql.contains("sessions"),
        "{sql}"
    );
    // The fixed domain wins over the request's.
    let fixed: BTreeMap<String, String> = [
        ("tenant_id".to_owned(), "k1".to_owned()),
        ("domain".to_owned(), "b.example".to_owned()),
    ]
    .into();
    let params: Vec<(String, String)> = vec![
        ("date_from".into(), "2025-03-27".into()),
        ("domain".into(), "a.example".into()),
    ];
    let plan = query::plan(&Request {
        pipe: "traffic_by_hour",
        params: &params,
        tenant: &TenantId::for_tests("k1").unwrap(),
        fixed: &fixed,
        now_secs: NOW,
        tz: &Madrid,
    })
    .unwrap();
    let rows = vec![common::rows(&conn, &plan.statements[0])];
    let got: i64 = query::assemble(&plan, rows)
        .unwrap()
        .data
        .iter()
        .map(|r| r["visits"].as_i64().unwrap())
        .sum();
    let want: i64 = oracle(
        &events,
        "k1",
        &Madrid,
        "2025-03-27",
        "2025-04-02",
        &[("domain", "b.example")],
    )
    .iter()
    .map(|h| h.0)
    .sum();
    assert_eq!(got, want);
}

// ---------- analytics_hits ----------

/// The archive as the consumer writes it: key → object text.
fn archive_of(events: &[EnrichedEvent]) -> BTreeMap<String, String> {
    let mut objects: BTreeMap<String, String> = BTreeMap::new();
    for (i, chunk) in events.chunks(37).enumerate() {
        let batch = format!("b{i:04}");
        let mut by_key: BTreeMap<String, Vec<&EnrichedEvent>> = BTreeMap::new();
        for e in chunk {
            let t = e.ts / 1000;
            let key = format!(
                "events/{}/{}/{:02}/g{:04}.ndjson",
                e.tenant_id,
                starling_core::time::day_string(t),
                t % DAY / 3600,
                i / 3
            );
            by_key.entry(key).or_default().push(e);
        }
        for (key, evs) in by_key {
            archive::append_events(objects.entry(key.clone()).or_default(), &batch, &evs);
            // Every fifth batch failed in its group and was written again alone: read once.
            if i % 5 == 0 {
                let alone = key.replace(&format!("g{:04}", i / 3), &format!("z-{batch}"));
                archive::append_events(objects.entry(alone).or_default(), &batch, &evs);
            }
        }
    }
    objects
}

/// What the worker does: day folders newest first, their hour folders newest first, each folder's
/// objects in key order, until the page is full or the object budget is spent.
fn read_hits(
    objects: &BTreeMap<String, String>,
    tenant: &str,
    tz: &dyn TimeZone,
    params: &[(&str, &str)],
) -> Result<(Output, bool, usize), query::QueryError> {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), tenant.to_owned())].into();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let plan = query::plan(&Request {
        pipe: "analytics_hits",
        params: &params,
        tenant: &TenantId::for_tests(tenant).unwrap(),
        fixed: &fixed,
        now_secs: NOW,
        tz,
    })?;
    assert!(plan.statements.is_empty());
    let scan = plan.archive_scan().unwrap();
    let mut c = scan.collector();
    let mut listed = 0;
    'days: for day in scan.day_prefixes() {
        // A delimited listing of the day folder.
        let mut folders: Vec<String> = objects
            .keys()
            .filter(|k| k.starts_with(&day))
            .map(|k| k[..day.len() + 3].to_owned())
            .collect();
        folders.dedup();
        listed += 1;
        for (_, folder) in scan.newest_first(&folders) {
            let keys: Vec<&String> = objects.keys().filter(|k| k.starts_with(folder)).collect();
            listed += 1;
            if keys.len() > c.objects_left() {
                c.stop_at_budget();
                break 'days;
            }
            let texts: Vec<String> = keys.iter().map(|k| objects[*k].clone()).collect();
            if c.add_folder(&texts) {
                break 'days;
            }
        }
    }
    let truncated = c.truncated();
    Ok((c.finish(tz), truncated, listed))
}

/// Page hits of `tenant` in `[start, end)` matching `pred`, newest first (ties in archive order).
fn oracle_hits<'a>(
    events: &'a [EnrichedEvent],
    tenant: &str,
    start: i64,
    end: i64,
    pred: impl Fn(&EnrichedEvent) -> bool,
) -> Vec<&'a EnrichedEvent> {
    let mut out: Vec<&EnrichedEvent> = events
        .iter()
        .filter(|e| {
            e.tenant_id == tenant
                && e.action == "page_hit"
                && (start..end).contains(&(e.ts / 1000))
                && pred(e)
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.ts));
    out
}

fn ids(out: &Output) -> Vec<String> {
    out.data
        .iter()
        .map(|r| format!("{} {} {}", r["timestamp"], r["session_id"], r["pathname"]))
        .collect()
}

fn oracle_ids(hits: &[&EnrichedEvent], tz: &dyn TimeZone) -> Vec<String> {
    hits.iter()
        .map(|e| {
            let l = e.ts / 1000 + i64::from(tz.offset_secs(e.ts / 1000));
            let s = l.rem_euclid(DAY);
            let days = l.div_euclid(DAY);
            // 2025 only: month and day from the day of the year.
            let mut doy = days - date_of("2025-01-01");
            let months = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            let mut m = 0;
            while doy >= months[m] {
                doy -= months[m];
                m += 1;
            }
            format!(
                "\"2025-{:02}-{:02} {:02}:{:02}:{:02}\" \"{}\" \"{}\"",
                m + 1,
                doy + 1,
                s / 3600,
                s % 3600 / 60,
                s % 60,
                e.session_id.as_deref().unwrap(),
                e.pathname
            )
        })
        .collect()
}

#[test]
fn analytics_hits_pages_newest_first_with_like_filter_and_reads_each_batch_once() {
    let events = fixture();
    let objects = archive_of(&events);
    let day = date_of("2025-04-01");
    for (zone, tz) in [
        ("UTC", &FixedOffset(0) as &dyn TimeZone),
        ("Europe/Madrid", &Madrid),
    ] {
        let start = local_midnight(tz, day);
        let end = local_midnight(tz, day + 2);
        for like in [None, Some("%\"pathname\":\"/pricing\"%"), Some("%\"h\":2}")] {
            let want = oracle_hits(&events, "k1", start, end, |e| {
                like.is_none_or(|l| archive_like(&e.payload, l))
            });
            assert!(
                want.len() > 30,
                "{zone} {like:?}: the fixture has hits to page through"
            );
            let want = oracle_ids(&want, tz);
            let mut got = Vec::new();
            for page in 0.. {
                let page = page.to_string();
                let mut params = vec![
                    ("from_date", "2025-04-01"),
                    ("to_date", "2025-04-02"),
                    ("limit", "13"),
                    ("page", page.as_str()),
                ];
                if let Some(l) = like {
                    params.push(("like_filter", l));
                }
                let (out, truncated, _) = read_hits(&objects, "k1", tz, &params).unwrap();
                assert!(!truncated);
                assert!(out.data.len() <= 13);
                let n = out.data.len();
                got.extend(ids(&out));
                if n < 13 {
                    break;
                }
            }
            assert_eq!(got, want, "{zone} {like:?}");
        }
    }
}

/// The oracle's reading of the two patterns used.
fn archive_like(payload: &str, pattern: &str) -> bool {
    match pattern {
        "%\"pathname\":\"/pricing\"%" => payload.contains("\"pathname\":\"/pricing\""),
        "%\"h\":2}" => payload.ends_with("\"h\":2}"),
        other => panic!("{other}"),
    }
}

#[test]
fn analytics_hits_stops_once_the_page_is_full_and_sees_only_its_tenant() {
    let events = fixture();
    let objects = archive_of(&events);
    // The newest hits only: a handful of folders listed, not the whole range.
    let (out, _, listed) = read_hits(
        &objects,
        "k1",
        &FixedOffset(0),
        &[
            ("from_date", "2025-03-27"),
            ("to_date", "2025-04-02"),
            ("limit", "5"),
        ],
    )
    .unwrap();
    assert_eq!(out.data.len(), 5);
    assert!(
        listed <= 4,
        "read newest first and stopped: {listed} listings"
    );
    let want = oracle_ids(
        &oracle_hits(&events, "k1", 0, i64::MAX, |_| true)[..5],
        &FixedOffset(0),
    );
    assert_eq!(ids(&out), want);
    // Every row is the tenant's; k2's folders sit next to k1's and are never read for k1.
    for tenant in ["k1", "k2"] {
        let (out, _, _) =
            read_hits(&objects, tenant, &FixedOffset(0), &[("limit", "100")]).unwrap();
        assert!(!out.data.is_empty());
        assert!(out.data.iter().all(|r| r["tenant_id"] == tenant));
    }
    let scan_k1 = {
        let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "k1".to_owned())].into();
        query::plan(&Request {
            pipe: "analytics_hits",
            params: &[],
            tenant: &TenantId::for_tests("k1").unwrap(),
            fixed: &fixed,
            now_secs: NOW,
            tz: &FixedOffset(0),
        })
        .unwrap()
    };
    let scan = scan_k1.archive_scan().unwrap();
    assert!(scan
        .day_prefixes()
        .iter()
        .all(|p| p.starts_with("events/k1/")));
    assert_eq!(scan.folder_hour("events/k2/2025-04-02/10/"), None);
    assert_eq!(scan.folder_hour("events/k1x/2025-04-02/10/"), None);
    assert_eq!(
        scan.folder_hour("events/k1/2025-04-02/10/"),
        Some(1_743_588_000)
    );
    // No IP or user agent in any column, and the kit's columns in order.
    let (out, _, _) = read_hits(&objects, "k1", &FixedOffset(0), &[("limit", "100")]).unwrap();
    let names: Vec<&str> = out.meta.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "timestamp",
            "action",
            "version",
            "session_id",
            "tenant_id",
            "domain",
            "location",
            "referrer",
            "pathname",
            "href",
            "current_domain",
            "device",
            "browser"
        ]
    );
    for r in out.data.iter().filter(|r| r["device"] != "bot") {
        assert!(r.values().all(Value::is_string));
        assert!(["chrome", "firefox", "safari"].contains(&r["browser"].as_str().unwrap()));
        assert_eq!(r["current_domain"], r["domain"]);
    }
    // A budget smaller than the folders needed: what was found, flagged.
    let many: BTreeMap<String, String> = objects
        .iter()
        .flat_map(|(k, v)| (0..300).map(move |i| (format!("{k}.{i:03}"), v.clone())))
        .filter(|(k, _)| k.starts_with("events/k1/2025-04-02/"))
        .collect();
    let (_, truncated, _) = read_hits(&many, "k1", &FixedOffset(0), &[]).unwrap();
    assert!(truncated);
}

#[test]
fn analytics_hits_bounds_are_400s_naming_the_field() {
    let objects = BTreeMap::new();
    let utc = FixedOffset(0);
    for (params, field) in [
        (&[("limit", "101")][..], "limit"),
        (&[("limit", "0")][..], "limit"),
        (&[("limit", "100"), ("page", "10")][..], "page"),
        (
            &[("from_date", "2025-03-20"), ("to_date", "2025-04-02")][..],
            "to_date",
        ),
        (
            &[("from_date", "2025-04-03"), ("to_date", "2025-04-02")][..],
            "from_date",
        ),
        (&[("from_date", "yesterday")][..], "from_date"),
    ] {
        let e = read_hits(&objects, "k1", &utc, params).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(
            e.message().contains(&format!("'{field}'")),
            "{}",
            e.message()
        );
    }
    // Defaults: today, 20 rows; an empty archive is an empty page.
    let (out, truncated, _) = read_hits(&objects, "k1", &utc, &[]).unwrap();
    assert!(out.data.is_empty() && !truncated);
    assert!(read_hits(&objects, "k1", &utc, &[("limit", "100"), ("page", "9")]).is_ok());
}
