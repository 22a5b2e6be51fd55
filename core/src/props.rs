//! Custom properties: the scalar entries of an event's payload (after masking, without the tracker's
//! own keys), counted per visit in `session_props` (`key U+001F value`), for `event:props:<key>`
//! breakdowns and filters, and in the rollup cells of dimensions `pr` / `pe`
//! (`crate::rollup::visits::dim::PROP`), which answer a breakdown by one key, and per goal in those of
//! dimension `gp` (`crate::rollup::visits::dim::GOAL_PROP`). The caps below are what
//! keeps those cells and each visitor-day's state bounded (without them, a random value per page hit
//! would multiply the rollup rows).
//!
//! Free text must not grow the tables without bound, so each tenant has caps from its plan: distinct
//! keys ([`crate::plan::Quota::PropKeys`]) and distinct values per key ([`crate::plan::Quota::PropValues`]).
//! The known pairs are in `prop_values`; a key beyond the cap is counted as `(other)` = `(other)`, a
//! value beyond its key's cap as `key` = `(other)`: counted, never an error. The consumer looks the
//! batch's pairs up with the visits' prior state ([`lookups`]) and admits them in event order
//! ([`Caps::admit`]), so a retried batch is capped the same way.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::sql::{SqlValue, Statement};

/// The bucket of what is beyond a cap.
pub const OTHER: &str = "(other)";
/// Most properties read from one event (as Plausible: the rest are ignored).
pub const MAX_PROPS: usize = 30;
/// Longest key and value kept, in characters (longer ones are ignored).
pub const MAX_KEY: usize = 300;
/// Longest value kept, in characters.
pub const MAX_VALUE: usize = 2000;
/// Payload keys the tracker and the Events API use for themselves: not custom properties.
pub const RESERVED: &[&str] = &[
    "href",
    "pathname",
    "referrer",
    "url",
    "locale",
    "location",
    "domain",
    "revenue",
    "user-agent",
    "userAgent",
    "user_agent",
];

/// The custom properties of a payload (a JSON object string), in key order: scalar values only
/// (strings, numbers as written, booleans), masked values and reserved keys left out.
pub fn props_of(payload: &str) -> Vec<(String, String)> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(payload) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = map
        .into_iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()) && !k.is_empty())
        .filter_map(|(k, v)| {
            let v = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            let ok = k.chars().count() <= MAX_KEY
                && v.chars().count() <= MAX_VALUE
                && v != crate::enrich::MASK
                && !k.contains(crate::rollup::visits::SEP);
            ok.then_some((k, v))
        })
        .collect();
    out.sort();
    out.truncate(MAX_PROPS);
    out
}

/// One tenant's property caps during a batch: the known keys with their distinct value counts, the
/// known pairs among the batch's, and the pairs this batch adds.
#[derive(Debug, Clone, Default)]
pub struct Caps {
    max_keys: usize,
    max_values: u32,
    keys: BTreeMap<String, u32>,
    known: BTreeSet<(String, String)>,
    added: Vec<(String, String)>,
}

impl Caps {
    /// Caps of `max_keys` keys and `max_values` values per key.
    pub fn new(max_keys: u32, max_values: u32) -> Self {
        Self {
            max_keys: max_keys as usize,
            max_values,
            ..Self::default()
        }
    }

    /// Adds rows of the [`lookups`] statements: `kind` `pk` (key `k`, distinct values `n`) or `pv`
    /// (a known pair `k`, `v`).
    pub fn add_row(&mut self, r: &Map<String, Value>) {
        let s = |name: &str| r.get(name).and_then(Value::as_str).map(str::to_owned);
        match (s("kind").as_deref(), s("k"), s("v")) {
            (Some("pk"), Some(k), _) => {
                let n = crate::sql::int(r.get("n")).unwrap_or(0).max(0);
                self.keys.insert(k, u32::try_from(n).unwrap_or(u32::MAX));
            }
            (Some("pv"), Some(k), Some(v)) => {
                self.known.insert((k, v));
            }
            _ => {}
        }
    }

    /// The pair to count for `(key, value)`: itself, `(key, (other))` past the key's value cap, or
    /// `((other), (other))` past the key cap.
    pub fn admit(&mut self, key: &str, value: &str) -> (String, String) {
        let pair = (key.to_owned(), value.to_owned());
        if self.known.contains(&pair) {
            return pair;
        }
        if !self.keys.contains_key(key) {
            if self.keys.len() >= self.max_keys {
                return (OTHER.into(), OTHER.into());
            }
            self.keys.insert(key.to_owned(), 0);
        }
        let n = self.keys.get_mut(key).map_or(u32::MAX, |n| {
            let was = *n;
            if was < self.max_values {
                *n += 1;
            }
            was
        });
        if n >= self.max_values {
            return (pair.0, OTHER.into());
        }
        self.known.insert(pair.clone());
        self.added.push(pair.clone());
        pair
    }

