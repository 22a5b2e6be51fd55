//! JWT verification: HS256 keyed with the UTF-8 bytes of `SIGNING_KEY` (tracker and read tokens, as
//! Tinybird's apps sign them), and EdDSA (Ed25519) read tokens a tenant's own backend signs with a key it
//! registered (header `kid`), both verified with `jwt-compact`.
//!
//! [`header`] tells the caller which of the two a token claims to be (and its `kid`, to look the key up);
//! [`verify`] and [`verify_eddsa`] each accept only their own algorithm (an `alg` of `none` or anything
//! else fails before the signature is looked at), then apply the same claim rules: `exp` is required,
//! `nbf` honoured, both with [`LEEWAY_SECS`] of clock skew.
//!
//! [`signing_keys`] checks the deployment's HS256 keys before anything is served: `SIGNING_KEY` (and
//! `SIGNING_KEY_PREVIOUS` during a rotation) must be at least [`MIN_SIGNING_KEY_BYTES`] long, because
//! tracker tokens are public samples an attacker can brute-force a short key from offline.
//! [`verify_any`] accepts a token signed with any of those keys. A `kid` that is not a key id this
//! deployment issues is refused by [`header`] before any key lookup.

use std::collections::BTreeMap;
use std::fmt;

use jwt_compact::alg::{Ed25519, Hs256, Hs256Key, VerifyingKey};
use jwt_compact::{Algorithm, AlgorithmExt, UntrustedToken, ValidationError};
use serde::Deserialize;

use crate::claims::{Claims, Scope};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// Tokens longer than this are rejected unparsed.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Shortest HS256 key served (256 bits, the size of the HMAC-SHA256 output): a shorter key can be
/// brute-forced offline from any public tracker token.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;

/// Why a token did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts, or a header that is not JSON (401).
    Malformed,
    /// `alg` is neither HS256 nor EdDSA, or not the one the verifier expects (401).
    UnsupportedAlgorithm,
    /// The signature does not match `SIGNING_KEY` or the tenant key (401).
    BadSignature,
    /// The payload is not Tinybird's claims shape, or has no `exp` (401).
    InvalidClaims,
    /// `exp` is in the past (403, as Tinybird answers).
    Expired,
    /// `nbf` is in the future (403).
    NotYetValid,
    /// An EdDSA token whose `kid` is missing, unknown or revoked (401). Set by the caller's key lookup.
    UnknownKey,
    /// An EdDSA token whose `kid` does not have the shape of an issued key id (401), refused unlooked-up.
    MalformedKeyId,
    /// The token's `jti` was revoked through the admin API (401). Set by the caller's revocation check.
    Revoked,
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
            Self::UnsupportedAlgorithm => {
                "unsupported token algorithm: tokens must be signed with HS256 (SIGNING_KEY) or with EdDSA \
                 by a registered tenant key (header 'kid')"
            }
            Self::BadSignature => {
                "invalid token signature: the token was not signed with this deployment's SIGNING_KEY \
                 or with the tenant key its 'kid' names"
            }
            Self::InvalidClaims => {
                "invalid token claims: expected Tinybird's payload with 'exp' (Unix seconds) and 'scopes'"
            }
            Self::Expired => "token expired: mint a new token",
            Self::NotYetValid => "token not yet valid (nbf is in the future): check the issuer's clock",
            Self::UnknownKey => {
                "the token's kid is not a registered, unrevoked tenant key: register it with \
                 POST /v0/admin/tenants/{id}/keys"
            }
            Self::MalformedKeyId => {
                "the token's kid is not a key id: use the key_id (32 lower-case hex characters) that \
                 POST /v0/admin/tenants/{id}/keys returned"
            }
            Self::Revoked => "token revoked: mint a new token",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TokenError {}

/// The signing algorithms a token may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// HMAC-SHA256 with `SIGNING_KEY` (tokens minted by Starling or Tinybird's tools).
    Hs256,
    /// Ed25519 with a tenant's registered public key, named by the header's `kid`.
    EdDsa,
}

/// What a token's header says, read before any signature is checked: only to choose the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    /// The header's `alg`.
    pub alg: Alg,
    /// The header's `kid`: for EdDSA, the `key_id` of the tenant key to verify with.
    pub kid: Option<String>,
}

