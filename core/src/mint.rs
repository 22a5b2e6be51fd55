//! Minting tokens through the admin API: HS256 JWTs in Tinybird's shape, signed with `SIGNING_KEY`, so
//! [`crate::token::verify`] accepts them like any Tinybird token (issue #6).
//!
//! [`validate`] turns an admin body into a [`MintRequest`]; [`scopes`] is the `scopes` claim it grants
//! (always bound to the tenant in the URL, never to anything in the body); [`sign`] makes the JWT with the
//! token id as `jti`. The JWT itself is returned once and never stored: [`record`] stores its metadata in
//! `tokens`, and [`revoke`] / [`revoked_ids`] let the edge refuse a revoked `jti`.

use chrono::DateTime;
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims as JwtClaims, Header};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::claims::{APPEND, READ};
use crate::sql::int;
use crate::sql::{SqlValue, Statement};
use crate::tenant::is_valid_hostname;
use crate::time::rfc3339;
use crate::token::LEEWAY_SECS;

/// The data source tracker tokens append to.
pub const DATASOURCE: &str = "analytics_events";
/// The `workspace_id` claim of minted tokens.
pub const WORKSPACE_ID: &str = "starling";
/// Shortest `expires_in`, in seconds.
pub const MIN_EXPIRES_IN: i64 = 60;
/// Longest `expires_in`, in seconds (10 years).
pub const MAX_EXPIRES_IN: i64 = 315_360_000;
/// Default lifetime of a tracker token (it sits in public pages: rotate yearly).
pub const TRACKER_DEFAULT_EXPIRES_IN: i64 = 365 * 86_400;
/// Default lifetime of a read token (meant to be minted per dashboard session).
pub const READ_DEFAULT_EXPIRES_IN: i64 = 86_400;
/// Highest `rps`.
pub const MAX_RPS: u32 = 10_000;
/// Most entries in `pipes`.
pub const MAX_PIPES: usize = 50;
/// The fields a mint body may have.
pub const FIELDS: [&str; 6] = ["name", "kind", "pipes", "domain", "expires_in", "rps"];

crate::named_enum! {
    /// What a token is for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum TokenKind {
        /// `DATASOURCES:APPEND` on `analytics_events`: embedded in the tracker.
        Tracker => "tracker",
        /// `PIPES:READ` on some pipes: for dashboards.
        Read => "read",
        /// `SETTINGS:READ` and `SETTINGS:WRITE`: the tenant manages its own goals (`/v0/goals`).
        Settings => "settings",
    }
}

/// A validated mint request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The tenant in the URL: every scope binds it.
    pub tenant_id: String,
    /// The token's `name` (1 to 100 of `A-Z a-z 0-9 _ - .` and space).
    pub name: String,
    /// Tracker or read.
    pub kind: TokenKind,
    /// Pipe names or globs a read token may read (`["*"]` by default); empty for a tracker token.
    pub pipes: Vec<String>,
    /// Fixes `domain` on the tenant's events (tracker) or queries (read), lowercase.
    pub domain: Option<String>,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// `limits.rps`.
    pub rps: Option<u32>,
}

/// Why a mint body was rejected (400).
pub type MintError = crate::field_error::FieldError;

fn allowed_fields() -> String {
    format!("a token body may have {}", FIELDS.join(", "))
}

fn not_an_object() -> MintError {
    MintError::not_an_object(format!(
        "the body must be a JSON object with name and kind, and optionally {}",
        FIELDS[2..].join(", ")
    ))
}

