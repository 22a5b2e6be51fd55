//! Binding and variable names, in one place (they must match `wrangler.toml`).

/// D1 database with the rollups (see `migrations/`).
pub const DB: &str = "DB";
/// R2 bucket with the raw event archive and quarantined rows.
pub const ARCHIVE: &str = "ARCHIVE";
/// Static assets (dashboard, embed element, tracker): `www/dist`.
pub const ASSETS: &str = "ASSETS";
/// Queue producer for accepted event batches.
pub const EVENTS: &str = "EVENTS";
/// The dead-letter queue of `starling-events` (its name, as the queue handler sees it).
pub const EVENTS_DLQ: &str = "starling-events-dlq";
/// The every-minute cron (`wrangler.toml`): only the spool sweep; the other cron also prunes.
pub const SWEEP_CRON: &str = "* * * * *";
/// Secret: HS256 key for tracker and read tokens (its UTF-8 bytes are the key, as Tinybird signs).
pub const SIGNING_KEY: &str = "SIGNING_KEY";
/// Secret, optional: the previous HS256 key during a key rotation (tokens signed with it still verify;
/// new tokens are signed with `SIGNING_KEY`). Remove it when the rotation window is over.
pub const SIGNING_KEY_PREVIOUS: &str = "SIGNING_KEY_PREVIOUS";
/// Secret: bearer token for `/v0/admin/*`.
pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";

/// Variable: plan of tenants never created through the admin API (`free`, `pro`, `enterprise`, or
/// `none` to refuse their tokens). Default `free`: a token minted outside the admin API gets the
/// smallest quotas until the operator says otherwise.
pub const DEFAULT_PLAN: &str = "DEFAULT_PLAN";
/// Variable: requests and events per hour, and distinct-value caps, per plan, JSON (see `starling_core::plan::PlanLimits::parse`).
pub const PLAN_LIMITS: &str = "PLAN_LIMITS";
/// Variable: retention in days for tenants never created through the admin API (default 395).
pub const DEFAULT_RETENTION_DAYS: &str = "DEFAULT_RETENTION_DAYS";

/// Variable: seconds after which the cron applies a spooled batch itself (default 120).
pub const SPOOL_SWEEP_AFTER_SECS: &str = "SPOOL_SWEEP_AFTER_SECS";

/// Variable: requests with more rows than this are spooled to R2 before the `202` (default 100).
pub const SPOOL_INLINE_MAX_ROWS: &str = "SPOOL_INLINE_MAX_ROWS";

/// Variable: origins (separated by spaces) that may embed the dashboard in a frame, besides its own
/// and, for `/dashboard/?tenant=ID`, that tenant's `allowed_origins`. Empty: no other origin.
pub const FRAME_ANCESTORS: &str = "FRAME_ANCESTORS";

/// Variable: closed UTC days of visits the hourly cron seals into R2 segments per run
/// (`store::segments`), each in parts; `0` or unset: off.
pub const SEGMENT_SEAL_DAYS_PER_RUN: &str = "SEGMENT_SEAL_DAYS_PER_RUN";

/// Variable: visits a part of a sealed day holds at most on average (`seal::parts_for`); empty or
/// unset: `seal::PART_VISITS` (8,000, from measured memory). Lower only to test or to tune.
pub const SEGMENT_PART_VISITS: &str = "SEGMENT_PART_VISITS";

/// Variable: `1` lets reads of the visit rows (filtered top lists, kpis, `/v0/query`) take the sealed
/// days from visit segments and the other days from SQL (`store::segments::answer`); anything else:
/// off (the visit-level SQL only).
pub const SEGMENT_READS: &str = "SEGMENT_READS";

/// Variable: `0` turns one-filter cells off (`segment::cells`): the cron seals parts without them and
/// a top list with one filter scans its sealed days' segments. Anything else or unset: on.
pub const SEGMENT_CELLS: &str = "SEGMENT_CELLS";

/// Variable: lowest log level written (`info` by default, `warn` or `error`).
pub const LOG_LEVEL: &str = "LOG_LEVEL";
/// Test-only fault injection: `1` makes every consumer group of more than one batch fail after writing
/// its archive objects, so the per-message fallback runs (tests/ingest-archive.test.mjs). Never set it
/// in production.
pub const FAULT_GROUP_COMMIT: &str = "FAULT_GROUP_COMMIT";

/// The plan of a tenant never created through the admin API: `DEFAULT_PLAN`, or the smallest plan
/// (`free`) when unset; `none` refuses such tenants.
pub fn default_plan(env: &worker::Env) -> String {
    var(env, DEFAULT_PLAN).unwrap_or_else(|| "free".into())
}

/// The plan limits from `PLAN_LIMITS` (defaults for what it does not name).
pub fn plan_limits(env: &worker::Env) -> Result<starling_core::plan::PlanLimits, String> {
    starling_core::plan::PlanLimits::parse(var(env, PLAN_LIMITS).as_deref())
}

/// A secret's value, or `None` when it is not configured.
pub fn secret(env: &worker::Env, name: &str) -> Option<String> {
    once(Kind::Secret, name, || {
        // Secrets in production; `--var`/`.dev.vars` locally. Both arrive as string bindings.
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
            .filter(|s| !s.is_empty())
    })
}

/// A plain variable's value, or `None` when unset or empty.
pub fn var(env: &worker::Env, name: &str) -> Option<String> {
    once(Kind::Var, name, || {
        env.var(name)
            .map(|v| v.to_string())
            .ok()
            .filter(|s| !s.is_empty())
    })
}

/// Whether a value was read as a secret or as a plain variable (the two reads differ).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Secret,
    Var,
}

thread_local! {
    /// Variables and secrets this isolate has read. A deployment's values never change within an
    /// isolate (a new version or a changed secret starts new isolates), and each read crosses into
    /// JavaScript and copies the string: 50 to 250 µs per request before this cache
    /// (`node bench/worker-profile.mjs`, BENCHMARKS "Where a request's CPU goes").
    static READ: std::cell::RefCell<std::collections::HashMap<(Kind, String), Option<String>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// `read()` the first time this isolate asks for `name`, the remembered value after.
fn once(kind: Kind, name: &str, read: impl FnOnce() -> Option<String>) -> Option<String> {
    let key = (kind, name.to_owned());
    if let Some(v) = READ.with(|m| m.borrow().get(&key).cloned()) {
        return v;
    }
    let v = read();
    READ.with(|m| m.borrow_mut().insert(key, v.clone()));
    v
}
