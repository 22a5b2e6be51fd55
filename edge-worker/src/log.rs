//! Structured JSON logs: one line per request or batch. Never a token, key, IP or user agent.

use std::cell::Cell;

use serde::Serialize;

/// How serious a log line is; lines under `LOG_LEVEL` are not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Normal operation (a request, a delivery).
    Info,
    /// Something to look at that did not lose anything (a retry, a 4xx).
    Warn,
    /// Something failed (a 5xx, a batch that will be retried or parked).
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    /// The level named by `LOG_LEVEL`; anything unknown is `Info`.
    fn parse(s: &str) -> Self {
        match s {
            "error" => Self::Error,
            "warn" => Self::Warn,
            _ => Self::Info,
        }
    }
}

thread_local! {
    /// Lowest level written, from the `LOG_LEVEL` variable.
    static MIN_LEVEL: Cell<Level> = const { Cell::new(Level::Info) };
}

/// Applies the `LOG_LEVEL` variable (`info`, the default; `warn`; `error`). Per-request `info` lines are
/// the bulk of the log volume at high ingest rates: operators can keep only warnings and errors.
pub fn configure(env: &worker::Env) {
    let level = crate::env::var(env, crate::env::LOG_LEVEL)
        .map(|v| Level::parse(&v))
        .unwrap_or(Level::Info);
    MIN_LEVEL.with(|m| m.set(level));
}

/// One request's log line.
#[derive(Serialize)]
pub struct RequestLog<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub latency_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<usize>,
    /// A read of visit segments (`store::segments::SegmentRead`): days, bytes, objects fetched, times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<&'a crate::store::segments::SegmentRead>,
    /// Per-step elapsed milliseconds (ingest), e.g. `{"auth":1,"salt":1,"quota":3,"queue":5}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Writes a JSON log line at level `info`, or `warn` for 4xx and `error` for 5xx.
pub fn request(line: &RequestLog) {
    let level = match line.status {
        500.. => Level::Error,
        400..=499 => Level::Warn,
        _ => Level::Info,
    };
    emit(level, "request", line);
}

/// Writes a JSON log line for something that is not a request (queue batch, cron).
pub fn event<T: Serialize>(level: Level, kind: &str, fields: &T) {
    emit(level, kind, fields);
}

/// Logs a cron job's report (a JSON object with `error` and `failures`): at `Error` when it has an
/// error or any failure, else at `Info`.
pub fn cron_report(kind: &str, report: &serde_json::Value) {
    let failed =
        !report["error"].is_null() || !report["failures"].as_array().is_some_and(Vec::is_empty);
    event(
        if failed { Level::Error } else { Level::Info },
        kind,
        report,
    );
}

fn emit<T: Serialize>(level: Level, kind: &str, fields: &T) {
    if level < MIN_LEVEL.with(Cell::get) {
        return;
    }
    let mut v = serde_json::to_value(fields).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.insert("level".into(), level.as_str().into());
        map.insert("kind".into(), kind.into());
        map.insert("ts".into(), crate::clock::now_ms().into());
    }
    worker::console_log!("{}", v);
}
