//! Where a 1,000-row ingest request's time goes, natively: the rows `bench/ingest.mjs` posts in its
//! batched phase (and a varied mix), through [`starling_core::ingest::process`] as a whole and then
//! stage by stage with the same public functions the pipeline calls.
//!
//! ```text
//! cargo run --release -p starling-core --example ingest_profile -- [--rows 1000] [--reps 200] [--mix bench|varied]
//! ```
//!
//! Prints one line per stage: µs per row (median over `reps` runs of all rows). The stage lines are
//! measured separately (each without the per-request memo), so they add up only roughly to the
//! whole. `--stages false` times only the whole (for `perf record`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use serde_json::{Map, Value};
use starling_core::claims::{AppendGrant, TenantId};
use starling_core::enrich;
use starling_core::event::QueueBatch;
use starling_core::identity::visitor_id;
use starling_core::ingest::{self, Geo, IngestContext, Limits};

/// The user agent `bench/ingest.mjs` sends.
const BENCH_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// 2025-08-13T10:41:02Z, a fixed `now` so runs are comparable.
const NOW: i64 = 1_755_081_662_000;

/// One row exactly as `bench/ingest.mjs`'s `line(tenant, i)` writes it (JSON.stringify key order; the
/// payload a JSON string).
fn bench_line(tenant: &str, i: usize, ua: &str, referrer: &str) -> String {
    let payload = serde_json::to_string(&format!(
        r#"{{"user-agent":{},"locale":"en-US","referrer":{},"pathname":"/p/{}","href":"https://bench.example/p/{}?utm_source=b"}}"#,
        Value::from(ua),
        Value::from(referrer),
        i % 50,
        i % 50
    ))
    .unwrap_or_default();
    format!(
        r#"{{"timestamp":"2025-08-13T10:41:02.123Z","action":"page_hit","version":"1","session_id":"s-{}","tenant_id":"{tenant}","domain":"bench.example","payload":{payload}}}"#,
        i % 5000
    )
}

