//! HTTP routing, request ids, CORS, the audit of denied requests and the per-request log line.
//!
//! A request is first resolved to a [`Route`] from its path and method alone (404 for an unknown path,
//! 405 for a method the path does not serve), then handled. Handlers return `Result<Response, ApiError>`;
//! errors become JSON here and nowhere else, and every denial (401, 403, 429) is written to the audit
//! log after the response, off the request's critical path.

mod admin;
mod auth;
mod dashboard;
mod funnels;
mod goals;
mod ingest;
mod keys;
mod owner;
mod query;
mod reports;
mod segments;
mod settings;
mod tenants;
mod tokens;

use starling_core::audit::{self, Reason};
use worker::{Context, Env, Method, Request, Response};

pub use crate::clock::{now_ms, now_secs};
use crate::error::{self, ApiError, Success};
use crate::{cors, log, random};

/// The OpenAPI document of the whole HTTP API, served at `/v0/openapi.json`.
const OPENAPI: &str = include_str!("../../openapi.json");

/// What a handler tells the router for the log line and the audit besides the response.
#[derive(Default)]
pub struct Outcome {
    /// Tenant the request acted for, once known from a verified token (or the admin path).
    pub tenant: Option<String>,
    /// The verified token's `name`, for the audit.
    pub token_name: Option<String>,
    /// Accepted rows (ingest).
    pub rows: Option<usize>,
    /// Quarantined rows (ingest).
    pub quarantined: Option<usize>,
    /// Something to audit although the request was answered (a request parameter naming another tenant).
    pub audit: Option<Reason>,
    /// A query was answered for `tenant`: count it in the usage of this D1 binding (the tenant's database).
    pub query_served: Option<String>,
    /// An answer to store in the Cache API after the response (`waitUntil`), off its critical path.
    pub cache: Option<query::CachePut>,
    /// A read of visit segments: what it did, for the log line.
    pub segments: Option<crate::store::segments::SegmentRead>,
    /// Milliseconds since the handler started at the end of each named step (ingest), for profiling.
    /// Workers' clock advances only across I/O, so these show waits, not CPU time.
    pub steps: Vec<(&'static str, u64)>,
}

/// Handles one request: route, run, turn errors into JSON, add CORS and the request id, audit, log.
pub async fn handle(req: Request, env: Env, ctx: &Context) -> Response {
    if req.path() == "/dashboard/" {
        return dashboard::page(req, &env).await;
    }
    let started = crate::clock::now_ms();
    let request_id = random::id();
    let method = req.method();
    let mut outcome = Outcome::default();
    let (route, result) = match Route::resolve(&req.path()) {
        None => ("not_found", Err(ApiError::NotFound)),
        Some(route) if !route.serves(&method) && method != Method::Options => (
            route.name(),
            Err(ApiError::MethodNotAllowed(route.methods())),
        ),
        Some(route) => {
            let name = route.name();
            (
                name,
                dispatch(route, req, &env, &request_id, &mut outcome).await,
            )
        }
    };
    let error_detail = result.as_ref().err().map(ApiError::log_detail);
    let denial = result
        .as_ref()
        .err()
        .and_then(|e| e.audit_reason().map(|r| (r, e.status())))
        .or(outcome.audit.map(|r| (r, 200)));
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => e.to_response(),
    };
    let mut resp = cors::apply(resp);
    let _ = resp.headers_mut().set("X-Request-Id", &request_id);
    if let Some((reason, status)) = denial {
        record_denial(&env, ctx, &outcome, route, reason, status);
    }
    if resp.status_code() == 200 {
        count_query(&env, ctx, &outcome);
        if let Some(put) = outcome.cache.take() {
            ctx.wait_until(put.store());
        }
    }
    log::request(&log::RequestLog {
        request_id: &request_id,
        route,
        method: method.as_ref(),
        status: resp.status_code(),
        latency_ms: crate::clock::now_ms() - started,
        tenant: outcome.tenant.as_deref(),
        error: error_detail.as_deref(),
        rows: outcome.rows,
        quarantined: outcome.quarantined,
        segments: outcome.segments.as_ref(),
        steps: (!outcome.steps.is_empty()).then(|| {
            outcome
                .steps
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                .collect()
        }),
    });
    resp
}

