//! Tenants: what the admin API creates, reads, updates and erases, and the rules around them.
//!
//! - [`validate`]: admin JSON bodies into a [`Tenant`], or a [`TenantError`] that names the field.
//! - [`registry`]: the bound SQL over `tenants` (`migrations/0004_tenant_operations.sql`), rows back into
//!   a [`Tenant`], and the API's tenant object.
//! - [`origins`]: origins and hostnames, the ingest check of a request's `Origin` against
//!   `allowed_origins`, and the dashboard's `frame-ancestors`.
//! - here: the types, and the lifecycle rules of erasure: it keeps a [`tombstone`] (status `deleted`,
//!   generation bumped) so caches keyed by generation go stale and the id can be re-created.

pub mod origins;
pub mod registry;
pub mod validate;

pub use origins::{frame_ancestors, is_valid_hostname, origin_allowed, with_frame_ancestors};
pub use registry::{
    from_row, list, list_all_active, list_every, select, to_json, unregistered, upsert,
};
pub use validate::{validate_create, validate_update};

use crate::claims::is_valid_tenant_id;

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

crate::named_enum! {
    /// A tenant's plan.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Plan {
        /// The default.
        Free => "free",
        /// Paid, pooled.
        Pro => "pro",
        /// Paid; the only plan that may be isolated in its own database.
        Enterprise => "enterprise",
    }
}

crate::named_enum! {
    /// Where a tenant's analytics live.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Isolation {
        /// The shared D1 database `DB` (the default).
        Pool => "pool",
        /// A D1 database of its own, named by the tenant's `database` binding.
        Silo => "silo",
    }
}

crate::named_enum! {
    /// Whether a tenant is live or erased.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Status {
        /// Accepts events and queries.
        Active => "active",
        /// Erased: a tombstone that keeps its tokens refused; the id may be created again.
        Deleted => "deleted",
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
pub type TenantError = crate::field_error::FieldError;

/// What a tenant body may have, for [`TenantError::UnknownField`].
pub(crate) fn allowed_fields() -> String {
    format!("a tenant body may have {}", CREATE_FIELDS.join(", "))
}

/// What a tenant body must be, for [`TenantError::NotAnObject`].
pub(crate) fn not_an_object() -> TenantError {
    TenantError::not_an_object(format!(
        "the body must be a JSON object with some of: {}",
        CREATE_FIELDS.join(", ")
    ))
}

/// How long (seconds) re-creating the erased tenant `tombstone` must wait at `now_secs` so that every
/// isolate's cached view of the old generation (kept at most `cache_secs`) has expired: until one second
/// past `updated_at + cache_secs`. Then the id is erased once more and goes live, so a batch that a
/// consumer with a stale cache applied in between is erased too, and later batches meet the tombstone
/// or the new generation.
pub fn recreation_wait_secs(tombstone: &Tenant, now_secs: i64, cache_secs: i64) -> i64 {
    (tombstone.updated_at + cache_secs + 1 - now_secs).clamp(0, cache_secs + 1)
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
    use crate::sql::SqlValue;
    use serde_json::{json, Value};

    const NOW: i64 = 1_795_428_000; // 2026-11-23T10:00:00Z

    fn create(v: Value) -> Result<Tenant, TenantError> {
        validate_create(&v, None, NOW)
    }

    fn field_of(r: Result<Tenant, TenantError>) -> String {
        match r.unwrap_err() {
            TenantError::Invalid { field, .. } => field,
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
        assert_eq!(e.field(), Some("status"));
        assert!(matches!(e, TenantError::UnknownField { .. }));
        assert!(e.message().contains("'status'"));
        assert_eq!(create(json!([])), Err(not_an_object()));
        let t = create(json!({"tenant_id": "a"})).unwrap();
        assert_eq!(validate_update(&t, &json!("x"), NOW), Err(not_an_object()));
        assert_eq!(
            validate_update(&t, &json!({"generation": 9}), NOW),
            Err(TenantError::unknown("generation", allowed_fields()))
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
