//! `POST /v0/query`: a general query shaped like Plausible's Stats API v2, planned over the same tables
//! as the pipes.
//!
//! Request: `metrics` (`visitors`, `visits`, `pageviews`, `bounce_rate`, `visit_duration`,
//! `views_per_visit`), `date_range` (`["YYYY-MM-DD","YYYY-MM-DD"]`, `day`, `Nd`, `month`, `year`,
//! `Nmo`), `dimensions` (at most one: `time`, `time:hour|day|week|month`, `visit:source|referrer|
//! browser|os|device|country|utm_source|utm_medium|utm_campaign|entry_page|exit_page`,
//! `event:hostname`), `filters` (`[op, dim, [values], {"case_sensitive": false}?]` with `is`, `is_not`,
//! `contains`, `contains_not` over the visit dimensions, `event:page` (visits that viewed a matching
//! page) and `event:hostname`; `["and"|"or", [...]]`, `["not", f]`; the top-level list is AND-ed),
//! `order_by`, `pagination`, `include` (`time_labels`, `total_rows`, `comparisons` with `mode`
//! `previous_period` or `year_over_year`), `timezone`, and `site_id` (a domain, optional).
//!
//! Goals (`crate::goals`): `event:goal` is a dimension and a top-level `is`/`contains` filter on goal
//! names (the visits that completed the goal); with it, `conversions`, `events`, `conversion_rate`,
//! `total_revenue` and `average_revenue`, with comparisons too. Per goal or for one goal (`is`, one
//! value, plus `event:hostname`), without time buckets, they read only rollups: the visits and
//! visitors from the `gl` cells, events and revenue from the goal-event cells (`ge`), the rate's
//! divisor from the all-visits cells. Time buckets of goal events or revenue, and goals combined with
//! other filters, read `session_goals` (cost grows with conversions).
//! Custom properties (`crate::props`): `event:props:<key>` as a dimension and a top-level `is` filter.
//! A breakdown by one key, without time buckets, unfiltered or filtered by one value of the same key
//! (plus `event:hostname`), reads the property cells (`pr` for the visits and visitors, `pe` for the
//! events: rows per day and value); every other property query reads `session_props` (cost grows with
//! the visits that carried properties). `event:props` as a dimension lists the property keys. With an
//! `event:goal` filter or dimension, properties are those of the goal's own events: a goal's
//! conversions that carried the value, not a visit's other events' properties (as Plausible counts
//! them). One goal (`is`, one value) by one key, without time buckets or `visit_duration`, unfiltered
//! or filtered by one value of the same key (plus `event:hostname`), reads the goal property cells
//! (`gp`: rows per day, goal and value); every other goal × property query reads
//! `session_goal_props` (cost grows with the conversions that carried properties).
//!
//! Cost: with no filter, or with one `is` filter of one value (plus `event:hostname`), on the
//! dimension grouped by or with a time or no dimension, the plan reads only the visit rollups (rows per
//! day and value). Every other combination is exact over the visit-level `sessions` table: its cost
//! grows with the visits in the range.
//!
//! The tenant comes only from the token's `fixed_params.tenant_id`; a fixed `domain` is AND-ed to the
//! filters and a fixed `timezone` wins over the body's. Fixed `date_from`/`date_to` replace the body's
//! range (as they do for the pipes) and refuse comparisons, which read outside them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::params::MAX_RANGE_DAYS;
use super::response::{growth, round};
use super::rollups::{self, KpiBucket, RollupKpis, Slice};
use super::timezone::{
    civil_from_days, day_start, days_from_civil, format_date, format_datetime, hour_label,
    local_day, offset_segments, parse_date, Days, TimeZone, DAY,
};
use super::QueryError;
use crate::claims::TenantId;

mod compare;
mod segment;

use crate::rollup::visits::dim;
use crate::sql::{Join, SqlValue, Statement, TenantSql};
use segment::segment_filter;
pub(crate) use segment::SegmentFilter;
pub use segment::{segment_ids, validate_filters, Segments, MAX_SEGMENTS_PER_QUERY};

/// Metrics in the order of the measures the plans return them from.
const METRICS: &[&str] = &[
    "visitors",
    "visits",
    "pageviews",
    "bounce_rate",
    "visit_duration",
    "views_per_visit",
    "conversions",
    "events",
    "conversion_rate",
    "total_revenue",
    "average_revenue",
];
/// Metrics that need an `event:goal` filter or dimension (`conversions` = the visitors who completed).
const GOAL_METRICS: &[&str] = &[
    "conversions",
    "events",
    "conversion_rate",
    "total_revenue",
    "average_revenue",
];
/// Goal metrics read from `session_goals` (the rollups hold visits and visitors, not events or money).
const GOAL_EVENT_METRICS: &[&str] = &["events", "total_revenue", "average_revenue"];
const MAX_LIMIT: i64 = 10_000;
/// D1's bound-parameter limit, with room for the plan's own binds.
const MAX_FILTER_VALUES: usize = 60;

/// A `POST /v0/query` request after the token was verified.
pub struct ApiRequest<'a> {
    /// The JSON body.
    pub body: &'a Value,
    /// The tenant, from the verified token: every statement binds it first.
    pub tenant: &'a TenantId,
    /// The token's other `fixed_params` (they win over the body; `tenant_id` is ignored).
    pub fixed: &'a BTreeMap<String, String>,
    /// Current time, UTC seconds.
    pub now_secs: i64,
    /// The zone named by [`timezone_of`].
    pub tz: &'a dyn TimeZone,
}

/// The statements of a query and what [`assemble_query`] needs to shape their rows.
#[derive(Debug, Clone)]
pub struct ApiPlan {
    /// Run in order (one D1 batch); pass one row set per statement to [`assemble_query`].
    pub statements: Vec<Statement>,
    shape: ApiShape,
    key: String,
    /// A visit-level query the segment scan may answer (`segment_route::query_route`).
    pub(super) visits: Option<super::segment_route::VisitQuery>,
    /// Set when the plan is one funnel step's visit-level read ([`FunnelDrive`]).
    funnel: Option<FunnelDrive>,
}

/// What a funnel step's visit-level plan reads besides its step: the other filters (the body's, the
/// site's and the token's domain) and the UTC window. `POST /v0/funnel` reads every step in one
/// statement from it ([`funnel_steps_statement`]) instead of one statement per step.
#[derive(Debug, Clone)]
pub(super) struct FunnelDrive {
    /// The step value (`id:k`) that drives the read.
    pub(super) step: String,
    filters: Vec<Filter>,
    window: (i64, i64),
}

impl ApiPlan {
    /// The response cache key: tenant first, then the resolved query (dates resolved, so relative
    /// ranges change key when the day changes).
    pub fn cache_key(&self) -> String {
        self.key.clone()
    }

    /// Whether the plan reads only the pre-aggregated rollups (else the visit-level table).
    pub fn uses_rollups(&self) -> bool {
        self.shape.rollups
    }

    /// A funnel step's visit-level read, if the plan is one: the step filter was a top-level `is`
    /// of one value, with no goal or property filter, no grouping, time buckets or comparison.
    pub(super) fn funnel_drive(&self) -> Option<&FunnelDrive> {
        self.funnel.as_ref()
    }

    /// The resolved query, as `assemble_query` echoes it.
    pub(super) fn query_echo(&self) -> &Value {
        &self.shape.query
    }
}

#[derive(Debug, Clone)]
struct ApiShape {
    metrics: Vec<&'static str>,
    dimension: Option<String>,
    time: bool,
    rows: RowSource,
    /// Current bucket labels (time dimension), paired by position with the comparison's.
    labels: Vec<String>,
    comparison_labels: Vec<String>,
    comparison: bool,
    /// The comparison's local dates, reported in `meta.comparison_date_range`.
    comparison_range: Option<[String; 2]>,
    order_by: Vec<(String, bool)>,
    limit: i64,
    offset: i64,
    time_labels: bool,
    total_rows: bool,
    query: Value,
    rollups: bool,
    /// Where a goal query's events and revenue are.
    goal_sums: GoalSource,
    /// Grouped by a property: keys are this stem (`key SEP`, or from goal property cells `goal SEP
    /// key SEP`) and the value, shown as the value.
    prop_stem: Option<String>,
    /// The statements holding the visitors of the same query without its goal filters
    /// (`conversion_rate`'s divisor) for the main period and the comparison, keyed like statement 0
    /// (`''` when grouped by goal or not grouped).
    divisor: Option<(usize, Option<usize>)>,
}

/// Where the events and revenue of a goal query's groups are read from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum GoalSource {
    /// Not asked.
    None,
    /// In the group rows themselves (statements 0 and 1, visit-level goal statements).
    Rows,
    /// In goal-event rollup cells ([`dim::GOAL_EVENTS`], keyed `goal SEP currency`): the statements
    /// at these indexes, for the main period and the comparison.
    Cells(usize, Option<usize>),
    /// In property-event rollup cells ([`dim::PROP_EVENTS`], keyed `key SEP value` like the groups,
    /// events in `visits`): the statements at these indexes, for the main period and the comparison.
    PropCells(usize, Option<usize>),
    /// In the groups' own rows, read from goal property cells ([`dim::GOAL_PROP`]): the goal's events
    /// that carried the value are in their `duration` column.
    GoalPropCells,
    /// In the groups' own rows, read from property-event cells folded per key (the key list: each
    /// key's events in `visits`, [`rollups::prop_key_statement`]).
    KeyCells,
}

#[derive(Debug, Clone)]
enum RowSource {
    /// Statement 0: current groups; statement 1 (with a comparison): the comparison's groups.
    Groups,
    /// Rollup buckets (current pieces, comparison pieces as "previous").
    Buckets(RollupKpis),
}