/// Counts one denial for the audit (written after the response, coalesced per isolate).
fn record_denial(
    env: &Env,
    ctx: &Context,
    outcome: &Outcome,
    route: &'static str,
    reason: Reason,
    status: u16,
) {
    let Ok(db) = crate::store::d1::db(env) else {
        return;
    };
    crate::denials::record(
        db,
        ctx,
        &audit::Denial {
            now_secs: now_ms().div_euclid(1000),
            tenant_id: outcome.tenant.as_deref(),
            token_name: outcome.token_name.as_deref(),
            route,
            reason,
            status,
        },
    );
}

/// Counts one served query in the tenant's usage of the day (coalesced per isolate, written after the
/// response).
fn count_query(env: &Env, ctx: &Context, outcome: &Outcome) {
    let (Some(binding), Some(tenant)) = (&outcome.query_served, &outcome.tenant) else {
        return;
    };
    let now = now_ms().div_euclid(1000);
    crate::query_usage::record(
        env,
        ctx,
        binding,
        tenant,
        starling_core::time::day_string(now),
    );
}

/// Every route of the API, resolved from the path alone.
pub enum Route {
    /// `POST /v0/events`
    Events,
    /// `GET /v0/health`
    Health,
    /// `GET /v0/openapi.json`
    OpenApi,
    /// `GET /v0/pipes/{name}.json`
    Pipe(String),
    /// `POST /v0/query`
    Query,
    /// `GET /v0/tenant.json`
    TenantJson,
    /// `GET /v0/usage.json`
    UsageJson,
    /// `GET, POST /v0/segments` (a tenant's token)
    Segments,
    /// `DELETE /v0/segments/{id}` (a tenant's token)
    Segment(String),
    /// `GET, POST /v0/admin/tenants/{id}/segments`
    AdminSegments(String),
    /// `DELETE /v0/admin/tenants/{id}/segments/{segment_id}`
    AdminSegment(String, String),
    /// `GET, POST /v0/goals`
    Goals,
    /// `DELETE /v0/goals/{id}`
    Goal(String),
    /// `GET, POST /v0/admin/tenants/{id}/goals`
    AdminGoals(String),
    /// `DELETE /v0/admin/tenants/{id}/goals/{goal_id}`
    AdminGoal(String, String),
    /// `POST /v0/funnel`
    FunnelQuery,
    /// `GET, POST /v0/funnels`
    Funnels,
    /// `DELETE /v0/funnels/{id}`
    Funnel(String),
    /// `GET, POST /v0/admin/tenants/{id}/funnels`
    AdminFunnels(String),
    /// `DELETE /v0/admin/tenants/{id}/funnels/{funnel_id}`
    AdminFunnel(String, String),
    /// `GET, POST /v0/admin/tenants`
    Tenants,
    /// `GET, PATCH, DELETE /v0/admin/tenants/{id}`
    Tenant(String),
    /// `PUT /v0/admin/tenants/{id}/settings`
    Settings(String),
    /// `GET, POST /v0/admin/tenants/{id}/tokens`
    Tokens(String),
    /// `DELETE /v0/admin/tenants/{id}/tokens/{token_id}`
    Token(String, String),
    /// `GET, POST /v0/admin/tenants/{id}/keys`
    Keys(String),
    /// `DELETE /v0/admin/tenants/{id}/keys/{key_id}`
    Key(String, String),
    /// `GET /v0/admin/tenants/{id}/usage`
    Usage(String),
    /// `GET /v0/admin/tenants/{id}/export`
    Export(String),
    /// `GET /v0/admin/audit`
    Audit,
    /// `POST /v0/admin/retention/run`
    RetentionRun,
    /// `POST /v0/admin/rebuild/reset`
    RebuildReset,
    /// `POST /v0/admin/rebuild/day`
    RebuildDay,
    /// `GET /v0/admin/export` (with `?tenant_id=`)
    ExportByParam,
    /// `POST /v0/admin/batches`
    Batches,
}

