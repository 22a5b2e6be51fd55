//! Pre-aggregated visit rollups: `visit_hourly` and `visit_daily` rows per (tenant, dimension, bucket,
//! value, domain), maintained by deltas (see `migrations/0005_visit_rollups.sql` for the tables and the
//! dimension codes; migration 0010 for their integer form). Hourly rows of a dimension other than all
//! visits are written and kept for the last [`HOURLY_DAYS`] UTC days only.
//!
//! A visit is attributed to the bucket of its first hit. When a batch touches a visit, its previous
//! state (from `open_visits`, looked up before the batch: [`prior_lookup`], [`PriorState`]) has its
//! contribution subtracted and the merged state's contribution added, so a visit extended over several
//! batches, or whose first hit arrives last, is counted once with its final measures.
//!
//! Unique visitors are exact without sketches. Visitor ids rotate with the daily salt, so the visitors of
//! different UTC days are different ids and whole days add up. Within a day, `visitor_days` holds per
//! visitor the number of visits per (domain, dimension value, hour); from its change the deltas of
//! `visitors` (distinct in the hour), `visitors_first` (first hour of the visitor in that day) and
//! `visitors_last` (last hour) follow, which answer any hour, any prefix and any suffix of a UTC day.
//!
//! Concurrency: every state row carries a revision. A write expects the revision it read; if another
//! consumer changed the row in between, the statement violates `NOT NULL` (or the primary key for a
//! row that appeared) and the whole D1 transaction rolls back, so the batch is retried on fresh state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::bulk;
use crate::event::EnrichedEvent;
use crate::goals::Goal;
use crate::props::Caps;
use crate::sql::{SqlValue, Statement};

/// An open visit is pruned this long after its last hit (far beyond the 30-minute session timeout, so
/// late and retried batches still find their visit).
pub const OPEN_VISIT_TTL_SECS: i64 = 6 * 3600;
/// A visitor-day is pruned this many days after its day: visitor ids change with the daily salt.
pub const VISITOR_DAY_TTL_DAYS: i64 = 2;

/// Hourly rows of every dimension but [`dim::ALL`] are kept for this many UTC days, today included:
/// older hours are read from the visit-level tables (`crate::query::rollups`), so these rows, most of
/// the rollups' bytes, stay a few days' worth. The all-visits hourly series is kept for every day.
pub const HOURLY_DAYS: i64 = 2;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// Joins the parts of packed values (campaign tuples, visitor-day keys); sorts before every printable
/// character, so packed tuples order like the tuples.
pub const SEP: char = '\u{1f}';

/// The first hour whose per-dimension hourly rows a query at `now` reads.
pub fn hourly_kept_from(now: i64) -> i64 {
    now - now.rem_euclid(DAY) - (HOURLY_DAYS - 1) * DAY
}

/// The first hour whose per-dimension hourly rows the consumer at `now` writes and the cron keeps: an
/// hour before a query's bound, so a query whose clock is up to an hour behind still finds them all.
pub fn hourly_written_from(now: i64) -> i64 {
    hourly_kept_from(now - HOUR)
}

/// Deletes the tenant's per-dimension hourly rows that no query at `now` or later reads (hourly cron).
pub fn prune_hourly(tenant: &str, now: i64) -> Statement {
    Statement::new(
        "DELETE FROM visit_hourly WHERE tenant_id = ? AND dim <> ? AND hour < ?",
        vec![
            tenant.into(),
            dim_code(dim::ALL).into(),
            hourly_written_from(now).into(),
        ],
    )
}

/// Dimension names, as in `visitor_days` state and the planner (the `dim` column holds their
/// [`dim_code`]).
pub mod dim {
    /// Every visit (value `''`).
    pub const ALL: &str = "";
    /// Referrer host (`''` = direct).
    pub const SOURCE: &str = "src";
    /// Browser family.
    pub const BROWSER: &str = "br";
    /// OS family.
    pub const OS: &str = "os";
    /// Device class.
    pub const DEVICE: &str = "dev";
    /// Country code.
    pub const COUNTRY: &str = "ctry";
    /// `utm_source`.
    pub const UTM_SOURCE: &str = "us";
    /// `utm_medium`.
    pub const UTM_MEDIUM: &str = "um";
    /// `utm_campaign`.
    pub const UTM_CAMPAIGN: &str = "uc";
    /// `utm_campaign`, `utm_source`, `utm_medium` joined by [`super::SEP`]; only visits with a campaign.
    pub const CAMPAIGN: &str = "cmp";
    /// Entry page.
    pub const ENTRY: &str = "en";
    /// Exit page.
    pub const EXIT: &str = "ex";
    /// A page the visit viewed: the visit's measures, once per distinct page.
    pub const VIEWED: &str = "vp";
    /// A page: visits that viewed it and its hits, at the hour of its first hit in the visit.
    pub const PAGE: &str = "pg";
    /// A goal the visit completed (value: the goal's name): the visit's measures, once per goal.
    pub const GOAL: &str = "gl";
    /// A funnel step the visit reached (value: `funnel id:step`, every step up to its furthest).
    pub const FUNNEL: &str = "fn";
    /// A goal's events and revenue (value: the goal's name [`super::SEP`] its currency, `''` for a
    /// goal without one). Its cells reuse the measure columns: `visits` = the goal's events,
    /// `pageviews` = its revenue in minor units of the currency, `bounces` = its events that carried
    /// revenue; `duration` and the visitor columns stay 0 (a goal's visitors are its [`GOAL`] cells).
    pub const GOAL_EVENTS: &str = "ge";
    /// A custom property value the visit's events carried (value: `key` [`super::SEP`] `value`, as
    /// `session_props.prop`, after the plan's caps): the visit's measures once per value, visitors
    /// included, like [`GOAL`]. Visits without a page hit count too (pageviews 0, their events' span
    /// as duration), as in `session_props`.
    pub const PROP: &str = "pr";
    /// A custom property value's events (value as [`PROP`]). Its cells reuse the measure columns:
    /// `visits` = the events that carried the value; the other measures and the visitor columns stay
    /// 0 (a value's visitors are its [`PROP`] cells). A separate dimension because `visit_daily` has
    /// five measure columns and a property breakdown needs six (visits, pageviews, bounces, duration,
    /// visitors and events).
    pub const PROP_EVENTS: &str = "pe";
    /// A goal × custom property value: the visits whose events completing the goal carried the value
    /// (value: `goal` [`super::SEP`] `key` [`super::SEP`] `value`, as `session_goal_props.goal` and
    /// `.prop`, after the plan's caps), the goal's properties as Plausible counts them. Its cells hold
    /// what a goal's property breakdown returns: `visits`, `pageviews`, `bounces` and the visitor
    /// columns are the visit's, once per value, like [`PROP`] (visits without a page hit count too);
    /// `duration` holds **the goal's events that carried the value** instead of the visit's duration
    /// (`visit_daily` has five measure columns and the breakdown needs six: `visit_duration` of a
    /// goal's property values is read from `session_goal_props`).
    ///
    /// Cost: the caps bound the values (goals × keys × values per key), so at most one row per
    /// (day, goal, value, domain) of values actually seen, one per (hour, ...) for the [`HOURLY_DAYS`]
    /// kept, and per visitor-day one more state entry per (goal, value, hour) the visitor's visits
    /// carried on a goal's events: about `len(goal) + len(key) + len(value)` + 25 bytes of JSON each
    /// (the two separators are escaped as `\u001f`, six bytes each), nothing for visitors without
    /// goal properties.
    ///
    /// [`HOURLY_DAYS`]: super::HOURLY_DAYS
    pub const GOAL_PROP: &str = "gp";
}

