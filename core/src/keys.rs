//! Tenant-held Ed25519 keys: a tenant's own backend signs read JWTs (EdDSA, header `kid` = `key_id`) and
//! registers only the public key, so Starling never holds a secret that can mint for that tenant
//! (issue #6).
//!
//! [`validate`] accepts the public key as base64url / base64 of its 32 bytes or as a public JWK and
//! stores it normalized (base64url, no padding); [`decode`] gives the bytes back to
//! [`crate::token::verify_eddsa`]. The statements are bound SQL over `tenant_keys`. Whatever such a token
//! claims, [`crate::claims::confine_to_key_tenant`] keeps it to reading the key's own tenant.

use base64ct::{Base64, Base64Unpadded, Base64Url, Base64UrlUnpadded, Encoding};
use jwt_compact::alg::{Ed25519, VerifyingKey};
use jwt_compact::Algorithm;
use serde_json::{json, Map, Value};

use crate::sql::int;
use crate::sql::Statement;
use crate::time::rfc3339;

/// The fields a key body may have.
pub const FIELDS: [&str; 1] = ["public_key"];

/// Why a key body was rejected (400).
pub type KeyError = crate::field_error::FieldError;

fn public_key_error(message: impl Into<String>) -> KeyError {
    KeyError::invalid("public_key", message)
}

fn not_an_object() -> KeyError {
    KeyError::not_an_object(
        "the body must be a JSON object: {\"public_key\": base64url of the 32-byte Ed25519 public key, \
         or a JWK {\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":...}}",
    )
}

const RAW_KEY: &str = "expected the 32-byte Ed25519 public key as base64url (or base64), \
                       or a JWK {\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":...}";

/// Validates a key body and returns the public key normalized to base64url without padding.
/// Refuses other lengths and curves, keys that are not valid Ed25519 points (or have a small order),
/// and private JWKs (with `d`): the private key never leaves the tenant.
pub fn validate(json: &Value) -> Result<String, KeyError> {
    let obj = json.as_object().ok_or_else(not_an_object)?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(KeyError::unknown(k, "a key body has only public_key"));
    }
    let bytes = match obj.get("public_key") {
        Some(Value::String(s)) => decode_any(s.trim()).ok_or_else(|| public_key_error(RAW_KEY))?,
        Some(Value::Object(jwk)) => from_jwk(jwk)?,
        _ => return Err(public_key_error(format!("required: {RAW_KEY}"))),
    };
    let key = <<Ed25519 as Algorithm>::VerifyingKey as VerifyingKey<Ed25519>>::from_slice(&bytes)
        .map_err(|_| public_key_error(RAW_KEY))?;
    key.validate().map_err(|_| {
        public_key_error("not a usable Ed25519 public key (not a curve point, or a weak one)")
    })?;
    Ok(Base64UrlUnpadded::encode_string(&bytes))
}

fn from_jwk(jwk: &Map<String, Value>) -> Result<[u8; 32], KeyError> {
    if jwk.contains_key("d") {
        return Err(public_key_error(
            "this JWK holds the private key ('d'): never send the private key; send only kty, crv and x",
        ));
    }
    let text = |k: &str| jwk.get(k).and_then(Value::as_str);
    if text("kty") != Some("OKP") || text("crv") != Some("Ed25519") {
        return Err(public_key_error(
            "expected an Ed25519 JWK: \"kty\":\"OKP\", \"crv\":\"Ed25519\"",
        ));
    }
    if jwk.get("alg").is_some_and(|a| a.as_str() != Some("EdDSA")) {
        return Err(public_key_error("the JWK's alg must be \"EdDSA\""));
    }
    text("x")
        .and_then(decode)
        .ok_or_else(|| public_key_error("the JWK's x must be base64url of 32 bytes"))
}

/// Base64url or standard base64, padded or not.
fn decode_any(s: &str) -> Option<[u8; 32]> {
    let bytes = Base64UrlUnpadded::decode_vec(s)
        .or_else(|_| Base64Url::decode_vec(s))
        .or_else(|_| Base64Unpadded::decode_vec(s))
        .or_else(|_| Base64::decode_vec(s))
        .ok()?;
    bytes.try_into().ok()
}

