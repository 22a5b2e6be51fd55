//! The query planner against an independent oracle.
//!
//! Deterministic raw events for three tenants over ten days go through `rollup::statements_for` into an
//! in-memory SQLite loaded with the real D1 migrations. Every endpoint is then planned, executed with
//! rusqlite and assembled, and compared with metrics computed directly from the raw events here, with
//! plain iterators (no planner code). The window crosses a DST change of a test zone.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection};
use serde_json::{json, Map, Value};
use starling_core::event::EnrichedEvent;
use starling_core::query::{self, FixedOffset, Output, Request, TimeZone};
use starling_core::sql::Statement;

mod common;
use common::{bind, Rng};

type Row = Map<String, Value>;

/// 2025-04-02 12:20:00 UTC.
const NOW: i64 = 1_743_596_400;
/// 2025-03-23 00:00:00 UTC: first day with events.
const START: i64 = 1_742_688_000;
const TENANTS: [&str; 3] = ["t1", "t2", "t3"];

/// A European-style zone: +1h, then +2h from 2025-03-30 01:00 UTC (inside the fixture's ten days).
struct Dst;

impl TimeZone for Dst {
    fn offset_secs(&self, utc: i64) -> i32 {
        if utc >= 1_743_296_400 {
            7200
        } else {
            3600
        }
    }
}

// ---------- fixture ----------

fn domains_of(tenant: &str) -> Vec<String> {
    match tenant {
        "t1" => vec!["a.t1.example".into(), "b.t1.example".into()],
        "t2" => vec!["shop.t2.example".into()],
        _ => vec![
            "blog.t3.example".into(),
            "docs.t3.example".into(),
            "c.t3.example".into(),
        ],
    }
}

fn blank(tenant: &str, ts_secs: i64) -> EnrichedEvent {
    EnrichedEvent {
        ts: ts_secs * 1000,
        tenant_id: tenant.into(),
        action: "page_hit".into(),
        locale: "en-US".into(),
        payload: "{}".into(),
        ..Default::default()
    }
}

fn fixture() -> Vec<EnrichedEvent> {
    let mut rng = Rng(42);
    let mut out = Vec::new();
    for (ti, tenant) in TENANTS.iter().enumerate() {
        let domains = domains_of(tenant);
        let pages: Vec<String> = ["/", "/pricing", "/docs", "/blog/x", "/about", "/signup"]
            .iter()
            .map(|p| {
                if *p == "/" {
                    "/".into()
                } else {
                    format!("/{tenant}{p}")
                }
            })
            .collect();
        let sessions = 160 + 60 * ti;
        for s in 0..sessions {
            // Mostly spread over the ten days; a few in the last 40 minutes for the realtime pipes;
            // some starting at hh:55 so they span an hour boundary.
            let mut ts = if s % 15 == 0 {
                NOW - 2400 + rng.below(2300) as i64
            } else {
                START + rng.below((NOW - START - 3600) as u64) as i64
            };
            if s % 7 == 0 {
                ts = ts - ts.rem_euclid(3600) + 3300 + rng.below(240) as i64;
            }
            // Some start just before UTC midnight and continue after it.
            if s % 11 == 0 && ts < NOW - 86_400 {
                ts = ts - ts.rem_euclid(86_400) + 86_400 - 120 - rng.below(400) as i64;
            }
            let domain = domains[rng.below(domains.len() as u64) as usize].clone();
            // Visitor ids are per domain and change daily (the salt), as in production.
            let visitor = format!(
                "{tenant}-v{}-{domain}-{}",
                rng.below(20),
                ts.div_euclid(86_400)
            );
            let source = rng.pick(&[
                "",
                "",
                "google.com",
                "news.ycombinator.com",
                "t.co",
                "duckduckgo.com",
            ]);
            let (us, um, uc) = match rng.below(6) {
                0 => ("newsletter", "email", "spring_sale"),
                1 => ("twitter", "social", "launch"),
                2 => ("google", "cpc", "launch"),
                3 => ("google", "cpc", ""),
                _ => ("", "", ""),
            };
            let browser = rng.pick(&["chrome", "firefox", "safari", "edge", "chrome"]);
            let os = rng.pick(&["windows", "macos", "linux", "ios", "android"]);
            let device = rng.pick(&["desktop", "desktop", "mobile", "tablet"]);
            let country = rng.pick(&["DE", "US", "FR", "ES", "", "JP"]);
            let hits = 1 + rng.below(5);
            let key = format!("{tenant}-s{s}");
            for h in 0..hits {
                if ts > NOW {
                    break;
                }
                let mut e = blank(tenant, ts);
                e.ts += rng.below(1000) as i64;
                e.domain = domain.clone();
                e.session_id = Some(key.clone());
                e.visitor_id = visitor.clone();
                e.pathname = if h == 0 && s % 3 == 0 {
                    "/".into()
                } else {
                    pages[rng.below(pages.len() as u64) as usize].clone()
                };
                e.href = format!("https://{domain}{}", e.pathname);
                e.source = source.into();
                (e.utm_source, e.utm_medium, e.utm_campaign) = (us.into(), um.into(), uc.into());
                (e.browser, e.os, e.device, e.country) =
                    (browser.into(), os.into(), device.into(), country.into());
                out.push(e);
                ts += 10 + rng.below(900) as i64;
            }
            // Custom events, with names that look like LIKE wildcards.
            if s % 4 == 0 {
                let mut e = blank(tenant, (ts - 5).min(NOW));
                e.domain = domain.clone();
                e.session_id = Some(key.clone());
                e.visitor_id = visitor.clone();
                e.action = rng
                    .pick(&[
                        "signup",
                        "add_to_cart",
                        "50%_off",
                        "500_items",
                        "add-to-cart",
                    ])
                    .into();
                e.payload = format!("{{\"n\":{s},\"tenant\":\"{tenant}\"}}");
                out.push(e);
            }
            // Bots: never in any metric.
            if s % 10 == 0 {
                let mut e = blank(tenant, ts.min(NOW));
                e.domain = domain.clone();
                e.session_id = Some(format!("{tenant}-bot{s}"));
                e.visitor_id = "bot".into();
                e.pathname = format!("/{tenant}/bot-only");
                e.is_bot = true;
                e.device = "bot".into();
                e.browser = "bot".into();
                out.push(e);
            }
        }
    }
    // The queue delivers roughly in time order (open visits are pruned hours after their last hit).
    out.sort_by_key(|e| e.ts);
    out
}

// ---------- SQLite ----------

fn db(events: &[EnrichedEvent]) -> Connection {
    let mut conn = common::migrated_db();
    // Several batches, as the queue delivers them; visits continue across batches.
    for chunk in events.chunks(700) {
        common::apply(&mut conn, chunk, NOW).unwrap();
    }
    conn
}

fn rows(conn: &Connection, s: &Statement) -> Vec<Row> {
    // D1 refuses a statement with more than 100 bound parameters.
    assert!(s.binds.len() <= 100, "{} binds: {}", s.binds.len(), s.sql);
    let mut stmt = conn
        .prepare(&s.sql)
        .unwrap_or_else(|e| panic!("{e}: {}", s.sql));
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut out = Vec::new();
    let mut q = stmt
        .query(params_from_iter(s.binds.iter().map(bind)))
        .unwrap();
    while let Some(r) = q.next().unwrap() {
        let mut row = Row::new();
        for (i, n) in names.iter().enumerate() {
            let v = match r.get_ref(i).unwrap() {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => i.into(),
                ValueRef::Real(f) => f.into(),
                ValueRef::Text(t) => String::from_utf8(t.to_vec()).unwrap().into(),
                ValueRef::Blob(_) => panic!("blob"),
            };
            row.insert(n.clone(), v);
        }
        out.push(row);
    }
    out
}

