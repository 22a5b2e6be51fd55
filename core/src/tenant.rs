//! The tenant registry: what the admin API creates, reads, updates and erases (issue #6).
//!
//! [`validate_create`] and [`validate_update`] turn admin JSON bodies into a [`Tenant`] or a
//! [`TenantError`] that names the field; [`upsert`], [`select`], [`list`] and [`list_all_active`] are the
//! bound SQL over `tenants` (`migrations/0004_tenant_operations.sql`) and [`from_row`] reads a row back;
//! [`to_json`] is the API's tenant object. [`origin_allowed`] is the ingest check of a request's `Origin`
//! against the tenant's `allowed_origins`. Erasure keeps a [`tombstone`]: the row stays (status
//! `deleted`, generation bumped) so caches keyed by generation go stale and the id can be re-created.

use std::fmt;

use serde_json::{json, Map, Value};

use crate::claims::is_valid_tenant_id;
use crate::sql::{SqlValue, Statement};
use crate::time::rfc3339;

/// Retention when a create body does not say, in days (13 months, a year-over-year comparison).
pub const DEFAULT_RETENTION_DAYS: u32 = 395;
/// Longest retention, in days (10 years).
pub const MAX_RETENTION_DAYS: u32 = 3650;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
/// Most entries in `allowed_origins`.
pub const MAX_ORIGINS: usize = 50;
/// The fields a create body may have (`theme` is validated by the caller with `settings::validate`).
pub const CREATE_FIELDS: [&str; 8] = [
    "tenant_id",
    "display_name",
    "plan",
    "allowed_origins",
    "isolation",
    "database",
    "retention_days",
    "theme",
];
/// The fields a PATCH body may change (`tenant_id` may be repeated if it is the tenant's own).
pub const UPDATE_FIELDS: [&str; 5] = [
    "display_name",
    "plan",
    "allowed_origins",
    "retention_days",
    "theme",
];

/// A tenant's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Plan {
    /// The default.
    Free,
    /// Paid, pooled.
    Pro,
    /// Paid; the only plan that may be isolated in its own database.
    Enterprise,
}

impl Plan {
    /// `free`, `pro` or `enterprise`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Enterprise => "enterprise",
        }
    }

    /// The plan named `s` (exact, lowercase).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Free, Self::Pro, Self::Enterprise]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// Where a tenant's analytics live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isolation {
    /// The shared D1 database `DB` (the default).
    Pool,
    /// A D1 database of its own, named by the tenant's `database` binding.
    Silo,
}

impl Isolation {
    /// `pool` or `silo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pool => "pool",
            Self::Silo => "silo",
        }
    }

    /// The isolation named `s` (exact, lowercase).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pool, Self::Silo]
            .into_iter()
            .find(|i| i.as_str() == s)
    }
}

/// Whether a tenant is live or erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Accepts events and queries.
    Active,
    /// Erased: a tombstone that keeps its tokens refused; the id may be created again.
    Deleted,
}