fn bad(field: &str, reason: impl Into<String>) -> QueryError {
    QueryError::invalid(field, reason)
}

/// The time zone name in force: the token's fixed `timezone`, else the body's, else UTC (`None`).
pub fn timezone_of(
    body: &Value,
    fixed: &BTreeMap<String, String>,
) -> Result<Option<String>, QueryError> {
    let raw = match (fixed.get("timezone"), body.get("timezone")) {
        (Some(f), _) => Some(f.clone()),
        (None, None | Some(Value::Null)) => None,
        (None, Some(Value::String(s))) => Some(s.clone()),
        (None, Some(_)) => return Err(bad("timezone", "must be a string such as Europe/Berlin")),
    };
    let Some(name) = raw else { return Ok(None) };
    let pairs = [("timezone".to_owned(), name)];
    super::params::timezone_param(&pairs, &BTreeMap::new())
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Grain {
    Hour,
    Day,
    Week,
    Month,
}

/// A filterable or groupable dimension.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Dimension {
    /// A `sessions` column and its rollup dimension.
    Visit(&'static str, &'static str),
    Host,
    Page,
    /// `event:goal`: a goal's name (the visits that completed it).
    Goal,
    /// `event:props:<key>`: a custom property value (the visits whose events carried it). Filter
    /// values hold `key SEP value`; the grouped key is the plan's `prop_prefix`.
    Prop,
    /// `event:props` (a dimension only): the property keys (the visits whose events carried any
    /// value of the key), for a picker.
    PropKey,
    /// `event:funnel`: a funnel step (`id:k`, the visits that reached step k of funnel id). A filter
    /// only, not a grouping.
    Funnel,
    /// `event:hostname` on a goal statement: the domain of the goal's visit (a visit without page
    /// hits has no `sessions` row to take it from).
    GoalHost,
}

fn dimension(name: &str) -> Option<Dimension> {
    use Dimension::Visit;
    Some(match name {
        "visit:source" | "visit:referrer" => Visit("source", dim::SOURCE),
        "visit:browser" => Visit("browser", dim::BROWSER),
        "visit:os" => Visit("os", dim::OS),
        "visit:device" => Visit("device", dim::DEVICE),
        "visit:country" => Visit("country", dim::COUNTRY),
        "visit:utm_source" => Visit("utm_source", dim::UTM_SOURCE),
        "visit:utm_medium" => Visit("utm_medium", dim::UTM_MEDIUM),
        "visit:utm_campaign" => Visit("utm_campaign", dim::UTM_CAMPAIGN),
        "visit:entry_page" => Visit("entry_path", dim::ENTRY),
        "visit:exit_page" => Visit("exit_path", dim::EXIT),
        "event:hostname" => Dimension::Host,
        "event:page" => Dimension::Page,
        "event:goal" => Dimension::Goal,
        "event:funnel" => Dimension::Funnel,
        _ => return None,
    })
}

const DIMENSION_NAMES: &str = "time, time:hour, time:day, time:week, time:month, visit:source, \
    visit:referrer, visit:browser, visit:os, visit:device, visit:country, visit:utm_source, \
    visit:utm_medium, visit:utm_campaign, visit:entry_page, visit:exit_page, event:hostname, event:goal, \
    event:props:<key>, event:props";

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Op {
    Is,
    IsNot,
    Contains,
    ContainsNot,
}

#[derive(Debug, Clone)]
pub(super) enum Filter {
    Leaf {
        op: Op,
        dim: Dimension,
        values: Vec<String>,
        case_sensitive: bool,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

/// Parses one filter; `segments`: the saved segments a `["is", "segment", [id]]` may name (`None`:
/// none may be named, as inside a segment).
fn parse_filter(
    v: &Value,
    field: &str,
    values: &mut usize,
    segments: Option<&Segments>,
) -> Result<Filter, QueryError> {
    let arr = v.as_array().ok_or_else(|| {
        bad(
            field,
            "must be a list such as [\"is\", \"visit:browser\", [\"chrome\"]]",
        )
    })?;
    let op = arr.first().and_then(Value::as_str).unwrap_or_default();
    if arr.get(1).and_then(Value::as_str) == Some("segment") {
        return segment_filter(arr, field, values, segments);
    }
    match op {
        "and" | "or" => {
            let list = arr
                .get(1)
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty() && arr.len() == 2)
                .ok_or_else(|| {
                    bad(
                        field,
                        format!("\"{op}\" takes one non-empty list of filters"),
                    )
                })?;
            let inner = list
                .iter()
                .enumerate()
                .map(|(i, f)| parse_filter(f, &format!("{field}[1][{i}]"), values, segments))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "and" {
                Filter::And(inner)
            } else {
                Filter::Or(inner)
            })
        }
        "not" => {
            let inner = arr
                .get(1)
                .filter(|_| arr.len() == 2)
                .ok_or_else(|| bad(field, "\"not\" takes one filter"))?;
            Ok(Filter::Not(Box::new(parse_filter(
                inner,
                &format!("{field}[1]"),
                values,
                segments,
            )?)))
        }
        "is" | "is_not" | "contains" | "contains_not" => {
            let op = match op {
                "is" => Op::Is,
                "is_not" => Op::IsNot,
                "contains" => Op::Contains,
                _ => Op::ContainsNot,
            };
            let name = arr.get(1).and_then(Value::as_str).unwrap_or_default();
            let prop = prop_key(name, &format!("{field}[1]"))?;
            let dim = prop
                .map(|_| Dimension::Prop)
                .or_else(|| dimension(name))
                .ok_or_else(|| {
                    bad(
                        &format!("{field}[1]"),
                        format!(
                        "unknown filter dimension '{}'; use event:page or one of {DIMENSION_NAMES}",
                        clip(name)
                    ),
                    )
                })?;
            let list = arr
                .get(2)
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| {
                    bad(
                        &format!("{field}[2]"),
                        "must be a non-empty list of strings",
                    )
                })?;
            let mut out = Vec::with_capacity(list.len());
            for (i, x) in list.iter().enumerate() {
                let s = x.as_str().filter(|s| s.len() <= 512).ok_or_else(|| {
                    bad(
                        &format!("{field}[2][{i}]"),
                        "must be a string of at most 512 bytes",
                    )
                })?;
                out.push(match prop {
                    Some(k) => format!("{k}{}{s}", crate::rollup::visits::SEP),
                    None => s.to_owned(),
                });
            }
            if prop.is_some() && op != Op::Is {
                return Err(bad(
                    &format!("{field}[0]"),
                    "event:props filters take only is",
                ));
            }
            *values += out.len();
            let case_sensitive = match arr.get(3) {
                None => true,
                Some(m) => m
                    .get("case_sensitive")
                    .and_then(Value::as_bool)
                    .filter(|_| m.as_object().is_some_and(|o| o.len() == 1))
                    .ok_or_else(|| {
                        bad(
                            &format!("{field}[3]"),
                            "must be {\"case_sensitive\": true|false}",
                        )
                    })?,
            };
            if arr.len() > 4 {
                return Err(bad(field, "has too many elements"));
            }
            Ok(Filter::Leaf {
                op,
                dim,
                values: out,
                case_sensitive,
            })
        }
        _ => Err(bad(
            &format!("{field}[0]"),
            "must be one of is, is_not, contains, contains_not, and, or, not",
        )),
    }
}

/// The key of an `event:props:<key>` name (`None` for any other name).
fn prop_key<'a>(name: &'a str, field: &str) -> Result<Option<&'a str>, QueryError> {
    let Some(key) = name.strip_prefix("event:props:") else {
        return Ok(None);
    };
    if key.is_empty()
        || key.chars().count() > crate::props::MAX_KEY
        || key.contains(crate::rollup::visits::SEP)
    {
        return Err(bad(
            field,
            "event:props:<key> needs a property key of 1 to 300 characters",
        ));
    }
    Ok(Some(key))
}

fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The token's fixed `date_from`/`date_to` (names case-insensitive, as for the pipes) win over the
/// body's range, as fixed params win everywhere: a date-bound token reads only its own dates. Returns
/// the range in force and whether the token fixes any date.
fn fixed_dates(
    fixed: &BTreeMap<String, String>,
    from: Days,
    to: Days,
) -> Result<(Days, Days, bool), QueryError> {
    let pinned = |name: &str| -> Result<Option<Days>, QueryError> {
        fixed
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| {
                parse_date(v).ok_or_else(|| {
                    bad(
                        "date_range",
                        format!("the token's fixed {name} is not a date as YYYY-MM-DD"),
                    )
                })
            })
            .transpose()
    };
    let (pinned_from, pinned_to) = (pinned("date_from")?, pinned("date_to")?);
    let (from, to) = (pinned_from.unwrap_or(from), pinned_to.unwrap_or(to));
    if from > to {
        return Err(bad(
            "date_range",
            "ends before it starts within the token's fixed dates",
        ));
    }
    if to - from + 1 > MAX_RANGE_DAYS {
        return Err(bad(
            "date_range",
            format!("may span at most {MAX_RANGE_DAYS} days within the token's fixed dates"),
        ));
    }
    Ok((from, to, pinned_from.is_some() || pinned_to.is_some()))
}

