//! What the edge knows about a tenant, cached in the isolate for a few seconds.
//!
//! Every authenticated request needs its tenant's registry row (plan, allowed origins, isolation,
//! generation, erased or not) and the ids of its revoked tokens. Both come from the pool `DB` and are
//! kept here for [`TTL_MS`], so a revocation, a plan change or an erasure takes effect everywhere
//! within that time (and at once in the isolate that made the change, which calls [`forget`]).
//! Tenant-held signing keys are cached as one set (every active key, loaded in one query at most every
//! [`TTL_MS`]): a token naming an unknown `kid` is answered from memory, so a flood of random `kid`s
//! costs no query and no cache entry per value.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::thread::LocalKey;

use starling_core::tenant::{Status, Tenant};
use starling_core::{keys, mint, tenant};
use worker::{D1Database, Env};

use crate::error::ApiError;
use crate::store::d1;

/// How long a cached tenant or key stays fresh: the bound on how late a revocation takes effect.
pub const TTL_MS: u64 = 5_000;
/// The cache is cleared when it holds more entries than this (an isolate serves few tenants at once).
const MAX_ENTRIES: usize = 10_000;

/// A tenant as the edge sees it.
#[derive(Debug)]
pub struct TenantState {
    /// The registry row; `None` for a tenant never created through the admin API.
    pub tenant: Option<Tenant>,
    /// Ids (`jti`) of the tenant's revoked, unexpired tokens.
    pub revoked: HashSet<String>,
}

impl TenantState {
    /// Whether the tenant was erased (its tokens are all refused).
    pub fn erased(&self) -> bool {
        self.tenant
            .as_ref()
            .is_some_and(|t| t.status == Status::Deleted)
    }

    /// The D1 binding that holds the tenant's analytics: its silo database, or the pool `DB`.
    pub fn database(&self) -> &str {
        self.tenant
            .as_ref()
            .and_then(|t| t.database.as_deref())
            .unwrap_or(crate::env::DB)
    }

    /// Part of every cache key, so an erased and re-created tenant never sees old cached answers.
    pub fn generation(&self) -> i64 {
        self.tenant.as_ref().map_or(0, |t| t.generation)
    }
}

/// A registered, unrevoked tenant signing key.
#[derive(Debug, Clone)]
pub struct TenantKey {
    /// The tenant the key belongs to: tokens it signs can only read this tenant.
    pub tenant_id: String,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
}

/// Entries by id with the time they were loaded (milliseconds).
type Cache<V> = RefCell<HashMap<String, (u64, V)>>;

/// Every active tenant key by id, with the time it was loaded (milliseconds).
type Keyring = RefCell<Option<(u64, Rc<HashMap<String, TenantKey>>)>>;

thread_local! {
    static TENANTS: Cache<Rc<TenantState>> = RefCell::new(HashMap::new());
    static KEYS: Keyring = const { RefCell::new(None) };
    /// When this isolate last wrote each tenant's snapshot (milliseconds).
    static SNAPSHOT_AT: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

fn now() -> u64 {
    crate::clock::now_ms().max(0) as u64
}

/// The entry for `id` if it was loaded less than [`TTL_MS`] before `at`.
fn fresh<V: Clone>(cache: &'static LocalKey<Cache<V>>, id: &str, at: u64) -> Option<V> {
    cache.with(|c| {
        c.borrow()
            .get(id)
            .filter(|(loaded, _)| at.saturating_sub(*loaded) < TTL_MS)
            .map(|(_, v)| v.clone())
    })
}

/// Keeps `value` for `id`, loaded at `at`; a cache past [`MAX_ENTRIES`] starts over.
fn remember<V>(cache: &'static LocalKey<Cache<V>>, id: &str, at: u64, value: V) {
    cache.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= MAX_ENTRIES {
            c.clear();
        }
        c.insert(id.to_owned(), (at, value));
    });
}

/// How long a tenant's snapshot stays in the Cache API: the longest D1 outage a new isolate rides out.
const SNAPSHOT_MAX_AGE_SECS: u64 = 7 * 86_400;
/// An isolate refreshes a tenant's snapshot at most this often (a Cache API write, on a cache miss).
const SNAPSHOT_EVERY_MS: u64 = 60_000;

/// The tenant's state, from the cache or the pool `DB`. When D1 cannot be read: the state this isolate
/// last knew, however old, or else the snapshot in the Cache API ([`crate::store::snapshot`]), so ingest
/// keeps accepting during a D1 incident, in new isolates too (the consumer retries until D1 is back).
pub async fn state(env: &Env, tenant_id: &str) -> Result<Rc<TenantState>, ApiError> {
    let t = now();
    if let Some(hit) = fresh(&TENANTS, tenant_id, t) {
        return Ok(hit);
    }
    let db = pool(env)?;
    let loaded = match load_raw(&db, tenant_id, (t / 1000) as i64).await {
        Ok((state, row)) => {
            if snapshot_due(tenant_id, t) {
                save_snapshot(tenant_id, &state, row).await;
            }
            Rc::new(state)
        }
        Err(e) => {
            let stale = match last_known(tenant_id) {
                Some(stale) => Some((stale, "memory")),
                None => from_snapshot(tenant_id).await.map(|s| {
                    let s = Rc::new(s);
                    remember(&TENANTS, tenant_id, t, Rc::clone(&s));
                    (s, "snapshot")
                }),
            };
            return match stale {
                Some((stale, source)) => {
                    crate::log::event(
                        crate::log::Level::Warn,
                        "tenant_state_stale",
                        &serde_json::json!({ "tenant": tenant_id, "source": source, "error": e.log_detail() }),
                    );
                    Ok(stale)
                }
                None => Err(e),
            };
        }
    };
    remember(&TENANTS, tenant_id, t, Rc::clone(&loaded));
    Ok(loaded)
}

