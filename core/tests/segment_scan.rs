//! Visit segments (`starling_core::segment`) against the planner's own visit-level SQL.
//!
//! Two tenants get random visits over six UTC days around the 2025-03-30 DST change of Europe/Madrid
//! (visits near midnight whose pages run into the next day, visits lasting days, bounces, several
//! pages, visitors with several visits, mixed-case values), inserted as `sessions` and `page_visits` rows into SQLite with
//! the real migrations, and encoded as one segment per (tenant, UTC day). Then a generated set of
//! questions is asked both ways: `POST /v0/query` bodies with random filter trees (and, or, not; is,
//! is_not, contains, contains_not; case-sensitive or not; visit columns, hostname and `event:page`),
//! with and without a dimension, in UTC and Madrid, planned by `plan_query` (its visit-level
//! statement, run as is); and the pipes' top lists and kpis_summary with two or three dashboard
//! filters (a page filter among them), planned by `query::plan`. The scan over the segments must give
//! the same groups and measures for every question; segments with one flipped code must not.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};
use serde_json::{json, Value};
use starling_core::claims::TenantId;
use starling_core::query::{self, ApiRequest, TimeZone};
use starling_core::segment::{
    self, encode, Column, Filter, Group, Op, PathFilter, Query, Segment, SegmentError, Sums,
    Target, VisitRow,
};
use starling_core::sql::SqlValue;

mod common;
use common::{Madrid, Rng, UTC};

const DAY: i64 = 86_400;
/// 2025-03-27, the first UTC day with visits (days since 1970-01-01).
const FIRST_DAY: i64 = 20_174;
const DAYS: i64 = 6;
/// 2025-04-03 12:00 UTC.
const NOW: i64 = (FIRST_DAY + 7) * DAY + 43_200;
const TENANTS: [&str; 2] = ["sa", "sb"];

const DOMAINS: [&str; 2] = ["a.example", "B.example"];
const PATHS: [&str; 7] = [
    "/",
    "/pricing",
    "/Pricing",
    "/blog/one",
    "/blog/two",
    "/docs",
    "/about",
];
const SOURCES: [&str; 5] = [
    "",
    "google.com",
    "Google.com",
    "t.co",
    "news.ycombinator.com",
];
const BROWSERS: [&str; 4] = ["chrome", "Chrome", "firefox", "safari"];
const OSES: [&str; 3] = ["linux", "mac", "Windows"];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
const COUNTRIES: [&str; 4] = ["ES", "DE", "us", "US"];
const UTM_SOURCES: [&str; 3] = ["", "newsletter", "NewsLetter"];
const UTM_MEDIUMS: [&str; 3] = ["", "email", "cpc"];
const UTM_CAMPAIGNS: [&str; 3] = ["", "spring", "Spring-Sale"];

fn visits_of(rng: &mut Rng, tenant: &str) -> Vec<VisitRow> {
    let mut out = Vec::new();
    let n = if tenant == "sa" { 140 } else { 60 };
    for day in FIRST_DAY..FIRST_DAY + DAYS {
        let visitors = n / 3;
        for _ in 0..n {
            // One visit in five starts in the day's last hour: its pages may be on the next day.
            let offset = if rng.below(5) == 0 {
                DAY - 1 - rng.below(3_600) as i64
            } else {
                rng.below(DAY as u64) as i64
            };
            let first_ts = day * DAY + offset;
            let mut pages: Vec<segment::PageRow> = Vec::new();
            let mut t = first_ts;
            let wanted = 1 + rng.below(4) as usize;
            for _ in 0..wanted {
                let path = rng.pick(&PATHS);
                if pages.iter().any(|p| p.pathname == path) {
                    continue;
                }
                pages.push(segment::PageRow {
                    pathname: path.into(),
                    first_ts: t,
                    hits: 1 + rng.below(3) as u32 * u32::from(rng.below(2) == 0),
                });
                t += rng.below(900) as i64;
            }
            // One visit in twenty runs on for one to three days (a page a day or more after its
            // first hit: `top_pages` reads those of visits before its first scanned day in SQL).
            if rng.below(20) == 0 {
                t += DAY + rng.below(2 * DAY as u64) as i64;
                let path = rng.pick(&PATHS);
                if !pages.iter().any(|p| p.pathname == path) {
                    pages.push(segment::PageRow {
                        pathname: path.into(),
                        first_ts: t,
                        hits: 1,
                    });
                }
            }
            // Each day's first two visits start ten minutes before midnight and have a page exactly
            // a second less than a day, or exactly a day, after their first hit: the two sides of
            // the bound `top_pages`' SQL part splits pages at (`since_visit` 86400).
            if (out.len() as u64) % n < 2 {
                let first = day * DAY + DAY - 600;
                let path = rng.pick(&PATHS);
                pages = vec![
                    segment::PageRow {
                        pathname: "/".into(),
                        first_ts: first,
                        hits: 1,
                    },
                    segment::PageRow {
                        pathname: if path == "/" {
                            "/docs".into()
                        } else {
                            path.into()
                        },
                        first_ts: first + DAY - 1 + ((out.len() as u64) % n) as i64,
                        hits: 1,
                    },
                ];
                t = pages[1].first_ts;
            }
            let first_ts = pages[0].first_ts;
            let pageviews: u32 = pages.iter().map(|p| p.hits).sum();
            out.push(VisitRow {
                first_ts,
                last_ts: t,
                pageviews,
                domain: rng.pick(&DOMAINS).into(),
                visitor: hex_id(&format!("{tenant}-{day}-{}", rng.below(visitors))),
                entry_path: pages[0].pathname.clone(),
                exit_path: pages[pages.len() - 1].pathname.clone(),
                source: rng.pick(&SOURCES).into(),
                utm_source: rng.pick(&UTM_SOURCES).into(),
                utm_medium: rng.pick(&UTM_MEDIUMS).into(),
                utm_campaign: rng.pick(&UTM_CAMPAIGNS).into(),
                browser: rng.pick(&BROWSERS).into(),
                os: rng.pick(&OSES).into(),
                device: rng.pick(&DEVICES).into(),
                country: rng.pick(&COUNTRIES).into(),
                pages,
            });
        }
    }
    out
}

/// A visitor id as `identity::visitor_id` writes them (32 lowercase hex characters, uniform), so the
/// day's visitors spread over the parts of a day sealed in several (`seal::visitor_range`).
fn hex_id(name: &str) -> String {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, name).hash(&mut h);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

fn insert(conn: &Connection, tenant: &str, visits: &[VisitRow]) {
    for (i, v) in visits.iter().enumerate() {
        let key = format!("k{i}");
        conn.execute(
            "INSERT INTO sessions (tenant_id, session_key, domain, visitor_id, first_ts, last_ts, \
             pageviews, entry_path, exit_path, source, utm_source, utm_medium, utm_campaign, browser, \
             os, device, country) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
             ?14, ?15, ?16, ?17)",
            params![
                tenant,
                key,
                v.domain,
                v.visitor,
                v.first_ts,
                v.last_ts,
                v.pageviews,
                v.entry_path,
                v.exit_path,
                v.source,
                v.utm_source,
                v.utm_medium,
                v.utm_campaign,
                v.browser,
                v.os,
                v.device,
                v.country
            ],
        )
        .unwrap();
        for p in &v.pages {
            conn.execute(
                "INSERT INTO page_visits (tenant_id, session_key, pathname, first_ts, hits, \
                 since_visit) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    tenant,
                    key,
                    p.pathname,
                    p.first_ts,
                    p.hits,
                    p.first_ts - v.first_ts
                ],
            )
            .unwrap();
        }
    }
}

/// One segment per UTC day of the tenant's visits.
fn segments_of(visits: &[VisitRow]) -> Vec<Vec<u8>> {
    let mut by_day: BTreeMap<i64, Vec<VisitRow>> = BTreeMap::new();
    for v in visits {
        by_day
            .entry(v.first_ts.div_euclid(DAY))
            .or_default()
            .push(v.clone());
    }
    by_day
        .iter()
        .map(|(day, rows)| encode(*day, rows).unwrap())
        .collect()
}