/// The local dates of a `date_range` (`field`: the name to report, `date_range` or the comparison's).
fn date_range(v: Option<&Value>, today: Days, field: &str) -> Result<(Days, Days), QueryError> {
    let (from, to) = match v {
        Some(Value::Array(pair)) if pair.len() == 2 => {
            let d = |i: usize| {
                pair[i]
                    .as_str()
                    .and_then(parse_date)
                    .ok_or_else(|| bad(&format!("{field}[{i}]"), "must be a date as YYYY-MM-DD"))
            };
            (d(0)?, d(1)?)
        }
        Some(Value::String(s)) => {
            let (y, m, _) = civil_from_days(today);
            match s.as_str() {
                "day" => (today, today),
                "month" => (
                    days_from_civil(y, m, 1),
                    if m == 12 {
                        days_from_civil(y + 1, 1, 1) - 1
                    } else {
                        days_from_civil(y, m + 1, 1) - 1
                    },
                ),
                "year" => (days_from_civil(y, 1, 1), days_from_civil(y + 1, 1, 1) - 1),
                other => {
                    if let Some(n) = other.strip_suffix("mo").and_then(|n| n.parse::<i64>().ok()) {
                        if !(1..=13).contains(&n) {
                            return Err(bad(field, "Nmo takes N from 1 to 13"));
                        }
                        // N whole months ending with last month.
                        let months = y * 12 + i64::from(m) - 1 - n;
                        let from = days_from_civil(
                            months.div_euclid(12),
                            (months.rem_euclid(12) + 1) as u32,
                            1,
                        );
                        (from, days_from_civil(y, m, 1) - 1)
                    } else if let Some(n) =
                        other.strip_suffix('d').and_then(|n| n.parse::<i64>().ok())
                    {
                        if !(1..=MAX_RANGE_DAYS).contains(&n) {
                            return Err(bad(
                                field,
                                format!("Nd takes N from 1 to {MAX_RANGE_DAYS}"),
                            ));
                        }
                        // N whole days ending yesterday.
                        (today - n, today - 1)
                    } else {
                        return Err(bad(
                            field,
                            "must be [\"YYYY-MM-DD\", \"YYYY-MM-DD\"] or one of day, 7d, 28d, 30d, 91d, month, year, 6mo, 12mo",
                        ));
                    }
                }
            }
        }
        None => return Err(bad(field, "is required")),
        _ => {
            return Err(bad(
                field,
                "must be a pair of dates or a shorthand such as 7d, 30d or month",
            ))
        }
    };
    if from > to {
        return Err(bad(field, "starts after it ends"));
    }
    if to - from + 1 > MAX_RANGE_DAYS {
        return Err(bad(
            field,
            format!("may span at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok((from, to))
}

/// Time buckets of `from..=to`: `(label, UTC pieces)`, oldest first.
fn time_buckets(
    tz: &dyn TimeZone,
    grain: Grain,
    from: Days,
    to: Days,
) -> Vec<(String, Vec<(i64, i64)>)> {
    match grain {
        Grain::Hour => {
            let mut by_label: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
            let (start, end) = (day_start(tz, from), day_start(tz, to + 1));
            let mut u = start;
            while u < end {
                by_label
                    .entry(hour_label(tz, u))
                    .or_default()
                    .push((u, u + 3600));
                u += 3600;
            }
            by_label
                .into_iter()
                .map(|(l, p)| (format_datetime(l), p))
                .collect()
        }
        Grain::Day => (from..=to)
            .map(|d| {
                (
                    format_date(d),
                    vec![(day_start(tz, d), day_start(tz, d + 1))],
                )
            })
            .collect(),
        Grain::Week | Grain::Month => {
            let mut out = Vec::new();
            let mut d = from;
            while d <= to {
                let (start, next) = if grain == Grain::Week {
                    // 1970-01-01 was a Thursday: Monday-based weekday of day d is (d + 3) mod 7.
                    let monday = d - (d + 3).rem_euclid(7);
                    (monday, monday + 7)
                } else {
                    let (y, m, _) = civil_from_days(d);
                    let next = if m == 12 {
                        days_from_civil(y + 1, 1, 1)
                    } else {
                        days_from_civil(y, m + 1, 1)
                    };
                    (days_from_civil(y, m, 1), next)
                };
                let end = next.min(to + 1);
                out.push((
                    format_date(start),
                    vec![(day_start(tz, d), day_start(tz, end))],
                ));
                d = end;
            }
            out
        }
    }
}

/// Plans a `POST /v0/query` body that names no saved segment.
pub fn plan_query(req: &ApiRequest) -> Result<ApiPlan, QueryError> {
    plan_query_with_segments(req, &Segments::new())
}

/// Plans a `POST /v0/query` body; `segments` holds the filters of the saved segments it names
/// ([`segment_ids`]), read by the caller for the verified tenant only. A named id missing from it is a
/// 400, whether it does not exist or belongs to another tenant.
pub fn plan_query_with_segments(
    req: &ApiRequest,
    segments: &Segments,
) -> Result<ApiPlan, QueryError> {
    let body = req
        .body
        .as_object()
        .ok_or_else(|| bad("body", "must be a JSON object"))?;
    const KEYS: [&str; 10] = [
        "site_id",
        "metrics",
        "date_range",
        "dimensions",
        "filters",
        "order_by",
        "include",
        "pagination",
        "timezone",
        "tenant_id",
    ];
    if let Some(k) = body.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(bad(&clip(k), "is not a query field"));
    }
    let tenant = req.tenant;

    // metrics
    let list = body
        .get("metrics")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            bad(
                "metrics",
                format!("must be a non-empty list of {}", METRICS.join(", ")),
            )
        })?;
    let mut metrics: Vec<&'static str> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let name = m.as_str().unwrap_or_default();
        let known = METRICS.iter().find(|x| **x == name).ok_or_else(|| {
            bad(
                &format!("metrics[{i}]"),
                format!(
                    "unknown metric '{}'; use {}",
                    clip(name),
                    METRICS.join(", ")
                ),
            )
        })?;
        if metrics.contains(known) {
            return Err(bad(&format!("metrics[{i}]"), "is repeated"));
        }
        metrics.push(known);
    }

    // date range and comparison
    let today = local_day(req.tz, req.now_secs);
    let (from, to) = date_range(body.get("date_range"), today, "date_range")?;
    let (from, to, dates_fixed) = fixed_dates(req.fixed, from, to)?;
    let empty = Map::new();
    let include = match body.get("include") {
        None | Some(Value::Null) => &empty,
        Some(v) => v
            .as_object()
            .ok_or_else(|| bad("include", "must be an object"))?,
    };
    let flag = |name: &str| -> Result<bool, QueryError> {
        match include.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(&format!("include.{name}"), "must be true or false")),
        }
    };
    if let Some(k) = include
        .keys()
        .find(|k| !["time_labels", "total_rows", "comparisons"].contains(&k.as_str()))
    {
        return Err(bad(
            &format!("include.{}", clip(k)),
            "is not supported; use time_labels, total_rows, comparisons",
        ));
    }
    let comparison = match include.get("comparisons") {
        None | Some(Value::Null) => None,
        // A comparison reads outside the token's fixed dates by construction.
        Some(_) if dates_fixed => return Err(bad(
            "include.comparisons",
            "the token fixes date_from/date_to: a comparison would read outside them, leave it out",
        )),
        Some(c) => Some(compare::parse(c, from, to, |v, field| {
            date_range(Some(v), today, field)
        })?),
    };
    let comparison_echo = comparison.as_ref().map(|c| c.echo.clone());
    let comparison = comparison.map(|c| (c.from, c.to));

    // dimensions
    let dims = body.get("dimensions").map_or(Ok(Vec::new()), |v| {
        v.as_array()
            .cloned()
            .ok_or_else(|| bad("dimensions", "must be a list"))
    })?;
    if dims.len() > 1 {
        return Err(bad("dimensions", "at most one dimension is supported"));
    }
    let dim_name = dims
        .first()
        .map(|d| {
            d.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad("dimensions[0]", "must be a string"))
        })
        .transpose()?;
    let (grain, group) = match dim_name.as_deref() {
        None => (None, None),
        Some("time") => (
            Some(if from == to {
                Grain::Hour
            } else if to - from < 40 {
                Grain::Day
            } else {
                Grain::Month
            }),
            None,
        ),
        Some("time:hour") => (Some(Grain::Hour), None),
        Some("time:day") => (Some(Grain::Day), None),
        Some("time:week") => (Some(Grain::Week), None),
        Some("time:month") => (Some(Grain::Month), None),
        Some(name) if name.starts_with("event:props:") => {
            prop_key(name, "dimensions[0]")?;
            (None, Some(Dimension::Prop))
        }
        Some("event:props") => (None, Some(Dimension::PropKey)),
        Some(name) => match dimension(name) {
            Some(Dimension::Page | Dimension::Funnel) | None => {
                return Err(bad(
                    "dimensions[0]",
                    format!(
                        "unknown or unsupported dimension '{}'; use one of {DIMENSION_NAMES}",
                        clip(name)
                    ),
                ))
            }
            Some(d) => (None, Some(d)),
        },
    };
    if flag("time_labels")? && grain.is_none() {
        return Err(bad("include.time_labels", "needs a time dimension"));
    }

    // filters: the body's (saved segments expanded), the site and the token's fixed domain, AND-ed
    if segment_ids(req.body).len() > MAX_SEGMENTS_PER_QUERY {
        return Err(bad(
            "filters",
            format!("may name at most {MAX_SEGMENTS_PER_QUERY} segments"),
        ));
    }
    let mut values = 0;
    let mut filters = Vec::new();
    if let Some(f) = body.get("filters").filter(|f| !f.is_null()) {
        let list = f
            .as_array()
            .ok_or_else(|| bad("filters", "must be a list of filters"))?;
        for (i, x) in list.iter().enumerate() {
            filters.push(parse_filter(
                x,
                &format!("filters[{i}]"),
                &mut values,
                Some(segments),
            )?);
        }
    }
    for domain in [
        body.get("site_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        req.fixed.get("domain").cloned(),
    ]
    .into_iter()
    .flatten()
    {
        values += 1;
        filters.push(Filter::Leaf {
            op: Op::Is,
            dim: Dimension::Host,
            values: vec![domain],
            case_sensitive: true,
        });
    }
    if let Some(v) = body
        .get("site_id")
        .filter(|v| !v.is_null() && !v.is_string())
    {
        let _ = v;
        return Err(bad("site_id", "must be a domain as a string"));
    }
    if values > MAX_FILTER_VALUES {
        return Err(bad(
            "filters",
            format!("may hold at most {MAX_FILTER_VALUES} values in all"),
        ));
    }

    // goals: event:goal filters are top-level `is`/`contains` (as in Plausible); goal metrics need a
    // goal filter or dimension.
    fn nested_goal(f: &Filter) -> bool {
        match f {
            Filter::Leaf { dim, .. } => {
                matches!(dim, Dimension::Goal | Dimension::Prop | Dimension::PropKey)
            }
            Filter::And(l) | Filter::Or(l) => l.iter().any(nested_goal),
            Filter::Not(inner) => nested_goal(inner),
        }
    }
    for (i, f) in filters.iter().enumerate() {
        match f {
            Filter::Leaf {
                dim: Dimension::Goal,
                op,
                ..
            } if !matches!(op, Op::Is | Op::Contains) => {
                return Err(bad(
                    &format!("filters[{i}][0]"),
                    "event:goal takes only is and contains",
                ))
            }
            Filter::Leaf { .. } => {}
            other if nested_goal(other) => return Err(bad(
                &format!("filters[{i}]"),
                "event:goal and event:props filters are top-level only (not inside and, or, not)",
            )),
            _ => {}
        }
    }
    let goal_filtered = filters.iter().any(|f| {
        matches!(
            f,
            Filter::Leaf {
                dim: Dimension::Goal,
                ..
            }
        )
    });
    let goal_query = goal_filtered || group == Some(Dimension::Goal);
    let prop_query = matches!(group, Some(Dimension::Prop | Dimension::PropKey))
        || filters.iter().any(|f| {
            matches!(
                f,
                Filter::Leaf {
                    dim: Dimension::Prop,
                    ..
                }
            )
        });
    // A goal's properties: the goal's events that carried each value (`session_goal_props`).
    if goal_query && prop_query {
        if let Some(i) = metrics
            .iter()
            .position(|m| matches!(*m, "conversion_rate" | "total_revenue" | "average_revenue"))
        {
            return Err(bad(
                &format!("metrics[{i}]"),
                "is not supported with event:goal and event:props together; use visitors, visits, \
                 conversions or events",
            ));
        }
    }
    // The grouped property's `key SEP`, and whether its values come from the visits' events.
    let prop_prefix = dim_name
        .as_deref()
        .and_then(|d| d.strip_prefix("event:props:"))
        .map(|k| format!("{k}{}", crate::rollup::visits::SEP));
    let events_table = if goal_query && prop_query {
        Some(EventTable::GoalProps)
    } else if goal_query {
        Some(EventTable::Goals)
    } else if prop_query {
        Some(EventTable::Props)
    } else {
        None
    };
    if let Some(i) = metrics
        .iter()
        .position(|m| GOAL_METRICS.contains(m) && !(prop_query && *m == "events"))
    {
        if !goal_query {
            return Err(bad(
                &format!("metrics[{i}]"),
                "needs an event:goal filter or the event:goal dimension",
            ));
        }
    }
    let goal_events = metrics.iter().any(|m| GOAL_EVENT_METRICS.contains(m));
    let divisor = metrics.contains(&"conversion_rate");

    // order_by and pagination
    let mut order_by: Vec<(String, bool)> = Vec::new();
    if let Some(o) = body.get("order_by").filter(|o| !o.is_null()) {
        let list = o
            .as_array()
            .ok_or_else(|| bad("order_by", "must be a list of [name, \"asc\"|\"desc\"]"))?;
        for (i, x) in list.iter().enumerate() {
            let field = format!("order_by[{i}]");
            let pair = x
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| bad(&field, "must be [name, \"asc\"|\"desc\"]"))?;
            let name = pair[0].as_str().unwrap_or_default();
            if !metrics.contains(&name) && dim_name.as_deref() != Some(name) {
                return Err(bad(
                    &field,
                    format!(
                        "'{}' is not among the queried metrics and dimensions",
                        clip(name)
                    ),
                ));
            }
            let desc = match pair[1].as_str() {
                Some("asc") => false,
                Some("desc") => true,
                _ => return Err(bad(&field, "direction must be \"asc\" or \"desc\"")),
            };
            order_by.push((name.to_owned(), desc));
        }
    }
    if order_by.is_empty() {
        match &dim_name {
            Some(d) if grain.is_some() => order_by.push((d.clone(), false)),
            _ => order_by.push((metrics[0].to_owned(), true)),
        }
    }
    let page = body.get("pagination").map_or(Ok(Map::new()), |p| {
        p.as_object()
            .cloned()
            .ok_or_else(|| bad("pagination", "must be an object"))
    })?;
    let int = |name: &str, default: i64, min: i64, max: i64| -> Result<i64, QueryError> {
        match page.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_i64()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    bad(
                        &format!("pagination.{name}"),
                        format!("must be a whole number from {min} to {max}"),
                    )
                }),
        }
    };
    let limit = int("limit", MAX_LIMIT, 1, MAX_LIMIT)?;
    let offset = int("offset", 0, 0, 1_000_000)?;

    // the plan
    let tz = req.tz;
    let mut statements = Vec::new();
    let mut goal_sums = if events_table.is_some() {
        GoalSource::Rows
    } else {
        GoalSource::None
    };
    let mut divisor_at = None;
    // One goal's property breakdown (no time buckets, no visit_duration: those cells hold the goal's
    // events in its place): the goal property cells' value (`goal SEP key SEP [value]`), the key's
    // stem (`goal SEP key SEP`) and the domain. Every other goal × property query reads
    // `session_goal_props`.
    let goal_prop = prop_prefix
        .as_deref()
        .filter(|_| {
            goal_filtered
                && grain.is_none()
                && group == Some(Dimension::Prop)
                && !metrics.contains(&"visit_duration")
        })
        .and_then(|key| goal_prop_value(&filters, key));
    // The property key list (`event:props`) by `events` alone, without a goal or time buckets and
    // unfiltered or with one hostname: the property-event cells folded per key (a key's events are
    // the sum over its values). A key's visits and visitors are not in the cells (a visit that
    // carried two values of one key counts once for the key, twice in its value cells), so any other
    // metric reads `session_props`. `Some(domain)` when the cells answer.
    let key_list = (group == Some(Dimension::PropKey)
        && !goal_query
        && grain.is_none()
        && metrics.iter().all(|m| *m == "events"))
    .then(|| cell_filters(&filters, ""))
    .flatten()
    .filter(|f| f.goal.is_none() && f.value.is_none())
    .map(|f| f.domain);
    let slice = if let Some((value, stem, domain)) = &goal_prop {
        let mut s = Slice::new(
            tenant,
            dim::GOAL_PROP,
            Some(value.as_str()),
            *domain,
            req.now_secs,
        );
        s.key_prefix = value == stem;
        Some(s)
    } else if prop_query {
        // A property breakdown (no goal, no time buckets) from the property cells; every other
        // property query reads `session_props`.
        prop_prefix
            .as_deref()
            .filter(|_| !goal_query && grain.is_none() && group == Some(Dimension::Prop))
            .and_then(|key| prop_slice(tenant, req.now_secs, &filters, key))
    } else {
        fast_slice(tenant, req.now_secs, &filters, group)
            .filter(|s| {
                !(grain == Some(Grain::Day) && rollups::series_reads_visits(s, tz, from, to))
            })
            // A goal's events, revenue and rate: goal-event cells and the all-visits divisor, per goal
            // or for one goal (no time buckets, no grouping by domain).
            .filter(|s| {
                !(goal_events || divisor)
                    || (s.dim == dim::GOAL
                        && grain.is_none()
                        && matches!(group, None | Some(Dimension::Goal)))
            })
    };
    let (labels, comparison_labels, rows, uses_rollups) = match slice {
        Some(slice) => {
            let by_domain = group == Some(Dimension::Host);
            match grain {
                Some(g) => {
                    let cur = time_buckets(tz, g, from, to);
                    let cmp = comparison
                        .map(|(f, t)| time_buckets(tz, g, f, t))
                        .unwrap_or_default();
                    let buckets = cur
                        .iter()
                        .enumerate()
                        .map(|(i, (label, pieces))| KpiBucket {
                            label: label.clone(),
                            current: pieces.clone(),
                            previous: cmp.get(i).map(|c| c.1.clone()).unwrap_or_default(),
                        })
                        .collect();
                    let (s, shape) = rollups::kpi_statements(
                        &slice,
                        g == Grain::Hour,
                        comparison.is_some(),
                        buckets,
                    );
                    statements = s;
                    (
                        cur.into_iter().map(|c| c.0).collect(),
                        cmp.into_iter().map(|c| c.0).collect(),
                        RowSource::Buckets(shape),
                        true,
                    )
                }
                None => {
                    statements.push(rollups::value_statement(
                        &slice,
                        (day_start(tz, from), day_start(tz, to + 1)),
                        by_domain,
                    ));
                    if let Some((f, t)) = comparison {
                        statements.push(rollups::value_statement(
                            &slice,
                            (day_start(tz, f), day_start(tz, t + 1)),
                            by_domain,
                        ));
                    }
                    let windows: Vec<(Days, Days)> =
                        std::iter::once((from, to)).chain(comparison).collect();
                    let mut per_window = |s: &Slice| {
                        let at = statements.len();
                        for &(f, t) in &windows {
                            statements.push(rollups::value_statement(
                                s,
                                (day_start(tz, f), day_start(tz, t + 1)),
                                false,
                            ));
                        }
                        (at, comparison.map(|_| at + 1))
                    };
                    goal_sums = GoalSource::None;
                    if slice.dim == dim::GOAL_PROP {
                        // A goal property value's events: in its own cells' `duration`.
                        goal_sums = GoalSource::GoalPropCells;
                    } else if slice.dim == dim::PROP {
                        // A property value's events: its property-event cells.
                        if metrics.contains(&"events") {
                            let cells = Slice {
                                dim: dim::PROP_EVENTS,
                                ..slice.clone()
                            };
                            let (at, cmp) = per_window(&cells);
                            goal_sums = GoalSource::PropCells(at, cmp);
                        }
                    } else if goal_events {
                        let cells = Slice {
                            dim: dim::GOAL_EVENTS,
                            ..slice.clone()
                        };
                        let (at, cmp) = per_window(&cells);
                        goal_sums = GoalSource::Cells(at, cmp);
                    }
                    if divisor {
                        // The rate's divisor: the all-visits rollup (the same domain).
                        let all = Slice::new(tenant, dim::ALL, None, slice.domain, req.now_secs);
                        divisor_at = Some(per_window(&all));
                    }
                    (Vec::new(), Vec::new(), RowSource::Groups, true)
                }
            }
        }
        None if key_list.is_some() => {
            let cells = Slice::new(
                tenant,
                dim::PROP_EVENTS,
                None,
                key_list.flatten(),
                req.now_secs,
            );
            for (f, t) in std::iter::once((from, to)).chain(comparison) {
                statements.push(rollups::prop_key_statement(
                    &cells,
                    (day_start(tz, f), day_start(tz, t + 1)),
                ));
            }
            goal_sums = GoalSource::KeyCells;
            (Vec::new(), Vec::new(), RowSource::Groups, true)
        }
        None => {
            let windows = std::iter::once((from, to)).chain(comparison);
            for (f, t) in windows {
                statements.push(if let Some(table) = events_table {
                    grouped_statement(
                        tenant,
                        tz,
                        (f, t),
                        grain,
                        (group, prop_prefix.as_deref()),
                        &filters,
                        Some(table),
                    )
                } else {
                    visit_statement(tenant, tz, f, t, grain, group, &filters)?
                });
            }
            if divisor {
                // All visitors of the range with the same non-goal filters, per time bucket or
                // visit dimension value (one total when grouped by goal).
                let rest: Vec<Filter> = filters
                    .iter()
                    .filter(|f| !nested_goal(f))
                    .cloned()
                    .collect();
                let g = group.filter(|g| *g != Dimension::Goal);
                let at = statements.len();
                for (f, t) in std::iter::once((from, to)).chain(comparison) {
                    statements.push(visit_statement(tenant, tz, f, t, grain, g, &rest)?);
                }
                divisor_at = Some((at, comparison.map(|_| at + 1)));
            }
            let labels = |f, t| {
                grain
                    .map(|g| time_buckets(tz, g, f, t).into_iter().map(|b| b.0).collect())
                    .unwrap_or_default()
            };
            (
                labels(from, to),
                comparison.map(|(f, t)| labels(f, t)).unwrap_or_default(),
                RowSource::Groups,
                false,
            )
        }
    };

    if uses_rollups && goal_sums == GoalSource::Rows {
        goal_sums = GoalSource::None;
    }
    let mut inc = Map::new();
    for k in ["time_labels", "total_rows"] {
        if flag(k)? {
            inc.insert(k.into(), true.into());
        }
    }
    if let Some(echo) = comparison_echo {
        inc.insert("comparisons".into(), echo);
    }
    let query = json!({
        "site_id": body.get("site_id").cloned().unwrap_or(Value::Null),
        "metrics": metrics,
        "date_range": [format_date(from), format_date(to)],
        "dimensions": dims,
        "filters": body.get("filters").cloned().unwrap_or_else(|| json!([])),
        "order_by": order_by.iter().map(|(n, d)| json!([n, if *d { "desc" } else { "asc" }])).collect::<Vec<_>>(),
        "include": inc,
        "pagination": { "limit": limit, "offset": offset },
        "timezone": timezone_of(req.body, req.fixed)?.unwrap_or_else(|| "UTC".into()),
    });
    // The segments' filters as read, so a changed segment never answers from the old entry.
    let used: BTreeMap<&i64, &Value> = segment_ids(req.body)
        .iter()
        .filter_map(|id| segments.get_key_value(id))
        .collect();
    let key = serde_json::to_string(
        &json!({ "tenant": tenant.as_str(), "query": query, "fixed": req.fixed, "segments": used }),
    )
    .unwrap_or_default();
    let visits = (!uses_rollups && events_table.is_none() && !divisor && comparison.is_none())
        .then(|| super::segment_route::VisitQuery {
            window: (day_start(tz, from), day_start(tz, to + 1)),
            grain,
            group,
            filters: filters.clone(),
        });
    // A funnel step read from `session_funnels` (the step filter drives `grouped_statement`).
    let funnel = funnel_leaf(&filters)
        .filter(|_| {
            !uses_rollups
                && events_table.is_none()
                && grain.is_none()
                && group.is_none()
                && comparison.is_none()
        })
        .map(|i| FunnelDrive {
            step: match &filters[i] {
                Filter::Leaf { values, .. } => values[0].clone(),
                _ => String::new(),
            },
            filters: filters
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, f)| f.clone())
                .collect(),
            window: (day_start(tz, from), day_start(tz, to + 1)),
        });
    Ok(ApiPlan {
        statements,
        key,
        visits,
        funnel,
        shape: ApiShape {
            metrics,
            dimension: dim_name,
            time: grain.is_some(),
            rows,
            labels,
            comparison_labels,
            comparison: comparison.is_some(),
            comparison_range: comparison.map(|(f, t)| [format_date(f), format_date(t)]),
            order_by,
            limit,
            offset,
            time_labels: flag("time_labels")?,
            total_rows: flag("total_rows")?,
            query,
            rollups: uses_rollups,
            goal_sums,
            prop_stem: match goal_prop {
                Some((_, stem, _)) => Some(stem),
                None => prop_prefix,
            },
            divisor: divisor_at,
        },
    })
}

