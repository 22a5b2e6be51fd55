//! Caps on distinct values a tenant can create: domains and action names.
//!
//! `domain` and `action` are free text in every event, and each distinct value becomes a row of its own
//! (`domains`, `actions`) forever. A plan caps how many a tenant may have ([`crate::plan::Quota`]
//! `Domains`, `Actions`); events that would add a value beyond the cap are quarantined with a reason,
//! counted in usage, and never reach the rollups. Values the tenant already has always pass.

use std::collections::BTreeSet;

use crate::event::{EnrichedEvent, QuarantineReason, Quarantined};
use crate::sql::Statement;

/// Distinct values a tenant has, and how many more it may add.
#[derive(Debug, Clone, Default)]
pub struct Known {
    values: BTreeSet<String>,
    cap: usize,
}

impl Known {
    /// The tenant's existing values (at most `cap + 1` are needed to decide) and its cap.
    pub fn new(values: impl IntoIterator<Item = String>, cap: u32) -> Self {
        Self {
            values: values.into_iter().collect(),
            cap: cap as usize,
        }
    }

    /// Whether `value` may be used: it is known, or there is room for it (then it becomes known).
    fn admit(&mut self, value: &str) -> bool {
        if self.values.contains(value) {
            return true;
        }
        if self.values.len() < self.cap {
            self.values.insert(value.to_owned());
            return true;
        }
        false
    }
}

/// Splits `events` (one tenant's) into those within the caps and quarantined rows for the rest, in
/// order. Bot events are checked too: they feed `domains`-independent counters only, but an unbounded
/// action name is still an unbounded name.
pub fn enforce(
    events: Vec<EnrichedEvent>,
    domains: &mut Known,
    actions: &mut Known,
) -> (Vec<EnrichedEvent>, Vec<Quarantined>) {
    let mut kept = Vec::with_capacity(events.len());
    let mut refused = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        let reason = if !domains.admit(&e.domain) {
            Some(QuarantineReason::DomainLimit)
        } else if !actions.admit(&e.action) {
            Some(QuarantineReason::ActionLimit)
        } else {
            None
        };
        match reason {
            None => kept.push(e),
            Some(reason) => refused.push(Quarantined {
                line: i + 1,
                reason,
                row: serde_json::to_string(&e).unwrap_or_default(),
            }),
        }
    }
    (kept, refused)
}

/// The queries that read a tenant's existing domains and actions, at most `limit` of each.
pub fn lookups(tenant_id: &str, limit: u32) -> [Statement; 2] {
    [
        Statement::new(
            "SELECT domain AS value FROM domains WHERE tenant_id = ? LIMIT ?",
            vec![tenant_id.into(), i64::from(limit).into()],
        ),
        Statement::new(
            "SELECT DISTINCT action AS value FROM actions WHERE tenant_id = ? LIMIT ?",
            vec![tenant_id.into(), i64::from(limit).into()],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(domain: &str, action: &str) -> EnrichedEvent {
        EnrichedEvent {
            tenant_id: "t".into(),
            domain: domain.into(),
            action: action.into(),
            ..Default::default()
        }
    }

    #[test]
    fn known_values_always_pass_and_new_ones_fill_the_cap_then_quarantine() {
        let mut domains = Known::new(["a.com".to_string()], 2);
        let mut actions = Known::new(["page_hit".to_string()], 2);
        let (kept, refused) = enforce(
            vec![
                ev("a.com", "page_hit"),
                ev("b.com", "page_hit"),
                ev("c.com", "page_hit"),
                ev("a.com", "signup"),
                ev("b.com", "spam-1"),
                ev("a.com", "page_hit"),
            ],
            &mut domains,
            &mut actions,
        );
        let kept: Vec<_> = kept
            .iter()
            .map(|e| (e.domain.as_str(), e.action.as_str()))
            .collect();
        assert_eq!(
            kept,
            [
                ("a.com", "page_hit"),
                ("b.com", "page_hit"),
                ("a.com", "signup"),
                ("a.com", "page_hit")
            ]
        );
        let reasons: Vec<_> = refused.iter().map(|q| (q.line, q.reason)).collect();
        assert_eq!(
            reasons,
            [
                (3, QuarantineReason::DomainLimit),
                (5, QuarantineReason::ActionLimit)
            ]
        );
        assert!(refused[0].row.contains("c.com"));
    }

    #[test]
    fn a_tenant_already_past_its_cap_keeps_its_values_but_adds_none() {
        // The plan was lowered after the values were created.
        let mut domains = Known::new(["a".to_string(), "b".to_string(), "c".to_string()], 1);
        let mut actions = Known::new(["page_hit".to_string()], 10);
        let (kept, refused) = enforce(
            vec![ev("c", "page_hit"), ev("d", "page_hit")],
            &mut domains,
            &mut actions,
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(refused[0].reason, QuarantineReason::DomainLimit);
    }
}