/// The segments of the tenant's visits sealed in `parts` parts a day, each part the visits of the
/// visitors in its range (`seal::part_of`, the ranges the sealing SQL reads), or, with `by_visit`,
/// the visits dealt round-robin (visitors split across parts: what parts must not do).
fn segments_in_parts(visits: &[VisitRow], parts: u32, by_visit: bool) -> Vec<Vec<u8>> {
    let mut by_part: BTreeMap<(i64, u32), Vec<VisitRow>> = BTreeMap::new();
    for (i, v) in visits.iter().enumerate() {
        let part = if by_visit {
            i as u32 % parts
        } else {
            segment::seal::part_of(&v.visitor, parts)
        };
        by_part
            .entry((v.first_ts.div_euclid(DAY), part))
            .or_default()
            .push(v.clone());
    }
    by_part
        .iter()
        .map(|((day, _), rows)| encode(*day, rows).unwrap())
        .collect()
}

struct Fixture {
    conn: Connection,
    visits: HashMap<&'static str, Vec<VisitRow>>,
}

fn fixture() -> Fixture {
    let conn = common::migrated_db();
    let mut rng = Rng(11);
    let mut visits = HashMap::new();
    for t in TENANTS {
        let v = visits_of(&mut rng, t);
        insert(&conn, t, &v);
        visits.insert(t, v);
    }
    Fixture { conn, visits }
}

/// A generated filter, rendered both as a `/v0/query` filter and as a scan filter.
#[derive(Debug, Clone)]
enum Gen {
    Leaf(&'static str, Op, Vec<String>, Option<bool>),
    And(Vec<Gen>),
    Or(Vec<Gen>),
    Not(Box<Gen>),
}

/// `/v0/query` dimension names, their scan target and values to pick from (whole and partial).
const LEAVES: [(&str, &[&str]); 12] = [
    ("visit:browser", &["chrome", "CHROME", "fire", "safari"]),
    (
        "visit:source",
        &["google.com", "GOOGLE", "t.co", "ycomb", ""],
    ),
    ("visit:os", &["linux", "windows", "ma"]),
    ("visit:device", &["desktop", "mobile", "TAB"]),
    ("visit:country", &["US", "us", "ES", "d"]),
    ("visit:utm_source", &["newsletter", "letter", ""]),
    ("visit:utm_medium", &["email", "cpc"]),
    ("visit:utm_campaign", &["spring", "Spring-Sale", "sale"]),
    ("visit:entry_page", &["/pricing", "/blog", "/"]),
    ("visit:exit_page", &["/docs", "/Pricing", "blog"]),
    ("event:hostname", &["a.example", "b.example", "example"]),
    (
        "event:page",
        &["/pricing", "/blog/one", "/blog", "PRICING", "/about"],
    ),
];

fn target(name: &str) -> Target {
    match name {
        "visit:browser" => Target::Visit(Column::Browser),
        "visit:source" => Target::Visit(Column::Source),
        "visit:os" => Target::Visit(Column::Os),
        "visit:device" => Target::Visit(Column::Device),
        "visit:country" => Target::Visit(Column::Country),
        "visit:utm_source" => Target::Visit(Column::UtmSource),
        "visit:utm_medium" => Target::Visit(Column::UtmMedium),
        "visit:utm_campaign" => Target::Visit(Column::UtmCampaign),
        "visit:entry_page" => Target::Visit(Column::Entry),
        "visit:exit_page" => Target::Visit(Column::Exit),
        "event:hostname" => Target::Visit(Column::Domain),
        "event:page" => Target::ViewedPage,
        other => panic!("no target for {other}"),
    }
}

fn gen_filter(rng: &mut Rng, depth: u32) -> Gen {
    match rng.below(if depth >= 2 { 1 } else { 6 }) {
        0..=2 => {
            let (name, pool) = LEAVES[rng.below(LEAVES.len() as u64) as usize];
            let op = [Op::Is, Op::IsNot, Op::Contains, Op::ContainsNot][rng.below(4) as usize];
            let n = 1 + rng.below(2) as usize;
            let values = (0..n).map(|_| rng.pick(pool).to_owned()).collect();
            let case = [None, Some(true), Some(false)][rng.below(3) as usize];
            Gen::Leaf(name, op, values, case)
        }
        3 => Gen::And((0..2).map(|_| gen_filter(rng, depth + 1)).collect()),
        4 => Gen::Or(
            (0..1 + rng.below(2))
                .map(|_| gen_filter(rng, depth + 1))
                .collect(),
        ),
        _ => Gen::Not(Box::new(gen_filter(rng, depth + 1))),
    }
}

fn to_json(g: &Gen) -> Value {
    match g {
        Gen::Leaf(name, op, values, case) => {
            let op = match op {
                Op::Is => "is",
                Op::IsNot => "is_not",
                Op::Contains => "contains",
                Op::ContainsNot => "contains_not",
            };
            match case {
                None => json!([op, name, values]),
                Some(c) => json!([op, name, values, {"case_sensitive": c}]),
            }
        }
        Gen::And(l) => json!(["and", l.iter().map(to_json).collect::<Vec<_>>()]),
        Gen::Or(l) => json!(["or", l.iter().map(to_json).collect::<Vec<_>>()]),
        Gen::Not(x) => json!(["not", to_json(x)]),
    }
}

fn to_scan(g: &Gen) -> Filter {
    match g {
        Gen::Leaf(name, op, values, case) => Filter::Leaf {
            op: *op,
            target: target(name),
            values: values.clone(),
            case_sensitive: case.unwrap_or(true),
        },
        Gen::And(l) => Filter::And(l.iter().map(to_scan).collect()),
        Gen::Or(l) => Filter::Or(l.iter().map(to_scan).collect()),
        Gen::Not(x) => Filter::Not(Box::new(to_scan(x))),
    }
}

/// The UTC start of local day `d` (no local midnight of these zones falls in a DST change).
fn local_midnight(tz: &dyn TimeZone, d: i64) -> i64 {
    d * DAY - i64::from(tz.offset_secs(d * DAY - 4 * 3600))
}

fn date(d: i64) -> String {
    let (y, m, day) = civil(d);
    format!("{y:04}-{m:02}-{day:02}")
}

fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or_else(|| n.as_f64().unwrap() as i64),
        Some(Value::Null) | None => 0,
        other => panic!("not a number: {other:?}"),
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

/// The scan's groups as comparable rows (measures the SQL reports).
type Rows = BTreeMap<Vec<String>, [i64; 5]>;

fn scan_rows(segments: &[Segment], q: &Query, fields: [bool; 5]) -> Rows {
    segment::scan(segments, q)
        .unwrap()
        .groups
        .into_iter()
        .map(|(k, s): (Vec<String>, Sums)| {
            let all = [s.visits, s.pageviews, s.bounces, s.duration, s.visitors];
            let mut m = [0; 5];
            for i in 0..5 {
                if fields[i] {
                    m[i] = all[i];
                }
            }
            (k, m)
        })
        .collect()
}

/// One question of the generated set: the SQL's rows and the scan's, and a label for failures.
struct Asked {
    label: String,
    sql: Rows,
    scan: Rows,
}

fn api_questions(fx: &Fixture, segments: &HashMap<&str, Vec<Segment>>, n: usize) -> Vec<Asked> {
    let mut rng = Rng(7);
    let mut out = Vec::new();
    let dims: [(Option<&str>, &[Column]); 6] = [
        (None, &[]),
        (Some("visit:source"), &[Column::Source]),
        (Some("visit:browser"), &[Column::Browser]),
        (Some("visit:entry_page"), &[Column::Entry]),
        (Some("visit:country"), &[Column::Country]),
        (Some("event:hostname"), &[Column::Domain]),
    ];
    let fixed = BTreeMap::new();
    while out.len() < n {
        let tenant = TENANTS[rng.below(2) as usize];
        let madrid = rng.below(2) == 0;
        let tz: &dyn TimeZone = if madrid { &Madrid } else { &UTC };
        let from = FIRST_DAY + rng.below(DAYS as u64) as i64;
        let to = (from + rng.below(3) as i64).min(FIRST_DAY + DAYS - 1);
        let (dim, cols) = dims[rng.below(dims.len() as u64) as usize];
        let filters: Vec<Gen> = (0..2 + rng.below(2))
            .map(|_| gen_filter(&mut rng, 0))
            .collect();
        let body = json!({
            "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"],
            "date_range": [date(from), date(to)],
            "dimensions": dim.map(|d| vec![d]).unwrap_or_default(),
            "filters": filters.iter().map(to_json).collect::<Vec<_>>(),
            "timezone": if madrid { "Europe/Madrid" } else { "UTC" },
        });
        let id = TenantId::for_tests(tenant).unwrap();
        let plan = query::plan_query(&ApiRequest {
            body: &body,
            tenant: &id,
            fixed: &fixed,
            now_secs: NOW,
            tz,
        })
        .unwrap_or_else(|e| panic!("{body}: {e:?}"));
        if plan.uses_rollups() {
            continue;
        }
        assert_eq!(plan.statements.len(), 1, "{body}");
        let sql: Rows = common::rows(&fx.conn, &plan.statements[0])
            .iter()
            .map(|r| {
                let key = if dim.is_some() {
                    vec![text(r.get("k"))]
                } else {
                    Vec::new()
                };
                let m = ["visits", "pageviews", "bounces", "duration", "visitors"]
                    .map(|c| int(r.get(c)));
                (key, m)
            })
            .collect();
        let q = Query {
            window: (local_midnight(tz, from), local_midnight(tz, to + 1)),
            filters: filters.iter().map(to_scan).collect(),
            group: Group::Visits(cols.to_vec()),
        };
        let scan = scan_rows(&segments[tenant], &q, [true; 5]);
        out.push(Asked {
            label: format!("{tenant} {body}"),
            sql,
            scan,
        });
    }
    out
}

