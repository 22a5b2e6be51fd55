//! Sealing a day of visits in parts (`segment::seal`), natively: what one part costs in memory and
//! time, to choose `seal::PART_VISITS` and to check it on a real data set.
//!
//! ```text
//! # A synthetic day of 1.4M visits (a tenant of about 100M events a month) in a new SQLite file:
//! cargo run --release -p starling-core --example segment_parts -- --synthetic 1400000 \
//!     --file /tmp/day.sqlite [--parts N] [--measure 3] [--dump-json /tmp/part.json]
//! # Every closed day of a tenant in a D1 file (a copy: the file is opened read-only):
//! cargo run --release -p starling-core --example segment_parts -- --db <D1 .sqlite file> \
//!     --tenant t0000 --now <unix secs>
//! ```
//!
//! Per part it runs [`seal::read_part`]'s statements as D1 does (one transaction, integers bound as
//! REAL), turns the rows into the JSON objects the worker's D1 layer hands over, joins them
//! ([`seal::rows_of`]) and encodes them, dropping each stage as the worker does, and prints the part's
//! visits and pages, the peak bytes held (a counting allocator: D1 rows, joined rows, encoding), the
//! bytes of the rows as JSON text (what the runtime parses into JS objects before the worker sees
//! them), the object's size and the seconds of SQL and of encoding.

// The one unsafe code of the workspace: a counting global allocator (it only forwards to the system
// allocator), in a measuring tool that is never part of the worker.
#![allow(unsafe_code)]

// The SQLite-backed tests' helpers: the migrations in order, D1's binding rules.
#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rusqlite::{params, Connection, OpenFlags};
use serde_json::{json, Value};
use starling_core::segment::{encode, seal};
use starling_core::sql::Statement;

const DAY: i64 = 86_400;

