//! CORS: the ingest and query APIs are called from any origin (trackers on tenant sites, dashboards).
//! Credentials are bearer tokens, never cookies, so `*` is safe.

use worker::{Headers, Response};

/// Adds the CORS headers to a response.
pub fn apply(mut resp: Response) -> Response {
    let h: &mut Headers = resp.headers_mut();
    let _ = h.set("Access-Control-Allow-Origin", "*");
    let _ = h.set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id");
    resp
}

/// The answer to a preflight `OPTIONS` request.
pub fn preflight() -> Response {
    let mut resp = crate::error::empty(crate::error::Success::NoContent);
    let h = resp.headers_mut();
    let _ = h.set("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    let _ = h.set(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type",
    );
    let _ = h.set("Access-Control-Max-Age", "86400");
    apply(resp)
}
