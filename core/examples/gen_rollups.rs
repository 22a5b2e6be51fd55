//! Synthetic traffic for the query benchmark (`bench/query.mjs`): deterministic events for many tenants
//! with a Zipf-like skew, rolled up with [`starling_core::rollup::statements_for`] into a SQLite file
//! holding the D1 schema, and optionally written raw as CSV for DuckDB.
//!
//! ```text
//! cargo run --release -p starling-core --example gen_rollups -- \
//!     --events 1000000 --tenants 1000 --days 30 --db /tmp/d1.sqlite [--raw /tmp/raw.csv] \
//!     [--now 1763000000] [--seed 1] [--zipf 1.1] [--chunk 5000] [--analyze true] [--meta /tmp/d1.sqlite.meta.json]
//!     [--funnels true] [--goals true]   (define a 4-step page funnel, or four goals, for every tenant)
//! ```
//!
//! Events fall in the `days` UTC calendar days ending with the day of `now` (up to `now`), so a date
//! range of those days covers every event. If `--db` has no `sessions` table yet, the migrations in
//! `migrations/` are applied first; otherwise rows are upserted into the existing schema (the local D1
//! file of `wrangler dev --persist-to`). Prints progress to stderr, a one-line summary to stdout, and
//! writes per-tenant totals to the meta JSON file.
//!
//! With `--time-queries t0000,t0455 [--samples 50] [--budget 30]` it generates nothing: it plans every endpoint with
//! [`starling_core::query::plan`] over the `days` dates ending with the day of `now` (UTC) and times the
//! statements natively with rusqlite on `--db` (integers bound as REAL, as D1 does), printing JSON with
//! p50/p95 per tenant and endpoint: the SQL cost without the local D1 and HTTP layers. An endpoint
//! stops early (after at least 5 samples) once it has run for `budget` seconds. Besides the unfiltered
//! UTC pipes it times each range pipe with one filter (`browser=chrome`) and in a +01:00 zone, and
//! `/v0/query` by `visit:source` with one and with two filters (`--basic true`: the pipes only).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params_from_iter, Connection};
use starling_core::event::EnrichedEvent;
use starling_core::rollup::{prior_lookup, statements_for, PriorState};
use starling_core::sql::SqlValue;

/// splitmix64: small, fast and good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Index into a cumulative distribution (last entry = total).
    fn pick_cdf(&mut self, cdf: &[f64]) -> usize {
        let x = self.unit() * cdf[cdf.len() - 1];
        cdf.partition_point(|c| *c <= x).min(cdf.len() - 1)
    }
    fn weighted<'a>(&mut self, list: &[(&'a str, u32)]) -> &'a str {
        let total: u32 = list.iter().map(|(_, w)| w).sum();
        let mut x = self.below(u64::from(total)) as u32;
        for (v, w) in list {
            if x < *w {
                return v;
            }
            x -= w;
        }
        list[list.len() - 1].0
    }
}