/// The rollup slice that answers these filters and grouping, if one does: only `is` filters of one
/// value, at most one besides `event:hostname` (at most one of those), on the grouped dimension unless
/// grouping by time, by domain or not at all.
fn fast_slice<'a>(
    tenant: &'a TenantId,
    now: i64,
    filters: &'a [Filter],
    group: Option<Dimension>,
) -> Option<Slice<'a>> {
    let mut leaves = Vec::new();
    fn flatten<'f>(f: &'f Filter, out: &mut Vec<&'f Filter>) -> bool {
        match f {
            Filter::And(list) => list.iter().all(|x| flatten(x, out)),
            Filter::Leaf { .. } => {
                out.push(f);
                true
            }
            _ => false,
        }
    }
    for f in filters {
        if !flatten(f, &mut leaves) {
            return None;
        }
    }
    let mut domain = None;
    let mut other: Option<(&'static str, &str)> = None;
    for leaf in leaves {
        let Filter::Leaf {
            op: Op::Is,
            dim,
            values,
            case_sensitive: true,
        } = leaf
        else {
            return None;
        };
        let [value] = values.as_slice() else {
            return None;
        };
        let code = match dim {
            Dimension::Host | Dimension::GoalHost => {
                if domain.replace(value.as_str()).is_some() {
                    return None;
                }
                continue;
            }
            Dimension::Page => dim::VIEWED,
            Dimension::Goal => dim::GOAL,
            Dimension::Prop | Dimension::PropKey => return None,
            Dimension::Funnel => dim::FUNNEL,
            Dimension::Visit(_, code) => code,
        };
        if other.replace((code, value.as_str())).is_some() {
            return None;
        }
    }
    let grouped = match group {
        Some(Dimension::Visit(_, g)) => Some(g),
        Some(Dimension::Goal) => Some(dim::GOAL),
        Some(Dimension::Prop | Dimension::PropKey) => return None,
        _ => None,
    };
    let (code, value) = match (grouped, other) {
        (Some(g), Some((code, v))) if code == g => (g, Some(v)),
        (Some(_), Some(_)) => return None,
        (Some(g), None) => (g, None),
        (_, Some((code, v))) => (code, Some(v)),
        (_, None) => (dim::ALL, None),
    };
    Some(Slice::new(tenant, code, value, domain, now))
}