/// Every dimension, in the order of its integer code in the tables' `dim` column (migration 0010):
/// the position is the code.
const CODES: [&str; 20] = [
    dim::ALL,
    dim::SOURCE,
    dim::BROWSER,
    dim::OS,
    dim::DEVICE,
    dim::COUNTRY,
    dim::UTM_SOURCE,
    dim::UTM_MEDIUM,
    dim::UTM_CAMPAIGN,
    dim::CAMPAIGN,
    dim::ENTRY,
    dim::EXIT,
    dim::VIEWED,
    dim::PAGE,
    dim::GOAL,
    dim::FUNNEL,
    dim::GOAL_EVENTS,
    dim::PROP,
    dim::PROP_EVENTS,
    dim::GOAL_PROP,
];

/// The `dim` column's value for a dimension: a one-byte integer instead of its name (0 and 1 take no
/// byte at all in a SQLite record). The names stay in `visitor_days` state and in the planner.
pub fn dim_code(d: &str) -> i64 {
    CODES.iter().position(|c| *c == d).map_or(-1, |i| i as i64)
}

/// The dimension of a `dim` column value.
pub fn dim_name(code: i64) -> Option<&'static str> {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODES.get(i).copied())
}

/// The session attributes taken from a visit's first hit, in this order.
const ATTR_DIMS: [&str; 8] = [
    dim::SOURCE,
    dim::BROWSER,
    dim::OS,
    dim::DEVICE,
    dim::COUNTRY,
    dim::UTM_SOURCE,
    dim::UTM_MEDIUM,
    dim::UTM_CAMPAIGN,
];

/// A visit's state as kept in `open_visits.state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitState {
    #[serde(rename = "d")]
    domain: String,
    #[serde(rename = "v")]
    visitor: String,
    /// First and last hit, UTC milliseconds.
    #[serde(rename = "f")]
    first_ms: i64,
    #[serde(rename = "l")]
    last_ms: i64,
    #[serde(rename = "n")]
    pageviews: i64,
    #[serde(rename = "en")]
    entry: String,
    #[serde(rename = "ex")]
    exit: String,
    /// First-hit attributes in [`ATTR_DIMS`] order.
    #[serde(rename = "a")]
    attrs: [String; 8],
    /// Page → (first hit secs, hits).
    #[serde(rename = "p")]
    pages: BTreeMap<String, (i64, i64)>,
    /// Goal name → (currency, events, revenue in minor units, events with revenue): the goals the
    /// visit completed, as evaluated when each event was folded in. Contributions read only this.
    #[serde(rename = "g", default, skip_serializing_if = "BTreeMap::is_empty")]
    goals: BTreeMap<String, GoalTally>,
    /// First and last custom event that completed a goal, UTC milliseconds. A visit with goal events
    /// but no page hit starts at the first of them and counts only under [`dim::GOAL`].
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    events: Option<(i64, i64)>,
    /// Custom property `key SEP value` → events that carried it (after the tenant's caps).
    #[serde(rename = "q", default, skip_serializing_if = "BTreeMap::is_empty")]
    props: BTreeMap<String, i64>,
    /// Funnel-tagged hits in time order (`crate::funnels`): what the furthest steps are computed from.
    #[serde(rename = "fh", default, skip_serializing_if = "Vec::is_empty")]
    funnel_hits: crate::funnels::Hits,
    /// Funnel id → the furthest step the visit reached, from `funnel_hits`. Contributions read this.
    #[serde(rename = "fr", default, skip_serializing_if = "BTreeMap::is_empty")]
    funnels: BTreeMap<i64, u8>,
    /// `goal SEP key SEP value` → the goal's events that carried the property value (the property on
    /// the completing event itself, as Plausible counts a goal's properties).
    #[serde(rename = "gp", default, skip_serializing_if = "BTreeMap::is_empty")]
    goal_props: BTreeMap<String, i64>,
    /// Whether the visit's [`dim::GOAL_EVENTS`] cells hold its goal tallies. State written before those
    /// cells existed lacks it: its goal events were never added, so they are not subtracted either.
    #[serde(rename = "gc", default, skip_serializing_if = "std::ops::Not::not")]
    goal_cells: bool,
    /// Whether the visit's properties are in its [`dim::PROP`] / [`dim::PROP_EVENTS`] cells and its
    /// visitor-day's counts. State written before those cells existed lacks it: its properties were
    /// never added there, so they are not subtracted either (the visit is counted whole from its next
    /// batch on).
    #[serde(rename = "pc", default, skip_serializing_if = "std::ops::Not::not")]
    prop_cells: bool,
    /// Whether the visit's goal properties are in its [`dim::GOAL_PROP`] cells and its visitor-day's
    /// counts. State written before those cells existed lacks it: they were never added, so they are
    /// not subtracted either (the visit is counted whole from its next batch on).
    #[serde(rename = "gpc", default, skip_serializing_if = "std::ops::Not::not")]
    goal_prop_cells: bool,
}

/// A goal's tally in a visit: (currency, events, revenue in minor units, events with revenue).
type GoalTally = (String, i64, i64, i64);

impl VisitState {
    fn empty() -> Self {
        Self {
            domain: String::new(),
            visitor: String::new(),
            first_ms: i64::MAX,
            last_ms: i64::MIN,
            pageviews: 0,
            entry: String::new(),
            exit: String::new(),
            attrs: Default::default(),
            pages: BTreeMap::new(),
            goals: BTreeMap::new(),
            events: None,
            props: BTreeMap::new(),
            funnel_hits: Vec::new(),
            funnels: BTreeMap::new(),
            goal_props: BTreeMap::new(),
            goal_cells: true,
            prop_cells: true,
            goal_prop_cells: true,
        }
    }

    /// Records the funnel steps `e` completed (tagged under the definitions of now) and recomputes the
    /// furthest step of each funnel from the stored hits.
    fn step(&mut self, e: &EnrichedEvent, tags: Vec<(i64, u8)>) {
        if tags.is_empty() {
            return;
        }
        crate::funnels::insert_hit(&mut self.funnel_hits, e.ts, tags);
        self.funnels = crate::funnels::furthest(&self.funnel_hits);
    }

