//! Idempotency keys on ingest: `POST /v0/events?idempotency_key=K` names the request's content, so a
//! client that sends the same request again (its first answer was lost, or was a 5xx from something
//! between it and the edge) has it applied once.
//!
//! The key becomes the request's batch id base instead of the random request id. Batch ids derive from
//! it deterministically (`{base}-{n}` per queue message, `{base}-p{n}` per streamed part), the consumer
//! applies each batch id once (`applied_batches`) and the archive reads each once, so a resent request
//! with the same key and body changes nothing. The base is a hash of tenant and key: two tenants using the
//! same key never meet, and a key never reaches storage or logs as sent.

use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher13};

/// The query parameter that carries the key.
pub const PARAM: &str = "idempotency_key";

/// At most this many characters in a key.
pub const MAX_LEN: usize = 64;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Empty, longer than [`MAX_LEN`], or with a character outside `A-Z a-z 0-9 _ -`.
    Invalid,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid '{PARAM}': expected 1 to {MAX_LEN} characters of A-Z, a-z, 0-9, '_' or '-'; \
             send the same key again only with the same body"
        )
    }
}

/// The batch id base of a request from `tenant` with idempotency key `key`: `i` and 32 hex characters.
pub fn batch_base(tenant: &str, key: &str) -> Result<String, KeyError> {
    let valid = !key.is_empty()
        && key.len() <= MAX_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(KeyError::Invalid);
    }
    // A fixed key: the hash only has to keep tenants apart and spread keys, it guards no secret.
    let mut h = SipHasher13::new_with_keys(0x5374_6172_6c69_6e67, 0x6964_656d_706f_7465);
    h.write(tenant.as_bytes());
    h.write_u8(0);
    h.write(key.as_bytes());
    Ok(format!("i{:032x}", h.finish128().as_u128()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tenant_and_key_give_the_same_base() {
        let a = batch_base("acme", "k1x9").unwrap();
        assert_eq!(a, batch_base("acme", "k1x9").unwrap());
        assert_eq!(a.len(), 33);
        assert!(a.starts_with('i'));
    }

    #[test]
    fn tenants_and_keys_are_kept_apart() {
        let a = batch_base("acme", "k1").unwrap();
        assert_ne!(a, batch_base("globex", "k1").unwrap());
        assert_ne!(a, batch_base("acme", "k2").unwrap());
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            batch_base("ab", "c").unwrap(),
            batch_base("a", "bc").unwrap()
        );
    }

    #[test]
    fn keys_outside_the_alphabet_or_length_are_refused() {
        for bad in ["", "a b", "a/b", "é", &"x".repeat(MAX_LEN + 1)] {
            assert_eq!(batch_base("acme", bad), Err(KeyError::Invalid), "{bad:?}");
        }
        assert!(batch_base("acme", &"x".repeat(MAX_LEN)).is_ok());
        assert!(batch_base("acme", "0a-Z_9").is_ok());
        assert!(KeyError::Invalid.to_string().contains(PARAM));
    }
}
