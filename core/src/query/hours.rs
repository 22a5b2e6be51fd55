//! `traffic_by_hour` (the kit's): 24 rows, one per local hour of the day (0–23), with the visits that
//! started in that hour over `date_from..=date_to` and their pageviews, zeros filled.
//!
//! A visit counts at the local hour of its first hit (the kit's `toHour(first_hit)`), with all its
//! pageviews. Local hours follow the rule of [`super::timezone::hour_label`]: the UTC hour holding
//! local `H:00` is hour `H` (exact for whole-hour zones; 30/45-minute zones use whole UTC hours), and
//! over a DST change each UTC hour takes the offset in force at its start.
//!
//! Cost: unfiltered (or `domain` only), the all-visits series of `visit_hourly`, kept for every day:
//! at most 24 rows per day of the range, never visits. One filter that the rollups answer (the same
//! ones as for `kpis`) over a range that starts at most a day before the per-dimension hourly rows
//! kept (today and yesterday UTC, so today and yesterday in any zone): those rows, plus one scan of
//! the visits of the range's hours before them (a zone's edge hours). Anything else (one filter over
//! older days, several filters): one scan of the range's visits in `sessions`, like every
//! visit-level plan.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::params::Params;
use super::pipes::{
    filters, kpi_slice, sessions_from, window, Planned, Shape, MAX_OFFSET_SEGMENTS,
};
use super::rollups;
use super::timezone::{offset_segments, DAY};
use super::{Column, QueryError, Request};
use crate::claims::TenantId;
use crate::rollup::visits;
use crate::sql::TenantSql;

type Row = Map<String, Value>;

/// What the assembler needs: nothing but the 24 hours; the statement returns one row per hour with
/// visits (`hour`, `visits`, `pageviews`).
#[derive(Debug, Clone)]
pub(crate) struct HourShape {
    /// Whether the rollups answered (else one scan of the visits; `Plan::query_path`).
    pub(crate) rollups: bool,
}

/// Plans `traffic_by_hour`.
pub(crate) fn plan(
    req: &Request,
    p: &Params,
    tenant: &TenantId,
    key: &mut BTreeMap<String, String>,
) -> Result<Planned, QueryError> {
    let w = window(req, p, key)?;
    // The kit's traffic_by_hour has no previous period.
    key.remove("include_previous_period");
    let f = filters(p, key)?;

    // Offsets in force over the window, sampled daily (one zone lookup per day).
    let mut samples: Vec<i64> = (w.start..w.end).step_by(DAY as usize).collect();
    samples.push(w.end);
    let segments = offset_segments(req.tz, &samples);
    if segments.len() > MAX_OFFSET_SEGMENTS {
        return Err(QueryError::invalid(
            "timezone",
            "changes its UTC offset too often in this date range; use a shorter range",
        ));
    }

    // One filter: the rollups when at most a day of the range is older than the per-dimension hourly
    // rows kept (those edge hours are computed from their visits); older ranges: one visit scan.
    let slice = kpi_slice(tenant, req.now_secs, &f)
        .filter(|s| s.dim == visits::dim::ALL || w.start >= s.hourly_from - DAY);
    let rollups = slice.is_some();
    let mut q = TenantSql::new(tenant);
    q.push("WITH w AS (SELECT ");
    match slice {
        Some(s) => {
            q.push("hour AS t, visits AS n, pageviews AS pv FROM (");
            rollups::hourly_cells(&s, (w.start, w.end), &mut q);
            q.push(")");
        }
        None => {
            q.push("s.first_ts AS t, 1 AS n, s.pageviews AS pv");
            sessions_from(&mut q, w.start, w.end, &f);
        }
    }
    // D1 binds numbers as REAL: cast before dividing. The local hour of a UTC hour is the local time
    // of its start rounded up to a whole hour (`timezone::hour_label`), taken modulo a day.
    q.push(") SELECT (CAST(t AS INTEGER) / 3600 * 3600 + CAST(");
    local_offset(&mut q, &segments);
    q.push(" AS INTEGER) + 3599) / 3600 % 24 AS hour, SUM(n) AS visits, SUM(pv) AS pageviews FROM w GROUP BY 1");
    Ok((vec![q.finish()], Shape::Hours(HourShape { rollups })))
}

/// The UTC offset in force at `t`: one bound value, or a `CASE` over the window's segments.
fn local_offset(q: &mut TenantSql, segments: &[(i64, i32)]) {
    match segments {
        [] => {
            q.push("0");
        }
        [(_, offset)] => {
            q.bind("?", i64::from(*offset));
        }
        _ => {
            q.push("CASE");
            for (until, offset) in &segments[..segments.len() - 1] {
                q.bind(" WHEN t < ?", *until)
                    .bind(" THEN ?", i64::from(*offset));
            }
            q.bind(" ELSE ? END", i64::from(segments[segments.len() - 1].1));
        }
    }
}

/// 24 rows, hours 0 to 23 in order, zeros where no visit started.
pub(crate) fn assemble(rows: &[Row]) -> Result<(Vec<Column>, Vec<Row>), QueryError> {
    let mut by_hour = [(0i64, 0i64); 24];
    for r in rows {
        let hour = crate::sql::count(r.get("hour"));
        let slot = usize::try_from(hour)
            .ok()
            .and_then(|h| by_hour.get_mut(h))
            .ok_or_else(|| QueryError::ResultMismatch(format!("hour {hour} out of 0..24")))?;
        slot.0 += crate::sql::count(r.get("visits"));
        slot.1 += crate::sql::count(r.get("pageviews"));
    }
    let data = by_hour
        .iter()
        .enumerate()
        .map(|(h, (visits, pageviews))| {
            let mut row = Map::new();
            row.insert("hour".into(), (h as u64).into());
            row.insert("visits".into(), (*visits).into());
            row.insert("pageviews".into(), (*pageviews).into());
            row
        })
        .collect();
    let col = |name: &str, ty: &str| Column {
        name: name.into(),
        r#type: ty.into(),
    };
    Ok((
        vec![
            col("hour", "UInt8"),
            col("visits", "UInt64"),
            col("pageviews", "UInt64"),
        ],
        data,
    ))
}
