//! Usage metering for usage-based billing: per tenant and UTC day, events accepted and quarantined, bot
//! hits, queries answered and bytes archived to R2 (`usage_daily`, `migrations/0004_tenant_operations.sql`).
//!
//! The consumer adds a batch's counters in the same D1 transaction that applies the batch (so each batch
//! is metered exactly once); the query route adds one query after answering. Events are billed on the
//! day they *arrived* (the batch's `received_at`), not the day their timestamp names, so a late import of
//! old events is billed when it happened and a closed day's usage never changes afterwards.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use serde_json::{json, Map, Value};

use crate::event::QueueBatch;
use crate::sql::{count, Statement};
use crate::time::{day_string, parse_day, DAY_SECS};

/// The counters of `usage_daily`, in column order.
pub const COUNTERS: [&str; 5] = [
    "events_accepted",
    "events_quarantined",
    "bot_hits",
    "queries",
    "bytes_archived",
];

/// Amounts to add to one tenant's counters of one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageDelta {
    /// Events accepted (bots included: they were ingested and archived).
    pub events_accepted: i64,
    /// Rows quarantined.
    pub events_quarantined: i64,
    /// Accepted events flagged `is_bot`.
    pub bot_hits: i64,
    /// Analytics queries answered.
    pub queries: i64,
    /// Bytes written to the R2 archive (events and quarantine).
    pub bytes_archived: i64,
}

impl UsageDelta {
    /// One answered query.
    pub fn query() -> Self {
        Self {
            queries: 1,
            ..Self::default()
        }
    }

    fn values(&self) -> [i64; 5] {
        [
            self.events_accepted,
            self.events_quarantined,
            self.bot_hits,
            self.queries,
            self.bytes_archived,
        ]
    }
}

impl AddAssign<&UsageDelta> for UsageDelta {
    fn add_assign(&mut self, o: &UsageDelta) {
        self.events_accepted += o.events_accepted;
        self.events_quarantined += o.events_quarantined;
        self.bot_hits += o.bot_hits;
        self.queries += o.queries;
        self.bytes_archived += o.bytes_archived;
    }
}

/// Upsert adding `delta` to the tenant's counters of `day` (`YYYY-MM-DD`): the first write of a day
/// inserts, later ones add (`ON CONFLICT (tenant_id, day) DO UPDATE SET col = col + excluded.col`).
pub fn add(tenant_id: &str, day: &str, delta: &UsageDelta) -> Statement {
    upsert(tenant_id, day, delta, false)
}

/// [`add`], skipped while the tenant is erased (a tombstone in `tenants` of the same database): for
/// counts written after the request that produced them, such as served queries flushed a second later,
/// which must not bring a row back after an erasure. A re-created tenant is active again and counts.
pub fn add_unless_erased(tenant_id: &str, day: &str, delta: &UsageDelta) -> Statement {
    upsert(tenant_id, day, delta, true)
}

fn upsert(tenant_id: &str, day: &str, delta: &UsageDelta, unless_erased: bool) -> Statement {
    let mut binds = vec![tenant_id.into(), day.into()];
    binds.extend(delta.values().map(Into::into));
    let sets: Vec<String> = COUNTERS
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect();
    let source = if unless_erased {
        binds.push(tenant_id.into());
        "SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS \
         (SELECT 1 FROM tenants WHERE tenant_id = ? AND status = 'deleted')"
    } else {
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    };
    Statement::new(
        format!(
            "INSERT INTO usage_daily (tenant_id, day, {}) {source} \
             ON CONFLICT (tenant_id, day) DO UPDATE SET {}",
            COUNTERS.join(", "),
            sets.join(", ")
        ),
        binds,
    )
}

/// The day (of the batch's `received_at`, UTC) and counters of one queue batch. `archived_bytes` is what
/// the caller wrote to R2 for this batch.
pub fn deltas_for_batch(batch: &QueueBatch, archived_bytes: i64) -> (String, UsageDelta) {
    let day = day_string(batch.received_at.div_euclid(1000));
    let delta = UsageDelta {
        events_accepted: batch.events.len() as i64,
        events_quarantined: batch.quarantined.len() as i64,
        bot_hits: batch.events.iter().filter(|e| e.is_bot).count() as i64,
        queries: 0,
        bytes_archived: archived_bytes,
    };
    (day, delta)
}