/// Validates a mint body for `tenant_id` (from the URL, already known to exist) at `now_secs`.
pub fn validate(tenant_id: &str, json: &Value, now_secs: i64) -> Result<MintRequest, MintError> {
    let obj = json.as_object().ok_or_else(not_an_object)?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(MintError::unknown(k, allowed_fields()));
    }
    let present = |f: &str| obj.get(f).filter(|v| !v.is_null());
    let name = match present("name").and_then(Value::as_str) {
        Some(s) if valid_name(s) => s.to_owned(),
        _ => {
            return Err(MintError::invalid(
                "name",
                "required: 1 to 100 of A-Z a-z 0-9 _ - . and space",
            ))
        }
    };
    let kind = present("kind")
        .and_then(Value::as_str)
        .and_then(TokenKind::parse)
        .ok_or_else(|| {
            MintError::invalid("kind", "required: \"tracker\", \"read\" or \"settings\"")
        })?;
    let pipes = match (kind, present("pipes")) {
        (TokenKind::Tracker | TokenKind::Settings, None) => Vec::new(),
        (TokenKind::Tracker | TokenKind::Settings, Some(_)) => {
            return Err(MintError::invalid(
                "pipes",
                "only read tokens name pipes: leave it out of a tracker or settings token",
            ))
        }
        (TokenKind::Read, None) => vec!["*".to_owned()],
        (TokenKind::Read, Some(v)) => pipes(v)?,
    };
    let domain = present("domain")
        .map(|v| {
            v.as_str()
                .map(str::to_ascii_lowercase)
                .filter(|d| is_valid_hostname(d))
                .ok_or_else(|| {
                    MintError::invalid("domain", "expected a hostname such as www.acme.com")
                })
        })
        .transpose()?;
    let expires_in = match present("expires_in") {
        None if kind == TokenKind::Tracker => TRACKER_DEFAULT_EXPIRES_IN,
        None => READ_DEFAULT_EXPIRES_IN,
        Some(v) => v
            .as_i64()
            .filter(|s| (MIN_EXPIRES_IN..=MAX_EXPIRES_IN).contains(s))
            .ok_or_else(|| {
                MintError::invalid(
                    "expires_in",
                    "expected whole seconds from 60 to 315360000 (10 years)",
                )
            })?,
    };
    let rps = present("rps")
        .map(|v| {
            v.as_u64()
                .filter(|r| (1..=u64::from(MAX_RPS)).contains(r))
                .map(|r| r as u32)
                .ok_or_else(|| MintError::invalid("rps", "expected a whole number from 1 to 10000"))
        })
        .transpose()?;
    Ok(MintRequest {
        tenant_id: tenant_id.to_owned(),
        name,
        kind,
        pipes,
        domain,
        expires_at: now_secs.saturating_add(expires_in),
        rps,
    })
}

fn valid_name(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-. ".contains(&b))
}

fn pipes(v: &Value) -> Result<Vec<String>, MintError> {
    let err = || {
        MintError::invalid(
            "pipes",
            "expected 1 to 50 pipe names or globs, each 1 to 64 of A-Z a-z 0-9 _ * ?",
        )
    };
    let list = v
        .as_array()
        .filter(|a| (1..=MAX_PIPES).contains(&a.len()))
        .ok_or_else(err)?;
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        let p = item
            .as_str()
            .filter(|p| {
                (1..=64).contains(&p.len())
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_*?".contains(&b))
            })
            .ok_or_else(err)?;
        if !out.iter().any(|o| o == p) {
            out.push(p.to_owned());
        }
    }
    Ok(out)
}

/// The `scopes` claim: a tracker token appends to [`DATASOURCE`]; a read token reads each of its pipes.
/// Every scope fixes `tenant_id` (and `domain` when the request names one).
pub fn scopes(req: &MintRequest) -> Value {
    let mut fixed = Map::new();
    fixed.insert("tenant_id".into(), json!(req.tenant_id));
    if let Some(d) = &req.domain {
        fixed.insert("domain".into(), json!(d));
    }
    let scope = |kind: &str, resource: &str| json!({"type": kind, "resource": resource, "fixed_params": fixed.clone()});
    match req.kind {
        TokenKind::Tracker => json!([scope(APPEND, DATASOURCE)]),
        TokenKind::Read => req.pipes.iter().map(|p| scope(READ, p)).collect(),
        TokenKind::Settings => json!([
            scope(crate::claims::SETTINGS_READ, "*"),
            scope(crate::claims::SETTINGS_WRITE, "*")
        ]),
    }
}

#[derive(Serialize)]
struct Payload<'a> {
    workspace_id: &'static str,
    name: &'a str,
    jti: &'a str,
    scopes: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<Limits>,
}

#[derive(Serialize)]
struct Limits {
    rps: u32,
}