/// The pipes' top lists (and kpis_summary) with dashboard filters, two or three at once.
fn pipe_questions(fx: &Fixture, segments: &HashMap<&str, Vec<Segment>>, n: usize) -> Vec<Asked> {
    let mut rng = Rng(5);
    let mut out = Vec::new();
    // (pipe, its key columns' output names, the scan's group columns)
    let pipes: [(&str, &[&str], &[Column]); 7] = [
        ("top_sources", &["referrer"], &[Column::Source]),
        ("top_browsers", &["browser"], &[Column::Browser]),
        ("top_locations", &["location"], &[Column::Country]),
        ("entry_pages", &["pathname"], &[Column::Entry]),
        (
            "top_campaigns",
            &["utm_campaign", "utm_source", "utm_medium"],
            &[Column::UtmCampaign, Column::UtmSource, Column::UtmMedium],
        ),
        ("top_pages", &["pathname"], &[]),
        ("kpis_summary", &[], &[]),
    ];
    let params_pool: [(&str, Column, &[&str]); 6] = [
        ("browser", Column::Browser, &["chrome", "Chrome", "firefox"]),
        (
            "source",
            Column::Source,
            &["google.com", "t.co", "Google.com"],
        ),
        ("os", Column::Os, &["linux", "mac"]),
        ("device", Column::Device, &["desktop", "mobile"]),
        ("country", Column::Country, &["ES", "us"]),
        ("utm_medium", Column::UtmMedium, &["email", "cpc"]),
    ];
    let fixed = BTreeMap::new();
    while out.len() < n {
        let tenant = TENANTS[rng.below(2) as usize];
        let madrid = rng.below(2) == 0;
        let tz: &dyn TimeZone = if madrid { &Madrid } else { &UTC };
        let from = FIRST_DAY + 1 + rng.below(DAYS as u64 - 1) as i64;
        let to = (from + rng.below(3) as i64).min(FIRST_DAY + DAYS - 1);
        let (pipe, keys, cols) = pipes[rng.below(pipes.len() as u64) as usize];
        let mut params: Vec<(String, String)> = vec![
            ("date_from".into(), date(from)),
            ("date_to".into(), date(to)),
            ("limit".into(), "1000".into()),
        ];
        let mut filters = Vec::new();
        let mut page_only = None;
        // A page filter, then one or two session filters (distinct columns), maybe a domain.
        let page = rng.pick(&["/pricing", "/blog/one", "/"]);
        params.push(("pathname".into(), page.into()));
        if pipe == "top_pages" {
            page_only = Some(PathFilter {
                op: Op::Is,
                values: vec![page.into()],
                case_sensitive: true,
            });
        } else {
            filters.push(Filter::Leaf {
                op: Op::Is,
                target: Target::ViewedPage,
                values: vec![page.into()],
                case_sensitive: true,
            });
        }
        let first = rng.below(params_pool.len() as u64) as usize;
        let mut chosen = vec![first];
        if rng.below(2) == 0 {
            chosen.push((first + 1 + rng.below(params_pool.len() as u64 - 1) as usize) % 6);
        }
        for i in chosen {
            let (name, col, pool) = params_pool[i];
            let v = rng.pick(pool);
            params.push((name.into(), v.into()));
            filters.push(Filter::Leaf {
                op: Op::Is,
                target: Target::Visit(col),
                values: vec![v.into()],
                case_sensitive: true,
            });
        }
        if rng.below(3) == 0 {
            let d = rng.pick(&DOMAINS);
            params.push(("domain".into(), d.into()));
            filters.push(Filter::Leaf {
                op: Op::Is,
                target: Target::Visit(Column::Domain),
                values: vec![d.into()],
                case_sensitive: true,
            });
        }
        if pipe == "top_campaigns" {
            filters.push(Filter::Not(Box::new(Filter::Leaf {
                op: Op::Is,
                target: Target::Visit(Column::UtmCampaign),
                values: vec![String::new()],
                case_sensitive: true,
            })));
        }
        let id = TenantId::for_tests(tenant).unwrap();
        let plan = query::plan(&query::Request {
            pipe,
            params: &params,
            tenant: &id,
            fixed: &fixed,
            now_secs: NOW,
            tz,
        })
        .unwrap_or_else(|e| panic!("{pipe} {params:?}: {e:?}"));
        assert_eq!(plan.statements.len(), 1, "{pipe}");
        let rows = common::rows(&fx.conn, &plan.statements[0]);
        let window = (local_midnight(tz, from), local_midnight(tz, to + 1));
        let (sql, scan): (Rows, Rows) = if pipe == "kpis_summary" {
            let sql = rows
                .iter()
                .filter(|r| int(r.get("bucket")) == 1 && int(r.get("visits")) > 0)
                .map(|r| {
                    let m = ["visits", "pageviews", "bounces", "duration", "visitors"]
                        .map(|c| int(r.get(c)));
                    (Vec::new(), m)
                })
                .collect();
            let q = Query {
                window,
                filters,
                group: Group::Visits(Vec::new()),
            };
            (sql, scan_rows(&segments[tenant], &q, [true; 5]))
        } else {
            let sql = rows
                .iter()
                .map(|r| {
                    let key = keys.iter().map(|n| text(r.get(*n))).collect();
                    (key, [int(r.get("visits")), int(r.get("hits")), 0, 0, 0])
                })
                .collect();
            let group = if pipe == "top_pages" {
                Group::Pages(page_only)
            } else {
                Group::Visits(cols.to_vec())
            };
            let q = Query {
                window,
                filters,
                group,
            };
            (
                sql,
                scan_rows(&segments[tenant], &q, [true, true, false, false, false]),
            )
        };
        out.push(Asked {
            label: format!("{tenant} {pipe} {params:?} madrid={madrid}"),
            sql,
            scan,
        });
    }
    out
}

