//! `POST /v0/funnel`: a saved funnel's steps over a date range with the query's filters.
//!
//! Each step `k` is the `/v0/query` plan of `visitors` and `visits` with the body's filters AND
//! `["is", "event:funnel", ["id:k"]]` (the visits that reached step k: the consumer counts a visit under
//! every step up to its furthest). Without other filters (or with one `event:hostname`) each step is a
//! rollup read of the `fn` rows: the range's days × steps, never visits. With visit filters, one
//! statement reads the range's `session_funnels` rows of every step once, each joined to its
//! `sessions` row by primary key, and counts visits and visitors per step
//! ([`super::api::funnel_steps_statement`]; exact; cost grows with the visits that reached a step,
//! not with all visits). With a goal filter, each step is its own `/v0/query` plan.

use serde_json::{json, Map, Value};

use super::api::{
    assemble_query, funnel_steps_statement, plan_query_with_segments, ApiPlan, ApiRequest, Segments,
};
use super::QueryError;
use crate::funnels::{Funnel, Step};
use crate::sql::Statement;

/// The body fields of a funnel query besides `funnel`.
const KEYS: [&str; 5] = ["funnel", "site_id", "date_range", "filters", "timezone"];

/// The statements of a funnel query and what [`assemble_funnel`] needs.
#[derive(Debug, Clone)]
pub struct FunnelPlan {
    /// Run in order (one D1 batch); pass one row set per statement to [`assemble_funnel`].
    pub statements: Vec<Statement>,
    funnel: Funnel,
    steps: Vec<ApiPlan>,
    /// The step values (`id:k`) when one statement reads every step (rows `step, visits,
    /// visitors`); else each step's own statements, in order.
    fused: Option<Vec<String>>,
}

impl FunnelPlan {
    /// The response cache key: the funnel (immutable, ids never reused) and each step's query key
    /// (tenant first).
    pub fn cache_key(&self) -> String {
        let keys: Vec<String> = self.steps.iter().map(ApiPlan::cache_key).collect();
        format!("funnel:{}|{}", self.funnel.id, keys.join("|"))
    }

    /// Whether every step reads only the rollups.
    pub fn uses_rollups(&self) -> bool {
        self.steps.iter().all(ApiPlan::uses_rollups)
    }
}

/// The funnel id a body asks for (`funnel`: a positive whole number).
pub fn funnel_id(body: &Value) -> Result<i64, QueryError> {
    body.get("funnel")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            QueryError::invalid(
                "funnel",
                "must be the id of one of your funnels (GET /v0/funnels)",
            )
        })
}

/// Plans a funnel query for `funnel` (the tenant's, read by the caller with the verified tenant).
pub fn plan_funnel(req: &ApiRequest, funnel: &Funnel) -> Result<FunnelPlan, QueryError> {
    plan_funnel_with_segments(req, funnel, &Segments::new())
}

