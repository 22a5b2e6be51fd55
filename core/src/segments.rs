//! Saved segments: named filter sets per tenant, in the `POST /v0/query` filter shape (issue #14).
//!
//! [`validate`] turns a create body (`{"name", "filters"}`) into a [`NewSegment`] or a [`SegmentError`]
//! naming the field; the filters are checked by the query planner's own parser
//! ([`crate::query::validate_filters`]), so a segment holds only filters a query accepts. [`insert`],
//! [`list`], [`select`] and [`delete`] are the bound SQL over `segments`
//! (`migrations/0013_segments.sql`); every statement binds the tenant first and reads or writes only by
//! `(tenant_id, id)`, so another tenant's id behaves exactly as a missing one.
//!
//! Ids count per tenant and are never reused (a deleted segment stays as a tombstone without name or
//! filters). A segment is used as `["is", "segment", [id]]` in `/v0/query` filters and as
//! `segment=<id>` on the pipes; the planner keys its cache on the filters read, so an id whose
//! filters changed never answers from an old entry.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::claims::TenantId;
use crate::query::{validate_filters, QueryError, Segments};
use crate::sql::{SqlValue, Statement, TenantSql};

/// Most live segments per tenant.
pub const MAX_SEGMENTS: i64 = 100;
/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The fields a create body may have.
pub const FIELDS: [&str; 2] = ["name", "filters"];

/// Why a segment body was rejected (400).
pub type SegmentError = crate::field_error::FieldError;

/// A validated segment to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSegment {
    name: String,
    filters: Value,
}

impl NewSegment {
    /// The name, trimmed.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The filter list, as given.
    pub fn filters(&self) -> &Value {
        &self.filters
    }
}

/// Validates a create body.
pub fn validate(body: &Value) -> Result<NewSegment, SegmentError> {
    let obj = body.as_object().ok_or_else(|| {
        SegmentError::not_an_object(
            "the body must be a JSON object: {\"name\": \"…\", \"filters\": [[\"is\", \"visit:country\", [\"DE\"]]]}",
        )
    })?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(SegmentError::unknown(
            k,
            format!("the allowed fields are {}", FIELDS.join(", ")),
        ));
    }
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| SegmentError::invalid("name", "must be a non-empty string"))?;
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(SegmentError::invalid(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters, without control characters"),
        ));
    }
    let filters = obj.get("filters").ok_or_else(|| {
        SegmentError::invalid("filters", "is required: a non-empty list of filters")
    })?;
    validate_filters(filters, "filters").map_err(|e| match e {
        QueryError::InvalidParam { name, reason } => SegmentError::invalid(&name, reason),
        other => SegmentError::invalid("filters", other.message()),
    })?;
    Ok(NewSegment {
        name: name.to_owned(),
        filters: filters.clone(),
    })
}

/// Creates the segment with the tenant's next id, unless the tenant has [`MAX_SEGMENTS`] live ones:
/// `RETURNING` the new row, or no row when the cap is reached.
pub fn insert(tenant: &str, s: &NewSegment, now_secs: i64) -> Statement {
    Statement::new(
        "INSERT INTO segments (tenant_id, id, name, filters, created) \
         SELECT ?, next, ?, ?, ? FROM (SELECT COALESCE(MAX(id), 0) + 1 AS next, \
         COALESCE(SUM(deleted IS NULL), 0) AS live FROM segments WHERE tenant_id = ?) \
         WHERE live < ? RETURNING id, name, filters, created",
        vec![
            tenant.into(),
            s.name.as_str().into(),
            s.filters.to_string().into(),
            now_secs.into(),
            tenant.into(),
            MAX_SEGMENTS.into(),
        ],
    )
}

/// The tenant's live segments, by id.
pub fn list(tenant: &str) -> Statement {
    Statement::new(
        "SELECT id, name, filters, created FROM segments WHERE tenant_id = ? AND deleted IS NULL ORDER BY id",
        vec![tenant.into()],
    )
}

/// The tenant's live segments among `ids` (at most [`crate::query::MAX_SEGMENTS_PER_QUERY`] are read).
pub fn select(tenant: &TenantId, ids: &[i64]) -> Statement {
    let ids = &ids[..ids.len().min(crate::query::MAX_SEGMENTS_PER_QUERY)];
    let marks = vec!["?"; ids.len().max(1)].join(", ");
    let mut binds: Vec<SqlValue> = ids.iter().map(|i| (*i).into()).collect();
    if ids.is_empty() {
        binds.push(0i64.into());
    }
    let mut q = TenantSql::new(tenant);
    q.push("SELECT id, name, filters, created")
        .from("segments", "")
        .push(" AND deleted IS NULL")
        .bind_all(&format!(" AND id IN ({marks})"), binds);
    q.finish()
}

