//! Query planning for the Tinybird-compatible analytics endpoints (`/v0/pipes/{name}.json`).
//!
//! [`plan`] turns a pipe name, the request's parameters, the token's fixed parameters, `now` and a
//! time zone into bound SQL [`Statement`]s over the D1 rollups (see `migrations/0001_initial.sql`);
//! the worker runs them and hands the rows to [`assemble`], which gap-fills, computes rates and growth,
//! and returns `meta` and `data` as Tinybird does. No I/O and no clock here.
//!
//! Invariants:
//! - The tenant comes only from the token's `fixed_params.tenant_id`; every statement binds it as its
//!   first filter (and as its first bound value). Fixed parameters win over request parameters.
//! - Every statement is built with [`crate::sql::TenantSql`] from the verified [`TenantId`]: each
//!   tenant table it reads, joins and subqueries included, carries its own `tenant_id = ?` bound to
//!   that tenant (checked over every pipe and a spread of query bodies by `core/tests/tenant_scope.rs`).
//! - Values are always bound (`?`), never interpolated; `skip`/`limit` are bound integers.
//! - Bots are never in the rollup tables (the ingest path counts them in `bot_hits_daily` only), so no
//!   query excludes them.
//! - Sessions are attributed to the bucket (and window) of their first hit; a page visit to the window
//!   of its first hit in that session.
//!
//! Endpoints: `current_visitors`, `trend`, `kpis`, `top_pages`, `top_sources`, `top_browsers`,
//! `top_devices`, `top_locations`, `domains`, `domain`, `actions` (the kit's), plus `top_os`,
//! `top_campaigns`, `entry_pages` and `exit_pages`, the web vitals endpoints (`vitals`) and
//! `top_outbound_links`, `top_file_downloads`, `top_not_found_pages` (`captures`), and the kit's
//! `traffic_by_hour` (`hours`) and `analytics_hits` (`hits`: read from the R2 archive, not D1). Date-ranged endpoints accept the dashboard filters
//! `pathname`, `source` (alias `referrer`), `browser`, `os`, `device`, `country` (alias `location`),
//! `utm_source`, `utm_medium`, `utm_campaign`, and every endpoint accepts `domain`.

mod api;
mod captures;
mod funnel;
mod hits;
mod hours;
mod params;
mod pipes;
mod response;
mod rollups;
mod segment_route;
mod timezone;
mod vitals;

use std::collections::BTreeMap;

use crate::claims::TenantId;
use std::fmt;

use serde::Serialize;

use crate::sql::Statement;

pub use api::{
    assemble_query, plan_query, plan_query_with_segments, segment_ids, timezone_of,
    validate_filters, ApiPlan, ApiRequest, Segments, MAX_SEGMENTS_PER_QUERY,
};
pub use funnel::{assemble_funnel, funnel_id, plan_funnel, plan_funnel_with_segments, FunnelPlan};
pub use hits::{Collector as HitsCollector, HitsScan};
pub use params::{segment_param, timezone_param};
pub use pipes::PIPES;
pub use segment_route::{query_route, scan_route, CellQuestion, ScanRoute};
pub use timezone::{FixedOffset, TimeZone};

/// One analytics request, as the worker sees it after verifying the token.
pub struct Request<'a> {
    /// Pipe name without `.json`, e.g. `top_pages`.
    pub pipe: &'a str,
    /// Every query parameter occurrence, in order.
    pub params: &'a [(String, String)],
    /// The tenant, from the verified token: every statement binds it first.
    pub tenant: &'a TenantId,
    /// The token's other `fixed_params` (they win over request parameters; `tenant_id` is ignored).
    pub fixed: &'a BTreeMap<String, String>,
    /// Current time, UTC seconds.
    pub now_secs: i64,
    /// The zone named by [`timezone_param`] (UTC when none).
    pub tz: &'a dyn TimeZone,
}

/// The statements to run for one request, and what [`assemble`] needs to shape their rows.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Run in order (one D1 batch); pass one row set per statement to [`assemble`].
    pub statements: Vec<Statement>,
    shape: pipes::Shape,
    key: String,
}