/// Reads the (unverified) header: `Malformed` when the token is not a JWT, `UnsupportedAlgorithm` when
/// `alg` is neither `HS256` nor `EdDSA`.
/// An EdDSA header must name its key with a well-formed `kid` ([`crate::keys::is_key_id`]):
/// `UnknownKey` when it names none, `MalformedKeyId` when the value cannot be an issued key id.
pub fn header(token: &str) -> Result<TokenHeader, TokenError> {
    let untrusted = parse(token)?;
    let alg = alg_of(&untrusted)?;
    let kid = untrusted.header().key_id.clone();
    if alg == Alg::EdDsa {
        match kid.as_deref() {
            None => return Err(TokenError::UnknownKey),
            Some(k) if !crate::keys::is_key_id(k) => return Err(TokenError::MalformedKeyId),
            Some(_) => {}
        }
    }
    Ok(TokenHeader { alg, kid })
}

/// Why the deployment's HS256 keys cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigningKeyError {
    /// `SIGNING_KEY` is not set.
    Missing,
    /// A key is shorter than [`MIN_SIGNING_KEY_BYTES`]; the variable's name.
    TooShort(&'static str),
}

impl SigningKeyError {
    /// What is wrong and how to fix it (for the operator: logged, and the body of the 503).
    pub fn message(self) -> String {
        match self {
            Self::Missing => "SIGNING_KEY is not configured: set it with `wrangler secret put SIGNING_KEY` \
                (a random string of at least 32 bytes, e.g. `openssl rand -hex 32`)"
                .into(),
            Self::TooShort(name) => format!(
                "{name} is shorter than {MIN_SIGNING_KEY_BYTES} bytes, so tokens signed with it can be \
                 brute-forced: set a random key of at least {MIN_SIGNING_KEY_BYTES} bytes with \
                 `wrangler secret put {name}` (e.g. `openssl rand -hex 32`); nothing is served until then"
            ),
        }
    }
}

impl fmt::Display for SigningKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for SigningKeyError {}

/// The HS256 keys tokens are verified with: `current` (`SIGNING_KEY`, which also mints) first, then
/// `previous` (`SIGNING_KEY_PREVIOUS`, set only during a key rotation). Each must be at least
/// [`MIN_SIGNING_KEY_BYTES`] bytes.
pub fn signing_keys<'a>(
    current: Option<&'a str>,
    previous: Option<&'a str>,
) -> Result<Vec<&'a [u8]>, SigningKeyError> {
    let current = current
        .filter(|k| !k.is_empty())
        .ok_or(SigningKeyError::Missing)?;
    let mut keys = Vec::with_capacity(2);
    for (name, key) in [
        ("SIGNING_KEY", Some(current)),
        ("SIGNING_KEY_PREVIOUS", previous.filter(|k| !k.is_empty())),
    ] {
        if let Some(key) = key {
            if key.len() < MIN_SIGNING_KEY_BYTES {
                return Err(SigningKeyError::TooShort(name));
            }
            keys.push(key.as_bytes());
        }
    }
    Ok(keys)
}

/// Verifies an HS256 `token` against each of `secrets` in turn (a key rotation accepts the current and
/// the previous key): the first key whose signature matches decides, with its claim errors.
/// `BadSignature` only when no key matches.
pub fn verify_any(token: &str, secrets: &[&[u8]], now_secs: i64) -> Result<Claims, TokenError> {
    let mut last = TokenError::BadSignature;
    for secret in secrets {
        match verify(token, secret, now_secs) {
            Err(TokenError::BadSignature) => last = TokenError::BadSignature,
            other => return other,
        }
    }
    Err(last)
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    jti: Option<String>,
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

/// Verifies an HS256 `token` against `secret` (the UTF-8 bytes of `SIGNING_KEY`) at `now_secs`.
/// An EdDSA token is refused (`UnsupportedAlgorithm`): it goes to [`verify_eddsa`].
pub fn verify(token: &str, secret: &[u8], now_secs: i64) -> Result<Claims, TokenError> {
    verify_with(Hs256, Alg::Hs256, &Hs256Key::new(secret), token, now_secs)
}

/// Verifies an EdDSA `token` against a tenant's Ed25519 `public_key` at `now_secs`, with the same claim
/// rules as [`verify`]. An HS256 token is refused (`UnsupportedAlgorithm`). The caller confines the claims
/// to the key's tenant ([`crate::claims::confine_to_key_tenant`]).
pub fn verify_eddsa(
    token: &str,
    public_key: &[u8; 32],
    now_secs: i64,
) -> Result<Claims, TokenError> {
    let key =
        <<Ed25519 as Algorithm>::VerifyingKey as VerifyingKey<Ed25519>>::from_slice(public_key)
            .map_err(|_| TokenError::BadSignature)?;
    verify_with(Ed25519, Alg::EdDsa, &key, token, now_secs)
}

fn parse(token: &str) -> Result<UntrustedToken<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    UntrustedToken::new(token).map_err(|_| TokenError::Malformed)
}

