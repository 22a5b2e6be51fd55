//! The scan: the visit-level questions over segments, exactly as the SQL over `sessions` and
//! `page_visits` answers them (`query::api::grouped_statement`, `query::pipes::top`).
//!
//! Per segment, the filters are compiled once into predicates on dictionary codes: a leaf becomes a
//! table of which entries of its column's dictionary match (`is` by equality, `contains` by
//! substring, each entry tested once; case-insensitive means ASCII case, as SQLite's `lower()`), a
//! "viewed page" leaf a table over the path dictionary tested against the visit's pages. A leaf that
//! matches no entry (or all) folds into a constant, so a segment where the filters cannot match is
//! skipped without reading a visit. Then one loop over the visits (and, for page units, their pages)
//! adds each match to its group, indexed by code: O(visits), no string touched per visit.
//!
//! Measures per group: visits, pageviews (page hits for page units), bounces (visits of one
//! pageview), duration (`last - first`), and visitors: distinct visitors of the day, counted with the
//! visits ordered by visitor (one comparison per visit). Segments are whole UTC days of visits, so
//! summing groups across segments counts a visitor once per UTC day, as
//! `COUNT(DISTINCT v || '|' || day)` does; a [`Partial`] is therefore additive, across segments and
//! with the same sums computed by SQL for days without a segment.

use std::collections::HashMap;

use super::block::{Col, Dict};
use super::{Column, Segment, SegmentError};

const DAY: i64 = 86_400;
/// Most columns a group key may combine (the campaign tuple has three).
const MAX_GROUP_COLUMNS: usize = 4;

/// A filter leaf's comparison (`query::api`'s operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal to one of the values.
    Is,
    /// Equal to none of the values.
    IsNot,
    /// Contains one of the values.
    Contains,
    /// Contains none of the values.
    ContainsNot,
}

/// What a filter leaf compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A visit attribute.
    Visit(Column),
    /// The visit's pages: it matches when any page of the visit does (`event:page`, `pathname` on
    /// sessions). Negated operators match the visits none of whose pages match.
    ViewedPage,
}

/// A filter on visits: leaves combined by and, or, not.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// One comparison against one or more values.
    Leaf {
        /// The comparison.
        op: Op,
        /// What it compares.
        target: Target,
        /// The values (any of them, or none of them for the negated operators).
        values: Vec<String>,
        /// Whether case matters (else ASCII case is ignored, as SQLite's `lower()`).
        case_sensitive: bool,
    },
    /// All of them.
    And(Vec<Filter>),
    /// Any of them.
    Or(Vec<Filter>),
    /// Not it.
    Not(Box<Filter>),
}

/// A condition on a page visit's own path (`top_pages`' `pathname`: the page itself, not the visit).
#[derive(Debug, Clone, PartialEq)]
pub struct PathFilter {
    /// The comparison.
    pub op: Op,
    /// The values.
    pub values: Vec<String>,
    /// Whether case matters.
    pub case_sensitive: bool,
}

/// What a query counts and how it groups it.
#[derive(Debug, Clone, PartialEq)]
pub enum Group {
    /// Visits in the window (by their first hit), grouped by these columns (none: one group, key
    /// `[]`).
    Visits(Vec<Column>),
    /// Page visits in the window (by the page's first hit, as `top_pages`: a visit that started the
    /// day before counts with its pages of the window), of the visits the filters select, grouped by
    /// path; optionally only the pages whose own path matches. `pageviews` are the page's hits;
    /// `bounces` and `duration` are 0; `visitors` counts distinct visitors of the visit's day.
    Pages(Option<PathFilter>),
}

/// One visit-level question.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `[start, end)`, UTC seconds.
    pub window: (i64, i64),
    /// AND-ed.
    pub filters: Vec<Filter>,
    /// Units and grouping.
    pub group: Group,
}

/// Additive measures of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    /// Visits (page visits for page units).
    pub visits: i64,
    /// Pageviews (page hits for page units).
    pub pageviews: i64,
    /// Visits with exactly one pageview.
    pub bounces: i64,
    /// Sum of `last - first`, seconds.
    pub duration: i64,
    /// Distinct visitors per UTC day, summed over days.
    pub visitors: i64,
}

