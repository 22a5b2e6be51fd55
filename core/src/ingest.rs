//! Ingest: an Events API request body in, enriched events and quarantined rows out.
//!
//! The body is NDJSON (one JSON object per line), a single JSON object (even pretty-printed), or a JSON
//! array of objects, whatever the Content-Type. Each row is validated on its own: a bad row goes to
//! quarantine with a reason and never takes the good rows of its request down. Only the body as a whole
//! can fail ([`IngestError`]): too large, too many rows, or empty.
//!
//! The tenant comes from the token's grant, never from the row; the grant's other fixed parameters
//! (`domain`) overwrite the row's too.

use serde_json::{Map, Value};

use crate::claims::AppendGrant;
pub use crate::enrich::Geo;
use crate::enrich::{self, bare_host, parse_url};
use crate::event::{EnrichedEvent, QuarantineReason, Quarantined};
use crate::identity::visitor_id;

/// How far in the future an event may be stamped (client clock skew), in milliseconds.
pub const MAX_FUTURE_MS: i64 = 3600 * 1000;
/// How old an event may be (backfills from Tinybird are welcome), in milliseconds.
pub const MAX_AGE_MS: i64 = 730 * 86_400 * 1000;
/// Longest `action` name, in bytes.
pub const MAX_ACTION_BYTES: usize = 100;
/// How much of a quarantined row is kept, in bytes.
const MAX_QUARANTINED_ROW: usize = 2048;

/// Request limits; each has a clear 4xx error or quarantine reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest body (413 above).
    pub max_body_bytes: usize,
    /// Most rows per request (413 above).
    pub max_rows: usize,
    /// Longest row (quarantined as `too_large` above).
    pub max_line_bytes: usize,
    /// Largest payload once serialised (quarantined as `too_large` above).
    pub max_payload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_rows: 20_000,
            max_line_bytes: 64 * 1024,
            max_payload_bytes: 16 * 1024,
        }
    }
}

/// What the edge knows about the request besides its body.
pub struct IngestContext<'a> {
    /// The verified token's grant: the tenant and fixed fields.
    pub grant: &'a AppendGrant,
    /// Arrival time, UTC milliseconds (the default timestamp, and the reference for range checks).
    pub now_ms: i64,
    /// Client IP (`CF-Connecting-IP`); used for the visitor hash only, never stored.
    pub ip: &'a str,
    /// The request's `User-Agent`, used when the payload carries none; never stored.
    pub header_user_agent: Option<&'a str>,
    /// Geo from `request.cf`.
    pub geo: &'a Geo,
    /// Today's visitor salt.
    pub salt: &'a [u8; 16],
    /// Limits in force.
    pub limits: &'a Limits,
}

/// The result of a request body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Accepted, enriched events (bots included, flagged).
    pub events: Vec<EnrichedEvent>,
    /// Rejected rows with reasons.
    pub quarantined: Vec<Quarantined>,
}

/// Why a whole body was rejected (nothing of it is accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IngestError {
    /// The body is over the byte limit (413).
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body has more rows than allowed (413).
    TooManyRows {
        /// The limit.
        limit: usize,
        /// Rows sent.
        rows: usize,
    },
    /// No rows at all (400).
    EmptyBody,
    /// `Content-Encoding: gzip` but the body is not valid gzip (400).
    BadEncoding(String),
}

impl IngestError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::BodyTooLarge { .. } | Self::TooManyRows { .. } => 413,
            Self::EmptyBody | Self::BadEncoding(_) => 400,
        }
    }

    /// What was wrong and what to do.
    pub fn message(&self) -> String {
        match self {
            Self::BodyTooLarge { limit } => format!(
                "request body too large: at most {limit} bytes per request; split the events into smaller batches"
            ),
            Self::TooManyRows { limit, rows } => format!(
                "too many rows: {rows} sent, at most {limit} per request; split the events into smaller batches"
            ),
            Self::BadEncoding(e) => format!(
                "the body is marked Content-Encoding: gzip but is not valid gzip ({e}); send it gzip-compressed, or drop the header"
            ),
            Self::EmptyBody => {
                "empty body: send one JSON event per line (NDJSON), e.g. {\"timestamp\":\"...\",\"action\":\"page_hit\",\"payload\":{...}}".into()
            }
        }
    }
}

impl std::fmt::Display for IngestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for IngestError {}