fn alg_of(untrusted: &UntrustedToken<'_>) -> Result<Alg, TokenError> {
    match untrusted.algorithm() {
        "HS256" => Ok(Alg::Hs256),
        "EdDSA" => Ok(Alg::EdDsa),
        _ => Err(TokenError::UnsupportedAlgorithm),
    }
}

/// The one verification path: the algorithm must be `expected`, the signature must match `key`, then
/// the claims are checked and converted.
fn verify_with<A: Algorithm>(
    alg: A,
    expected: Alg,
    key: &A::VerifyingKey,
    token: &str,
    now_secs: i64,
) -> Result<Claims, TokenError> {
    let untrusted = parse(token)?;
    if alg_of(&untrusted)? != expected {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let verified = alg
        .validator::<RawClaims>(key)
        .validate(&untrusted)
        .map_err(|e| match e {
            ValidationError::AlgorithmMismatch { .. } => TokenError::UnsupportedAlgorithm,
            ValidationError::InvalidSignature
            | ValidationError::InvalidSignatureLen { .. }
            | ValidationError::MalformedSignature(_) => TokenError::BadSignature,
            _ => TokenError::InvalidClaims,
        })?;
    to_claims(verified.claims(), now_secs)
}

/// Time rules and the conversion into [`Claims`], shared by both algorithms.
fn to_claims(claims: &jwt_compact::Claims<RawClaims>, now_secs: i64) -> Result<Claims, TokenError> {
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
        token_id: raw.jti.clone(),
        issued_at: claims.issued_at.map(|t| t.timestamp()),
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
    const KID: &str = "00112233445566778899aabbccddeeff";
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

    fn ed_keypair(seed: u8) -> ed25519_compact::KeyPair {
        ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([seed; 32]))
    }

    fn sign_eddsa(payload: serde_json::Value, kp: &ed25519_compact::KeyPair) -> String {
        let claims = JwtClaims::new(Payload(payload));
        Ed25519
            .token(&Header::empty().with_key_id(KID), &claims, &kp.sk)
            .unwrap()
    }

    #[test]
    fn the_jti_is_the_token_id() {
        let mut p = payload(NOW + 600);
        p["jti"] = json!("tok_123");
        let c = verify(&sign(p, KEY), KEY, NOW).unwrap();
        assert_eq!(c.token_id.as_deref(), Some("tok_123"));
        let c = verify(&sign(payload(NOW + 600), KEY), KEY, NOW).unwrap();
        assert_eq!(c.token_id, None);
    }

    #[test]
    fn headers_choose_the_verifier() {
        let hs = header(&sign(payload(NOW + 600), KEY)).unwrap();
        assert_eq!(
            hs,
            TokenHeader {
                alg: Alg::Hs256,
                kid: None
            }
        );
        let ed = header(&sign_eddsa(payload(NOW + 600), &ed_keypair(1))).unwrap();
        assert_eq!((ed.alg, ed.kid.as_deref()), (Alg::EdDsa, Some(KID)));
        assert_eq!(header("a.b"), Err(TokenError::Malformed));
        let body = b64("{}");
        for h in [r#"{"alg":"none"}"#, r#"{"alg":"ES256","kid":"k"}"#] {
            assert_eq!(
                header(&format!("{}.{body}.", b64(h))),
                Err(TokenError::UnsupportedAlgorithm),
                "{h}"
            );
        }
    }

    #[test]
    fn an_eddsa_token_verifies_with_its_tenant_key_only() {
        let kp = ed_keypair(7);
        let pk: [u8; 32] = *kp.pk;
        let mut p = payload(NOW + 600);
        p["jti"] = json!("t1");
        let token = sign_eddsa(p, &kp);
        let c = verify_eddsa(&token, &pk, NOW).unwrap();
        assert_eq!(c.scopes[0].fixed_params["tenant_id"], "acme");
        assert_eq!((c.exp, c.token_id.as_deref()), (NOW + 600, Some("t1")));
        let other: [u8; 32] = *ed_keypair(8).pk;
        assert_eq!(
            verify_eddsa(&token, &other, NOW),
            Err(TokenError::BadSignature)
        );
        // Each verifier accepts only its own algorithm.
        assert_eq!(
            verify(&token, KEY, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        assert_eq!(
            verify_eddsa(&sign(payload(NOW + 600), KEY), &pk, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        // The same claim rules as HS256.
        assert_eq!(
            verify_eddsa(&sign_eddsa(payload(NOW - 61), &kp), &pk, NOW),
            Err(TokenError::Expired)
        );
        let mut p = payload(NOW + 600);
        p["nbf"] = json!(NOW + 120);
        assert_eq!(
            verify_eddsa(&sign_eddsa(p, &kp), &pk, NOW),
            Err(TokenError::NotYetValid)
        );
        let mut p = payload(0);
        p.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            verify_eddsa(&sign_eddsa(p, &kp), &pk, NOW),
            Err(TokenError::InvalidClaims)
        );
        // Tampered payload keeps the signature: refused.
        let parts: Vec<&str> = token.split('.').collect();
        let evil = payload(NOW + 600).to_string().replace("acme", "evil");
        let t = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
        assert_eq!(verify_eddsa(&t, &pk, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn short_or_missing_signing_keys_are_refused() {
        let long = "k".repeat(MIN_SIGNING_KEY_BYTES);
        let short = "k".repeat(MIN_SIGNING_KEY_BYTES - 1);
        assert_eq!(signing_keys(None, None), Err(SigningKeyError::Missing));
        assert_eq!(signing_keys(Some(""), None), Err(SigningKeyError::Missing));
        assert_eq!(
            signing_keys(Some(&short), None),
            Err(SigningKeyError::TooShort("SIGNING_KEY"))
        );
        assert_eq!(
            signing_keys(Some(&long), Some(&short)),
            Err(SigningKeyError::TooShort("SIGNING_KEY_PREVIOUS"))
        );
        assert_eq!(signing_keys(Some(&long), None), Ok(vec![long.as_bytes()]));
        assert_eq!(signing_keys(Some(&long), Some("")).unwrap().len(), 1);
        // The harness's and dev.sh's keys (48 and 64 hex characters) pass.
        assert!(signing_keys(Some(&"ab".repeat(24)), Some(&"cd".repeat(32))).is_ok());
        assert!(SigningKeyError::TooShort("SIGNING_KEY")
            .message()
            .contains("at least 32 bytes"));
    }

    #[test]
    fn a_rotation_accepts_the_current_and_the_previous_key_only() {
        let (new, old, other) = (
            b"new-key".as_slice(),
            b"old-key".as_slice(),
            b"x".as_slice(),
        );
        let by_old = sign(payload(NOW + 600), old);
        let by_new = sign(payload(NOW + 600), new);
        assert!(verify_any(&by_new, &[new, old], NOW).is_ok());
        assert!(verify_any(&by_old, &[new, old], NOW).is_ok());
        assert_eq!(
            verify_any(&by_old, &[new], NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_any(&by_old, &[other, new], NOW),
            Err(TokenError::BadSignature)
        );
        // A matching key decides: an expired token stays expired under the other key.
        assert_eq!(
            verify_any(&sign(payload(NOW - 600), old), &[new, old], NOW),
            Err(TokenError::Expired)
        );
        assert_eq!(verify_any(&by_new, &[], NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn eddsa_headers_need_a_well_formed_kid() {
        let body = b64("{}");
        let kid = "0123456789abcdef0123456789abcdef";
        let ok = header(&format!(
            "{}.{body}.",
            b64(&format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#))
        ))
        .unwrap();
        assert_eq!(ok.kid.as_deref(), Some(kid));
        assert_eq!(
            header(&format!("{}.{body}.", b64(r#"{"alg":"EdDSA"}"#))),
            Err(TokenError::UnknownKey)
        );
        let long = "a".repeat(4000);
        for bad in [
            "key_1",
            "../x",
            long.as_str(),
            "0123456789ABCDEF0123456789ABCDEF",
        ] {
            let h = b64(&format!(r#"{{"alg":"EdDSA","kid":"{bad}"}}"#));
            assert_eq!(
                header(&format!("{h}.{body}.")),
                Err(TokenError::MalformedKeyId),
                "{bad}"
            );
        }
        // HS256 tokens ignore kid.
        let h = b64(r#"{"alg":"HS256","kid":"whatever"}"#);
        assert_eq!(header(&format!("{h}.{body}.")).unwrap().alg, Alg::Hs256);
    }

    #[test]
    fn statuses() {
        assert_eq!(TokenError::MalformedKeyId.status(), 401);
        assert_eq!(TokenError::UnknownKey.status(), 401);
        assert_eq!(TokenError::Revoked.status(), 401);
        assert_eq!(TokenError::Expired.status(), 403);
        assert_eq!(TokenError::NotYetValid.status(), 403);
        assert_eq!(TokenError::BadSignature.status(), 401);
        assert_eq!(TokenError::UnsupportedAlgorithm.status(), 401);
    }
}