/// The system allocator, counting the bytes held now and at most since the last [`reset_peak`].
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = NOW.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        NOW.fetch_sub(l.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                let now = NOW.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                NOW.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn reset_peak() -> usize {
    let now = NOW.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A query's rows deserialized one by one into `T`, as the worker's sealing does with D1's results
/// (`D1Result::results::<T>`), and the bytes of the rows as JSON text.
/// Also returns the seconds of the counting pass (not part of sealing).
fn typed<T: serde::de::DeserializeOwned>(conn: &Connection, s: &Statement) -> (Vec<T>, usize, f64) {
    // Allocated at its length, as `results::<T>` does (it knows the JS array's): the query runs
    // once to count first.
    let t = Instant::now();
    let mut n = 0;
    common::each_row(conn, s, |_| n += 1);
    let counting = t.elapsed().as_secs_f64();
    let mut out = Vec::with_capacity(n);
    let mut json = 2;
    common::each_row(conn, s, |m| {
        json += serde_json::to_string(&m).unwrap().len() + 1;
        out.push(serde_json::from_value(Value::Object(m)).unwrap());
    });
    (out, json, counting)
}

/// What sealing one part took.
struct Part {
    visits: usize,
    pages: usize,
    peak: usize,
    json: usize,
    object: usize,
    sql_s: f64,
    encode_s: f64,
}

/// Seals part `part` of `parts` of the day as the worker does, without writing anything.
fn seal_part(
    conn: &mut Connection,
    tenant: &str,
    day: i64,
    (part, parts): (u32, u32),
    dump: Option<&str>,
) -> Part {
    let base = reset_peak();
    let t0 = Instant::now();
    let statements = seal::read_part(tenant, day, part, parts);
    let tx = conn.transaction().unwrap();
    // (A data set generated before migration 0019 has no versions to read.)
    let versioned: bool = tx
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'segment_days'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if versioned {
        let _version = seal::version_of(&common::rows(&tx, &statements[0]));
    }
    let (sessions, json_sessions, c1) = typed::<seal::SessionRow>(&tx, &statements[1]);
    let (pages, json_pages, c2) = typed::<seal::PageVisitRow>(&tx, &statements[2]);
    tx.commit().unwrap();
    let sql_s = t0.elapsed().as_secs_f64() - c1 - c2;
    let json = json_sessions + json_pages;
    if let Some(path) = dump {
        // The rows as JSON text, for a look at what the runtime's objects of them cost.
        let held = PEAK.load(Ordering::Relaxed);
        let text = serde_json::to_string(&json!([
            common::rows(conn, &statements[1]),
            common::rows(conn, &statements[2])
        ]))
        .unwrap();
        std::fs::write(path, &text).unwrap();
        drop(text);
        PEAK.store(held, Ordering::Relaxed);
    }
    let t1 = Instant::now();
    let n_pages = pages.len();
    let joined = seal::join(sessions, pages).unwrap();
    let visits = joined.len();
    let blob = encode(day / DAY, &joined).unwrap();
    drop(joined);
    let encode_s = t1.elapsed().as_secs_f64();
    Part {
        visits,
        pages: n_pages,
        peak: PEAK.load(Ordering::Relaxed) - base,
        json,
        object: blob.len(),
        sql_s,
        encode_s,
    }
}

fn print_part(day: i64, part: u32, parts: u32, p: &Part) {
    println!(
        "day {} part {part:>3}/{parts}: {:>7} visits {:>8} pages, peak {:>6.1} MB ({:>5} B/visit), \
         rows as JSON {:>6.1} MB ({:>4} B/visit), object {:>5.2} MB, SQL {:.2} s, join+encode {:.2} s",
        starling_core::time::day_string(day),
        p.visits,
        p.pages,
        p.peak as f64 / 1e6,
        p.peak / p.visits.max(1),
        p.json as f64 / 1e6,
        p.json / p.visits.max(1),
        p.object as f64 / 1e6,
        p.sql_s,
        p.encode_s
    );
}

/// A deterministic 64-bit mix (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A synthetic day of `n` visits of tenant `big` in a new SQLite file with every migration: about 0.7
/// visits per visitor, 2.1 pages per visit, values with the 10M data set's lengths (paths like
/// `/blog/post-123`, a few hundred of them; sources, UTM, browsers, countries from small sets).
fn synthetic(file: &str, n: usize, day: i64) -> Connection {
    let _ = std::fs::remove_file(file);
    let mut conn = Connection::open(file).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")
        .unwrap();
    common::apply_migrations(&conn, &common::migration_files());
    let sources = [
        "",
        "",
        "google.com",
        "bing.com",
        "t.co",
        "news.ycombinator.com",
        "reddit.com",
        "duckduckgo.com",
        "facebook.com",
        "linkedin.com",
    ];
    let utm = ["", "", "", "newsletter", "twitter", "partner-site"];
    let mediums = ["", "", "", "email", "social", "cpc"];
    let campaigns = [
        "",
        "",
        "",
        "spring-sale",
        "launch-week",
        "black-friday-2026",
    ];
    let browsers = [
        "Chrome",
        "Safari",
        "Firefox",
        "Edge",
        "Samsung Internet",
        "Opera",
    ];
    let oses = ["Windows", "macOS", "iOS", "Android", "Linux", "ChromeOS"];
    let devices = ["desktop", "mobile", "tablet"];
    let countries = [
        "US", "DE", "GB", "FR", "ES", "IN", "BR", "JP", "CA", "NL", "IT", "PL",
    ];
    let path = |x: u64| match x % 4 {
        0 => "/".to_owned(),
        1 => format!("/blog/post-{}", x % 300),
        2 => format!("/docs/section-{}/page-{}", x % 12, x % 40),
        _ => ["/pricing", "/about", "/contact", "/signup", "/login"][(x % 5) as usize].to_owned(),
    };
    let visitors = (n as u64 * 10 / 14).max(1);
    let tx = conn.transaction().unwrap();
    {
        let mut s = tx
            .prepare(
                "INSERT INTO sessions (tenant_id, session_key, domain, visitor_id, first_ts, \
                 last_ts, pageviews, entry_path, exit_path, source, utm_source, utm_medium, \
                 utm_campaign, browser, os, device, country) VALUES ('big', ?1, ?2, ?3, ?4, ?5, ?6, \
                 ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )
            .unwrap();
        let mut p = tx
            .prepare(
                "INSERT INTO page_visits (tenant_id, session_key, pathname, first_ts, hits, \
                 since_visit) VALUES ('big', ?1, ?2, ?3, ?4, ?5)",
            )
            .unwrap();
        for i in 0..n as u64 {
            let r = mix(i);
            let v = mix((r % visitors) ^ 0xabcdef);
            let visitor = format!("{v:016x}{:016x}", mix(v));
            let key = format!("s-{:016x}", mix(r ^ 7));
            let first = day + (i as i64 * DAY) / n as i64;
            // 2.1 pages a visit on average: 1 (45%), 2 (25%), 3 (15%), 4 to 6 (15%).
            let k = match r % 20 {
                0..=8 => 1,
                9..=13 => 2,
                14..=16 => 3,
                x => 4 + x % 3,
            } as usize;
            let mut pages: Vec<(String, i64, u64)> = Vec::new();
            let mut t = first;
            for j in 0..k as u64 {
                let pth = path(mix(r ^ j));
                if pages.iter().any(|q| q.0 == pth) {
                    continue;
                }
                pages.push((pth, t, 1 + u64::from(mix(r + j).is_multiple_of(5))));
                t += (mix(r * 3 + j) % 240) as i64;
            }
            let pv: u64 = pages.iter().map(|q| q.2).sum();
            let domain = if r.is_multiple_of(5) {
                "blog.site0.example"
            } else {
                "site0.example"
            };
            s.execute(params![
                key,
                domain,
                visitor,
                first,
                t.max(pages.last().unwrap().1),
                pv,
                pages[0].0,
                pages.last().unwrap().0,
                sources[(r >> 8) as usize % sources.len()],
                utm[(r >> 12) as usize % utm.len()],
                mediums[(r >> 12) as usize % mediums.len()],
                campaigns[(r >> 12) as usize % campaigns.len()],
                browsers[(r >> 16) as usize % browsers.len()],
                oses[(r >> 20) as usize % oses.len()],
                devices[(r >> 24) as usize % devices.len()],
                countries[(r >> 28) as usize % countries.len()],
            ])
            .unwrap();
            for (pth, at, hits) in &pages {
                p.execute(params![key, pth, at, hits, at - first]).unwrap();
            }
        }
        tx.execute(
            "INSERT INTO visit_daily (tenant_id, dim, day, value, domain, visits, pageviews, \
             bounces, duration, visitors) VALUES ('big', 0, ?1, '', 'site0.example', ?2, 0, 0, 0, 0)",
            params![day, n as i64],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    conn
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dump = arg(&args, "--dump-json");
    if let Some(n) = arg(&args, "--synthetic") {
        let n: usize = n.parse().unwrap();
        let file = arg(&args, "--file").unwrap_or_else(|| "/tmp/segment-parts-day.sqlite".into());
        let day = 20_400 * DAY;
        let t = Instant::now();
        let mut conn = synthetic(&file, n, day);
        let pages: i64 = conn
            .query_row("SELECT COUNT(*) FROM page_visits", [], |r| r.get(0))
            .unwrap();
        println!(
            "synthetic day: {n} visits, {pages} pages, written in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let parts = arg(&args, "--parts")
            .map(|p| p.parse().unwrap())
            .unwrap_or_else(|| seal::parts_for(n as i64, seal::PART_VISITS));
        let measure: u32 = arg(&args, "--measure")
            .map(|m| m.parse().unwrap())
            .unwrap_or(3)
            .min(parts);
        println!(
            "parts: {parts} (seal::parts_for({n}), {} visits a part at most on average); \
             measuring {measure}",
            seal::PART_VISITS
        );
        for part in 0..measure {
            let p = seal_part(&mut conn, "big", day, (part, parts), dump.as_deref());
            print_part(day, part, parts, &p);
        }
        return;
    }
    let db = arg(&args, "--db").expect("--db <file> or --synthetic <visits>");
    let tenant = arg(&args, "--tenant").unwrap_or_else(|| "t0000".into());
    let now: i64 = arg(&args, "--now")
        .map(|n| n.parse().unwrap())
        .expect("--now <unix secs>");
    let mut conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    // The tenant's closed days with their visit count, as `seal::days_to_seal` lists them (without
    // its segment state: a data set may predate migration 0019).
    let due = common::rows(
        &conn,
        &Statement::new(
            "SELECT day, SUM(visits) AS visits FROM visit_daily WHERE tenant_id = ? AND dim = 0 \
             AND day + ? <= ? GROUP BY day ORDER BY day",
            vec![
                tenant.as_str().into(),
                (DAY + seal::SEAL_AFTER_SECS).into(),
                now.into(),
            ],
        ),
    );
    let (mut total_parts, mut total_bytes, mut total_s, mut worst) = (0u32, 0usize, 0f64, 0usize);
    for r in &due {
        let day = starling_core::sql::int(r.get("day")).unwrap();
        let visits = starling_core::sql::int(r.get("visits")).unwrap();
        let parts = seal::parts_for(visits, seal::PART_VISITS);
        let (mut bytes, mut s) = (0, 0.0);
        for part in 0..parts {
            let p = seal_part(&mut conn, &tenant, day, (part, parts), None);
            print_part(day, part, parts, &p);
            bytes += p.object;
            s += p.sql_s + p.encode_s;
            worst = worst.max(p.peak);
        }
        println!(
            "day {}: {visits} visits, {parts} parts, {:.2} MB, {s:.2} s",
            starling_core::time::day_string(day),
            bytes as f64 / 1e6
        );
        total_parts += parts;
        total_bytes += bytes;
        total_s += s;
    }
    println!(
        "{tenant}: {} days, {total_parts} parts, {:.1} MB, {:.1} s ({:.2} s a day), largest part \
         peak {:.1} MB",
        due.len(),
        total_bytes as f64 / 1e6,
        total_s,
        total_s / due.len().max(1) as f64,
        worst as f64 / 1e6
    );
}