struct Api<'a> {
    conn: &'a Connection,
}

impl Api<'_> {
    fn get(&self, pipe: &str, tenant: &str, params: &[(&str, &str)], tz: &dyn TimeZone) -> Output {
        let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), tenant.to_owned())]
            .into_iter()
            .collect();
        self.get_fixed(pipe, &fixed, params, tz)
    }

    fn get_fixed(
        &self,
        pipe: &str,
        fixed: &BTreeMap<String, String>,
        params: &[(&str, &str)],
        tz: &dyn TimeZone,
    ) -> Output {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let plan = query::plan(&Request {
            pipe,
            params: &params,
            tenant: &starling_core::claims::TenantId::for_tests(&fixed["tenant_id"])
                .expect("valid tenant"),
            fixed,
            now_secs: NOW,
            tz,
        })
        .unwrap_or_else(|e| panic!("{pipe} {params:?}: {e}"));
        let results = plan.statements.iter().map(|s| rows(self.conn, s)).collect();
        query::assemble(&plan, results).unwrap()
    }
}

// ---------- the oracle ----------

fn civil(days: i64) -> (i64, u32, u32) {
    // Walk years and months: slow and obviously right.
    let (mut y, mut d) = (1970i64, days);
    loop {
        let len = if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
            366
        } else {
            365
        };
        if d < len {
            break;
        }
        d -= len;
        y += 1;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let months = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut m = 0;
    while d >= months[m] {
        d -= months[m];
        m += 1;
    }
    (y, m as u32 + 1, d as u32 + 1)
}