    /// The funnel step values (`id:k`) the visit counts under: a page visit's, up to each furthest.
    fn funnel_values(&self) -> impl Iterator<Item = String> + '_ {
        let page = self.pageviews > 0;
        self.funnels
            .iter()
            .filter(move |_| page)
            .flat_map(|(id, k)| (1..=usize::from(*k)).map(|k| crate::funnels::value(*id, k)))
    }

    /// Counts the (capped) properties of `e`, and for a custom event its time like a goal event's.
    fn tag(&mut self, e: &EnrichedEvent, props: &[(String, String)]) {
        for (k, v) in props {
            *self.props.entry(format!("{k}{SEP}{v}")).or_default() += 1;
        }
        if !props.is_empty() && !e.is_page_hit() {
            self.custom_event(e);
        }
    }

    fn custom_event(&mut self, e: &EnrichedEvent) {
        let (first, last) = self.events.unwrap_or((i64::MAX, i64::MIN));
        if self.pageviews == 0 && e.ts < first {
            self.domain.clone_from(&e.domain);
            self.visitor.clone_from(&e.visitor_id);
        }
        self.events = Some((first.min(e.ts), last.max(e.ts)));
    }

    /// Records the goals `e` completes (evaluated now, stored for good), and the (capped) properties
    /// `e` carried under each of them; returns whether any did. A custom event that completes none
    /// leaves the visit untouched. A visit without page hits takes its domain and visitor from its
    /// earliest goal event.
    fn complete(&mut self, e: &EnrichedEvent, goals: &[Goal], props: &[(String, String)]) -> bool {
        let mut any = false;
        for g in goals.iter().filter(|g| g.matches(e)) {
            any = true;
            for (k, v) in props {
                *self
                    .goal_props
                    .entry(format!("{}{SEP}{k}{SEP}{v}", g.name))
                    .or_default() += 1;
            }
            let t = self
                .goals
                .entry(g.name.clone())
                .or_insert_with(|| (g.currency.clone().unwrap_or_default(), 0, 0, 0));
            t.1 += 1;
            if let Some(minor) = g.revenue(e) {
                t.2 += minor;
                t.3 += 1;
            }
        }
        if any && !e.is_page_hit() {
            self.custom_event(e);
        }
        any
    }

    /// The visit's start, UTC seconds: its first page hit, or its first goal event if it has no page hit.
    fn start_secs(&self) -> i64 {
        match self.events {
            Some((first, _)) if self.pageviews == 0 => first.div_euclid(1000),
            _ => self.first_secs(),
        }
    }

    /// The visit's duration in seconds: between its page hits, or its goal events if it has no page hit.
    fn duration(&self) -> i64 {
        match self.events {
            Some((first, last)) if self.pageviews == 0 => {
                last.div_euclid(1000) - first.div_euclid(1000)
            }
            _ => self.last_secs() - self.first_secs(),
        }
    }

    /// `open_visits.last_ts`: the last page hit (what `current_visitors` counts, as before goals), or
    /// the last goal event of a visit without page hits (which `current_visitors` leaves out).
    fn last_column(&self) -> i64 {
        if self.pageviews > 0 {
            self.last_secs()
        } else {
            self.touch_secs()
        }
    }

    /// The visit's latest event of any kind, UTC seconds (session continuation).
    fn touch_secs(&self) -> i64 {
        self.last_ms
            .max(self.events.map_or(i64::MIN, |e| e.1))
            .div_euclid(1000)
    }

    /// Adds a page hit. The first hit (the earliest; of equal times the one seen first) gives the
    /// visit's attributes and entry page, the last (the latest; of equal times the one seen last) its
    /// exit page, in any arrival order.
    fn add(&mut self, e: &EnrichedEvent) {
        if e.ts < self.first_ms {
            self.first_ms = e.ts;
            self.domain.clone_from(&e.domain);
            self.visitor.clone_from(&e.visitor_id);
            self.entry.clone_from(&e.pathname);
            self.attrs = [
                e.source.clone(),
                e.browser.clone(),
                e.os.clone(),
                e.device.clone(),
                e.country.clone(),
                e.utm_source.clone(),
                e.utm_medium.clone(),
                e.utm_campaign.clone(),
            ];
        }
        if e.ts >= self.last_ms {
            self.last_ms = e.ts;
            self.exit.clone_from(&e.pathname);
        }
        self.pageviews += 1;
        let secs = e.ts_secs();
        let page = self.pages.entry(e.pathname.clone()).or_insert((secs, 0));
        page.0 = page.0.min(secs);
        page.1 += 1;
    }

    fn first_secs(&self) -> i64 {
        self.first_ms.div_euclid(1000)
    }

    fn last_secs(&self) -> i64 {
        self.last_ms.div_euclid(1000)
    }

    /// The (dimension, value) pairs the visit counts under at its start, pages excluded.
    fn visit_keys(&self) -> Vec<(&'static str, String)> {
        let goals = self.goals.keys().map(|g| (dim::GOAL, g.clone()));
        // Property values (bounded by the plan's caps, `crate::props`): every visit that carried one,
        // with or without page hits, as `session_props` counts them.
        let props = self
            .props
            .keys()
            .filter(|_| self.prop_cells)
            .map(|p| (dim::PROP, p.clone()));
        if self.pageviews == 0 {
            // Goal events without a page hit (a backend's events): counted under their goals and
            // properties only, so page-based numbers (visits, pageviews, bounce rate) are those of page
            // visits.
            return goals.chain(props).collect();
        }
        let mut out = vec![(dim::ALL, String::new())];
        for (d, v) in ATTR_DIMS.iter().zip(&self.attrs) {
            out.push((d, v.clone()));
        }
        if !self.attrs[7].is_empty() {
            out.push((
                dim::CAMPAIGN,
                campaign_value(&self.attrs[7], &self.attrs[5], &self.attrs[6]),
            ));
        }
        out.push((dim::ENTRY, self.entry.clone()));
        out.push((dim::EXIT, self.exit.clone()));
        for p in self.pages.keys() {
            out.push((dim::VIEWED, p.clone()));
        }
        out.extend(goals);
        out.extend(self.funnel_values().map(|v| (dim::FUNNEL, v)));
        out.extend(props);
        out
    }

    /// Adds `sign` × this visit's contribution to the rollup cells.
    fn contribute<'a>(&self, tenant: &'a str, sign: i64, cells: &mut Cells<'a>) {
        let start = self.start_secs();
        let m = [
            1,
            self.pageviews,
            i64::from(self.pageviews == 1),
            self.duration(),
        ];
        for (d, value) in self.visit_keys() {
            cells.add(tenant, d, start, value.clone(), &self.domain, &m, sign);
        }
        for (page, (first, hits)) in &self.pages {
            cells.add(
                tenant,
                dim::PAGE,
                *first,
                page.clone(),
                &self.domain,
                &[1, *hits, 0, 0],
                sign,
            );
        }
        if self.goal_cells {
            for (goal, (currency, events, revenue, paid)) in &self.goals {
                cells.add(
                    tenant,
                    dim::GOAL_EVENTS,
                    start,
                    format!("{goal}{SEP}{currency}"),
                    &self.domain,
                    &[*events, *revenue, *paid, 0],
                    sign,
                );
            }
        }
        if self.prop_cells {
            for (prop, events) in &self.props {
                cells.add(
                    tenant,
                    dim::PROP_EVENTS,
                    start,
                    prop.clone(),
                    &self.domain,
                    &[*events, 0, 0, 0],
                    sign,
                );
            }
        }
        // A goal's property values: the visit's measures with the goal's events that carried the
        // value in place of the duration ([`dim::GOAL_PROP`]).
        for (packed, events) in self.goal_prop_values() {
            cells.add(
                tenant,
                dim::GOAL_PROP,
                start,
                packed.clone(),
                &self.domain,
                &[m[0], m[1], m[2], *events],
                sign,
            );
        }
    }

    /// The visit's goal property values (`goal SEP key SEP value` → the goal's events that carried
    /// it) counted in [`dim::GOAL_PROP`] cells: none for state written before them.
    fn goal_prop_values(&self) -> impl Iterator<Item = (&String, &i64)> {
        self.goal_props.iter().filter(|_| self.goal_prop_cells)
    }

    /// `sign` × this visit in its visitor-day's counts.
    fn count_visitor(&self, sign: i64, days: &mut DayChanges) {
        let start = self.start_secs();
        let day = start - start.rem_euclid(DAY);
        let hour = (start.rem_euclid(DAY) / HOUR) as u8;
        let changes = days.entry((self.visitor.clone(), day)).or_default();
        let goal_props = self
            .goal_prop_values()
            .map(|(v, _)| (dim::GOAL_PROP, v.clone()));
        for (d, value) in self.visit_keys().into_iter().chain(goal_props) {
            let key = format!("{}{SEP}{d}{SEP}{value}", self.domain);
            *changes.entry((key, hour)).or_default() += sign;
        }
    }
}

