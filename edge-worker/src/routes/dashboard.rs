//! `GET /dashboard/`: the dashboard's page, from the static assets, with the origins that may frame it.
//!
//! The page's CSP (`www/dist/_headers`) allows framing by its own origin only. Here its
//! `frame-ancestors` becomes `'self'` plus the operator's `FRAME_ANCESTORS` and, when the URL names a
//! tenant (`/dashboard/?tenant=acme`, as the embed element's `src` does), that tenant's
//! `allowed_origins` (`tenant::frame_ancestors`). The same list is written into the page's
//! `starling-frame-ancestors` meta tag: the dashboard accepts a token or theme by `postMessage` only
//! from those origins. Nothing here depends on a token, so the page is the same for everyone who asks
//! for the same tenant.

use starling_core::claims::is_valid_tenant_id;
use starling_core::tenant;
use worker::{Env, Request, Response};

use super::{param, query_pairs};
use crate::error::ApiError;
use crate::{env, tenant_state};

/// The placeholder in `www/src/index.html` that receives the list of allowed parent origins.
const META: &str = r#"<meta name="starling-frame-ancestors" content="">"#;
/// The page's CSP when the asset carries none (the same policy as `scripts/build-www.sh` writes).
const FALLBACK_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'";

/// Serves the dashboard's page; errors become the usual JSON.
pub async fn page(req: Request, env: &Env) -> Response {
    match serve(req, env).await {
        Ok(resp) => resp,
        Err(e) => e.to_response(),
    }
}

async fn serve(req: Request, env: &Env) -> Result<Response, ApiError> {
    let params = query_pairs(&req);
    let state = match param(&params, "tenant").filter(|t| is_valid_tenant_id(t)) {
        Some(t) => Some(tenant_state::state(env, t).await?),
        None => None,
    };
    let operator = env::var(env, env::FRAME_ANCESTORS).unwrap_or_default();
    let ancestors =
        tenant::frame_ancestors(&operator, state.as_ref().and_then(|s| s.tenant.as_ref()));
    let mut asset = env
        .assets(env::ASSETS)?
        .fetch(req.url()?.to_string(), None)
        .await?;
    if asset.status_code() != 200 {
        return Ok(asset);
    }
    let csp = asset
        .headers()
        .get("Content-Security-Policy")?
        .unwrap_or_else(|| FALLBACK_CSP.to_owned());
    let html = asset.text().await?;
    // Origins are validated (`scheme://host[:port]`), so they need no HTML escaping.
    let html = html.replacen(
        META,
        &format!(
            r#"<meta name="starling-frame-ancestors" content="{}">"#,
            ancestors.join(" ")
        ),
        1,
    );
    let mut resp = Response::from_html(html)?;
    let h = resp.headers_mut();
    h.set(
        "Content-Security-Policy",
        &tenant::with_frame_ancestors(&csp, &ancestors),
    )?;
    h.set("X-Content-Type-Options", "nosniff")?;
    h.set("Referrer-Policy", "no-referrer")?;
    h.set(
        "Permissions-Policy",
        "camera=(), microphone=(), geolocation=()",
    )?;
    // Depends on the tenant's origins, which change: revalidate every time.
    h.set("Cache-Control", "no-cache")?;
    Ok(resp)
}