fn date_label(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn datetime_label(secs: i64) -> String {
    let s = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02}",
        date_label(secs.div_euclid(86_400)),
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn label_days(label: &str) -> i64 {
    (19_000..40_000).find(|d| date_label(*d) == label).unwrap()
}

struct Session {
    tenant: String,
    domain: String,
    visitor: String,
    first: i64,
    last: i64,
    pageviews: i64,
    entry: String,
    exit: String,
    attrs: BTreeMap<&'static str, String>,
    /// pathname → (first hit, hits)
    pages: BTreeMap<String, (i64, i64)>,
    hit_times: Vec<i64>,
}

struct Oracle {
    events: Vec<EnrichedEvent>,
    sessions: Vec<Session>,
}

/// Filters as `(param, value)`; `domain` and `pathname` included.
type Filters<'a> = &'a [(&'a str, &'a str)];

impl Oracle {
    fn new(events: Vec<EnrichedEvent>) -> Self {
        let mut by_key: BTreeMap<(String, String), Vec<&EnrichedEvent>> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| !e.is_bot && e.action == "page_hit")
        {
            by_key
                .entry((e.tenant_id.clone(), e.session_id.clone().unwrap()))
                .or_default()
                .push(e);
        }
        let sessions = by_key
            .into_values()
            .map(|mut hits| {
                hits.sort_by_key(|e| e.ts);
                let (f, l) = (hits[0], hits[hits.len() - 1]);
                let mut pages: BTreeMap<String, (i64, i64)> = BTreeMap::new();
                for h in &hits {
                    let p = pages.entry(h.pathname.clone()).or_insert((h.ts / 1000, 0));
                    p.0 = p.0.min(h.ts / 1000);
                    p.1 += 1;
                }
                let attrs = [
                    ("source", f.source.clone()),
                    ("browser", f.browser.clone()),
                    ("os", f.os.clone()),
                    ("device", f.device.clone()),
                    ("country", f.country.clone()),
                    ("utm_source", f.utm_source.clone()),
                    ("utm_medium", f.utm_medium.clone()),
                    ("utm_campaign", f.utm_campaign.clone()),
                ]
                .into_iter()
                .collect();
                Session {
                    tenant: f.tenant_id.clone(),
                    domain: f.domain.clone(),
                    visitor: f.visitor_id.clone(),
                    first: f.ts / 1000,
                    last: l.ts / 1000,
                    pageviews: hits.len() as i64,
                    entry: f.pathname.clone(),
                    exit: l.pathname.clone(),
                    attrs,
                    pages,
                    hit_times: hits.iter().map(|h| h.ts / 1000).collect(),
                }
            })
            .collect();
        Self { events, sessions }
    }

    /// Sessions of a tenant passing the session-level filters (`pathname`: viewed that page).
    fn sessions<'a>(
        &'a self,
        tenant: &'a str,
        filters: Filters<'a>,
    ) -> impl Iterator<Item = &'a Session> + 'a {
        self.sessions.iter().filter(move |s| {
            s.tenant == tenant
                && filters.iter().all(|(k, v)| match *k {
                    "domain" => s.domain == *v,
                    "pathname" => s.pages.contains_key(*v),
                    "referrer" => s.attrs["source"] == *v,
                    "location" => s.attrs["country"] == *v,
                    other => s.attrs[other] == *v,
                })
        })
    }

    fn kpis(
        &self,
        tenant: &str,
        tz: &dyn TimeZone,
        from: &str,
        to: &str,
        previous: bool,
        filters: Filters,
    ) -> Vec<Row> {
        let (from, to) = (label_days(from), label_days(to));
        let hourly = from == to;
        let local = |t: i64| local_rule(tz, t);
        let bucket_of = |t: i64| {
            if hourly {
                datetime_label(local(t) - local(t).rem_euclid(3600))
            } else {
                date_label(local(t).div_euclid(86_400))
            }
        };
        let now_local = local(NOW);
        let labels: Vec<String> = if hourly {
            (0..24)
                .map(|h| from * 86_400 + h * 3600)
                .filter(|l| *l <= now_local - now_local.rem_euclid(3600))
                .map(datetime_label)
                .collect()
        } else {
            (from..=to)
                .filter(|d| *d <= now_local.div_euclid(86_400))
                .map(date_label)
                .collect()
        };
        let period = to - from + 1;
        let shift = |label: &str| -> String {
            let d = label_days(&label[..10]) - period;
            format!("{}{}", date_label(d), &label[10..])
        };
        let stats = |label: &str| {
            let ss: Vec<&Session> = self
                .sessions(tenant, filters)
                .filter(|s| bucket_of(s.first) == label)
                .collect();
            metrics(&ss)
        };
        labels
            .iter()
            .map(|label| {
                let mut row = Row::new();
                row.insert("date".into(), label.as_str().into());
                let cur = stats(label);
                for (n, v, d) in cur {
                    row.insert(n.into(), num(v, d));
                }
                if previous {
                    let prev = stats(&shift(label));
                    for (n, v, d) in prev {
                        row.insert(format!("previous_{n}"), num(v, d));
                    }
                    for ((n, c, _), (_, p, _)) in cur.iter().zip(prev.iter()) {
                        row.insert(format!("{n}_growth_percentage"), growth(*c, *p).into());
                    }
                }
                row
            })
            .collect()
    }

    /// `kpis_summary`: the same metrics over the whole range (visitors unique over it).
    fn kpis_summary(
        &self,
        tenant: &str,
        tz: &dyn TimeZone,
        from: &str,
        to: &str,
        previous: bool,
        filters: Filters,
    ) -> Vec<Row> {
        let (from, to) = (label_days(from), label_days(to));
        let period = to - from + 1;
        let day = |t: i64| local_rule(tz, t).div_euclid(86_400);
        let over = |lo: i64, hi: i64| {
            let ss: Vec<&Session> = self
                .sessions(tenant, filters)
                .filter(|s| (lo..=hi).contains(&day(s.first)))
                .collect();
            metrics(&ss)
        };
        let cur = over(from, to);
        let mut row = Row::new();
        row.insert("date".into(), date_label(from).into());
        for (n, v, d) in cur {
            row.insert(n.into(), num(v, d));
        }
        if previous {
            let prev = over(from - period, to - period);
            for (n, v, d) in prev {
                row.insert(format!("previous_{n}"), num(v, d));
            }
            for ((n, c, _), (_, p, _)) in cur.iter().zip(prev.iter()) {
                row.insert(format!("{n}_growth_percentage"), growth(*c, *p).into());
            }
        }
        vec![row]
    }

    /// A top list. `key` maps a session (or, for pages, a session and a page) to the key columns.
    #[allow(clippy::too_many_arguments)]
    fn top(
        &self,
        pipe: &str,
        tenant: &str,
        tz: &dyn TimeZone,
        from: &str,
        to: &str,
        previous: bool,
        filters: Filters,
        skip: usize,
        limit: usize,
    ) -> Vec<Row> {
        let (from, to) = (label_days(from), label_days(to));
        let period = to - from + 1;
        let day = |t: i64| local_rule(tz, t).div_euclid(86_400);
        // (key columns, in the current window, hits)
        type Item<'k> = (Vec<(&'k str, String)>, bool, i64);
        let mut items: Vec<Item> = Vec::new();
        if pipe == "top_pages" {
            let session_filters: Vec<(&str, &str)> = filters
                .iter()
                .copied()
                .filter(|(k, _)| *k != "pathname" && *k != "domain")
                .collect();
            let domain = filters.iter().find(|(k, _)| *k == "domain").map(|f| f.1);
            let path = filters.iter().find(|(k, _)| *k == "pathname").map(|f| f.1);
            for s in self.sessions(tenant, &session_filters) {
                if domain.is_some_and(|d| d != s.domain) {
                    continue;
                }
                for (p, (first, hits)) in &s.pages {
                    if path.is_some_and(|x| x != p) {
                        continue;
                    }
                    let d = day(*first);
                    if (from..=to).contains(&d) {
                        items.push((vec![("pathname", p.clone())], true, *hits));
                    } else if previous && (from - period..from).contains(&d) {
                        items.push((vec![("pathname", p.clone())], false, *hits));
                    }
                }
            }
        } else {
            for s in self.sessions(tenant, filters) {
                let keys: Vec<(&str, String)> = match pipe {
                    "top_sources" => vec![("referrer", s.attrs["source"].clone())],
                    "top_browsers" => vec![("browser", s.attrs["browser"].clone())],
                    "top_devices" => vec![("device", s.attrs["device"].clone())],
                    "top_locations" => vec![("location", s.attrs["country"].clone())],
                    "top_os" => vec![("os", s.attrs["os"].clone())],
                    "entry_pages" => vec![("pathname", s.entry.clone())],
                    "exit_pages" => vec![("pathname", s.exit.clone())],
                    "top_campaigns" if s.attrs["utm_campaign"].is_empty() => continue,
                    "top_campaigns" => vec![
                        ("utm_campaign", s.attrs["utm_campaign"].clone()),
                        ("utm_source", s.attrs["utm_source"].clone()),
                        ("utm_medium", s.attrs["utm_medium"].clone()),
                    ],
                    other => panic!("{other}"),
                };
                let d = day(s.first);
                if (from..=to).contains(&d) {
                    items.push((keys, true, s.pageviews));
                } else if previous && (from - period..from).contains(&d) {
                    items.push((keys, false, s.pageviews));
                }
            }
        }
        let mut groups: BTreeMap<Vec<(&str, String)>, [i64; 4]> = BTreeMap::new();
        for (k, cur, hits) in items {
            let g = groups.entry(k).or_default();
            if cur {
                g[0] += 1;
                g[1] += hits;
            } else {
                g[2] += 1;
                g[3] += hits;
            }
        }
        let mut list: Vec<_> = groups.into_iter().filter(|(_, g)| g[0] > 0).collect();
        list.sort_by(|a, b| {
            b.1[0]
                .cmp(&a.1[0])
                .then_with(|| a.0.iter().map(|x| &x.1).cmp(b.0.iter().map(|x| &x.1)))
        });
        list.into_iter()
            .skip(skip)
            .take(limit)
            .map(|(keys, g)| {
                let mut row = Row::new();
                for (k, v) in keys {
                    row.insert(k.into(), v.into());
                }
                row.insert("visits".into(), g[0].into());
                row.insert("hits".into(), g[1].into());
                if previous {
                    row.insert("previous_visits".into(), g[2].into());
                    row.insert("previous_hits".into(), g[3].into());
                    row.insert(
                        "visits_growth_percentage".into(),
                        growth(g[0] as f64, g[2] as f64).into(),
                    );
                    row.insert(
                        "hits_growth_percentage".into(),
                        growth(g[1] as f64, g[3] as f64).into(),
                    );
                }
                row
            })
            .collect()
    }

    fn current_visitors(&self, tenant: &str, domain: Option<&str>) -> Vec<Row> {
        let n = self
            .sessions
            .iter()
            .filter(|s| s.tenant == tenant && domain.is_none_or(|d| d == s.domain))
            .filter(|s| s.hit_times.iter().any(|t| (NOW - 300..=NOW).contains(t)))
            .count();
        vec![obj(json!({ "visits": n }))]
    }

    fn trend(&self, tenant: &str, tz: &dyn TimeZone) -> Vec<Row> {
        let last = NOW - NOW % 60;
        (0..30)
            .map(|i| {
                let m = last - (29 - i) * 60;
                let n = self
                    .sessions
                    .iter()
                    .filter(|s| s.tenant == tenant && s.hit_times.iter().any(|t| t - t % 60 == m))
                    .count();
                obj(json!({ "t": datetime_label(m + i64::from(tz.offset_secs(m))), "visits": n }))
            })
            .collect()
    }

    fn domains(&self, tenant: &str) -> Vec<Row> {
        let mut by: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
        for e in self
            .events
            .iter()
            .filter(|e| e.tenant_id == tenant && !e.is_bot && e.action == "page_hit")
        {
            let t = e.ts / 1000;
            let d = by.entry(&e.domain).or_insert((t, t, 0));
            (d.0, d.1, d.2) = (d.0.min(t), d.1.max(t), d.2 + 1);
        }
        let mut list: Vec<_> = by.into_iter().collect();
        list.sort_by(|a, b| b.1 .2.cmp(&a.1 .2).then(a.0.cmp(b.0)));
        list.into_iter()
            .map(|(d, (f, l, n))| obj(json!({"domain": d, "first_seen": datetime_label(f), "last_seen": datetime_label(l), "total_hits": n})))
            .collect()
    }

    fn actions(&self, tenant: &str, filter: Option<&str>) -> Vec<Row> {
        let mut by: BTreeMap<(&str, &str), (String, i64, i64)> = BTreeMap::new();
        for e in self
            .events
            .iter()
            .filter(|e| e.tenant_id == tenant && !e.is_bot)
        {
            if filter.is_some_and(|f| !e.action.contains(f)) {
                continue;
            }
            let t = e.ts / 1000;
            let a = by
                .entry((&e.domain, &e.action))
                .or_insert((String::new(), i64::MIN, 0));
            if t >= a.1 {
                (a.0, a.1) = (e.payload.clone(), t);
            }
            a.2 += 1;
        }
        let mut list: Vec<_> = by.into_iter().collect();
        list.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(&b.0)));
        list.into_iter()
            .map(|((d, a), (p, l, n))| {
                obj(json!({"domain": d, "action": a, "last_payload": p, "last_seen": datetime_label(l), "total_occurrences": n}))
            })
            .collect()
    }
}