/// The packed `cmp` value.
pub fn campaign_value(campaign: &str, source: &str, medium: &str) -> String {
    format!("{campaign}{SEP}{source}{SEP}{medium}")
}

/// Changes in visit counts per visitor-day: `(visitor, day)` → `(key, hour)` → change.
type DayChanges = BTreeMap<(String, i64), BTreeMap<(String, u8), i64>>;
/// A rollup cell: `(tenant, hourly?, bucket, dim, value, domain)`.
type CellKey<'a> = (&'a str, bool, i64, &'static str, String, String);
/// A touched visit: its prior (revision, state) and its merged state.
type Touched<'p> = (Option<&'p (i64, VisitState)>, VisitState);

/// Visits per hour of a visitor's day, per `domain SEP dim SEP value` key (`visitor_days.state`).
type VisitorDay = BTreeMap<String, BTreeMap<u8, i64>>;
/// `visitor_days.state` as stored: domain → dimension → value → hour → visits. Nested rather than keyed
/// by the packed `domain SEP dim SEP value`, which repeated the domain and two JSON-escaped separators
/// (`\u001f`, six bytes each) in every key: about half of the state's bytes.
type StoredDay = BTreeMap<String, BTreeMap<String, BTreeMap<String, BTreeMap<u8, i64>>>>;

