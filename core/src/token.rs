//! JWT verification for tracker and read tokens: HS256 keyed with the UTF-8 bytes of `SIGNING_KEY`,
//! as Tinybird's apps sign them, verified with `jwt-compact`.
//!
//! Only HS256 is accepted (an `alg` of `none` or anything else fails before the signature is looked at).
//! `exp` is required, `nbf` honoured, both with [`LEEWAY_SECS`] of clock skew.

use std::collections::BTreeMap;
use std::fmt;

use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, UntrustedToken, ValidationError};
use serde::Deserialize;

use crate::claims::{Claims, Scope};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// Tokens longer than this are rejected unparsed.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts, or a header that is not JSON (401).
    Malformed,
    /// `alg` is not HS256 (401).
    UnsupportedAlgorithm,
    /// The signature does not match `SIGNING_KEY` (401).
    BadSignature,
    /// The payload is not Tinybird's claims shape, or has no `exp` (401).
    InvalidClaims,
    /// `exp` is in the past (403, as Tinybird answers).
    Expired,
    /// `nbf` is in the future (403).
    NotYetValid,
}

impl TokenError {
    /// HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::Expired | Self::NotYetValid => 403,
            _ => 401,
        }
    }

    /// A message that says what to do.
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "malformed token: expected a JWT (three base64url parts separated by '.')",
            Self::UnsupportedAlgorithm => "unsupported token algorithm: tokens must be signed with HS256",
            Self::BadSignature => "invalid token signature: the token was not signed with this deployment's SIGNING_KEY",
            Self::InvalidClaims => {
                "invalid token claims: expected Tinybird's payload with 'exp' (Unix seconds) and 'scopes'"
            }
            Self::Expired => "token expired: mint a new token",
            Self::NotYetValid => "token not yet valid (nbf is in the future): check the issuer's clock",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TokenError {}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<RawScope>,
    #[serde(default)]
    limits: Option<RawLimits>,
}

#[derive(Deserialize)]
struct RawScope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    fixed_params: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawLimits {
    #[serde(default)]
    rps: Option<u32>,
}

/// Verifies `token` against `secret` (the UTF-8 bytes of `SIGNING_KEY`) at `now_secs`.
pub fn verify(token: &str, secret: &[u8], now_secs: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let untrusted = UntrustedToken::new(token).map_err(|_| TokenError::Malformed)?;
    if untrusted.algorithm() != "HS256" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let key = Hs256Key::new(secret);
    let verified = Hs256
        .validator::<RawClaims>(&key)
        .validate(&untrusted)
        .map_err(|e| match e {
            ValidationError::AlgorithmMismatch { .. } => TokenError::UnsupportedAlgorithm,
            ValidationError::InvalidSignature
            | ValidationError::InvalidSignatureLen { .. }
            | ValidationError::MalformedSignature(_) => TokenError::BadSignature,
            _ => TokenError::InvalidClaims,
        })?;
    let claims = verified.claims();
    let exp = claims
        .expiration
        .ok_or(TokenError::InvalidClaims)?
        .timestamp();
    let nbf = claims.not_before.map(|t| t.timestamp());
    if now_secs > exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| now_secs < nbf.saturating_sub(LEEWAY_SECS)) {
        return Err(TokenError::NotYetValid);
    }
    let raw = &claims.custom;
    let scopes = raw
        .scopes
        .iter()
        .map(|s| {
            let fixed_params = s
                .fixed_params
                .iter()
                .flatten()
                .map(|(k, v)| Ok((k.clone(), scalar(v).ok_or(TokenError::InvalidClaims)?)))
                .collect::<Result<_, TokenError>>()?;
            Ok(Scope {
                kind: s.kind.clone(),
                resource: s.resource.clone(),
                fixed_params,
            })
        })
        .collect::<Result<_, TokenError>>()?;
    Ok(Claims {
        workspace_id: raw.workspace_id.clone(),
        name: raw.name.clone(),
        exp,
        nbf,
        scopes,
        rps: raw.limits.as_ref().and_then(|l| l.rps),
    })
}

