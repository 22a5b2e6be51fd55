//! Web vitals (issue #12): the compact rollup the `web_vitals_*` endpoints read, and the statistics
//! they compute from it.
//!
//! The tracker's web-vitals module sends `web_vital` events in the shape of Tinybird's web analytics
//! kit (payload `name`, `value`, …). Each measurement is counted in `web_vitals_daily`
//! (`migrations/0011_web_vitals.sql`) under its UTC day, metric, domain, page, a log-scale bucket and
//! its standard rating; the endpoints never read events, so their cost does not grow with traffic.
//! Buckets are an eighth of a binary order of magnitude wide, so a percentile read from them is within
//! about 4.5 % of the exact value; ratings are exact because they are counted, not derived from
//! buckets. Bots are not counted. Everything here is pure: the consumer runs the statements.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::event::EnrichedEvent;
use crate::sql::{SqlValue, Statement};

/// The five metrics: name, unit, good ≤ first, needs improvement ≤ second (poor above), and the
/// largest value kept (larger ones are measurement errors, as the kit treats them). web.dev's
/// thresholds; CLS is unitless.
pub const METRICS: [(&str, &str, f64, f64, f64); 5] = [
    ("LCP", "ms", 2500.0, 4000.0, 60_000.0),
    ("INP", "ms", 200.0, 500.0, 60_000.0),
    ("CLS", "score", 0.1, 0.25, 10.0),
    ("FCP", "ms", 1800.0, 3000.0, 60_000.0),
    ("TTFB", "ms", 800.0, 1800.0, 60_000.0),
];

/// The three ratings, in the order of their codes.
pub const RATINGS: [&str; 3] = ["good", "needs-improvement", "poor"];

/// Buckets per doubling of the value.
const STEPS_PER_DOUBLING: f64 = 8.0;

/// The metric's entry in [`METRICS`].
pub fn metric(name: &str) -> Option<&'static (&'static str, &'static str, f64, f64, f64)> {
    METRICS.iter().find(|m| m.0 == name)
}

/// The standard rating code of `value` for `metric` (0 good, 1 needs improvement, 2 poor).
pub fn rating(metric: &str, value: f64) -> Option<u8> {
    let (_, _, good, ni, _) = self::metric(metric)?;
    Some(if value <= *good {
        0
    } else if value <= *ni {
        1
    } else {
        2
    })
}

/// Thousandths for CLS, so its buckets are as fine as the millisecond metrics'.
fn scale(metric: &str) -> f64 {
    if metric == "CLS" {
        1000.0
    } else {
        1.0
    }
}

/// The histogram bucket of `value` (≥ 0).
pub fn bucket(metric: &str, value: f64) -> i64 {
    ((1.0 + value * scale(metric)).log2() * STEPS_PER_DOUBLING).floor() as i64
}

/// The value a bucket stands for: the geometric middle of its bounds.
pub fn bucket_value(metric: &str, bucket: i64) -> f64 {
    let mid = ((bucket as f64 + 0.5) / STEPS_PER_DOUBLING).exp2() - 1.0;
    (mid / scale(metric)).max(0.0)
}

/// The item of rank ⌈q·n⌉ (0 < q ≤ 1) among counted items `(item, count)` given in any order, the
/// items ordered as `T` orders them. `None` when there are none.
fn at_rank<T: Ord + Copy>(counted: &[(T, u64)], q: f64) -> Option<T> {
    let mut sorted: Vec<_> = counted.to_vec();
    sorted.sort_unstable();
    let n: u64 = sorted.iter().map(|b| b.1).sum();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    let mut seen = 0;
    for (item, c) in sorted {
        seen += c;
        if seen >= rank {
            return Some(item);
        }
    }
    None
}

/// The `q`-quantile (0 < q ≤ 1) of a histogram given as `(bucket, count)` in any order: the value of
/// the bucket that holds the measurement of rank ⌈q·n⌉. `None` when empty.
pub fn quantile(metric: &str, histogram: &[(i64, u64)], q: f64) -> Option<f64> {
    at_rank(histogram, q).map(|b| bucket_value(metric, b))
}

