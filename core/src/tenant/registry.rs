//! The bound SQL over `tenants` (`migrations/0004_tenant_operations.sql`), rows back into a [`Tenant`],
//! and the API's tenant object.

use serde_json::{json, Map, Value};

use super::*;
use crate::sql::{int, SqlValue, Statement};
use crate::time::rfc3339;

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
