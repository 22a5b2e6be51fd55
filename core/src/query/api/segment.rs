//! Saved segments in `POST /v0/query` (`["is", "segment", [id]]`, Plausible's form) and in the pipes
//! (`segment=<id>`): a segment is expanded into its stored filters, parsed by the same parser as a
//! query's own, and AND-ed. The caller reads the segments by (verified tenant, id); an id it did not
//! find is a 400, whoever owns it.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{bad, filter_sql, parse_filter, Filter, MAX_FILTER_VALUES};
use crate::query::QueryError;
use crate::sql::TenantSql;

/// Saved segments by id: each one's filter list, as stored (`/v0/query` filter shape).
pub type Segments = BTreeMap<i64, Value>;

/// The segment ids a query body names in `["is", "segment", [id]]` filters (at any depth), so the
/// caller can read them before planning. Malformed filters are left to the planner to report.
pub fn segment_ids(body: &Value) -> Vec<i64> {
    fn walk(f: &Value, out: &mut Vec<i64>) {
        let Some(arr) = f.as_array() else { return };
        match arr.first().and_then(Value::as_str) {
            Some("and" | "or") => {
                for x in arr.get(1).and_then(Value::as_array).into_iter().flatten() {
                    walk(x, out);
                }
            }
            Some("not") => {
                if let Some(x) = arr.get(1) {
                    walk(x, out);
                }
            }
            _ if arr.get(1).and_then(Value::as_str) == Some("segment") => {
                let ids = arr.get(2).and_then(Value::as_array).into_iter().flatten();
                out.extend(ids.filter_map(Value::as_i64));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for f in body
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk(f, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Most saved segments one query may name (the caller reads at most this many).
pub const MAX_SEGMENTS_PER_QUERY: usize = 10;

/// `["is", "segment", [id]]` (Plausible's form): the segment's filters, AND-ed.
pub(super) fn segment_filter(
    arr: &[Value],
    field: &str,
    values: &mut usize,
    segments: Option<&Segments>,
) -> Result<Filter, QueryError> {
    let Some(segments) = segments else {
        return Err(bad(
            &format!("{field}[1]"),
            "a segment cannot be used inside a segment",
        ));
    };
    if arr.first().and_then(Value::as_str) != Some("is") {
        return Err(bad(
            &format!("{field}[0]"),
            "a segment filter takes only \"is\": [\"is\", \"segment\", [id]]",
        ));
    }
    let id = arr
        .get(2)
        .and_then(Value::as_array)
        .filter(|l| l.len() == 1 && arr.len() == 3)
        .and_then(|l| l[0].as_i64())
        .ok_or_else(|| bad(&format!("{field}[2]"), "must be a list of one segment id"))?;
    let field = format!("{field}[2][0]");
    let stored = segments
        .get(&id)
        .ok_or_else(|| bad(&field, format!("there is no segment {id}")))?;
    let list = stored
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad(&field, format!("segment {id} holds no filter list")))?;
    let inner = list
        .iter()
        .enumerate()
        .map(|(i, f)| parse_filter(f, &format!("segment {id} filters[{i}]"), values, None))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Filter::And(inner))
}

/// Checks a saved segment's filter list as `/v0/query` would take it (no segment inside a segment);
/// errors name the field as `{field}[i]…`.
pub fn validate_filters(v: &Value, field: &str) -> Result<(), QueryError> {
    let list = v
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad(field, "must be a non-empty list of filters"))?;
    let mut values = 0;
    for (i, f) in list.iter().enumerate() {
        parse_filter(f, &format!("{field}[{i}]"), &mut values, None)?;
    }
    if values > MAX_FILTER_VALUES {
        return Err(bad(
            field,
            format!("may hold at most {MAX_FILTER_VALUES} values in all"),
        ));
    }
    Ok(())
}

/// A saved segment's filters, parsed for the pipes (`segment=<id>`): AND-ed to a request's filters.
#[derive(Debug, Clone)]
pub(crate) struct SegmentFilter {
    filters: Vec<Filter>,
    /// `{id}:{filters as stored}`, for the cache key.
    pub(crate) key: String,
}

impl SegmentFilter {
    /// Parses segment `id`'s stored filters; a 400 naming `segment` if they no longer parse.
    pub(crate) fn parse(id: i64, stored: &Value) -> Result<Self, QueryError> {
        let list = stored
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad("segment", format!("segment {id} holds no filter list")))?;
        let mut values = 0;
        let filters = list
            .iter()
            .enumerate()
            .map(|(i, f)| parse_filter(f, &format!("segment {id} filters[{i}]"), &mut values, None))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            filters,
            key: format!("{id}:{stored}"),
        })
    }

    /// Appends ` AND (…)` per filter: conditions on the sessions `s` of `window` (start, end).
    pub(crate) fn push_sql(&self, window: (i64, i64), q: &mut TenantSql) {
        for f in &self.filters {
            q.push(" AND ");
            filter_sql(f, window, q);
        }
    }
}
