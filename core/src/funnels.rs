//! Funnels: a tenant's saved sequences of 2 to 8 steps (each a goal, or a page path pattern with `*`
//! wildcards) that a visit goes through in time order.
//!
//! Evaluated by the queue consumer like goals (`rollup::visits`): when it folds an event into its
//! visit's state, it tags the event with the (funnel, step) pairs it matches under the definitions of
//! that moment ([`tags`](crate::funnels::tags)(crate::funnels::tags)) and keeps the tagged hits in the state (time-ordered, at most [`MAX_HITS`](crate::funnels::MAX_HITS)(crate::funnels::MAX_HITS)).
//! The furthest step per funnel ([`furthest`](crate::funnels::furthest)(crate::funnels::furthest)) is recomputed from those stored hits, greedily in time
//! order (the earliest hit that matches the next step advances it; one hit advances a funnel by one
//! step at most), so batches may arrive in any order and a repeated or out-of-order step is exact.
//! Contributions are computed from the stored state only: a funnel created or deleted mid-visit never
//! makes a delta subtract what it never added. A visit counts under the rollup dimension `fn` with
//! value `id:k` ([`value`](crate::funnels::value)(crate::funnels::value)) for every step `k` up to its furthest, so the visits and exact visitors of
//! each step are a rollup read. Funnels count page visits (a visit of a backend's goal events only has
//! no page hit and counts in none, as in the page numbers); they apply to events processed after the
//! funnel exists, and `scripts/rebuild.sh` recomputes history.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::claims::TenantId;
use crate::event::EnrichedEvent;
use crate::field_error::FieldError;
use crate::goals::{path_matches, Goal};
use crate::sql::{Statement, TenantSql};

/// Fewest steps of a funnel.
pub const MIN_STEPS: usize = 2;
/// Most steps of a funnel.
pub const MAX_STEPS: usize = 8;
/// Funnels a tenant may define (a constant rather than a plan quota: a funnel's cost is in the
/// consumer's per-event matching, bounded by this times [`MAX_STEPS`]).
pub const MAX_FUNNELS: u32 = 20;
/// Tagged hits kept per visit (the earliest by time); a visit with more evaluates these.
pub const MAX_HITS: usize = 200;
/// Longest funnel name, in characters.
pub const MAX_NAME: usize = 120;

/// One step of a funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The tenant's goal of this name (matched as the goal matches, under its current definition).
    Goal(String),
    /// A page hit whose path matches this pattern (`*` matches any run of characters).
    Page(String),
}

impl Step {
    /// The step's label: the goal's name or the page pattern.
    pub fn label(&self) -> &str {
        match self {
            Self::Goal(g) | Self::Page(g) => g,
        }
    }

    /// Whether `e` completes this step, with the tenant's `goals`.
    pub fn matches(&self, e: &EnrichedEvent, goals: &[Goal]) -> bool {
        if e.is_bot {
            return false;
        }
        match self {
            Self::Page(p) => e.is_page_hit() && path_matches(p, &e.pathname),
            Self::Goal(name) => goals.iter().any(|g| &g.name == name && g.matches(e)),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Goal(g) => json!({ "goal": g }),
            Self::Page(p) => json!({ "page": p }),
        }
    }
}

/// A stored funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funnel {
    /// Per tenant, never reused.
    pub id: i64,
    /// Unique among the tenant's funnels.
    pub name: String,
    /// 2 to 8 steps, in order.
    pub steps: Vec<Step>,
}

/// The rollup value of step `k` (1-based) of funnel `id`.
pub fn value(id: i64, k: usize) -> String {
    format!("{id}:{k}")
}