/// The [`add`] statements for a group of queue batches (each with the bytes archived for it): one per
/// tenant and day, in tenant and day order.
pub fn statements_for_batches(batches: &[(&QueueBatch, i64)]) -> Vec<Statement> {
    let mut sums: BTreeMap<(&str, String), UsageDelta> = BTreeMap::new();
    for (batch, bytes) in batches {
        let (day, delta) = deltas_for_batch(batch, *bytes);
        *sums.entry((batch.tenant_id.as_str(), day)).or_default() += &delta;
    }
    sums.iter()
        .map(|((tenant, day), delta)| add(tenant, day, delta))
        .collect()
}

/// The tenant's usage rows from `from_day` to `to_day` (inclusive, `YYYY-MM-DD`), ordered by day.
pub fn select(tenant_id: &str, from_day: &str, to_day: &str) -> Statement {
    Statement::new(
        format!(
            "SELECT day, {} FROM usage_daily WHERE tenant_id = ? AND day >= ? AND day <= ? ORDER BY day",
            COUNTERS.join(", ")
        ),
        vec![tenant_id.into(), from_day.into(), to_day.into()],
    )
}

/// The usage response: `{"tenant_id", "date_from", "date_to", "data": [{"day", counters...}],
/// "totals": {counters...}}`. Days without a row are left out of `data` (they count zero).
pub fn to_json(
    tenant_id: &str,
    from_day: &str,
    to_day: &str,
    rows: &[Map<String, Value>],
) -> Value {
    let mut totals = [0_i64; 5];
    let data: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut out = Map::new();
            out.insert("day".into(), row.get("day").cloned().unwrap_or(Value::Null));
            for (i, c) in COUNTERS.iter().enumerate() {
                let n = count(row.get(*c));
                totals[i] += n;
                out.insert((*c).into(), n.into());
            }
            Value::Object(out)
        })
        .collect();
    let totals: Map<String, Value> = COUNTERS
        .iter()
        .zip(totals)
        .map(|(c, n)| ((*c).to_owned(), n.into()))
        .collect();
    json!({
        "tenant_id": tenant_id,
        "date_from": from_day,
        "date_to": to_day,
        "data": data,
        "totals": totals,
    })
}

/// Longest usage range a request may ask for, in days.
pub const MAX_RANGE_DAYS: i64 = 400;