/// The filters a property-cell read allows, each at most once: one `is` filter of one value
/// (case-sensitive) on a goal (`goal`; a name holding SEP names no goal), on the grouped property key
/// (`value`, `key SEP value` under `prefix`; another key's is not in the cells) or on `event:hostname`
/// (`domain`, the visit's domain). Anything else is `None`: the exact visit-level plan.
#[derive(Default)]
struct CellFilters<'a> {
    goal: Option<&'a str>,
    value: Option<&'a str>,
    domain: Option<&'a str>,
}

fn cell_filters<'a>(filters: &'a [Filter], prefix: &str) -> Option<CellFilters<'a>> {
    let mut found = CellFilters::default();
    for f in filters {
        let Filter::Leaf {
            op: Op::Is,
            dim,
            values,
            case_sensitive: true,
        } = f
        else {
            return None;
        };
        let [v] = values.as_slice() else {
            return None;
        };
        let slot = match dim {
            Dimension::Host | Dimension::GoalHost => &mut found.domain,
            // A goal name holds no SEP (`crate::goals`): one that does names no goal.
            Dimension::Goal if !v.contains(crate::rollup::visits::SEP) => &mut found.goal,
            Dimension::Prop if v.starts_with(prefix) => &mut found.value,
            _ => return None,
        };
        if slot.replace(v.as_str()).is_some() {
            return None;
        }
    }
    Some(found)
}

