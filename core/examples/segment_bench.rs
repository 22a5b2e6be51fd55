//! Visit segments against the visit-level SQL, natively, on a real D1 file (read only).
//!
//! ```text
//! cargo run --release -p starling-core --example segment_bench -- --db <D1 .sqlite file> \
//!     [--tenant t0000] [--events 1799093] [--samples 15] [--case N] [--dump segments.bin]
//! # One-filter cells (`segment::cells`) instead: bytes and build time per target, read vs scan
//! cargo run --release -p starling-core --example segment_bench -- --db <D1 .sqlite file> --cells
//! ```
//!
//! Reads the tenant's `sessions` and `page_visits` (the file is opened read-only), encodes one segment
//! per UTC day of visits ([`starling_core::segment::encode`]), prints bytes per visit and per event
//! (`--events`: the tenant's accepted events) and the encode time, the decode time of all segments,
//! then for a few filtered questions over the whole range the median of `--samples` runs of the
//! planner's own SQL (rusqlite, integers bound as REAL as D1 does) and of the scan over the decoded
//! segments, and whether both give the same groups.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Map, Value};
use starling_core::claims::TenantId;
use starling_core::query::{self, ApiRequest, FixedOffset};
use starling_core::segment::{
    self, Column, Filter, Group, Op, PageRow, Query, Segment, Sums, Target, VisitRow,
};
use starling_core::sql::Statement;

const DAY: i64 = 86_400;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn int(v: Option<&Value>) -> i64 {
    v.and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// This process's CPU time (user + system), ms, from `/proc/self/stat` (10 ms ticks).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of the file are utime and stime; `rest` starts at field 3.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) * 10.0
}