/// The usage range of a request's `date_from` / `date_to` (`YYYY-MM-DD`, inclusive; empty = absent).
/// Defaults: `date_to` today, `date_from` the first of `date_to`'s month. The error names the parameter.
pub fn parse_range(
    date_from: Option<&str>,
    date_to: Option<&str>,
    now_secs: i64,
) -> Result<(String, String), String> {
    let day = |name: &str, v: Option<&str>| -> Result<Option<i64>, String> {
        match v.filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_day(s)
                .map(Some)
                .ok_or_else(|| format!("invalid '{name}': expected a date as YYYY-MM-DD")),
        }
    };
    let to = day("date_to", date_to)?.unwrap_or(now_secs.div_euclid(DAY_SECS));
    let from = match day("date_from", date_from)? {
        Some(d) => d,
        None => parse_day(&format!("{}-01", &day_string(to * DAY_SECS)[..7])).unwrap_or(to),
    };
    if from > to {
        return Err("'date_from' must not be after 'date_to'".into());
    }
    if to - from >= MAX_RANGE_DAYS {
        return Err(format!(
            "the range from 'date_from' to 'date_to' is longer than {MAX_RANGE_DAYS} days: ask for less"
        ));
    }
    Ok((day_string(from * DAY_SECS), day_string(to * DAY_SECS)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EnrichedEvent, QuarantineReason, Quarantined};
    use crate::sql::SqlValue;

    fn event(is_bot: bool) -> EnrichedEvent {
        EnrichedEvent {
            ts: 0, // the event's own time does not decide the billing day
            tenant_id: "acme".into(),
            domain: "acme.com".into(),
            action: "page_hit".into(),
            visitor_id: "v".into(),
            pathname: "/".into(),
            is_bot,
            payload: "{}".into(),
            ..Default::default()
        }
    }

    fn batch(tenant: &str, received_at: i64, events: usize, bots: usize, bad: usize) -> QueueBatch {
        QueueBatch {
            batch_id: format!("{tenant}-{received_at}"),
            tenant_id: tenant.into(),
            received_at,
            generation: None,
            events: (0..events).map(|i| event(i < bots)).collect(),
            quarantined: (0..bad)
                .map(|line| Quarantined {
                    line,
                    reason: QuarantineReason::InvalidJson,
                    row: "x".into(),
                })
                .collect(),
            spool: None,
        }
    }

    #[test]
    fn a_batch_is_billed_on_the_day_it_arrived() {
        // 2025-08-13T23:59:59.999Z
        let b = batch("acme", 1_755_129_599_999, 5, 2, 3);
        let (day, d) = deltas_for_batch(&b, 1234);
        assert_eq!(day, "2025-08-13");
        assert_eq!(
            d,
            UsageDelta {
                events_accepted: 5,
                events_quarantined: 3,
                bot_hits: 2,
                queries: 0,
                bytes_archived: 1234,
            }
        );
        assert_eq!(
            deltas_for_batch(&batch("acme", 1_755_129_600_000, 0, 0, 0), 0).0,
            "2025-08-14"
        );
    }

    #[test]
    fn batches_group_by_tenant_and_day() {
        let a1 = batch("acme", 1_755_081_662_000, 2, 0, 1);
        let a2 = batch("acme", 1_755_081_663_000, 3, 1, 0);
        let a3 = batch("acme", 1_755_181_662_000, 1, 0, 0);
        let g = batch("globex", 1_755_081_662_000, 1, 1, 0);
        let s = statements_for_batches(&[(&a1, 10), (&g, 5), (&a2, 20), (&a3, 1)]);
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0].binds,
            vec![
                SqlValue::Text("acme".into()),
                SqlValue::Text("2025-08-13".into()),
                SqlValue::Int(5),
                SqlValue::Int(1),
                SqlValue::Int(1),
                SqlValue::Int(0),
                SqlValue::Int(30),
            ]
        );
        assert_eq!(s[1].binds[1], SqlValue::Text("2025-08-14".into()));
        assert_eq!(s[2].binds[0], SqlValue::Text("globex".into()));
    }

    #[test]
    fn statements_bind_everything() {
        let s = add("acme'--", "2025-08-13", &UsageDelta::query());
        assert_eq!(s.sql.matches('?').count(), s.binds.len());
        assert!(s.sql.contains("queries = queries + excluded.queries"));
        let sel = select("acme", "2025-08-01", "2025-08-31");
        assert_eq!(sel.sql.matches('?').count(), 3);
        assert!(sel.sql.ends_with("ORDER BY day"));
    }

    #[test]
    fn json_sums_totals_and_reads_float_counters() {
        let rows: Vec<Map<String, Value>> = vec![
            json!({"day": "2025-08-01", "events_accepted": 10.0, "events_quarantined": 1, "bot_hits": 2, "queries": 3, "bytes_archived": 100}),
            json!({"day": "2025-08-02", "events_accepted": 5, "events_quarantined": null, "bot_hits": 0, "queries": 1.0, "bytes_archived": 50}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let j = to_json("acme", "2025-08-01", "2025-08-31", &rows);
        assert_eq!(j["tenant_id"], "acme");
        assert_eq!(j["date_from"], "2025-08-01");
        assert_eq!(j["date_to"], "2025-08-31");
        assert_eq!(j["data"][0]["events_accepted"], 10);
        assert_eq!(j["data"][1]["events_quarantined"], 0);
        assert_eq!(
            j["totals"],
            json!({"events_accepted": 15, "events_quarantined": 1, "bot_hits": 2, "queries": 4, "bytes_archived": 150})
        );
        let empty = to_json("acme", "2025-08-01", "2025-08-31", &[]);
        assert_eq!(empty["data"], json!([]));
        assert_eq!(empty["totals"]["events_accepted"], 0);
    }

    #[test]
    fn ranges_default_to_this_month_and_are_checked() {
        let now = 1_755_081_662; // 2025-08-13
        let r = |f, t| parse_range(f, t, now);
        assert_eq!(
            r(None, None),
            Ok(("2025-08-01".into(), "2025-08-13".into()))
        );
        assert_eq!(r(Some(""), Some("")), r(None, None));
        assert_eq!(
            r(None, Some("2025-07-20")),
            Ok(("2025-07-01".into(), "2025-07-20".into()))
        );
        assert_eq!(
            r(Some("2025-08-10"), None),
            Ok(("2025-08-10".into(), "2025-08-13".into()))
        );
        assert!(r(Some("2025-8-1"), None)
            .unwrap_err()
            .contains("'date_from'"));
        assert!(r(None, Some("tomorrow")).unwrap_err().contains("'date_to'"));
        assert!(r(Some("2025-08-14"), Some("2025-08-13"))
            .unwrap_err()
            .contains("after"));
        assert!(r(Some("2024-01-01"), None)
            .unwrap_err()
            .contains("400 days"));
        assert!(r(Some("2024-07-10"), None).is_ok());
    }
}