/// The property-cell slice ([`dim::PROP`]) of a breakdown by the property `key SEP` (`prefix`), if
/// these filters allow one ([`cell_filters`], without a goal: `session_props` has none); anything
/// else is `None` (the exact `session_props` plan).
fn prop_slice<'a>(
    tenant: &'a TenantId,
    now: i64,
    filters: &'a [Filter],
    prefix: &'a str,
) -> Option<Slice<'a>> {
    let found = cell_filters(filters, prefix).filter(|f| f.goal.is_none())?;
    let mut s = Slice::new(
        tenant,
        dim::PROP,
        found.value.or(Some(prefix)),
        found.domain,
        now,
    );
    s.key_prefix = found.value.is_none();
    Some(s)
}

/// The goal property cells' value ([`dim::GOAL_PROP`]) of a breakdown by the property `key SEP`
/// (`prefix`) under one goal, the key's stem `goal SEP key SEP` and the domain, if these filters
/// allow one ([`cell_filters`] with exactly one goal, as `session_goal_props.goal = ?`; with no value
/// filter the value is the key's stem); anything else is `None` (the exact `session_goal_props` plan).
fn goal_prop_value<'a>(
    filters: &'a [Filter],
    prefix: &str,
) -> Option<(String, String, Option<&'a str>)> {
    let found = cell_filters(filters, prefix)?;
    let goal = found.goal?;
    let stem = format!("{goal}{}{prefix}", crate::rollup::visits::SEP);
    let value = match found.value {
        Some(v) => format!("{goal}{}{v}", crate::rollup::visits::SEP),
        None => stem.clone(),
    };
    Some((value, stem, found.domain))
}

/// The exact visit-level statement for any filters: groups of `k` with the five measures.
fn visit_statement(
    tenant: &TenantId,
    tz: &dyn TimeZone,
    from: Days,
    to: Days,
    grain: Option<Grain>,
    group: Option<Dimension>,
    filters: &[Filter],
) -> Result<Statement, QueryError> {
    Ok(grouped_statement(
        tenant,
        tz,
        (from, to),
        grain,
        (group, None),
        filters,
        None,
    ))
}

/// The visit-level table of a goal or property query: one row per visit and goal (`session_goals`),
/// property value (`session_props`) or goal and property value of the goal's events
/// (`session_goal_props`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum EventTable {
    Goals,
    Props,
    GoalProps,
}

/// The exact visit-level groups: from `sessions`, or (`goals`) from `session_goals` joined to their
/// visit's `sessions` row, one visit per group however many of the filtered goals it completed, with
/// the goals' events and revenue besides the five measures. A visit without page hits has no
/// `sessions` row and matches no visit-attribute filter, as in the rollups.
fn grouped_statement(
    tenant: &TenantId,
    tz: &dyn TimeZone,
    (from, to): (Days, Days),
    grain: Option<Grain>,
    (group, prefix): (Option<Dimension>, Option<&str>),
    filters: &[Filter],
    events: Option<EventTable>,
) -> Statement {
    let window = (day_start(tz, from), day_start(tz, to + 1));
    grouped_statement_in(tenant, tz, window, grain, (group, prefix), filters, events)
}

/// [`grouped_statement`] over the visits starting in `[start, end)`, UTC seconds.
pub(super) fn grouped_statement_in(
    tenant: &TenantId,
    tz: &dyn TimeZone,
    (start, end): (i64, i64),
    grain: Option<Grain>,
    (group, prefix): (Option<Dimension>, Option<&str>),
    filters: &[Filter],
    events: Option<EventTable>,
) -> Statement {
    let goals = events.is_some();
    let column = match group {
        Some(Dimension::Visit(col, _)) => format!("s.{col}"),
        Some(Dimension::Host) if goals => "sg.domain".into(),
        Some(Dimension::Host) => "s.domain".into(),
        Some(Dimension::Goal) => "sg.goal".into(),
        Some(Dimension::Prop) => "sg.prop".into(),
        Some(Dimension::PropKey) => "substr(sg.prop, 1, instr(sg.prop, char(31)) - 1)".into(),
        _ => "''".into(),
    };
    // A top-level `is` filter of one funnel step (the funnel endpoint's): drives the statement.
    let funnel_leaf = funnel_leaf(filters);
    let funnel_step: Option<&str> = match funnel_leaf.map(|i| &filters[i]) {
        Some(Filter::Leaf { values, .. }) if events.is_none() => Some(values[0].as_str()),
        _ => None,
    };
    let mut q = TenantSql::new(tenant);
    if let Some(table) = events {
        let (from_table, money) = match table {
            EventTable::Goals => (
                "session_goals",
                "SUM(sg.revenue) AS rev, SUM(sg.paid) AS paid, MIN(sg.currency) AS cur, MAX(sg.currency) AS cur2",
            ),
            EventTable::Props => (
                "session_props",
                "0 AS rev, 0 AS paid, '' AS cur, '' AS cur2",
            ),
            EventTable::GoalProps => (
                "session_goal_props",
                "0 AS rev, 0 AS paid, '' AS cur, '' AS cur2",
            ),
        };
        q.push(&format!(
            "WITH g AS (SELECT {column} AS c, sg.first_ts AS t, MIN(sg.visitor_id) AS v, MAX(sg.pageviews) AS pv, \
             MAX(sg.duration) AS d, SUM(sg.events) AS ev, {money}"
        ))
        .from_joined(
            from_table,
            "sg",
            &[Join {
                kind: "LEFT JOIN",
                table: "sessions",
                alias: "s",
                on: "s.first_ts = sg.first_ts AND s.session_key = sg.session_key",
            }],
        )
        .bind(" AND sg.first_ts >= ?", start)
        .bind(" AND sg.first_ts < ?", end);
    } else if let Some(step) = funnel_step {
        // One funnel step among the filters: the visits that reached it, read from `session_funnels`
        // (far fewer rows than the window's visits past step 1), each joined to its `sessions` row by
        // its primary key (CROSS JOIN keeps that order).
        q.push(&format!(
            "WITH g AS (SELECT {column} AS c, s.first_ts AS t, s.visitor_id AS v, s.pageviews AS pv, \
             s.last_ts - s.first_ts AS d"
        ))
        .from_joined(
            "session_funnels",
            "sf",
                &[STEP_SESSIONS],
        )
        .bind(" AND sf.first_ts >= ?", start)
        .bind(" AND sf.first_ts < ?", end)
        .bind(" AND sf.step = ?", step);
    } else {
        q.push(&format!(
            "WITH g AS (SELECT {column} AS c, s.first_ts AS t, s.visitor_id AS v, s.pageviews AS pv, \
             s.last_ts - s.first_ts AS d"
        ))
        .from("sessions", "s")
        .bind(" AND s.first_ts >= ?", start)
        .bind(" AND s.first_ts < ?", end);
    }
    if let (Some(p), Some(Dimension::Prop)) = (prefix, group) {
        let upper = format!("{} ", p.trim_end_matches(crate::rollup::visits::SEP));
        q.bind(" AND sg.prop >= ?", p)
            .bind(" AND sg.prop < ?", upper);
    }
    for (i, f) in filters.iter().enumerate() {
        if funnel_step.is_some() && funnel_leaf == Some(i) {
            continue;
        }
        q.push(" AND ");
        let f = match f {
            Filter::Leaf {
                op,
                dim: Dimension::Host,
                values,
                case_sensitive,
            } if goals => &Filter::Leaf {
                op: *op,
                dim: Dimension::GoalHost,
                values: values.clone(),
                case_sensitive: *case_sensitive,
            },
            f => f,
        };
        filter_sql(f, (start, end), &mut q);
    }
    if goals {
        if matches!(group, Some(Dimension::Visit(..))) {
            // A visit without page hits has no visit attributes: it is in no group of them.
            q.push(" AND s.session_key IS NOT NULL");
        }
        q.push(" GROUP BY sg.first_ts, sg.session_key, c");
    }
    q.push(") SELECT ");
    match grain {
        Some(g) => {
            // The local hour of a visit: its UTC hour's start in local time, rounded up.
            let mut samples: Vec<i64> = (start..end).step_by(DAY as usize).collect();
            samples.push(end);
            let segments = offset_segments(tz, &samples);
            let mut off = String::from(if segments.len() > 1 { "CASE" } else { "" });
            let mut off_binds: Vec<SqlValue> = Vec::new();
            for (until, o) in &segments[..segments.len() - 1] {
                off.push_str(" WHEN t < ? THEN ?");
                off_binds.push((*until).into());
                off_binds.push(i64::from(*o).into());
            }
            off.push_str(if segments.len() > 1 {
                " ELSE ? END"
            } else {
                "?"
            });
            off_binds.push(i64::from(segments[segments.len() - 1].1).into());
            let local =
                format!("((CAST(t AS INTEGER) / 3600 * 3600 + CAST({off} AS INTEGER) + 3599) / 3600 * 3600)");
            let k = match g {
                Grain::Hour => format!("strftime('%Y-%m-%d %H:00:00', {local}, 'unixepoch')"),
                Grain::Day => format!("date({local}, 'unixepoch')"),
                Grain::Week => format!("date({local}, 'unixepoch', '-6 days', 'weekday 1')"),
                Grain::Month => format!("strftime('%Y-%m-01', {local}, 'unixepoch')"),
            };
            q.bind_all(&k, off_binds);
        }
        None => {
            q.push("c");
        }
    }
    q.push(
        " AS k, COUNT(*) AS visits, SUM(pv) AS pageviews, SUM(pv = 1) AS bounces, SUM(d) AS duration, \
         COUNT(DISTINCT v || '|' || (CAST(t AS INTEGER) / 86400)) AS visitors",
    );
    if goals {
        q.push(
            ", SUM(ev) AS events, SUM(rev) AS revenue, SUM(paid) AS paid, MIN(cur) AS currency, \
             MAX(cur2) AS currency_max",
        );
    }
    q.push(" FROM g GROUP BY k");
    q.finish()
}