fn decoded<'a>(
    bytes: &'a HashMap<&'static str, Vec<Vec<u8>>>,
) -> HashMap<&'static str, Vec<Segment<'a>>> {
    bytes
        .iter()
        .map(|(t, list)| {
            (
                *t,
                list.iter().map(|b| Segment::decode(b).unwrap()).collect(),
            )
        })
        .collect()
}

fn all_questions(fx: &Fixture, segments: &HashMap<&str, Vec<Segment>>) -> Vec<Asked> {
    let mut q = api_questions(fx, segments, 300);
    q.extend(pipe_questions(fx, segments, 200));
    q
}

#[test]
fn the_scan_over_segments_equals_the_planners_visit_level_sql() {
    let fx = fixture();
    let bytes: HashMap<&'static str, Vec<Vec<u8>>> = fx
        .visits
        .iter()
        .map(|(t, v)| (*t, segments_of(v)))
        .collect();
    let segments = decoded(&bytes);
    let asked = all_questions(&fx, &segments);
    let mut nonempty = 0;
    for a in &asked {
        assert_eq!(a.scan, a.sql, "{}", a.label);
        nonempty += usize::from(a.sql.values().any(|m| m[0] > 0));
    }
    // The set must exercise the scan, not compare empty answers.
    assert!(
        nonempty * 10 >= asked.len() * 6,
        "{nonempty} of {} non-empty",
        asked.len()
    );
}

#[test]
fn a_day_sealed_in_parts_answers_exactly_as_in_one_part() {
    let fx = fixture();
    let one: HashMap<&'static str, Vec<Vec<u8>>> = fx
        .visits
        .iter()
        .map(|(t, v)| (*t, segments_of(v)))
        .collect();
    let whole = all_questions(&fx, &decoded(&one));
    for parts in [2, 3, 8] {
        let bytes: HashMap<&'static str, Vec<Vec<u8>>> = fx
            .visits
            .iter()
            .map(|(t, v)| (*t, segments_in_parts(v, parts, false)))
            .collect();
        // Every day is really split: about `parts` segments a day (a part of a day with few
        // visitors may be empty).
        for (t, list) in &bytes {
            assert!(
                list.len() as i64 * 4 >= DAYS * i64::from(parts) * 3,
                "{t}: {}",
                list.len()
            );
        }
        let segments = decoded(&bytes);
        let asked = all_questions(&fx, &segments);
        assert_eq!(asked.len(), whole.len());
        for (a, w) in asked.iter().zip(&whole) {
            assert_eq!(a.label, w.label);
            // Unique visitors included: parts hold disjoint visitors, so their counts add up.
            assert_eq!(a.scan, w.scan, "{parts} parts: {}", a.label);
            assert_eq!(a.scan, a.sql, "{parts} parts: {}", a.label);
        }
    }
    // The control: the same days split by visit instead of by visitor count a visitor with visits
    // in two parts twice, and the oracle sees it.
    let bytes: HashMap<&'static str, Vec<Vec<u8>>> = fx
        .visits
        .iter()
        .map(|(t, v)| (*t, segments_in_parts(v, 3, true)))
        .collect();
    let asked = all_questions(&fx, &decoded(&bytes));
    let wrong = asked.iter().filter(|a| a.scan != a.sql).count();
    assert!(
        wrong * 4 > asked.len(),
        "only {wrong} of {} differ",
        asked.len()
    );
}

#[test]
fn a_segment_with_one_flipped_code_fails_the_oracle() {
    let fx = fixture();
    // One visit of tenant sa changes browser (another code of the same dictionary) in its segment.
    let mut bytes: HashMap<&'static str, Vec<Vec<u8>>> = fx
        .visits
        .iter()
        .map(|(t, v)| (*t, segments_of(v)))
        .collect();
    let mut wrong = fx.visits["sa"].clone();
    let v = wrong
        .iter_mut()
        .find(|v| v.browser == "chrome" && v.first_ts.div_euclid(DAY) == FIRST_DAY + 2)
        .unwrap();
    v.browser = "firefox".into();
    bytes.insert("sa", segments_of(&wrong));
    let segments = decoded(&bytes);
    let asked = all_questions(&fx, &segments);
    let differ = asked.iter().filter(|a| a.scan != a.sql).count();
    assert!(differ > 0, "no question noticed the flipped code");
}

#[test]
fn segments_round_trip_their_rows() {
    let fx = fixture();
    for (_, visits) in fx.visits.iter() {
        for bytes in segments_of(visits) {
            let seg = Segment::decode(&bytes).unwrap();
            let day = seg.day();
            let mut expected: Vec<VisitRow> = visits
                .iter()
                .filter(|v| v.first_ts.div_euclid(DAY) == day)
                .cloned()
                .collect();
            let mut got = seg.rows();
            assert_eq!(got.len(), expected.len());
            assert_eq!(seg.visits(), expected.len());
            // Visitors come back as per-day ordinals: compare everything else, then the partition.
            let visitors = |rows: &[VisitRow]| {
                let mut by: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
                for r in rows {
                    by.entry(&r.visitor).or_default().push(r.first_ts);
                }
                let mut groups: Vec<Vec<i64>> = by.into_values().collect();
                groups.iter_mut().for_each(|g| g.sort_unstable());
                groups.sort();
                groups
            };
            assert_eq!(visitors(&got), visitors(&expected));
            let sort = |rows: &mut Vec<VisitRow>| {
                for r in rows.iter_mut() {
                    r.visitor.clear();
                }
                rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            };
            sort(&mut got);
            sort(&mut expected);
            assert_eq!(got, expected);
        }
    }
}

