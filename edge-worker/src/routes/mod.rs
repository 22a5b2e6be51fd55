//! HTTP routing, request ids, CORS and the per-request log line. Handlers return `Result<Response, ApiError>`;
//! errors become JSON here and nowhere else.

mod admin;
mod ingest;
mod query;
mod settings;

use worker::{Env, Method, Request, Response};

use crate::error::ApiError;
use crate::{cors, log, random};

/// What a handler tells the router for the log line besides the response.
#[derive(Default)]
pub struct Outcome {
    /// Tenant the request acted for, once known from a verified token.
    pub tenant: Option<String>,
    /// Accepted rows (ingest).
    pub rows: Option<usize>,
    /// Quarantined rows (ingest).
    pub quarantined: Option<usize>,
}

/// Handles one request: route, run, turn errors into JSON, add CORS and the request id, log.
pub async fn handle(req: Request, env: Env) -> Response {
    let started = worker::Date::now().as_millis();
    let request_id = random::id();
    let path = req.path();
    let method = req.method();
    let mut outcome = Outcome::default();
    let (route, result) = dispatch(req, &env, &request_id, &mut outcome).await;
    let error_detail = result.as_ref().err().map(ApiError::log_detail);
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => e.to_response(),
    };
    let mut resp = cors::apply(resp);
    let _ = resp.headers_mut().set("X-Request-Id", &request_id);
    log::request(&log::RequestLog {
        request_id: &request_id,
        route,
        method: method.as_ref(),
        status: resp.status_code(),
        latency_ms: worker::Date::now().as_millis() - started,
        tenant: outcome.tenant.as_deref(),
        error: error_detail.as_deref(),
        rows: outcome.rows,
        quarantined: outcome.quarantined,
    });
    let _ = path;
    resp
}

async fn dispatch(
    req: Request,
    env: &Env,
    request_id: &str,
    outcome: &mut Outcome,
) -> (&'static str, Result<Response, ApiError>) {
    let path = req.path();
    let method = req.method();
    if method == Method::Options {
        return ("preflight", Ok(cors::preflight()));
    }
    match path.as_str() {
        "/v0/events" => (
            "events",
            match method {
                Method::Post => ingest::post_events(req, env, request_id, outcome).await,
                _ => Err(ApiError::MethodNotAllowed("POST")),
            },
        ),
        "/v0/health" => (
            "health",
            Ok(Response::from_json(&serde_json::json!({ "status": "ok" })).expect("json")),
        ),
        p if p.starts_with("/v0/pipes/") => (
            "pipes",
            match (
                method,
                p.strip_prefix("/v0/pipes/")
                    .and_then(|n| n.strip_suffix(".json")),
            ) {
                (Method::Get, Some(name)) if !name.is_empty() && !name.contains('/') => {
                    query::get_pipe(req, env, name, outcome).await
                }
                (Method::Get, _) => Err(ApiError::NotFound),
                _ => Err(ApiError::MethodNotAllowed("GET")),
            },
        ),
        "/v0/tenant.json" => (
            "tenant",
            match method {
                Method::Get => settings::get_tenant(req, env, outcome).await,
                _ => Err(ApiError::MethodNotAllowed("GET")),
            },
        ),
        p if p.starts_with("/v0/admin/tenants/") => {
            ("admin_settings", settings::put(req, env, p, outcome).await)
        }
        p if p.starts_with("/v0/admin/") => ("admin", admin::handle(req, env, outcome).await),
        _ => ("not_found", Err(ApiError::NotFound)),
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

/// Current time in UTC milliseconds from the runtime clock.
pub fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}
