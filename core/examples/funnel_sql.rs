//! Where a funnel query's SQL time goes, natively: plans `POST /v0/funnel` for the benchmark's 4-step
//! funnel (id 1, as `gen_rollups --funnels true` defines it) with optional filters, prints each
//! statement with its query plan (`EXPLAIN QUERY PLAN`) and times the statements on a generated D1
//! file opened read-only (integers bound as REAL, as D1 does).
//!
//! ```text
//! cargo run --release -p starling-core --example funnel_sql -- --db FILE.sqlite --tenant t0000 \
//!     --now 1765100000 [--days 30] [--filters '[["is","visit:browser",["chrome"]]]'] [--samples 10] \
//!     [--sql FILE]
//! ```
//!
//! `--sql FILE` times the `;`-separated statements of FILE (literal values, no binds) instead of the
//! plan's, to compare hand-written variants on the same connection.

use std::collections::BTreeMap;
use std::time::Instant;

use rusqlite::{params_from_iter, Connection, OpenFlags};
use starling_core::sql::{SqlValue, Statement};

fn binds(s: &Statement) -> Vec<rusqlite::types::Value> {
    s.binds
        .iter()
        .map(|v| match v {
            SqlValue::Null => rusqlite::types::Value::Null,
            SqlValue::Int(i) => rusqlite::types::Value::Real(*i as f64),
            SqlValue::Real(f) => rusqlite::types::Value::Real(*f),
            SqlValue::Text(t) => rusqlite::types::Value::Text(t.clone()),
        })
        .collect()
}

fn date(secs: i64) -> String {
    let d = secs.div_euclid(86_400);
    let (y, m, day) = civil(d);
    format!("{y:04}-{m:02}-{day:02}")
}

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let map: BTreeMap<String, String> = args
        .chunks(2)
        .filter_map(|p| Some((p[0].trim_start_matches("--").to_owned(), p.get(1)?.clone())))
        .collect();
    let db = map.get("db").expect("--db");
    let tenant = map.get("tenant").map_or("t0000", String::as_str);
    let now: i64 = map.get("now").expect("--now").parse().expect("--now secs");
    let days: i64 = map.get("days").map_or(30, |d| d.parse().expect("--days"));
    let samples: usize = map
        .get("samples")
        .map_or(10, |d| d.parse().expect("--samples"));
    let filters: serde_json::Value = serde_json::from_str(
        map.get("filters")
            .map_or(r#"[["is","visit:browser",["chrome"]]]"#, String::as_str),
    )
    .expect("--filters JSON");
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let (name, steps): (String, String) = conn
        .query_row(
            "SELECT name, steps FROM funnels WHERE tenant_id = ?1 AND id = 1",
            [tenant],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("funnel 1");
    let row = serde_json::json!({"id": 1, "name": name, "steps": steps});
    let (funnel, _) =
        starling_core::funnels::from_row(row.as_object().expect("row")).expect("funnel");
    let last = now - now.rem_euclid(86_400);
    let body = serde_json::json!({"funnel": 1,
        "date_range": [date(last - (days - 1) * 86_400), date(last)], "filters": filters});
    let fixed: BTreeMap<String, String> = [("tenant_id".to_owned(), tenant.to_owned())].into();
    let plan = starling_core::query::plan_funnel(
        &starling_core::query::ApiRequest {
            body: &body,
            tenant: &starling_core::claims::TenantId::for_tests(tenant).expect("tenant"),
            fixed: &fixed,
            now_secs: now,
            tz: &starling_core::query::FixedOffset(0),
        },
        &funnel,
    )
    .expect("plan");
    // `--sql FILE`: time these statements instead (`;`-separated, no binds), e.g. a variant of the
    // plan written out by hand.
    let statements: Vec<Statement> = match map.get("sql") {
        Some(path) => std::fs::read_to_string(path)
            .expect("--sql FILE")
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|s| Statement {
                sql: s.trim().to_owned(),
                binds: Vec::new(),
            })
            .collect(),
        None => plan.statements.clone(),
    };
    let mut total = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        println!("-- statement {i}: {}\n-- binds {:?}", s.sql, s.binds);
        let mut st = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", s.sql))
            .expect("explain");
        let mut rows = st.query(params_from_iter(binds(s))).expect("explain");
        while let Some(r) = rows.next().expect("row") {
            println!("--   {}", r.get::<_, String>(3).expect("detail"));
        }
        let mut st = conn.prepare(&s.sql).expect("prepare");
        let n = st.column_count();
        let mut lat = Vec::new();
        let mut out = Vec::new();
        for _ in 0..samples {
            let t = Instant::now();
            out.clear();
            let mut q = st.query(params_from_iter(binds(s))).expect("query");
            while let Some(r) = q.next().expect("row") {
                out.push(
                    (0..n)
                        .map(|c| format!("{:?}", r.get_ref(c).expect("column")))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        lat.sort_by(f64::total_cmp);
        println!("-- rows {out:?}\n-- ms p50 {:.1}", lat[lat.len() / 2]);
        total.push(lat[lat.len() / 2]);
    }
    println!(
        "-- sum of p50s {:.1} ms over {} statements",
        total.iter().sum::<f64>(),
        total.len()
    );
}
