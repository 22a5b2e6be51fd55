//! Structured JSON logs: one line per request or batch. Never a token, key, IP or user agent.

use std::cell::Cell;

use serde::Serialize;

thread_local! {
    /// Lowest level written (0 info, 1 warn, 2 error), from the `LOG_LEVEL` variable.
    static MIN_LEVEL: Cell<u8> = const { Cell::new(0) };
}

fn rank(level: &str) -> u8 {
    match level {
        "error" => 2,
        "warn" => 1,
        _ => 0,
    }
}

/// Applies the `LOG_LEVEL` variable (`info`, the default; `warn`; `error`). Per-request `info` lines are
/// the bulk of the log volume at high ingest rates: operators can keep only warnings and errors.
pub fn configure(env: &worker::Env) {
    let level = env
        .var(crate::env::LOG_LEVEL)
        .map(|v| rank(&v.to_string()))
        .unwrap_or(0);
    MIN_LEVEL.with(|m| m.set(level));
}

/// One request's log line.
#[derive(Serialize)]
pub struct RequestLog<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    pub status: u16,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<usize>,
    /// Per-step elapsed milliseconds (ingest), e.g. `{"auth":1,"salt":1,"quota":3,"queue":5}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Writes a JSON log line at level `info`, or `warn` for 4xx and `error` for 5xx.
pub fn request(line: &RequestLog) {
    let level = match line.status {
        500.. => "error",
        400..=499 => "warn",
        _ => "info",
    };
    emit(level, "request", line);
}

/// Writes a JSON log line for something that is not a request (queue batch, cron).
pub fn event<T: Serialize>(level: &str, kind: &str, fields: &T) {
    emit(level, kind, fields);
}

fn emit<T: Serialize>(level: &str, kind: &str, fields: &T) {
    if rank(level) < MIN_LEVEL.with(Cell::get) {
        return;
    }
    let mut v = serde_json::to_value(fields).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.insert("level".into(), level.into());
        map.insert("kind".into(), kind.into());
        map.insert("ts".into(), worker::Date::now().as_millis().into());
    }
    worker::console_log!("{}", v);
}
