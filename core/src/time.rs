//! UTC calendar helpers and timestamp parsing. Nothing here reads a clock: `now` is always passed in.
//!
//! Dates and timestamps are parsed with `chrono` (already in the tree through `jwt-compact`), with its
//! default features off so it never touches the system clock or JavaScript's `Date`.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Seconds in a UTC day.
pub const DAY_SECS: i64 = 86_400;

/// The UTC day of `secs` as `YYYY-MM-DD`.
pub fn day_string(secs: i64) -> String {
    DateTime::from_timestamp(secs.div_euclid(DAY_SECS) * DAY_SECS, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".to_owned())
}

/// `secs` as an RFC 3339 UTC timestamp to the second: `2026-11-23T10:00:00Z` (what the admin API returns).
pub fn rfc3339(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses `YYYY-MM-DD` into days since 1970-01-01; `None` when it is not a valid calendar date.
pub fn parse_day(s: &str) -> Option<i64> {
    if s.len() != 10 {
        return None;
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(
        date.and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp()
            .div_euclid(DAY_SECS),
    )
}

/// The start of the UTC hour that contains `secs`.
pub fn hour_start(secs: i64) -> i64 {
    secs - secs.rem_euclid(3600)
}

/// Parses an event timestamp into UTC milliseconds.
///
/// Accepts what Tinybird's `DateTime` columns and its clients send: RFC 3339 / ISO 8601 with `Z` or an
/// offset (`2025-08-13T10:41:02.123Z`), the same without a zone (taken as UTC), ClickHouse's
/// `2025-08-13 10:41:02[.123]` (UTC), and Unix time as a number or numeric string (seconds, or
/// milliseconds when above 10^11).
pub fn parse_timestamp(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(epoch_ms)
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(epoch_ms_f64)),
        serde_json::Value::String(s) => parse_timestamp_str(s.trim()),
        _ => None,
    }
}

fn epoch_ms(n: i64) -> i64 {
    if n.abs() >= 100_000_000_000 {
        n
    } else {
        n.saturating_mul(1000)
    }
}

fn epoch_ms_f64(f: f64) -> i64 {
    if f.abs() >= 1e11 {
        f as i64
    } else {
        (f * 1000.0) as i64
    }
}

fn parse_timestamp_str(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 40 {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().map(epoch_ms);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    // `2025-08-13 10:41:02Z` / `+00:00`: ClickHouse-style with a zone.
    if s.len() > 10 && s.as_bytes()[10] == b' ' {
        let t = format!("{}T{}", &s[..10], &s[11..]);
        return DateTime::parse_from_rfc3339(&t)
            .ok()
            .map(|d| d.timestamp_millis());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn days_round_trip() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(1_755_081_662), "2025-08-13");
        assert_eq!(day_string(-1), "1969-12-31");
        assert_eq!(parse_day("2025-08-13"), Some(1_755_081_662 / DAY_SECS));
        assert_eq!(
            day_string(parse_day("2024-02-29").unwrap() * DAY_SECS),
            "2024-02-29"
        );
        for bad in ["2025-02-30", "2025-8-13", "2025-08-13T00", "", "yesterday"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        assert_eq!(hour_start(1_755_081_662), 1_755_079_200);
    }

    #[test]
    fn rfc3339_is_utc_to_the_second() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_755_081_662), "2025-08-13T10:41:02Z");
        assert_eq!(
            parse_timestamp(&json!(rfc3339(1_755_081_662))),
            Some(1_755_081_662_000)
        );
    }

    #[test]
    fn timestamps_in_every_accepted_shape() {
        let ms = 1_755_081_662_123;
        for v in [
            json!("2025-08-13T10:41:02.123Z"),
            json!("2025-08-13T12:41:02.123+02:00"),
            json!("2025-08-13T10:41:02.123"),
            json!("2025-08-13 10:41:02.123"),
            json!(1_755_081_662_123_i64),
            json!("1755081662123"),
            json!(1_755_081_662.123),
        ] {
            assert_eq!(parse_timestamp(&v), Some(ms), "{v}");
        }
        assert_eq!(
            parse_timestamp(&json!("2025-08-13 10:41:02")),
            Some(1_755_081_662_000)
        );
        assert_eq!(
            parse_timestamp(&json!(1_755_081_662)),
            Some(1_755_081_662_000)
        );
        assert_eq!(
            parse_timestamp(&json!("2025-08-13 10:41:02Z")),
            Some(1_755_081_662_000)
        );
        for bad in [
            json!("yesterday-ish"),
            json!(""),
            json!(true),
            json!(null),
            json!({}),
            json!("2025-13-01T00:00:00Z"),
        ] {
            assert_eq!(parse_timestamp(&bad), None, "{bad}");
        }
    }
}
