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
//! visits ordered by visitor (one comparison per visit). Visitor ordinals are per segment and each
//! segment is counted on its own ([`scan`] starts every segment's groups afresh), so summing groups
//! across segments adds their distinct visitors. A segment is a whole UTC day of visits, or a part of
//! one holding all the visits of a range of visitors (`seal::visitor_range`: parts of a day hold
//! disjoint visitors), so the sum counts a visitor once per UTC day, as
//! `COUNT(DISTINCT v || '|' || day)` does; a [`Partial`] is therefore additive, across days, across the
//! parts of a day, and with the same sums computed by SQL for days without segments.

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
    /// Visits in the window grouped by time span and then by these columns (at most three): spans
    /// are `[edges[i], edges[i + 1])` on the visit's first hit (UTC seconds, ascending), the key's
    /// first element is `i` in decimal. A visit outside `[edges[0], edges[last])` counts nowhere.
    /// The caller maps spans to its time buckets (`query::segment_route`: a local hour, day, week or
    /// month, computed from the visit's first hit exactly as the SQL computes it).
    Timed(Vec<i64>, Vec<Column>),
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
    match &q.group {
        Group::Visits(cols) if cols.len() > MAX_GROUP_COLUMNS => {
            return Err(SegmentError::Query("more than four group columns"));
        }
        Group::Timed(_, cols) if cols.len() >= MAX_GROUP_COLUMNS => {
            return Err(SegmentError::Query(
                "more than three columns with time spans",
            ));
        }
        Group::Timed(edges, _) if edges.windows(2).any(|w| w[0] >= w[1]) => {
            return Err(SegmentError::Query("time span edges not ascending"));
        }
        _ => {}
    }
    // Groups keyed by the segments' own dictionary entries while scanning: a key is allocated
    // once per group of the answer, not once per group of every segment.
    // Span numbers as key text, made once (the keys borrow them).
    let span_names: Vec<String> = match &q.group {
        Group::Timed(e, _) => (0..e.len().saturating_sub(1))
            .map(|i| i.to_string())
            .collect(),
        _ => Vec::new(),
    };
    let mut groups = Groups::default();
    for s in segments {
        scan_segment(s, q, &span_names, &mut groups);
    }
    Ok(Partial {
        groups: groups
            .map
            .into_iter()
            .map(|(k, s)| (k.into_iter().map(str::to_owned).collect(), s))
            .collect(),
    })
}

/// Per-group sums keyed by borrowed dictionary entries.
#[derive(Default)]
struct Groups<'a> {
    map: HashMap<Vec<&'a str>, Sums>,
    key: Vec<&'a str>,
}

impl<'a> Groups<'a> {
    /// Adds `sums` to the group whose key was built in `self.key`.
    fn add_key(&mut self, sums: &Sums) {
        match self.map.get_mut(self.key.as_slice()) {
            Some(s) => s.add(sums),
            None => {
                self.map.insert(self.key.clone(), *sums);
            }
        }
    }
}

