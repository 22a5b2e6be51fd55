//! Plan quotas: how many ingest and query requests, and how many events, per hour a tenant's plan
//! allows, and how many distinct domains and action names it may create.
//!
//! The limits come from the `PLAN_LIMITS` variable ([`PlanLimits::parse`]); plans and quotas it does not
//! name keep their defaults, so an operator only writes what differs. The worker counts requests and
//! events in an hourly [`crate::ratelimit::Window`] per tenant and quota, next to the per-token
//! per-second bucket; the consumer enforces the distinct-value caps ([`PlanLimits::cap`]).

use serde_json::Value;

/// The plans a tenant can be on, in the order they are reported.
pub const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

/// Default limits for each plan, in [`PLANS`] order, per [`Quota`] in its declaration order: ingest
/// requests per hour, query requests per hour, events per hour, distinct domains, distinct actions,
/// goals, distinct property keys, distinct values per property key.
const DEFAULTS: [[u32; QUOTAS]; 3] = [
    [100, 100, 1_000, 5, 50, 10, 10, 100],
    [10_000, 10_000, 100_000, 50, 500, 100, 50, 1_000],
    [100_000, 100_000, 1_000_000, 500, 5_000, 1_000, 300, 10_000],
];
/// How many [`Quota`]s there are.
const QUOTAS: usize = 8;

crate::named_enum! {
    /// What a quota counts.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Quota {
        /// `POST /v0/events` requests per hour.
        Ingest => "ingest",
        /// `GET /v0/pipes/...` (and other read-token) requests per hour.
        Query => "query",
        /// Accepted events (rows) per hour, whatever the number of requests they came in.
        Events => "events",
        /// Distinct `domain` values a tenant may have (all time); rows beyond are quarantined.
        Domains => "domains",
        /// Distinct `action` names a tenant may have (all time); rows beyond are quarantined.
        Actions => "actions",
        /// Goals a tenant may define (`crate::goals`); creating one more is refused with a 400.
        Goals => "goals",
        /// Distinct custom property keys (`crate::props`); beyond: counted as `(other)`.
        PropKeys => "prop_keys",
        /// Distinct values per custom property key; beyond: counted as `(other)`.
        PropValues => "prop_values",
    }
}

/// Limits per plan and quota. Defaults (free / pro / enterprise): ingest and query requests per hour
/// 100 / 10,000 / 100,000; events per hour 1,000 / 100,000 / 1,000,000; distinct domains 5 / 50 / 500;
/// distinct action names 50 / 500 / 5,000; goals 10 / 100 / 1,000; property keys 10 / 50 / 300 and
/// values per key 100 / 1,000 / 10,000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLimits {
    /// One limit per [`Quota`] per plan, in [`PLANS`] order.
    limits: [[u32; QUOTAS]; 3],
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self { limits: DEFAULTS }
    }
}

impl PlanLimits {
    /// Parses the `PLAN_LIMITS` variable: a JSON object like
    /// `{"free":100,"pro":{"ingest":20000,"query":5000,"events":200000}}`. A number sets both request
    /// quotas (ingest, query) of a plan; an object sets the quotas it names (`ingest`, `query`,
    /// `events`, `domains`, `actions`). Plans and quotas not named keep their default; `None` or an empty (or
    /// blank) string gives the defaults. The error says what is wrong and what is allowed.
    pub fn parse(raw: Option<&str>) -> Result<PlanLimits, String> {
        let mut out = PlanLimits::default();
        let raw = raw.map(str::trim).unwrap_or_default();
        if raw.is_empty() {
            return Ok(out);
        }
        let value: Value = serde_json::from_str(raw)
            .map_err(|e| format!("PLAN_LIMITS is not valid JSON ({e}): expected an object like {{\"free\":100,\"pro\":{{\"ingest\":20000,\"query\":5000}}}}"))?;
        let Value::Object(plans) = value else {
            return Err(
                "PLAN_LIMITS must be a JSON object keyed by plan (free, pro, enterprise)".into(),
            );
        };
        for (plan, limit) in &plans {
            let Some(p) = PLANS.iter().position(|known| known == plan) else {
                return Err(format!(
                    "PLAN_LIMITS: unknown plan '{}': the plans are {}",
                    clip(plan),
                    PLANS.join(", ")
                ));
            };
            match limit {
                Value::Object(quotas) => {
                    for (quota, n) in quotas {
                        let Some(q) = Quota::parse(quota) else {
                            return Err(format!(
                                "PLAN_LIMITS.{plan}: unknown quota '{}': the quotas are ingest, query, events, domains, actions, goals, prop_keys, prop_values",
                                clip(quota)
                            ));
                        };
                        out.limits[p][q as usize] = positive(n, &format!("{plan}.{quota}"))?;
                    }
                }
                n => {
                    let n = positive(n, plan)?;
                    out.limits[p][Quota::Ingest as usize] = n;
                    out.limits[p][Quota::Query as usize] = n;
                }
            }
        }
        Ok(out)
    }