/// The stored JSON of a visitor-day.
fn day_json(day: &VisitorDay) -> String {
    let mut out = StoredDay::new();
    for (key, hours) in day {
        let mut parts = key.splitn(3, SEP);
        let (Some(domain), Some(d), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        out.entry(domain.to_owned())
            .or_default()
            .entry(d.to_owned())
            .or_default()
            .insert(value.to_owned(), hours.clone());
    }
    serde_json::to_string(&out).unwrap_or_default()
}

/// A visitor-day from its stored JSON, nested or (written before the nesting) keyed by packed keys.
fn parse_day(json: &str) -> Option<VisitorDay> {
    if let Ok(stored) = serde_json::from_str::<StoredDay>(json) {
        let mut out = VisitorDay::new();
        for (domain, dims) in stored {
            for (d, values) in dims {
                for (value, hours) in values {
                    out.insert(format!("{domain}{SEP}{d}{SEP}{value}"), hours);
                }
            }
        }
        return Some(out);
    }
    serde_json::from_str::<VisitorDay>(json).ok()
}

/// The prior state of the visits and visitor-days a batch touches, read from D1 before the batch.
#[derive(Debug, Default, Clone)]
pub struct PriorState {
    visits: HashMap<(String, String), (i64, VisitState)>,
    days: HashMap<(String, String, i64), (i64, VisitorDay)>,
    /// Each tenant's goal definitions at the time of the batch (read in the same round trip).
    goals: HashMap<String, Vec<Goal>>,
    /// Each tenant's property caps: the plan's limits and the known pairs among the batch's.
    caps: HashMap<String, Caps>,
    /// Each tenant's funnels at the time of the batch (read in the same round trip).
    funnels: HashMap<String, Vec<crate::funnels::Funnel>>,
}

/// The reads that fill a [`PriorState`] for one tenant's events (bots and web vitals ignored): the
/// tenant's goals; open visits by the events' session ids and, for events without one, by visitor;
/// visitor-days of the events' visitors and of those open visits' visitors. Run them (one D1 batch)
/// and pass every row set to [`PriorState::add_rows`]. Custom events are looked up as well, since
/// one that completes a goal joins its visit's state.
pub fn prior_lookup(tenant: &str, events: &[EnrichedEvent]) -> Vec<Statement> {
    let hits = || {
        events
            .iter()
            .filter(|e| !e.is_bot && e.action != "web_vital")
    };
    let mut keys: Vec<&str> = hits().filter_map(|e| e.session_id.as_deref()).collect();
    // Every event without a session id is given one (custom events too), so all of them look up their
    // visitor's open visits.
    let mut keyless: Vec<&str> = events
        .iter()
        .filter(|e| !e.is_bot && e.session_id.is_none())
        .map(|e| e.visitor_id.as_str())
        .collect();
    let mut visitors: Vec<&str> = hits().map(|e| e.visitor_id.as_str()).collect();
    for list in [&mut keys, &mut keyless, &mut visitors] {
        list.sort_unstable();
        list.dedup();
    }
    let mut out = vec![Statement::new(
        "SELECT 'g' AS kind, name AS k, kind AS goal_kind, pattern, currency FROM goals WHERE tenant_id = ?",
        vec![tenant.into()],
    )];
    out.push(Statement::new(
        "SELECT 'f' AS kind, id AS k, name, steps FROM funnels WHERE tenant_id = ? AND deleted = 0",
        vec![tenant.into()],
    ));
    let pairs: BTreeSet<(String, String)> = hits()
        .flat_map(|e| crate::props::props_of(&e.payload))
        .collect();
    out.extend(crate::props::lookups(tenant, &pairs));
    let visit_cols =
        "SELECT 'v' AS kind, session_key AS k, rev, state FROM open_visits WHERE tenant_id = ?";
    let day_cols = "SELECT 'd' AS kind, visitor_id AS k, day, rev, state FROM visitor_days WHERE tenant_id = ?";
    let lookups: [(&Vec<&str>, String); 4] = [
        (&keys, format!("{visit_cols} AND session_key IN ")),
        (&keyless, format!("{visit_cols} AND visitor_id IN ")),
        (&visitors, format!("{day_cols} AND visitor_id IN ")),
        (
            &keys,
            format!(
                "{day_cols} AND visitor_id IN (SELECT visitor_id FROM open_visits WHERE tenant_id = ? AND session_key IN "
            ),
        ),
    ];
    // Each key list travels as one JSON array (`bulk::key_lists`), a few statements per lookup
    // however many visits the group touches (it was one per 90 keys).
    for (i, (list, head)) in lookups.iter().enumerate() {
        for keys in bulk::key_lists(list) {
            let mut binds: Vec<SqlValue> = vec![tenant.into()];
            if i == 3 {
                binds.push(tenant.into());
            }
            binds.push(keys.into());
            let close = if i == 3 { "))" } else { ")" };
            out.push(Statement::new(
                format!("{head}(SELECT value FROM json_each(?){close}"),
                binds,
            ));
        }
    }
    out
}

impl PriorState {
    /// Adds the rows of one [`prior_lookup`] statement for `tenant`. Rows that do not parse are
    /// skipped (their visit then starts afresh).
    pub fn add_rows(&mut self, tenant: &str, rows: &[Map<String, Value>]) {
        for r in rows {
            if matches!(r.get("kind").and_then(Value::as_str), Some("pk" | "pv")) {
                self.caps_mut(tenant).add_row(r);
                continue;
            }
            if r.get("kind").and_then(Value::as_str) == Some("f") {
                let mut row = r.clone();
                if let Some(k) = r.get("k") {
                    row.insert("id".into(), k.clone());
                }
                if let Some((f, _)) = crate::funnels::from_row(&row) {
                    self.funnels.entry(tenant.to_owned()).or_default().push(f);
                }
                continue;
            }
            if r.get("kind").and_then(Value::as_str) == Some("g") {
                let goal = r.get("goal_kind").and_then(Value::as_str).and_then(|kind| {
                    let mut row = r.clone();
                    row.insert("name".into(), r.get("k")?.clone());
                    row.insert("kind".into(), kind.into());
                    row.insert("id".into(), 0.into());
                    crate::goals::from_row(&row)
                });
                if let Some((_, g, _)) = goal {
                    self.goals.entry(tenant.to_owned()).or_default().push(g);
                }
                continue;
            }
            let (Some(kind), Some(k), Some(rev), Some(state)) = (
                r.get("kind").and_then(Value::as_str),
                r.get("k").and_then(Value::as_str),
                r.get("rev").and_then(as_int),
                r.get("state").and_then(Value::as_str),
            ) else {
                continue;
            };
            if kind == "v" {
                if let Ok(s) = serde_json::from_str::<VisitState>(state) {
                    self.visits
                        .insert((tenant.to_owned(), k.to_owned()), (rev, s));
                }
            } else if let (Some(day), Some(s)) = (r.get("day").and_then(as_int), parse_day(state)) {
                self.days
                    .insert((tenant.to_owned(), k.to_owned(), day), (rev, s));
            }
        }
    }

    /// Sets the plan's caps on `tenant`'s property keys and values per key (before [`Self::add_rows`];
    /// without it, the free plan's defaults apply).
    pub fn set_prop_caps(&mut self, tenant: &str, max_keys: u32, max_values: u32) {
        self.caps
            .insert(tenant.to_owned(), Caps::new(max_keys, max_values));
    }

    fn caps_mut(&mut self, tenant: &str) -> &mut Caps {
        self.caps.entry(tenant.to_owned()).or_insert_with(|| {
            let l = crate::plan::PlanLimits::default();
            Caps::new(
                l.cap("free", crate::plan::Quota::PropKeys),
                l.cap("free", crate::plan::Quota::PropValues),
            )
        })
    }

    /// Sets `tenant`'s funnels (what the funnels row of [`prior_lookup`] fills), replacing any.
    pub fn set_funnels(&mut self, tenant: &str, funnels: Vec<crate::funnels::Funnel>) {
        self.funnels.insert(tenant.to_owned(), funnels);
    }

    /// Sets `tenant`'s goals (what the goals row of [`prior_lookup`] fills), replacing any.
    pub fn set_goals(&mut self, tenant: &str, goals: Vec<Goal>) {
        self.goals.insert(tenant.to_owned(), goals);
    }

    /// Each visitor's latest open visit of `tenant` as `(session key, last hit secs)`: the prior for
    /// [`crate::identity::assign_sessions`].
    pub fn latest_sessions(&self, tenant: &str) -> HashMap<String, (String, i64)> {
        let mut out: HashMap<String, (String, i64)> = HashMap::new();
        for ((t, key), (_, s)) in &self.visits {
            if t != tenant {
                continue;
            }
            let last = s.touch_secs();
            let e = out
                .entry(s.visitor.clone())
                .or_insert_with(|| (key.clone(), last));
            if last > e.1 || (last == e.1 && *key > e.0) {
                *e = (key.clone(), last);
            }
        }
        out
    }
}

fn as_int(v: &Value) -> Option<i64> {
    crate::sql::int(Some(v))
}

/// Rollup deltas: `(tenant, hourly?, bucket, dim, value, domain)` → measures (hourly: visits,
/// pageviews, bounces, duration, visitors, visitors_first, visitors_last; daily: the first five).
#[derive(Default)]
struct Cells<'a> {
    map: BTreeMap<CellKey<'a>, [i64; 7]>,
}

impl<'a> Cells<'a> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        tenant: &'a str,
        d: &'static str,
        secs: i64,
        value: String,
        domain: &str,
        m: &[i64; 4],
        sign: i64,
    ) {
        for (hourly, bucket) in [
            (true, secs - secs.rem_euclid(HOUR)),
            (false, secs - secs.rem_euclid(DAY)),
        ] {
            let c = self
                .map
                .entry((tenant, hourly, bucket, d, value.clone(), domain.to_owned()))
                .or_default();
            for (i, v) in m.iter().enumerate() {
                c[i] += sign * v;
            }
        }
    }

    fn visitors(
        &mut self,
        tenant: &'a str,
        hourly: bool,
        bucket: i64,
        key: &str,
        slot: usize,
        delta: i64,
    ) {
        let mut parts = key.splitn(3, SEP);
        let (Some(domain), Some(d), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Some(d) = static_dim(d) else { return };
        self.map
            .entry((
                tenant,
                hourly,
                bucket,
                d,
                value.to_owned(),
                domain.to_owned(),
            ))
            .or_default()[slot] += delta;
    }
}

fn static_dim(code: &str) -> Option<&'static str> {
    CODES.into_iter().find(|d| *d == code)
}

