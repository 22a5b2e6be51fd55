//! The audit log of denied requests: who was refused, where, why, and how often (`audit_denials`,
//! `migrations/0004_tenant_operations.sql`).
//!
//! Denials are counted per minute and (tenant, token name, route, reason, status), so a flood of bad
//! requests stays a handful of rows. The log never holds a token, a key, an IP or a user agent: only the
//! token's *name* (from verified claims) and the tenant. It is a security record, so tenant erasure and
//! retention leave it alone (see [`crate::lifecycle`]).

use serde_json::{json, Map, Value};

use crate::claims::is_valid_tenant_id;
use crate::sql::{count, SqlValue, Statement};
use crate::time::{parse_day, rfc3339, DAY_SECS};

/// Longest token name (and route) kept, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Default and largest `limit` of [`parse_filter`].
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest `limit`.
pub const MAX_LIMIT: u32 = 1000;
/// The query parameters [`parse_filter`] accepts.
pub const PARAMS: [&str; 5] = ["tenant_id", "reason", "date_from", "date_to", "limit"];

crate::named_enum! {
    /// Why a request was denied. Stable snake_case names are stored and filtered on.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Reason {
        /// No bearer token (or `?token=`) at all.
        MissingToken => "missing_token",
        /// A token that does not parse or whose signature does not verify.
        BadToken => "bad_token",
        /// A token past its `exp`.
        Expired => "expired",
        /// A token before its `nbf`.
        NotYetValid => "not_yet_valid",
        /// An EdDSA token whose `kid` names no registered key.
        UnknownKey => "unknown_key",
        /// A revoked token or key.
        Revoked => "revoked",
        /// A token without the scope the route needs.
        ScopeViolation => "scope_violation",
        /// A token of one tenant used on another tenant's data.
        CrossTenant => "cross_tenant",
        /// A token of an erased tenant.
        TenantErased => "tenant_erased",
        /// A token of a tenant the registry does not know.
        TenantNotProvisioned => "tenant_not_provisioned",
        /// A tracker request from an origin the tenant does not allow.
        OriginNotAllowed => "origin_not_allowed",
        /// Over the token's requests per second.
        RateLimited => "rate_limited",
        /// Over the plan's requests per hour.
        QuotaExceeded => "quota_exceeded",
        /// An admin request without the right admin token.
        AdminDenied => "admin_denied",
    }
}

/// One denied request, as the worker saw it. `tenant_id` and `token_name` are `None` when unknown (no
/// token, or one that did not verify); take them from verified claims only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial<'a> {
    /// When, UTC seconds.
    pub now_secs: i64,
    /// The tenant, when a verified token named one.
    pub tenant_id: Option<&'a str>,
    /// The token's name, when known.
    pub token_name: Option<&'a str>,
    /// The route pattern (e.g. `/v0/events`), not the full URL: no query strings in the log.
    pub route: &'a str,
    /// Why.
    pub reason: Reason,
    /// The HTTP status returned.
    pub status: u16,
}

/// Upsert counting the denial in its minute (`now - now % 60`). Unknown tenant or name are stored as
/// `''`; the token name and route are cut to [`MAX_NAME_CHARS`] characters.
pub fn record(d: &Denial) -> Statement {
    record_count(d, 1)
}

/// Like [`record`] for `count` identical denials (the worker coalesces a burst into one upsert).
pub fn record_count(d: &Denial, count: i64) -> Statement {
    let minute = d.now_secs - d.now_secs.rem_euclid(60);
    Statement::new(
        "INSERT INTO audit_denials (minute, tenant_id, token_name, route, reason, status, count) \
         VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (minute, tenant_id, token_name, route, reason, status) DO UPDATE SET count = count + excluded.count",
        vec![
            minute.into(),
            clip(d.tenant_id.unwrap_or_default()).into(),
            clip(d.token_name.unwrap_or_default()).into(),
            clip(d.route).into(),
            d.reason.as_str().into(),
            i64::from(d.status).into(),
            count.into(),
        ],
    )
}

/// Which denials to list: minutes from `from_secs` to `to_secs` (both inclusive), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this tenant's denials (`None`: all, including those with no known tenant).
    pub tenant_id: Option<String>,
    /// Only this reason.
    pub reason: Option<Reason>,
    /// Earliest minute, UTC seconds (inclusive).
    pub from_secs: i64,
    /// Latest minute, UTC seconds (inclusive).
    pub to_secs: i64,
    /// At most this many rows (1..=1000).
    pub limit: u32,
}