/// A varied mix: a few dozen user agents and referrers, object payloads, custom events, bad rows.
fn varied_line(i: usize) -> String {
    const UAS: &[&str] = &[
        BENCH_UA,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
        "",
    ];
    const REFS: &[&str] = &[
        "https://www.google.com/",
        "",
        "https://news.ycombinator.com/item?id=1",
        "https://bench.example/other",
        "not a url",
    ];
    let ua = UAS[i % UAS.len()];
    let referrer = REFS[i % REFS.len()];
    match i % 10 {
        7 => format!(
            r#"{{"action":"signup","payload":{{"plan":"pro","email":"a{i}@b.c","userAgent":{},"href":"https://www.bench.example/s?email=x&utm_campaign=c{}#f"}}}}"#,
            Value::from(ua),
            i % 3
        ),
        8 if i % 20 == 8 => "{broken".to_owned(),
        9 => format!(
            r#"{{"timestamp":{},"action":"page_hit","session_id":"v{}","payload":{{"pathname":"/app/#/s{}?t=1","location":{{"country":"ES","city":"Madrid"}},"referrer":{}}}}}"#,
            NOW - (i as i64) * 1000,
            i % 7,
            i % 4,
            Value::from(referrer)
        ),
        _ => bench_line("varied", i, ua, referrer),
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Median of `reps` timings of `f`, in µs per row.
fn time<R>(reps: usize, rows: usize, mut f: impl FnMut() -> R) -> f64 {
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_secs_f64() * 1e6 / rows as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = arg(&args, "--rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let reps: usize = arg(&args, "--reps")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mix = arg(&args, "--mix").unwrap_or_else(|| "bench".into());
    let lines: Vec<String> = (0..rows)
        .map(|i| match mix.as_str() {
            "varied" => varied_line(i),
            _ => bench_line("batch", i, BENCH_UA, "https://www.google.com/"),
        })
        .collect();
    let body = lines.join("\n");

    let tenant = TenantId::for_tests("batch").expect("tenant id");
    let grant = AppendGrant {
        tenant,
        fixed: BTreeMap::from([("tenant_id".to_owned(), "batch".to_owned())]),
    };
    let geo = Geo {
        country: "DE".into(),
        region: "BE".into(),
        city: "Berlin".into(),
    };
    let limits = Limits::default();
    let salt = [7u8; 16];
    let ctx = IngestContext {
        grant: &grant,
        now_ms: NOW,
        ip: "203.0.113.9",
        header_user_agent: Some("node"),
        geo: &geo,
        salt: &salt,
        limits: &limits,
    };

    let whole = time(reps, rows, || ingest::process(body.as_bytes(), &ctx));
    if arg(&args, "--stages").as_deref() == Some("false") {
        println!(
            "mix={mix} rows={rows} reps={reps}: ingest::process {whole:.2} µs per row (median)"
        );
        return;
    }
    let out = ingest::process(body.as_bytes(), &ctx).expect("process");
    let batch = QueueBatch {
        batch_id: "r-s0".into(),
        tenant_id: "batch".into(),
        received_at: NOW,
        events: out.events.clone(),
        quarantined: out.quarantined.clone(),
        spool: None,
        generation: Some(1),
    };
    let serialise = time(reps, rows, || serde_json::to_vec(&batch).map(|v| v.len()));
    let per_event_weight = time(reps, rows, || {
        out.events
            .iter()
            .map(|e| serde_json::to_string(e).map(|s| s.len()).unwrap_or(0))
            .sum::<usize>()
    });

    // Stage by stage, over the same rows.
    let envelopes: Vec<Map<String, Value>> = lines
        .iter()
        .filter_map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        })
        .collect();
    let payloads: Vec<Map<String, Value>> = envelopes
        .iter()
        .map(|e| match e.get("payload") {
            Some(Value::Object(o)) => o.clone(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(o)) => o,
                _ => Map::new(),
            },
            _ => Map::new(),
        })
        .collect();
    let n = envelopes.len().max(1);
    let text = |m: &Map<String, Value>, k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let uas: Vec<String> = payloads
        .iter()
        .map(|p| enrich::payload_user_agent(p).unwrap_or("node").to_owned())
        .collect();
    let stages: Vec<(&str, f64)> = vec![
        (
            "split + JSON parse of the envelope",
            time(reps, rows, || {
                body.split('\n')
                    .map(|l| serde_json::from_str::<Value>(l).is_ok())
                    .filter(|ok| *ok)
                    .count()
            }),
        ),
        (
            "JSON parse of the payload string",
            time(reps, n, || {
                envelopes
                    .iter()
                    .filter_map(|e| e.get("payload").and_then(Value::as_str))
                    .filter(|s| serde_json::from_str::<Value>(s).is_ok())
                    .count()
            }),
        ),
        (
            "timestamp",
            time(reps, n, || {
                envelopes
                    .iter()
                    .filter_map(|e| e.get("timestamp"))
                    .filter_map(starling_core::time::parse_timestamp)
                    .sum::<i64>()
            }),
        ),
        (
            "user agent (woothee + bot rules)",
            time(reps, n, || {
                uas.iter()
                    .map(|u| enrich::client(u).is_bot)
                    .filter(|b| *b)
                    .count()
            }),
        ),
        (
            "URLs: parse, path, source, utm, strip",
            time(reps, n, || {
                payloads
                    .iter()
                    .map(|p| {
                        let href = text(p, "href");
                        let url = enrich::parse_url(&href);
                        let host = url.as_ref().map(|u| u.host.clone()).unwrap_or_default();
                        let path =
                            enrich::normalize_path(url.as_ref().map(|u| u.path).unwrap_or("/"));
                        let src = enrich::source(&text(p, "referrer"), &host);
                        let utm = enrich::utm(url.as_ref().map(|u| u.query).unwrap_or_default());
                        enrich::strip_url(&href).len() + path.len() + src.len() + utm.source.len()
                    })
                    .sum::<usize>()
            }),
        ),
        (
            "visitor id (SipHash 128 + hex)",
            time(reps, n, || {
                uas.iter()
                    .map(|u| visitor_id(&salt, "batch", "bench.example", "203.0.113.9", u).len())
                    .sum::<usize>()
            }),
        ),
        (
            "payload: clone + sanitize + serialise",
            time(reps, n, || {
                payloads
                    .iter()
                    .map(|p| {
                        serde_json::to_string(&enrich::sanitize_payload(p.clone()))
                            .map(|s| s.len())
                            .unwrap_or(0)
                    })
                    .sum::<usize>()
            }),
        ),
    ];

    println!(
        "mix={mix} rows={rows} (accepted {}, quarantined {}) reps={reps}, µs per row (median):",
        out.events.len(),
        out.quarantined.len()
    );
    println!("{:<45} {:>8.2}", "ingest::process (whole)", whole);
    for (name, us) in &stages {
        println!("  {name:<43} {us:>8.2}");
    }
    println!(
        "{:<45} {:>8.2}",
        "spool object: serde_json::to_vec(QueueBatch)", serialise
    );
    println!(
        "{:<45} {:>8.2}",
        "inline path: per-event to_string (weights)", per_event_weight
    );
    println!(
        "spool object bytes: {}",
        serde_json::to_vec(&batch).map(|v| v.len()).unwrap_or(0)
    );
}