#[test]
fn corrupt_or_truncated_segments_are_errors_never_panics() {
    let fx = fixture();
    let bytes = segments_of(&fx.visits["sb"]).remove(1);
    assert!(Segment::decode(&bytes).is_ok());
    for cut in 0..bytes.len() {
        assert!(
            Segment::decode(&bytes[..cut]).is_err(),
            "truncated at {cut} of {}",
            bytes.len()
        );
    }
    // Every single-byte change is refused (checksum, header checks), and never panics.
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[at] ^= flip;
            assert!(
                Segment::decode(&b).is_err(),
                "byte {at} ^ {flip:#x} accepted"
            );
        }
    }
    // Decoding again (the worker's kept copies: no checksum) still refuses every cut and never
    // panics on a changed byte; of the same bytes it reads the same segment.
    for cut in 0..bytes.len() {
        assert!(
            Segment::decode_again(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    for at in 0..bytes.len() {
        let mut b = bytes.clone();
        b[at] ^= 0xFF;
        if let Ok(seg) = Segment::decode_again(&b) {
            let window = ((FIRST_DAY - 30) * DAY, (FIRST_DAY + 30) * DAY);
            for group in [
                Group::Pages(None),
                Group::Visits(vec![Column::Browser, Column::Source]),
                Group::Timed(vec![window.0, FIRST_DAY * DAY, window.1], vec![Column::Os]),
            ] {
                let q = Query {
                    window,
                    filters: vec![Filter::Leaf {
                        op: Op::Contains,
                        target: Target::ViewedPage,
                        values: vec!["/".into()],
                        case_sensitive: false,
                    }],
                    group,
                };
                let _ = segment::scan(std::slice::from_ref(&seg), &q);
            }
        }
    }
    assert_eq!(
        format!("{:?}", Segment::decode_again(&bytes).unwrap().rows()),
        format!("{:?}", Segment::decode(&bytes).unwrap().rows())
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Segment::decode(&longer).is_err());
    let mut version = bytes.clone();
    version[4] = 9;
    assert_eq!(
        Segment::decode(&version).unwrap_err(),
        SegmentError::Version(9)
    );
    assert_eq!(
        Segment::decode(b"not a segment at all, just forty-odd bytes...").unwrap_err(),
        SegmentError::NotASegment
    );
}

#[test]
fn encode_refuses_rows_that_do_not_belong_to_the_day() {
    let v = VisitRow {
        first_ts: FIRST_DAY * DAY + 10,
        last_ts: FIRST_DAY * DAY + 20,
        pageviews: 1,
        pages: vec![segment::PageRow {
            pathname: "/".into(),
            first_ts: FIRST_DAY * DAY + 10,
            hits: 1,
        }],
        ..Default::default()
    };
    assert!(encode(FIRST_DAY, std::slice::from_ref(&v)).is_ok());
    assert!(encode(FIRST_DAY + 1, std::slice::from_ref(&v)).is_err());
    let mut ends_early = v.clone();
    ends_early.last_ts = ends_early.first_ts - 1;
    assert!(encode(FIRST_DAY, &[ends_early]).is_err());
    let mut page_before = v.clone();
    page_before.pages[0].first_ts -= 1;
    assert!(encode(FIRST_DAY, &[page_before]).is_err());
    // An empty day is a valid, empty segment.
    let empty = encode(FIRST_DAY, &[]).unwrap();
    let seg = Segment::decode(&empty).unwrap();
    assert_eq!((seg.visits(), seg.pages()), (0, 0));
}

/// The top lists the dashboard filters (`query::scan_route`): sealed days from segments, the other
/// days from SQL, merged, must equal the planner's visit-level answer, whichever days are sealed.
#[test]
fn top_lists_from_sealed_segments_plus_sql_equal_the_visit_level_answer() {
    let fx = fixture();
    let blobs: HashMap<&str, BTreeMap<i64, Vec<u8>>> = fx
        .visits
        .iter()
        .map(|(t, v)| {
            let by_day = segments_of(v)
                .into_iter()
                .map(|b| (Segment::decode(&b).unwrap().day() * DAY, b))
                .collect();
            (*t, by_day)
        })
        .collect();
    let pipes = [
        "top_sources",
        "top_browsers",
        "top_locations",
        "top_os",
        "top_devices",
        "entry_pages",
        "exit_pages",
        "top_campaigns",
        "top_pages",
    ];
    let pool: [(&str, &[&str]); 6] = [
        ("browser", &["chrome", "Chrome", "firefox"]),
        ("source", &["google.com", "t.co"]),
        ("os", &["linux", "mac"]),
        ("device", &["desktop", "mobile"]),
        ("country", &["ES", "us"]),
        ("utm_medium", &["email", "cpc"]),
    ];
    let fixed = BTreeMap::new();
    let mut rng = Rng(3);
    let (mut routed, mut compared, mut with_cells) = (0, 0, 0);
    while routed < 120 {
        let tenant = TENANTS[rng.below(2) as usize];
        let madrid = rng.below(2) == 0;
        let tz: &dyn TimeZone = if madrid { &Madrid } else { &UTC };
        let from = FIRST_DAY + rng.below(DAYS as u64) as i64;
        let to = (from + rng.below(4) as i64).min(FIRST_DAY + DAYS - 1);
        let pipe = pipes[rng.below(pipes.len() as u64) as usize];
        let mut params: Vec<(String, String)> = vec![
            ("date_from".into(), date(from)),
            ("date_to".into(), date(to)),
            (
                "limit".into(),
                ["3", "10", "1000"][rng.below(3) as usize].into(),
            ),
            ("skip".into(), ["0", "0", "2"][rng.below(3) as usize].into()),
        ];
        let (name, values) = pool[rng.below(pool.len() as u64) as usize];
        params.push((name.into(), rng.pick(values).into()));
        if rng.below(2) == 0 {
            params.push((
                "pathname".into(),
                rng.pick(&["/pricing", "/", "/blog/one"]).into(),
            ));
        }
        if rng.below(3) == 0 {
            params.push(("domain".into(), rng.pick(&DOMAINS).into()));
        }
        let id = TenantId::for_tests(tenant).unwrap();
        let req = query::Request {
            pipe,
            params: &params,
            tenant: &id,
            fixed: &fixed,
            now_secs: NOW,
            tz,
        };
        let plan = query::plan(&req).unwrap();
        let Some(route) = query::scan_route(&req).unwrap() else {
            continue;
        };
        routed += 1;
        assert_tenant_sql(&route, &[], tenant);
        let rows: Vec<_> = plan
            .statements
            .iter()
            .map(|s| common::rows(&fx.conn, s))
            .collect();
        let expected = query::assemble(&plan, rows).unwrap();
        let (first, end) = route.days();
        let days: Vec<i64> = blobs[tenant]
            .keys()
            .copied()
            .filter(|d| (first..end).contains(d))
            .collect();
        let random: Vec<i64> = days.iter().copied().filter(|_| rng.below(2) == 0).collect();
        for sealed in [Vec::new(), days.clone(), random] {
            let segments: Vec<Segment> = sealed
                .iter()
                .map(|d| Segment::decode(&blobs[tenant][d]).unwrap())
                .collect();
            let scanned = segment::scan(&segments, route.query()).unwrap();
            let sql: Vec<_> = route
                .sql(&sealed)
                .iter()
                .map(|s| common::rows(&fx.conn, s))
                .collect();
            let got = route.assemble(&plan, scanned, sql.clone()).unwrap();
            assert_eq!(
                got, expected,
                "{tenant} {pipe} {params:?} madrid={madrid} sealed={sealed:?}"
            );
            compared += usize::from(!expected.data.is_empty());
            // With one filter: the sealed days the window holds wholly from their cells (as the
            // worker reads them), the others scanned, the same SQL.
            if let Some(ask) = route.cells() {
                let built: Vec<(usize, Vec<u8>)> = segments
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| route.cells_day(s.day() * DAY))
                    .map(|(i, s)| (i, segment::cells::build(s, ask.target, 0)))
                    .collect();
                let mut taken = Vec::new();
                let mut with = Vec::new();
                for (i, b) in &built {
                    let c = segment::cells::Cells::decode(b).unwrap();
                    if c.usable(route.query().window, ask.grouping) {
                        taken.push(*i);
                        with.push(c);
                    }
                }
                let rest: Vec<Segment> = segments
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !taken.contains(i))
                    .map(|(_, s)| s.clone())
                    .collect();
                let mut scanned = segment::scan(&rest, route.query()).unwrap();
                scanned.merge(
                    segment::cells::answer(&with, &ask.value, ask.grouping, ask.skip_empty)
                        .unwrap(),
                );
                let got = route.assemble(&plan, scanned, sql).unwrap();
                assert_eq!(
                    got, expected,
                    "cells: {tenant} {pipe} {params:?} madrid={madrid} sealed={sealed:?}"
                );
                with_cells += with.len();
            }
        }
    }
    assert!(compared > 150, "{compared} non-empty comparisons");
    assert!(with_cells > 40, "{with_cells} days from cells");
}

/// Each tenant's segments by UTC day start.
fn blobs_by_day(fx: &Fixture) -> HashMap<&'static str, BTreeMap<i64, Vec<u8>>> {
    fx.visits
        .iter()
        .map(|(t, v)| {
            let by_day = segments_of(v)
                .into_iter()
                .map(|b| (Segment::decode(&b).unwrap().day() * DAY, b))
                .collect();
            (*t, by_day)
        })
        .collect()
}

/// None, all, and a random half of a route's days with segments.
fn sealings(
    blobs: &BTreeMap<i64, Vec<u8>>,
    (first, end): (i64, i64),
    rng: &mut Rng,
) -> [Vec<i64>; 3] {
    let days: Vec<i64> = blobs
        .keys()
        .copied()
        .filter(|d| (first..end).contains(d))
        .collect();
    let random: Vec<i64> = days.iter().copied().filter(|_| rng.below(2) == 0).collect();
    [Vec::new(), days, random]
}

/// The SQL part of a route reads its tenant only.
fn assert_tenant_sql(route: &query::ScanRoute, sealed: &[i64], tenant: &str) {
    for s in route.sql(sealed) {
        assert_eq!(
            s.binds.first(),
            Some(&SqlValue::Text(tenant.into())),
            "{}",
            s.sql
        );
        assert_eq!(
            s.sql.matches("tenant_id = ?").count(),
            s.sql.matches(" FROM ").count()
                - s.sql.matches(" FROM w ").count()
                - s.sql.matches(" FROM g ").count(),
            "{}",
            s.sql
        );
    }
}

