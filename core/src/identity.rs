//! Cookieless identity: visitor ids from a daily-rotating secret salt, and server-side sessions.
//!
//! A visitor id is a keyed 128-bit SipHash of (tenant, domain, IP, user agent) under the day's random
//! salt. The salt lives only in D1 for a couple of days, so ids cannot be linked across days or
//! reversed into an IP; IP and user agent are used here and never stored.
//!
//! Sessions: the client's `session_id` when it sends one (flock.js with storage), otherwise derived
//! here: a visitor's events belong to one session until 30 minutes pass without an event.

use std::collections::HashMap;
use std::hash::Hasher;

use siphasher::sip::SipHasher13;
use siphasher::sip128::{Hasher128, SipHasher13 as SipHasher13x128};

use crate::event::EnrichedEvent;

/// Inactivity that ends a derived session, in seconds.
pub const SESSION_GAP_SECS: i64 = 30 * 60;

/// The visitor id for one request: 32 hex characters.
pub fn visitor_id(
    salt: &[u8; 16],
    tenant: &str,
    domain: &str,
    ip: &str,
    user_agent: &str,
) -> String {
    let mut h = SipHasher13x128::new_with_key(salt);
    for part in [tenant, domain, ip, user_agent] {
        h.write(part.as_bytes());
        h.write_u8(0xff); // separator: no string contains 0xff as UTF-8, so parts cannot run together
    }
    format!("{:032x}", h.finish128().as_u128())
}

/// The key of a session derived for `visitor` starting at `first_ts_secs`: deterministic, so replaying
/// archived events reproduces it.
fn derived_key(visitor: &str, first_ts_secs: i64) -> String {
    let mut h = SipHasher13::new();
    h.write(visitor.as_bytes());
    h.write_i64(first_ts_secs);
    format!("s-{:016x}", h.finish())
}

/// Gives every event without a `session_id` a derived session.
///
/// `prior` holds each visitor's latest known session as `(session key, last event secs)`, looked up in
/// D1 before the batch. Events are taken in time order per visitor; an event within
/// [`SESSION_GAP_SECS`] of the visitor's previous one continues its session, otherwise it starts a new
/// one. Returns the updated map (the state after this batch).
pub fn assign_sessions(
    events: &mut [EnrichedEvent],
    prior: &HashMap<String, (String, i64)>,
) -> HashMap<String, (String, i64)> {
    let mut state = prior.clone();
    let mut order: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].session_id.is_none())
        .collect();
    order.sort_by_key(|&i| events[i].ts);
    for i in order {
        let e = &mut events[i];
        let ts = e.ts_secs();
        let entry = state.get_mut(&e.visitor_id);
        match entry {
            Some((key, last)) if (ts - *last).abs() <= SESSION_GAP_SECS => {
                e.session_id = Some(key.clone());
                *last = (*last).max(ts);
            }
            _ => {
                let key = derived_key(&e.visitor_id, ts);
                e.session_id = Some(key.clone());
                state.insert(e.visitor_id.clone(), (key, ts));
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(visitor: &str, ts_secs: i64, session: Option<&str>) -> EnrichedEvent {
        EnrichedEvent {
            ts: ts_secs * 1000,
            tenant_id: "acme".into(),
            domain: "a.example".into(),
            action: "page_hit".into(),
            session_id: session.map(Into::into),
            visitor_id: visitor.into(),
            pathname: "/".into(),
            device: "desktop".into(),
            payload: "{}".into(),
            ..Default::default()
        }
    }

    #[test]
    fn visitor_ids_depend_on_every_input_and_the_salt() {
        let s = [7u8; 16];
        let base = visitor_id(&s, "acme", "a.example", "203.0.113.1", "UA");
        assert_eq!(base.len(), 32);
        assert_eq!(
            base,
            visitor_id(&s, "acme", "a.example", "203.0.113.1", "UA")
        );
        assert_ne!(
            base,
            visitor_id(&[8u8; 16], "acme", "a.example", "203.0.113.1", "UA")
        );
        assert_ne!(
            base,
            visitor_id(&s, "other", "a.example", "203.0.113.1", "UA")
        );
        assert_ne!(
            base,
            visitor_id(&s, "acme", "b.example", "203.0.113.1", "UA")
        );
        assert_ne!(
            base,
            visitor_id(&s, "acme", "a.example", "203.0.113.2", "UA")
        );
        assert_ne!(
            base,
            visitor_id(&s, "acme", "a.example", "203.0.113.1", "UA2")
        );
        assert_ne!(
            visitor_id(&s, "ab", "c", "", ""),
            visitor_id(&s, "a", "bc", "", "")
        );
    }

    #[test]
    fn sessions_split_after_thirty_idle_minutes() {
        let t = 1_755_000_000;
        let mut events = vec![
            event("v1", t + 1000, None),
            event("v1", t, None),
            event("v1", t + 1000 + SESSION_GAP_SECS + 1, None),
            event("v2", t, None),
            event("v1", t + 5, Some("client")),
        ];
        let state = assign_sessions(&mut events, &HashMap::new());
        let s: Vec<&str> = events
            .iter()
            .map(|e| e.session_id.as_deref().unwrap())
            .collect();
        assert_eq!(s[0], s[1], "within 30 minutes: one session");
        assert_ne!(s[0], s[2], "after 30 idle minutes: a new session");
        assert_ne!(s[0], s[3], "visitors never share a session");
        assert_eq!(s[4], "client", "a client session id is kept");
        assert_eq!(
            state["v1"],
            (s[2].to_owned(), t + 1000 + SESSION_GAP_SECS + 1)
        );
    }

    #[test]
    fn sessions_continue_across_batches_and_are_deterministic() {
        let t = 1_755_000_000;
        let mut first = vec![event("v1", t, None)];
        let state = assign_sessions(&mut first, &HashMap::new());
        let mut second = vec![event("v1", t + 600, None)];
        assign_sessions(&mut second, &state);
        assert_eq!(first[0].session_id, second[0].session_id);
        let mut again = vec![event("v1", t, None)];
        assign_sessions(&mut again, &HashMap::new());
        assert_eq!(again[0].session_id, first[0].session_id);
    }
}