/// The median wall time of `samples` runs, ms (the machine is shared: see also [`CPU`]).
fn time<T>(samples: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = None;
    let cpu = cpu_ms();
    let ms = (0..samples)
        .map(|_| {
            let t = Instant::now();
            out = Some(f());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    CPU.with(|c| c.set((cpu_ms() - cpu) / samples as f64));
    (median(ms), out.unwrap())
}

thread_local! {
    /// The mean CPU time per run of the last [`time`] call, ms.
    static CPU: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

fn last_cpu() -> f64 {
    CPU.with(|c| c.get())
}

fn read_visits(conn: &Connection, tenant: &str) -> Vec<VisitRow> {
    let mut stmt = conn
        .prepare(
            "SELECT session_key, domain, visitor_id, first_ts, last_ts, pageviews, entry_path, \
             exit_path, source, utm_source, utm_medium, utm_campaign, browser, os, device, country \
             FROM sessions WHERE tenant_id = ?1 ORDER BY first_ts",
        )
        .unwrap();
    let mut visits = Vec::new();
    let mut at: HashMap<(i64, String), usize> = HashMap::new();
    let mut q = stmt.query([tenant]).unwrap();
    while let Some(r) = q.next().unwrap() {
        let s = |i: usize| r.get::<_, String>(i).unwrap();
        let first_ts: i64 = r.get(3).unwrap();
        at.insert((first_ts, s(0)), visits.len());
        visits.push(VisitRow {
            first_ts,
            last_ts: r.get(4).unwrap(),
            pageviews: r.get(5).unwrap(),
            domain: s(1),
            visitor: s(2),
            entry_path: s(6),
            exit_path: s(7),
            source: s(8),
            utm_source: s(9),
            utm_medium: s(10),
            utm_campaign: s(11),
            browser: s(12),
            os: s(13),
            device: s(14),
            country: s(15),
            pages: Vec::new(),
        });
    }
    let mut stmt = conn
        .prepare(
            "SELECT session_key, pathname, first_ts, hits, since_visit FROM page_visits \
             WHERE tenant_id = ?1",
        )
        .unwrap();
    let mut q = stmt.query([tenant]).unwrap();
    let mut orphans = 0;
    while let Some(r) = q.next().unwrap() {
        let key: String = r.get(0).unwrap();
        let first_ts: i64 = r.get(2).unwrap();
        let since: i64 = r.get(4).unwrap();
        match at.get(&(first_ts - since, key)) {
            Some(&i) => visits[i].pages.push(PageRow {
                pathname: r.get(1).unwrap(),
                first_ts,
                hits: r.get(3).unwrap(),
            }),
            None => orphans += 1,
        }
    }
    if orphans > 0 {
        eprintln!("{orphans} page visits without their session (left out)");
    }
    visits
}

/// Reads one SQL row as (key, the five measures).
type ReadRow = fn(&Map<String, Value>) -> (Vec<String>, [i64; 5]);

/// A question asked both ways: the planner's statement (and how to read its rows), the scan.
struct Case {
    name: &'static str,
    statements: Vec<Statement>,
    /// Row → (key, [visits, pageviews or hits, bounces, duration, visitors]) with the fields the SQL
    /// has; the scan's sums are cut to the same fields.
    read: ReadRow,
    fields: [bool; 5],
    queries: Vec<Query>,
}

fn leaf(col: Column, v: &str) -> Filter {
    Filter::Leaf {
        op: Op::Is,
        target: Target::Visit(col),
        values: vec![v.into()],
        case_sensitive: true,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let db = arg(&args, "--db").expect("--db <D1 sqlite file>");
    let tenant = arg(&args, "--tenant").unwrap_or_else(|| "t0000".into());
    let events: f64 = arg(&args, "--events").map_or(1_799_093.0, |e| e.parse().unwrap());
    let samples: usize = arg(&args, "--samples").map_or(15, |s| s.parse().unwrap());
    let conn = Connection::open_with_flags(
        &db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();

    let t = Instant::now();
    let visits = read_visits(&conn, &tenant);
    let pages: usize = visits.iter().map(|v| v.pages.len()).sum();
    eprintln!(
        "read {} visits, {pages} page visits in {:.1} s",
        visits.len(),
        t.elapsed().as_secs_f64()
    );
    let mut by_day: BTreeMap<i64, Vec<VisitRow>> = BTreeMap::new();
    for v in visits {
        by_day
            .entry(v.first_ts.div_euclid(DAY))
            .or_default()
            .push(v);
    }
    if args.iter().any(|a| a == "--cells") {
        cells_report(&by_day, samples);
        return;
    }
    let n_visits: usize = by_day.values().map(Vec::len).sum();
    let (encode_ms, blobs) = time(3, || {
        by_day
            .iter()
            .map(|(d, rows)| segment::encode(*d, rows).unwrap())
            .collect::<Vec<_>>()
    });
    if let Some(path) = arg(&args, "--dump") {
        // The segments, each after its length (u32 LE), for a wasm measurement outside this crate.
        let mut out = Vec::new();
        for b in &blobs {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        std::fs::write(&path, out).unwrap();
    }
    let bytes: usize = blobs.iter().map(Vec::len).sum();
    let largest = blobs.iter().map(Vec::len).max().unwrap_or(0);
    println!(
        "tenant {tenant}: {n_visits} visits, {pages} page visits, {} UTC days; segments {bytes} B \
         ({:.1} B/visit, {:.1} B/event at {events} events; largest day {largest} B); encode {encode_ms:.0} ms \
         for all days (median of 3)",
        by_day.len(),
        bytes as f64 / n_visits as f64,
        bytes as f64 / events,
    );
    let gz: usize = blobs
        .iter()
        .map(|b| {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(b).unwrap();
            e.finish().unwrap().len()
        })
        .sum();
    println!(
        "gzip -6 of the segments: {gz} B ({:.1} B/event)",
        gz as f64 / events
    );
    let (decode_ms, segments) = time(samples, || {
        blobs
            .iter()
            .map(|b| Segment::decode(b).unwrap())
            .collect::<Vec<_>>()
    });
    println!(
        "decode all {} segments (checks and checksum included): {decode_ms:.2} ms median of {samples} \
         (CPU {:.2} ms mean)",
        segments.len(),
        last_cpu()
    );

    let mut sections = [0usize; 3];
    for s in &segments {
        for (t, b) in sections.iter_mut().zip(s.section_bytes()) {
            *t += b;
        }
    }
    println!(
        "of which dictionaries {:.1} B/event, visit columns {:.1}, page columns {:.1}, headers {:.3}",
        sections[0] as f64 / events,
        sections[1] as f64 / events,
        sections[2] as f64 / events,
        (40 * segments.len()) as f64 / events
    );
    let first_day = *by_day.keys().next().unwrap();
    let last_day = *by_day.keys().last().unwrap();
    let date = |d: i64| {
        let dt = chrono::DateTime::from_timestamp(d * DAY, 0).unwrap();
        dt.format("%Y-%m-%d").to_string()
    };
    let (from, to) = (date(first_day), date(last_day));
    let window = (first_day * DAY, (last_day + 1) * DAY);
    let now = (last_day + 1) * DAY - 1;
    let id = TenantId::for_tests(&tenant).unwrap();
    let fixed = BTreeMap::new();
    let utc = FixedOffset(0);
    let pipe = |name: &str, extra: &[(&str, &str)]| {
        let mut params = vec![
            ("date_from".to_owned(), from.clone()),
            ("date_to".to_owned(), to.clone()),
            ("limit".to_owned(), "1000".to_owned()),
        ];
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        query::plan(&query::Request {
            pipe: name,
            params: &params,
            tenant: &id,
            fixed: &fixed,
            now_secs: now,
            tz: &utc,
        })
        .unwrap()
        .statements
    };
    let body = json!({
        "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"],
        "date_range": [from, to],
        "dimensions": ["visit:source"],
        "filters": [["is", "visit:browser", ["chrome"]], ["is", "visit:device", ["mobile"]]],
    });
    let api = query::plan_query(&ApiRequest {
        body: &body,
        tenant: &id,
        fixed: &fixed,
        now_secs: now,
        tz: &utc,
    })
    .unwrap();
    assert!(!api.uses_rollups());
    let chrome = || vec![leaf(Column::Browser, "chrome")];
    let five: ReadRow = |r| {
        let key = match r.get("k") {
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        let m = ["visits", "pageviews", "bounces", "duration", "visitors"].map(|c| int(r.get(c)));
        (key, m)
    };
    let days: Vec<(i64, i64)> = (first_day..=last_day)
        .map(|d| (d * DAY, (d + 1) * DAY))
        .collect();
    let cases = [
        Case {
            name: "top_sources, browser=chrome",
            statements: pipe("top_sources", &[("browser", "chrome")]),
            read: |r| {
                let k = vec![r["referrer"].as_str().unwrap_or_default().to_owned()];
                (k, [int(r.get("visits")), int(r.get("hits")), 0, 0, 0])
            },
            fields: [true, true, false, false, false],
            queries: vec![Query {
                window,
                filters: chrome(),
                group: Group::Visits(vec![Column::Source]),
            }],
        },
        Case {
            name: "top_pages, browser=chrome",
            statements: pipe("top_pages", &[("browser", "chrome")]),
            read: |r| {
                let k = vec![r["pathname"].as_str().unwrap_or_default().to_owned()];
                (k, [int(r.get("visits")), int(r.get("hits")), 0, 0, 0])
            },
            fields: [true, true, false, false, false],
            queries: vec![Query {
                window,
                filters: chrome(),
                group: Group::Pages(None),
            }],
        },
        Case {
            name: "kpis_summary, browser=chrome & country=US",
            statements: pipe("kpis_summary", &[("browser", "chrome"), ("country", "US")]),
            read: five,
            fields: [true; 5],
            queries: vec![Query {
                window,
                filters: vec![leaf(Column::Browser, "chrome"), leaf(Column::Country, "US")],
                group: Group::Visits(Vec::new()),
            }],
        },
        Case {
            name: "kpis (30 daily rows), browser=chrome & country=US",
            statements: pipe("kpis", &[("browser", "chrome"), ("country", "US")]),
            read: |r| {
                let k = vec![int(r.get("bucket")).to_string()];
                let m = ["visits", "pageviews", "bounces", "duration", "visitors"]
                    .map(|c| int(r.get(c)));
                (k, m)
            },
            fields: [true; 5],
            queries: days
                .iter()
                .map(|w| Query {
                    window: *w,
                    filters: vec![leaf(Column::Browser, "chrome"), leaf(Column::Country, "US")],
                    group: Group::Visits(Vec::new()),
                })
                .collect(),
        },
        Case {
            name: "/v0/query visit:source, browser=chrome & device=mobile",
            statements: api.statements.clone(),
            read: five,
            fields: [true; 5],
            queries: vec![Query {
                window,
                filters: vec![
                    leaf(Column::Browser, "chrome"),
                    leaf(Column::Device, "mobile"),
                ],
                group: Group::Visits(vec![Column::Source]),
            }],
        },
    ];

    println!(
        "| question | SQL p50 ms (CPU mean) | scan p50 ms (CPU mean) | decode + scan p50 ms (CPU mean) | groups | equal |"
    );
    println!("|---|---|---|---|---|---|");
    let only: Option<usize> = arg(&args, "--case").map(|c| c.parse().unwrap());
    for (n, c) in cases.iter().enumerate() {
        if only.is_some_and(|o| o != n) {
            continue;
        }
        assert_eq!(c.statements.len(), 1, "{}", c.name);
        let sql_samples = if only.is_some() { 1 } else { samples };
        let (sql_ms, sql_rows) = time(sql_samples, || common::rows(&conn, &c.statements[0]));
        let sql_cpu = last_cpu();
        let sql: BTreeMap<Vec<String>, [i64; 5]> = sql_rows.iter().map(c.read).collect();
        let (scan_ms, parts) = time(samples, || {
            c.queries
                .iter()
                .map(|q| segment::scan(&segments, q).unwrap())
                .collect::<Vec<_>>()
        });
        let scan_cpu = last_cpu();
        let (full_ms, _) = time(samples, || {
            let segs: Vec<Segment> = blobs.iter().map(|b| Segment::decode(b).unwrap()).collect();
            c.queries
                .iter()
                .map(|q| segment::scan(&segs, q).unwrap().groups.len())
                .sum::<usize>()
        });
        let full_cpu = last_cpu();
        // The daily kpis: one part per day, keyed by its day number (the SQL's bucket).
        let mut scan: BTreeMap<Vec<String>, [i64; 5]> = BTreeMap::new();
        for (i, part) in parts.into_iter().enumerate() {
            for (k, s) in part.groups {
                let s: Sums = s;
                let k = if c.queries.len() > 1 {
                    vec![(first_day + i as i64).to_string()]
                } else {
                    k
                };
                let all = [s.visits, s.pageviews, s.bounces, s.duration, s.visitors];
                let mut m = [0; 5];
                for f in 0..5 {
                    if c.fields[f] {
                        m[f] = all[f];
                    }
                }
                scan.insert(k, m);
            }
        }
        // kpis_summary's row is bucket 1 (no key); the others compare as read.
        let equal = scan == sql;
        println!(
            "| {} | {sql_ms:.1} ({sql_cpu:.1}) | {scan_ms:.2} ({scan_cpu:.2}) | {full_ms:.2} ({full_cpu:.2}) | {} | {} |",
            c.name,
            sql.len(),
            if equal { "yes" } else { "**no**" }
        );
        if !equal {
            let diff: Vec<_> = sql
                .iter()
                .filter(|(k, v)| scan.get(*k) != Some(v))
                .take(3)
                .collect();
            eprintln!(
                "{}: first differences (SQL side) {diff:?}; scan has {} groups",
                c.name,
                scan.len()
            );
        }
    }
}

/// `--cells`: each day sealed in parts as the cron does (`seal::parts_for`, `seal::part_of`), then
/// per cells target the bytes of its objects (all parts, per part, per day) and the time to build
/// them; then `browser=chrome` by every grouping over every day, from the cells (decode included)
/// and by the scan of the decoded segments, with whether both agree.
fn cells_report(by_day: &BTreeMap<i64, Vec<VisitRow>>, samples: usize) {
    use segment::cells::{self, Grouping, GROUPINGS, TARGETS};
    use segment::seal;
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    for (day, rows) in by_day {
        let parts = seal::parts_for(rows.len() as i64, seal::PART_VISITS);
        let mut split: Vec<Vec<VisitRow>> = vec![Vec::new(); parts as usize];
        for v in rows {
            split[seal::part_of(&v.visitor, parts) as usize].push(v.clone());
        }
        for p in split {
            blobs.push(segment::encode(*day, &p).unwrap());
        }
    }
    let segs: Vec<Segment> = blobs.iter().map(|b| Segment::decode(b).unwrap()).collect();
    let seg_bytes: usize = blobs.iter().map(Vec::len).sum();
    let visits: usize = segs.iter().map(|s| s.visits()).sum();
    println!(
        "{} days, {} parts, {visits} visits; segments {seg_bytes} B ({:.0} B/part)",
        by_day.len(),
        segs.len(),
        seg_bytes as f64 / segs.len() as f64
    );
    println!("| target | values/part (mean) | bytes, all parts | B/part mean | B/part max | B/day mean | build ms/part (mean, CPU) | build ms all |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut all_cells: HashMap<&str, Vec<Vec<u8>>> = HashMap::new();
    let mut total = 0usize;
    for target in TARGETS {
        let t = Instant::now();
        let built: Vec<Vec<u8>> = segs.iter().map(|s| cells::build(s, target, 1)).collect();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let bytes: usize = built.iter().map(Vec::len).sum();
        total += bytes;
        let max = built.iter().map(Vec::len).max().unwrap_or(0);
        let values: usize = built
            .iter()
            .map(|b| u32::from_le_bytes([b[24], b[25], b[26], b[27]]) as usize)
            .sum();
        println!(
            "| {} | {:.0} | {bytes} | {:.0} | {max} | {:.0} | {:.1} | {ms:.0} |",
            cells::target_name(target),
            values as f64 / segs.len() as f64,
            bytes as f64 / segs.len() as f64,
            bytes as f64 / by_day.len() as f64,
            ms / segs.len() as f64,
        );
        all_cells.insert(cells::target_name(target), built);
    }
    println!(
        "all targets: {total} B ({:.2}x the segments)",
        total as f64 / seg_bytes as f64
    );

    // Day cells: each day's parts' cells merged (`cells::merge`, as the cron does when a day's last
    // part is sealed: decode with checksum, merge, encode), per target.
    println!("\nDay cells (each day's parts merged), per target:");
    println!("| target | bytes, all days | B/day mean | B/day max | of the parts' bytes | merge ms/day (mean, decode included) | merge ms max |");
    println!("|---|---|---|---|---|---|---|");
    let mut day_cells: HashMap<&str, Vec<Vec<u8>>> = HashMap::new();
    let (mut day_total, mut merge_total) = (0usize, 0.0f64);
    for target in TARGETS {
        let name = cells::target_name(target);
        let parts = &all_cells[name];
        let mut merged = Vec::new();
        let mut times = Vec::new();
        let mut at = 0;
        while at < parts.len() {
            let day = segs[at].day();
            let n = segs[at..].iter().take_while(|s| s.day() == day).count();
            let t = Instant::now();
            let decoded: Vec<cells::Cells> = parts[at..at + n]
                .iter()
                .map(|b| cells::Cells::decode(b).unwrap())
                .collect();
            merged.push(cells::merge(&decoded).unwrap());
            times.push(t.elapsed().as_secs_f64() * 1e3);
            at += n;
        }
        let bytes: usize = merged.iter().map(Vec::len).sum();
        let ms: f64 = times.iter().sum();
        day_total += bytes;
        merge_total += ms;
        println!(
            "| {name} | {bytes} | {:.0} | {} | {:.2} | {:.1} | {:.1} |",
            bytes as f64 / merged.len() as f64,
            merged.iter().map(Vec::len).max().unwrap_or(0),
            bytes as f64 / parts.iter().map(Vec::len).sum::<usize>() as f64,
            ms / merged.len() as f64,
            times.iter().copied().fold(0.0, f64::max),
        );
        day_cells.insert(name, merged);
    }
    println!(
        "all targets: {day_total} B ({:.2}x the parts' cells); merge {merge_total:.0} ms for {} days ({:.0} ms a day)",
        day_total as f64 / total as f64,
        by_day.len(),
        merge_total / by_day.len() as f64
    );
    let first = *by_day.keys().next().unwrap();
    let last = *by_day.keys().last().unwrap();
    let window = (first * DAY, (last + 2) * DAY);
    let blobs = &all_cells["browser"];
    println!(
        "\n`browser=chrome` over {} days, {} parts (median of {samples}):",
        by_day.len(),
        segs.len()
    );
    println!("| grouping | cells ms (decode + answer) | warm: without checksum | cells bytes read | day cells ms | warm | day cells bytes read | scan ms (decoded segments) | groups | equal |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let days_blobs = &day_cells["browser"];
    for (g, grouping) in GROUPINGS.iter().enumerate() {
        let group = match grouping {
            Grouping::Visits(cols) => Group::Visits(cols.to_vec()),
            Grouping::Pages => Group::Pages(None),
        };
        let q = Query {
            window,
            filters: vec![leaf(Column::Browser, "chrome")],
            group,
        };
        let (cells_ms, from_cells) = time(samples, || {
            let c: Vec<cells::Cells> = blobs
                .iter()
                .map(|b| cells::Cells::decode(b).unwrap())
                .collect();
            cells::answer(&c, "chrome", g, false).unwrap()
        });
        // Warm: bytes that decoded before (the isolate's copies) are read without their checksum.
        let (again_ms, _) = time(samples, || {
            let c: Vec<cells::Cells> = blobs
                .iter()
                .map(|b| cells::Cells::decode_again(b).unwrap())
                .collect();
            cells::answer(&c, "chrome", g, false).unwrap()
        });
        let (day_ms, from_days) = time(samples, || {
            let c: Vec<cells::Cells> = days_blobs
                .iter()
                .map(|b| cells::Cells::decode(b).unwrap())
                .collect();
            cells::answer(&c, "chrome", g, false).unwrap()
        });
        let (day_again_ms, _) = time(samples, || {
            let c: Vec<cells::Cells> = days_blobs
                .iter()
                .map(|b| cells::Cells::decode_again(b).unwrap())
                .collect();
            cells::answer(&c, "chrome", g, false).unwrap()
        });
        let (scan_ms, scanned) = time(samples, || segment::scan(&segs, &q).unwrap());
        println!(
            "| {grouping:?} | {cells_ms:.2} | {again_ms:.2} | {} | {day_ms:.2} | {day_again_ms:.2} | {} | {scan_ms:.2} | {} | {} |",
            blobs.iter().map(Vec::len).sum::<usize>(),
            days_blobs.iter().map(Vec::len).sum::<usize>(),
            from_cells.groups.len(),
            from_cells == scanned && from_days == scanned
        );
    }
}
