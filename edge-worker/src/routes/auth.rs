//! Authentication for tenant routes, in one place: token → claims → grant → tenant state → limits.
//!
//! 1. The token comes from `Authorization: Bearer` or `?token=`.
//! 2. HS256 tokens verify against `SIGNING_KEY` (Tinybird's format). EdDSA tokens name a tenant-held
//!    key in `kid`; they verify against that registered key and are confined to its tenant, read only.
//! 3. The grant (`authorize_append` / `authorize_read` / `authorize_tenant_read`) binds the tenant.
//! 4. The tenant's state refuses erased tenants, unprovisioned ones (`DEFAULT_PLAN = "none"`), revoked
//!    token ids and tokens issued before the tenant was re-created after an erasure.
//! 5. The tenant's Durable Object counts the request against the plan's hourly quota and the token's
//!    `limits.rps`.

use std::rc::Rc;

use starling_core::audit::Reason;
use starling_core::claims::{self, Claims, TenantId};
use starling_core::plan::{PlanLimits, Quota};
use starling_core::ratelimit::Decision;
use starling_core::tenant;
use starling_core::token::{self, Alg, TokenError};
use worker::{Env, Request};

use super::{bearer_token, now_ms, Outcome};
use crate::env;
use crate::error::ApiError;
use crate::limiter;
use crate::tenants::{self, TenantState};

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
    /// Any `PIPES:READ` scope (tenant.json, usage.json), counted against the query quota.
    AnyRead,
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
            (g.tenant, g.fixed, Quota::Query)
        }
        Need::AnyRead => {
            let g = claims::authorize_tenant_read(&claims)?;
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
    let state = tenants::state(env, tenant.as_str()).await?;
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

/// Verifies an HS256 token against `SIGNING_KEY`, or an EdDSA token against its registered tenant key.
async fn verify(env: &Env, token: &str, now_secs: i64) -> Result<Claims, ApiError> {
    let header = token::header(token)?;
    match header.alg {
        Alg::Hs256 => {
            let key = env::secret(env, env::SIGNING_KEY)
                .ok_or_else(|| ApiError::Unavailable("SIGNING_KEY is not configured".into()))?;
            Ok(token::verify(token, key.as_bytes(), now_secs)?)
        }
        Alg::EdDsa => {
            let kid = header.kid.ok_or(TokenError::UnknownKey)?;
            let key = tenants::key(env, &kid)
                .await?
                .ok_or(TokenError::UnknownKey)?;
            let claims = token::verify_eddsa(token, &key.public_key, now_secs)?;
            Ok(claims::confine_to_key_tenant(claims, &key.tenant_id)?)
        }
    }
}