/// Validates a funnel body `{"name", "steps": [{"goal": name} | {"page": pattern}, ...]}`; a goal step
/// must name one of `goals` (the tenant's goal names). Errors name the field (`steps[2].goal`).
pub fn validate(body: &Value, goals: &[String]) -> Result<(String, Vec<Step>), FieldError> {
    let obj = body.as_object().ok_or_else(|| {
        FieldError::not_an_object(
            "the body must be a JSON object: {\"name\", \"steps\": [{\"goal\": name} | {\"page\": pattern}, ...]}",
        )
    })?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["name", "steps"].contains(&k.as_str()))
    {
        return Err(FieldError::unknown(k, "a funnel has name and steps"));
    }
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(FieldError::invalid(
            "name",
            format!("must be a non-empty string of at most {MAX_NAME} characters, without control characters"),
        ));
    }
    let list = obj
        .get("steps")
        .and_then(Value::as_array)
        .filter(|l| (MIN_STEPS..=MAX_STEPS).contains(&l.len()))
        .ok_or_else(|| {
            FieldError::invalid(
                "steps",
                format!("must be a list of {MIN_STEPS} to {MAX_STEPS} steps, each {{\"goal\": name}} or {{\"page\": pattern}}"),
            )
        })?;
    let mut steps = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let field = format!("steps[{i}]");
        let o = s.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
            FieldError::invalid(&field, "must be {\"goal\": name} or {\"page\": pattern}")
        })?;
        let (k, v) = o.iter().next().expect("one entry");
        let text = v.as_str().map(str::trim).unwrap_or_default();
        let sub = format!("{field}.{k}");
        steps.push(match k.as_str() {
            "goal" => {
                if !goals.iter().any(|g| g == text) {
                    return Err(FieldError::invalid(
                        &sub,
                        format!("no goal named '{}'; create the goal first", text.chars().take(120).collect::<String>()),
                    ));
                }
                Step::Goal(text.to_owned())
            }
            "page" => {
                if text.is_empty()
                    || !text.starts_with('/')
                    || text.contains("**")
                    || text.chars().count() > crate::goals::MAX_MATCH
                    || text.chars().any(char::is_control)
                {
                    return Err(FieldError::invalid(
                        &sub,
                        "a page pattern is non-empty, starts with / and uses single * wildcards, such as /blog/* or /checkout/done",
                    ));
                }
                Step::Page(text.to_owned())
            }
            _ => return Err(FieldError::unknown(&sub, "a step is {\"goal\": name} or {\"page\": pattern}")),
        });
    }
    Ok((name.to_owned(), steps))
}

/// The stored `steps` JSON.
pub fn steps_json(steps: &[Step]) -> String {
    Value::Array(steps.iter().map(Step::to_json).collect()).to_string()
}

/// Steps from their stored JSON.
pub fn parse_steps(json: &str) -> Option<Vec<Step>> {
    let list: Vec<Map<String, Value>> = serde_json::from_str(json).ok()?;
    list.iter()
        .map(|o| {
            let (k, v) = o.iter().next()?;
            let v = v.as_str()?.to_owned();
            match k.as_str() {
                "goal" => Some(Step::Goal(v)),
                "page" => Some(Step::Page(v)),
                _ => None,
            }
        })
        .collect()
}

/// The JSON of a stored funnel.
pub fn to_json(f: &Funnel, created: i64) -> Value {
    json!({
        "id": f.id,
        "name": f.name,
        "steps": f.steps.iter().map(Step::to_json).collect::<Vec<_>>(),
        "created": created,
    })
}

/// The tenant's funnels, oldest first (`id, name, steps, created`).
pub fn list(tenant: &str) -> Statement {
    Statement::new(
        "SELECT id, name, steps, created FROM funnels WHERE tenant_id = ? AND deleted = 0 ORDER BY id",
        vec![tenant.into()],
    )
}

/// One of the tenant's funnels (no row when it does not exist or was deleted).
pub fn get(tenant: &TenantId, id: i64) -> Statement {
    let mut q = TenantSql::new(tenant);
    q.push("SELECT id, name, steps, created")
        .from("funnels", "")
        .bind(" AND id = ?", id)
        .push(" AND deleted = 0");
    q.finish()
}

/// Inserts a funnel unless the tenant has `max` funnels already or one of the same name: returns the
/// new `id` (no row when refused). The id is one more than the largest ever given (deleted included).
pub fn insert(tenant: &str, name: &str, steps: &[Step], max: u32, now_secs: i64) -> Statement {
    Statement::new(
        "INSERT INTO funnels (tenant_id, id, name, steps, created) \
         SELECT ?, (SELECT COALESCE(MAX(id), 0) + 1 FROM funnels WHERE tenant_id = ?), ?, ?, ? \
         WHERE (SELECT COUNT(*) FROM funnels WHERE tenant_id = ? AND deleted = 0) < ? \
         AND NOT EXISTS (SELECT 1 FROM funnels WHERE tenant_id = ? AND name = ? AND deleted = 0) \
         RETURNING id",
        vec![
            tenant.into(),
            tenant.into(),
            name.into(),
            steps_json(steps).into(),
            now_secs.into(),
            tenant.into(),
            i64::from(max).into(),
            tenant.into(),
            name.into(),
        ],
    )
}

/// Deletes one of the tenant's funnels (it stays as a tombstone so its id is never reused); returns
/// its id when it existed.
pub fn delete(tenant: &str, id: i64) -> Statement {
    Statement::new(
        "UPDATE funnels SET deleted = 1 WHERE tenant_id = ? AND id = ? AND deleted = 0 RETURNING id",
        vec![tenant.into(), id.into()],
    )
}

