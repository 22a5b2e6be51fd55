//! What the SQLite-backed tests share: a database with the real D1 migrations, and D1's binding rules.
#![allow(dead_code)] // each test crate uses part of it

use rusqlite::{params_from_iter, Connection};
use starling_core::event::EnrichedEvent;
use starling_core::query::{FixedOffset, TimeZone};
use starling_core::rollup::{prior_lookup, statements_for, PriorState};
use starling_core::sql::{SqlValue, Statement};

/// The `.sql` files of `migrations/`, in the order D1 applies them.
pub fn migration_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
    files.sort();
    files
}

/// Applies migration files to `conn`, in the order given.
pub fn apply_migrations(conn: &Connection, files: &[std::path::PathBuf]) {
    for f in files {
        conn.execute_batch(&std::fs::read_to_string(f).unwrap())
            .unwrap();
    }
}

/// An in-memory SQLite with every migration in `migrations/` applied in order, as D1 would.
pub fn migrated_db() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    apply_migrations(&conn, &migration_files());
    conn
}

/// A bind as D1 makes it: every JS number is a REAL, so integer arithmetic on binds is tested.
pub fn bind(v: &SqlValue) -> rusqlite::types::Value {
    match v {
        SqlValue::Null => rusqlite::types::Value::Null,
        SqlValue::Int(i) => rusqlite::types::Value::Real(*i as f64),
        SqlValue::Real(f) => rusqlite::types::Value::Real(*f),
        SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}

/// Runs one statement outside a transaction; returns the rows it changed.
pub fn exec(conn: &Connection, s: &Statement) -> usize {
    conn.execute(&s.sql, params_from_iter(s.binds.iter().map(bind)))
        .unwrap()
}

/// Runs statements in one transaction, like a D1 batch: all or nothing.
pub fn run(conn: &mut Connection, statements: &[Statement]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for s in statements {
        tx.execute(&s.sql, params_from_iter(s.binds.iter().map(bind)))?;
    }
    tx.commit()
}

/// A query's rows as D1 hands them to the worker: JSON objects keyed by column name.
pub fn rows(conn: &Connection, s: &Statement) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut out = Vec::new();
    each_row(conn, s, |m| out.push(m));
    out
}

/// [`rows`] one at a time, without holding them all (the statement is cached on the connection, so
/// timing loops do not prepare it again).
pub fn each_row(
    conn: &Connection,
    s: &Statement,
    mut f: impl FnMut(serde_json::Map<String, serde_json::Value>),
) {
    use serde_json::{json, Map, Value};
    let mut stmt = conn.prepare_cached(&s.sql).unwrap();
    let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
    let mut rows = stmt
        .query(params_from_iter(s.binds.iter().map(bind)))
        .unwrap();
    while let Some(r) = rows.next().unwrap() {
        let mut m = Map::new();
        for (i, n) in names.iter().enumerate() {
            let v = match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                rusqlite::types::Value::Null => Value::Null,
                rusqlite::types::Value::Integer(i) => json!(i),
                rusqlite::types::Value::Real(f) => json!(f),
                rusqlite::types::Value::Text(t) => json!(t),
                rusqlite::types::Value::Blob(_) => Value::Null,
            };
            m.insert(n.clone(), v);
        }
        f(m);
    }
}

/// The consumer's steps for one batch: read the prior state of the visits it touches, then the rollup
/// statements (without the batch guard), as statements to run in one transaction.
pub fn rollup_statements(conn: &Connection, events: &[EnrichedEvent], now: i64) -> Vec<Statement> {
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
            prior.add_rows(t, &rows(conn, &s));
        }
    }
    statements_for(events, &prior, now)
}

/// Reads the prior state and applies one batch's rollup statements in one transaction.
pub fn apply(conn: &mut Connection, events: &[EnrichedEvent], now: i64) -> rusqlite::Result<()> {
    let statements = rollup_statements(conn, events, now);
    run(conn, &statements)
}

/// splitmix64: deterministic fixtures without a dependency.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One element of `list`.
    pub fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len() as u64) as usize]
    }
}

/// UTC, as the planner's own fixed-offset zone.
pub const UTC: FixedOffset = FixedOffset(0);

/// Europe/Madrid in 2025: CET (+1h), CEST (+2h) from 2025-03-30 01:00 UTC to 2025-10-26 01:00 UTC.
pub struct Madrid;

impl TimeZone for Madrid {
    fn offset_secs(&self, utc: i64) -> i32 {
        if (1_743_296_400..1_761_440_400).contains(&utc) {
            7200
        } else {
            3600
        }
    }
}