/// The local time a visit starting at `t` is bucketed at. Zones with whole-hour offsets: its local time.
/// Others (the README's rule): the local time of the start of its UTC hour, rounded up to the hour, so
/// local days and hours run between whole UTC hours.
fn local_rule(tz: &dyn TimeZone, t: i64) -> i64 {
    let off = i64::from(tz.offset_secs(t));
    if off % 3600 == 0 {
        return t + off;
    }
    let l = t - t.rem_euclid(3600) + off;
    l + (3600 - l.rem_euclid(3600)) % 3600
}

/// The kpis metrics of a set of sessions, in output order.
fn metrics(ss: &[&Session]) -> [(&'static str, f64, Option<i32>); 6] {
    let visits = ss.len() as f64;
    let div = |n: f64| if visits == 0.0 { 0.0 } else { n / visits };
    let pageviews = ss.iter().map(|s| s.pageviews).sum::<i64>() as f64;
    [
        ("visits", visits, None),
        ("pageviews", pageviews, None),
        (
            "bounce_rate",
            div(ss.iter().filter(|s| s.pageviews == 1).count() as f64),
            Some(4),
        ),
        (
            "avg_session_sec",
            div(ss.iter().map(|s| s.last - s.first).sum::<i64>() as f64),
            Some(2),
        ),
        (
            "visitors",
            ss.iter().map(|s| &s.visitor).collect::<BTreeSet<_>>().len() as f64,
            None,
        ),
        ("views_per_visit", div(pageviews), Some(2)),
    ]
}

fn round(v: f64, d: i32) -> f64 {
    let f = 10f64.powi(d);
    (v * f).round() / f
}

fn num(v: f64, d: Option<i32>) -> Value {
    match d {
        None => (v as i64).into(),
        Some(d) => round(v, d).into(),
    }
}

fn growth(cur: f64, prev: f64) -> f64 {
    if prev != 0.0 {
        round((cur - prev) * 100.0 / prev, 2)
    } else if cur > 0.0 {
        100.0
    } else {
        0.0
    }
}

fn obj(v: Value) -> Row {
    v.as_object().unwrap().clone()
}

// ---------- the tests ----------

fn check(what: &str, actual: &Output, expected: &[Row]) {
    let names: Vec<&str> = actual.meta.iter().map(|c| c.name.as_str()).collect();
    for (i, (a, e)) in actual.data.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "{what}: row {i} differs");
        let keys: BTreeSet<&str> = a.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            names.iter().copied().collect(),
            "{what}: meta names the row's columns"
        );
    }
    assert_eq!(actual.data.len(), expected.len(), "{what}: row count");
}

fn isolated(what: &str, tenant: &str, out: &Output) {
    let text = serde_json::to_string(&out.data).unwrap();
    for other in TENANTS.iter().filter(|t| **t != tenant) {
        assert!(
            !text.contains(&format!("/{other}/")),
            "{what}: {tenant}'s output holds {other}'s pathnames"
        );
        assert!(
            !text.contains(&format!(".{other}.example")),
            "{what}: {tenant}'s output holds {other}'s domains"
        );
    }
    assert!(!text.contains("bot-only"), "{what}: bots are never counted");
}

const TOP: [&str; 9] = [
    "top_pages",
    "top_sources",
    "top_browsers",
    "top_devices",
    "top_locations",
    "top_os",
    "top_campaigns",
    "entry_pages",
    "exit_pages",
];

#[test]
fn every_endpoint_matches_the_oracle_for_every_tenant() {
    let events = fixture();
    let conn = db(&events);
    let oracle = Oracle::new(events);
    let api = Api { conn: &conn };
    let utc = FixedOffset(0);
    let mut compared = 0;
    for tenant in TENANTS {
        let t1_path = format!("/{tenant}/pricing");
        let domain = domains_of(tenant)[0].clone();
        let mut run = |what: String, out: Output, expected: Vec<Row>| {
            isolated(&what, tenant, &out);
            check(&what, &out, &expected);
            compared += 1;
        };

        // kpis: default window (today-7..today, UTC), a DST-crossing window with the previous period,
        // hourly for today (cut at now) and for the DST day, and with filters.
        run(
            format!("{tenant} kpis default"),
            api.get("kpis", tenant, &[], &utc),
            oracle.kpis(tenant, &utc, "2025-03-26", "2025-04-02", false, &[]),
        );
        let window = [
            ("date_from", "2025-03-28"),
            ("date_to", "2025-04-01"),
            ("include_previous_period", "true"),
        ];
        run(
            format!("{tenant} kpis dst"),
            api.get("kpis", tenant, &window, &Dst),
            oracle.kpis(tenant, &Dst, "2025-03-28", "2025-04-01", true, &[]),
        );
        let today = [
            ("date_from", "2025-04-02"),
            ("date_to", "2025-04-02"),
            ("include_previous_period", "true"),
        ];
        run(
            format!("{tenant} kpis today"),
            api.get("kpis", tenant, &today, &Dst),
            oracle.kpis(tenant, &Dst, "2025-04-02", "2025-04-02", true, &[]),
        );
        let dst_day = [("date_from", "2025-03-30"), ("date_to", "2025-03-30")];
        run(
            format!("{tenant} kpis_summary dst"),
            api.get("kpis_summary", tenant, &window, &Dst),
            oracle.kpis_summary(tenant, &Dst, "2025-03-28", "2025-04-01", true, &[]),
        );
        run(
            format!("{tenant} kpis dst day"),
            api.get("kpis", tenant, &dst_day, &Dst),
            oracle.kpis(tenant, &Dst, "2025-03-30", "2025-03-30", false, &[]),
        );
        let filtered = [
            ("browser", "chrome"),
            ("pathname", t1_path.as_str()),
            ("domain", domain.as_str()),
        ];
        let mut params = filtered.to_vec();
        params.extend([("date_from", "2025-03-23"), ("date_to", "2025-04-02")]);
        run(
            format!("{tenant} kpis filtered"),
            api.get("kpis", tenant, &params, &utc),
            oracle.kpis(tenant, &utc, "2025-03-23", "2025-04-02", false, &filtered),
        );

        for pipe in TOP {
            run(
                format!("{tenant} {pipe} default"),
                api.get(pipe, tenant, &[], &utc),
                oracle.top(
                    pipe,
                    tenant,
                    &utc,
                    "2025-03-26",
                    "2025-04-02",
                    false,
                    &[],
                    0,
                    50,
                ),
            );
            run(
                format!("{tenant} {pipe} dst+previous"),
                api.get(pipe, tenant, &window, &Dst),
                oracle.top(
                    pipe,
                    tenant,
                    &Dst,
                    "2025-03-28",
                    "2025-04-01",
                    true,
                    &[],
                    0,
                    50,
                ),
            );
            let filters = [("referrer", "google.com"), ("country", "DE")];
            let mut params = filters.to_vec();
            params.extend([
                ("date_from", "2025-03-23"),
                ("date_to", "2025-04-02"),
                ("skip", "1"),
                ("limit", "3"),
            ]);
            run(
                format!("{tenant} {pipe} filtered page"),
                api.get(pipe, tenant, &params, &utc),
                oracle.top(
                    pipe,
                    tenant,
                    &utc,
                    "2025-03-23",
                    "2025-04-02",
                    false,
                    &filters,
                    1,
                    3,
                ),
            );
            let filters = [
                ("utm_campaign", "launch"),
                ("pathname", "/"),
                ("domain", domain.as_str()),
            ];
            let mut params = filters.to_vec();
            params.extend([
                ("date_from", "2025-03-23"),
                ("date_to", "2025-04-02"),
                ("include_previous_period", "true"),
            ]);
            run(
                format!("{tenant} {pipe} campaign"),
                api.get(pipe, tenant, &params, &Dst),
                oracle.top(
                    pipe,
                    tenant,
                    &Dst,
                    "2025-03-23",
                    "2025-04-02",
                    true,
                    &filters,
                    0,
                    50,
                ),
            );
        }

        run(
            format!("{tenant} current_visitors"),
            api.get("current_visitors", tenant, &[], &utc),
            oracle.current_visitors(tenant, None),
        );
        run(
            format!("{tenant} current_visitors domain"),
            api.get(
                "current_visitors",
                tenant,
                &[("domain", domain.as_str())],
                &utc,
            ),
            oracle.current_visitors(tenant, Some(&domain)),
        );
        run(
            format!("{tenant} trend"),
            api.get("trend", tenant, &[], &Dst),
            oracle.trend(tenant, &Dst),
        );
        run(
            format!("{tenant} trend +5:30"),
            api.get("trend", tenant, &[], &FixedOffset(19_800)),
            oracle.trend(tenant, &FixedOffset(19_800)),
        );
        run(
            format!("{tenant} domains"),
            api.get("domains", tenant, &[], &utc),
            oracle.domains(tenant),
        );
        run(
            format!("{tenant} actions"),
            api.get("actions", tenant, &[], &utc),
            oracle.actions(tenant, None),
        );
        for filter in ["50%", "_", "add_to"] {
            run(
                format!("{tenant} actions {filter}"),
                api.get("actions", tenant, &[("action_filter", filter)], &utc),
                oracle.actions(tenant, Some(filter)),
            );
        }
    }
    assert_eq!(compared, 3 * (6 + 9 * 4 + 9));
}