impl Sums {
    /// Adds another part of the same group.
    pub fn add(&mut self, o: &Sums) {
        self.visits += o.visits;
        self.pageviews += o.pageviews;
        self.bounces += o.bounces;
        self.duration += o.duration;
        self.visitors += o.visitors;
    }
}

/// Per-group sums of part of the data (some segments, or SQL rows of other days); parts add up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partial {
    /// Group key (the grouped columns' values in order, or the path) → sums.
    pub groups: HashMap<Vec<String>, Sums>,
}

impl Partial {
    /// Adds `sums` to group `key`.
    pub fn add(&mut self, key: Vec<String>, sums: &Sums) {
        self.groups.entry(key).or_default().add(sums);
    }

    /// Adds every group of another part.
    pub fn merge(&mut self, other: Partial) {
        for (k, s) in other.groups {
            self.add(k, &s);
        }
    }

    /// The groups by visits descending, then key ascending (a top list's order).
    pub fn ranked(&self) -> Vec<(&Vec<String>, &Sums)> {
        let mut out: Vec<_> = self.groups.iter().collect();
        out.sort_by(|a, b| b.1.visits.cmp(&a.1.visits).then_with(|| a.0.cmp(b.0)));
        out
    }
}

/// Answers `q` over `segments` (any days, each once).
pub fn scan(segments: &[Segment], q: &Query) -> Result<Partial, SegmentError> {
    if let Group::Visits(cols) = &q.group {
        if cols.len() > MAX_GROUP_COLUMNS {
            return Err(SegmentError::Query("more than four group columns"));
        }
    }
    let mut out = Partial::default();
    for s in segments {
        scan_segment(s, q, &mut out);
    }
    Ok(out)
}