/// A funnel from a [`list`] row, with its creation time.
pub fn from_row(r: &Map<String, Value>) -> Option<(Funnel, i64)> {
    Some((
        Funnel {
            id: crate::sql::int(r.get("id"))?,
            name: r.get("name").and_then(Value::as_str)?.to_owned(),
            steps: parse_steps(r.get("steps").and_then(Value::as_str)?)?,
        },
        crate::sql::int(r.get("created")).unwrap_or(0),
    ))
}

/// The (funnel id, step number) pairs `e` completes under the current definitions, in order.
pub fn tags(funnels: &[Funnel], goals: &[Goal], e: &EnrichedEvent) -> Vec<(i64, u8)> {
    let mut out = Vec::new();
    for f in funnels {
        for (i, s) in f.steps.iter().enumerate() {
            if s.matches(e, goals) {
                out.push((f.id, (i + 1) as u8));
            }
        }
    }
    out
}

/// A visit's tagged hits: (UTC milliseconds, the (funnel, step) pairs the hit completed).
pub type Hits = Vec<(i64, Vec<(i64, u8)>)>;

/// Adds a tagged hit in time order (of equal times, by tags), keeping the [`MAX_HITS`] earliest.
pub fn insert_hit(hits: &mut Hits, ts: i64, tags: Vec<(i64, u8)>) {
    let item = (ts, tags);
    let at = hits.partition_point(|h| *h <= item);
    hits.insert(at, item);
    hits.truncate(MAX_HITS);
}

/// The furthest step per funnel the hits reach in time order: greedy, the earliest hit that completes
/// the next step advances it (which maximises the steps reached), one step per hit at most.
pub fn furthest(hits: &Hits) -> BTreeMap<i64, u8> {
    let mut out: BTreeMap<i64, u8> = BTreeMap::new();
    for (_, tags) in hits {
        let mut advanced: Vec<i64> = Vec::new();
        for &(f, step) in tags {
            if advanced.contains(&f) {
                continue;
            }
            let cur = out.entry(f).or_insert(0);
            if step == *cur + 1 {
                *cur = step;
                advanced.push(f);
            }
        }
    }
    out.retain(|_, k| *k > 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_in_time_order_one_step_per_hit() {
        let mut hits = Hits::new();
        // Step 2 before step 1: does not count until step 2 comes again after step 1.
        insert_hit(&mut hits, 30, vec![(1, 2)]);
        insert_hit(&mut hits, 10, vec![(1, 3)]);
        insert_hit(&mut hits, 20, vec![(1, 1)]);
        assert_eq!(furthest(&hits), BTreeMap::from([(1, 2)]));
        // A hit matching steps 1 and 2 advances one step only.
        let mut h = Hits::new();
        insert_hit(&mut h, 5, vec![(2, 1), (2, 2)]);
        assert_eq!(furthest(&h), BTreeMap::from([(2, 1)]));
        insert_hit(&mut h, 6, vec![(2, 1), (2, 2)]);
        assert_eq!(furthest(&h), BTreeMap::from([(2, 2)]));
        // Nothing reached: no entry.
        assert!(furthest(&vec![(1, vec![(3, 2)])]).is_empty());
    }

    #[test]
    fn validation_names_the_field() {
        let goals = vec!["Signup".to_owned()];
        let err = |b: Value| validate(&b, &goals).unwrap_err().field().map(str::to_owned);
        assert_eq!(
            err(json!({"name": "f", "steps": [{"page": "/"}]})).as_deref(),
            Some("steps")
        );
        let nine: Vec<Value> = (0..9).map(|_| json!({"page": "/"})).collect();
        assert_eq!(
            err(json!({"name": "f", "steps": nine})).as_deref(),
            Some("steps")
        );
        assert_eq!(
            err(json!({"name": "f", "steps": [{"page": "/"}, {"goal": "Nope"}]})).as_deref(),
            Some("steps[1].goal")
        );
        assert_eq!(
            err(json!({"name": "f", "steps": [{"page": ""}, {"goal": "Signup"}]})).as_deref(),
            Some("steps[0].page")
        );
        assert_eq!(
            err(json!({"name": "", "steps": [{"page": "/"}, {"goal": "Signup"}]})).as_deref(),
            Some("name")
        );
        let (name, steps) = validate(
            &json!({"name": " Buy ", "steps": [{"page": "/p*"}, {"goal": "Signup"}]}),
            &goals,
        )
        .unwrap();
        assert_eq!(name, "Buy");
        assert_eq!(parse_steps(&steps_json(&steps)).unwrap(), steps);
    }
}