/// Signs the token: HS256 keyed with `secret` (the UTF-8 bytes of `SIGNING_KEY`), header
/// `{"alg":"HS256","typ":"JWT"}`, payload `{"workspace_id","name","jti","scopes","exp","iat"}` and
/// `limits.rps` when set.
pub fn sign(req: &MintRequest, token_id: &str, now_secs: i64, secret: &[u8]) -> String {
    let mut claims = JwtClaims::new(Payload {
        workspace_id: WORKSPACE_ID,
        name: &req.name,
        jti: token_id,
        scopes: scopes(req),
        limits: req.rps.map(|rps| Limits { rps }),
    });
    claims.expiration = DateTime::from_timestamp(req.expires_at, 0);
    claims.issued_at = DateTime::from_timestamp(now_secs, 0);
    Hs256
        .token(
            &Header::empty().with_token_type("JWT"),
            &claims,
            &Hs256Key::new(secret),
        )
        .expect("a JSON payload always serializes")
}

const COLUMNS: &str =
    "token_id, tenant_id, name, kind, scopes, rps, created_at, expires_at, revoked_at";

/// Stores the metadata of a minted token (never the JWT).
pub fn record(req: &MintRequest, token_id: &str, now_secs: i64) -> Statement {
    Statement::new(
        format!("INSERT INTO tokens ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)"),
        vec![
            token_id.into(),
            req.tenant_id.as_str().into(),
            req.name.as_str().into(),
            req.kind.as_str().into(),
            scopes(req).to_string().into(),
            req.rps.map_or(SqlValue::Null, |r| i64::from(r).into()),
            now_secs.into(),
            req.expires_at.into(),
        ],
    )
}

/// The tenant's tokens, newest first.
pub fn list(tenant_id: &str) -> Statement {
    Statement::new(
        format!(
            "SELECT {COLUMNS} FROM tokens WHERE tenant_id = ? ORDER BY created_at DESC, token_id"
        ),
        vec![tenant_id.into()],
    )
}

/// One token of the tenant (none when the id belongs to another tenant).
pub fn select(tenant_id: &str, token_id: &str) -> Statement {
    Statement::new(
        format!("SELECT {COLUMNS} FROM tokens WHERE tenant_id = ? AND token_id = ?"),
        vec![tenant_id.into(), token_id.into()],
    )
}

/// Revokes one of the tenant's tokens at `now_secs`; a token already revoked keeps its first time, and
/// another tenant's token id changes nothing.
pub fn revoke(tenant_id: &str, token_id: &str, now_secs: i64) -> Statement {
    Statement::new(
        "UPDATE tokens SET revoked_at = ? WHERE tenant_id = ? AND token_id = ? AND revoked_at IS NULL",
        vec![now_secs.into(), tenant_id.into(), token_id.into()],
    )
}

/// Revokes every token of the tenant (erasure).
pub fn revoke_all(tenant_id: &str, now_secs: i64) -> Statement {
    Statement::new(
        "UPDATE tokens SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL",
        vec![now_secs.into(), tenant_id.into()],
    )
}

/// Ids of the tenant's revoked tokens that would still verify (not expired, within the leeway), for
/// the edge's revocation set.
pub fn revoked_ids(tenant_id: &str, now_secs: i64) -> Statement {
    Statement::new(
        "SELECT token_id FROM tokens WHERE tenant_id = ? AND revoked_at IS NOT NULL AND expires_at >= ? \
         ORDER BY token_id",
        vec![tenant_id.into(), now_secs.saturating_sub(LEEWAY_SECS).into()],
    )
}