impl Status {
    /// `active` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deleted => "deleted",
        }
    }

    /// The status named `s` (exact, lowercase).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Deleted]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One row of `tenants`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The id every token binds (see [`is_valid_tenant_id`]).
    pub tenant_id: String,
    /// A name for people: 1 to 100 characters, no control characters.
    pub display_name: String,
    /// The plan.
    pub plan: Plan,
    /// Origins the tracker may send from, lowercase `scheme://host[:port]` (host may start with `*.`);
    /// empty means any origin.
    pub allowed_origins: Vec<String>,
    /// Pool or silo; fixed at creation.
    pub isolation: Isolation,
    /// The D1 binding of a silo tenant; `None` for the pool. Fixed at creation.
    pub database: Option<String>,
    /// Raw events and rollups older than this many days are deleted by the retention job.
    pub retention_days: u32,
    /// Starts at 1, bumped on erasure (and re-creation); part of every cache key.
    pub generation: i64,
    /// Active or erased.
    pub status: Status,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Why a tenant body was rejected (400).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantError {
    /// A known field with a value that is not allowed.
    Field {
        /// The field's name.
        field: String,
        /// What the value must be.
        message: String,
    },
    /// A field that the body may not have.
    UnknownField(String),
    /// The body is not a JSON object.
    NotAnObject,
    /// A PATCH tried to change a field that is fixed at creation (`isolation`, `database`).
    FixedAtCreation(&'static str),
}

impl TenantError {
    fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Field {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A message that names the field and says what is allowed.
    pub fn message(&self) -> String {
        match self {
            Self::Field { field, message } => format!("invalid '{field}': {message}"),
            Self::UnknownField(f) => format!(
                "unknown field '{f}': a tenant body may have {}",
                CREATE_FIELDS.join(", ")
            ),
            Self::NotAnObject => format!(
                "the body must be a JSON object with some of: {}",
                CREATE_FIELDS.join(", ")
            ),
            Self::FixedAtCreation(f) => format!(
                "'{f}' is fixed at creation: export the data, erase the tenant and create it again to change it"
            ),
        }
    }
}

impl fmt::Display for TenantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for TenantError {}

/// Validates a create body. `theme` is accepted as a known field and ignored here (the caller validates
/// it with `settings::validate`). The tenant starts at generation 1, or at `previous.generation + 1` when
/// `previous` (the erased tenant with this id) is given; status active, created and updated `now_secs`.
pub fn validate_create(
    json: &Value,
    previous: Option<&Tenant>,
    now_secs: i64,
) -> Result<Tenant, TenantError> {
    let obj = json.as_object().ok_or(TenantError::NotAnObject)?;
    reject_unknown(obj, &CREATE_FIELDS)?;
    let tenant_id = match obj.get("tenant_id") {
        Some(Value::String(s)) if is_valid_tenant_id(s) => s.clone(),
        _ => {
            return Err(TenantError::field(
                "tenant_id",
                "required: 1 to 64 of A-Z a-z 0-9 _ - . not starting with '.'",
            ))
        }
    };
    let plan = plan(obj)?.unwrap_or(Plan::Free);
    let isolation = match present(obj, "isolation") {
        None => Isolation::Pool,
        Some(v) => v
            .as_str()
            .and_then(Isolation::parse)
            .ok_or_else(|| TenantError::field("isolation", "expected \"pool\" or \"silo\""))?,
    };
    let database = match present(obj, "database") {
        None => None,
        Some(Value::String(s)) if valid_binding(s) => Some(s.clone()),
        Some(_) => {
            return Err(TenantError::field(
                "database",
                "expected a D1 binding name: an uppercase letter, then up to 62 of A-Z 0-9 _",
            ))
        }
    };
    match (isolation, &database) {
        (Isolation::Silo, None) => {
            return Err(TenantError::field(
                "database",
                "a silo tenant needs the D1 binding of its own database",
            ))
        }
        (Isolation::Silo, Some(_)) if plan != Plan::Enterprise => {
            return Err(TenantError::field(
                "isolation",
                "\"silo\" needs plan \"enterprise\"",
            ))
        }
        (Isolation::Pool, Some(_)) => {
            return Err(TenantError::field(
                "database",
                "only a silo tenant names a database: leave it out or set isolation to \"silo\"",
            ))
        }
        _ => {}
    }
    Ok(Tenant {
        display_name: display_name(obj)?.unwrap_or_else(|| tenant_id.clone()),
        allowed_origins: allowed_origins(obj)?.unwrap_or_default(),
        retention_days: retention_days(obj)?.unwrap_or(DEFAULT_RETENTION_DAYS),
        tenant_id,
        plan,
        isolation,
        database,
        generation: previous.map_or(1, |p| p.generation + 1),
        status: Status::Active,
        created_at: now_secs,
        updated_at: now_secs,
    })
}

/// Applies a PATCH body to `existing`: `display_name`, `plan`, `allowed_origins` and `retention_days`
/// change; `theme` is accepted and ignored (the caller stores it); `isolation` and `database` are fixed
/// at creation; `tenant_id`, if present, must be the tenant's own. A silo tenant stays enterprise.
pub fn validate_update(
    existing: &Tenant,
    json: &Value,
    now_secs: i64,
) -> Result<Tenant, TenantError> {
    let obj = json.as_object().ok_or(TenantError::NotAnObject)?;
    for fixed in ["isolation", "database"] {
        if obj.contains_key(fixed) {
            return Err(TenantError::FixedAtCreation(fixed));
        }
    }
    if let Some(id) = obj.get("tenant_id") {
        if id.as_str() != Some(existing.tenant_id.as_str()) {
            return Err(TenantError::field(
                "tenant_id",
                "a tenant's id cannot change: leave it out of the body",
            ));
        }
    }
    let allowed: Vec<&str> = UPDATE_FIELDS.iter().copied().chain(["tenant_id"]).collect();
    reject_unknown(obj, &allowed)?;
    let mut t = existing.clone();
    if let Some(name) = display_name(obj)? {
        t.display_name = name;
    }
    if let Some(plan) = plan(obj)? {
        t.plan = plan;
    }
    if t.isolation == Isolation::Silo && t.plan != Plan::Enterprise {
        return Err(TenantError::field(
            "plan",
            "a silo tenant stays on plan \"enterprise\"",
        ));
    }
    if let Some(origins) = allowed_origins(obj)? {
        t.allowed_origins = origins;
    }
    if let Some(days) = retention_days(obj)? {
        t.retention_days = days;
    }
    t.updated_at = now_secs;
    Ok(t)
}

fn reject_unknown(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), TenantError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(TenantError::UnknownField(k.chars().take(64).collect())),
        None => Ok(()),
    }
}