/// Asia/Kolkata's rule (+5:30): local days start at the UTC hour holding local midnight.
const KOLKATA: query::FixedOffset = query::FixedOffset(19_800);

/// kpis and kpis_summary on the visit-level path (`query::scan_route`): sealed days from segments,
/// the other days from SQL, merged, must equal the planner's visit-level answer (hourly, daily and
/// summed; UTC, Madrid across its DST change, Kolkata; ranges whose first day starts mid-UTC-day),
/// whichever days are sealed. Another tenant's segments give another answer.
#[test]
fn kpis_from_sealed_segments_plus_sql_equal_the_visit_level_answer() {
    let fx = fixture();
    let blobs = blobs_by_day(&fx);
    let pool: [(&str, &[&str]); 6] = [
        ("browser", &["chrome", "Chrome", "firefox"]),
        ("source", &["google.com", "t.co"]),
        ("os", &["linux", "mac"]),
        ("device", &["desktop", "mobile"]),
        ("country", &["ES", "us"]),
        ("utm_medium", &["email", "cpc"]),
    ];
    let fixed = BTreeMap::new();
    let mut rng = Rng(13);
    let (mut routed, mut compared, mut leaks) = (0, 0, 0);
    let mut hourly = 0;
    while routed < 120 {
        let tenant = TENANTS[rng.below(2) as usize];
        let zone = rng.below(3);
        let tz: &dyn TimeZone = match zone {
            0 => &UTC,
            1 => &Madrid,
            _ => &KOLKATA,
        };
        let from = FIRST_DAY + rng.below(DAYS as u64) as i64;
        let to = (from + rng.below(4) as i64 * rng.below(2) as i64).min(FIRST_DAY + DAYS - 1);
        let pipe = ["kpis", "kpis_summary"][rng.below(2) as usize];
        let mut params: Vec<(String, String)> = vec![
            ("date_from".into(), date(from)),
            ("date_to".into(), date(to)),
        ];
        for _ in 0..1 + rng.below(2) {
            let (name, values) = pool[rng.below(pool.len() as u64) as usize];
            if !params.iter().any(|(n, _)| n == name) {
                params.push((name.into(), rng.pick(values).into()));
            }
        }
        if rng.below(2) == 0 {
            params.push((
                "pathname".into(),
                rng.pick(&["/pricing", "/", "/blog/one"]).into(),
            ));
        }
        if rng.below(3) == 0 {
            params.push(("domain".into(), rng.pick(&DOMAINS).into()));
        }
        let id = TenantId::for_tests(tenant).unwrap();
        let req = query::Request {
            pipe,
            params: &params,
            tenant: &id,
            fixed: &fixed,
            now_secs: NOW,
            tz,
        };
        let plan = query::plan(&req).unwrap();
        let Some(route) = query::scan_route(&req).unwrap() else {
            continue;
        };
        routed += 1;
        hourly += usize::from(pipe == "kpis" && from == to);
        assert_tenant_sql(&route, &[], tenant);
        let rows: Vec<_> = plan
            .statements
            .iter()
            .map(|s| common::rows(&fx.conn, s))
            .collect();
        let expected = query::assemble(&plan, rows).unwrap();
        let nonzero = expected
            .data
            .iter()
            .any(|r| r.get("visits").and_then(Value::as_i64).unwrap_or(0) > 0);
        for sealed in sealings(&blobs[tenant], route.days(), &mut rng) {
            let segments: Vec<Segment> = sealed
                .iter()
                .map(|d| Segment::decode(&blobs[tenant][d]).unwrap())
                .collect();
            let scanned = segment::scan(&segments, route.query()).unwrap();
            let sql: Vec<_> = route
                .sql(&sealed)
                .iter()
                .map(|s| common::rows(&fx.conn, s))
                .collect();
            let got = route.assemble(&plan, scanned, sql).unwrap();
            assert_eq!(
                got, expected,
                "{tenant} {pipe} {params:?} zone={zone} sealed={sealed:?}"
            );
            compared += usize::from(nonzero && !sealed.is_empty());
        }
        // The other tenant's segments in place of this one's: the oracle sees it.
        let other = TENANTS.iter().find(|t| **t != tenant).unwrap();
        let [_, all, _] = sealings(&blobs[other], route.days(), &mut rng);
        if nonzero && !all.is_empty() {
            let segments: Vec<Segment> = all
                .iter()
                .map(|d| Segment::decode(&blobs[*other][d]).unwrap())
                .collect();
            let scanned = segment::scan(&segments, route.query()).unwrap();
            let sql: Vec<_> = route
                .sql(&all)
                .iter()
                .map(|s| common::rows(&fx.conn, s))
                .collect();
            leaks += usize::from(route.assemble(&plan, scanned, sql).unwrap() != expected);
        }
    }
    assert!(compared > 100, "{compared} non-empty comparisons");
    assert!(hourly > 10, "{hourly} hourly kpis");
    assert!(
        leaks > 30,
        "{leaks} answers changed by another tenant's segments"
    );
}

/// `POST /v0/query` on the visit rows (`query::query_route`): random filter trees, grouped by
/// nothing, a visit column, the hostname or a time grain, in UTC, Madrid and Kolkata: sealed days
/// from segments plus SQL for the others must equal the planner's visit-level answer.
#[test]
fn queries_from_sealed_segments_plus_sql_equal_the_visit_level_answer() {
    let fx = fixture();
    let blobs = blobs_by_day(&fx);
    let dims: [Option<&str>; 10] = [
        None,
        Some("visit:source"),
        Some("visit:browser"),
        Some("visit:exit_page"),
        Some("event:hostname"),
        Some("time"),
        Some("time:hour"),
        Some("time:day"),
        Some("time:week"),
        Some("time:month"),
    ];
    let fixed = BTreeMap::new();
    let mut rng = Rng(17);
    let (mut routed, mut compared, mut timed) = (0, 0, 0);
    while routed < 150 {
        let tenant = TENANTS[rng.below(2) as usize];
        let zone = rng.below(3);
        let (tz, name): (&dyn TimeZone, &str) = match zone {
            0 => (&UTC, "UTC"),
            1 => (&Madrid, "Europe/Madrid"),
            _ => (&KOLKATA, "Asia/Kolkata"),
        };
        let from = FIRST_DAY + rng.below(DAYS as u64) as i64;
        let to = (from + rng.below(4) as i64).min(FIRST_DAY + DAYS - 1);
        let dim = dims[rng.below(dims.len() as u64) as usize];
        let filters: Vec<Gen> = (0..1 + rng.below(3))
            .map(|_| gen_filter(&mut rng, 0))
            .collect();
        let limit = [3, 10, 1000][rng.below(3) as usize];
        let body = json!({
            "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "views_per_visit"],
            "date_range": [date(from), date(to)],
            "dimensions": dim.map(|d| vec![d]).unwrap_or_default(),
            "filters": filters.iter().map(to_json).collect::<Vec<_>>(),
            "timezone": name,
            "pagination": {"limit": limit},
            "include": if dim.is_some_and(|d| d.starts_with("time")) {
                json!({"total_rows": true, "time_labels": true})
            } else {
                json!({"total_rows": true})
            },
        });
        let id = TenantId::for_tests(tenant).unwrap();
        let plan = query::plan_query(&ApiRequest {
            body: &body,
            tenant: &id,
            fixed: &fixed,
            now_secs: NOW,
            tz,
        })
        .unwrap_or_else(|e| panic!("{body}: {e:?}"));
        let Some(route) = query::query_route(&plan, &id, tz) else {
            assert!(plan.uses_rollups(), "not routed: {body}");
            continue;
        };
        routed += 1;
        timed += usize::from(dim.is_some_and(|d| d.starts_with("time")));
        assert_tenant_sql(&route, &[], tenant);
        let rows: Vec<_> = plan
            .statements
            .iter()
            .map(|s| common::rows(&fx.conn, s))
            .collect();
        let expected = query::assemble_query(&plan, rows).unwrap();
        let nonempty = !expected["results"].as_array().unwrap().is_empty();
        for sealed in sealings(&blobs[tenant], route.days(), &mut rng) {
            let segments: Vec<Segment> = sealed
                .iter()
                .map(|d| Segment::decode(&blobs[tenant][d]).unwrap())
                .collect();
            let scanned = segment::scan(&segments, route.query()).unwrap();
            let sql: Vec<_> = route
                .sql(&sealed)
                .iter()
                .map(|s| common::rows(&fx.conn, s))
                .collect();
            let got = route.assemble_query(&plan, scanned, sql).unwrap();
            assert_eq!(got, expected, "{tenant} {body} sealed={sealed:?}");
            compared += usize::from(nonempty && !sealed.is_empty());
        }
    }
    assert!(compared > 150, "{compared} non-empty comparisons");
    assert!(timed > 40, "{timed} time-grouped queries");
}

