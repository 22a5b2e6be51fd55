//! The one place where HTTP statuses are chosen: errors become `{"error": "..."}` with the right status,
//! and successful answers are built by [`json`], [`text`] and [`empty`] with a [`Success`].
//!
//! Messages say what was wrong and what to do. Internal error text (D1, R2, queue) is logged, never
//! returned to the client.

use starling_core::audit::Reason;
use starling_core::ratelimit::Decision;
use starling_core::token::SigningKeyError;
use starling_core::{claims::AuthError, ingest::IngestError, query::QueryError, token::TokenError};
use worker::Response;

/// Everything a request can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// No token in `?token=` or `Authorization: Bearer`.
    MissingToken,
    /// The token did not verify (signature, format, algorithm, time).
    Token(TokenError),
    /// The token verified but does not allow this request.
    Auth(AuthError),
    /// The request body as a whole was rejected.
    Ingest(IngestError),
    /// The analytics query was rejected (unknown pipe, bad parameter).
    Query(QueryError),
    /// A request parameter is missing or wrong; the message says which and how to fix it.
    BadRequest(String),
    /// No such route.
    NotFound,
    /// The route exists but not for this method; the methods it serves.
    MethodNotAllowed(&'static str),
    /// The admin API names something that does not exist (a tenant, token or key).
    NoSuch(String),
    /// The admin API would create something that already exists.
    Conflict(String),
    /// The request's `Origin` is not in the tenant's allowed origins (ingest).
    OriginNotAllowed,
    /// The token's tenant was erased: every token of it is revoked.
    TenantErased,
    /// The token's tenant was never created and `DEFAULT_PLAN` is `none`.
    TenantNotProvisioned,
    /// The admin token is wrong.
    AdminDenied,
    /// The token's `limits.rps` is used up (429).
    RateLimited(Decision),
    /// The plan's events per hour would be exceeded by this request's events (none were accepted).
    EventsQuota(Decision),
    /// A dependency (queue, D1, R2) failed; the client should retry. The detail is logged only.
    Unavailable(String),
    /// The deployment's `SIGNING_KEY` (or `SIGNING_KEY_PREVIOUS`) is missing or too short to be safe:
    /// nothing is served until the operator sets a proper key (503).
    Misconfigured(SigningKeyError),
    /// A response could not be built (serialisation failed): a defect, logged; the client may retry.
    Internal(String),
}

/// The statuses of a successful answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Success {
    /// 200
    Ok,
    /// 201: something was created (a tenant, a token, a key).
    Created,
    /// 202: accepted for processing (ingest).
    Accepted,
    /// 204: nothing to say (a CORS preflight).
    NoContent,
}

impl Success {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::Created => 201,
            Self::Accepted => 202,
            Self::NoContent => 204,
        }
    }
}

/// A response with a fixed body (cannot fail).
fn fixed(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    let mut resp = Response::builder().with_status(status).fixed(body);
    let _ = resp.headers_mut().set("Content-Type", content_type);
    resp
}

/// A JSON answer.
pub fn json<T: serde::Serialize + ?Sized>(
    value: &T,
    success: Success,
) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(fixed(success.status(), "application/json", body))
}

/// A JSON answer already serialized.
pub fn json_bytes(body: Vec<u8>, success: Success) -> Response {
    fixed(success.status(), "application/json", body)
}

/// A text answer of the given content type.
pub fn text(body: impl Into<String>, content_type: &str, success: Success) -> Response {
    fixed(success.status(), content_type, body.into().into_bytes())
}

/// An answer without a body.
pub fn empty(success: Success) -> Response {
    Response::builder().with_status(success.status()).empty()
}