    /// Statements that record the pairs admitted by this batch, and their keys' value counts.
    pub fn inserts(&self, tenant: &str) -> Vec<Statement> {
        let mut per_key: BTreeMap<&str, i64> = BTreeMap::new();
        for (k, _) in &self.added {
            *per_key.entry(k.as_str()).or_default() += 1;
        }
        let counts = per_key.into_iter().map(|(k, n)| {
            Statement::new(
                "INSERT INTO prop_keys (tenant_id, key, n_values) VALUES (?, ?, ?) \
                 ON CONFLICT (tenant_id, key) DO UPDATE SET n_values = n_values + excluded.n_values",
                vec![tenant.into(), k.into(), n.into()],
            )
        });
        self.added
            .chunks(30)
            .map(|chunk| {
                let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                let binds: Vec<SqlValue> = chunk
                    .iter()
                    .flat_map(|(k, v)| [tenant.into(), k.as_str().into(), v.as_str().into()])
                    .collect();
                Statement::new(
                    format!(
                        "INSERT OR IGNORE INTO prop_values (tenant_id, key, value) VALUES {values}"
                    ),
                    binds,
                )
            })
            .chain(counts)
            .collect()
    }
}

/// The reads that fill a tenant's [`Caps`] for `pairs` (none for none): every known key with its
/// number of values (at most the plan's cap of keys), and which of `pairs` are known.
pub fn lookups(tenant: &str, pairs: &BTreeSet<(String, String)>) -> Vec<Statement> {
    if pairs.is_empty() {
        return Vec::new();
    }
    let mut out = vec![Statement::new(
        "SELECT 'pk' AS kind, key AS k, n_values AS n FROM prop_keys WHERE tenant_id = ?",
        vec![tenant.into()],
    )];
    let list: Vec<&(String, String)> = pairs.iter().collect();
    for chunk in list.chunks(45) {
        let values = vec!["(?, ?)"; chunk.len()].join(", ");
        let mut binds: Vec<SqlValue> = vec![tenant.into()];
        for (k, v) in chunk {
            binds.push(k.as_str().into());
            binds.push(v.as_str().into());
        }
        out.push(Statement::new(
            format!(
                "SELECT 'pv' AS kind, key AS k, value AS v FROM prop_values WHERE tenant_id = ? \
                 AND (key, value) IN (VALUES {values})"
            ),
            binds,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_scalar_unreserved_unmasked_entries() {
        let p = props_of(
            r#"{"plan":"pro","seats":3,"trial":false,"href":"https://a/","pathname":"/","nested":{"a":1},
                "email":"********","list":[1],"revenue":{"amount":1,"currency":"EUR"}}"#,
        );
        assert_eq!(
            p,
            vec![
                ("plan".into(), "pro".into()),
                ("seats".into(), "3".into()),
                ("trial".into(), "false".into())
            ]
        );
        assert!(props_of("not json").is_empty());
        let many: String = (0..40)
            .map(|i| format!("\"k{i:02}\":1"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(props_of(&format!("{{{many}}}")).len(), MAX_PROPS);
    }

    #[test]
    fn values_and_keys_beyond_the_caps_are_other() {
        let mut caps = Caps::new(2, 2);
        caps.add_row(&serde_json::from_str(r#"{"kind":"pk","k":"plan","n":1}"#).unwrap());
        caps.add_row(&serde_json::from_str(r#"{"kind":"pv","k":"plan","v":"pro"}"#).unwrap());
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(caps.admit("plan", "pro"), pair("plan", "pro"));
        assert_eq!(caps.admit("plan", "free"), pair("plan", "free"));
        assert_eq!(caps.admit("plan", "team"), pair("plan", OTHER));
        assert_eq!(caps.admit("plan", "free"), pair("plan", "free"));
        assert_eq!(caps.admit("size", "L"), pair("size", "L"));
        assert_eq!(caps.admit("color", "red"), pair(OTHER, OTHER));
        // One insert of the two new pairs, one count per key.
        let inserts = caps.inserts("t");
        assert_eq!(inserts.len(), 3);
        assert_eq!(inserts[0].binds.len(), 6);
        assert_eq!(inserts[1].binds[1], SqlValue::Text("plan".into()));
        assert_eq!(inserts[1].binds[2], SqlValue::Int(1));
    }
}
