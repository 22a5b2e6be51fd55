//! Authentication for tenant routes, in one place: token → claims → grant → tenant state → limits.
//!
//! 1. The token comes from `Authorization: Bearer` or `?token=`.
//! 2. HS256 tokens verify against `SIGNING_KEY` (Tinybird's format), or `SIGNING_KEY_PREVIOUS` during a
//!    key rotation; the router refuses to serve at all while either is shorter than 32 bytes
//!    ([`signing_secrets`]). EdDSA tokens name a tenant-held key in `kid`: a `kid` that is not shaped
//!    like an issued key id is refused unlooked-up, the others are found in the isolate's copy of all
//!    active keys (one query per 5 s, however many distinct `kid`s arrive); they verify against that
//!    key and are confined to its tenant, read only.
//! 3. The grant (`authorize_append` / `authorize_read` / `authorize_tenant_doc`) binds the tenant; a
//!    token that fixes `date_from`/`date_to` reads only dated pipes, without the previous period.
//! 4. The tenant's state refuses erased tenants, unprovisioned ones (`DEFAULT_PLAN = "none"`), revoked
//!    token ids and tokens that cannot show they were issued after the tenant was re-created after an
//!    erasure (an `iat` before the re-creation, or none).
//! 5. The tenant's Durable Object counts the request against the plan's hourly quota and the token's
//!    `limits.rps`.

use std::rc::Rc;

use starling_core::audit::Reason;
use starling_core::claims::{self, Claims, TenantDoc, TenantId};
use starling_core::plan::{PlanLimits, Quota};
use starling_core::ratelimit::Decision;
use starling_core::tenant;
use starling_core::token::{self, Alg, TokenError};
use worker::{Env, Request};

use super::{bearer_token, now_ms, Outcome};
use crate::env;
use crate::error::ApiError;
use crate::limiter;
use crate::tenant_state::{self, TenantState};

/// What an authenticated tenant request carries on.
pub struct Caller {
    /// The tenant, from the verified token only.
    pub tenant: TenantId,
    /// The scope's fixed parameters (they win over request parameters).
    pub fixed: std::collections::BTreeMap<String, String>,
    /// The tenant's registry state (database, generation, origins).
    pub state: Rc<TenantState>,
    /// The quota decision, for the `RateLimit-*` headers.
    pub limit: Decision,
    /// The tenant's plan (its own, or `DEFAULT_PLAN`) and the limits in force.
    pub plan: String,
    /// `PLAN_LIMITS`, parsed.
    pub limits: PlanLimits,
}

/// Which grant a route needs.
pub enum Need<'a> {
    /// `DATASOURCES:APPEND` on this data source, counted against the ingest quota.
    Append(&'a str),
    /// `PIPES:READ` on this pipe, counted against the query quota.
    Read(&'a str),
    /// A tenant-level document (usage.json, tenant.json): its own scope or a whole-tenant `PIPES:READ`
    /// scope (`claims::authorize_tenant_doc`), counted against the query quota.
    Doc(TenantDoc),
}

/// Authenticates a tenant request; fills `outcome` with the tenant and token name as they are learnt,
/// so a denial is audited with what was known.
pub async fn authenticate(
    req: &Request,
    env: &Env,
    params: &[(String, String)],
    need: Need<'_>,
    outcome: &mut Outcome,
) -> Result<Caller, ApiError> {
    let token = bearer_token(req, params).ok_or(ApiError::MissingToken)?;
    let now_secs = now_ms().div_euclid(1000);
    let claims = verify(env, &token, now_secs).await?;
    outcome.token_name = claims.name.clone();
    // For the audit of a scope violation: the tenant the (verified) token names, if any.
    outcome.tenant = claims
        .scopes
        .iter()
        .find_map(|s| s.fixed_params.get("tenant_id"))
        .filter(|t| claims::is_valid_tenant_id(t))
        .cloned();
    let reads = !matches!(need, Need::Append(_));
    let (tenant, fixed, quota) = match need {
        Need::Append(datasource) => {
            let g = claims::authorize_append(&claims, datasource)?;
            (g.tenant, g.fixed, Quota::Ingest)
        }
        Need::Read(pipe) => {
            let g = claims::authorize_read(&claims, pipe)?;
            claims::check_fixed_dates(pipe, &g.fixed, params)?;
            (g.tenant, g.fixed, Quota::Query)
        }
        Need::Doc(doc) => {
            let g = claims::authorize_tenant_doc(&claims, doc)?;
            (g.tenant, g.fixed, Quota::Query)
        }
    };
    outcome.tenant = Some(tenant.as_str().to_owned());
    if reads
        && params
            .iter()
            .any(|(k, v)| k == "tenant_id" && v != tenant.as_str())
    {
        // Answered for the token's own tenant (fixed params win), and audited.
        outcome.audit = Some(Reason::CrossTenant);
    }
    let state = tenant_state::state(env, tenant.as_str()).await?;
    if state.erased() {
        return Err(ApiError::TenantErased);
    }
    let revoked = claims
        .token_id
        .as_ref()
        .is_some_and(|id| state.revoked.contains(id));
    let predates = state
        .tenant
        .as_ref()
        .is_some_and(|t| tenant::token_predates_recreation(t, claims.issued_at));
    if revoked || predates {
        return Err(TokenError::Revoked.into());
    }
    let plan = match &state.tenant {
        Some(t) => t.plan.as_str().to_owned(),
        None => env::default_plan(env),
    };
    if plan == "none" {
        return Err(ApiError::TenantNotProvisioned);
    }
    let limits = env::plan_limits(env).map_err(ApiError::Unavailable)?;
    let limit = limiter::take(
        env,
        tenant.as_str(),
        quota,
        limits.per_hour(&plan, quota),
        &token,
        claims.rps,
        1,
    )
    .await?;
    if !limit.allowed {
        return Err(ApiError::RateLimited(limit));
    }
    Ok(Caller {
        tenant,
        fixed,
        state,
        limit,
        plan,
        limits,
    })
}

/// The HS256 keys tokens verify with (`SIGNING_KEY`, then `SIGNING_KEY_PREVIOUS` when set); the first
/// one also mints. [`ApiError::Misconfigured`] when `SIGNING_KEY` is missing or either is shorter than
/// `token::MIN_SIGNING_KEY_BYTES`: the router checks this before serving any route, health included.
pub fn signing_secrets(env: &Env) -> Result<Vec<String>, ApiError> {
    let current = env::secret(env, env::SIGNING_KEY);
    let previous = env::secret(env, env::SIGNING_KEY_PREVIOUS);
    token::signing_keys(current.as_deref(), previous.as_deref())
        .map_err(ApiError::Misconfigured)?;
    Ok([current, previous].into_iter().flatten().collect())
}

/// Verifies an HS256 token against the signing keys, or an EdDSA token against its registered tenant
/// key.
async fn verify(env: &Env, token: &str, now_secs: i64) -> Result<Claims, ApiError> {
    let header = token::header(token)?;
    match header.alg {
        Alg::Hs256 => {
            let secrets = signing_secrets(env)?;
            let keys: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
            Ok(token::verify_any(token, &keys, now_secs)?)
        }
        Alg::EdDsa => {
            let kid = header.kid.ok_or(TokenError::UnknownKey)?;
            let key = tenant_state::key(env, &kid)
                .await?
                .ok_or(TokenError::UnknownKey)?;
            let claims = token::verify_eddsa(token, &key.public_key, now_secs)?;
            Ok(claims::confine_to_key_tenant(claims, &key.tenant_id)?)
        }
    }
}
