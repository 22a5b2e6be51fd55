//! Whose definitions a settings route (goals, funnels, segments) reads or writes: the tenant of a
//! verified token (`own`) or the tenant an admin request names (`admin`), with its database and plan.

use starling_core::claims::TenantDoc;
use worker::{D1Database, Env, Request};

use super::auth::{authenticate, Need};
use super::tenants::existing;
use super::{query_pairs, Outcome};
use crate::error::ApiError;
use crate::store::d1;

/// The tenant a request acts for, its database and its plan.
pub(super) struct Target {
    pub tenant: String,
    pub db: D1Database,
    pub plan: String,
}

/// The token's own tenant, if the token carries the scope `doc` needs.
pub(super) async fn own(
    req: &Request,
    env: &Env,
    doc: TenantDoc,
    outcome: &mut Outcome,
) -> Result<Target, ApiError> {
    let params = query_pairs(req);
    let caller = authenticate(req, env, &params, Need::Doc(doc), outcome).await?;
    Ok(Target {
        tenant: caller.tenant.as_str().to_owned(),
        db: d1::named(env, caller.state.database())?,
        plan: caller.plan.clone(),
    })
}

/// The registered tenant an admin request names (404 if there is none).
pub(super) async fn admin(
    env: &Env,
    tenant: &str,
    outcome: &mut Outcome,
) -> Result<Target, ApiError> {
    let t = existing(env, tenant, outcome).await?;
    let database = t.database.as_deref().unwrap_or(crate::env::DB);
    Ok(Target {
        tenant: tenant.to_owned(),
        db: d1::named(env, database)?,
        plan: t.plan.as_str().to_owned(),
    })
}