impl Route {
    /// The route named by a path, if any.
    pub fn resolve(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.strip_prefix("/v0/")?.split('/').collect();
        let own = |s: &str| s.to_owned();
        Some(match segments.as_slice() {
            ["events"] => Self::Events,
            ["health"] => Self::Health,
            ["query"] => Self::Query,
            ["openapi.json"] => Self::OpenApi,
            ["tenant.json"] => Self::TenantJson,
            ["usage.json"] => Self::UsageJson,
            ["segments"] => Self::Segments,
            ["segments", sid] if !sid.is_empty() => Self::Segment(own(sid)),
            ["goals"] => Self::Goals,
            ["goals", g] if !g.is_empty() => Self::Goal(own(g)),
            ["admin", "tenants", id, "goals"] => Self::AdminGoals(own(id)),
            ["admin", "tenants", id, "goals", g] if !g.is_empty() => {
                Self::AdminGoal(own(id), own(g))
            }
            ["funnel"] => Self::FunnelQuery,
            ["funnels"] => Self::Funnels,
            ["funnels", f] if !f.is_empty() => Self::Funnel(own(f)),
            ["admin", "tenants", id, "funnels"] => Self::AdminFunnels(own(id)),
            ["admin", "tenants", id, "funnels", f] if !f.is_empty() => {
                Self::AdminFunnel(own(id), own(f))
            }
            ["pipes", file] => {
                let name = file.strip_suffix(".json").filter(|n| !n.is_empty())?;
                Self::Pipe(own(name))
            }
            ["admin", "tenants"] => Self::Tenants,
            ["admin", "tenants", id] if !id.is_empty() => Self::Tenant(own(id)),
            ["admin", "tenants", id, "settings"] => Self::Settings(own(id)),
            ["admin", "tenants", id, "tokens"] => Self::Tokens(own(id)),
            ["admin", "tenants", id, "tokens", t] if !t.is_empty() => Self::Token(own(id), own(t)),
            ["admin", "tenants", id, "keys"] => Self::Keys(own(id)),
            ["admin", "tenants", id, "keys", k] if !k.is_empty() => Self::Key(own(id), own(k)),
            ["admin", "tenants", id, "usage"] => Self::Usage(own(id)),
            ["admin", "tenants", id, "segments"] => Self::AdminSegments(own(id)),
            ["admin", "tenants", id, "segments", sid] if !sid.is_empty() => {
                Self::AdminSegment(own(id), own(sid))
            }
            ["admin", "tenants", id, "export"] => Self::Export(own(id)),
            ["admin", "audit"] => Self::Audit,
            ["admin", "retention", "run"] => Self::RetentionRun,
            ["admin", "rebuild", "reset"] => Self::RebuildReset,
            ["admin", "rebuild", "day"] => Self::RebuildDay,
            ["admin", "export"] => Self::ExportByParam,
            ["admin", "batches"] => Self::Batches,
            _ => return None,
        })
    }