fn cdf(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

const SOURCES: &[(&str, u32)] = &[
    ("", 40),
    ("google.com", 30),
    ("bing.com", 3),
    ("duckduckgo.com", 3),
    ("t.co", 4),
    ("news.ycombinator.com", 2),
    ("reddit.com", 3),
    ("facebook.com", 3),
    ("linkedin.com", 2),
    ("github.com", 2),
    ("*", 8), // long tail: ref-<n>.example
];
const COUNTRIES: &[(&str, u32)] = &[
    ("US", 300),
    ("DE", 80),
    ("GB", 70),
    ("FR", 50),
    ("IN", 50),
    ("CA", 35),
    ("NL", 25),
    ("BR", 25),
    ("ES", 22),
    ("IT", 22),
    ("JP", 20),
    ("AU", 18),
    ("PL", 15),
    ("SE", 12),
    ("CH", 10),
    ("AT", 9),
    ("BE", 9),
    ("MX", 9),
    ("KR", 8),
    ("SG", 7),
    ("IE", 6),
    ("DK", 6),
    ("NO", 6),
    ("FI", 5),
    ("PT", 5),
    ("CZ", 5),
    ("RO", 4),
    ("TR", 4),
    ("AR", 4),
    ("ZA", 4),
    ("IL", 4),
    ("NZ", 3),
    ("UA", 3),
    ("ID", 3),
    ("VN", 3),
    ("PH", 3),
    ("NG", 2),
    ("EG", 2),
    ("", 5),
];
const CAMPAIGNS: &[(&str, &str, &str)] = &[
    ("newsletter", "newsletter", "email"),
    ("spring_sale", "google", "cpc"),
    ("launch", "twitter", "social"),
    ("retargeting", "facebook", "cpc"),
    ("webinar", "linkedin", "social"),
    ("black_friday", "newsletter", "email"),
];
const ACTIONS: &[(&str, &str)] = &[
    ("signup", r#"{"plan":"pro"}"#),
    ("click_cta", r#"{"id":"hero"}"#),
    ("download", r#"{"file":"guide.pdf"}"#),
];
/// Pageviews per session, 1..=6.
const PAGEVIEWS: &[f64] = &[45.0, 20.0, 13.0, 10.0, 7.0, 5.0];

struct Tenant {
    id: String,
    domains: Vec<String>,
    paths: Vec<String>,
    path_cdf: Vec<f64>,
    visitors: u64,
}

#[derive(Default, Clone, Copy)]
struct Totals {
    events: u64,
    pageviews: u64,
    sessions: u64,
    bot_events: u64,
    custom_events: u64,
}

struct Args {
    events: u64,
    tenants: usize,
    days: i64,
    db: String,
    raw: Option<String>,
    meta: String,
    now: i64,
    seed: u64,
    zipf: f64,
    chunk: usize,
    analyze: bool,
    time_queries: Option<String>,
    /// Time only the unfiltered UTC pipes (the earlier benchmark's set).
    time_queries_basic: bool,
    samples: usize,
    budget: f64,
    /// Define a 4-step page funnel (id 1) for every tenant before generating (`--funnels true`).
    funnels: bool,
    /// Define the benchmark's goals ([`bench_goals`]) for every tenant before generating (`--goals true`).
    goals: bool,
}

/// The benchmark's goals: two custom events the generator sends and two page patterns.
fn bench_goals() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"name": "Signup", "kind": "event", "match": "signup"}),
        serde_json::json!({"name": "CTA", "kind": "event", "match": "click_cta"}),
        serde_json::json!({"name": "Pricing", "kind": "page", "match": "/pricing"}),
        serde_json::json!({"name": "Blog", "kind": "page", "match": "/blog*"}),
    ]
}

/// The benchmark's funnel: four page steps the generated paths reach often.
fn bench_funnel() -> Vec<starling_core::funnels::Step> {
    use starling_core::funnels::Step;
    vec![
        Step::Page("/".into()),
        Step::Page("/pricing".into()),
        Step::Page("/about".into()),
        Step::Page("/blog*".into()),
    ]
}

fn args() -> Args {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let Some(name) = k.strip_prefix("--") else {
            panic!("unexpected argument {k}");
        };
        let v = it
            .next()
            .unwrap_or_else(|| panic!("--{name} needs a value"));
        map.insert(name.to_owned(), v);
    }
    let num = |k: &str, d: f64| -> f64 {
        map.get(k).map_or(d, |v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("--{k}: not a number"))
        })
    };
    let db = map.get("db").cloned().expect("--db PATH is required");
    let now_default = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    Args {
        events: num("events", 1e6) as u64,
        tenants: num("tenants", 1000.0) as usize,
        days: num("days", 30.0) as i64,
        raw: map.get("raw").cloned(),
        meta: map
            .get("meta")
            .cloned()
            .unwrap_or_else(|| format!("{db}.meta.json")),
        db,
        now: num("now", now_default) as i64,
        seed: num("seed", 1.0) as u64,
        zipf: num("zipf", 1.1),
        chunk: num("chunk", 5000.0) as usize,
        analyze: map.get("analyze").is_some_and(|v| v == "true"),
        time_queries: map.get("time-queries").cloned(),
        time_queries_basic: map.get("basic").is_some_and(|v| v == "true"),
        samples: num("samples", 50.0) as usize,
        budget: num("budget", 30.0),
        funnels: map.get("funnels").is_some_and(|v| v == "true"),
        goals: map.get("goals").is_some_and(|v| v == "true"),
    }
}

fn path_name(i: usize) -> String {
    match i {
        0 => "/".into(),
        1 => "/pricing".into(),
        2 => "/about".into(),
        3 => "/blog".into(),
        4 => "/docs".into(),
        5 => "/contact".into(),
        n if n % 3 == 0 => format!("/docs/page-{n}"),
        n if n % 3 == 1 => format!("/blog/post-{n}"),
        n => format!("/products/item-{n}"),
    }
}

fn tenants(a: &Args, weights: &[f64]) -> Vec<Tenant> {
    let sessions_total = a.events as f64 / 2.3;
    let wsum: f64 = weights.iter().sum();
    (0..a.tenants)
        .map(|i| {
            let share = weights[i] / weights[0];
            let n_paths = 5 + (500.0 * share.sqrt()) as usize;
            let mut domains = vec![format!("site{i}.example")];
            if i < 20 {
                domains.push(format!("blog.site{i}.example"));
            }
            Tenant {
                id: format!("t{i:04}"),
                domains,
                paths: (0..n_paths).map(path_name).collect(),
                path_cdf: cdf((0..n_paths).map(|k| 1.0 / (k as f64 + 1.0))),
                visitors: ((sessions_total * weights[i] / wsum) * 0.7).max(1.0) as u64,
            }
        })
        .collect()
}