/// The position of the first top-level `is` filter of one funnel step (`POST /v0/funnel` adds one per
/// step), which drives the visit-level statement from `session_funnels`.
fn funnel_leaf(filters: &[Filter]) -> Option<usize> {
    filters.iter().position(|f| {
        matches!(f, Filter::Leaf { op: Op::Is, dim: Dimension::Funnel, values, case_sensitive: true } if values.len() == 1)
    })
}

/// Every step of a funnel over the visit-level tables in one statement: rows `(step, visits,
/// visitors)` for the `steps` values (`id:k`) the window's visits reached under `drive`'s filters (a
/// step no visit reached has no row). The same visits and visitors as one [`grouped_statement`] per
/// step, cheaper: `session_funnels` of the window is read once (each step row joined to its
/// `sessions` row by primary key, as there) instead of once per step, and unique visitors are
/// counted per UTC day (visitor ids rotate daily, so distinct visitor-days are the sum over days of
/// each day's distinct visitors) instead of one `COUNT(DISTINCT visitor || day)` over the whole
/// window, whose set outgrows SQLite's cache. Each UTC day of the window (`d`: its part of the
/// window, `[a, z)`) is one correlated subquery grouped by step, so SQLite sorts and counts a day's
/// rows at a time (about 10% less work than one grouping by (day, step) over the window, which sorts
/// every matching row at once); its groups come back as JSON and are summed per step.
pub(super) fn funnel_steps_statement(
    tenant: &TenantId,
    drive: &FunnelDrive,
    steps: &[String],
) -> Statement {
    let (start, end) = drive.window;
    let mut q = TenantSql::new(tenant);
    q.bind_all(
        "WITH RECURSIVE d(a, z) AS (SELECT ?, MIN(? - ? % 86400 + 86400, ?) \
         UNION ALL SELECT z, MIN(z + 86400, ?) FROM d WHERE z < ?)",
        [start, start, start, end, end, end].map(SqlValue::from),
    )
    .push(
        " SELECT json_extract(j.value, '$[0]') AS step, SUM(json_extract(j.value, '$[1]')) AS visits, \
         SUM(json_extract(j.value, '$[2]')) AS visitors \
         FROM (SELECT (SELECT json_group_array(json_array(step, n, u)) \
         FROM (SELECT sf.step AS step, COUNT(*) AS n, COUNT(DISTINCT s.visitor_id) AS u",
    )
    .from_joined(
        "session_funnels",
        "sf",
        &[STEP_SESSIONS],
    )
    .push(" AND sf.first_ts >= d.a AND sf.first_ts < d.z");
    let marks = vec!["?"; steps.len()].join(", ");
    q.bind_all(
        &format!(" AND sf.step IN ({marks})"),
        steps.iter().map(|s| SqlValue::from(s.as_str())),
    );
    for f in &drive.filters {
        q.push(" AND ");
        filter_sql(f, (start, end), &mut q);
    }
    q.push(" GROUP BY sf.step)) AS x FROM d) CROSS JOIN json_each(x) j GROUP BY 1");
    q.finish()
}

/// A funnel step row (`session_funnels sf`) to its visit's `sessions` row `s`, by the visit's primary
/// key (CROSS JOIN keeps SQLite from reordering the tables).
const STEP_SESSIONS: Join<'static> = Join {
    kind: "CROSS JOIN",
    table: "sessions",
    alias: "s",
    on: "s.first_ts = sf.first_ts AND s.session_key = sf.session_key",
};