/// The same over a histogram given as `((bucket, rating), count)` (rating 0 good, 1 needs
/// improvement, 2 poor), with the rating of the measurement of that rank. The rating is exact even
/// where a bucket straddles a threshold: within a bucket, a better rating means a smaller value, so
/// ordering by (bucket, rating) orders the measurements as their values do, while the bucket's middle
/// may sit on the other side of the threshold.
pub fn quantile_rated(metric: &str, histogram: &[((i64, u8), u64)], q: f64) -> Option<(f64, u8)> {
    at_rank(histogram, q).map(|(b, rating)| (bucket_value(metric, b), rating))
}

/// A measurement read from a `web_vital` event: metric, value, UTC day start, domain, page.
fn measurement(e: &EnrichedEvent) -> Option<(&'static str, f64)> {
    if e.action != "web_vital" || e.is_bot {
        return None;
    }
    let payload: serde_json::Map<String, Value> = serde_json::from_str(&e.payload).ok()?;
    let (name, _, _, _, max) = metric(payload.get("name")?.as_str()?)?;
    let value = payload.get("value")?.as_f64()?;
    (value.is_finite() && (0.0..=*max).contains(&value)).then_some((name, value))
}

/// The upserts that count the batch's web vitals, one per (tenant, day, metric, domain, page, bucket,
/// rating) key.
pub fn statements_for(events: &[EnrichedEvent]) -> Vec<Statement> {
    type Key<'a> = (&'a str, i64, &'static str, &'a str, &'a str, i64, u8);
    let mut cells: BTreeMap<Key, (i64, f64)> = BTreeMap::new();
    for e in events {
        let Some((name, value)) = measurement(e) else {
            continue;
        };
        let day = e.ts_secs() - e.ts_secs().rem_euclid(86_400);
        let rating = rating(name, value).unwrap_or(2);
        let key = (
            e.tenant_id.as_str(),
            day,
            name,
            e.domain.as_str(),
            e.pathname.as_str(),
            bucket(name, value),
            rating,
        );
        let cell = cells.entry(key).or_default();
        cell.0 += 1;
        cell.1 += value;
    }
    cells
        .into_iter()
        .map(|((tenant, day, metric, domain, path, bucket, rating), (n, total))| {
            Statement::new(
                "INSERT INTO web_vitals_daily (tenant_id, day, metric, domain, pathname, bucket, rating, n, total) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, day, metric, domain, pathname, bucket, rating) \
                 DO UPDATE SET n = n + excluded.n, total = total + excluded.total",
                vec![
                    tenant.into(),
                    SqlValue::Int(day),
                    metric.into(),
                    domain.into(),
                    path.into(),
                    SqlValue::Int(bucket),
                    SqlValue::Int(i64::from(rating)),
                    SqlValue::Int(n),
                    SqlValue::Real(total),
                ],
            )
        })
        .collect()
}