/// The visit-rollup statements for a batch of events (all tenants), given the state before it:
/// pruning of stale state, the state writes (revision-checked) and one additive upsert per changed
/// rollup cell. Bots, non-page events and page hits without a session id are ignored.
pub(crate) fn statements(events: &[EnrichedEvent], prior: &PriorState, now: i64) -> Vec<Statement> {
    let hourly_from = hourly_written_from(now);
    // Touched visits: the prior (revision, state) and the merged state.
    let mut touched: BTreeMap<(&str, &str), Touched> = BTreeMap::new();
    let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
    let no_goals = Vec::new();
    let no_funnels = Vec::new();
    let mut caps = prior.caps.clone();
    for e in events
        .iter()
        .filter(|e| !e.is_bot && e.action != "web_vital")
    {
        let Some(session) = e.session_id.as_deref() else {
            continue;
        };
        let goals = prior.goals.get(&e.tenant_id).unwrap_or(&no_goals);
        let raw = crate::props::props_of(&e.payload);
        // A custom event joins its visit's state only when it completes a goal or carries properties.
        if !e.is_page_hit() && raw.is_empty() && !goals.iter().any(|g| g.matches(e)) {
            continue;
        }
        let props: Vec<(String, String)> = if raw.is_empty() {
            raw
        } else {
            let c = caps.entry(e.tenant_id.clone()).or_insert_with(|| {
                let l = crate::plan::PlanLimits::default();
                Caps::new(
                    l.cap("free", crate::plan::Quota::PropKeys),
                    l.cap("free", crate::plan::Quota::PropValues),
                )
            });
            let mut admitted: Vec<(String, String)> =
                raw.iter().map(|(k, v)| c.admit(k, v)).collect();
            admitted.sort();
            admitted.dedup();
            admitted
        };
        let t = newest.entry(&e.tenant_id).or_insert(i64::MIN);
        *t = (*t).max(e.ts_secs());
        let (_, state) = touched.entry((&e.tenant_id, session)).or_insert_with(|| {
            let old = prior.visits.get(&(e.tenant_id.clone(), session.to_owned()));
            (old, old.map_or_else(VisitState::empty, |o| o.1.clone()))
        });
        if e.is_page_hit() {
            state.add(e);
        }
        state.goal_cells = true;
        state.prop_cells = true;
        state.goal_prop_cells = true;
        state.complete(e, goals, &props);
        state.tag(e, &props);
        let funnels = prior.funnels.get(&e.tenant_id).unwrap_or(&no_funnels);
        state.step(e, crate::funnels::tags(funnels, goals, e));
    }

    let mut cells = Cells::default();
    // (tenant) → (visitor, day) → (key, hour) → change in visits
    let mut day_changes: BTreeMap<&str, DayChanges> = BTreeMap::new();
    for ((tenant, _), (old, new)) in &touched {
        let changes = day_changes.entry(tenant).or_default();
        if let Some((_, old)) = old {
            if old == new {
                continue;
            }
            old.contribute(tenant, -1, &mut cells);
            old.count_visitor(-1, changes);
        }
        new.contribute(tenant, 1, &mut cells);
        new.count_visitor(1, changes);
    }

    let mut out = Vec::new();
    for (tenant, c) in &caps {
        out.extend(c.inserts(tenant));
    }
    // Prune first: a visit or visitor-day pruned here and touched by this batch is then written anew.
    for (tenant, newest) in &newest {
        out.push(Statement::new(
            "DELETE FROM open_visits WHERE tenant_id = ? AND last_ts < ?",
            vec![(*tenant).into(), (newest - OPEN_VISIT_TTL_SECS).into()],
        ));
        let today = newest - newest.rem_euclid(DAY);
        out.push(Statement::new(
            "DELETE FROM visitor_days WHERE tenant_id = ? AND day < ?",
            vec![
                (*tenant).into(),
                (today - VISITOR_DAY_TTL_DAYS * DAY).into(),
            ],
        ));
    }

    // The visit-level rows and the visits' state, a few multi-row statements per tenant and table
    // (`bulk`). The state write expects the revision read: a row written by another consumer in between
    // has another revision, so `rev` becomes NULL and the statement fails on `NOT NULL`; a visit read as
    // absent is written with revision 1, which fails the same way if the row appeared meanwhile.
    let mut writes: BTreeMap<&str, VisitWrites> = BTreeMap::new();
    for ((tenant, session), (old, new)) in &touched {
        if old.is_some_and(|(_, o)| o == new) {
            continue;
        }
        let w = writes.entry(tenant).or_default();
        visit_rows(session, old.map(|o| &o.1), new, w);
        w.open_visits.push(vec![
            (*session).into(),
            new.visitor.as_str().into(),
            new.domain.as_str().into(),
            new.last_column().into(),
            (old.map_or(0, |o| o.0) + 1).into(),
            serde_json::to_string(new).unwrap_or_default().into(),
        ]);
    }
    for (tenant, w) in &writes {
        w.statements(tenant, &mut out);
    }

    for (tenant, days) in &day_changes {
        let mut day_rows: Vec<Vec<SqlValue>> = Vec::new();
        for ((visitor, day), changes) in days {
            let prior_day = prior
                .days
                .get(&((*tenant).to_owned(), visitor.clone(), *day));
            let old: VisitorDay = prior_day.map(|p| p.1.clone()).unwrap_or_default();
            let mut new = old.clone();
            for ((key, hour), delta) in changes {
                if *delta == 0 {
                    continue;
                }
                let hours = new.entry(key.clone()).or_default();
                let n = hours.entry(*hour).or_default();
                *n += delta;
                if *n <= 0 {
                    hours.remove(hour);
                }
                if hours.is_empty() {
                    new.remove(key);
                }
            }
            if new == old {
                continue;
            }
            let empty = BTreeMap::new();
            let mut keys: Vec<&String> = changes.keys().map(|(k, _)| k).collect();
            keys.dedup();
            for key in keys {
                let before = old.get(key).unwrap_or(&empty);
                let after = new.get(key).unwrap_or(&empty);
                if before == after {
                    continue;
                }
                let hours: BTreeSet<u8> = before.keys().chain(after.keys()).copied().collect();
                for h in hours {
                    let d = i64::from(after.contains_key(&h)) - i64::from(before.contains_key(&h));
                    if d != 0 {
                        cells.visitors(tenant, true, day + i64::from(h) * HOUR, key, 4, d);
                    }
                }
                for (slot, pick) in [(5usize, true), (6usize, false)] {
                    let end = |m: &BTreeMap<u8, i64>| {
                        if pick {
                            m.keys().next().copied()
                        } else {
                            m.keys().next_back().copied()
                        }
                    };
                    let (b, a) = (end(before), end(after));
                    if b != a {
                        if let Some(h) = b {
                            cells.visitors(tenant, true, day + i64::from(h) * HOUR, key, slot, -1);
                        }
                        if let Some(h) = a {
                            cells.visitors(tenant, true, day + i64::from(h) * HOUR, key, slot, 1);
                        }
                    }
                }
                let d = i64::from(!after.is_empty()) - i64::from(!before.is_empty());
                if d != 0 {
                    cells.visitors(tenant, false, *day, key, 4, d);
                }
            }
            day_rows.push(vec![
                visitor.as_str().into(),
                (*day).into(),
                (prior_day.map_or(0, |p| p.0) + 1).into(),
                day_json(&new).into(),
            ]);
        }
        // Revision-checked like `open_visits` above.
        out.extend(bulk::insert(
            "INSERT INTO visitor_days (tenant_id, visitor_id, day, rev, state)",
            " ON CONFLICT (tenant_id, visitor_id, day) DO UPDATE SET state = excluded.state, \
             rev = CASE WHEN rev = excluded.rev - 1 THEN excluded.rev END",
            tenant,
            &day_rows,
        ));
    }

    // Additive upserts of the changed cells, a few multi-row statements per tenant and table (`bulk`).
    let mut rows: BTreeMap<(&str, bool), Vec<Vec<SqlValue>>> = BTreeMap::new();
    for ((tenant, hourly, bucket, d, value, domain), m) in cells.map {
        // Per-dimension hourly rows of older days are not kept (`HOURLY_DAYS`).
        if m.iter().all(|v| *v == 0) || (hourly && d != dim::ALL && bucket < hourly_from) {
            continue;
        }
        let mut binds: Vec<SqlValue> = vec![
            dim_code(d).into(),
            bucket.into(),
            value.into(),
            domain.into(),
        ];
        let n = if hourly { 7 } else { 5 };
        binds.extend(m[..n].iter().map(|v| SqlValue::from(*v)));
        rows.entry((tenant, hourly)).or_default().push(binds);
    }
    for ((tenant, hourly), rows) in rows {
        out.extend(cell_upserts(hourly, tenant, &rows));
    }
    out
}