/// A bound value as rusqlite wants it, without copying strings.
struct Bind<'a>(&'a SqlValue);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Int(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

fn open(path: &str) -> Connection {
    let conn = Connection::open(path).expect("open db");
    let has_schema: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sessions'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if has_schema == 0 {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            conn.execute_batch(&std::fs::read_to_string(f).unwrap())
                .unwrap();
        }
    }
    conn.set_prepared_statement_cache_capacity(64);
    conn
}

fn csv_field(out: &mut impl Write, s: &str) -> std::io::Result<()> {
    if s.contains([',', '"', '\n']) {
        write!(out, "\"{}\"", s.replace('"', "\"\""))
    } else {
        out.write_all(s.as_bytes())
    }
}

fn write_raw(out: &mut impl Write, e: &EnrichedEvent) -> std::io::Result<()> {
    write!(out, "{},", e.ts_secs())?;
    for f in [
        e.tenant_id.as_str(),
        &e.domain,
        &e.action,
        e.session_id.as_deref().unwrap_or(""),
        &e.visitor_id,
        &e.pathname,
        &e.source,
        &e.utm_source,
        &e.utm_medium,
        &e.utm_campaign,
        &e.browser,
        &e.os,
        &e.device,
        &e.country,
    ] {
        csv_field(out, f)?;
        out.write_all(b",")?;
    }
    write!(out, "{},", e.is_bot)?;
    csv_field(out, &e.payload)?;
    out.write_all(b"\n")
}

/// Applies a day's events in time order, `size` per transaction; empties `events`.
fn apply_sorted(
    conn: &mut Connection,
    events: &mut Vec<EnrichedEvent>,
    size: usize,
    now: i64,
) -> usize {
    events.sort_by_key(|e| e.ts);
    let n = events.chunks(size).map(|c| apply(conn, c, now)).sum();
    events.clear();
    n
}

/// Applies one chunk of events: one transaction, like one D1 batch. Returns statements executed.
/// Reads the prior state of the visits the chunk touches first, as the queue consumer does.
fn apply(conn: &mut Connection, events: &[EnrichedEvent], now: i64) -> usize {
    let mut prior = PriorState::default();
    let mut tenants: Vec<&str> = events.iter().map(|e| e.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    for t in tenants {
        let mine: Vec<EnrichedEvent> = events
            .iter()
            .filter(|e| e.tenant_id == t)
            .cloned()
            .collect();
        for s in prior_lookup(t, &mine) {
            let mut st = conn.prepare_cached(&s.sql).unwrap();
            let names: Vec<String> = st.column_names().iter().map(|n| (*n).to_owned()).collect();
            let mut rows = st
                .query(params_from_iter(s.binds.iter().map(Bind)))
                .unwrap();
            let mut out = Vec::new();
            while let Some(r) = rows.next().unwrap() {
                let mut m = serde_json::Map::new();
                for (i, n) in names.iter().enumerate() {
                    let v = match r.get_ref(i).unwrap() {
                        ValueRef::Integer(x) => serde_json::Value::from(x),
                        ValueRef::Real(x) => serde_json::Value::from(x),
                        ValueRef::Text(t) => {
                            serde_json::Value::from(String::from_utf8_lossy(t).into_owned())
                        }
                        _ => serde_json::Value::Null,
                    };
                    m.insert(n.clone(), v);
                }
                out.push(m);
            }
            prior.add_rows(t, &out);
        }
    }
    let statements = statements_for(events, &prior, now);
    let tx = conn.transaction().unwrap();
    for s in &statements {
        let mut st = tx.prepare_cached(&s.sql).unwrap();
        st.execute(params_from_iter(s.binds.iter().map(Bind)))
            .unwrap();
    }
    tx.commit().unwrap();
    statements.len()
}

const PIPES: &[&str] = &[
    "kpis",
    "kpis_summary",
    "top_pages",
    "top_sources",
    "top_browsers",
    "top_os",
    "top_devices",
    "top_locations",
    "top_campaigns",
    "entry_pages",
    "exit_pages",
    "trend",
    "current_visitors",
    "domains",
    "actions",
];

fn date(secs: i64) -> String {
    let d = chrono::DateTime::from_timestamp(secs, 0).expect("date");
    d.format("%Y-%m-%d").to_string()
}

fn pct(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    xs[i.clamp(1, xs.len()) - 1]
}

/// A timed request: label, parameters and time zone.
type Variant<'z> = (
    String,
    Vec<(String, String)>,
    &'z dyn starling_core::query::TimeZone,
);

