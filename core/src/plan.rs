//! Plan quotas: how many ingest and query requests per hour a tenant's plan allows.
//!
//! The limits come from the `PLAN_LIMITS` variable ([`PlanLimits::parse`]); plans and quotas it does not
//! name keep their defaults, so an operator only writes what differs. The worker counts requests in an
//! hourly [`crate::ratelimit::Window`] per tenant and quota, next to the per-token per-second bucket.

use serde_json::Value;

/// The plans a tenant can be on, in the order they are reported.
pub const PLANS: [&str; 3] = ["free", "pro", "enterprise"];

/// Default requests per hour for each plan (both quotas), in [`PLANS`] order.
const DEFAULTS: [u32; 3] = [100, 10_000, 100_000];

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quota {
    /// `POST /v0/events` requests.
    Ingest,
    /// `GET /v0/pipes/...` (and other read-token) requests.
    Query,
}

impl Quota {
    /// The stable name: `ingest` or `query` (as in `PLAN_LIMITS` and limiter keys).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Query => "query",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Self::Ingest),
            "query" => Some(Self::Query),
            _ => None,
        }
    }
}

/// Requests per hour per plan and quota. Defaults: free 100, pro 10 000, enterprise 100 000, for both
/// ingest and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLimits {
    /// `[ingest, query]` per plan, in [`PLANS`] order.
    limits: [[u32; 2]; 3],
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            limits: DEFAULTS.map(|n| [n, n]),
        }
    }
}

impl PlanLimits {
    /// Parses the `PLAN_LIMITS` variable: a JSON object like
    /// `{"free":100,"pro":{"ingest":20000,"query":5000}}`. A number sets both quotas of a plan; an object
    /// sets the quotas it names. Plans and quotas not named keep their default; `None` or an empty (or
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
                                "PLAN_LIMITS.{plan}: unknown quota '{}': the quotas are ingest, query",
                                clip(quota)
                            ));
                        };
                        out.limits[p][q as usize] = positive(n, &format!("{plan}.{quota}"))?;
                    }
                }
                n => {
                    let n = positive(n, plan)?;
                    out.limits[p] = [n, n];
                }
            }
        }
        Ok(out)
    }

    /// Requests per hour that `plan` allows for `quota`. An unknown plan gets the free plan's limit.
    pub fn per_hour(&self, plan: &str, quota: Quota) -> u32 {
        let p = PLANS.iter().position(|known| *known == plan).unwrap_or(0);
        self.limits[p][quota as usize]
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
    }
}