/// The 32 bytes of a stored public key (base64url without padding), `None` when it is not one.
pub fn decode(public_key_b64url: &str) -> Option<[u8; 32]> {
    Base64UrlUnpadded::decode_vec(public_key_b64url)
        .ok()?
        .try_into()
        .ok()
}

const COLUMNS: &str = "key_id, tenant_id, public_key, created_at, revoked_at";

/// Registers a tenant key (the caller makes `key_id`, the `kid` tokens name).
pub fn insert(tenant_id: &str, key_id: &str, public_key: &str, now_secs: i64) -> Statement {
    Statement::new(
        format!("INSERT INTO tenant_keys ({COLUMNS}) VALUES (?, ?, ?, ?, NULL)"),
        vec![
            key_id.into(),
            tenant_id.into(),
            public_key.into(),
            now_secs.into(),
        ],
    )
}

/// The tenant's keys, newest first.
pub fn list(tenant_id: &str) -> Statement {
    Statement::new(
        format!(
            "SELECT {COLUMNS} FROM tenant_keys WHERE tenant_id = ? ORDER BY created_at DESC, key_id"
        ),
        vec![tenant_id.into()],
    )
}

/// One key of the tenant (none when the id belongs to another tenant).
pub fn select(tenant_id: &str, key_id: &str) -> Statement {
    Statement::new(
        format!("SELECT {COLUMNS} FROM tenant_keys WHERE tenant_id = ? AND key_id = ?"),
        vec![tenant_id.into(), key_id.into()],
    )
}

/// Revokes one of the tenant's keys at `now_secs` (the first revocation time is kept; another tenant's
/// key id changes nothing).
pub fn revoke(tenant_id: &str, key_id: &str, now_secs: i64) -> Statement {
    Statement::new(
        "UPDATE tenant_keys SET revoked_at = ? WHERE tenant_id = ? AND key_id = ? AND revoked_at IS NULL",
        vec![now_secs.into(), tenant_id.into(), key_id.into()],
    )
}

/// Revokes every key of the tenant (erasure).
pub fn revoke_all(tenant_id: &str, now_secs: i64) -> Statement {
    Statement::new(
        "UPDATE tenant_keys SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL",
        vec![now_secs.into(), tenant_id.into()],
    )
}

/// Length of a key id: the admin API makes them as 32 lower-case hex characters (128 random bits).
pub const KEY_ID_LEN: usize = 32;