    /// The route's name in logs and the audit.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Health => "health",
            Self::OpenApi => "openapi",
            Self::Pipe(_) => "pipes",
            Self::Query => "query",
            Self::TenantJson => "tenant",
            Self::UsageJson => "usage",
            Self::Segments | Self::Segment(_) => "segments",
            Self::AdminSegments(_) | Self::AdminSegment(..) => "admin_segments",
            Self::Goals | Self::Goal(_) => "goals",
            Self::AdminGoals(_) | Self::AdminGoal(..) => "admin_goals",
            Self::FunnelQuery => "funnel",
            Self::Funnels | Self::Funnel(_) => "funnels",
            Self::AdminFunnels(_) | Self::AdminFunnel(..) => "admin_funnels",
            Self::Tenants | Self::Tenant(_) => "admin_tenants",
            Self::Settings(_) => "admin_settings",
            Self::Tokens(_) | Self::Token(..) => "admin_tokens",
            Self::Keys(_) | Self::Key(..) => "admin_keys",
            Self::Usage(_) => "admin_usage",
            Self::Export(_) | Self::ExportByParam => "admin_export",
            Self::Audit => "admin_audit",
            Self::RetentionRun => "admin_retention",
            Self::RebuildReset | Self::RebuildDay => "admin_rebuild",
            Self::Batches => "admin_batches",
        }
    }

    /// The methods the route serves, as an `Allow` header value.
    pub fn methods(&self) -> &'static str {
        match self {
            Self::Events
            | Self::Query
            | Self::FunnelQuery
            | Self::RetentionRun
            | Self::RebuildReset
            | Self::RebuildDay
            | Self::Batches => "POST",
            Self::Tenants
            | Self::Tokens(_)
            | Self::Keys(_)
            | Self::Segments
            | Self::AdminSegments(_)
            | Self::Goals
            | Self::AdminGoals(_)
            | Self::Funnels
            | Self::AdminFunnels(_) => "GET, POST",
            Self::Tenant(_) => "GET, PATCH, DELETE",
            Self::Settings(_) => "PUT",
            Self::Token(..)
            | Self::Key(..)
            | Self::Segment(_)
            | Self::AdminSegment(..)
            | Self::Goal(_)
            | Self::AdminGoal(..)
            | Self::Funnel(_)
            | Self::AdminFunnel(..) => "DELETE",
            Self::Health
            | Self::OpenApi
            | Self::Pipe(_)
            | Self::TenantJson
            | Self::UsageJson
            | Self::Usage(_)
            | Self::Export(_)
            | Self::Audit
            | Self::ExportByParam => "GET",
        }
    }

    fn serves(&self, method: &Method) -> bool {
        self.methods().split(", ").any(|m| m == method.as_ref())
    }

    /// Routes of the operator's admin API (`ADMIN_TOKEN`), listed one by one: a new route is public
    /// only if it is added to the first arm on purpose.
    fn is_admin(&self) -> bool {
        match self {
            Self::Events
            | Self::Health
            | Self::OpenApi
            | Self::Pipe(_)
            | Self::Query
            | Self::TenantJson
            | Self::UsageJson
            | Self::Segments
            | Self::Segment(_)
            | Self::Goals
            | Self::Goal(_)
            | Self::FunnelQuery
            | Self::Funnels
            | Self::Funnel(_) => false,
            Self::Tenants
            | Self::Tenant(_)
            | Self::Settings(_)
            | Self::Tokens(_)
            | Self::Token(..)
            | Self::Keys(_)
            | Self::Key(..)
            | Self::Usage(_)
            | Self::Export(_)
            | Self::Audit
            | Self::RetentionRun
            | Self::RebuildReset
            | Self::RebuildDay
            | Self::ExportByParam
            | Self::Batches
            | Self::AdminSegments(_)
            | Self::AdminSegment(..)
            | Self::AdminGoals(_)
            | Self::AdminGoal(..)
            | Self::AdminFunnels(_)
            | Self::AdminFunnel(..) => true,
        }
    }
}