/// A compiled filter: tables over dictionary codes.
#[derive(Debug)]
enum Pred<'a> {
    Const(bool),
    Code(Col<'a>, Vec<bool>),
    Viewed(Vec<bool>),
    Not(Box<Pred<'a>>),
    And(Vec<Pred<'a>>),
    Or(Vec<Pred<'a>>),
}

/// Which entries of `dict` match any of `values` under `op` (the negated operators' positive form).
fn matches(dict: Dict, op: Op, values: &[String], case_sensitive: bool) -> Vec<bool> {
    let mut set = vec![false; dict.len()];
    match (op, case_sensitive) {
        (Op::Is | Op::IsNot, true) => {
            for v in values {
                if let Some(code) = dict.find(v) {
                    set[code] = true;
                }
            }
        }
        (Op::Is | Op::IsNot, false) => {
            for (code, hit) in set.iter_mut().enumerate() {
                let e = dict.get(code);
                *hit = values.iter().any(|v| v.eq_ignore_ascii_case(e));
            }
        }
        (Op::Contains | Op::ContainsNot, true) => {
            for (code, hit) in set.iter_mut().enumerate() {
                let e = dict.get(code);
                *hit = values.iter().any(|v| e.contains(v.as_str()));
            }
        }
        (Op::Contains | Op::ContainsNot, false) => {
            let lowered: Vec<String> = values.iter().map(|v| v.to_ascii_lowercase()).collect();
            for (code, hit) in set.iter_mut().enumerate() {
                let e = dict.get(code).to_ascii_lowercase();
                *hit = lowered.iter().any(|v| e.contains(v.as_str()));
            }
        }
    }
    set
}

fn negated(op: Op) -> bool {
    matches!(op, Op::IsNot | Op::ContainsNot)
}

impl<'a> Pred<'a> {
    fn compile(f: &Filter, seg: &Segment<'a>) -> Pred<'a> {
        match f {
            Filter::Leaf {
                op,
                target,
                values,
                case_sensitive,
            } => {
                let leaf = match target {
                    Target::Visit(c) => {
                        let set = matches(seg.dict(*c), *op, values, *case_sensitive);
                        Pred::table(set, |set| Pred::Code(seg.codes(*c), set))
                    }
                    Target::ViewedPage => {
                        let set = matches(seg.path_dict(), *op, values, *case_sensitive);
                        // No path matches: no visit viewed one. Every path matches: a visit viewed
                        // one exactly when it has a page.
                        if !set.contains(&true) {
                            Pred::Const(false)
                        } else {
                            Pred::Viewed(set)
                        }
                    }
                };
                if negated(*op) {
                    Pred::not(leaf)
                } else {
                    leaf
                }
            }
            Filter::Not(inner) => Pred::not(Pred::compile(inner, seg)),
            Filter::And(list) => Pred::all(list.iter().map(|x| Pred::compile(x, seg)).collect()),
            Filter::Or(list) => {
                let mut out = Vec::new();
                for p in list.iter().map(|x| Pred::compile(x, seg)) {
                    match p {
                        Pred::Const(true) => return Pred::Const(true),
                        Pred::Const(false) => {}
                        p => out.push(p),
                    }
                }
                match out.len() {
                    0 => Pred::Const(false),
                    1 => out.pop().unwrap_or(Pred::Const(false)),
                    _ => Pred::Or(out),
                }
            }
        }
    }

    /// A code table, folded to a constant when it matches no entry or every entry.
    fn table(set: Vec<bool>, make: impl FnOnce(Vec<bool>) -> Pred<'a>) -> Pred<'a> {
        if !set.contains(&true) {
            Pred::Const(false)
        } else if !set.contains(&false) {
            Pred::Const(true)
        } else {
            make(set)
        }
    }

    fn not(p: Pred<'a>) -> Pred<'a> {
        match p {
            Pred::Const(b) => Pred::Const(!b),
            Pred::Not(inner) => *inner,
            p => Pred::Not(Box::new(p)),
        }
    }

    fn all(list: Vec<Pred<'a>>) -> Pred<'a> {
        let mut out = Vec::new();
        for p in list {
            match p {
                Pred::Const(false) => return Pred::Const(false),
                Pred::Const(true) => {}
                p => out.push(p),
            }
        }
        match out.len() {
            0 => Pred::Const(true),
            1 => out.pop().unwrap_or(Pred::Const(true)),
            _ => Pred::And(out),
        }
    }

    #[inline]
    fn eval(&self, seg: &Segment, i: usize) -> bool {
        match self {
            Pred::Const(b) => *b,
            Pred::Code(col, set) => set[col.get(i) as usize],
            Pred::Viewed(set) => (seg.page_at[i] as usize..seg.page_at[i + 1] as usize)
                .any(|j| set[seg.page_path.get(j) as usize]),
            Pred::Not(p) => !p.eval(seg, i),
            Pred::And(l) => l.iter().all(|p| p.eval(seg, i)),
            Pred::Or(l) => l.iter().any(|p| p.eval(seg, i)),
        }
    }
}

/// One group's running sums and the last visitor counted (visits come ordered by visitor).
#[derive(Clone, Copy)]
struct Acc {
    sums: Sums,
    last_visitor: u32,
}

const FRESH: Acc = Acc {
    sums: Sums {
        visits: 0,
        pageviews: 0,
        bounces: 0,
        duration: 0,
        visitors: 0,
    },
    last_visitor: u32::MAX,
};

impl Acc {
    #[inline]
    fn visitor(&mut self, v: u32) {
        if self.last_visitor != v {
            self.last_visitor = v;
            self.sums.visitors += 1;
        }
    }
}

fn scan_segment(seg: &Segment, q: &Query, out: &mut Partial) {
    let day_start = seg.day * DAY;
    let (start, end) = q.window;
    match &q.group {
        Group::Visits(cols) => {
            if end <= day_start || start >= day_start + DAY || seg.visits == 0 {
                return;
            }
            let pred = Pred::all(q.filters.iter().map(|f| Pred::compile(f, seg)).collect());
            if matches!(pred, Pred::Const(false)) {
                return;
            }
            let whole = start <= day_start && end >= day_start + DAY;
            let (lo, hi) = (start - day_start, end - day_start);
            let codes: Vec<Col> = cols.iter().map(|c| seg.codes(*c)).collect();
            // Groups by code for one column (or a single group); by a dense index of the codes'
            // combination for several.
            let mut combos: HashMap<u128, usize> = HashMap::new();
            let mut combo_keys: Vec<u128> = Vec::new();
            let mut accs: Vec<Acc> = match cols.as_slice() {
                [] => vec![FRESH],
                [c] => vec![FRESH; seg.dict(*c).len()],
                _ => Vec::new(),
            };
            for i in 0..seg.visits {
                if !whole {
                    let t = i64::from(seg.start.get(i));
                    if t < lo || t >= hi {
                        continue;
                    }
                }
                if !pred.eval(seg, i) {
                    continue;
                }
                let g = match codes.as_slice() {
                    [] => 0,
                    [c] => c.get(i) as usize,
                    many => {
                        let key = many
                            .iter()
                            .fold(0u128, |k, c| (k << 32) | u128::from(c.get(i)));
                        *combos.entry(key).or_insert_with(|| {
                            combo_keys.push(key);
                            accs.push(FRESH);
                            accs.len() - 1
                        })
                    }
                };
                let acc = &mut accs[g];
                let pv = seg.pageviews.get(i);
                acc.sums.visits += 1;
                acc.sums.pageviews += i64::from(pv);
                acc.sums.bounces += i64::from(pv == 1);
                acc.sums.duration += i64::from(seg.duration.get(i));
                acc.visitor(seg.visitor.get(i));
            }
            for (g, acc) in accs.iter().enumerate() {
                if acc.sums.visits == 0 {
                    continue;
                }
                let key: Vec<String> = match cols.as_slice() {
                    [] => Vec::new(),
                    [c] => vec![seg.dict(*c).get(g).to_owned()],
                    many => {
                        let k = combo_keys[g];
                        let n = many.len();
                        many.iter()
                            .enumerate()
                            .map(|(at, c)| {
                                let code = (k >> (32 * (n - 1 - at))) as u32;
                                seg.dict(*c).get(code as usize).to_owned()
                            })
                            .collect()
                    }
                };
                out.add(key, &acc.sums);
            }
        }
        Group::Pages(only) => {
            if end <= day_start || start > seg.last_page_ts() || seg.pages == 0 {
                return;
            }
            let pred = Pred::all(q.filters.iter().map(|f| Pred::compile(f, seg)).collect());
            if matches!(pred, Pred::Const(false)) {
                return;
            }
            let paths = seg.path_dict();
            let keep: Option<Vec<bool>> = only.as_ref().map(|f| {
                let set = matches(paths, f.op, &f.values, f.case_sensitive);
                if negated(f.op) {
                    set.into_iter().map(|b| !b).collect()
                } else {
                    set
                }
            });
            if keep.as_ref().is_some_and(|k| !k.contains(&true)) {
                return;
            }
            let whole = start <= day_start && end > seg.last_page_ts();
            let (lo, hi) = (start - day_start, end - day_start);
            let mut accs = vec![FRESH; paths.len()];
            for i in 0..seg.visits {
                if !pred.eval(seg, i) {
                    continue;
                }
                let t0 = i64::from(seg.start.get(i));
                let visitor = seg.visitor.get(i);
                for j in seg.page_at[i] as usize..seg.page_at[i + 1] as usize {
                    if !whole {
                        let t = t0 + i64::from(seg.page_since.get(j));
                        if t < lo || t >= hi {
                            continue;
                        }
                    }
                    let p = seg.page_path.get(j) as usize;
                    if keep.as_ref().is_some_and(|k| !k[p]) {
                        continue;
                    }
                    let acc = &mut accs[p];
                    acc.sums.visits += 1;
                    acc.sums.pageviews += i64::from(seg.page_hits.get(j));
                    acc.visitor(visitor);
                }
            }
            for (p, acc) in accs.iter().enumerate() {
                if acc.sums.visits > 0 {
                    out.add(vec![paths.get(p).to_owned()], &acc.sums);
                }
            }
        }
    }
}