/// [`plan_funnel`] with the saved segments its filters name ([`super::segment_ids`]), read by the
/// caller for the verified tenant only, as for `POST /v0/query`.
pub fn plan_funnel_with_segments(
    req: &ApiRequest,
    funnel: &Funnel,
    segments: &Segments,
) -> Result<FunnelPlan, QueryError> {
    let body = req
        .body
        .as_object()
        .ok_or_else(|| QueryError::invalid("body", "must be a JSON object"))?;
    if let Some(k) = body.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(QueryError::invalid(
            k.chars().take(64).collect::<String>().as_str(),
            format!("is not a funnel query field (use {})", KEYS.join(", ")),
        ));
    }
    let mut base: Map<String, Value> = body
        .iter()
        .filter(|(k, _)| k.as_str() != "funnel")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    base.insert("metrics".into(), json!(["visitors", "visits"]));
    let user_filters = match body.get("filters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(l)) => l.clone(),
        Some(_) => return Err(QueryError::invalid("filters", "must be a list of filters")),
    };
    let mut steps = Vec::with_capacity(funnel.steps.len());
    let mut statements = Vec::new();
    let values: Vec<String> = (1..=funnel.steps.len())
        .map(|k| crate::funnels::value(funnel.id, k))
        .collect();
    for value in &values {
        let mut b = base.clone();
        let mut filters = user_filters.clone();
        filters.push(json!(["is", "event:funnel", [value]]));
        b.insert("filters".into(), Value::Array(filters));
        let body = Value::Object(b);
        let plan = plan_query_with_segments(
            &ApiRequest {
                body: &body,
                ..*req
            },
            segments,
        )?;
        statements.extend(plan.statements.iter().cloned());
        steps.push(plan);
    }
    // Every step on the visit-level path, each driven by its own step filter (not by an
    // `event:funnel` filter of the body, which comes first), the other filters the same: one
    // statement for all of them.
    let driven = |(p, v): (&ApiPlan, &String)| p.funnel_drive().is_some_and(|d| d.step == *v);
    let fused = match steps.first().and_then(ApiPlan::funnel_drive) {
        Some(drive) if steps.iter().zip(&values).all(driven) => {
            statements = vec![funnel_steps_statement(req.tenant, drive, &values)];
            Some(values)
        }
        _ => None,
    };
    Ok(FunnelPlan {
        statements,
        funnel: funnel.clone(),
        steps,
        fused,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Shapes the rows into `{funnel, steps: [{step, name, kind, visitors, visits, conversion_rate,
/// drop_off, drop_off_rate}], meta, query}`. Rates are percentages of visitors (two decimals):
/// conversion from step 1, drop-off from the previous step.
pub fn assemble_funnel(
    plan: &FunnelPlan,
    results: Vec<Vec<Map<String, Value>>>,
) -> Result<Value, QueryError> {
    if results.len() != plan.statements.len() {
        return Err(QueryError::ResultMismatch(format!(
            "{} row sets for {} statements",
            results.len(),
            plan.statements.len()
        )));
    }
    let mut counts: Vec<(i64, i64)> = Vec::new();
    let mut query = Value::Null;
    if let Some(values) = &plan.fused {
        // Rows `step, visits, visitors`; a step no visit reached has none.
        let rows = results.into_iter().next().unwrap_or_default();
        for value in values {
            let row = rows
                .iter()
                .find(|r| r.get("step").and_then(Value::as_str) == Some(value));
            let int = |name: &str| crate::sql::count(row.and_then(|r| r.get(name)));
            counts.push((int("visitors"), int("visits")));
        }
        query = plan
            .steps
            .first()
            .map_or(Value::Null, |p| p.query_echo().clone());
    } else {
        let mut rest = results.into_iter();
        for p in &plan.steps {
            let mine: Vec<_> = rest.by_ref().take(p.statements.len()).collect();
            let out = assemble_query(p, mine)?;
            let m = &out["results"][0]["metrics"];
            counts.push((m[0].as_i64().unwrap_or(0), m[1].as_i64().unwrap_or(0)));
            if query.is_null() {
                query = out["query"].clone();
            }
        }
    }
    if let Some(q) = query.as_object_mut() {
        // The step filter is the funnel's, not the caller's.
        if let Some(Value::Array(f)) = q.get_mut("filters") {
            f.pop();
        }
        q.remove("metrics");
    }
    let first = counts.first().map_or(0, |c| c.0);
    let steps: Vec<Value> = plan
        .funnel
        .steps
        .iter()
        .zip(&counts)
        .enumerate()
        .map(|(i, (s, &(visitors, visits)))| {
            let prev = if i == 0 { visitors } else { counts[i - 1].0 };
            let rate = |n: i64, d: i64| {
                if d == 0 {
                    0.0
                } else {
                    round2(n as f64 * 100.0 / d as f64)
                }
            };
            json!({
                "step": i + 1,
                "name": s.label(),
                "kind": match s { Step::Goal(_) => "goal", Step::Page(_) => "page" },
                "visitors": visitors,
                "visits": visits,
                "conversion_rate": rate(visitors, first),
                "drop_off": prev - visitors,
                "drop_off_rate": rate(prev - visitors, prev),
            })
        })
        .collect();
    Ok(json!({
        "funnel": { "id": plan.funnel.id, "name": plan.funnel.name },
        "steps": steps,
        "meta": { "query_path": if plan.uses_rollups() { "rollups" } else { "visits" } },
        "query": query,
    }))
}