/// A field's value, `None` when absent or `null`.
fn present<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    obj.get(field).filter(|v| !v.is_null())
}

fn display_name(obj: &Map<String, Value>) -> Result<Option<String>, TenantError> {
    let Some(v) = present(obj, "display_name") else {
        return Ok(None);
    };
    match v.as_str() {
        Some(s)
            if !s.is_empty()
                && s.chars().count() <= MAX_DISPLAY_NAME_CHARS
                && !s.chars().any(char::is_control) =>
        {
            Ok(Some(s.to_owned()))
        }
        _ => Err(TenantError::field(
            "display_name",
            "expected 1 to 100 characters, no control characters",
        )),
    }
}

fn plan(obj: &Map<String, Value>) -> Result<Option<Plan>, TenantError> {
    present(obj, "plan")
        .map(|v| {
            v.as_str().and_then(Plan::parse).ok_or_else(|| {
                TenantError::field("plan", "expected \"free\", \"pro\" or \"enterprise\"")
            })
        })
        .transpose()
}

fn retention_days(obj: &Map<String, Value>) -> Result<Option<u32>, TenantError> {
    present(obj, "retention_days")
        .map(|v| {
            v.as_u64()
                .filter(|d| (1..=u64::from(MAX_RETENTION_DAYS)).contains(d))
                .map(|d| d as u32)
                .ok_or_else(|| {
                    TenantError::field(
                        "retention_days",
                        "expected a whole number of days from 1 to 3650",
                    )
                })
        })
        .transpose()
}

fn allowed_origins(obj: &Map<String, Value>) -> Result<Option<Vec<String>>, TenantError> {
    let Some(v) = present(obj, "allowed_origins") else {
        return Ok(None);
    };
    let list = v
        .as_array()
        .filter(|a| a.len() <= MAX_ORIGINS)
        .ok_or_else(|| {
            TenantError::field(
                "allowed_origins",
                "expected an array of at most 50 origins ([] allows any origin)",
            )
        })?;
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        let origin = item.as_str().and_then(normalize_origin).ok_or_else(|| {
            TenantError::field(
                "allowed_origins",
                format!(
                    "{} is not an origin: expected http(s)://host[:port], host may start with '*.' \
                     for its subdomains, no path, query or user",
                    truncated(item)
                ),
            )
        })?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(Some(out))
}

fn truncated(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// A D1 binding name: `^[A-Z][A-Z0-9_]{0,62}$`.
fn valid_binding(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

/// Whether `s` is a lowercase DNS hostname: dot-separated labels of 1 to 63 of `a-z 0-9 -` (not starting
/// or ending with `-`), at most 253 characters in all. IP addresses in dotted form pass too.
pub fn is_valid_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// An origin split into its parts, lowercase, with the scheme's default port dropped.
#[derive(Debug, PartialEq, Eq)]
struct Origin<'a> {
    scheme: &'a str,
    /// Without a `*.` prefix.
    host: &'a str,
    wildcard: bool,
    port: Option<u16>,
}

impl Origin<'_> {
    fn render(&self) -> String {
        let star = if self.wildcard { "*." } else { "" };
        match self.port {
            Some(p) => format!("{}://{star}{}:{p}", self.scheme, self.host),
            None => format!("{}://{star}{}", self.scheme, self.host),
        }
    }
}

/// Parses a lowercase origin; `allow_wildcard` admits a `*.` host prefix.
fn parse_origin(s: &str, allow_wildcard: bool) -> Option<Origin<'_>> {
    let (scheme, rest) = s.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p.parse().ok().filter(|&n| n != 0 && !p.starts_with('0'))?;
            (h, Some(port))
        }
        None => (rest, None),
    };
    let (host, wildcard) = match host.strip_prefix("*.") {
        Some(h) if allow_wildcard => (h, true),
        _ => (host, false),
    };
    if !is_valid_hostname(host) {
        return None;
    }
    let default = if scheme == "https" { 443 } else { 80 };
    Some(Origin {
        scheme,
        host,
        wildcard,
        port: port.filter(|&p| p != default),
    })
}

/// The stored form of an allowed origin (lowercase, no trailing slash, no default port), or `None`.
fn normalize_origin(s: &str) -> Option<String> {
    let lower = s.trim().to_ascii_lowercase();
    parse_origin(&lower, true).map(|o| o.render())
}