#[test]
fn the_fixture_exercises_what_it_should() {
    let oracle = Oracle::new(fixture());
    let s = &oracle.sessions;
    assert!(
        s.iter().any(|s| s.first / 3600 != s.last / 3600),
        "sessions spanning an hour boundary"
    );
    assert!(s.iter().any(|s| s.first == s.last) && s.iter().any(|s| s.pageviews >= 4));
    assert!(
        s.iter().any(|s| s.first < 1_743_296_400) && s.iter().any(|s| s.first >= 1_743_296_400),
        "both sides of DST"
    );
    assert!(
        s.iter().any(|s| s.first / 86_400 != s.last / 86_400),
        "visits crossing UTC midnight"
    );
    assert!(
        s.iter()
            .any(|s| s.first.rem_euclid(3600) < 1800 && (s.first / 3600) % 24 == 18),
        "visits in the half hour a +5:30 zone's local day starts by its rule, not by the clock"
    );
    assert!(
        oracle.current_visitors("t1", None)[0]["visits"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert!(
        oracle
            .trend("t2", &Dst)
            .iter()
            .filter(|r| r["visits"].as_i64() > Some(0))
            .count()
            > 3
    );
    let kpis = oracle.kpis(
        "t2",
        &FixedOffset(0),
        "2025-03-26",
        "2025-04-02",
        false,
        &[],
    );
    assert!(
        kpis.iter().any(|r| r["visitors"] != r["visits"]),
        "visitors are distinct from visits"
    );
    assert!(oracle
        .actions("t3", Some("50%"))
        .iter()
        .all(|r| r["action"] == "50%_off"));
}

#[test]
fn fixed_params_cannot_be_overridden() {
    let events = fixture();
    let conn = db(&events);
    let oracle = Oracle::new(events);
    let api = Api { conn: &conn };
    let fixed: BTreeMap<String, String> = [("tenant_id", "t1"), ("domain", "a.t1.example")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let hostile = [
        ("tenant_id", "t2"),
        ("TENANT_ID", "t2"),
        ("domain", "b.t1.example"),
        ("Domain", "b.t1.example"),
    ];
    let out = api.get_fixed("top_sources", &fixed, &hostile, &FixedOffset(0));
    let expected = oracle.top(
        "top_sources",
        "t1",
        &FixedOffset(0),
        "2025-03-26",
        "2025-04-02",
        false,
        &[("domain", "a.t1.example")],
        0,
        50,
    );
    check("fixed domain", &out, &expected);
    let out = api.get_fixed("domains", &fixed, &hostile, &FixedOffset(0));
    assert_eq!(out.data.len(), 1);
    assert_eq!(out.data[0]["domain"], "a.t1.example");
    let out = api.get_fixed("top_pages", &fixed, &hostile, &FixedOffset(0));
    isolated("fixed tenant", "t1", &out);
    assert!(!out.data.is_empty());
}

#[test]
fn responses_have_the_kit_shape() {
    let events = fixture();
    let conn = db(&events);
    let api = Api { conn: &conn };
    let out = api.get(
        "kpis",
        "t1",
        &[("include_previous_period", "true")],
        &FixedOffset(0),
    );
    let names: Vec<&str> = out.meta.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        &names[..5],
        [
            "date",
            "visits",
            "pageviews",
            "bounce_rate",
            "avg_session_sec"
        ]
    );
    assert!(
        names.contains(&"pageviews_growth_percentage") && names.contains(&"previous_bounce_rate")
    );
    assert_eq!(out.meta[0].r#type, "Date");
    assert!(out.data[0]["visits"].is_u64(), "counts are JSON integers");
    assert!(
        (1..=16).contains(&out.rows_read),
        "at most one grouped row per day of both periods"
    );
    let meta = serde_json::to_value(&out.meta).unwrap();
    assert_eq!(meta[1], json!({"name": "visits", "type": "UInt64"}));
    let trend = api.get("trend", "t1", &[], &FixedOffset(0));
    assert_eq!(trend.data.len(), 30);
    assert_eq!(trend.data[29]["t"], "2025-04-02 12:20:00");
}

/// Asia/Kolkata: +5:30 all year.
const KOLKATA: FixedOffset = FixedOffset(19_800);

#[test]
fn one_filter_time_zones_and_midnight_match_the_oracle() {
    let events = fixture();
    let conn = db(&events);
    let oracle = Oracle::new(events);
    let api = Api { conn: &conn };
    let utc = FixedOffset(0);
    let zones: [(&str, &dyn TimeZone); 3] = [("utc", &utc), ("dst", &Dst), ("kolkata", &KOLKATA)];
    let mut compared = 0;
    for tenant in TENANTS {
        let page = format!("/{tenant}/pricing");
        let domain = domains_of(tenant)[0].clone();
        let one: [(&str, &str); 10] = [
            ("browser", "chrome"),
            ("referrer", "google.com"),
            ("country", "DE"),
            ("pathname", page.as_str()),
            ("utm_campaign", "launch"),
            ("utm_source", "google"),
            ("utm_medium", "cpc"),
            ("device", "mobile"),
            ("os", "ios"),
            ("source", ""),
        ];
        for (zone, tz) in zones {
            for (from, to) in [("2025-03-28", "2025-04-01"), ("2025-03-30", "2025-03-30")] {
                let range = [
                    ("date_from", from),
                    ("date_to", to),
                    ("include_previous_period", "true"),
                ];
                for filter in one.iter().filter(|f| !f.1.is_empty()) {
                    for with_domain in [false, true] {
                        let mut filters = vec![*filter];
                        if with_domain {
                            filters.push(("domain", domain.as_str()));
                        }
                        let mut params = filters.clone();
                        params.extend(range);
                        let what = format!("{tenant} {zone} {from}..{to} {filters:?}");
                        let out = api.get("kpis", tenant, &params, tz);
                        check(
                            &format!("kpis {what}"),
                            &out,
                            &oracle.kpis(tenant, tz, from, to, true, &filters),
                        );
                        let out = api.get("kpis_summary", tenant, &params, tz);
                        check(
                            &format!("kpis_summary {what}"),
                            &out,
                            &oracle.kpis_summary(tenant, tz, from, to, true, &filters),
                        );
                        compared += 2;
                    }
                }
                // Top lists unfiltered, by domain, and filtered on their own dimension.
                for pipe in TOP {
                    let own = match pipe {
                        "top_pages" => Some(("pathname", page.as_str())),
                        "top_sources" => Some(("referrer", "google.com")),
                        "top_browsers" => Some(("browser", "chrome")),
                        "top_devices" => Some(("device", "mobile")),
                        "top_locations" => Some(("location", "DE")),
                        "top_os" => Some(("os", "ios")),
                        _ => None,
                    };
                    let mut cases: Vec<Vec<(&str, &str)>> =
                        vec![vec![], vec![("domain", domain.as_str())]];
                    cases.extend(own.map(|f| vec![f]));
                    for filters in cases {
                        let mut params = filters.clone();
                        params.extend(range);
                        let out = api.get(pipe, tenant, &params, tz);
                        check(
                            &format!("{pipe} {tenant} {zone} {from}..{to} {filters:?}"),
                            &out,
                            &oracle.top(pipe, tenant, tz, from, to, true, &filters, 0, 50),
                        );
                        compared += 1;
                    }
                }
            }
            // Hourly kpis for today, unfiltered and with one filter.
            for filters in [vec![], vec![("browser", "chrome")]] {
                let mut params = filters.clone();
                params.extend([("date_from", "2025-04-02"), ("date_to", "2025-04-02")]);
                check(
                    &format!("kpis hourly {tenant} {zone} {filters:?}"),
                    &api.get("kpis", tenant, &params, tz),
                    &oracle.kpis(tenant, tz, "2025-04-02", "2025-04-02", false, &filters),
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000, "{compared}");
}

#[test]
fn one_filter_plans_read_only_rollups_and_two_filters_read_visits() {
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), "t1".to_owned())]
        .into_iter()
        .collect();
    let plan_in = |pipe: &str, params: &[(&str, &str)], tz: &dyn TimeZone| {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        query::plan(&Request {
            pipe,
            params: &params,
            tenant: &starling_core::claims::TenantId::for_tests(&fixed["tenant_id"])
                .expect("valid tenant"),
            fixed: &fixed,
            now_secs: NOW,
            tz,
        })
        .unwrap()
    };
    let plan = |pipe: &str, params: &[(&str, &str)]| plan_in(pipe, params, &Dst);
    let reads = |p: &query::Plan, table: &str| p.statements.iter().all(|s| s.sql.contains(table));
    for pipe in TOP {
        assert!(
            reads(&plan(pipe, &[("domain", "a.t1.example")]), "visit_"),
            "{pipe}"
        );
    }
    for f in [
        ("browser", "chrome"),
        ("pathname", "/"),
        ("utm_medium", "cpc"),
    ] {
        assert!(
            reads(&plan_in("kpis", &[f], &FixedOffset(0)), "visit_"),
            "{f:?}"
        );
        assert!(reads(&plan("kpis_summary", &[f]), "visit_"), "{f:?}");
        // A per-day series in a zone off UTC, older than the per-dimension hourly rows: every local
        // day is two partial UTC days, so the plain visit-level plan.
        assert!(reads(&plan("kpis", &[f]), "FROM sessions"), "{f:?}");
        let recent = [f, ("date_from", "2025-04-01"), ("date_to", "2025-04-02")];
        assert!(reads(&plan("kpis", &recent), "visit_"), "{f:?}");
    }
    let two = [("browser", "chrome"), ("country", "DE")];
    assert!(reads(&plan("kpis", &two), "FROM sessions"));
    assert!(reads(
        &plan("top_pages", &[("browser", "chrome")]),
        "page_visits"
    ));
}

// ---------- POST /v0/query ----------

impl Api<'_> {
    fn query(
        &self,
        tenant: &str,
        body: &Value,
        tz: &dyn TimeZone,
    ) -> Result<(Value, bool), query::QueryError> {
        let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), tenant.to_owned())]
            .into_iter()
            .collect();
        self.query_fixed(&fixed, body, tz)
    }

    fn query_fixed(
        &self,
        fixed: &BTreeMap<String, String>,
        body: &Value,
        tz: &dyn TimeZone,
    ) -> Result<(Value, bool), query::QueryError> {
        let plan = query::plan_query(&query::ApiRequest {
            body,
            tenant: &starling_core::claims::TenantId::for_tests(&fixed["tenant_id"])
                .expect("valid tenant"),
            fixed,
            now_secs: NOW,
            tz,
        })?;
        let results = plan.statements.iter().map(|s| rows(self.conn, s)).collect();
        Ok((
            query::assemble_query(&plan, results).unwrap(),
            plan.uses_rollups(),
        ))
    }
}