/// Parses the admin query parameters of `GET /v0/admin/audit`: `tenant_id`, `reason` (one of
/// [`Reason::ALL`]), `date_from` and `date_to` (`YYYY-MM-DD`, whole UTC days; by default the last 7 days
/// up to now) and `limit` (1..=1000, default 100). Empty values count as absent; unknown or repeated
/// parameters are rejected. The error names the parameter and says what is allowed.
pub fn parse_filter(params: &[(String, String)], now_secs: i64) -> Result<AuditFilter, String> {
    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in params {
        if !PARAMS.contains(&name.as_str()) {
            return Err(format!(
                "unknown parameter '{}': the allowed parameters are {}",
                name.chars().take(40).collect::<String>(),
                PARAMS.join(", ")
            ));
        }
        if seen.contains(&name.as_str()) {
            return Err(format!("parameter '{name}' is given more than once"));
        }
        seen.push(name);
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let tenant_id = get("tenant_id")
        .map(|t| {
            is_valid_tenant_id(t)
                .then(|| t.to_owned())
                .ok_or_else(|| "invalid 'tenant_id': expected a tenant id".to_owned())
        })
        .transpose()?;
    let reason = get("reason")
        .map(|r| {
            Reason::parse(r).ok_or_else(|| {
                let all: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
                format!("invalid 'reason': expected one of {}", all.join(", "))
            })
        })
        .transpose()?;
    let day = |name: &str| -> Result<Option<i64>, String> {
        get(name)
            .map(|s| {
                parse_day(s)
                    .map(|d| d * DAY_SECS)
                    .ok_or_else(|| format!("invalid '{name}': expected a date as YYYY-MM-DD"))
            })
            .transpose()
    };
    let to_secs = day("date_to")?.map_or(now_secs, |d| d + DAY_SECS - 1);
    let from_secs = day("date_from")?.unwrap_or(to_secs - 7 * DAY_SECS + 1);
    if from_secs > to_secs {
        return Err("'date_from' must not be after 'date_to'".into());
    }
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| format!("invalid 'limit': expected an integer from 1 to {MAX_LIMIT}"))?,
    };
    Ok(AuditFilter {
        tenant_id,
        reason,
        from_secs,
        to_secs,
        limit,
    })
}

/// The denials matching the filter, newest minute first (then the largest counts).
pub fn select(f: &AuditFilter) -> Statement {
    let mut sql = String::from(
        "SELECT minute, tenant_id, token_name, route, reason, status, count FROM audit_denials \
         WHERE minute >= ? AND minute <= ?",
    );
    let mut binds: Vec<SqlValue> = vec![f.from_secs.into(), f.to_secs.into()];
    if let Some(t) = &f.tenant_id {
        sql.push_str(" AND tenant_id = ?");
        binds.push(t.as_str().into());
    }
    if let Some(r) = f.reason {
        sql.push_str(" AND reason = ?");
        binds.push(r.as_str().into());
    }
    sql.push_str(" ORDER BY minute DESC, count DESC, route, reason LIMIT ?");
    binds.push(i64::from(f.limit).into());
    Statement::new(sql, binds)
}