/// A token's metadata from a row of [`list`] or [`select`]: `{"token_id", "tenant_id", "name", "kind",
/// "scopes", "rps", "created_at", "expires_at", "revoked_at"}`, times in RFC 3339, `null` when unset.
pub fn metadata_json(row: &Map<String, Value>) -> Value {
    let time = |c: &str| int(row.get(c)).map(rfc3339);
    let scopes = row
        .get("scopes")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .unwrap_or(Value::Null);
    json!({
        "token_id": row.get("token_id").cloned().unwrap_or(Value::Null),
        "tenant_id": row.get("tenant_id").cloned().unwrap_or(Value::Null),
        "name": row.get("name").cloned().unwrap_or(Value::Null),
        "kind": row.get("kind").cloned().unwrap_or(Value::Null),
        "scopes": scopes,
        "rps": int(row.get("rps")),
        "created_at": time("created_at"),
        "expires_at": time("expires_at"),
        "revoked_at": time("revoked_at"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{authorize_append, authorize_read};
    use crate::token::{header, verify, Alg};

    const NOW: i64 = 1_795_428_000;
    const KEY: &[u8] = b"test-signing-key";

    fn mint(v: Value) -> Result<MintRequest, MintError> {
        validate("acme", &v, NOW)
    }

    fn field_of(v: Value) -> String {
        match mint(v).unwrap_err() {
            MintError::Invalid { field, .. } => field,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn defaults_per_kind() {
        let t = mint(json!({"name": "site tracker", "kind": "tracker"})).unwrap();
        assert_eq!(
            t,
            MintRequest {
                tenant_id: "acme".into(),
                name: "site tracker".into(),
                kind: TokenKind::Tracker,
                pipes: vec![],
                domain: None,
                expires_at: NOW + 365 * 86_400,
                rps: None,
            }
        );
        let r = mint(json!({"name": "dash", "kind": "read"})).unwrap();
        assert_eq!(
            (r.pipes, r.expires_at),
            (vec!["*".to_owned()], NOW + 86_400)
        );
        let r = mint(
            json!({"name": "d", "kind": "read", "pipes": ["top_*", "kpis", "kpis"],
            "domain": "WWW.Acme.com", "expires_in": 60, "rps": 10000}),
        )
        .unwrap();
        assert_eq!(r.pipes, vec!["top_*", "kpis"]);
        assert_eq!(r.domain.as_deref(), Some("www.acme.com"));
        assert_eq!((r.expires_at, r.rps), (NOW + 60, Some(10_000)));
        assert!(mint(json!({"name": "x", "kind": "tracker", "pipes": null, "rps": null})).is_ok());
    }

    #[test]
    fn rejects_each_bad_field_by_name() {
        let cases = [
            (json!({"kind": "read"}), "name"),
            (json!({"name": "", "kind": "read"}), "name"),
            (json!({"name": "a/b", "kind": "read"}), "name"),
            (json!({"name": "x".repeat(101), "kind": "read"}), "name"),
            (json!({"name": "n"}), "kind"),
            (json!({"name": "n", "kind": "admin"}), "kind"),
            (
                json!({"name": "n", "kind": "tracker", "pipes": ["*"]}),
                "pipes",
            ),
            (json!({"name": "n", "kind": "read", "pipes": []}), "pipes"),
            (json!({"name": "n", "kind": "read", "pipes": "*"}), "pipes"),
            (
                json!({"name": "n", "kind": "read", "pipes": ["a-b"]}),
                "pipes",
            ),
            (
                json!({"name": "n", "kind": "read", "pipes": ["x".repeat(65)]}),
                "pipes",
            ),
            (
                json!({"name": "n", "kind": "read", "pipes": vec!["p"; 51]}),
                "pipes",
            ),
            (
                json!({"name": "n", "kind": "read", "domain": "https://acme.com"}),
                "domain",
            ),
            (
                json!({"name": "n", "kind": "read", "domain": "acme..com"}),
                "domain",
            ),
            (
                json!({"name": "n", "kind": "read", "domain": format!("{}.com", "a".repeat(64))}),
                "domain",
            ),
            (
                json!({"name": "n", "kind": "read", "expires_in": 59}),
                "expires_in",
            ),
            (
                json!({"name": "n", "kind": "read", "expires_in": 315_360_001}),
                "expires_in",
            ),
            (
                json!({"name": "n", "kind": "read", "expires_in": "3600"}),
                "expires_in",
            ),
            (json!({"name": "n", "kind": "read", "rps": 0}), "rps"),
            (json!({"name": "n", "kind": "read", "rps": 10_001}), "rps"),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body.clone()), field, "{body}");
        }
        assert_eq!(
            mint(json!({"name": "n", "kind": "read", "tenant_id": "globex"})),
            Err(MintError::unknown("tenant_id", allowed_fields()))
        );
        assert_eq!(mint(json!(null)), Err(not_an_object()));
        let e = mint(json!({"name": "n", "kind": "read", "rps": 0})).unwrap_err();
        assert!(e.message().contains("'rps'"), "{}", e.message());
    }

    #[test]
    fn scopes_bind_the_tenant_and_domain() {
        let t = mint(json!({"name": "t", "kind": "tracker", "domain": "acme.com"})).unwrap();
        assert_eq!(
            scopes(&t),
            json!([{"type": "DATASOURCES:APPEND", "resource": "analytics_events",
                "fixed_params": {"tenant_id": "acme", "domain": "acme.com"}}])
        );
        let r = mint(json!({"name": "r", "kind": "read", "pipes": ["kpis", "top_*"]})).unwrap();
        assert_eq!(
            scopes(&r),
            json!([
                {"type": "PIPES:READ", "resource": "kpis", "fixed_params": {"tenant_id": "acme"}},
                {"type": "PIPES:READ", "resource": "top_*", "fixed_params": {"tenant_id": "acme"}}
            ])
        );
    }

    #[test]
    fn a_minted_token_verifies_as_a_tinybird_token() {
        let r = mint(json!({"name": "dash", "kind": "read", "pipes": ["top_*"], "rps": 7, "expires_in": 3600}))
            .unwrap();
        let jwt = sign(&r, "tok_1", NOW, KEY);
        assert_eq!(header(&jwt).unwrap().alg, Alg::Hs256);
        let head: Value = {
            use base64ct::{Base64UrlUnpadded, Encoding};
            let raw = Base64UrlUnpadded::decode_vec(jwt.split('.').next().unwrap()).unwrap();
            serde_json::from_slice(&raw).unwrap()
        };
        assert_eq!(head, json!({"alg": "HS256", "typ": "JWT"}));
        let c = verify(&jwt, KEY, NOW).unwrap();
        assert_eq!(c.token_id.as_deref(), Some("tok_1"));
        assert_eq!(c.issued_at, Some(NOW));
        assert_eq!(c.workspace_id.as_deref(), Some("starling"));
        assert_eq!(c.name.as_deref(), Some("dash"));
        assert_eq!((c.exp, c.rps), (NOW + 3600, Some(7)));
        assert_eq!(
            authorize_read(&c, "top_pages").unwrap().tenant.as_str(),
            "acme"
        );
        assert!(authorize_read(&c, "kpis").is_err());
        assert!(authorize_append(&c, DATASOURCE).is_err());
        assert!(verify(&jwt, b"another-key", NOW).is_err());
        assert!(verify(&jwt, KEY, NOW + 3600 + LEEWAY_SECS + 1).is_err());

        let t = mint(json!({"name": "site", "kind": "tracker", "domain": "acme.com"})).unwrap();
        let c = verify(&sign(&t, "tok_2", NOW, KEY), KEY, NOW).unwrap();
        assert_eq!(c.rps, None);
        let g = authorize_append(&c, DATASOURCE).unwrap();
        assert_eq!(
            (g.tenant.as_str(), g.fixed["domain"].as_str()),
            ("acme", "acme.com")
        );
    }

    #[test]
    fn statements_and_metadata() {
        let r = mint(json!({"name": "dash", "kind": "read", "rps": 5})).unwrap();
        let rec = record(&r, "tok_1", NOW);
        assert_eq!(rec.sql.matches('?').count(), rec.binds.len());
        assert_eq!(rec.binds[5], SqlValue::Int(5));
        let rv = revoke("acme", "tok_1", NOW);
        assert_eq!(rv.binds.len(), 3);
        assert!(rv.sql.contains("tenant_id = ?") && rv.sql.contains("revoked_at IS NULL"));
        assert_eq!(
            revoked_ids("acme", NOW).binds[1],
            SqlValue::Int(NOW - LEEWAY_SECS)
        );
        let row = json!({"token_id": "tok_1", "tenant_id": "acme", "name": "dash", "kind": "read",
            "scopes": scopes(&r).to_string(), "rps": 5.0, "created_at": NOW, "expires_at": NOW + 86_400,
            "revoked_at": null});
        assert_eq!(
            metadata_json(row.as_object().unwrap()),
            json!({"token_id": "tok_1", "tenant_id": "acme", "name": "dash", "kind": "read",
                "scopes": scopes(&r), "rps": 5, "created_at": "2026-11-23T10:00:00Z",
                "expires_at": "2026-11-24T10:00:00Z", "revoked_at": null})
        );
    }
}
