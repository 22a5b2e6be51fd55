//! Event types: the wire envelope (Tinybird/flock.js field names) and the enriched event we store.
//!
//! The wire type accepts whatever flock.js and Tinybird's clients send; the enriched type is what lands
//! on the queue, in R2 and (aggregated) in D1. The enriched type holds no IP and no raw user agent.

use serde::{Deserialize, Serialize};

/// One NDJSON row as flock.js sends it: `{timestamp, action, version, session_id, tenant_id, domain, payload}`.
/// `payload` is a JSON string (flock.js's default, double-encoded) or an object (`data-stringify-payload="false"`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WireEvent {
    /// ISO 8601 (`2025-08-13T10:41:02.123Z`) or `YYYY-MM-DD hh:mm:ss` (UTC); missing means "now".
    #[serde(default)]
    pub timestamp: Option<serde_json::Value>,
    /// `page_hit`, `web_vital` or a custom event name.
    #[serde(default)]
    pub action: Option<String>,
    /// Envelope version, `"1"` for flock.js.
    #[serde(default)]
    pub version: Option<serde_json::Value>,
    /// Client session id (flock.js: a random UUID with a 30-minute sliding expiry). Optional.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Ignored in favour of the token's `fixed_params.tenant_id`; kept so it can be compared.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Site domain; overwritten by the token's `fixed_params.domain` when the token fixes one.
    #[serde(default)]
    pub domain: Option<String>,
    /// Event properties: a JSON string or object.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
}

/// An event after validation and enrichment: the unit stored in R2 and rolled up into D1.
///
/// Field names are stable: they are the NDJSON columns of the R2 archive. `Default` is all empty (for
/// fixtures that set only what they test).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnrichedEvent {
    /// Event time, UTC milliseconds since the epoch.
    pub ts: i64,
    /// Tenant from the verified token, never from the body.
    pub tenant_id: String,
    /// Site domain (lower case, without `www.`).
    pub domain: String,
    /// `page_hit`, `web_vital` or a custom event name.
    pub action: String,
    /// Session key: the client's `session_id` or one derived at the edge. `None` until the queue consumer
    /// assigns one for events that arrived without it.
    pub session_id: Option<String>,
    /// Cookieless visitor id: keyed hash of (daily salt, tenant, domain, IP, user agent), hex.
    pub visitor_id: String,
    /// Normalised path (leading `/`, no trailing `/`, no query or fragment).
    pub pathname: String,
    /// Page URL without its query string except `utm_*` parameters, and without fragment.
    pub href: String,
    /// Referrer host without `www.`; empty for direct traffic or a referrer on the same site.
    pub source: String,
    /// `utm_source`.
    pub utm_source: String,
    /// `utm_medium`.
    pub utm_medium: String,
    /// `utm_campaign`.
    pub utm_campaign: String,
    /// `utm_term`.
    pub utm_term: String,
    /// `utm_content`.
    pub utm_content: String,
    /// Browser family, e.g. `chrome`, `firefox`, `safari`, `edge`; `unknown` when not recognised.
    pub browser: String,
    /// OS family, e.g. `windows`, `macos`, `ios`, `android`, `linux`; `unknown` when not recognised.
    pub os: String,
    /// `desktop`, `mobile`, `tablet` or `bot`.
    pub device: String,
    /// True for crawlers, headless browsers and HTTP libraries: counted, kept out of metrics.
    pub is_bot: bool,
    /// ISO 3166-1 alpha-2 country, or empty.
    pub country: String,
    /// Region (subdivision) name or code, or empty.
    pub region: String,
    /// City, or empty.
    pub city: String,
    /// First browser language, e.g. `en-US`.
    pub locale: String,
    /// The event's properties as a JSON object string, with `user-agent` and other identifying keys removed.
    pub payload: String,
}

impl EnrichedEvent {
    /// Event time in UTC seconds.
    pub fn ts_secs(&self) -> i64 {
        self.ts.div_euclid(1000)
    }

    /// True for the page views that feed the page/session rollups.
    pub fn is_page_hit(&self) -> bool {
        self.action == "page_hit"
    }
}

/// A row that could not be accepted, kept with its reason (Tinybird's quarantine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quarantined {
    /// 1-based line number in the request body.
    pub line: usize,
    /// Why the row was rejected (stable snake_case code).
    pub reason: QuarantineReason,
    /// The row as received, truncated to a bounded length; `user-agent` values are not kept verbatim.
    pub row: String,
}

crate::named_enum! {
    /// Why a row went to quarantine. Stable snake_case names appear in the archive and in counts.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[non_exhaustive]
    pub enum QuarantineReason {
        /// The line is not valid JSON, or not a JSON object.
        InvalidJson => "invalid_json",
        /// `action` is missing or empty.
        MissingAction => "missing_action",
        /// `action` is longer than allowed or has control characters.
        InvalidAction => "invalid_action",
        /// `timestamp` is not a recognised date-time.
        InvalidTimestamp => "invalid_timestamp",
        /// `timestamp` is more than the allowed skew in the future, or older than the accepted window.
        TimestampOutOfRange => "timestamp_out_of_range",
        /// `payload` is neither a JSON object nor a string holding one.
        InvalidPayload => "invalid_payload",
        /// The line or its payload is over the size limit.
        TooLarge => "too_large",
        /// The event would add a domain beyond the plan's cap on distinct domains.
        DomainLimit => "domain_limit",
        /// The event would add an action name beyond the plan's cap on distinct actions.
        ActionLimit => "action_limit",
    }
}

/// What a producer puts on the queue for one ingest request (or one chunk of a large request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueBatch {
    /// Unique id of this batch; the consumer applies a batch to D1 at most once.
    pub batch_id: String,
    /// The tenant every event in this batch belongs to (from the token).
    pub tenant_id: String,
    /// When the edge accepted it, UTC milliseconds.
    pub received_at: i64,
    /// Accepted events.
    pub events: Vec<EnrichedEvent>,
    /// Rejected rows with their reasons.
    pub quarantined: Vec<Quarantined>,
    /// The tenant's generation when the edge accepted the batch; the consumer drops batches of an older
    /// generation (`lifecycle::batch_is_stale`). `None` in batches queued before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Set on a pointer message (claim check): the batch itself is the R2 object this names, written
    /// before the request was answered, and `events`/`quarantined` are empty here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolRef>,
}

/// Where a spooled batch is, and how many rows it holds (so the consumer can group deliveries by
/// rows without reading the objects first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolRef {
    /// The R2 key of the batch (`spool/...`).
    pub key: String,
    /// Accepted plus quarantined rows in it.
    pub rows: usize,
}

impl QueueBatch {
    /// Rows this message stands for: its own, or those of the spooled batch it points to.
    pub fn rows(&self) -> usize {
        match &self.spool {
            Some(s) => s.rows,
            None => self.events.len() + self.quarantined.len(),
        }
    }
}
