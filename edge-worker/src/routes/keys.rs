//! `/v0/admin/tenants/{id}/keys`: registering, listing and revoking the Ed25519 public keys a tenant's
//! own backend signs read tokens with (`kid` = the key id). Only public keys are stored.

use serde_json::Value;
use starling_core::keys;
use worker::{Env, Request, Response};

use super::tenants::existing;
use super::tokens::{listing, MAX_BODY};
use super::{json_body, now_secs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::d1;
use crate::{random, tenant_state};

/// `POST /v0/admin/tenants/{id}/keys`: registers an Ed25519 public key (201 with its `key_id`, the
/// `kid` the tenant's tokens must carry).
pub async fn add(
    mut req: Request,
    env: &Env,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    existing(env, id, outcome).await?;
    let json = json_body(&mut req, MAX_BODY).await?;
    let public_key = keys::validate(&json).map_err(|e| ApiError::BadRequest(e.message()))?;
    let key_id = random::id();
    let db = tenant_state::pool(env)?;
    d1::run_atomic(&db, &[keys::insert(id, &key_id, &public_key, now_secs())]).await?;
    tenant_state::forget_keys();
    let key = find_key(env, id, &key_id).await?;
    error::json(&key, Success::Created)
}

/// `GET /v0/admin/tenants/{id}/keys`: the tenant's keys (public halves only).
pub async fn list(env: &Env, id: &str, outcome: &mut Outcome) -> Result<Response, ApiError> {
    existing(env, id, outcome).await?;
    listing(env, &keys::list(id), keys::to_json).await
}

/// `DELETE /v0/admin/tenants/{id}/keys/{key_id}`: revokes a key; tokens it signed are refused.
pub async fn revoke(
    env: &Env,
    id: &str,
    key_id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    existing(env, id, outcome).await?;
    let db = tenant_state::pool(env)?;
    d1::run_atomic(&db, &[keys::revoke(id, key_id, now_secs())]).await?;
    tenant_state::forget_keys();
    let key = find_key(env, id, key_id).await?;
    error::json(&key, Success::Ok)
}

async fn find_key(env: &Env, id: &str, key_id: &str) -> Result<Value, ApiError> {
    let db = tenant_state::pool(env)?;
    let rows = d1::rows(&db, &keys::select(id, key_id)).await?;
    rows.first()
        .map(keys::to_json)
        .ok_or_else(|| ApiError::NoSuch(format!("key '{key_id}' of tenant '{id}'")))
}