impl Plan {
    /// A normalised key for the response cache: tenant, pipe, every parameter in force (defaults
    /// resolved, sorted), and the time zone. Parameters the pipe does not use are left out, so they
    /// cannot fragment the cache; different tenants always get different keys.
    pub fn cache_key(&self) -> String {
        self.key.clone()
    }

    /// Where `traffic_by_hour` and `analytics_hits` read (`rollups`, `visits` or `archive`), for the
    /// worker's `X-Query-Path` header; `None` for the other endpoints.
    pub fn query_path(&self) -> Option<&'static str> {
        match &self.shape {
            pipes::Shape::Hours(h) if h.rollups => Some("rollups"),
            pipes::Shape::Hours(_) => Some("visits"),
            pipes::Shape::Hits(_) => Some("archive"),
            _ => None,
        }
    }

    /// For `analytics_hits`: the archive scan to run instead of statements (the plan has none).
    pub fn archive_scan(&self) -> Option<&HitsScan> {
        match &self.shape {
            pipes::Shape::Hits(scan) => Some(scan),
            _ => None,
        }
    }
}

/// One column of the response's `meta`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// ClickHouse-style type: `String`, `UInt64`, `Float64`, `Date`, `DateTime`.
    #[serde(rename = "type")]
    pub r#type: String,
}

/// An endpoint's response body parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// Column names and types, in output order.
    pub meta: Vec<Column>,
    /// One object per row.
    pub data: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Rows the statements returned (an estimate of work; D1 does not report rows scanned per query).
    pub rows_read: u64,
}

/// Why a request cannot be planned or its result assembled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// No endpoint of that name (404).
    UnknownPipe(String),
    /// The token has no `fixed_params.tenant_id` (403): a token without a tenant reads nothing.
    MissingTenant,
    /// A parameter is malformed or out of range (400); `reason` says what is expected.
    InvalidParam {
        /// Parameter name as the client sent it (canonical spelling).
        name: String,
        /// What was wrong and what is expected.
        reason: String,
    },
    /// The row sets passed to [`assemble`] do not match the plan (500; a bug in the caller).
    ResultMismatch(String),
}

impl QueryError {
    pub(crate) fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Self::InvalidParam {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownPipe(_) => 404,
            Self::MissingTenant => 403,
            Self::InvalidParam { .. } => 400,
            Self::ResultMismatch(_) => 500,
        }
    }

    /// A message for the client that says what to change.
    pub fn message(&self) -> String {
        match self {
            Self::UnknownPipe(name) => format!(
                "unknown pipe '{}': use one of {}",
                name.chars().take(60).collect::<String>(),
                pipes::PIPES.join(", ")
            ),
            Self::MissingTenant => {
                "the token has no fixed tenant_id: create a read token with fixed_params.tenant_id"
                    .into()
            }
            Self::InvalidParam { name, reason } => format!("invalid '{name}': {reason}"),
            Self::ResultMismatch(_) => "internal error while assembling the response".into(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ResultMismatch(detail) => write!(f, "result mismatch: {detail}"),
            other => f.write_str(&other.message()),
        }
    }
}

impl std::error::Error for QueryError {}

/// Plans a request: validates parameters and builds the statements.
pub fn plan(req: &Request) -> Result<Plan, QueryError> {
    pipes::plan(req)
}

/// Plans a request with a saved segment (`segment=<id>`, see [`segment_param`]): `(id, its stored
/// filter list)`, read by the caller for the verified tenant only. The segment's filters are AND-ed
/// with the request's; only the pipes with the dashboard filters take one (else a 400 naming
/// `segment`).
pub fn plan_with_segment(
    req: &Request,
    segment: Option<(i64, &serde_json::Value)>,
) -> Result<Plan, QueryError> {
    pipes::plan_segmented(req, segment)
}

/// Shapes the statements' rows (one row set per statement, in order) into the response.
pub fn assemble(
    plan: &Plan,
    results: Vec<Vec<serde_json::Map<String, serde_json::Value>>>,
) -> Result<Output, QueryError> {
    if results.len() != plan.statements.len() {
        return Err(QueryError::ResultMismatch(format!(
            "{} row sets for {} statements",
            results.len(),
            plan.statements.len()
        )));
    }
    response::assemble(&plan.shape, results)
}
