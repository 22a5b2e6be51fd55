//! `/v0/admin/tenants/{id}/tokens`: minting, listing and revoking a tenant's tokens.
//!
//! A minted token is an HS256 JWT in Tinybird's shape with a `jti` (`starling_core::mint`); only its
//! metadata is stored, the JWT is returned once. Revoking sets `revoked_at`: the edge refuses the `jti`
//! once its tenant cache refreshes (`tenant_state::TTL_MS`).

use serde_json::{Map, Value};
use starling_core::mint;
use starling_core::sql::Statement;
use worker::{Env, Request, Response};

use super::tenants::existing;
use super::{json_body, now_secs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::d1;
use crate::{env, random, tenant_state};

/// Largest body accepted, in bytes.
pub(super) const MAX_BODY: usize = 8 * 1024;

/// `POST /v0/admin/tenants/{id}/tokens`: mints a tracker or read token (201 with the JWT).
pub async fn mint(
    mut req: Request,
    env: &Env,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    existing(env, id, outcome).await?;
    let json = json_body(&mut req, MAX_BODY).await?;
    let now = now_secs();
    let request = mint::validate(id, &json, now).map_err(|e| ApiError::BadRequest(e.message()))?;
    let secret = env::secret(env, env::SIGNING_KEY)
        .ok_or_else(|| ApiError::Unavailable("SIGNING_KEY is not configured".into()))?;
    let token_id = random::id();
    let jwt = mint::sign(&request, &token_id, now, secret.as_bytes());
    let db = tenant_state::pool(env)?;
    let results = d1::rows_batch(
        &db,
        &[
            mint::record(&request, &token_id, now),
            mint::select(id, &token_id),
        ],
    )
    .await?;
    let mut meta = results
        .get(1)
        .and_then(|rows| rows.first())
        .map(mint::metadata_json)
        .ok_or_else(|| ApiError::Unavailable("the minted token was not stored".into()))?;
    if let Some(m) = meta.as_object_mut() {
        m.insert("token".into(), Value::String(jwt));
    }
    error::json(&meta, Success::Created)
}

/// `GET /v0/admin/tenants/{id}/tokens`: the tenant's minted tokens, newest first (never the JWTs).
pub async fn list(env: &Env, id: &str, outcome: &mut Outcome) -> Result<Response, ApiError> {
    existing(env, id, outcome).await?;
    listing(env, &mint::list(id), mint::metadata_json).await
}

/// `DELETE /v0/admin/tenants/{id}/tokens/{token_id}`: revokes a token (idempotent).
pub async fn revoke(
    env: &Env,
    id: &str,
    token_id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    existing(env, id, outcome).await?;
    let db = tenant_state::pool(env)?;
    let results = d1::rows_batch(
        &db,
        &[
            mint::revoke(id, token_id, now_secs()),
            mint::select(id, token_id),
        ],
    )
    .await?;
    tenant_state::forget(id);
    let row = results
        .get(1)
        .and_then(|rows| rows.first())
        .ok_or_else(|| {
            ApiError::NoSuch(format!(
            "token '{token_id}' of tenant '{id}': list them with GET /v0/admin/tenants/{id}/tokens"
        ))
        })?;
    error::json(&mint::metadata_json(row), Success::Ok)
}

/// `{"rows", "data"}` of a listing query's rows.
pub(super) async fn listing(
    env: &Env,
    statement: &Statement,
    to_json: fn(&Map<String, Value>) -> Value,
) -> Result<Response, ApiError> {
    let db = tenant_state::pool(env)?;
    let rows = d1::rows(&db, statement).await?;
    let data: Vec<Value> = rows.iter().map(to_json).collect();
    error::json(
        &serde_json::json!({ "rows": data.len(), "data": data }),
        Success::Ok,
    )
}