impl ApiError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingToken => 401,
            Self::Token(e) => e.status(),
            Self::Auth(e) => e.status(),
            Self::Ingest(e) => e.status(),
            Self::Query(e) => e.status(),
            Self::BadRequest(_) => 400,
            Self::NotFound | Self::NoSuch(_) => 404,
            Self::Conflict(_) => 409,
            Self::OriginNotAllowed | Self::TenantErased | Self::TenantNotProvisioned => 403,
            Self::AdminDenied => 403,
            Self::MethodNotAllowed(_) => 405,
            Self::RateLimited(_) | Self::EventsQuota(_) => 429,
            Self::Unavailable(_) | Self::Misconfigured(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// The message returned to the client.
    pub fn message(&self) -> String {
        match self {
            Self::MissingToken => {
                "missing token: pass it as ?token=<jwt> or in an 'Authorization: Bearer <jwt>' header".into()
            }
            Self::Token(e) => e.message().into(),
            Self::Auth(e) => e.message(),
            Self::Ingest(e) => e.message(),
            Self::Query(e) => e.message(),
            Self::BadRequest(m) => m.clone(),
            Self::AdminDenied => "invalid admin token: use the ADMIN_TOKEN secret as 'Authorization: Bearer <token>'".into(),
            Self::NotFound => "not found: the API is described at GET /v0/openapi.json".into(),
            Self::MethodNotAllowed(allowed) => format!("method not allowed: use {allowed}"),
            Self::NoSuch(what) => format!("not found: {what}"),
            Self::Conflict(what) => what.clone(),
            Self::OriginNotAllowed => "origin not allowed: this tenant accepts events only from its allowed_origins (PATCH /v0/admin/tenants/{id} to add the site)".into(),
            Self::TenantErased => "this tenant was erased and all its tokens are revoked".into(),
            Self::TenantNotProvisioned => "unknown tenant: create it first with POST /v0/admin/tenants".into(),
            Self::EventsQuota(d) => format!(
                "quota exceeded: this tenant's plan allows {} events per hour and {} are left; nothing of this request was accepted: retry after {} s, send fewer events, or move to a larger plan",
                d.limit, d.remaining, d.retry_after_secs
            ),
            Self::RateLimited(d) if d.window_secs > 1 => format!(
                "quota exceeded: this tenant's plan allows {} requests per hour here; retry after {} s or move to a larger plan",
                d.limit, d.retry_after_secs
            ),
            Self::RateLimited(d) => format!(
                "rate limit exceeded: this token allows {} requests per second; retry after {} s",
                d.limit, d.retry_after_secs
            ),
            Self::Unavailable(_) => "temporarily unavailable: nothing was accepted, retry the request".into(),
            Self::Misconfigured(e) => format!("this deployment is misconfigured and serves nothing: {e}"),
            Self::Internal(_) => "internal error: retry; if it persists, report the X-Request-Id header of this response".into(),
        }
    }

    /// Detail for the log line (may include internal error text; never sent to the client).
    pub fn log_detail(&self) -> String {
        match self {
            Self::Unavailable(detail) | Self::Internal(detail) => detail.clone(),
            other => other.message(),
        }
    }

    /// Why this error is a denied request for the audit log (`None`: not a denial, e.g. a bad body).
    pub fn audit_reason(&self) -> Option<Reason> {
        Some(match self {
            Self::MissingToken => Reason::MissingToken,
            Self::Token(TokenError::Expired) => Reason::Expired,
            Self::Token(TokenError::NotYetValid) => Reason::NotYetValid,
            Self::Token(TokenError::UnknownKey) => Reason::UnknownKey,
            Self::Token(TokenError::Revoked) => Reason::Revoked,
            Self::Token(_) => Reason::BadToken,
            Self::Auth(AuthError::CrossTenant) => Reason::CrossTenant,
            Self::Auth(_) => Reason::ScopeViolation,
            Self::AdminDenied => Reason::AdminDenied,
            Self::OriginNotAllowed => Reason::OriginNotAllowed,
            Self::TenantErased => Reason::TenantErased,
            Self::TenantNotProvisioned => Reason::TenantNotProvisioned,
            Self::RateLimited(d) if d.window_secs > 1 => Reason::QuotaExceeded,
            Self::EventsQuota(_) => Reason::QuotaExceeded,
            Self::RateLimited(_) => Reason::RateLimited,
            _ => return None,
        })
    }

    /// The JSON response.
    pub fn to_response(&self) -> Response {
        let body = serde_json::json!({ "error": self.message() }).to_string();
        let mut resp = fixed(self.status(), "application/json", body.into_bytes());
        match self {
            Self::Unavailable(_) => {
                let _ = resp.headers_mut().set("Retry-After", "1");
            }
            Self::RateLimited(d) | Self::EventsQuota(d) => {
                let _ = resp
                    .headers_mut()
                    .set("Retry-After", &d.retry_after_secs.to_string());
                crate::limiter::headers(&mut resp, d);
            }
            Self::MethodNotAllowed(allowed) => {
                let _ = resp.headers_mut().set("Allow", allowed);
            }
            _ => {}
        }
        resp
    }
}

/// A failed runtime call (D1, R2, a binding) is a dependency failure: 503, retry. Its text is logged only.
impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        Self::Token(e)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        Self::Ingest(e)
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        Self::Query(e)
    }
}