/// Rows of one table, each the values after `tenant_id`.
type Rows = Vec<Vec<SqlValue>>;

/// A tenant's visit-level rows and visit states to write, by table: deletes run before inserts.
#[derive(Default)]
struct VisitWrites {
    /// `sessions` rows at a visit's old start `(first_ts, session_key)`, when its start moved.
    sessions_moved: Vec<Vec<SqlValue>>,
    /// New visits' `sessions` rows (kept if the row exists), then rows of visits with prior state.
    sessions_new: Vec<Vec<SqlValue>>,
    sessions_changed: Vec<Vec<SqlValue>>,
    /// `page_visits` rows at a page's old first hit `(first_ts, session_key, pathname)`.
    pages_moved: Vec<Vec<SqlValue>>,
    pages_new: Vec<Vec<SqlValue>>,
    pages_changed: Vec<Vec<SqlValue>>,
    /// Per-visit tables rewritten whole (`session_goals`, …): table with columns → (old starts
    /// `(first_ts, session_key)` to delete, rows to insert).
    replaced: BTreeMap<&'static str, (Rows, Rows)>,
    /// `open_visits` rows (session_key, visitor_id, domain, last_ts, rev, state).
    open_visits: Vec<Vec<SqlValue>>,
}

impl VisitWrites {
    fn statements(&self, tenant: &str, out: &mut Vec<Statement>) {
        for (table, (deletes, inserts)) in &self.replaced {
            let name = table.split_whitespace().next().unwrap_or(table);
            out.extend(bulk::delete(
                name,
                &["first_ts", "session_key"],
                tenant,
                deletes,
            ));
            out.extend(bulk::insert(
                &format!("INSERT OR REPLACE INTO {table}"),
                "",
                tenant,
                inserts,
            ));
        }
        out.extend(bulk::delete(
            "sessions",
            &["first_ts", "session_key"],
            tenant,
            &self.sessions_moved,
        ));
        let sessions = "INSERT INTO sessions (tenant_id, session_key, domain, visitor_id, first_ts, last_ts, \
                        pageviews, entry_path, exit_path, source, utm_source, utm_medium, utm_campaign, browser, \
                        os, device, country)";
        out.extend(bulk::insert(
            sessions,
            " ON CONFLICT DO NOTHING",
            tenant,
            &self.sessions_new,
        ));
        out.extend(bulk::insert(
            sessions,
            " ON CONFLICT (tenant_id, first_ts, session_key) DO UPDATE SET domain = excluded.domain, \
             visitor_id = excluded.visitor_id, last_ts = excluded.last_ts, pageviews = excluded.pageviews, \
             entry_path = excluded.entry_path, exit_path = excluded.exit_path, source = excluded.source, \
             utm_source = excluded.utm_source, utm_medium = excluded.utm_medium, \
             utm_campaign = excluded.utm_campaign, browser = excluded.browser, os = excluded.os, \
             device = excluded.device, country = excluded.country",
            tenant,
            &self.sessions_changed,
        ));
        out.extend(bulk::delete(
            "page_visits",
            &["first_ts", "session_key", "pathname"],
            tenant,
            &self.pages_moved,
        ));
        let pages =
            "INSERT INTO page_visits (tenant_id, first_ts, session_key, pathname, since_visit, hits)";
        out.extend(bulk::insert(
            pages,
            " ON CONFLICT DO NOTHING",
            tenant,
            &self.pages_new,
        ));
        out.extend(bulk::insert(
            pages,
            " ON CONFLICT (tenant_id, first_ts, session_key, pathname) DO UPDATE SET \
             since_visit = excluded.since_visit, hits = excluded.hits",
            tenant,
            &self.pages_changed,
        ));
        out.extend(bulk::insert(
            "INSERT INTO open_visits (tenant_id, session_key, visitor_id, domain, last_ts, rev, state)",
            " ON CONFLICT (tenant_id, session_key) DO UPDATE SET visitor_id = excluded.visitor_id, \
             domain = excluded.domain, last_ts = excluded.last_ts, state = excluded.state, \
             rev = CASE WHEN rev = excluded.rev - 1 THEN excluded.rev END",
            tenant,
            &self.open_visits,
        ));
    }
}

/// The visit-level rows of a touched visit (`sessions`, and `page_visits` per page), written whole from
/// its merged state on their primary keys, `(tenant_id, first_ts, session_key[, pathname])`: the prior
/// state says where the old rows are, so no second index on the session key is needed. A row whose
/// `first_ts` moved (an earlier hit arrived late) is deleted at its old key. A visit without prior
/// state is inserted; should its row already exist (a hit arriving after its visit's state was pruned,
/// in the same second as the visit's first hit), the existing row is kept.
fn visit_rows(key: &str, old: Option<&VisitState>, new: &VisitState, w: &mut VisitWrites) {
    goal_rows(key, old, new, w);
    funnel_rows(key, old, new, w);
    if new.pageviews == 0 {
        // A visit of goal events only has no `sessions` row: page-based numbers are page visits'.
        return;
    }
    let first = new.first_secs();
    let moved = old.filter(|o| o.pageviews > 0 && o.first_secs() != first);
    if let Some(o) = moved {
        w.sessions_moved
            .push(vec![o.first_secs().into(), key.into()]);
    }
    let a = &new.attrs;
    let row: Vec<SqlValue> = vec![
        key.into(),
        new.domain.as_str().into(),
        new.visitor.as_str().into(),
        first.into(),
        new.last_secs().into(),
        new.pageviews.into(),
        new.entry.as_str().into(),
        new.exit.as_str().into(),
        a[0].as_str().into(),
        a[5].as_str().into(),
        a[6].as_str().into(),
        a[7].as_str().into(),
        a[1].as_str().into(),
        a[2].as_str().into(),
        a[3].as_str().into(),
        a[4].as_str().into(),
    ];
    if old.is_some() {
        w.sessions_changed.push(row);
    } else {
        w.sessions_new.push(row);
    }
    for (path, &(page_first, hits)) in &new.pages {
        let before = old.and_then(|o| o.pages.get(path));
        if moved.is_none() && before == Some(&(page_first, hits)) {
            continue;
        }
        if let Some(&(was, _)) = before.filter(|b| b.0 != page_first) {
            w.pages_moved
                .push(vec![was.into(), key.into(), path.as_str().into()]);
        }
        let row: Vec<SqlValue> = vec![
            page_first.into(),
            key.into(),
            path.as_str().into(),
            (page_first - first).into(),
            hits.into(),
        ];
        if old.is_some() {
            w.pages_changed.push(row);
        } else {
            w.pages_new.push(row);
        }
    }
}