/// Fixed parameter values are strings; numbers and booleans are taken as their JSON text.
fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_compact::{Claims as JwtClaims, Header};
    use serde::Serialize;
    use serde_json::json;

    const KEY: &[u8] = b"test-signing-key";
    const NOW: i64 = 1_755_081_662;

    #[derive(Serialize)]
    struct Payload(serde_json::Value);

    fn sign(payload: serde_json::Value, key: &[u8]) -> String {
        // Sign the way Tinybird's apps do: HS256 over the JSON payload, keyed with the secret's bytes.
        let claims = JwtClaims::new(Payload(payload));
        Hs256
            .token(&Header::empty(), &claims, &Hs256Key::new(key))
            .unwrap()
    }

    fn payload(exp: i64) -> serde_json::Value {
        json!({
            "workspace_id": "ws", "name": "acme_dashboard", "exp": exp,
            "scopes": [{"type": "PIPES:READ", "resource": "*", "fixed_params": {"tenant_id": "acme", "n": 3}}],
            "limits": {"rps": 10}
        })
    }

    fn b64(s: &str) -> String {
        use base64ct::{Base64UrlUnpadded, Encoding};
        Base64UrlUnpadded::encode_string(s.as_bytes())
    }

    #[test]
    fn a_valid_token_yields_tinybird_claims() {
        let c = verify(&sign(payload(NOW + 600), KEY), KEY, NOW).unwrap();
        assert_eq!(c.name.as_deref(), Some("acme_dashboard"));
        assert_eq!(c.workspace_id.as_deref(), Some("ws"));
        assert_eq!(c.exp, NOW + 600);
        assert_eq!(c.rps, Some(10));
        assert_eq!(c.scopes[0].kind, "PIPES:READ");
        assert_eq!(c.scopes[0].fixed_params["tenant_id"], "acme");
        assert_eq!(c.scopes[0].fixed_params["n"], "3");
    }

    #[test]
    fn the_negative_matrix() {
        let good = sign(payload(NOW + 600), KEY);
        assert_eq!(
            verify(&good, b"other-key", NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify("", KEY, NOW), Err(TokenError::Malformed));
        assert_eq!(verify("a.b", KEY, NOW), Err(TokenError::Malformed));
        assert_eq!(
            verify(&"a".repeat(9000), KEY, NOW),
            Err(TokenError::Malformed)
        );
        // alg none, alg absent, another algorithm: refused before the signature is checked.
        let body = good.split('.').nth(1).unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"HS512","typ":"JWT"}"#,
            r#"{"alg":"RS256"}"#,
        ] {
            let t = format!("{}.{body}.", b64(header));
            assert_eq!(
                verify(&t, KEY, NOW),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
        }
        let t = format!("{}.{body}.", b64(r#"{"typ":"JWT"}"#));
        assert_eq!(verify(&t, KEY, NOW), Err(TokenError::Malformed));
        // Tampered payload: another tenant with the original signature.
        let parts: Vec<&str> = good.split('.').collect();
        let evil = payload(NOW + 600).to_string().replace("acme", "evil");
        let t = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
        assert_eq!(verify(&t, KEY, NOW), Err(TokenError::BadSignature));
        // Time: expired (beyond the leeway), within the leeway, not yet valid, no exp.
        assert_eq!(
            verify(&sign(payload(NOW - 61), KEY), KEY, NOW),
            Err(TokenError::Expired)
        );
        assert!(verify(&sign(payload(NOW - 59), KEY), KEY, NOW).is_ok());
        let mut p = payload(NOW + 600);
        p["nbf"] = json!(NOW + 120);
        assert_eq!(
            verify(&sign(p.clone(), KEY), KEY, NOW),
            Err(TokenError::NotYetValid)
        );
        assert!(verify(&sign(p, KEY), KEY, NOW + 100).is_ok());
        let mut p = payload(0);
        p.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            verify(&sign(p, KEY), KEY, NOW),
            Err(TokenError::InvalidClaims)
        );
        // Fixed params must be scalars.
        let mut p = payload(NOW + 600);
        p["scopes"][0]["fixed_params"]["tenant_id"] = json!(["a", "b"]);
        assert_eq!(
            verify(&sign(p, KEY), KEY, NOW),
            Err(TokenError::InvalidClaims)
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(TokenError::Expired.status(), 403);
        assert_eq!(TokenError::NotYetValid.status(), 403);
        assert_eq!(TokenError::BadSignature.status(), 401);
        assert_eq!(TokenError::UnsupportedAlgorithm.status(), 401);
    }
}