/// The audit response: `{"data": [{"time", "tenant_id", "token_name", "route", "reason", "status",
/// "count"}], "rows": n}`, `time` being the minute in RFC 3339 and unknown tenant or name `null`.
pub fn to_json(rows: &[Map<String, Value>]) -> Value {
    let data: Vec<Value> = rows
        .iter()
        .map(|row| {
            let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or_default();
            let known = |k: &str| Some(text(k)).filter(|s| !s.is_empty());
            json!({
                "time": rfc3339(count(row.get("minute"))),
                "tenant_id": known("tenant_id"),
                "token_name": known("token_name"),
                "route": text("route"),
                "reason": text("reason"),
                "status": count(row.get("status")),
                "count": count(row.get("count")),
            })
        })
        .collect();
    json!({ "rows": data.len(), "data": data })
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const NOW: i64 = 1_755_081_662; // 2025-08-13T10:41:02Z

    #[test]
    fn reasons_round_trip() {
        assert_eq!(Reason::ALL.len(), 14);
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Reason::parse("Expired"), None);
        assert_eq!(Reason::QuotaExceeded.as_str(), "quota_exceeded");
    }

    #[test]
    fn record_counts_per_minute_and_keeps_no_secrets() {
        let long = "n".repeat(150);
        let s = record(&Denial {
            now_secs: NOW,
            tenant_id: None,
            token_name: Some(&long),
            route: "/v0/events",
            reason: Reason::BadToken,
            status: 401,
        });
        assert_eq!(s.sql.matches('?').count(), s.binds.len());
        assert_eq!(s.binds[0], SqlValue::Int(NOW - 2));
        assert_eq!(s.binds[1], SqlValue::Text(String::new()));
        assert_eq!(s.binds[2], SqlValue::Text("n".repeat(100)));
        assert_eq!(s.binds[4], SqlValue::Text("bad_token".into()));
        assert_eq!(s.binds[5], SqlValue::Int(401));
    }

    #[test]
    fn filter_defaults_to_the_last_seven_days() {
        let f = parse_filter(&[], NOW).unwrap();
        assert_eq!(
            f,
            AuditFilter {
                tenant_id: None,
                reason: None,
                from_secs: NOW - 7 * DAY_SECS + 1,
                to_secs: NOW,
                limit: 100,
            }
        );
        let empty = parse_filter(&params(&[("tenant_id", ""), ("limit", "")]), NOW).unwrap();
        assert_eq!(empty, f, "empty values are absent");
    }

    #[test]
    fn filter_reads_every_parameter() {
        let f = parse_filter(
            &params(&[
                ("tenant_id", "acme"),
                ("reason", "rate_limited"),
                ("date_from", "2025-08-01"),
                ("date_to", "2025-08-02"),
                ("limit", "1000"),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(f.tenant_id.as_deref(), Some("acme"));
        assert_eq!(f.reason, Some(Reason::RateLimited));
        assert_eq!(f.from_secs, 1_754_006_400);
        assert_eq!(f.to_secs, 1_754_006_400 + 2 * DAY_SECS - 1);
        assert_eq!(f.limit, 1000);
        let only_to = parse_filter(&params(&[("date_to", "2025-08-02")]), NOW).unwrap();
        assert_eq!(only_to.to_secs - only_to.from_secs, 7 * DAY_SECS - 1);
    }

    #[test]
    fn filter_errors_name_the_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("reason", "nope")], "'reason'"),
            (&[("limit", "0")], "'limit'"),
            (&[("limit", "1001")], "'limit'"),
            (&[("limit", "ten")], "'limit'"),
            (&[("date_from", "2025-8-1")], "'date_from'"),
            (&[("date_to", "2025-02-30")], "'date_to'"),
            (&[("tenant_id", "Not Valid!")], "'tenant_id'"),
            (&[("tenant", "acme")], "unknown parameter 'tenant'"),
            (&[("limit", "1"), ("limit", "2")], "more than once"),
            (
                &[("date_from", "2025-08-03"), ("date_to", "2025-08-02")],
                "after",
            ),
        ];
        for (p, expected) in cases {
            let e = parse_filter(&params(p), NOW).unwrap_err();
            assert!(e.contains(expected), "{p:?}: {e}");
        }
    }

    #[test]
    fn select_binds_only_what_is_filtered() {
        let mut f = parse_filter(&[], NOW).unwrap();
        let s = select(&f);
        assert_eq!(s.binds.len(), 3);
        assert!(!s.sql.contains("tenant_id ="));
        f.tenant_id = Some("acme".into());
        f.reason = Some(Reason::Expired);
        let s = select(&f);
        assert_eq!(s.sql.matches('?').count(), s.binds.len());
        assert_eq!(s.binds[2], SqlValue::Text("acme".into()));
        assert_eq!(s.binds[3], SqlValue::Text("expired".into()));
        assert_eq!(s.binds[4], SqlValue::Int(100));
    }

    #[test]
    fn json_rows_with_unknown_tenant_as_null() {
        let rows: Vec<Map<String, Value>> = [
            json!({"minute": 1_755_081_660.0, "tenant_id": "", "token_name": "", "route": "/v0/events",
                   "reason": "missing_token", "status": 401.0, "count": 3.0}),
            json!({"minute": 1_755_081_600, "tenant_id": "acme", "token_name": "site", "route": "/v0/pipes",
                   "reason": "scope_violation", "status": 403, "count": 1}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let j = to_json(&rows);
        assert_eq!(j["rows"], 2);
        assert_eq!(
            j["data"][0],
            json!({"time": "2025-08-13T10:41:00Z", "tenant_id": null, "token_name": null,
                   "route": "/v0/events", "reason": "missing_token", "status": 401, "count": 3})
        );
        assert_eq!(j["data"][1]["tenant_id"], "acme");
        assert_eq!(j["data"][1]["token_name"], "site");
        assert_eq!(j["data"][1]["time"], "2025-08-13T10:40:00Z");
    }
}
