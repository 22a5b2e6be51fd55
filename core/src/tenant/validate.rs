//! Admin JSON bodies into a [`Tenant`]: unknown fields refused, every field checked, errors name it.

use serde_json::{Map, Value};

use super::origins::normalize_origin;
use super::*;

/// Validates a create body. `theme` is accepted as a known field and ignored here (the caller validates
/// it with `settings::validate`). The tenant starts at generation 1, or at `previous.generation + 1` when
/// `previous` (the erased tenant with this id) is given; status active, created and updated `now_secs`.
pub fn validate_create(
    json: &Value,
    previous: Option<&Tenant>,
    now_secs: i64,
) -> Result<Tenant, TenantError> {
    let obj = json.as_object().ok_or_else(not_an_object)?;
    reject_unknown(obj, &CREATE_FIELDS)?;
    let tenant_id = match obj.get("tenant_id") {
        Some(Value::String(s)) if is_valid_tenant_id(s) => s.clone(),
        _ => {
            return Err(TenantError::invalid(
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
            .ok_or_else(|| TenantError::invalid("isolation", "expected \"pool\" or \"silo\""))?,
    };
    let database = match present(obj, "database") {
        None => None,
        Some(Value::String(s)) if valid_binding(s) => Some(s.clone()),
        Some(_) => {
            return Err(TenantError::invalid(
                "database",
                "expected a D1 binding name: an uppercase letter, then up to 62 of A-Z 0-9 _",
            ))
        }
    };
    match (isolation, &database) {
        (Isolation::Silo, None) => {
            return Err(TenantError::invalid(
                "database",
                "a silo tenant needs the D1 binding of its own database",
            ))
        }
        (Isolation::Silo, Some(_)) if plan != Plan::Enterprise => {
            return Err(TenantError::invalid(
                "isolation",
                "\"silo\" needs plan \"enterprise\"",
            ))
        }
        (Isolation::Pool, Some(_)) => {
            return Err(TenantError::invalid(
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
    let obj = json.as_object().ok_or_else(not_an_object)?;
    for fixed in ["isolation", "database"] {
        if obj.contains_key(fixed) {
            return Err(TenantError::FixedAtCreation(fixed));
        }
    }
    if let Some(id) = obj.get("tenant_id") {
        if id.as_str() != Some(existing.tenant_id.as_str()) {
            return Err(TenantError::invalid(
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
        return Err(TenantError::invalid(
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
        Some(k) => Err(TenantError::unknown(k, allowed_fields())),
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
        _ => Err(TenantError::invalid(
            "display_name",
            "expected 1 to 100 characters, no control characters",
        )),
    }
}

fn plan(obj: &Map<String, Value>) -> Result<Option<Plan>, TenantError> {
    present(obj, "plan")
        .map(|v| {
            v.as_str().and_then(Plan::parse).ok_or_else(|| {
                TenantError::invalid("plan", "expected \"free\", \"pro\" or \"enterprise\"")
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
                    TenantError::invalid(
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
            TenantError::invalid(
                "allowed_origins",
                "expected an array of at most 50 origins ([] allows any origin)",
            )
        })?;
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        let origin = item.as_str().and_then(normalize_origin).ok_or_else(|| {
            TenantError::invalid(
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