/// Validates, enriches and quarantines every row of `body`.
pub fn process(body: &[u8], ctx: &IngestContext) -> Result<Outcome, IngestError> {
    if body.len() > ctx.limits.max_body_bytes {
        return Err(IngestError::BodyTooLarge {
            limit: ctx.limits.max_body_bytes,
        });
    }
    let rows = split_rows(body);
    if rows.is_empty() {
        return Err(IngestError::EmptyBody);
    }
    if rows.len() > ctx.limits.max_rows {
        return Err(IngestError::TooManyRows {
            limit: ctx.limits.max_rows,
            rows: rows.len(),
        });
    }
    let mut out = Outcome::default();
    out.events.reserve(rows.len());
    // One memo per request: user agents, URLs and payload keys repeat across its rows.
    let mut memo = enrich::Memo::keyed(ctx.salt);
    for (line, mut row) in rows {
        match row_event(&mut row, ctx, &mut memo) {
            Ok(e) => out.events.push(e),
            Err(reason) => out.quarantined.push(Quarantined {
                line,
                reason,
                row: redact(&row, ctx),
            }),
        }
    }
    Ok(out)
}

/// A row as found in the body: a line's bytes, or an element of a JSON array / single object (taken
/// out when the row is processed; its text stays for the quarantine).
enum Row<'a> {
    Raw(&'a [u8]),
    Parsed(Option<Value>, String),
}

/// Splits the body into numbered rows (1-based line numbers; array index + 1 for arrays).
fn split_rows(body: &[u8]) -> Vec<(usize, Row<'_>)> {
    let trimmed = body.trim_ascii();
    if matches!(trimmed.first(), Some(b'{') | Some(b'[')) {
        // A single (possibly pretty-printed) object or an array; NDJSON fails here and is split below.
        match serde_json::from_slice::<Value>(trimmed) {
            Ok(Value::Array(items)) => {
                return items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let text = v.to_string();
                        (i + 1, Row::Parsed(Some(v), text))
                    })
                    .collect()
            }
            Ok(v @ Value::Object(_)) => {
                let text = String::from_utf8_lossy(trimmed).into_owned();
                return vec![(1, Row::Parsed(Some(v), text))];
            }
            _ => {}
        }
    }
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_ascii()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| (i, Row::Raw(l)))
        .collect()
}

fn row_event(
    row: &mut Row,
    ctx: &IngestContext,
    memo: &mut enrich::Memo,
) -> Result<EnrichedEvent, QuarantineReason> {
    let value = match row {
        Row::Raw(bytes) => {
            if bytes.len() > ctx.limits.max_line_bytes {
                return Err(QuarantineReason::TooLarge);
            }
            Envelope::parse(bytes).ok_or(QuarantineReason::InvalidJson)?
        }
        Row::Parsed(v, text) => {
            if text.len() > ctx.limits.max_line_bytes {
                return Err(QuarantineReason::TooLarge);
            }
            match v.take() {
                Some(Value::Object(map)) => Envelope::from_map(map),
                _ => return Err(QuarantineReason::InvalidJson),
            }
        }
    };
    let Envelope {
        action,
        timestamp,
        payload,
        domain,
        session_id,
    } = value;
    let action = match &action {
        Some(Value::String(a)) if !a.trim().is_empty() => a.trim(),
        _ => return Err(QuarantineReason::MissingAction),
    };
    if action.len() > MAX_ACTION_BYTES || action.chars().any(char::is_control) {
        return Err(QuarantineReason::InvalidAction);
    }
    let ts = match &timestamp {
        None | Some(Value::Null) => ctx.now_ms,
        Some(v) => crate::time::parse_timestamp(v).ok_or(QuarantineReason::InvalidTimestamp)?,
    };
    if ts > ctx.now_ms + MAX_FUTURE_MS || ts < ctx.now_ms - MAX_AGE_MS {
        return Err(QuarantineReason::TimestampOutOfRange);
    }
    let payload = match payload {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o,
        Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(o)) => o,
            _ => return Err(QuarantineReason::InvalidPayload),
        },
        Some(_) => return Err(QuarantineReason::InvalidPayload),
    };
    let env = (domain, session_id);
    enrich_event(ctx, memo, &env, action, ts, payload)
}

/// serde_json's marker key: an object whose first key it is parses, as a [`Value`], as the JSON text
/// of its string value.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// The envelope fields ingest reads, parsed from a row without building a map of the row: every
/// field is parsed as the [`Value`] it would be in one (a later duplicate key wins, as it does in a
/// map), and every other field is parsed as a [`Value`] and dropped, so a row is valid or invalid
/// JSON exactly as with `serde_json::from_slice::<Value>` (number range, nesting depth, escapes).
#[derive(Debug, Default, PartialEq)]
struct Envelope {
    action: Option<Value>,
    timestamp: Option<Value>,
    payload: Option<Value>,
    domain: Option<Value>,
    session_id: Option<Value>,
}