/// The distinct values of a cells target in `visits` (a viewed page: every page's path).
fn target_values(visits: &[VisitRow], t: Target) -> Vec<String> {
    let mut out: Vec<String> = visits
        .iter()
        .flat_map(|v| match t {
            Target::ViewedPage => v.pages.iter().map(|p| p.pathname.clone()).collect(),
            Target::Visit(c) => vec![match c {
                Column::Domain => v.domain.clone(),
                Column::Source => v.source.clone(),
                Column::UtmSource => v.utm_source.clone(),
                Column::UtmMedium => v.utm_medium.clone(),
                Column::UtmCampaign => v.utm_campaign.clone(),
                Column::Browser => v.browser.clone(),
                Column::Os => v.os.clone(),
                Column::Device => v.device.clone(),
                Column::Country => v.country.clone(),
                Column::Entry => v.entry_path.clone(),
                Column::Exit => v.exit_path.clone(),
            }],
        })
        .collect();
    out.sort();
    out.dedup();
    // A value no visit has, and one differing only in case from one that exists.
    out.push("nope".into());
    out.push(out[0].to_uppercase());
    out
}

/// For random visits (six days, visits whose pages run past midnight or for days, visitors with
/// several visits a day and across days, days in 1 or 3 parts by visitor range), every cells target,
/// value, grouping and window: the sealed parts' cells for the days the window holds wholly (and, for
/// pages, whose pages it holds), plus the scan of the other parts, equal the scan of every part, unique
/// visitors included. Then a cell changed by one visit must not.
#[test]
fn one_filter_cells_answer_exactly_as_the_scan() {
    use segment::cells::{self, Grouping, GROUPINGS, TARGETS};
    let fx = fixture();
    let mut used = 0usize;
    let mut asked = 0usize;
    for (tenant, visits) in &fx.visits {
        for parts in [1, 3] {
            let blobs = segments_in_parts(visits, parts, false);
            let segs: Vec<Segment> = blobs.iter().map(|b| Segment::decode(b).unwrap()).collect();
            for target in TARGETS {
                let built: Vec<Vec<u8>> = segs.iter().map(|s| cells::build(s, target, 7)).collect();
                let parsed: Vec<cells::Cells> = built
                    .iter()
                    .map(|b| cells::Cells::decode(b).unwrap())
                    .collect();
                for (c, s) in parsed.iter().zip(&segs) {
                    assert_eq!((c.day(), c.sealed(), c.target()), (s.day(), 7, target));
                }
                for value in target_values(visits, target) {
                    for (g, grouping) in GROUPINGS.iter().enumerate() {
                        if !cells::holds(target, g) {
                            continue;
                        }
                        let group = match grouping {
                            Grouping::Visits(cols) => Group::Visits(cols.to_vec()),
                            Grouping::Pages => Group::Pages(None),
                        };
                        // Whole days, a window starting and ending mid-day, one ending on the day
                        // the last visits' pages run into, the whole week.
                        let d = |n: i64| (FIRST_DAY + n) * DAY;
                        let windows = [
                            (d(0), d(DAYS)),
                            (d(1), d(3)),
                            (d(1) - 3 * 3600, d(4) + 5 * 3600),
                            (d(2), d(3)),
                            (d(-1), d(DAYS + 2)),
                            (d(3) + 3600, d(4) + 3600),
                        ];
                        for window in windows {
                            let skip = [false, matches!(g, 1)];
                            for skip_empty in
                                skip.into_iter().collect::<std::collections::BTreeSet<_>>()
                            {
                                let mut filters = vec![Filter::Leaf {
                                    op: Op::Is,
                                    target,
                                    values: vec![value.clone()],
                                    case_sensitive: true,
                                }];
                                if skip_empty {
                                    filters.push(Filter::Not(Box::new(Filter::Leaf {
                                        op: Op::Is,
                                        target: Target::Visit(Column::UtmCampaign),
                                        values: vec![String::new()],
                                        case_sensitive: true,
                                    })));
                                }
                                let q = Query {
                                    window,
                                    filters,
                                    group: group.clone(),
                                };
                                let expected = segment::scan(&segs, &q).unwrap();
                                let (mut with, mut rest) = (Vec::new(), Vec::new());
                                for (c, s) in parsed.iter().zip(&segs) {
                                    if c.usable(window, g) {
                                        with.push(c.clone());
                                    } else {
                                        rest.push(s.clone());
                                    }
                                }
                                used += with.len();
                                asked += 1;
                                let mut got = segment::scan(&rest, &q).unwrap();
                                got.merge(cells::answer(&with, &value, g, skip_empty).unwrap());
                                assert_eq!(
                                    got.groups, expected.groups,
                                    "{tenant} {parts} parts {target:?} = {value:?} by {grouping:?} \
                                     in {window:?} skip_empty {skip_empty}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    // Not vacuous: most answers took cells for most of their days.
    assert!(
        asked > 5_000 && used > asked * 3,
        "{used} cells for {asked} answers"
    );

    // A cell that counts one visit more is caught: tenant sa's day 2 with one chrome visit's source
    // changed, its cells against the true segment's scan.
    let mut wrong = fx.visits["sa"].clone();
    let v = wrong
        .iter_mut()
        .find(|v| v.browser == "chrome" && v.first_ts.div_euclid(DAY) == FIRST_DAY + 2)
        .unwrap();
    v.source = "changed.example".into();
    let day: Vec<VisitRow> = wrong
        .into_iter()
        .filter(|v| v.first_ts.div_euclid(DAY) == FIRST_DAY + 2)
        .collect();
    let truth: Vec<VisitRow> = fx.visits["sa"]
        .iter()
        .filter(|v| v.first_ts.div_euclid(DAY) == FIRST_DAY + 2)
        .cloned()
        .collect();
    let (bad, good) = (
        encode(FIRST_DAY + 2, &day).unwrap(),
        encode(FIRST_DAY + 2, &truth).unwrap(),
    );
    let bad = cells::build(
        &Segment::decode(&bad).unwrap(),
        Target::Visit(Column::Browser),
        1,
    );
    let good_seg = Segment::decode(&good).unwrap();
    let q = Query {
        window: ((FIRST_DAY + 2) * DAY, (FIRST_DAY + 3) * DAY),
        filters: vec![Filter::Leaf {
            op: Op::Is,
            target: Target::Visit(Column::Browser),
            values: vec!["chrome".into()],
            case_sensitive: true,
        }],
        group: Group::Visits(vec![Column::Source]),
    };
    let from_cells =
        cells::answer(&[cells::Cells::decode(&bad).unwrap()], "chrome", 0, false).unwrap();
    assert_ne!(from_cells, segment::scan(&[good_seg], &q).unwrap());
}

/// Cells that are cut, have a flipped byte or a wrong magic are errors, never panics.
#[test]
fn corrupt_or_truncated_cells_are_errors_never_panics() {
    use segment::cells;
    let fx = fixture();
    let blob = segments_of(&fx.visits["sa"]).remove(0);
    let seg = Segment::decode(&blob).unwrap();
    let good = cells::build(&seg, Target::ViewedPage, 3);
    assert!(cells::Cells::decode(&good).is_ok());
    for cut in [0, 10, 39, 40, good.len() / 2, good.len() - 1] {
        assert!(cells::Cells::decode(&good[..cut]).is_err(), "cut at {cut}");
    }
    for at in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[at] ^= 0x10;
        // Decoding without the checksum may succeed; answering must then error or return, not panic.
        if let Ok(c) = cells::Cells::decode_again(&b) {
            for g in 0..8 {
                let _ = cells::answer(std::slice::from_ref(&c), "/pricing", g, false);
            }
        }
        assert!(cells::Cells::decode(&b).is_err(), "flip at {at}");
    }
    assert_eq!(
        cells::Cells::decode(&blob).unwrap_err(),
        SegmentError::NotASegment
    );
}

/// For random visits (days in 1 and 3 parts by visitor range), every cells target, value and
/// grouping: each day's cells merged from its parts' cells (`cells::merge`) answer exactly what the
/// parts' cells answer, day by day and over the week (unique visitors included), and are usable for
/// the same windows; over the whole week they equal the scan of every part. A day's cells merged
/// from all but one part do not. Cells of other days, versions or targets are not merged.
#[test]
fn day_cells_merged_from_the_parts_answer_as_the_parts() {
    use segment::cells::{self, Grouping, GROUPINGS, TARGETS};
    let fx = fixture();
    let (mut compared, mut nonempty, mut missed, mut used) = (0usize, 0usize, 0usize, 0usize);
    let d = |n: i64| (FIRST_DAY + n) * DAY;
    let windows = [
        (d(0), d(DAYS)),
        (d(1), d(3)),
        (d(1) - 3 * 3600, d(4) + 5 * 3600),
        (d(-1), d(DAYS + 2)),
        (d(3) + 3600, d(4) + 3600),
    ];
    for (tenant, visits) in &fx.visits {
        for parts in [1, 3] {
            let blobs = segments_in_parts(visits, parts, false);
            let segs: Vec<Segment> = blobs.iter().map(|b| Segment::decode(b).unwrap()).collect();
            for target in TARGETS {
                let built: Vec<Vec<u8>> = segs.iter().map(|s| cells::build(s, target, 7)).collect();
                let parsed: Vec<cells::Cells> = built
                    .iter()
                    .map(|b| cells::Cells::decode(b).unwrap())
                    .collect();
                // Per day: its parts' cells, its merged cells, and the merged cells of all but its
                // first part.
                let mut by_day: BTreeMap<i64, Vec<cells::Cells>> = BTreeMap::new();
                for c in &parsed {
                    by_day.entry(c.day()).or_default().push(c.clone());
                }
                let merged: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = by_day
                    .iter()
                    .map(|(day, cs)| {
                        let short = (cs.len() > 1).then(|| cells::merge(&cs[1..]).unwrap());
                        (*day, cells::merge(cs).unwrap(), short)
                    })
                    .collect();
                let days: Vec<(i64, cells::Cells)> = merged
                    .iter()
                    .map(|(day, b, _)| (*day, cells::Cells::decode(b).unwrap()))
                    .collect();
                for (day, c) in &days {
                    assert_eq!((c.day(), c.sealed(), c.target()), (*day, 7, target));
                    // Merging merged cells again changes nothing, and merging in steps (the cron
                    // merges a few parts at a time with the day's cells so far) gives the same bytes.
                    let whole = &merged.iter().find(|m| m.0 == *day).unwrap().1;
                    assert_eq!(&cells::merge(std::slice::from_ref(c)).unwrap(), whole);
                    let cs = &by_day[day];
                    if cs.len() > 1 {
                        let first = cells::merge(&cs[..cs.len() - 1]).unwrap();
                        let mut step = vec![cells::Cells::decode(&first).unwrap()];
                        step.push(cs[cs.len() - 1].clone());
                        assert_eq!(&cells::merge(&step).unwrap(), whole);
                    }
                }
                for value in target_values(visits, target) {
                    for (g, grouping) in GROUPINGS.iter().enumerate() {
                        if !cells::holds(target, g) {
                            continue;
                        }
                        for window in windows {
                            for (day, c) in &days {
                                let of_day: Vec<cells::Cells> = by_day[day].clone();
                                assert_eq!(
                                    c.usable(window, g),
                                    of_day.iter().all(|p| p.usable(window, g)),
                                    "{tenant} {parts} parts {target:?} day {day} by {grouping:?} \
                                     in {window:?}"
                                );
                            }
                        }
                        for skip_empty in [false, true] {
                            for (day, c) in &days {
                                let want =
                                    cells::answer(&by_day[day], &value, g, skip_empty).unwrap();
                                let got =
                                    cells::answer(std::slice::from_ref(c), &value, g, skip_empty)
                                        .unwrap();
                                assert_eq!(
                                    got.groups, want.groups,
                                    "{tenant} {parts} parts {target:?} = {value:?} day {day} by \
                                     {grouping:?} skip_empty {skip_empty}"
                                );
                                compared += 1;
                                nonempty += usize::from(!want.groups.is_empty());
                                // A part left out of the merge is missed.
                                let short = merged.iter().find(|m| m.0 == *day).unwrap();
                                if let (Some(short), false) = (&short.2, want.groups.is_empty()) {
                                    let s = cells::Cells::decode(short).unwrap();
                                    let partial =
                                        cells::answer(&[s], &value, g, skip_empty).unwrap();
                                    missed += usize::from(partial.groups != want.groups);
                                }
                            }
                        }
                        // The whole week from the day cells usable for it (pages: not those whose
                        // pages run past its end), the scan of the other days' parts, equal the
                        // scan of every part.
                        let group = match grouping {
                            Grouping::Visits(cols) => Group::Visits(cols.to_vec()),
                            Grouping::Pages => Group::Pages(None),
                        };
                        let week = (d(-1), d(DAYS + 2));
                        let q = Query {
                            window: week,
                            filters: vec![Filter::Leaf {
                                op: Op::Is,
                                target,
                                values: vec![value.clone()],
                                case_sensitive: true,
                            }],
                            group,
                        };
                        let with: Vec<cells::Cells> = days
                            .iter()
                            .filter(|(_, c)| c.usable(week, g))
                            .map(|(_, c)| c.clone())
                            .collect();
                        let rest: Vec<Segment> = segs
                            .iter()
                            .filter(|s| !with.iter().any(|c| c.day() == s.day()))
                            .cloned()
                            .collect();
                        used += with.len();
                        let mut got = segment::scan(&rest, &q).unwrap();
                        got.merge(cells::answer(&with, &value, g, false).unwrap());
                        assert_eq!(
                            got.groups,
                            segment::scan(&segs, &q).unwrap().groups,
                            "{tenant} {parts} parts {target:?} = {value:?} by {grouping:?}"
                        );
                    }
                }
            }
        }
    }
    // Not vacuous: many non-empty answers, and leaving a part out changed most of those of 3 parts.
    assert!(
        compared > 5_000 && nonempty > compared / 4 && missed > nonempty / 4 && used > 1_000,
        "{compared} compared, {nonempty} non-empty, {missed} missed without a part, {used} days \
         from day cells over the week"
    );

    // Cells of other versions, days or targets are not merged.
    let blobs = segments_in_parts(&fx.visits["sa"], 3, false);
    let segs: Vec<Segment> = blobs.iter().map(|b| Segment::decode(b).unwrap()).collect();
    let browser = Target::Visit(Column::Browser);
    let a = cells::build(&segs[0], browser, 7);
    for other in [
        cells::build(&segs[1], browser, 8),
        cells::build(&segs[3], browser, 7),
        cells::build(&segs[1], Target::Visit(Column::Os), 7),
    ] {
        let both = [
            cells::Cells::decode(&a).unwrap(),
            cells::Cells::decode(&other).unwrap(),
        ];
        assert!(cells::merge(&both).is_err());
    }
    assert!(cells::merge(&[]).is_err());
}