/// A filter on the sessions `s` of `window` (start, end).
fn filter_sql(f: &Filter, window: (i64, i64), q: &mut TenantSql) {
    match f {
        Filter::And(list) | Filter::Or(list) => {
            let joiner = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            q.push("(");
            for (i, x) in list.iter().enumerate() {
                if i > 0 {
                    q.push(joiner);
                }
                filter_sql(x, window, q);
            }
            q.push(")");
        }
        Filter::Not(inner) => {
            q.push("NOT ");
            filter_sql(inner, window, q);
        }
        Filter::Leaf {
            op,
            dim,
            values,
            case_sensitive,
        } => {
            let col = match dim {
                Dimension::Visit(c, _) => format!("s.{c}"),
                Dimension::Host => "s.domain".into(),
                Dimension::Page => "pv.pathname".into(),
                Dimension::Goal => "sg.goal".into(),
                Dimension::Prop | Dimension::PropKey => "sg.prop".into(),
                Dimension::GoalHost => "sg.domain".into(),
                Dimension::Funnel => "sf.step".into(),
            };
            let (col, wrap) = if *case_sensitive {
                (col, "?".to_owned())
            } else {
                (format!("lower({col})"), "lower(?)".to_owned())
            };
            let negate = matches!(op, Op::IsNot | Op::ContainsNot);
            let mut value_binds: Vec<SqlValue> = Vec::new();
            let any = values
                .iter()
                .map(|v| {
                    value_binds.push(v.as_str().into());
                    match op {
                        Op::Is | Op::IsNot => format!("{col} = {wrap}"),
                        _ => format!("instr({col}, {wrap}) > 0"),
                    }
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            if negate {
                q.push("NOT ");
            }
            if *dim == Dimension::Page {
                let (start, end) = window;
                super::pipes::pages_of_sessions(q, start, end, &any, value_binds);
            } else if *dim == Dimension::Funnel {
                // The visit's funnel steps, by the visit's primary key.
                q.push("EXISTS (SELECT 1")
                    .from("session_funnels", "sf")
                    .push(" AND sf.first_ts = s.first_ts AND sf.session_key = s.session_key")
                    .bind_all(&format!(" AND ({any}))"), value_binds);
            } else {
                q.bind_all(&format!("({any})"), value_binds);
            }
        }
    }
}

type Groups = BTreeMap<String, [i64; 5]>;

/// A goal group's events and revenue (integer minor units; `currency` `None` when the group mixes
/// currencies or its goals have none).
#[derive(Debug, Clone, Default)]
struct GoalSums {
    events: i64,
    revenue: i64,
    paid: i64,
    currency: Option<String>,
}

fn goal_sums(rows: &[Map<String, Value>]) -> BTreeMap<String, GoalSums> {
    rows.iter()
        .map(|r| {
            let k = match r.get("k") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            let text = |name: &str| r.get(name).and_then(Value::as_str).unwrap_or_default();
            let currency = (text("currency") == text("currency_max")
                && !text("currency").is_empty())
            .then(|| text("currency").to_owned());
            let sums = GoalSums {
                events: crate::sql::count(r.get("events")),
                revenue: crate::sql::count(r.get("revenue")),
                paid: crate::sql::count(r.get("paid")),
                currency,
            };
            (k, sums)
        })
        .collect()
}

/// A goal's events and revenue from its goal-event cells ([`dim::GOAL_EVENTS`] rows keyed `goal SEP
/// currency`, with events in `visits`, revenue in `pageviews` and events with revenue in
/// `bounces`), per goal: summed over its currencies, with a currency only when there is one.
fn cell_sums(rows: &[Map<String, Value>]) -> BTreeMap<String, GoalSums> {
    let mut out: BTreeMap<String, (GoalSums, std::collections::BTreeSet<String>)> = BTreeMap::new();
    for r in rows {
        let packed = r.get("k").and_then(Value::as_str).unwrap_or_default();
        let (goal, currency) = packed
            .split_once(crate::rollup::visits::SEP)
            .unwrap_or((packed, ""));
        let (sums, currencies) = out.entry(goal.to_owned()).or_default();
        sums.events += crate::sql::count(r.get("visits"));
        sums.revenue += crate::sql::count(r.get("pageviews"));
        sums.paid += crate::sql::count(r.get("bounces"));
        currencies.insert(currency.to_owned());
    }
    out.into_iter()
        .map(|(goal, (mut sums, currencies))| {
            sums.currency = match currencies.into_iter().collect::<Vec<_>>().as_slice() {
                [one] if !one.is_empty() => Some(one.clone()),
                _ => None,
            };
            (goal, sums)
        })
        .collect()
}

/// A property value's events from its property-event cells ([`dim::PROP_EVENTS`] rows keyed `key SEP
/// value`, the groups' key, with the events in `visits`).
fn prop_cell_sums(rows: &[Map<String, Value>]) -> BTreeMap<String, GoalSums> {
    rows.iter()
        .map(|r| {
            let k = r.get("k").and_then(Value::as_str).unwrap_or_default();
            let sums = GoalSums {
                events: crate::sql::count(r.get("visits")),
                ..GoalSums::default()
            };
            (k.to_owned(), sums)
        })
        .collect()
}

/// A goal property value's events from its goal property cells' groups ([`dim::GOAL_PROP`], the
/// events in `duration`).
fn goal_prop_sums(rows: &[Map<String, Value>]) -> BTreeMap<String, GoalSums> {
    rows.iter()
        .map(|r| {
            let k = r.get("k").and_then(Value::as_str).unwrap_or_default();
            let sums = GoalSums {
                events: crate::sql::count(r.get("duration")),
                ..GoalSums::default()
            };
            (k.to_owned(), sums)
        })
        .collect()
}

/// What the goal metrics of a row read besides its measures: its events and revenue and the
/// visitors of its conversion rate's divisor.
#[derive(Default)]
struct GoalData {
    sums: BTreeMap<String, GoalSums>,
    divisor: Option<Groups>,
}

impl GoalData {
    /// A goal metric's JSON value for the row `key` with measures `m`; `None` for other metrics.
    fn value(&self, name: &str, key: &str, m: &[i64; 5]) -> Option<Value> {
        let sums = self.sums.get(key).cloned().unwrap_or_default();
        let money = |minor: i64| match &sums.currency {
            Some(c) if sums.paid > 0 => crate::goals::money_json(minor, c),
            _ => Value::Null,
        };
        Some(match name {
            "conversions" => m[4].into(),
            "events" => sums.events.into(),
            "conversion_rate" => self.rate(key, m).into(),
            "total_revenue" => money(sums.revenue),
            "average_revenue" => money(crate::goals::average(sums.revenue, sums.paid)),
            _ => return None,
        })
    }

    /// Converting visitors as a percentage of all visitors with the same non-goal filters.
    fn rate(&self, key: &str, m: &[i64; 5]) -> f64 {
        let Some(d) = &self.divisor else { return 0.0 };
        let all = d.get(key).or_else(|| d.get("")).map_or(0, |x| x[4]);
        if all == 0 {
            0.0
        } else {
            round(m[4] as f64 * 100.0 / all as f64, 2)
        }
    }

    /// A number to order rows by.
    fn number(&self, name: &str, key: &str, m: &[i64; 5]) -> f64 {
        let sums = self.sums.get(key).cloned().unwrap_or_default();
        match name {
            "events" => sums.events as f64,
            "conversion_rate" => self.rate(key, m),
            "total_revenue" => sums.revenue as f64,
            "average_revenue" => crate::goals::average(sums.revenue, sums.paid) as f64,
            _ => metric(name, m),
        }
    }
}
/// A result row before shaping: key, measures, and the comparison's key and measures.
type Grouped = (String, [i64; 5], Option<(String, [i64; 5])>);

fn groups(rows: Vec<Map<String, Value>>) -> Result<Groups, QueryError> {
    let mut out = Groups::new();
    for r in rows {
        let k = match r.get("k") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        let mut m = [0i64; 5];
        for (slot, name) in
            m.iter_mut()
                .zip(["visits", "pageviews", "bounces", "duration", "visitors"])
        {
            *slot = crate::sql::count(r.get(name));
        }
        out.insert(k, m);
    }
    Ok(out)
}

/// A metric's value from `[visits, pageviews, bounces, duration, visitors]`.
fn metric(name: &str, m: &[i64; 5]) -> f64 {
    let per_visit = |n: i64| {
        if m[0] == 0 {
            0.0
        } else {
            n as f64 / m[0] as f64
        }
    };
    match name {
        "visitors" => m[4] as f64,
        "visits" => m[0] as f64,
        "pageviews" => m[1] as f64,
        "bounce_rate" => round(per_visit(m[2]) * 100.0, 2),
        "visit_duration" => per_visit(m[3]).round(),
        "conversions" => m[4] as f64,
        _ => round(per_visit(m[1]), 2),
    }
}

fn metric_json(name: &str, v: f64) -> Value {
    match name {
        "bounce_rate" | "views_per_visit" => v.into(),
        _ => (v as i64).into(),
    }
}

/// Shapes the statements' rows into `{results, meta, query}`.
pub fn assemble_query(
    plan: &ApiPlan,
    results: Vec<Vec<Map<String, Value>>>,
) -> Result<Value, QueryError> {
    let s = &plan.shape;
    if results.len() != plan.statements.len() {
        return Err(QueryError::ResultMismatch(format!(
            "{} row sets for {} statements",
            results.len(),
            plan.statements.len()
        )));
    }
    // (key, current, comparison key and measures)
    let mut rows: Vec<Grouped> = Vec::new();
    let mut results = results;
    // The goal data of the main period and of the comparison.
    let mut goal = GoalData::default();
    let mut goal_cmp = GoalData::default();
    let mut take = |i: usize| std::mem::take(&mut results[i]);
    if let Some((at, cmp)) = s.divisor {
        goal.divisor = Some(groups(take(at))?);
        goal_cmp.divisor = cmp.map(|i| groups(take(i))).transpose()?;
    }
    if let GoalSource::Cells(at, cmp) = s.goal_sums {
        goal.sums = cell_sums(&take(at));
        goal_cmp.sums = cmp.map(|i| cell_sums(&take(i))).unwrap_or_default();
    }
    if let GoalSource::PropCells(at, cmp) = s.goal_sums {
        goal.sums = prop_cell_sums(&take(at));
        goal_cmp.sums = cmp.map(|i| prop_cell_sums(&take(i))).unwrap_or_default();
    }
    if s.goal_sums == GoalSource::GoalPropCells {
        goal.sums = goal_prop_sums(results.first().map(Vec::as_slice).unwrap_or_default());
        if s.comparison {
            goal_cmp.sums = goal_prop_sums(results.get(1).map(Vec::as_slice).unwrap_or_default());
        }
    }
    if s.goal_sums == GoalSource::KeyCells {
        goal.sums = prop_cell_sums(results.first().map(Vec::as_slice).unwrap_or_default());
        if s.comparison {
            goal_cmp.sums = prop_cell_sums(results.get(1).map(Vec::as_slice).unwrap_or_default());
        }
    }
    if s.goal_sums == GoalSource::Rows {
        goal.sums = goal_sums(results.first().map(Vec::as_slice).unwrap_or_default());
        if s.comparison {
            goal_cmp.sums = goal_sums(results.get(1).map(Vec::as_slice).unwrap_or_default());
        }
    }
    match &s.rows {
        RowSource::Buckets(k) => {
            let data = k.rows(results);
            for (i, b) in k.buckets.iter().enumerate() {
                let cur = k.totals(&data, &b.current);
                let cmp = s.comparison.then(|| {
                    (
                        s.comparison_labels.get(i).cloned().unwrap_or_default(),
                        k.totals(&data, &b.previous),
                    )
                });
                // Empty buckets are left out, as Plausible does.
                if cur[0] > 0 {
                    rows.push((b.label.clone(), cur, cmp));
                }
            }
        }
        RowSource::Groups => {
            let mut sets = results.into_iter();
            let cur = groups(sets.next().unwrap_or_default())?;
            let cmp = if s.comparison {
                Some(groups(sets.next().unwrap_or_default())?)
            } else {
                None
            };
            for (key, m) in cur {
                let c = cmp.as_ref().map(|cmp| {
                    let ck = if s.time {
                        s.labels
                            .iter()
                            .position(|l| *l == key)
                            .and_then(|i| s.comparison_labels.get(i).cloned())
                            .unwrap_or_default()
                    } else {
                        key.clone()
                    };
                    let cm = cmp.get(&ck).copied().unwrap_or_default();
                    (ck, cm)
                });
                rows.push((key, m, c));
            }
        }
    }
    // Order: the requested keys, then the dimension value for a stable order.
    rows.sort_by(|a, b| {
        for (name, desc) in &s.order_by {
            let ord = if Some(name) == s.dimension.as_ref() {
                a.0.cmp(&b.0)
            } else {
                goal.number(name, &a.0, &a.1)
                    .total_cmp(&goal.number(name, &b.0, &b.1))
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord.is_ne() {
                return ord;
            }
        }
        a.0.cmp(&b.0)
    });
    let total = rows.len();
    let results: Vec<Value> = rows
        .into_iter()
        .skip(s.offset as usize)
        .take(s.limit as usize)
        .map(|(key, m, cmp)| {
            let dims: Vec<Value> = if s.dimension.is_some() {
                let shown = if let Some(stem) = &s.prop_stem {
                    key.strip_prefix(stem.as_str()).unwrap_or_else(|| {
                        key.split_once(crate::rollup::visits::SEP)
                            .map_or(key.as_str(), |(_, v)| v)
                    })
                } else {
                    key.as_str()
                };
                vec![shown.into()]
            } else {
                vec![]
            };
            let metrics: Vec<Value> = s
                .metrics
                .iter()
                .map(|n| {
                    goal.value(n, &key, &m)
                        .unwrap_or_else(|| metric_json(n, metric(n, &m)))
                })
                .collect();
            let mut row = json!({ "metrics": metrics, "dimensions": dims });
            if let Some((ck, cm)) = cmp {
                let values: Vec<Value> = s
                    .metrics
                    .iter()
                    .map(|n| {
                        goal_cmp
                            .value(n, &ck, &cm)
                            .unwrap_or_else(|| metric_json(n, metric(n, &cm)))
                    })
                    .collect();
                let change: Vec<Value> = s
                    .metrics
                    .iter()
                    .map(|n| growth(goal.number(n, &key, &m), goal_cmp.number(n, &ck, &cm)).into())
                    .collect();
                let cdims: Vec<Value> = if s.dimension.is_some() {
                    vec![ck.into()]
                } else {
                    vec![]
                };
                row["comparison"] =
                    json!({ "dimensions": cdims, "metrics": values, "change": change });
            }
            row
        })
        .collect();
    let mut meta = Map::new();
    if s.time_labels {
        meta.insert("time_labels".into(), s.labels.clone().into());
    }
    if s.total_rows {
        meta.insert("total_rows".into(), total.into());
    }
    if let Some(range) = &s.comparison_range {
        meta.insert("comparison_date_range".into(), json!(range));
    }
    Ok(json!({ "results": results, "meta": meta, "query": s.query }))
}