impl Envelope {
    /// A row's envelope, or `None` when the row is not a JSON object. Parsed once, without a map; a
    /// row this parse refuses is parsed again as a [`Value`] (refused rows are rare), so that the
    /// [`Value`] parser's own rules decide it (its first key `$serde_json::private::RawValue` is
    /// serde_json's raw-value marker, for one).
    fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Envelope>(bytes).ok().or_else(|| {
            match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(map)) => Some(Self::from_map(map)),
                _ => None,
            }
        })
    }

    /// The fields of an already parsed object (an array element or a whole-body object).
    fn from_map(mut map: Map<String, Value>) -> Self {
        Self {
            action: map.remove("action"),
            timestamp: map.remove("timestamp"),
            payload: map.remove("payload"),
            domain: map.remove("domain"),
            session_id: map.remove("session_id"),
        }
    }

    fn slot(&mut self, key: &str) -> Option<&mut Option<Value>> {
        Some(match key {
            "action" => &mut self.action,
            "timestamp" => &mut self.timestamp,
            "payload" => &mut self.payload,
            "domain" => &mut self.domain,
            "session_id" => &mut self.session_id,
            _ => return None,
        })
    }
}

impl<'de> serde::Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A key, borrowed from the row when it has no escapes.
        struct Key<'a>(std::borrow::Cow<'a, str>);
        impl<'de> serde::Deserialize<'de> for Key<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Key<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a string key")
                    }
                    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                        Ok(Key(v.into()))
                    }
                    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                        Ok(Key(v.to_owned().into()))
                    }
                }
                d.deserialize_str(V)
            }
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Envelope;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Envelope, A::Error> {
                let mut env = Envelope::default();
                let mut first = true;
                while let Some(Key(key)) = map.next_key::<Key>()? {
                    if std::mem::take(&mut first) && key == RAW_VALUE_TOKEN {
                        return Err(serde::de::Error::custom("serde_json's raw-value marker"));
                    }
                    let value = map.next_value::<Value>()?;
                    if let Some(slot) = env.slot(&key) {
                        *slot = Some(value);
                    }
                }
                Ok(env)
            }
        }
        d.deserialize_map(V)
    }
}

fn enrich_event(
    ctx: &IngestContext,
    memo: &mut enrich::Memo,
    (env_domain, env_session_id): &(Option<Value>, Option<Value>),
    action: &str,
    ts: i64,
    payload: Map<String, Value>,
) -> Result<EnrichedEvent, QuarantineReason> {
    fn text(v: Option<&Value>) -> &str {
        v.and_then(Value::as_str).unwrap_or_default()
    }
    let href_raw = text(payload.get("href"));
    let href_url = parse_url(href_raw);
    let href_host = href_url
        .as_ref()
        .map(|u| u.host.clone())
        .unwrap_or_default();
    let domain = [
        ctx.grant.fixed.get("domain").map(String::as_str),
        Some(text(env_domain.as_ref())),
        Some(href_host.as_str()),
        Some(text(payload.get("domain"))),
    ]
    .into_iter()
    .flatten()
    .map(domain_name)
    .find(|d| !d.is_empty())
    .unwrap_or_default();
    let pathname = match text(payload.get("pathname")) {
        "" => enrich::normalize_path(href_url.as_ref().map(|u| u.path).unwrap_or("/")),
        // Hash-routed page hits (`data-hash`) keep their fragment; other pathnames lose it.
        p if action == "page_hit" => enrich::hash_routed_path(p),
        p => enrich::normalize_path(p),
    };
    let site = if href_host.is_empty() {
        domain.as_str()
    } else {
        href_host.as_str()
    };
    let source = enrich::source(text(payload.get("referrer")), site);
    let utm = enrich::utm(href_url.as_ref().map(|u| u.query).unwrap_or_default());
    let ua = enrich::payload_user_agent(&payload)
        .or(ctx.header_user_agent)
        .unwrap_or_default();
    let client = memo.client(ua);
    let geo = enrich::geo(ctx.geo, payload.get("location"));
    let tenant = ctx.grant.tenant.as_str();
    let visitor = visitor_id(ctx.salt, tenant, &domain, ctx.ip, ua);
    let session_id = match env_session_id {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 => {
            Some(s.trim().to_owned())
        }
        _ => None,
    };
    let locale: String = text(payload.get("locale")).chars().take(35).collect();
    let href = memo.strip_url(href_raw);
    let payload = serde_json::to_string(&memo.sanitize_payload(payload))
        .map_err(|_| QuarantineReason::InvalidPayload)?;
    if payload.len() > ctx.limits.max_payload_bytes {
        return Err(QuarantineReason::TooLarge);
    }
    Ok(EnrichedEvent {
        ts,
        tenant_id: tenant.to_owned(),
        domain,
        action: action.to_owned(),
        session_id,
        visitor_id: visitor,
        pathname,
        href,
        source,
        utm_source: utm.source,
        utm_medium: utm.medium,
        utm_campaign: utm.campaign,
        utm_term: utm.term,
        utm_content: utm.content,
        browser: client.browser,
        os: client.os,
        device: client.device.to_owned(),
        // Bot rules are for page hits, which a crawler's browser sends. A custom event comes from the
        // site's own code or from its backend with the tenant's token (a payment webhook, a signup
        // handler), often with an HTTP library's user agent: it is counted, never dropped as a bot.
        is_bot: client.is_bot && action == "page_hit",
        country: geo.country,
        region: geo.region,
        city: geo.city,
        locale,
        payload,
    })
}