    /// Requests (or events) per hour that `plan` allows for `quota`. An unknown plan gets the free
    /// plan's limit.
    pub fn per_hour(&self, plan: &str, quota: Quota) -> u32 {
        let p = PLANS.iter().position(|known| *known == plan).unwrap_or(0);
        self.limits[p][quota as usize]
    }

    /// The cap on distinct values (`Domains`, `Actions`) for `plan`; the same table as
    /// [`Self::per_hour`], named for what it means.
    pub fn cap(&self, plan: &str, quota: Quota) -> u32 {
        self.per_hour(plan, quota)
    }
}

/// A positive integer that fits in `u32`, or an error naming where it was.
fn positive(v: &Value, at: &str) -> Result<u32, String> {
    v.as_u64()
        .filter(|n| *n > 0)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            format!(
                "PLAN_LIMITS.{at}: expected a positive integer (requests per hour) up to {}, or an object {{\"ingest\":N,\"query\":N}}",
                u32::MAX
            )
        })
}

/// A name from the variable, shortened for an error message.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_unset_or_empty() {
        for raw in [None, Some(""), Some("  ")] {
            let l = PlanLimits::parse(raw).unwrap();
            assert_eq!(l, PlanLimits::default());
            assert_eq!(l.per_hour("free", Quota::Ingest), 100);
            assert_eq!(l.per_hour("pro", Quota::Query), 10_000);
            assert_eq!(l.per_hour("enterprise", Quota::Ingest), 100_000);
        }
    }

    #[test]
    fn named_plans_and_quotas_override_the_rest_keep_defaults() {
        let l = PlanLimits::parse(Some(
            r#"{"free":250,"pro":{"ingest":20000,"query":5000},"enterprise":{"query":7}}"#,
        ))
        .unwrap();
        assert_eq!(l.per_hour("free", Quota::Ingest), 250);
        assert_eq!(l.per_hour("free", Quota::Query), 250);
        assert_eq!(l.per_hour("pro", Quota::Ingest), 20_000);
        assert_eq!(l.per_hour("pro", Quota::Query), 5_000);
        assert_eq!(l.per_hour("enterprise", Quota::Ingest), 100_000);
        assert_eq!(l.per_hour("enterprise", Quota::Query), 7);
    }

    #[test]
    fn an_unknown_plan_is_limited_like_free() {
        let l = PlanLimits::parse(Some(r#"{"free":3}"#)).unwrap();
        assert_eq!(l.per_hour("platinum", Quota::Ingest), 3);
        assert_eq!(l.per_hour("", Quota::Query), 3);
    }

    #[test]
    fn rejects_what_is_not_a_limit_saying_why() {
        let cases = [
            (r#"{"gold":5}"#, "unknown plan 'gold'"),
            (r#"{"pro":{"writes":5}}"#, "unknown quota 'writes'"),
            (
                r#"{"free":0}"#,
                "PLAN_LIMITS.free: expected a positive integer",
            ),
            (r#"{"free":-1}"#, "positive integer"),
            (r#"{"free":1.5}"#, "positive integer"),
            (r#"{"free":"100"}"#, "positive integer"),
            (r#"{"free":null}"#, "positive integer"),
            (r#"{"pro":{"query":0}}"#, "PLAN_LIMITS.pro.query"),
            (r#"{"free":4294967296}"#, "positive integer"),
            ("[100]", "must be a JSON object"),
            ("{free:1}", "not valid JSON"),
        ];
        for (raw, expected) in cases {
            let e = PlanLimits::parse(Some(raw)).unwrap_err();
            assert!(e.contains(expected), "{raw}: {e}");
        }
    }

    #[test]
    fn quota_names_are_stable() {
        assert_eq!(Quota::Ingest.as_str(), "ingest");
        assert_eq!(Quota::Query.as_str(), "query");
        for &q in Quota::ALL {
            assert_eq!(Quota::parse(q.as_str()), Some(q));
        }
    }

    #[test]
    fn event_quotas_and_caps_have_defaults_and_can_be_set() {
        let l =
            PlanLimits::parse(Some(r#"{"free":{"events":500,"domains":2},"pro":300}"#)).unwrap();
        assert_eq!(l.per_hour("free", Quota::Events), 500);
        assert_eq!(l.cap("free", Quota::Domains), 2);
        assert_eq!(l.cap("free", Quota::Actions), 50);
        // A bare number sets the request quotas only.
        assert_eq!(l.per_hour("pro", Quota::Ingest), 300);
        assert_eq!(l.per_hour("pro", Quota::Events), 100_000);
        assert_eq!(l.per_hour("enterprise", Quota::Events), 1_000_000);
    }
}