/// A compiled filter: tables over dictionary codes.
#[derive(Debug)]
enum Pred<'a> {
    Const(bool),
    Code(Col<'a>, Vec<u8>),
    Viewed(Vec<u8>),
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

fn bytes(set: Vec<bool>) -> Vec<u8> {
    set.into_iter().map(u8::from).collect()
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
                        Pred::table(set, |set| Pred::Code(seg.codes(*c), bytes(set)))
                    }
                    Target::ViewedPage => {
                        let set = matches(seg.path_dict(), *op, values, *case_sensitive);
                        // No path matches: no visit viewed one. Every path matches: a visit viewed
                        // one exactly when it has a page.
                        if !set.contains(&true) {
                            Pred::Const(false)
                        } else {
                            Pred::Viewed(bytes(set))
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

    /// Writes 1 for each visit of `seg` that matches, else 0, into `out` (one byte per visit),
    /// a column at a time.
    fn mask(&self, seg: &Segment, out: &mut [u8]) {
        match self {
            Pred::Const(b) => out.fill(u8::from(*b)),
            Pred::Code(col, set) => col.for_each(out.len(), |i, c| {
                out[i] = set.get(c as usize).copied().unwrap_or(0);
            }),
            Pred::Viewed(set) => {
                let mut pages = vec![0u8; seg.pages];
                seg.page_path.for_each(seg.pages, |j, c| {
                    pages[j] = set.get(c as usize).copied().unwrap_or(0);
                });
                for (i, o) in out.iter_mut().enumerate() {
                    let (a, b) = (seg.page_at[i] as usize, seg.page_at[i + 1] as usize);
                    *o = u8::from(pages[a..b].contains(&1));
                }
            }
            Pred::Not(p) => {
                p.mask(seg, out);
                out.iter_mut().for_each(|o| *o ^= 1);
            }
            Pred::And(list) | Pred::Or(list) => {
                let and = matches!(self, Pred::And(_));
                let mut tmp = vec![0u8; out.len()];
                for (k, p) in list.iter().enumerate() {
                    if k == 0 {
                        p.mask(seg, out);
                        continue;
                    }
                    p.mask(seg, &mut tmp);
                    if and {
                        out.iter_mut().zip(&tmp).for_each(|(o, t)| *o &= t);
                    } else {
                        out.iter_mut().zip(&tmp).for_each(|(o, t)| *o |= t);
                    }
                }
            }
        }
    }
}

/// The visits of `seg` that pass the filters (and, unless `whole`, start in `[lo, hi)` seconds
/// after the day's start), as ascending indexes; `None` when the filters cannot match.
fn select(seg: &Segment, filters: &[Filter], window: Option<(i64, i64)>) -> Option<Vec<u32>> {
    let pred = Pred::all(filters.iter().map(|f| Pred::compile(f, seg)).collect());
    if matches!(pred, Pred::Const(false)) {
        return None;
    }
    let mut mask = vec![0u8; seg.visits];
    pred.mask(seg, &mut mask);
    if let Some((lo, hi)) = window {
        seg.start.for_each(seg.visits, |i, t| {
            mask[i] &= u8::from((lo..hi).contains(&i64::from(t)));
        });
    }
    Some(
        mask.iter()
            .enumerate()
            .filter(|(_, m)| **m != 0)
            .map(|(i, _)| i as u32)
            .collect(),
    )
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

fn scan_segment<'a>(seg: &Segment<'a>, q: &Query, span_names: &'a [String], out: &mut Groups<'a>) {
    let day_start = seg.day * DAY;
    let (start, end) = q.window;
    let (lo, hi) = (start - day_start, end - day_start);
    match &q.group {
        Group::Visits(_) | Group::Timed(..) => {
            let (cols, edges) = match &q.group {
                Group::Timed(edges, cols) => (cols, Some(edges)),
                Group::Visits(cols) => (cols, None),
                Group::Pages(_) => return,
            };
            // The spans' edges narrow the window.
            let (start, end) = match edges {
                Some(e) => match (e.first(), e.last()) {
                    (Some(&a), Some(&b)) => (start.max(a), end.min(b)),
                    _ => return,
                },
                None => (start, end),
            };
            let (lo, hi) = (start - day_start, end - day_start);
            if end <= day_start || start >= day_start + DAY || seg.visits == 0 || start >= end {
                return;
            }
            // With spans the window always applies, so every selected visit is in one span (even
            // a start past the day's end, which only a faulty encoder could write).
            let whole = start <= day_start && end >= day_start + DAY && edges.is_none();
            let Some(sel) = select(seg, &q.filters, (!whole).then_some((lo, hi))) else {
                return;
            };
            // Groups by code for one column (or a single group); by a dense index of the codes'
            // combination for several.
            // With spans: each selected visit's span (the window above keeps them all in one).
            let spans: Option<Vec<u32>> = edges.map(|e| {
                seg.start
                    .gather(&sel)
                    .into_iter()
                    .map(|t| {
                        let t = day_start + i64::from(t);
                        (e.partition_point(|&x| x <= t).max(1) - 1) as u32
                    })
                    .collect()
            });
            let mut combo_keys: Vec<u128> = Vec::new();
            let groups: Vec<u32> = match (cols.as_slice(), &spans) {
                ([], None) => vec![0; sel.len()],
                ([], Some(spans)) => spans.clone(),
                ([c], None) => seg.codes(*c).gather(&sel),
                (many, spans) => {
                    let mut codes: Vec<Vec<u32>> = Vec::new();
                    codes.extend(spans.iter().cloned());
                    codes.extend(many.iter().map(|c| seg.codes(*c).gather(&sel)));
                    let mut combos: HashMap<u128, u32> = HashMap::new();
                    (0..sel.len())
                        .map(|k| {
                            let key = codes
                                .iter()
                                .fold(0u128, |key, c| (key << 32) | u128::from(c[k]));
                            *combos.entry(key).or_insert_with(|| {
                                combo_keys.push(key);
                                combo_keys.len() as u32 - 1
                            })
                        })
                        .collect()
                }
            };
            let size = match (cols.as_slice(), edges) {
                ([], None) => 1,
                ([], Some(e)) => e.len().saturating_sub(1),
                ([c], None) => seg.dict(*c).len(),
                _ => combo_keys.len(),
            };

            let mut accs = vec![FRESH; size];
            let pageviews = seg.pageviews.gather(&sel);
            let duration = seg.duration.gather(&sel);
            let visitor = seg.visitor.gather(&sel);
            for k in 0..sel.len() {
                // A code past its dictionary (a faulty encoder; see `Segment::decode`) counts nowhere.
                let Some(acc) = accs.get_mut(groups[k] as usize) else {
                    continue;
                };
                let pv = pageviews[k];
                acc.sums.visits += 1;
                acc.sums.pageviews += i64::from(pv);
                acc.sums.bounces += i64::from(pv == 1);
                acc.sums.duration += i64::from(duration[k]);
                acc.visitor(visitor[k]);
            }
            for (g, acc) in accs.iter().enumerate() {
                if acc.sums.visits == 0 {
                    continue;
                }
                out.key.clear();
                match (cols.as_slice(), edges) {
                    ([], None) => {}
                    ([], Some(_)) => out.key.push(span_names[g].as_str()),
                    ([c], None) => out.key.push(seg.dict(*c).get(g)),
                    (many, spans) => {
                        let k = combo_keys[g];
                        let n = many.len() + usize::from(spans.is_some());
                        let code = |at: usize| (k >> (32 * (n - 1 - at))) as u32 as usize;
                        if spans.is_some() {
                            out.key.push(span_names[code(0)].as_str());
                        }
                        let first = n - many.len();
                        for (at, c) in many.iter().enumerate() {
                            out.key.push(seg.dict(*c).get(code(first + at)));
                        }
                    }
                }
                out.add_key(&acc.sums);
            }
        }
        Group::Pages(only) => {
            if end <= day_start || start > seg.last_page_ts() || seg.pages == 0 {
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
            let Some(sel) = select(seg, &q.filters, None) else {
                return;
            };
            // The selected visits' pages, each with its visit's position in `sel`.
            let mut page: Vec<u32> = Vec::new();
            let mut of: Vec<u32> = Vec::new();
            for (k, &i) in sel.iter().enumerate() {
                let (a, b) = (seg.page_at[i as usize], seg.page_at[i as usize + 1]);
                page.extend(a..b);
                of.extend(std::iter::repeat_n(k as u32, (b - a) as usize));
            }
            let visit_start = seg.start.gather(&sel);
            let visitor = seg.visitor.gather(&sel);
            let path = seg.page_path.gather(&page);
            let hits = seg.page_hits.gather(&page);
            let since = seg.page_since.gather(&page);
            let mut accs = vec![FRESH; paths.len()];
            for n in 0..page.len() {
                let k = of[n] as usize;
                let t = i64::from(visit_start[k]) + i64::from(since[n]);
                if t < lo || t >= hi {
                    continue;
                }
                let p = path[n] as usize;
                if keep
                    .as_ref()
                    .is_some_and(|keep| !keep.get(p).copied().unwrap_or(false))
                {
                    continue;
                }
                let Some(acc) = accs.get_mut(p) else {
                    continue;
                };
                acc.sums.visits += 1;
                acc.sums.pageviews += i64::from(hits[n]);
                acc.visitor(visitor[k]);
            }
            for (p, acc) in accs.iter().enumerate() {
                if acc.sums.visits > 0 {
                    out.key.clear();
                    out.key.push(paths.get(p));
                    out.add_key(&acc.sums);
                }
            }
        }
    }
}