/// A filter of the query API evaluated on a session, independently of the SQL.
fn eval(f: &Value, s: &Session) -> bool {
    let a = f.as_array().unwrap();
    match a[0].as_str().unwrap() {
        "and" => a[1].as_array().unwrap().iter().all(|x| eval(x, s)),
        "or" => a[1].as_array().unwrap().iter().any(|x| eval(x, s)),
        "not" => !eval(&a[1], s),
        op => {
            let ci = a.get(3).is_some_and(|m| m["case_sensitive"] == false);
            let norm = |x: &str| if ci { x.to_lowercase() } else { x.to_owned() };
            let values: Vec<String> = a[2]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| norm(v.as_str().unwrap()))
                .collect();
            let test = |x: &str| {
                let x = norm(x);
                values.iter().any(|v| {
                    if op.starts_with("is") {
                        x == *v
                    } else {
                        x.contains(v.as_str())
                    }
                })
            };
            let hit = match a[1].as_str().unwrap() {
                "event:page" => s.pages.keys().any(|p| test(p)),
                "event:hostname" => test(&s.domain),
                d => test(&session_value(s, d)),
            };
            if op.ends_with("_not") {
                !hit
            } else {
                hit
            }
        }
    }
}

fn session_value(s: &Session, dim: &str) -> String {
    match dim {
        "visit:entry_page" => s.entry.clone(),
        "visit:exit_page" => s.exit.clone(),
        "event:hostname" => s.domain.clone(),
        "visit:referrer" => s.attrs["source"].clone(),
        d => s.attrs[d.strip_prefix("visit:").unwrap()].clone(),
    }
}

/// The time label of a session: its local bucket by the hour rule.
fn time_value(s: &Session, tz: &dyn TimeZone, grain: &str) -> String {
    let l = local_rule(tz, s.first);
    let day = l.div_euclid(86_400);
    match grain {
        "time:hour" => datetime_label(l - l.rem_euclid(3600)),
        "time:day" => date_label(day),
        "time:week" => date_label(day - (day + 3).rem_euclid(7)),
        _ => format!("{}-01", &date_label(day)[..7]),
    }
}