async fn dispatch(
    route: Route,
    req: Request,
    env: &Env,
    request_id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    if req.method() == Method::Options {
        return Ok(cors::preflight());
    }
    // A missing or short SIGNING_KEY serves nothing, health included: tracker tokens are public, and a
    // short key could be brute-forced from one of them into read tokens for every tenant.
    auth::signing_secrets(env)?;
    if route.is_admin() {
        admin::authorize(&req, env)?;
    }
    let method = req.method();
    match route {
        Route::Events => ingest::post_events(req, env, request_id, outcome).await,
        Route::Health => error::json(&serde_json::json!({ "status": "ok" }), Success::Ok),
        Route::OpenApi => {
            let mut resp = error::text(OPENAPI, "application/json", Success::Ok);
            let _ = resp
                .headers_mut()
                .set("Cache-Control", "public, max-age=300");
            Ok(resp)
        }
        Route::Pipe(name) => query::get_pipe(req, env, &name, outcome).await,
        Route::Query => query::post_query(req, env, outcome).await,
        Route::TenantJson => settings::get_tenant(req, env, outcome).await,
        Route::UsageJson => reports::get_own(req, env, outcome).await,
        Route::Segments if method == Method::Post => {
            segments::create(req, env, segments::Actor::Tenant, outcome).await
        }
        Route::Segments => segments::list(req, env, segments::Actor::Tenant, outcome).await,
        Route::Segment(sid) => {
            segments::delete(req, env, segments::Actor::Tenant, &sid, outcome).await
        }
        Route::AdminSegments(id) if method == Method::Post => {
            segments::create(req, env, segments::Actor::Admin(id), outcome).await
        }
        Route::AdminSegments(id) => {
            segments::list(req, env, segments::Actor::Admin(id), outcome).await
        }
        Route::AdminSegment(id, sid) => {
            segments::delete(req, env, segments::Actor::Admin(id), &sid, outcome).await
        }
        Route::Goals if method == Method::Post => goals::create_own(req, env, outcome).await,
        Route::Goals => goals::list_own(req, env, outcome).await,
        Route::Goal(id) => goals::delete_own(req, env, &id, outcome).await,
        Route::AdminGoals(id) => goals::admin_goals(req, env, &id, outcome).await,
        Route::AdminGoal(id, goal) => goals::admin_delete(env, &id, &goal, outcome).await,
        Route::FunnelQuery => funnels::post_funnel(req, env, outcome).await,
        Route::Funnels if method == Method::Post => funnels::create_own(req, env, outcome).await,
        Route::Funnels => funnels::list_own(req, env, outcome).await,
        Route::Funnel(id) => funnels::delete_own(req, env, &id, outcome).await,
        Route::AdminFunnels(id) => funnels::admin_funnels(req, env, &id, outcome).await,
        Route::AdminFunnel(id, f) => funnels::admin_delete(env, &id, &f, outcome).await,
        Route::Tenants if method == Method::Post => tenants::create(req, env, outcome).await,
        Route::Tenants => tenants::list(req, env).await,
        Route::Tenant(id) => match method {
            Method::Get => tenants::read(env, &id, outcome).await,
            Method::Patch => tenants::update(req, env, &id, outcome).await,
            Method::Delete => tenants::erase(env, &id, outcome).await,
            _ => Err(ApiError::MethodNotAllowed(Route::Tenant(id).methods())),
        },
        Route::Settings(id) => settings::put(req, env, &id, outcome).await,
        Route::Tokens(id) if method == Method::Post => tokens::mint(req, env, &id, outcome).await,
        Route::Tokens(id) => tokens::list(env, &id, outcome).await,
        Route::Token(id, token_id) => tokens::revoke(env, &id, &token_id, outcome).await,
        Route::Keys(id) if method == Method::Post => keys::add(req, env, &id, outcome).await,
        Route::Keys(id) => keys::list(env, &id, outcome).await,
        Route::Key(id, key_id) => keys::revoke(env, &id, &key_id, outcome).await,
        Route::Usage(id) => reports::get_admin(req, env, &id, outcome).await,
        Route::Export(id) => admin::export(req, env, &id, outcome).await,
        Route::Audit => reports::get_audit(req, env).await,
        Route::RetentionRun => {
            let report = crate::store::retention::run(env).await;
            error::json(&report, Success::Ok)
        }
        Route::RebuildReset | Route::RebuildDay | Route::ExportByParam | Route::Batches => {
            admin::handle(req, env, route, outcome).await
        }
    }
}

/// Every query parameter occurrence, in order.
pub fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.url()
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The bearer token from `?token=` or `Authorization: Bearer`.
pub fn bearer_token(req: &Request, params: &[(String, String)]) -> Option<String> {
    if let Ok(Some(h)) = req.headers().get("Authorization") {
        let h = h.trim();
        if let Some(t) = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
        {
            if !t.trim().is_empty() {
                return Some(t.trim().to_owned());
            }
        }
    }
    params
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The first value of a query parameter.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads a JSON request body of at most `max` bytes.
pub async fn json_body(req: &mut Request, max: usize) -> Result<serde_json::Value, ApiError> {
    let text = req
        .text()
        .await
        .map_err(|_| ApiError::BadRequest("could not read the request body".into()))?;
    if text.len() > max {
        return Err(ApiError::BadRequest(format!(
            "the body is too large: at most {max} bytes"
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| ApiError::BadRequest(format!("the body must be a JSON object: {e}")))
}

/// Checks a tenant id taken from an admin path.
pub fn path_tenant(id: &str) -> Result<(), ApiError> {
    if starling_core::claims::is_valid_tenant_id(id) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "invalid tenant id in the path (1-64 of A-Z a-z 0-9 _ - ., not starting with .)".into(),
        ))
    }
}