/// The kit's route of a page: `/` for the root, else its first path segment (`/blog/x` → `blog`).
pub fn route(pathname: &str) -> &str {
    match pathname.trim_start_matches('/').split('/').next() {
        Some("") | None => "/",
        Some(first) => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_use_the_standard_thresholds() {
        assert_eq!(rating("LCP", 2500.0), Some(0));
        assert_eq!(rating("LCP", 2500.1), Some(1));
        assert_eq!(rating("INP", 501.0), Some(2));
        assert_eq!(rating("CLS", 0.1), Some(0));
        assert_eq!(rating("CLS", 0.25), Some(1));
        assert_eq!(rating("TTFB", 1800.0), Some(1));
        assert_eq!(rating("FID", 1.0), None);
    }

    #[test]
    fn buckets_are_within_five_percent() {
        for (m, v) in [
            ("LCP", 1234.0),
            ("INP", 48.0),
            ("CLS", 0.07),
            ("TTFB", 59_000.0),
            ("FCP", 30.0),
        ] {
            let back = bucket_value(m, bucket(m, v));
            assert!((back - v).abs() / v < 0.05, "{m} {v} → {back}");
        }
        // Below about 10 ms the offset of one makes buckets coarser, by less than a millisecond.
        assert!((bucket_value("FCP", bucket("FCP", 3.0)) - 3.0).abs() < 0.5);
        assert!(bucket("LCP", 0.0) == 0 && bucket_value("LCP", 0) < 0.05);
        assert!(bucket("LCP", 60_000.0) < 130);
    }

    #[test]
    fn a_quantiles_rating_is_its_measurements_even_in_a_bucket_across_the_threshold() {
        // INP 199 ms is good, 201 ms needs improvement; both share a bucket whose middle is on one side.
        let (a, b) = (bucket("INP", 199.0), bucket("INP", 201.0));
        assert_eq!(a, b, "the test needs a bucket that straddles 200 ms");
        let rating_of = |h: &[((i64, u8), u64)], q| quantile_rated("INP", h, q).map(|x| x.1);
        let one = |v: f64| vec![((bucket("INP", v), rating("INP", v).unwrap()), 1)];
        assert_eq!(rating_of(&one(199.0), 0.75), Some(0));
        assert_eq!(rating_of(&one(201.0), 0.75), Some(1));
        // Three good and one needing improvement in that bucket: p75 is the third good one.
        let h = vec![((a, 0), 3), ((a, 1), 1)];
        assert_eq!(rating_of(&h, 0.75), Some(0));
        assert_eq!(rating_of(&h, 0.99), Some(1));
        assert_eq!(rating_of(&[], 0.75), None);
    }

    #[test]
    fn quantiles_pick_the_bucket_of_the_rank() {
        // 100 measurements 1..=100 ms: p75 is about 75.
        let mut h: BTreeMap<i64, u64> = BTreeMap::new();
        for v in 1..=100 {
            *h.entry(bucket("INP", f64::from(v))).or_default() += 1;
        }
        let h: Vec<_> = h.into_iter().collect();
        let p75 = quantile("INP", &h, 0.75).unwrap();
        assert!((p75 - 75.0).abs() < 4.0, "{p75}");
        assert!(quantile("INP", &h, 1.0).unwrap() > 95.0);
        assert_eq!(quantile("INP", &[], 0.75), None);
    }

    #[test]
    fn routes_are_the_first_segment() {
        assert_eq!(route("/"), "/");
        assert_eq!(route(""), "/");
        assert_eq!(route("/blog/x"), "blog");
        assert_eq!(route("/pricing"), "pricing");
    }

    fn vital(name: &str, value: f64, bot: bool) -> EnrichedEvent {
        EnrichedEvent {
            ts: 1_763_000_000_000,
            tenant_id: "t".into(),
            domain: "a.example".into(),
            action: "web_vital".into(),
            pathname: "/p".into(),
            is_bot: bot,
            payload: serde_json::json!({"name": name, "value": value, "rating": "poor"})
                .to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn one_upsert_per_cell_and_nothing_for_bots_other_events_or_bad_values() {
        let events = [
            vital("LCP", 1000.0, false),
            vital("LCP", 1000.0, false),
            vital("LCP", 5000.0, false),
            vital("LCP", 1000.0, true),
            vital("LCP", -1.0, false),
            vital("LCP", 90_000.0, false),
            vital("FID", 10.0, false),
            EnrichedEvent {
                action: "page_hit".into(),
                ..vital("LCP", 1.0, false)
            },
        ];
        let s = statements_for(&events);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].binds[1],
            SqlValue::Int(1_763_000_000 - 1_763_000_000 % 86_400)
        );
        // The rating comes from the value, not from the payload's claim.
        assert_eq!(
            (&s[0].binds[6], &s[0].binds[7]),
            (&SqlValue::Int(0), &SqlValue::Int(2))
        );
        assert_eq!(
            (&s[1].binds[6], &s[1].binds[7]),
            (&SqlValue::Int(2), &SqlValue::Int(1))
        );
    }
}