/// A site domain as stored: lower case, no scheme, port, path or leading `www.`, at most 253 bytes.
fn domain_name(raw: &str) -> String {
    let raw = raw.trim();
    let host = match parse_url(raw) {
        Some(u) => u.host,
        None => raw
            .split(['/', ':', '?', '#'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase(),
    };
    let host = bare_host(&host);
    if host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return String::new();
    }
    host.to_owned()
}

/// A quarantined row as kept: bounded, with the IP, the user agent and any `user-agent` value removed.
fn redact(row: &Row, ctx: &IngestContext) -> String {
    // Stripped and masked like an accepted row (issue #16), then bounded.
    let text = match row {
        Row::Raw(b) => enrich::quarantine_row(&String::from_utf8_lossy(b)),
        Row::Parsed(_, t) => enrich::quarantine_row(t),
    };
    let mut text = redact_user_agent_values(&text);
    for secret in [Some(ctx.ip), ctx.header_user_agent].into_iter().flatten() {
        if secret.len() >= 4 {
            text = text.replace(secret, "[redacted]");
        }
    }
    let mut end = text.len().min(MAX_QUARANTINED_ROW);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// Replaces the string value after any user-agent key (`user-agent`, `userAgent`, `user_agent`, in
/// plain or escaped JSON) with `[redacted]`, without needing the row to parse.
fn redact_user_agent_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = ["user-agent", "useragent", "user_agent"]
        .iter()
        .filter_map(|k| lower[pos..].find(k).map(|i| (pos + i, k.len())))
        .min()
    {
        let (start, len) = found;
        let after_key = start + len;
        // Skip the key's closing quote, the colon and the value's opening quote (maybe escaped).
        let bytes = text.as_bytes();
        let mut i = after_key;
        while i < bytes.len() && b"\\\": ".contains(&bytes[i]) {
            i += 1;
        }
        let value_start = i;
        while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\\' {
            i += 1;
        }
        out.push_str(&text[pos..value_start]);
        if i > value_start {
            out.push_str("[redacted]");
        }
        pos = i;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{authorize_append, Claims, Scope};
    use serde_json::json;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_755_081_662_000;
    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) ProbeAgent/1 Chrome/131.0.0.0 Safari/537.36";

    fn grant(tenant: &str, domain: Option<&str>) -> AppendGrant {
        let mut fixed = BTreeMap::from([("tenant_id".to_owned(), tenant.to_owned())]);
        if let Some(d) = domain {
            fixed.insert("domain".into(), d.into());
        }
        let claims = Claims {
            workspace_id: None,
            name: None,
            token_id: None,
            issued_at: None,
            exp: 0,
            nbf: None,
            scopes: vec![Scope {
                kind: "DATASOURCES:APPEND".into(),
                resource: Some("analytics_events".into()),
                fixed_params: fixed,
            }],
            rps: None,
        };
        authorize_append(&claims, "analytics_events").unwrap()
    }

    fn run(body: &str, g: &AppendGrant) -> Result<Outcome, IngestError> {
        let geo = Geo {
            country: "DE".into(),
            region: "BE".into(),
            city: "Berlin".into(),
        };
        let limits = Limits::default();
        let ctx = IngestContext {
            grant: g,
            now_ms: NOW,
            ip: "203.0.113.9",
            header_user_agent: Some("node"),
            geo: &geo,
            salt: &[1; 16],
            limits: &limits,
        };
        process(body.as_bytes(), &ctx)
    }

    fn flock_hit(tenant: &str, path: &str, stringify: bool) -> String {
        let payload = json!({"user-agent": UA, "locale": "en-US", "location": "US", "referrer": "https://www.google.com/",
            "pathname": path, "href": format!("https://www.acme.example{path}?utm_source=news&email=a@b.c#top"), "plan": "pro"});
        json!({"timestamp": "2025-08-13T10:41:02.123Z", "action": "page_hit", "version": "1", "session_id": "s1",
            "tenant_id": tenant, "domain": "", "payload": if stringify { json!(payload.to_string()) } else { payload }})
        .to_string()
    }

    #[test]
    fn a_flock_page_hit_is_enriched() {
        let out = run(&flock_hit("acme", "/pricing/", true), &grant("acme", None)).unwrap();
        assert!(out.quarantined.is_empty());
        let e = &out.events[0];
        assert_eq!(
            (e.tenant_id.as_str(), e.domain.as_str(), e.pathname.as_str()),
            ("acme", "acme.example", "/pricing")
        );
        assert_eq!(e.ts, 1_755_081_662_123);
        assert_eq!(e.href, "https://www.acme.example/pricing/?utm_source=news");
        assert_eq!(
            (e.source.as_str(), e.utm_source.as_str()),
            ("google.com", "news")
        );
        assert_eq!(
            (
                e.browser.as_str(),
                e.os.as_str(),
                e.device.as_str(),
                e.is_bot
            ),
            ("chrome", "linux", "desktop", false)
        );
        assert_eq!((e.country.as_str(), e.city.as_str()), ("DE", "Berlin"));
        assert_eq!(e.session_id.as_deref(), Some("s1"));
        assert_eq!(e.locale, "en-US");
        assert!(
            !e.payload.contains("ProbeAgent") && !e.payload.contains("email"),
            "{}",
            e.payload
        );
        assert!(e.payload.contains("\"plan\":\"pro\""));
        let object_payload =
            run(&flock_hit("acme", "/pricing/", false), &grant("acme", None)).unwrap();
        assert_eq!(object_payload.events[0], out.events[0]);
    }

    #[test]
    fn a_hash_routed_page_hit_keeps_its_fragment_as_the_page() {
        let g = grant("acme", None);
        let hit = run(&flock_hit("acme", "/app/#/settings?tab=2", true), &g).unwrap();
        assert_eq!(hit.events[0].pathname, "/app#/settings");
        let plain = run(&flock_hit("acme", "/app/", true), &g).unwrap();
        assert_eq!(plain.events[0].pathname, "/app");
        // Only page hits: a custom event's pathname property loses the fragment as before.
        let custom = flock_hit("acme", "/app#/settings", true).replace("page_hit", "signup");
        assert_eq!(run(&custom, &g).unwrap().events[0].pathname, "/app");
    }

    #[test]
    fn the_token_tenant_and_domain_win() {
        let out = run(
            &flock_hit("victim", "/", true),
            &grant("attacker", Some("attacker.example")),
        )
        .unwrap();
        assert_eq!(out.events[0].tenant_id, "attacker");
        assert_eq!(out.events[0].domain, "attacker.example");
    }

    #[test]
    fn bad_rows_are_quarantined_with_reasons_and_good_rows_survive() {
        let good = flock_hit("acme", "/", true);
        let body = [
            good.as_str(),
            "{not json",
            r#"{"timestamp":"yesterday-ish","action":"page_hit"}"#,
            r#"{"payload":"{}"}"#,
            r#"{"action":"x","payload":"[1]"}"#,
            r#"{"action":"x","payload":7}"#,
            r#"{"action":"x","timestamp":"2999-01-01T00:00:00Z"}"#,
            "[1,2]",
            "",
            &good,
        ]
        .join("\n");
        let out = run(&body, &grant("acme", None)).unwrap();
        assert_eq!(out.events.len(), 2);
        let reasons: Vec<(usize, &str)> = out
            .quarantined
            .iter()
            .map(|q| (q.line, q.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (2, "invalid_json"),
                (3, "invalid_timestamp"),
                (4, "missing_action"),
                (5, "invalid_payload"),
                (6, "invalid_payload"),
                (7, "timestamp_out_of_range"),
                (8, "invalid_json")
            ]
        );
    }

    #[test]
    fn single_objects_arrays_and_crlf_are_accepted() {
        let g = grant("acme", None);
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<Value>(&flock_hit("a", "/", true)).unwrap(),
        )
        .unwrap();
        assert_eq!(run(&pretty, &g).unwrap().events.len(), 1);
        let array = format!(
            "[{},{}]",
            flock_hit("a", "/", true),
            flock_hit("a", "/b", true)
        );
        assert_eq!(run(&array, &g).unwrap().events.len(), 2);
        let crlf = format!(
            "{}\r\n{}\r\n",
            flock_hit("a", "/", true),
            flock_hit("a", "/b", true)
        );
        assert_eq!(run(&crlf, &g).unwrap().events.len(), 2);
        let minimal = run(r#"{"action":"signup"}"#, &g).unwrap();
        assert_eq!(
            (minimal.events[0].ts, minimal.events[0].pathname.as_str()),
            (NOW, "/")
        );
    }

    #[test]
    fn body_limits() {
        let g = grant("acme", None);
        assert_eq!(run("  \n \n", &g), Err(IngestError::EmptyBody));
        let many = vec![r#"{"action":"x"}"#; 20_001].join("\n");
        assert_eq!(run(&many, &g).unwrap_err().status(), 413);
        // Tinybird has no row limit: a 1 MiB body is bounded by its bytes, not by 1,000 rows.
        let thousands = vec![r#"{"action":"x"}"#; 1_001].join("\n");
        assert_eq!(run(&thousands, &g).unwrap().events.len(), 1_001);
        let huge = "x".repeat(1024 * 1024 + 1);
        assert_eq!(run(&huge, &g).unwrap_err().status(), 413);
        let long_line = format!(
            r#"{{"action":"x","payload":{{"k":"{}"}}}}"#,
            "y".repeat(70 * 1024)
        );
        assert_eq!(
            run(&long_line, &g).unwrap().quarantined[0].reason,
            QuarantineReason::TooLarge
        );
        let big_payload = format!(
            r#"{{"action":"x","payload":{{"k":"{}"}}}}"#,
            "y".repeat(17 * 1024)
        );
        assert_eq!(
            run(&big_payload, &g).unwrap().quarantined[0].reason,
            QuarantineReason::TooLarge
        );
        let long_action = format!(r#"{{"action":"{}"}}"#, "a".repeat(101));
        assert_eq!(
            run(&long_action, &g).unwrap().quarantined[0].reason,
            QuarantineReason::InvalidAction
        );
    }

    #[test]
    fn quarantined_rows_keep_no_user_agent_or_ip() {
        let row = format!(
            r#"{{"action":"x","timestamp":"bad","payload":"{{\"user-agent\":\"{UA}\",\"ip\":\"203.0.113.9\"}}"}}"#
        );
        let out = run(
            &format!("{row}\n{{broken \"userAgent\": \"{UA}\""),
            &grant("acme", None),
        )
        .unwrap();
        for q in &out.quarantined {
            assert!(
                !q.row.contains("ProbeAgent") && !q.row.contains("203.0.113.9"),
                "{}",
                q.row
            );
        }
    }

    #[test]
    fn quarantined_rows_keep_no_query_string_or_sensitive_property() {
        let future = "2099-01-01T00:00:00Z";
        let row = json!({"action": "signup", "timestamp": future, "payload": json!({
            "href": "https://a.example/p?session=s3cr3t&utm_source=x", "email": "ann@example.com"}).to_string()});
        let out = run(&row.to_string(), &grant("acme", None)).unwrap();
        let q = &out.quarantined[0];
        assert_eq!(q.reason, QuarantineReason::TimestampOutOfRange);
        assert!(
            !q.row.contains("s3cr3t") && !q.row.contains("ann@example.com"),
            "{}",
            q.row
        );
        assert!(
            q.row.contains("utm_source=x") && q.row.contains(future),
            "{}",
            q.row
        );
    }

    #[test]
    fn bots_are_flagged_and_visitors_differ_by_ua() {
        let g = grant("acme", None);
        let bot = json!({"action": "page_hit", "payload": {"user-agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}});
        assert!(run(&bot.to_string(), &g).unwrap().events[0].is_bot);
        // An HTTP library's user agent: page hits from it are bots, custom events (server-side goals,
        // webhooks) are not.
        let hit =
            json!({"action": "page_hit", "payload": {"pathname": "/", "user-agent": "curl/8.4.0"}});
        assert!(run(&hit.to_string(), &g).unwrap().events[0].is_bot);
        let signup =
            json!({"action": "signup", "payload": {"plan": "pro", "user-agent": "curl/8.4.0"}});
        assert!(!run(&signup.to_string(), &g).unwrap().events[0].is_bot);
        let crawler_event = json!({"action": "signup", "payload": {"user-agent": "Googlebot/2.1"}});
        assert!(!run(&crawler_event.to_string(), &g).unwrap().events[0].is_bot);
        let a = run(&flock_hit("a", "/", true), &g).unwrap().events[0]
            .visitor_id
            .clone();
        let other_ua = flock_hit("a", "/", true).replace("ProbeAgent", "OtherAgent");
        assert_ne!(a, run(&other_ua, &g).unwrap().events[0].visitor_id);
    }

    /// A row as `bench/ingest.mjs`'s `line(tenant, i)` writes it (the batched phase's rows), with a
    /// fixed timestamp; `ua` and `referrer` vary for the mixed body.
    fn bench_line(i: usize, ua: &str, referrer: &str) -> String {
        let payload = format!(
            r#"{{"user-agent":{},"locale":"en-US","referrer":{},"pathname":"/p/{}","href":"https://bench.example/p/{}?utm_source=b"}}"#,
            json!(ua),
            json!(referrer),
            i % 50,
            i % 50
        );
        format!(
            r#"{{"timestamp":"2025-08-13T10:41:02.123Z","action":"page_hit","version":"1","session_id":"s-{}","tenant_id":"batch","domain":"bench.example","payload":{}}}"#,
            i % 5000,
            json!(payload)
        )
    }

    /// The bench's 1,000-row body.
    fn bench_body() -> String {
        (0..1000)
            .map(|i| bench_line(i, BENCH_UA, "https://www.google.com/"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    const BENCH_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    /// A 1,000-row body whose rows repeat a few user agents, referrers, keys and URLs in different
    /// combinations (what a per-request memo sees), with custom events, object payloads, sensitive
    /// keys, header-UA rows, edge-less geo and bad rows.
    fn mixed_body() -> String {
        let uas = [
            BENCH_UA,
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "curl/8.5.0",
            "",
        ];
        let refs = [
            "https://www.google.com/",
            "",
            "https://news.example/item?id=1&email=x",
            "https://bench.example/other",
            "not a url",
        ];
        (0..1000)
            .map(|i| {
                let (ua, referrer) = (uas[i % uas.len()], refs[i % refs.len()]);
                match i % 11 {
                    3 => json!({"action": if i % 2 == 0 { "signup" } else { "page_hit" },
                        "domain": if i % 3 == 0 { "WWW.Other.example:8080" } else { "" },
                        "payload": {"plan": "pro", "email": format!("a{i}@b.c"), "userAgent": ua,
                            "Password": "x", "nested": {"card_number": i, "size": "L"},
                            "url": "https://www.bench.example/s?token=t&utm_campaign=c#f",
                            "href": format!("https://www.bench.example/s{}?email=x&utm_medium=m{}#f", i % 3, i % 2)}})
                    .to_string(),
                    5 => json!({"timestamp": NOW - i as i64 * 1000, "action": "page_hit", "session_id": format!("v{}", i % 7),
                        "payload": {"pathname": format!("/app/#/s{}?t=1", i % 4), "referrer": referrer,
                            "location": {"country": "ES", "city": "Madrid"}}})
                    .to_string(),
                    7 if i % 2 == 1 => "{broken".to_owned(),
                    8 => json!({"action": "x", "payload": {"user_agent": ua}, "timestamp": "bad"}).to_string(),
                    9 => json!({"action": "web_vital", "payload": {"name": "LCP", "value": 1.5}}).to_string(),
                    _ => bench_line(i, ua, referrer),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The context of the pinned outputs below (fixed clock, salt, IP, header UA and edge geo).
    fn pinned(body: &str, geo_country: &str) -> Outcome {
        let g = grant("batch", None);
        let geo = Geo {
            country: geo_country.into(),
            region: "BE".into(),
            city: "Berlin".into(),
        };
        let limits = Limits::default();
        let ctx = IngestContext {
            grant: &g,
            now_ms: NOW,
            ip: "203.0.113.9",
            header_user_agent: Some(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) HeaderAgent/1",
            ),
            geo: &geo,
            salt: &[7; 16],
            limits: &limits,
        };
        process(body.as_bytes(), &ctx).unwrap()
    }

    /// The serialised events and quarantined rows (the bytes the spool and the queue carry) and a
    /// stable 128-bit hash of them.
    fn fingerprint(out: &Outcome) -> (Vec<u8>, String) {
        use siphasher::sip128::{Hasher128, SipHasher13};
        use std::hash::Hasher;
        let mut bytes = serde_json::to_vec(&out.events).unwrap();
        bytes.extend(serde_json::to_vec(&out.quarantined).unwrap());
        let mut h = SipHasher13::new_with_keys(1, 2);
        h.write(&bytes);
        (bytes, format!("{:032x}", h.finish128().as_u128()))
    }

    /// The bench's rows and the mixed body give exactly the bytes the code gave before the per-request
    /// memos and single-pass parsing (hashes taken from that code, commit "ingest: pin enriched
    /// output"). A change of enrichment on purpose changes these: check the diff of a few rows, then
    /// update the hashes.
    #[test]
    fn enriched_output_is_pinned_for_the_bench_rows() {
        let bench = pinned(&bench_body(), "DE");
        assert_eq!((bench.events.len(), bench.quarantined.len()), (1000, 0));
        let (bytes, hash) = fingerprint(&bench);
        assert_eq!(
            (bytes.len(), hash.as_str()),
            (608_093, "5076ae2a06f41f1598d2541d41e6009b"),
            "bench rows' output changed; first event: {}",
            serde_json::to_string(&bench.events[0]).unwrap()
        );
        for (country, want_len, want_hash) in [
            ("DE", 513_991, "cec7e8b968a4b53c588d593e45a37bc6"),
            ("", 506_089, "3a67c6987a8455afa6228bcd0168d769"),
        ] {
            let mixed = pinned(&mixed_body(), country);
            assert_eq!((mixed.events.len(), mixed.quarantined.len()), (863, 137));
            let (bytes, hash) = fingerprint(&mixed);
            assert_eq!(
                (bytes.len(), hash.as_str()),
                (want_len, want_hash),
                "mixed rows' output changed (edge country {country:?})"
            );
        }
    }

    /// The single-pass envelope parse reads what a parse into a [`Value`] map reads, and refuses what it
    /// refuses, on rows that tell them apart.
    #[test]
    fn the_envelope_parse_agrees_with_a_value_parse() {
        let deep = format!(
            r#"{{"action":"x","d":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let rows = [
            r#"{"action":"a","action":"b","payload":{"p":1},"payload":"{\"q\":2}"}"#.to_owned(),
            r#"{"act\u0069on":"esc","session_\u0069d":"s","domain":"d.example"}"#.to_owned(),
            r#"{"$serde_json::private::RawValue":"{\"action\":\"raw\"}"}"#.to_owned(),
            r#"{"action":"x","$serde_json::private::RawValue":"{}"}"#.to_owned(),
            r#"{"action":"x","n":1e400}"#.to_owned(),
            r#"{"action":"x","s":"\ud800"}"#.to_owned(),
            r#"{"action":"x","n":-0.0,"big":123456789012345678901234567890}"#.to_owned(),
            deep,
            r#"{"action":"x"} trailing"#.to_owned(),
            r#"{"action":"x",}"#.to_owned(),
            "[1,2]".to_owned(),
            "null".to_owned(),
            r#""{\"action\":\"x\"}""#.to_owned(),
            r#"{"timestamp":null,"payload":null,"domain":7,"session_id":["s"]}"#.to_owned(),
            "{}".to_owned(),
        ];
        for row in rows {
            let by_value = match serde_json::from_slice::<Value>(row.as_bytes()) {
                Ok(Value::Object(map)) => Some(Envelope::from_map(map)),
                _ => None,
            };
            assert_eq!(Envelope::parse(row.as_bytes()), by_value, "{row}");
        }
        // The raw-value marker as the first key is the Value parser's: the row reads as its string.
        let raw = r#"{"$serde_json::private::RawValue":"{\"action\":\"raw\"}"}"#;
        assert_eq!(
            Envelope::parse(raw.as_bytes()).and_then(|e| e.action),
            Some(json!("raw"))
        );
    }

    /// Whatever a request's earlier rows were, a row is enriched exactly as it is on its own: the
    /// batch equals the concatenation of every row processed as a one-row body (line numbers aside).
    #[test]
    fn a_row_in_a_batch_is_enriched_as_it_is_alone() {
        for body in [bench_body(), mixed_body()] {
            let batch = pinned(&body, "DE");
            let mut alone = Outcome::default();
            for (n, line) in body.lines().enumerate() {
                let mut one = pinned(line, "DE");
                one.quarantined.iter_mut().for_each(|q| q.line = n + 1);
                alone.events.append(&mut one.events);
                alone.quarantined.append(&mut one.quarantined);
            }
            assert_eq!(fingerprint(&batch).0, fingerprint(&alone).0);
        }
    }
}