impl Oracle {
    /// `/v0/query` computed from the sessions: (dimension value, metrics) in the default order.
    #[allow(clippy::too_many_arguments)]
    fn query(
        &self,
        tenant: &str,
        tz: &dyn TimeZone,
        from: i64,
        to: i64,
        dim: Option<&str>,
        filters: &[Value],
        metrics: &[&str],
    ) -> Vec<(String, Vec<f64>)> {
        let mut groups: BTreeMap<String, Vec<&Session>> = BTreeMap::new();
        for s in self.sessions(tenant, &[]) {
            let day = local_rule(tz, s.first).div_euclid(86_400);
            if !(from..=to).contains(&day) || !filters.iter().all(|f| eval(f, s)) {
                continue;
            }
            let key = match dim {
                None => String::new(),
                Some(d) if d.starts_with("time:") => time_value(s, tz, d),
                Some(d) => session_value(s, d),
            };
            groups.entry(key).or_default().push(s);
        }
        let mut out: Vec<(String, Vec<f64>)> = groups
            .into_iter()
            .map(|(k, ss)| {
                let visits = ss.len() as f64;
                let pv = ss.iter().map(|s| s.pageviews).sum::<i64>() as f64;
                let values = metrics
                    .iter()
                    .map(|m| match *m {
                        "visitors" => {
                            ss.iter().map(|s| &s.visitor).collect::<BTreeSet<_>>().len() as f64
                        }
                        "visits" => visits,
                        "pageviews" => pv,
                        "bounce_rate" => round(
                            ss.iter().filter(|s| s.pageviews == 1).count() as f64 * 100.0 / visits,
                            2,
                        ),
                        "visit_duration" => {
                            (ss.iter().map(|s| s.last - s.first).sum::<i64>() as f64 / visits)
                                .round()
                        }
                        _ => round(pv / visits, 2),
                    })
                    .collect();
                (k, values)
            })
            .collect();
        if dim.is_some_and(|d| d.starts_with("time:")) {
            out.sort_by(|a, b| a.0.cmp(&b.0));
        } else {
            out.sort_by(|a, b| b.1[0].total_cmp(&a.1[0]).then(a.0.cmp(&b.0)));
        }
        out
    }
}

fn api_rows(out: &Value) -> Vec<(String, Vec<f64>)> {
    out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let k = r["dimensions"]
                .get(0)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let m = r["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            (k, m)
        })
        .collect()
}

#[test]
fn random_queries_agree_with_the_oracle() {
    let events = fixture();
    let conn = db(&events);
    let oracle = Oracle::new(events);
    let api = Api { conn: &conn };
    let utc = FixedOffset(0);
    let kathmandu = FixedOffset(20_700);
    let zones: [(&str, &dyn TimeZone); 4] = [
        ("UTC", &utc),
        ("dst", &Dst),
        ("Asia/Kolkata", &KOLKATA),
        ("Asia/Kathmandu", &kathmandu),
    ];
    let metrics = [
        "visitors",
        "visits",
        "pageviews",
        "bounce_rate",
        "visit_duration",
        "views_per_visit",
    ];
    let dims = [
        None,
        Some("time:day"),
        Some("time:hour"),
        Some("time:week"),
        Some("time:month"),
        Some("visit:browser"),
        Some("visit:source"),
        Some("visit:country"),
        Some("visit:entry_page"),
        Some("visit:exit_page"),
        Some("visit:utm_campaign"),
        Some("event:hostname"),
    ];
    let mut rng = Rng(99);
    let (mut fast, mut slow, mut nonempty) = (0, 0, 0);
    for i in 0..400 {
        let tenant = TENANTS[i % 3];
        let (zone, tz) = zones[rng.below(4) as usize];
        let page = format!("/{tenant}/pricing");
        let domain = domains_of(tenant)[0].clone();
        let leaves = [
            json!(["is", "visit:browser", ["chrome"]]),
            json!(["is", "visit:country", ["DE"]]),
            json!(["is", "event:page", [page]]),
            json!(["is", "event:hostname", [domain]]),
            json!(["is_not", "visit:source", [""]]),
            json!(["contains", "visit:source", ["oo"]]),
            json!(["contains_not", "event:page", ["pricing"]]),
            json!(["is", "visit:browser", ["CHROME", "Safari"], {"case_sensitive": false}]),
            json!(["is", "visit:utm_campaign", ["launch", "spring_sale"]]),
            json!(["not", ["is", "visit:device", ["desktop"]]]),
            json!([
                "or",
                [["is", "visit:os", ["ios"]], ["is", "visit:country", ["FR"]]]
            ]),
            json!([
                "and",
                [
                    ["is", "visit:device", ["mobile"]],
                    ["contains", "visit:entry_page", ["/"]]
                ]
            ]),
        ];
        let mut filters = Vec::new();
        for _ in 0..rng.below(3) {
            filters.push(leaves[rng.below(leaves.len() as u64) as usize].clone());
        }
        let dim = dims[rng.below(dims.len() as u64) as usize];
        // Ranges ending on the fixture's last days, 1 to 10 days long (hourly: one day).
        let to = label_days("2025-04-02") - rng.below(3) as i64;
        let from = if dim == Some("time:hour") {
            to
        } else {
            to - rng.below(10) as i64
        };
        let mut body = json!({
            "metrics": metrics,
            "date_range": [date_label(from), date_label(to)],
            "filters": filters,
            "timezone": zone,
        });
        if let Some(d) = dim {
            body["dimensions"] = json!([d]);
        }
        let (out, rollups) = api
            .query(tenant, &body, tz)
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        if rollups {
            fast += 1
        } else {
            slow += 1
        }
        let expected = oracle.query(tenant, tz, from, to, dim, &filters, &metrics);
        let actual = api_rows(&out);
        assert_eq!(actual, expected, "{tenant} {body}");
        let text = out["results"].to_string();
        for other in TENANTS.iter().filter(|t| **t != tenant) {
            assert!(
                !text.contains(&format!("{other}.example")),
                "{tenant} sees {other}: {text}"
            );
        }
        if !expected.is_empty() {
            nonempty += 1;
        }
    }
    assert!(
        fast > 50 && slow > 50,
        "both paths exercised: {fast} rollups, {slow} visit-level"
    );
    assert!(nonempty > 300, "most queries have rows: {nonempty}");
}

#[test]
fn query_comparisons_pagination_and_labels() {
    let events = fixture();
    let conn = db(&events);
    let oracle = Oracle::new(events);
    let api = Api { conn: &conn };
    let utc = FixedOffset(0);
    let metrics = ["visits", "visitors"];
    for (filters, fast) in [
        (json!([]), true),
        (
            json!([
                ["is", "visit:browser", ["chrome"]],
                ["is", "visit:os", ["ios"]]
            ]),
            false,
        ),
    ] {
        let body = json!({
            "metrics": metrics,
            "date_range": ["2025-03-30", "2025-04-01"],
            "dimensions": ["time:day"],
            "filters": filters,
            "include": {"time_labels": true, "total_rows": true, "comparisons": {"mode": "previous_period"}},
        });
        let (out, rollups) = api.query("t1", &body, &utc).unwrap();
        assert_eq!(rollups, fast);
        assert_eq!(
            out["meta"]["time_labels"],
            json!(["2025-03-30", "2025-03-31", "2025-04-01"])
        );
        let f: Vec<Value> = filters.as_array().unwrap().clone();
        let cur = oracle.query(
            "t1",
            &utc,
            label_days("2025-03-30"),
            label_days("2025-04-01"),
            Some("time:day"),
            &f,
            &metrics,
        );
        let prev = oracle.query(
            "t1",
            &utc,
            label_days("2025-03-27"),
            label_days("2025-03-29"),
            Some("time:day"),
            &f,
            &metrics,
        );
        assert_eq!(out["meta"]["total_rows"], json!(cur.len()));
        for (i, r) in out["results"].as_array().unwrap().iter().enumerate() {
            let label = r["dimensions"][0].as_str().unwrap();
            let cmp_label = date_label(label_days(label) - 3);
            let p = prev
                .iter()
                .find(|p| p.0 == cmp_label)
                .map(|p| p.1.clone())
                .unwrap_or(vec![0.0, 0.0]);
            assert_eq!(r["comparison"]["dimensions"][0], json!(cmp_label), "{i}");
            assert_eq!(
                r["comparison"]["metrics"],
                json!([p[0] as i64, p[1] as i64]),
                "{i} {filters}"
            );
        }
    }
    // Pagination and order_by over a dimension, both paths.
    for filters in [json!([]), json!([["contains", "visit:source", ["o"]]])] {
        let body = json!({
            "metrics": ["visits"],
            "date_range": "7d",
            "dimensions": ["visit:country"],
            "filters": filters,
            "order_by": [["visit:country", "asc"]],
            "pagination": {"limit": 2, "offset": 1},
            "include": {"total_rows": true},
        });
        let (out, _) = api.query("t2", &body, &utc).unwrap();
        let f: Vec<Value> = filters.as_array().unwrap().clone();
        let mut all = oracle.query(
            "t2",
            &utc,
            label_days("2025-03-26"),
            label_days("2025-04-01"),
            Some("visit:country"),
            &f,
            &["visits"],
        );
        all.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(out["meta"]["total_rows"], json!(all.len()));
        assert_eq!(api_rows(&out), all[1..3].to_vec(), "{filters}");
        assert_eq!(
            out["query"]["date_range"],
            json!(["2025-03-26", "2025-04-01"]),
            "7d ends yesterday"
        );
    }
}