/// The `session_props`, `session_goals` and `session_goal_props` rows of a touched visit, written whole
/// from its state: the old rows (at the old start) are deleted and one row per property value, per
/// completed goal and per (goal, property value of its events) inserted.
fn goal_rows(key: &str, old: Option<&VisitState>, new: &VisitState, w: &mut VisitWrites) {
    let row = |extra: Vec<SqlValue>| {
        let mut r: Vec<SqlValue> = vec![new.start_secs().into(), key.into()];
        r.extend(extra);
        r
    };
    let props = new
        .props
        .iter()
        .map(|(prop, events)| {
            row(vec![
                prop.as_str().into(),
                new.domain.as_str().into(),
                new.visitor.as_str().into(),
                new.pageviews.into(),
                new.duration().into(),
                (*events).into(),
            ])
        })
        .collect();
    replace_visit_rows(
        "session_props (tenant_id, first_ts, session_key, prop, domain, visitor_id, pageviews, duration, \
         events)",
        key,
        old.filter(|o| !o.props.is_empty()).map(VisitState::start_secs),
        props,
        w,
    );
    let goals = new
        .goals
        .iter()
        .map(|(goal, (currency, events, revenue, paid))| {
            row(vec![
                goal.as_str().into(),
                new.domain.as_str().into(),
                new.visitor.as_str().into(),
                new.pageviews.into(),
                new.duration().into(),
                (*events).into(),
                currency.as_str().into(),
                (*revenue).into(),
                (*paid).into(),
            ])
        })
        .collect();
    replace_visit_rows(
        "session_goals (tenant_id, first_ts, session_key, goal, domain, visitor_id, pageviews, duration, \
         events, currency, revenue, paid)",
        key,
        old.filter(|o| !o.goals.is_empty()).map(VisitState::start_secs),
        goals,
        w,
    );
    let goal_props = new
        .goal_props
        .iter()
        .filter_map(|(packed, events)| {
            let (goal, prop) = packed.split_once(SEP)?;
            Some(row(vec![
                goal.into(),
                prop.into(),
                new.domain.as_str().into(),
                new.visitor.as_str().into(),
                new.pageviews.into(),
                new.duration().into(),
                (*events).into(),
            ]))
        })
        .collect();
    replace_visit_rows(
        "session_goal_props (tenant_id, first_ts, session_key, goal, prop, domain, visitor_id, pageviews, \
         duration, events)",
        key,
        old.filter(|o| !o.goal_props.is_empty())
            .map(VisitState::start_secs),
        goal_props,
        w,
    );
}

/// The `session_funnels` rows of a touched visit, written whole from its state like `session_goals`:
/// the old rows (at the old start) are deleted and one row per funnel step reached inserted.
fn funnel_rows(key: &str, old: Option<&VisitState>, new: &VisitState, w: &mut VisitWrites) {
    let steps = new
        .funnel_values()
        .map(|step| {
            vec![
                new.start_secs().into(),
                key.into(),
                step.into(),
                new.domain.as_str().into(),
                new.visitor.as_str().into(),
                new.pageviews.into(),
                new.duration().into(),
            ]
        })
        .collect();
    replace_visit_rows(
        "session_funnels (tenant_id, first_ts, session_key, step, domain, visitor_id, pageviews, duration)",
        key,
        old.filter(|o| o.funnel_values().next().is_some())
            .map(VisitState::start_secs),
        steps,
        w,
    );
}

/// Replaces a visit's rows in a per-visit table (`table (columns)`, keyed by tenant, first_ts and
/// session_key): its rows at its old start are deleted when it had any (`old_start`), then `rows`
/// (the columns after `tenant_id`) inserted; [`VisitWrites`] writes them with every other visit's.
fn replace_visit_rows(
    table: &'static str,
    key: &str,
    old_start: Option<i64>,
    rows: Vec<Vec<SqlValue>>,
    w: &mut VisitWrites,
) {
    if old_start.is_none() && rows.is_empty() {
        return;
    }
    let (deletes, inserts) = w.replaced.entry(table).or_default();
    if let Some(start) = old_start {
        deletes.push(vec![start.into(), key.into()]);
    }
    inserts.extend(rows);
}

/// Additive upserts of a tenant's rollup cells of one table (rows: dim, bucket, value, domain and the
/// table's measures).
fn cell_upserts(hourly: bool, tenant: &str, rows: &[Vec<SqlValue>]) -> Vec<Statement> {
    let (into, tail) = if hourly {
        (
            "INSERT INTO visit_hourly (tenant_id, dim, hour, value, domain, visits, pageviews, bounces, duration, \
             visitors, visitors_first, visitors_last)",
            " ON CONFLICT (tenant_id, dim, hour, value, domain) DO UPDATE SET visits = visits + excluded.visits, \
             pageviews = pageviews + excluded.pageviews, bounces = bounces + excluded.bounces, \
             duration = duration + excluded.duration, visitors = visitors + excluded.visitors, \
             visitors_first = visitors_first + excluded.visitors_first, \
             visitors_last = visitors_last + excluded.visitors_last",
        )
    } else {
        (
            "INSERT INTO visit_daily (tenant_id, dim, day, value, domain, visits, pageviews, bounces, duration, \
             visitors)",
            " ON CONFLICT (tenant_id, dim, day, value, domain) DO UPDATE SET visits = visits + excluded.visits, \
             pageviews = pageviews + excluded.pageviews, bounces = bounces + excluded.bounces, \
             duration = duration + excluded.duration, visitors = visitors + excluded.visitors",
        )
    };
    bulk::insert(into, tail, tenant, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_day_state_is_nested_and_older_flat_state_still_reads() {
        let mut day = VisitorDay::new();
        for (key, hour) in [
            (format!("a.example{SEP}{SEP}"), 0u8),
            (format!("a.example{SEP}br{SEP}chrome"), 0),
            (
                format!("a.example{SEP}cmp{SEP}launch{SEP}google{SEP}cpc"),
                3,
            ),
            (format!("a.example{SEP}vp{SEP}/"), 23),
            (format!("b.example{SEP}src{SEP}"), 5),
        ] {
            day.entry(key).or_default().insert(hour, 2);
        }
        let stored = day_json(&day);
        assert_eq!(parse_day(&stored), Some(day.clone()));
        // Separators only inside the campaign tuple's value; each domain once.
        assert_eq!(stored.matches("\\u001f").count(), 2);
        assert_eq!(stored.matches("a.example").count(), 1);
        // Rows written before the nesting: the packed keys.
        let flat = serde_json::to_string(&day).unwrap();
        assert_eq!(parse_day(&flat), Some(day));
        assert!(stored.len() < flat.len());
        assert_eq!(parse_day("not json"), None);
    }
}