/// Times every endpoint's planned statements natively; JSON on stdout.
fn time_queries(a: &Args, tenants: &str) {
    let conn = Connection::open_with_flags(&a.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db");
    conn.set_prepared_statement_cache_capacity(64);
    let last = a.now - a.now.rem_euclid(86_400);
    let range = [
        ("date_from".to_owned(), date(last - (a.days - 1) * 86_400)),
        ("date_to".to_owned(), date(last)),
        ("timezone".to_owned(), "UTC".to_owned()),
    ];
    let utc = starling_core::query::FixedOffset(0);
    let mut out = Vec::new();
    for tenant in tenants.split(',') {
        let fixed: std::collections::BTreeMap<String, String> =
            [("tenant_id".to_owned(), tenant.to_owned())]
                .into_iter()
                .collect();
        let mut per = Vec::new();
        // Every pipe unfiltered in UTC; the range pipes with one filter, in a +1h zone, and both; /v0/query with a dimension and one filter (rollups) or two (visits).
        let madrid = starling_core::query::FixedOffset(3600);
        let mut cases: Vec<(String, Vec<starling_core::sql::Statement>)> = Vec::new();
        for pipe in PIPES {
            let ranged =
                pipe.starts_with("top_") || pipe.starts_with("kpis") || pipe.ends_with("_pages");
            let params = if ranged { &range[..] } else { &range[2..] };
            let mut variants: Vec<Variant> = vec![((*pipe).to_owned(), params.to_vec(), &utc)];
            if ranged && !a.time_queries_basic {
                let mut one = params.to_vec();
                one.push(("browser".into(), "chrome".into()));
                variants.push((format!("{pipe} browser=chrome"), one, &utc));
                variants.push((format!("{pipe} +01:00"), params.to_vec(), &madrid));
                // One filter in a zone off UTC: older edge hours come from the visit-level tables.
                let mut one = params.to_vec();
                one.push(("browser".into(), "chrome".into()));
                variants.push((format!("{pipe} browser=chrome +01:00"), one, &madrid));
            }
            for (label, params, tz) in variants {
                let plan = starling_core::query::plan(&starling_core::query::Request {
                    pipe,
                    params: &params,
                    tenant: &starling_core::claims::TenantId::for_tests(&fixed["tenant_id"])
                        .expect("valid tenant"),
                    fixed: &fixed,
                    now_secs: a.now,
                    tz,
                })
                .expect("plan");
                cases.push((label, plan.statements));
            }
        }
        if !a.time_queries_basic {
            let from = date(last - (a.days - 1) * 86_400);
            let to = date(last);
            for (label, filters) in [
                (
                    "query visit:source, 1 filter",
                    serde_json::json!([["is", "visit:country", ["DE"]]]),
                ),
                (
                    "query visit:source, 2 filters",
                    serde_json::json!([
                        ["is", "visit:country", ["DE"]],
                        ["is", "visit:device", ["mobile"]]
                    ]),
                ),
            ] {
                let body = serde_json::json!({
                    "metrics": ["visitors", "visits", "pageviews", "bounce_rate"],
                    "date_range": [from, to],
                    "dimensions": ["visit:source"],
                    "filters": filters,
                });
                let plan = starling_core::query::plan_query(&starling_core::query::ApiRequest {
                    body: &body,
                    tenant: &starling_core::claims::TenantId::for_tests(&fixed["tenant_id"])
                        .expect("valid tenant"),
                    fixed: &fixed,
                    now_secs: a.now,
                    tz: &utc,
                })
                .expect("plan");
                cases.push((label.to_owned(), plan.statements));
            }
        }
        // Goals and properties (the generator's `--goals true`): conversions per goal, a goal filter,
        // a property breakdown, when the tenant has goals.
        let goals: i64 = conn
            .query_row(
                "SELECT count(*) FROM goals WHERE tenant_id = ?",
                [&fixed["tenant_id"]],
                |r| r.get(0),
            )
            .unwrap_or(0);
        if goals > 0 && !a.time_queries_basic {
            let from = date(last - (a.days - 1) * 86_400);
            let to = date(last);
            for (label, body) in [
                (
                    "goals: event:goal conversions",
                    serde_json::json!({"metrics": ["visitors", "conversions", "events", "conversion_rate"],
                        "dimensions": ["event:goal"], "date_range": [from, to]}),
                ),
                (
                    "goals: event:goal visitors and conversions only",
                    serde_json::json!({"metrics": ["visitors", "conversions"],
                        "dimensions": ["event:goal"], "date_range": [from, to]}),
                ),
                (
                    "goals: visits of one goal",
                    serde_json::json!({"metrics": ["visitors", "visits", "pageviews", "bounce_rate"],
                        "filters": [["is", "event:goal", ["Signup"]]], "date_range": [from, to]}),
                ),
                (
                    "goals: one goal by source",
                    serde_json::json!({"metrics": ["visitors", "conversions", "events"],
                        "dimensions": ["visit:source"], "filters": [["is", "event:goal", ["Signup"]]],
                        "date_range": [from, to]}),
                ),
                (
                    "props: event:props:plan",
                    serde_json::json!({"metrics": ["visitors", "events"],
                        "dimensions": ["event:props:plan"], "date_range": [from, to]}),
                ),
                (
                    "props: event:props:plan, every visit metric, one value, previous_period",
                    serde_json::json!({"metrics": ["visitors", "visits", "pageviews", "bounce_rate",
                        "visit_duration", "views_per_visit", "events"],
                        "dimensions": ["event:props:plan"], "filters": [["is", "event:props:plan", ["pro"]]],
                        "date_range": [from, to], "include": {"comparisons": {"mode": "previous_period"}}}),
                ),
                (
                    "props: event:props:plan +01:00 (edge hours from session_props)",
                    serde_json::json!({"metrics": ["visitors", "events"],
                        "dimensions": ["event:props:plan"], "date_range": [from, to]}),
                ),
                (
                    "props: event:props:plan by day (session_props)",
                    serde_json::json!({"metrics": ["visitors", "events"],
                        "dimensions": ["time:day"], "filters": [["is", "event:props:plan", ["pro"]]],
                        "date_range": [from, to]}),
                ),
                (
                    "goals: the Goals table (events, rate, revenue)",
                    serde_json::json!({"metrics": ["visitors", "conversions", "events", "conversion_rate",
                        "total_revenue", "average_revenue"],
                        "dimensions": ["event:goal"], "date_range": [from, to]}),
                ),
                (
                    "goals: the Goals table, one goal filter",
                    serde_json::json!({"metrics": ["visitors", "conversions", "events", "conversion_rate",
                        "total_revenue", "average_revenue"],
                        "filters": [["is", "event:goal", ["Signup"]]], "date_range": [from, to]}),
                ),
                (
                    "goals: the Goals table, previous_period",
                    serde_json::json!({"metrics": ["visitors", "conversions", "events", "conversion_rate",
                        "total_revenue", "average_revenue"],
                        "dimensions": ["event:goal"], "date_range": [from, to],
                        "include": {"comparisons": {"mode": "previous_period"}}}),
                ),
                (
                    "goals: one goal × event:props:plan",
                    serde_json::json!({"metrics": ["visitors", "events"],
                        "dimensions": ["event:props:plan"], "filters": [["is", "event:goal", ["Signup"]]],
                        "date_range": [from, to]}),
                ),
                (
                    "goals: one goal × event:props:plan, every metric but visit_duration, one value, previous_period",
                    serde_json::json!({"metrics": ["visitors", "visits", "pageviews", "bounce_rate",
                        "views_per_visit", "conversions", "events"],
                        "dimensions": ["event:props:plan"],
                        "filters": [["is", "event:goal", ["Signup"]], ["is", "event:props:plan", ["pro"]]],
                        "date_range": [from, to], "include": {"comparisons": {"mode": "previous_period"}}}),
                ),
                (
                    "goals: one goal × event:props:plan +01:00 (edge hours from session_goal_props)",
                    serde_json::json!({"metrics": ["visitors", "events"],
                        "dimensions": ["event:props:plan"], "filters": [["is", "event:goal", ["Signup"]]],
                        "date_range": [from, to]}),
                ),
                (
                    "goals: one goal × event:props:plan with visit_duration (session_goal_props, the plan before gp cells)",
                    serde_json::json!({"metrics": ["visitors", "events", "visit_duration"],
                        "dimensions": ["event:props:plan"], "filters": [["is", "event:goal", ["Signup"]]],
                        "date_range": [from, to]}),
                ),
                (
                    "props: the key list (event:props)",
                    serde_json::json!({"metrics": ["visitors", "events"],
                        "dimensions": ["event:props"], "date_range": [from, to]}),
                ),
                (
                    "props: the key list by events (event:props, the dashboard's picker: cells)",
                    serde_json::json!({"metrics": ["events"],
                        "dimensions": ["event:props"], "date_range": [from, to]}),
                ),
                (
                    "props: one goal's key list (event:props)",
                    serde_json::json!({"metrics": ["visitors", "events"],
                        "dimensions": ["event:props"], "filters": [["is", "event:goal", ["Signup"]]],
                        "date_range": [from, to]}),
                ),
            ] {
                let plan = starling_core::query::plan_query(&starling_core::query::ApiRequest {
                    body: &body,
                    tenant: &starling_core::claims::TenantId::for_tests(&fixed["tenant_id"])
                        .expect("valid tenant"),
                    fixed: &fixed,
                    now_secs: a.now,
                    tz: if label.contains("+01:00") {
                        &madrid
                    } else {
                        &utc
                    },
                })
                .unwrap_or_else(|e| panic!("plan {label}: {e:?}"));
                cases.push((label.to_owned(), plan.statements));
            }
        }
        // A 4-step funnel (the generator's `--funnels true`), unfiltered (rollups) and with one filter
        // (visit-level), when the tenant has it.
        let has_funnel: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'funnels'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0);
        if has_funnel > 0 && !a.time_queries_basic {
            let from = date(last - (a.days - 1) * 86_400);
            let to = date(last);
            let funnel = starling_core::funnels::Funnel {
                id: 1,
                name: "bench".into(),
                steps: bench_funnel(),
            };
            for (label, filters) in [
                ("funnel 4 steps", serde_json::json!([])),
                (
                    "funnel 4 steps, browser=chrome",
                    serde_json::json!([["is", "visit:browser", ["chrome"]]]),
                ),
            ] {
                let body =
                    serde_json::json!({"funnel": 1, "date_range": [from, to], "filters": filters});
                let plan = starling_core::query::plan_funnel(
                    &starling_core::query::ApiRequest {
                        body: &body,
                        tenant: &starling_core::claims::TenantId::for_tests(&fixed["tenant_id"])
                            .expect("valid tenant"),
                        fixed: &fixed,
                        now_secs: a.now,
                        tz: &utc,
                    },
                    &funnel,
                )
                .expect("plan");
                cases.push((label.to_owned(), plan.statements));
            }
        }
        for (pipe, statements) in cases {
            let mut lat = Vec::new();
            let mut rows = 0;
            let started = Instant::now();
            for i in 0..a.samples + 2 {
                if lat.len() >= 5 && started.elapsed().as_secs_f64() > a.budget {
                    break;
                }
                let t = Instant::now();
                rows = 0;
                for s in &statements {
                    let binds: Vec<rusqlite::types::Value> = s
                        .binds
                        .iter()
                        .map(|v| match v {
                            SqlValue::Null => rusqlite::types::Value::Null,
                            SqlValue::Int(i) => rusqlite::types::Value::Real(*i as f64),
                            SqlValue::Real(f) => rusqlite::types::Value::Real(*f),
                            SqlValue::Text(t) => rusqlite::types::Value::Text(t.clone()),
                        })
                        .collect();
                    let mut st = conn.prepare_cached(&s.sql).expect("prepare");
                    let n = st.column_count();
                    let mut q = st.query(params_from_iter(binds)).expect("query");
                    while let Some(r) = q.next().expect("row") {
                        for c in 0..n {
                            let _ = r.get_ref(c).expect("column");
                        }
                        rows += 1;
                    }
                }
                if i >= 2 {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            per.push(format!(
                r#""{pipe}":{{"p50_ms":{:.3},"p95_ms":{:.3},"samples":{},"rows":{rows}}}"#,
                pct(&mut lat, 50.0),
                pct(&mut lat, 95.0),
                lat.len()
            ));
            eprintln!(
                "gen_rollups: native {tenant} {pipe}: p50 {:.1} ms",
                pct(&mut lat, 50.0)
            );
        }
        out.push(format!(r#""{tenant}":{{{}}}"#, per.join(",")));
    }
    println!("{{{}}}", out.join(","));
}

fn main() {
    let a = args();
    if let Some(tenants) = &a.time_queries {
        time_queries(&a, tenants);
        return;
    }
    let started = Instant::now();
    let mut rng = Rng(a.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
    let weights: Vec<f64> = (0..a.tenants)
        .map(|i| 1.0 / (i as f64 + 1.0).powf(a.zipf))
        .collect();
    let tenant_cdf = cdf(weights.iter().copied());
    let tenants = tenants(&a, &weights);
    let pv_cdf = cdf(PAGEVIEWS.iter().copied());

    // Events fall in [first day 00:00 UTC, now).
    let window_start = (a.now - a.now.rem_euclid(86_400)) - (a.days - 1) * 86_400;

    let mut conn = open(&a.db);
    if a.goals {
        for t in &tenants {
            for body in bench_goals() {
                let goal = starling_core::goals::validate(&body).expect("valid goal");
                let s = starling_core::goals::insert(&t.id, &goal, 100, a.now);
                let binds: Vec<Bind> = s.binds.iter().map(Bind).collect();
                let mut st = conn.prepare(&s.sql).expect("prepare goal");
                let _ = st
                    .query(params_from_iter(binds))
                    .expect("insert goal")
                    .next();
            }
        }
    }
    if a.funnels {
        for t in &tenants {
            let s = starling_core::funnels::insert(&t.id, "bench", &bench_funnel(), 20, a.now);
            let binds: Vec<Bind> = s.binds.iter().map(Bind).collect();
            let mut st = conn.prepare(&s.sql).expect("prepare funnel");
            let _ = st
                .query(params_from_iter(binds))
                .expect("insert funnel")
                .next();
        }
    }
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -2000000; \
         PRAGMA temp_store = MEMORY;",
    )
    .unwrap();
    let mut raw = a
        .raw
        .as_ref()
        .map(|p| BufWriter::with_capacity(1 << 20, File::create(p).expect("create raw csv")));
    if let Some(out) = raw.as_mut() {
        writeln!(out, "ts,tenant_id,domain,action,session_id,visitor_id,pathname,source,utm_source,utm_medium,utm_campaign,browser,os,device,country,is_bot,payload").unwrap();
    }

    let mut totals = vec![Totals::default(); a.tenants];
    let mut all = Totals::default();
    let mut statements = 0usize;
    let mut chunk: Vec<EnrichedEvent> = Vec::with_capacity(a.chunk + 8);
    let mut next_report = 0u64;
    let report_every = (a.events / 20).max(1);

    // Day by day, in time order within the day: the queue delivers roughly in time order, and the
    // consumer prunes visit state hours after a visit's last hit.
    let mut current_day = 0i64;
    while all.events < a.events {
        let day = ((all.events as u128 * a.days as u128) / a.events as u128) as i64;
        if day != current_day {
            statements += apply_sorted(&mut conn, &mut chunk, a.chunk, a.now);
            current_day = day;
        }
        let day_start = window_start + day * 86_400;
        let day_span = (a.now - day_start).clamp(1, 86_400) as u64;
        let t = rng.pick_cdf(&tenant_cdf);
        let tenant = &tenants[t];
        let is_bot = rng.below(100) < 2;
        let domain = if tenant.domains.len() > 1 && rng.below(5) == 0 {
            &tenant.domains[1]
        } else {
            &tenant.domains[0]
        };
        let session_id = {
            let (x, y) = (rng.next(), rng.next());
            format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                x >> 32,
                (x >> 16) & 0xffff,
                x & 0xfff,
                (y >> 48) | 0x8000,
                y & 0xffff_ffff_ffff
            )
        };
        let visitor = rng.below(tenant.visitors);
        // Visitor ids change daily with the salt and differ per domain (the domain is hashed in), as in
        // production.
        let second_domain = u64::from(domain != &tenant.domains[0]);
        let visitor_id = format!(
            "{:016x}{:016x}",
            (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ visitor ^ (second_domain << 60),
            visitor.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (day as u64)
        );
        let mut source = rng.weighted(SOURCES).to_owned();
        if source == "*" {
            source = format!("ref-{}.example", rng.below(300));
        }
        let (utm_source, utm_medium, utm_campaign) = if rng.below(10) == 0 {
            let c = CAMPAIGNS[rng.below(CAMPAIGNS.len() as u64) as usize];
            (c.1, c.2, c.0)
        } else {
            ("", "", "")
        };
        let (device, os, browser) = if is_bot {
            ("bot", "unknown", "unknown")
        } else {
            match rng.below(100) {
                0..=44 => {
                    if rng.below(100) < 45 {
                        (
                            "mobile",
                            "ios",
                            rng.weighted(&[("safari", 85), ("chrome", 15)]),
                        )
                    } else {
                        (
                            "mobile",
                            "android",
                            rng.weighted(&[("chrome", 85), ("samsung", 10), ("firefox", 5)]),
                        )
                    }
                }
                45..=96 => match rng.below(10) {
                    0..=5 => (
                        "desktop",
                        "windows",
                        rng.weighted(&[("chrome", 70), ("edge", 20), ("firefox", 8), ("opera", 2)]),
                    ),
                    6..=8 => (
                        "desktop",
                        "macos",
                        rng.weighted(&[("chrome", 55), ("safari", 38), ("firefox", 7)]),
                    ),
                    _ => (
                        "desktop",
                        "linux",
                        rng.weighted(&[("chrome", 60), ("firefox", 40)]),
                    ),
                },
                _ => ("tablet", "ios", "safari"),
            }
        };
        let country = rng.weighted(COUNTRIES);
        let n = rng.pick_cdf(&pv_cdf) + 1;
        let mut ts = day_start + rng.below(day_span) as i64;
        let custom = rng.below(20) == 0;
        let mut emitted = 0;
        for k in 0..n + usize::from(custom) {
            if k > 0 {
                ts += 5 + (-(1.0 - rng.unit()).ln() * 60.0) as i64;
            }
            if ts >= a.now {
                break;
            }
            let (action, payload) = if k == n {
                ACTIONS[rng.below(ACTIONS.len() as u64) as usize]
            } else {
                ("page_hit", "{}")
            };
            let pathname = tenant.paths[rng.pick_cdf(&tenant.path_cdf)].clone();
            let href = if utm_campaign.is_empty() {
                format!("https://{domain}{pathname}")
            } else {
                format!("https://{domain}{pathname}?utm_source={utm_source}&utm_medium={utm_medium}&utm_campaign={utm_campaign}")
            };
            let e = EnrichedEvent {
                ts: ts * 1000 + rng.below(1000) as i64,
                tenant_id: tenant.id.clone(),
                domain: domain.clone(),
                action: action.into(),
                session_id: Some(session_id.clone()),
                visitor_id: visitor_id.clone(),
                pathname,
                href,
                source: if k == 0 {
                    source.clone()
                } else {
                    String::new()
                },
                utm_source: utm_source.into(),
                utm_medium: utm_medium.into(),
                utm_campaign: utm_campaign.into(),
                utm_term: String::new(),
                utm_content: String::new(),
                browser: browser.into(),
                os: os.into(),
                device: device.into(),
                is_bot,
                country: country.into(),
                region: String::new(),
                city: String::new(),
                locale: "en-US".into(),
                payload: payload.into(),
            };
            if let Some(out) = raw.as_mut() {
                write_raw(out, &e).unwrap();
            }
            let tt = &mut totals[t];
            tt.events += 1;
            all.events += 1;
            if is_bot {
                tt.bot_events += 1;
                all.bot_events += 1;
            } else if action == "page_hit" {
                tt.pageviews += 1;
                all.pageviews += 1;
            } else {
                tt.custom_events += 1;
                all.custom_events += 1;
            }
            chunk.push(e);
            emitted += 1;
        }
        if emitted > 0 && !is_bot {
            totals[t].sessions += 1;
            all.sessions += 1;
        }

        if all.events >= next_report {
            eprintln!(
                "gen_rollups: {} / {} events, {:.0} s",
                all.events,
                a.events,
                started.elapsed().as_secs_f64()
            );
            next_report += report_every;
        }
    }
    statements += apply_sorted(&mut conn, &mut chunk, a.chunk, a.now);
    if let Some(mut out) = raw {
        out.flush().unwrap();
    }
    if a.analyze {
        conn.execute_batch("ANALYZE;").unwrap();
    }
    // Leave the file in the journal mode it had (workerd's D1 expects its own).
    conn.query_row(&format!("PRAGMA journal_mode = {journal}"), [], |_| Ok(()))
        .unwrap();
    drop(conn);

    let db_bytes = std::fs::metadata(&a.db).map(|m| m.len()).unwrap_or(0);
    let mut order: Vec<usize> = (0..a.tenants).collect();
    order.sort_by_key(|i| std::cmp::Reverse(totals[*i].events));
    let tenant_json: Vec<String> = order
        .iter()
        .map(|i| {
            let t = &totals[*i];
            format!(
                r#"{{"id":"{}","domains":["{}"],"events":{},"pageviews":{},"sessions":{},"bot_events":{},"custom_events":{}}}"#,
                tenants[*i].id,
                tenants[*i].domains.join("\",\""),
                t.events,
                t.pageviews,
                t.sessions,
                t.bot_events,
                t.custom_events
            )
        })
        .collect();
    let secs = started.elapsed().as_secs_f64();
    let meta = format!(
        "{{\"events\":{},\"pageviews\":{},\"sessions\":{},\"bot_events\":{},\"custom_events\":{},\"tenants\":{},\
         \"days\":{},\"now\":{},\"window_start\":{},\"seed\":{},\"zipf\":{},\"statements\":{},\"seconds\":{:.1},\
         \"db_bytes\":{},\"tenant_totals\":[\n{}\n]}}\n",
        all.events,
        all.pageviews,
        all.sessions,
        all.bot_events,
        all.custom_events,
        a.tenants,
        a.days,
        a.now,
        window_start,
        a.seed,
        a.zipf,
        statements,
        secs,
        db_bytes,
        tenant_json.join(",\n")
    );
    std::fs::write(&a.meta, meta).expect("write meta");
    println!(
        "gen_rollups: {} events ({} pageviews, {} sessions) over {} tenants in {:.1} s; {} statements; db {:.1} MB; largest tenant {} events",
        all.events,
        all.pageviews,
        all.sessions,
        a.tenants,
        secs,
        statements,
        db_bytes as f64 / 1e6,
        totals[order[0]].events
    );
}
