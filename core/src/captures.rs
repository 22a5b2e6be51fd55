//! Outbound link clicks, file downloads and 404 pages (issue #12): the tracker's opt-in captures
//! counted per tenant, UTC day, domain and target in `captures_daily`
//! (`migrations/0011_web_vitals.sql`), and the endpoints `top_outbound_links`, `top_file_downloads`
//! and `top_not_found_pages` that read it. Pure: the consumer and the query route run the statements.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::event::EnrichedEvent;
use crate::sql::{SqlValue, Statement};

/// Longest target kept; longer ones are cut (at a character boundary).
const MAX_TARGET: usize = 512;

/// Each capture: event action, stored kind, payload key of the target, endpoint, output column.
pub const CAPTURES: [(&str, &str, &str, &str, &str); 3] = [
    (
        "Outbound Link: Click",
        "outbound",
        "url",
        "top_outbound_links",
        "url",
    ),
    (
        "File Download",
        "download",
        "url",
        "top_file_downloads",
        "url",
    ),
    ("404", "404", "path", "top_not_found_pages", "pathname"),
];

/// The kind and target of a capture event, if it is one (bots are not counted).
pub fn capture(e: &EnrichedEvent) -> Option<(&'static str, String)> {
    let (_, kind, field, ..) = CAPTURES.iter().find(|c| c.0 == e.action)?;
    if e.is_bot {
        return None;
    }
    let payload: serde_json::Map<String, Value> = serde_json::from_str(&e.payload).ok()?;
    let mut target = payload.get(*field)?.as_str()?.to_owned();
    if target.is_empty() {
        return None;
    }
    let mut cut = MAX_TARGET.min(target.len());
    while !target.is_char_boundary(cut) {
        cut -= 1;
    }
    target.truncate(cut);
    Some((kind, target))
}

/// The upserts that count the batch's captures, one per (tenant, day, kind, domain, target).
pub fn statements_for(events: &[EnrichedEvent]) -> Vec<Statement> {
    let mut cells: BTreeMap<(&str, i64, &str, &str, String), i64> = BTreeMap::new();
    for e in events {
        if let Some((kind, target)) = capture(e) {
            let day = e.ts_secs() - e.ts_secs().rem_euclid(86_400);
            *cells
                .entry((&e.tenant_id, day, kind, &e.domain, target))
                .or_default() += 1;
        }
    }
    cells
        .into_iter()
        .map(|((tenant, day, kind, domain, target), n)| {
            Statement::new(
                "INSERT INTO captures_daily (tenant_id, day, kind, domain, target, n) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, day, kind, domain, target) DO UPDATE SET n = n + excluded.n",
                vec![
                    tenant.into(),
                    SqlValue::Int(day),
                    kind.into(),
                    domain.into(),
                    target.into(),
                    SqlValue::Int(n),
                ],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(action: &str, payload: Value) -> EnrichedEvent {
        EnrichedEvent {
            ts: 1_763_000_000_000,
            tenant_id: "t".into(),
            domain: "a.example".into(),
            action: action.into(),
            payload: payload.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn captures_are_counted_by_target_and_other_events_are_not() {
        let out = serde_json::json!({"url": "https://b.example/x"});
        let events = [
            ev("Outbound Link: Click", out.clone()),
            ev("Outbound Link: Click", out.clone()),
            ev(
                "File Download",
                serde_json::json!({"url": "https://a.example/r.pdf"}),
            ),
            ev("404", serde_json::json!({"path": "/nope"})),
            ev("404", serde_json::json!({})),
            ev("signup", out.clone()),
            EnrichedEvent {
                is_bot: true,
                ..ev("404", serde_json::json!({"path": "/bot"}))
            },
        ];
        let s = statements_for(&events);
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.binds[2].clone(), s.binds[4].clone(), s.binds[5].clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("404".into(), "/nope".into(), SqlValue::Int(1)),
                (
                    "download".into(),
                    "https://a.example/r.pdf".into(),
                    SqlValue::Int(1)
                ),
                (
                    "outbound".into(),
                    "https://b.example/x".into(),
                    SqlValue::Int(2)
                ),
            ]
        );
        let long = ev(
            "404",
            serde_json::json!({"path": format!("/{}", "é".repeat(400))}),
        );
        assert!(capture(&long).unwrap().1.len() <= MAX_TARGET);
    }
}