/// Deletes a live segment (keeps the id as a tombstone); the change count is 0 when there is none.
pub fn delete(tenant: &str, id: i64, now_secs: i64) -> Statement {
    Statement::new(
        "UPDATE segments SET deleted = ?, name = '', filters = '[]' \
         WHERE tenant_id = ? AND id = ? AND deleted IS NULL",
        vec![now_secs.into(), tenant.into(), id.into()],
    )
}

/// A segment id from a path or parameter: a whole number from 1.
pub fn parse_id(s: &str) -> Option<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|id| *id > 0 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// A selected row as the API shows it: `{id, name, filters, created}` (`created` as UTC seconds).
pub fn to_json(row: &Map<String, Value>) -> Value {
    json!({
        "id": crate::sql::count(row.get("id")),
        "name": row.get("name").and_then(Value::as_str).unwrap_or_default(),
        "filters": stored_filters(row),
        "created": crate::sql::count(row.get("created")),
    })
}

fn stored_filters(row: &Map<String, Value>) -> Value {
    row.get("filters")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| json!([]))
}

/// Selected rows as the planner takes them: id → filter list.
pub fn resolved(rows: &[Map<String, Value>]) -> Segments {
    let mut out = BTreeMap::new();
    for r in rows {
        out.insert(crate::sql::count(r.get("id")), stored_filters(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: Value) -> String {
        validate(&body)
            .unwrap_err()
            .field()
            .unwrap_or("")
            .to_owned()
    }

    #[test]
    fn accepts_a_name_and_query_filters() {
        let s = validate(&json!({"name": "  Germans on mobile ", "filters": [
            ["is", "visit:country", ["DE"]],
            ["or", [["is", "visit:device", ["mobile"]], ["contains", "event:page", ["/blog"]]]]
        ]}))
        .unwrap();
        assert_eq!(s.name(), "Germans on mobile");
        assert_eq!(s.filters()[0], json!(["is", "visit:country", ["DE"]]));
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let ok = json!([["is", "visit:country", ["DE"]]]);
        assert_eq!(field_of(json!({"name": "", "filters": ok})), "name");
        assert_eq!(field_of(json!({"name": "   ", "filters": ok})), "name");
        assert_eq!(field_of(json!({"filters": ok})), "name");
        assert_eq!(
            field_of(json!({"name": "x".repeat(101), "filters": ok})),
            "name"
        );
        assert_eq!(field_of(json!({"name": "a\u{7}b", "filters": ok})), "name");
        assert_eq!(field_of(json!({"name": "x"})), "filters");
        assert_eq!(field_of(json!({"name": "x", "filters": []})), "filters");
        assert_eq!(
            field_of(json!({"name": "x", "filters": [["is", "visit:shoe_size", ["42"]]]})),
            "filters[0][1]"
        );
        assert_eq!(
            field_of(json!({"name": "x", "filters": [["equals", "visit:country", ["DE"]]]})),
            "filters[0][0]"
        );
        assert_eq!(
            field_of(json!({"name": "x", "filters": [ok[0], ["is", "segment", [1]]]})),
            "filters[1][1]",
            "no segment inside a segment"
        );
        assert_eq!(field_of(json!({"name": "x", "filters": ok, "id": 3})), "id");
        assert!(validate(&json!([1])).unwrap_err().field().is_none());
    }

    #[test]
    fn ids_are_whole_numbers_from_one() {
        assert_eq!(parse_id("12"), Some(12));
        for bad in ["0", "-1", "+3", "1.0", "", "x", "99999999999999999999"] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_statement_binds_the_tenant() {
        let s = validate(&json!({"name": "n", "filters": [["is", "visit:os", ["ios"]]]})).unwrap();
        for st in [
            insert("t1", &s, 5),
            list("t1"),
            select(&TenantId::for_tests("t1").unwrap(), &[1, 2]),
            select(&TenantId::for_tests("t1").unwrap(), &[]),
        ] {
            assert!(st.binds.contains(&"t1".into()), "{}", st.sql);
            assert_eq!(st.sql.matches('?').count(), st.binds.len(), "{}", st.sql);
        }
        let d = delete("t1", 3, 9);
        assert_eq!(d.binds[1], "t1".into());
    }
}