/// Whether a request's `Origin` may send events for a tenant. An empty list allows any origin; no
/// `Origin` (a server-side sender) is allowed; otherwise the origin must match an entry exactly
/// (case-insensitive scheme, host and port) or an entry `scheme://*.example.com`, which matches every
/// subdomain of `example.com` but not `example.com` itself. `Origin: null` matches nothing.
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed.is_empty() {
        return true;
    }
    let lower = origin.trim().to_ascii_lowercase();
    let Some(o) = parse_origin(&lower, false) else {
        return false;
    };
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        let Some(e) = parse_origin(&entry, true) else {
            return false;
        };
        e.scheme == o.scheme
            && e.port == o.port
            && if e.wildcard {
                o.host
                    .strip_suffix(e.host)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
            } else {
                e.host == o.host
            }
    })
}

/// The origins that may embed the dashboard in a frame (its CSP `frame-ancestors`, and the only parents
/// whose `postMessage` it accepts), besides its own origin: the operator's list `operator` (origins
/// separated by spaces or commas, as for `allowed_origins`; entries that are not origins are skipped)
/// and the `allowed_origins` of `tenant` when the dashboard URL names an active one. Unlike ingest, an
/// empty list allows no other origin.
pub fn frame_ancestors(operator: &str, tenant: Option<&Tenant>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let tenant_origins = tenant
        .filter(|t| t.status == Status::Active)
        .map(|t| t.allowed_origins.as_slice())
        .unwrap_or_default();
    let candidates = operator
        .split([' ', ',', '\n', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .chain(tenant_origins.iter().cloned());
    for origin in candidates.filter_map(|o| normalize_origin(&o)) {
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    out
}

/// How long (seconds) re-creating the erased tenant `tombstone` must wait at `now_secs` so that every
/// isolate's cached view of the old generation (kept at most `cache_secs`) has expired: until one second
/// past `updated_at + cache_secs`. Then the id is erased once more and goes live, so a batch that a
/// consumer with a stale cache applied in between is erased too, and later batches meet the tombstone
/// or the new generation.
pub fn recreation_wait_secs(tombstone: &Tenant, now_secs: i64, cache_secs: i64) -> i64 {
    (tombstone.updated_at + cache_secs + 1 - now_secs).clamp(0, cache_secs + 1)
}

/// `csp` with its `frame-ancestors` directive set to `'self'` and `ancestors` (added when absent).
pub fn with_frame_ancestors(csp: &str, ancestors: &[String]) -> String {
    let mut directive = String::from("frame-ancestors 'self'");
    for a in ancestors {
        directive.push(' ');
        directive.push_str(a);
    }
    let mut parts: Vec<String> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.to_ascii_lowercase().starts_with("frame-ancestors"))
        .map(str::to_owned)
        .collect();
    parts.push(directive);
    parts.join("; ")
}

/// Whether a token issued at `issued_at` may predate this tenant's re-creation after an erasure, and so
/// must be refused: erasing revokes every token of the tenant, including ones minted by the operator's
/// own app. A token without `iat` cannot prove it was issued after the re-creation, so it is refused
/// too (tokens of a re-created tenant must carry `iat`; the admin API and `scripts/token.mjs` set it).
/// Tokens of a tenant that was never erased (generation 1) are accepted with or without `iat` (apps
/// migrating from Tinybird mint them before registering the tenant).
pub fn token_predates_recreation(t: &Tenant, issued_at: Option<i64>) -> bool {
    t.generation > 1 && issued_at.is_none_or(|iat| iat < t.created_at)
}

const COLUMNS: &str = "tenant_id, display_name, plan, allowed_origins, isolation, database, \
                       retention_days, generation, status, created_at, updated_at";

/// Inserts the tenant or replaces every column of its row.
pub fn upsert(t: &Tenant) -> Statement {
    Statement::new(
        format!(
            "INSERT INTO tenants ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id) DO UPDATE SET display_name = excluded.display_name, \
             plan = excluded.plan, allowed_origins = excluded.allowed_origins, \
             isolation = excluded.isolation, database = excluded.database, \
             retention_days = excluded.retention_days, generation = excluded.generation, \
             status = excluded.status, created_at = excluded.created_at, updated_at = excluded.updated_at"
        ),
        vec![
            t.tenant_id.as_str().into(),
            t.display_name.as_str().into(),
            t.plan.as_str().into(),
            Value::from(t.allowed_origins.clone()).to_string().into(),
            t.isolation.as_str().into(),
            t.database.clone().map_or(SqlValue::Null, SqlValue::Text),
            i64::from(t.retention_days).into(),
            t.generation.into(),
            t.status.as_str().into(),
            t.created_at.into(),
            t.updated_at.into(),
        ],
    )
}

/// Selects one tenant's row, whatever its status (an erased tenant's tombstone included).
pub fn select(tenant_id: &str) -> Statement {
    Statement::new(
        format!("SELECT {COLUMNS} FROM tenants WHERE tenant_id = ?"),
        vec![tenant_id.into()],
    )
}

/// Selects up to `limit` active tenants in `tenant_id` order, after `after` (exclusive) when given:
/// keyset pagination, so pages stay stable while tenants are added. The caller bounds `limit`.
pub fn list(after: Option<&str>, limit: u32) -> Statement {
    Statement::new(
        format!(
            "SELECT {COLUMNS} FROM tenants WHERE status = 'active' AND tenant_id > ? \
             ORDER BY tenant_id LIMIT ?"
        ),
        vec![after.unwrap_or("").into(), i64::from(limit).into()],
    )
}

/// Selects `tenant_id, retention_days` of every active tenant, for the retention job.
pub fn list_all_active() -> Statement {
    Statement::new(
        "SELECT tenant_id, retention_days FROM tenants WHERE status = 'active' ORDER BY tenant_id",
        vec![],
    )
}

/// Selects every registered tenant, active and erased (tombstones), in `tenant_id` order: the retention
/// job expires the active ones and finishes erasing the erased ones.
pub fn list_every() -> Statement {
    Statement::new(
        format!("SELECT {COLUMNS} FROM tenants ORDER BY tenant_id"),
        vec![],
    )
}

/// Selects `tenant_id` of every tenant with analytics in this database but no row in `tenants` (tenants
/// that sent events with a token before the registry existed), so retention covers them too. Any
/// accepted event leaves a `domains` row, a bot hit a `bot_hits_daily` row, a quarantined row a
/// `quarantine_daily` row: these small tables find them without scanning raw visits.
pub fn unregistered() -> Statement {
    Statement::new(
        "SELECT tenant_id FROM domains UNION SELECT tenant_id FROM bot_hits_daily \
         UNION SELECT tenant_id FROM quarantine_daily EXCEPT SELECT tenant_id FROM tenants \
         ORDER BY tenant_id",
        vec![],
    )
}

/// An integer column: D1 hands numbers over as JSON numbers, integral or not.
pub(crate) fn int(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// A tenant from a row of [`select`] or [`list`]; `None` when a column is missing or not valid.
pub fn from_row(row: &Map<String, Value>) -> Option<Tenant> {
    let text = |c: &str| row.get(c).and_then(Value::as_str);
    let allowed_origins = match text("allowed_origins") {
        Some(s) => serde_json::from_str::<Vec<String>>(s).ok()?,
        None => Vec::new(),
    };
    Some(Tenant {
        tenant_id: text("tenant_id")?.to_owned(),
        display_name: text("display_name")?.to_owned(),
        plan: Plan::parse(text("plan")?)?,
        allowed_origins,
        isolation: Isolation::parse(text("isolation")?)?,
        database: text("database").map(str::to_owned),
        retention_days: u32::try_from(int(row.get("retention_days"))?).ok()?,
        generation: int(row.get("generation"))?,
        status: Status::parse(text("status")?)?,
        created_at: int(row.get("created_at"))?,
        updated_at: int(row.get("updated_at"))?,
    })
}

/// The API's tenant object, with `theme` (the tenant's settings object, or `null`) alongside.
pub fn to_json(t: &Tenant, theme: Value) -> Value {
    json!({
        "tenant_id": t.tenant_id,
        "display_name": t.display_name,
        "plan": t.plan.as_str(),
        "allowed_origins": t.allowed_origins,
        "isolation": t.isolation.as_str(),
        "database": t.database,
        "retention_days": t.retention_days,
        "status": t.status.as_str(),
        "generation": t.generation,
        "created_at": rfc3339(t.created_at),
        "updated_at": rfc3339(t.updated_at),
        "theme": theme,
    })
}

/// The tombstone an erasure leaves: status deleted, generation bumped (every cache key changes),
/// updated `now_secs`. The display name and allowed origins go with the rest of the tenant's data.
pub fn tombstone(t: &Tenant, now_secs: i64) -> Tenant {
    Tenant {
        display_name: t.tenant_id.clone(),
        allowed_origins: Vec::new(),
        generation: t.generation + 1,
        status: Status::Deleted,
        updated_at: now_secs,
        ..t.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_428_000; // 2026-11-23T10:00:00Z

    fn create(v: Value) -> Result<Tenant, TenantError> {
        validate_create(&v, None, NOW)
    }

    fn field_of(r: Result<Tenant, TenantError>) -> String {
        match r.unwrap_err() {
            TenantError::Field { field, .. } => field,
            other => format!("{other:?}"),
        }
    }

    fn origins(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recreation_waits_until_every_cache_forgot_the_old_generation() {
        let erased = tombstone(&create(json!({"tenant_id": "acme"})).unwrap(), NOW);
        assert_eq!(recreation_wait_secs(&erased, NOW, 5), 6);
        assert_eq!(recreation_wait_secs(&erased, NOW + 4, 5), 2);
        assert_eq!(recreation_wait_secs(&erased, NOW + 6, 5), 0);
        assert_eq!(recreation_wait_secs(&erased, NOW + 3600, 5), 0);
        // A clock going backwards never makes it wait longer than the cache lifetime.
        assert_eq!(recreation_wait_secs(&erased, NOW - 3600, 5), 6);
    }

    #[test]
    fn only_listed_origins_may_frame_the_dashboard() {
        let mut t = create(json!({"tenant_id": "acme",
            "allowed_origins": ["https://acme.example", "https://*.acme.example"]}))
        .unwrap();
        assert_eq!(frame_ancestors("", None), Vec::<String>::new());
        assert_eq!(
            frame_ancestors(
                " https://App.example:443,http://127.0.0.1:8080 javascript:x *",
                None
            ),
            ["https://app.example", "http://127.0.0.1:8080"]
        );
        assert_eq!(
            frame_ancestors("https://acme.example", Some(&t)),
            ["https://acme.example", "https://*.acme.example"]
        );
        t.status = Status::Deleted;
        assert!(frame_ancestors("", Some(&t)).is_empty());
        let csp = "default-src 'none'; script-src 'self'; frame-ancestors *";
        assert_eq!(
            with_frame_ancestors(csp, &[]),
            "default-src 'none'; script-src 'self'; frame-ancestors 'self'"
        );
        assert_eq!(
            with_frame_ancestors("default-src 'none'", &["https://a.example".into()]),
            "default-src 'none'; frame-ancestors 'self' https://a.example"
        );
    }

    #[test]
    fn tokens_issued_before_a_recreation_are_refused() {
        let first = create(json!({"tenant_id": "acme"})).unwrap();
        assert!(!token_predates_recreation(&first, Some(NOW - 86_400)));
        assert!(!token_predates_recreation(&first, None));
        let erased = tombstone(&first, NOW + 10);
        let again =
            validate_create(&json!({"tenant_id": "acme"}), Some(&erased), NOW + 20).unwrap();
        assert!(token_predates_recreation(&again, Some(NOW)));
        assert!(!token_predates_recreation(&again, Some(NOW + 20)));
        // Without iat a token cannot show it was issued after the re-creation (Tinybird-style tokens).
        assert!(token_predates_recreation(&again, None));
    }

    #[test]
    fn a_minimal_create_gets_the_defaults() {
        let t = create(json!({"tenant_id": "acme"})).unwrap();
        assert_eq!(
            t,
            Tenant {
                tenant_id: "acme".into(),
                display_name: "acme".into(),
                plan: Plan::Free,
                allowed_origins: vec![],
                isolation: Isolation::Pool,
                database: None,
                retention_days: DEFAULT_RETENTION_DAYS,
                generation: 1,
                status: Status::Active,
                created_at: NOW,
                updated_at: NOW,
            }
        );
    }

    #[test]
    fn a_full_create_is_normalized() {
        let t = create(json!({
            "tenant_id": "acme", "display_name": "Acme Inc.", "plan": "enterprise",
            "allowed_origins": ["HTTPS://Acme.com/", "https://*.acme.com", "http://localhost:8080",
                                "https://acme.com:443", "https://acme.com"],
            "isolation": "silo", "database": "SILO_1", "retention_days": 30,
            "theme": {"primary_color": "#0a7d32"}
        }))
        .unwrap();
        assert_eq!(t.display_name, "Acme Inc.");
        assert_eq!(t.plan, Plan::Enterprise);
        assert_eq!(
            t.allowed_origins,
            origins(&[
                "https://acme.com",
                "https://*.acme.com",
                "http://localhost:8080"
            ])
        );
        assert_eq!(
            (t.isolation, t.database.as_deref()),
            (Isolation::Silo, Some("SILO_1"))
        );
        assert_eq!(t.retention_days, 30);
        let nulls = create(json!({"tenant_id": "a", "display_name": null, "plan": null,
            "database": null, "allowed_origins": null, "retention_days": null}));
        assert_eq!(nulls.unwrap(), create(json!({"tenant_id": "a"})).unwrap());
    }

    #[test]
    fn recreating_an_erased_id_continues_its_generation() {
        let first = create(json!({"tenant_id": "acme"})).unwrap();
        let erased = tombstone(&first, NOW + 10);
        assert_eq!(
            (erased.status, erased.generation, erased.updated_at),
            (Status::Deleted, 2, NOW + 10)
        );
        assert_eq!(erased.created_at, NOW);
        let again =
            validate_create(&json!({"tenant_id": "acme"}), Some(&erased), NOW + 20).unwrap();
        assert_eq!(
            (again.generation, again.status, again.created_at),
            (3, Status::Active, NOW + 20)
        );
    }

    #[test]
    fn create_rejects_each_bad_field_by_name() {
        let cases = [
            (json!({}), "tenant_id"),
            (json!({"tenant_id": ""}), "tenant_id"),
            (json!({"tenant_id": "../x"}), "tenant_id"),
            (json!({"tenant_id": 5}), "tenant_id"),
            (
                json!({"tenant_id": "a", "display_name": ""}),
                "display_name",
            ),
            (
                json!({"tenant_id": "a", "display_name": "x".repeat(101)}),
                "display_name",
            ),
            (
                json!({"tenant_id": "a", "display_name": "a\nb"}),
                "display_name",
            ),
            (json!({"tenant_id": "a", "plan": "gold"}), "plan"),
            (json!({"tenant_id": "a", "plan": "Free"}), "plan"),
            (
                json!({"tenant_id": "a", "isolation": "shared"}),
                "isolation",
            ),
            (
                json!({"tenant_id": "a", "isolation": "silo", "plan": "enterprise"}),
                "database",
            ),
            (
                json!({"tenant_id": "a", "isolation": "silo", "database": "SILO_1"}),
                "isolation",
            ),
            (json!({"tenant_id": "a", "database": "SILO_1"}), "database"),
            (
                json!({"tenant_id": "a", "isolation": "silo", "plan": "enterprise", "database": "silo_1"}),
                "database",
            ),
            (
                json!({"tenant_id": "a", "isolation": "silo", "plan": "enterprise", "database": "1DB"}),
                "database",
            ),
            (
                json!({"tenant_id": "a", "retention_days": 0}),
                "retention_days",
            ),
            (
                json!({"tenant_id": "a", "retention_days": 3651}),
                "retention_days",
            ),
            (
                json!({"tenant_id": "a", "retention_days": 1.5}),
                "retention_days",
            ),
            (
                json!({"tenant_id": "a", "retention_days": "30"}),
                "retention_days",
            ),
            (
                json!({"tenant_id": "a", "allowed_origins": "https://a.com"}),
                "allowed_origins",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(create(body.clone())), field, "{body}");
        }
        assert!(create(json!({"tenant_id": "a", "retention_days": 3650})).is_ok());
        assert!(create(json!({"tenant_id": "a", "display_name": "x".repeat(100)})).is_ok());
        let e = create(json!({"tenant_id": "a", "retention_days": 0})).unwrap_err();
        assert!(e.message().contains("'retention_days'"), "{}", e.message());
    }

    #[test]
    fn origins_must_be_bare_http_origins() {
        for bad in [
            "acme.com",
            "ftp://acme.com",
            "https://acme.com/path",
            "https://acme.com?q=1",
            "https://acme.com#x",
            "https://user@acme.com",
            "https://",
            "https://*",
            "https://a.*.acme.com",
            "https://acme.com:0",
            "https://acme.com:65536",
            "https://acme.com:08080",
            "https://acme..com",
            "https://-acme.com",
            "https://acme_x.com",
            "null",
            "*",
        ] {
            let r = create(json!({"tenant_id": "a", "allowed_origins": [bad]}));
            assert_eq!(field_of(r), "allowed_origins", "{bad}");
        }
        let too_many: Vec<String> = (0..51).map(|i| format!("https://s{i}.com")).collect();
        let r = create(json!({"tenant_id": "a", "allowed_origins": too_many}));
        assert_eq!(field_of(r), "allowed_origins");
        let r = create(json!({"tenant_id": "a", "allowed_origins": [5]}));
        assert_eq!(field_of(r), "allowed_origins");
    }

    #[test]
    fn unknown_fields_and_non_objects() {
        let e = create(json!({"tenant_id": "a", "status": "deleted"})).unwrap_err();
        assert_eq!(e, TenantError::UnknownField("status".into()));
        assert!(e.message().contains("'status'"));
        assert_eq!(create(json!([])), Err(TenantError::NotAnObject));
        let t = create(json!({"tenant_id": "a"})).unwrap();
        assert_eq!(
            validate_update(&t, &json!("x"), NOW),
            Err(TenantError::NotAnObject)
        );
        assert_eq!(
            validate_update(&t, &json!({"generation": 9}), NOW),
            Err(TenantError::UnknownField("generation".into()))
        );
    }

    #[test]
    fn update_changes_only_what_it_names() {
        let t = create(json!({"tenant_id": "acme", "display_name": "Acme", "allowed_origins": ["https://acme.com"]}))
            .unwrap();
        let u = validate_update(
            &t,
            &json!({"tenant_id": "acme", "plan": "pro", "retention_days": 90, "theme": {"theme": "dark"}}),
            NOW + 5,
        )
        .unwrap();
        assert_eq!(
            (u.plan, u.retention_days, u.updated_at),
            (Plan::Pro, 90, NOW + 5)
        );
        assert_eq!(u.display_name, "Acme");
        assert_eq!(u.allowed_origins, origins(&["https://acme.com"]));
        assert_eq!((u.created_at, u.generation), (NOW, 1));
        let u = validate_update(
            &t,
            &json!({"allowed_origins": [], "display_name": "A"}),
            NOW,
        )
        .unwrap();
        assert!(u.allowed_origins.is_empty());
        assert_eq!(u.display_name, "A");
    }

    #[test]
    fn update_keeps_what_is_fixed() {
        let t = create(json!({"tenant_id": "acme", "plan": "enterprise", "isolation": "silo", "database": "SILO_1"}))
            .unwrap();
        assert_eq!(
            validate_update(&t, &json!({"isolation": "pool"}), NOW),
            Err(TenantError::FixedAtCreation("isolation"))
        );
        assert_eq!(
            validate_update(&t, &json!({"database": "SILO_2"}), NOW),
            Err(TenantError::FixedAtCreation("database"))
        );
        assert!(TenantError::FixedAtCreation("database")
            .message()
            .contains("'database'"));
        assert_eq!(
            field_of(validate_update(&t, &json!({"tenant_id": "globex"}), NOW)),
            "tenant_id"
        );
        assert_eq!(
            field_of(validate_update(&t, &json!({"plan": "pro"}), NOW)),
            "plan"
        );
        assert_eq!(
            field_of(validate_update(&t, &json!({"retention_days": -1}), NOW)),
            "retention_days"
        );
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain_wildcard() {
        let allowed = origins(&[
            "https://acme.com",
            "https://*.acme.com",
            "http://localhost:8080",
        ]);
        let yes = [
            "https://acme.com",
            "HTTPS://ACME.COM",
            "https://acme.com/",
            "https://www.acme.com",
            "https://a.b.acme.com",
            "https://acme.com:443",
            "http://localhost:8080",
        ];
        for o in yes {
            assert!(origin_allowed(&allowed, Some(o)), "{o}");
        }
        let no = [
            "http://acme.com",           // scheme
            "https://acme.com:8443",     // port
            "https://www.acme.com:8443", // port on a wildcard
            "https://evilacme.com",      // not a subdomain
            "https://acme.com.evil.com", // suffix trick
            "https://.acme.com",         // empty label
            "http://localhost",          // port missing
            "http://localhost:8081",
            "null",
            "",
            "https://acme.com/path",
        ];
        for o in no {
            assert!(!origin_allowed(&allowed, Some(o)), "{o}");
        }
        // The apex is matched only by its own entry, never by `*.`.
        let wild_only = origins(&["https://*.acme.com"]);
        assert!(!origin_allowed(&wild_only, Some("https://acme.com")));
        assert!(origin_allowed(&wild_only, Some("https://app.acme.com")));
        // No list: any origin; no Origin header: a server-side sender.
        assert!(origin_allowed(&[], Some("https://anything.example")));
        assert!(origin_allowed(&[], Some("null")));
        assert!(origin_allowed(&allowed, None));
    }

    #[test]
    fn json_shape_and_statements() {
        let t =
            create(json!({"tenant_id": "acme", "allowed_origins": ["https://acme.com"]})).unwrap();
        let j = to_json(&t, Value::Null);
        assert_eq!(
            j,
            json!({"tenant_id": "acme", "display_name": "acme", "plan": "free",
                "allowed_origins": ["https://acme.com"], "isolation": "pool", "database": null,
                "retention_days": 395, "status": "active", "generation": 1,
                "created_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T10:00:00Z", "theme": null})
        );
        let up = upsert(&t);
        assert_eq!(up.sql.matches('?').count(), up.binds.len());
        assert_eq!(
            up.binds[3],
            SqlValue::Text(r#"["https://acme.com"]"#.into())
        );
        assert_eq!(up.binds[5], SqlValue::Null);
        let l = list(None, 10);
        assert_eq!(
            l.binds,
            vec![SqlValue::Text(String::new()), SqlValue::Int(10)]
        );
        assert_eq!(
            list(Some("acme"), 2).binds[0],
            SqlValue::Text("acme".into())
        );
    }

    #[test]
    fn rows_read_back_with_d1_numbers() {
        let t = create(json!({"tenant_id": "acme", "allowed_origins": ["https://*.acme.com"]}))
            .unwrap();
        let row = json!({"tenant_id": "acme", "display_name": "acme", "plan": "free",
            "allowed_origins": "[\"https://*.acme.com\"]", "isolation": "pool", "database": null,
            "retention_days": 395.0, "generation": 1, "status": "active",
            "created_at": NOW as f64, "updated_at": NOW});
        assert_eq!(from_row(row.as_object().unwrap()), Some(t));
        let mut bad = row.clone();
        bad["plan"] = json!("gold");
        assert_eq!(from_row(bad.as_object().unwrap()), None);
        let mut bad = row;
        bad["generation"] = json!(1.5);
        assert_eq!(from_row(bad.as_object().unwrap()), None);
    }
}