/// The cached state of a tenant whatever its age (for when D1 cannot be read).
fn last_known(tenant_id: &str) -> Option<Rc<TenantState>> {
    TENANTS.with(|c| c.borrow().get(tenant_id).map(|(_, v)| Rc::clone(v)))
}

/// Whether this isolate should write the tenant's snapshot now (and notes that it does).
fn snapshot_due(tenant_id: &str, at: u64) -> bool {
    SNAPSHOT_AT.with(|m| {
        let mut m = m.borrow_mut();
        if m.get(tenant_id)
            .is_some_and(|&last| at.saturating_sub(last) < SNAPSHOT_EVERY_MS)
        {
            return false;
        }
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(tenant_id.to_owned(), at);
        true
    })
}

fn snapshot_name(tenant_id: &str) -> String {
    format!("tenant/{tenant_id}")
}

/// Writes the registry row and revoked ids; a failure only means a new isolate cannot ride out a D1
/// outage for this tenant (logged).
async fn save_snapshot(
    tenant_id: &str,
    state: &TenantState,
    row: Option<serde_json::Map<String, serde_json::Value>>,
) {
    let value = serde_json::json!({ "row": row, "revoked": state.revoked });
    let name = snapshot_name(tenant_id);
    if let Err(e) = crate::store::snapshot::put(&name, &value, SNAPSHOT_MAX_AGE_SECS).await {
        crate::log::event(
            crate::log::Level::Warn,
            "tenant_snapshot_write",
            &serde_json::json!({ "tenant": tenant_id, "error": e.to_string() }),
        );
    }
}

async fn from_snapshot(tenant_id: &str) -> Option<TenantState> {
    let v = crate::store::snapshot::get(&snapshot_name(tenant_id)).await?;
    let tenant = v
        .get("row")
        .and_then(|r| r.as_object())
        .and_then(tenant::from_row);
    let revoked = v
        .get("revoked")?
        .as_array()?
        .iter()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect();
    Some(TenantState { tenant, revoked })
}

/// Reads a tenant's state from D1, bypassing the cache (the admin API uses this for its own writes).
pub async fn load(
    db: &D1Database,
    tenant_id: &str,
    now_secs: i64,
) -> Result<TenantState, ApiError> {
    Ok(load_raw(db, tenant_id, now_secs).await?.0)
}

/// [`load`], with the registry row as read (for the snapshot).
async fn load_raw(
    db: &D1Database,
    tenant_id: &str,
    now_secs: i64,
) -> Result<
    (
        TenantState,
        Option<serde_json::Map<String, serde_json::Value>>,
    ),
    ApiError,
> {
    let results = d1::rows_batch(
        db,
        &[
            tenant::select(tenant_id),
            mint::revoked_ids(tenant_id, now_secs),
        ],
    )
    .await
    .map_err(|e| ApiError::Unavailable(format!("tenant registry: {e}")))?;
    let row = results.first().and_then(|rows| rows.first()).cloned();
    let tenant = row.as_ref().and_then(tenant::from_row);
    let revoked = results
        .get(1)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            r.get("token_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect();
    Ok((TenantState { tenant, revoked }, row))
}

/// Drops a tenant from this isolate's cache after the admin API changed it.
pub fn forget(tenant_id: &str) {
    TENANTS.with(|c| c.borrow_mut().remove(tenant_id));
    // The next load writes a new snapshot at once.
    SNAPSHOT_AT.with(|m| m.borrow_mut().remove(tenant_id));
}

/// Drops the cached signing keys (after a key was registered or revoked).
pub fn forget_keys() {
    KEYS.with(|c| *c.borrow_mut() = None);
}

/// The registered, unrevoked key with this id, from the isolate's set of active keys (reloaded from the
/// pool `DB` when older than [`TTL_MS`]). The caller has checked that `key_id` is shaped like one.
pub async fn key(env: &Env, key_id: &str) -> Result<Option<TenantKey>, ApiError> {
    let t = now();
    let cached = KEYS.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(loaded, _)| t.saturating_sub(*loaded) < TTL_MS)
            .map(|(_, ring)| Rc::clone(ring))
    });
    let ring = match cached {
        Some(ring) => ring,
        None => {
            let db = pool(env)?;
            let rows = d1::rows(&db, &keys::select_all_active())
                .await
                .map_err(|e| ApiError::Unavailable(format!("tenant keys: {e}")))?;
            let ring: HashMap<String, TenantKey> = rows
                .iter()
                .filter_map(|r| {
                    Some((
                        r.get("key_id")?.as_str()?.to_owned(),
                        TenantKey {
                            tenant_id: r.get("tenant_id")?.as_str()?.to_owned(),
                            public_key: keys::decode(r.get("public_key")?.as_str()?)?,
                        },
                    ))
                })
                .collect();
            let ring = Rc::new(ring);
            KEYS.with(|c| *c.borrow_mut() = Some((t, Rc::clone(&ring))));
            ring
        }
    };
    Ok(ring.get(key_id).cloned())
}

/// The pool database (the tenant registry and everything of pool tenants).
pub fn pool(env: &Env) -> Result<D1Database, ApiError> {
    Ok(d1::db(env)?)
}

/// The database holding a tenant's analytics.
pub fn data_db(env: &Env, state: &TenantState) -> Result<D1Database, ApiError> {
    env.d1(state.database())
        .map_err(|e| ApiError::Unavailable(format!("D1 binding {}: {e}", state.database())))
}