#[test]
fn bad_queries_name_the_field() {
    let conn = common::migrated_db();
    let api = Api { conn: &conn };
    let utc = FixedOffset(0);
    let cases = [
        (json!({"date_range": "7d"}), "metrics"),
        (
            json!({"metrics": ["visits", "hugs"], "date_range": "7d"}),
            "metrics[1]",
        ),
        (json!({"metrics": ["visits"]}), "date_range"),
        (
            json!({"metrics": ["visits"], "date_range": "fortnight"}),
            "date_range",
        ),
        (
            json!({"metrics": ["visits"], "date_range": ["2025-01-01", "2025-13-01"]}),
            "date_range[1]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "dimensions": ["visit:shoe"]}),
            "dimensions[0]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "filters": [["is", "visit:browser", "chrome"]]}),
            "filters[0][2]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "filters": [["matches", "visit:browser", ["c"]]]}),
            "filters[0][0]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "filters": [["or", [["is", "visit:nope", ["x"]]]]]}),
            "filters[0][1][0][1]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "order_by": [["visitors", "desc"]]}),
            "order_by[0]",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "include": {"time_labels": true}}),
            "include.time_labels",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "pagination": {"limit": 0}}),
            "pagination.limit",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "include": {"comparisons": {"mode": "last_week"}}}),
            "include.comparisons.mode",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "timezone": "Mars/Olympus'"}),
            "timezone",
        ),
        (
            json!({"metrics": ["visits"], "date_range": "7d", "limit": 3}),
            "limit",
        ),
    ];
    for (body, field) in cases {
        match api.query("t1", &body, &utc) {
            Err(e) => {
                assert_eq!(e.status(), 400, "{body}");
                assert!(
                    e.message().starts_with(&format!("invalid '{field}'")),
                    "{body}: {}",
                    e.message()
                );
            }
            Ok(_) => panic!("{body} was accepted"),
        }
    }
}

#[test]
fn query_isolation_and_fixed_params() {
    let events = fixture();
    let conn = db(&events);
    let oracle = Oracle::new(events);
    let api = Api { conn: &conn };
    let utc = FixedOffset(0);
    let fixed: BTreeMap<String, String> = [
        ("tenant_id", "t1"),
        ("domain", "a.t1.example"),
        ("timezone", "UTC"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for filters in [
        json!([]),
        json!([
            ["is", "visit:browser", ["chrome"]],
            ["is", "visit:os", ["ios"]]
        ]),
    ] {
        let body = json!({
            "metrics": ["visits", "pageviews"],
            "date_range": ["2025-03-23", "2025-04-02"],
            "dimensions": ["event:hostname"],
            "filters": filters,
            "tenant_id": "t2",
            "site_id": "shop.t2.example",
            "timezone": "Asia/Tokyo",
        });
        let (out, _) = api.query_fixed(&fixed, &body, &utc).unwrap();
        // The fixed domain is AND-ed with the body's site: t2's domain never matches t1's rows.
        assert_eq!(out["results"], json!([]), "{filters}");
        assert_eq!(out["query"]["timezone"], "UTC", "the fixed time zone wins");
        let mut body = body;
        body.as_object_mut().unwrap().remove("site_id");
        let (out, _) = api.query_fixed(&fixed, &body, &utc).unwrap();
        let f: Vec<Value> = filters.as_array().unwrap().clone();
        let mut f2 = f.clone();
        f2.push(json!(["is", "event:hostname", ["a.t1.example"]]));
        let expected = oracle.query(
            "t1",
            &utc,
            label_days("2025-03-23"),
            label_days("2025-04-02"),
            Some("event:hostname"),
            &f2,
            &["visits", "pageviews"],
        );
        assert_eq!(api_rows(&out), expected);
        assert!(!expected.is_empty());
        let text = out.to_string();
        assert!(
            !text.contains("t2.example") && !text.contains("b.t1.example"),
            "{text}"
        );
    }
    let plan = query::plan_query(&query::ApiRequest {
        body: &json!({"metrics": ["visits"], "date_range": "7d", "filters": [["contains", "visit:source", ["x"]]]}),
        tenant: &starling_core::claims::TenantId::for_tests(&fixed["tenant_id"]).expect("valid tenant"),
        fixed: &fixed,
        now_secs: NOW,
        tz: &utc,
    })
    .unwrap();
    for s in &plan.statements {
        assert_eq!(s.binds[0], "t1".into(), "{}", s.sql);
        assert!(s.binds.len() < 100);
    }
    assert!(
        plan.cache_key().starts_with("{\"fixed\"")
            || plan.cache_key().contains("\"tenant\":\"t1\"")
    );
}

#[test]
fn query_with_a_date_bound_token_reads_only_its_dates() {
    let events = fixture();
    let conn = db(&events);
    let oracle = Oracle::new(events);
    let api = Api { conn: &conn };
    let utc = FixedOffset(0);
    let fixed: BTreeMap<String, String> = [
        ("tenant_id", "t1"),
        ("DATE_FROM", "2025-03-25"),
        ("date_to", "2025-03-30"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for filters in [json!([]), json!([["contains", "visit:source", ["o"]]])] {
        // The body asks for a wider range; the token's dates win, on both paths.
        let body = json!({
            "metrics": ["visits", "pageviews"],
            "date_range": ["2025-03-01", "2025-04-20"],
            "dimensions": ["time:day"],
            "filters": filters,
        });
        let (out, _) = api.query_fixed(&fixed, &body, &utc).unwrap();
        assert_eq!(
            out["query"]["date_range"],
            json!(["2025-03-25", "2025-03-30"])
        );
        let expected = oracle.query(
            "t1",
            &utc,
            label_days("2025-03-25"),
            label_days("2025-03-30"),
            Some("time:day"),
            filters.as_array().unwrap(),
            &["visits", "pageviews"],
        );
        assert!(!expected.is_empty());
        assert_eq!(api_rows(&out), expected, "{filters}");
    }
    for mode in ["previous_period", "year_over_year"] {
        let body = json!({
            "metrics": ["visits"],
            "date_range": "7d",
            "include": {"comparisons": {"mode": mode}},
        });
        let err = api.query_fixed(&fixed, &body, &utc).unwrap_err();
        assert_eq!(err.status(), 400, "{mode}");
        assert!(err.message().contains("include.comparisons"), "{err}");
    }
    let mut bad = fixed.clone();
    bad.insert("date_to".into(), "soon".into());
    let body = json!({"metrics": ["visits"], "date_range": "7d"});
    assert_eq!(
        api.query_fixed(&bad, &body, &utc).unwrap_err().status(),
        400
    );
}