/// Whether `kid` has the shape of a key id this deployment issues (32 lower-case hex characters). A
/// token's `kid` of any other shape is refused before any lookup, so a random or oversized `kid` costs
/// nothing.
pub fn is_key_id(kid: &str) -> bool {
    kid.len() == KEY_ID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `key_id, tenant_id, public_key` of every unrevoked key: the edge keeps them all for a few seconds, so
/// an unknown `kid` is answered from memory instead of with a database query per distinct value.
pub fn select_all_active() -> Statement {
    Statement::new(
        "SELECT key_id, tenant_id, public_key FROM tenant_keys WHERE revoked_at IS NULL ORDER BY key_id",
        vec![],
    )
}

/// `tenant_id, public_key` of the unrevoked key named `key_id` (a token's `kid`), if any.
pub fn select_active(key_id: &str) -> Statement {
    Statement::new(
        "SELECT tenant_id, public_key FROM tenant_keys WHERE key_id = ? AND revoked_at IS NULL",
        vec![key_id.into()],
    )
}

/// A key from a row of [`list`] or [`select`]: `{"key_id", "tenant_id", "public_key", "created_at",
/// "revoked_at"}`, times in RFC 3339, `revoked_at` `null` while active.
pub fn to_json(row: &Map<String, Value>) -> Value {
    let field = |c: &str| row.get(c).cloned().unwrap_or(Value::Null);
    json!({
        "key_id": field("key_id"),
        "tenant_id": field("tenant_id"),
        "public_key": field("public_key"),
        "created_at": int(row.get("created_at")).map(rfc3339),
        "revoked_at": int(row.get("revoked_at")).map(rfc3339),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_issued_key_id_shapes_are_looked_up() {
        assert!(is_key_id("0123456789abcdef0123456789abcdef"));
        for kid in [
            "",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdeg",
            "../../0123456789abcdef0123456789ab",
            &"a".repeat(5000),
        ] {
            assert!(!is_key_id(kid), "{kid}");
        }
    }

    fn public(seed: u8) -> [u8; 32] {
        *ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([seed; 32])).pk
    }

    fn field_err(v: Value) -> String {
        match validate(&v).unwrap_err() {
            KeyError::Invalid { message, .. } => message,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn every_encoding_normalizes_to_base64url() {
        let pk = public(3);
        let want = Base64UrlUnpadded::encode_string(&pk);
        for s in [
            want.clone(),
            Base64Url::encode_string(&pk),
            Base64::encode_string(&pk),
            Base64Unpadded::encode_string(&pk),
            format!(" {want}\n"),
        ] {
            assert_eq!(
                validate(&json!({ "public_key": s })),
                Ok(want.clone()),
                "{s}"
            );
        }
        let jwk = json!({"public_key": {"kty": "OKP", "crv": "Ed25519", "x": want, "kid": "k1", "use": "sig", "alg": "EdDSA"}});
        assert_eq!(validate(&jwk), Ok(want.clone()));
        assert_eq!(decode(&want), Some(pk));
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode(&Base64UrlUnpadded::encode_string(&[1; 31])), None);
    }

    #[test]
    fn refuses_what_is_not_an_ed25519_public_key() {
        let x = Base64UrlUnpadded::encode_string(&public(3));
        for bad in [
            json!({"public_key": Base64UrlUnpadded::encode_string(&[7; 31])}),
            json!({"public_key": Base64UrlUnpadded::encode_string(&[7; 33])}),
            json!({"public_key": Base64UrlUnpadded::encode_string(&[7; 64])}),
            json!({"public_key": "%%%"}),
            json!({"public_key": 5}),
            json!({}),
            json!({"public_key": {"kty": "EC", "crv": "P-256", "x": x, "y": x}}),
            json!({"public_key": {"kty": "OKP", "crv": "X25519", "x": x}}),
            json!({"public_key": {"kty": "OKP", "crv": "Ed25519"}}),
            json!({"public_key": {"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "ES256"}}),
        ] {
            assert!(
                matches!(validate(&bad), Err(KeyError::Invalid { ref field, .. }) if field == "public_key"),
                "{bad}"
            );
        }
        // The identity point has a small order: it would verify forged signatures.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let msg = field_err(json!({"public_key": Base64UrlUnpadded::encode_string(&identity)}));
        assert!(msg.contains("weak"), "{msg}");
        let msg =
            field_err(json!({"public_key": {"kty": "OKP", "crv": "Ed25519", "x": x, "d": x}}));
        assert!(msg.contains("never send the private key"), "{msg}");
        assert_eq!(
            validate(&json!({"public_key": x, "tenant_id": "globex"})),
            Err(KeyError::unknown(
                "tenant_id",
                "a key body has only public_key"
            ))
        );
        assert_eq!(validate(&json!([x])), Err(not_an_object()));
    }

    #[test]
    fn statements_and_json() {
        let s = insert("acme", "key_1", "abc", 100);
        assert_eq!(s.sql.matches('?').count(), s.binds.len());
        let r = revoke("acme", "key_1", 200);
        assert!(r.sql.contains("tenant_id = ?") && r.sql.contains("revoked_at IS NULL"));
        assert!(select_active("key_1").sql.contains("revoked_at IS NULL"));
        let row = json!({"key_id": "key_1", "tenant_id": "acme", "public_key": "abc",
            "created_at": 1_795_428_000.0, "revoked_at": null});
        assert_eq!(
            to_json(row.as_object().unwrap()),
            json!({"key_id": "key_1", "tenant_id": "acme", "public_key": "abc",
                "created_at": "2026-11-23T10:00:00Z", "revoked_at": null})
        );
    }
}
