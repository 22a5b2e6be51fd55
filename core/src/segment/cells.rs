//! One-filter cells: per sealed part and filter target, the [`Sums`] of every top-list grouping for
//! each value of the target, so a top list with one equality filter reads a few cells per value and
//! grouping instead of scanning the part's visits (issue #11 item 2; docs/rollups.md, "Visit
//! segments").
//!
//! [`build`] computes one target's cells from a decoded [`Segment`] (the cron does it when it seals
//! the part, from the object it just encoded); [`Cells::decode`] reads them in place and [`answer`]
//! adds the cells of one value and one grouping over several parts and days into a [`Partial`] that
//! equals what [`super::scan()`] gives for the same visits: the same visits, pageviews, bounces and
//! duration per group, and visitors distinct within the part (a part is a range of one UTC day's
//! visitors, so the sums add up across parts and days as the scan's do). A cell counts every visit
//! of its part (every page, for [`Grouping::Pages`]): it answers a day only when the window holds
//! the whole day ([`Cells::usable`]; for pages, also the day's last page), the edge days are scanned.
//!
//! ```text
//! header (40 bytes, little-endian)
//!   magic "STVC" | version u8 | target u8 (index in TARGETS) | built u16 (bit g: GROUPINGS[g] held)
//!   day i32 | last_page u32 (as the segment's) | sealed i64 (the day's version the part was read at)
//!   values u32 | body_len u32 | checksum u32 (of the header's first 32 bytes and the body) | 4 zero
//! body
//!   dictionary of every string the cells use (values and group keys), as a segment's
//!   the values: a column of dictionary codes, ascending
//!   ends: a column of values × GROUPINGS.len() end offsets into the stream (value-major)
//!   stream: per (value, grouping), its cells: the key's dictionary codes, then visits, pageviews,
//!     bounces, duration, visitors; every number an unsigned LEB128 varint
//! ```

use std::collections::HashMap;

use super::block::{
    checksum, header, put_column, word, Dict, DictBuilder, Reader, DICT_COUNT, HEADER, PATH_DICT,
};
use super::{Column, Group, Partial, Segment, SegmentError, Sums, Target};

/// The cells format version this code writes and reads.
pub const CELLS_VERSION: u8 = 1;
const MAGIC: [u8; 4] = *b"STVC";
const DAY: i64 = 86_400;

/// A grouping of the top lists (`query::pipes::top_spec`) that cells hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// Visits grouped by these columns (a [`Group::Visits`]).
    Visits(&'static [Column]),
    /// Page visits grouped by path ([`Group::Pages`] without a path condition).
    Pages,
}

/// Every grouping cells hold, in the order of their sections.
pub const GROUPINGS: [Grouping; 9] = [
    Grouping::Visits(&[Column::Source]),
    Grouping::Visits(&[Column::UtmCampaign, Column::UtmSource, Column::UtmMedium]),
    Grouping::Visits(&[Column::Browser]),
    Grouping::Visits(&[Column::Os]),
    Grouping::Visits(&[Column::Device]),
    Grouping::Visits(&[Column::Country]),
    Grouping::Visits(&[Column::Entry]),
    Grouping::Visits(&[Column::Exit]),
    Grouping::Pages,
];

/// Every filter target cells can be built for, in the order of their index in the header.
pub const TARGETS: [Target; 12] = [
    Target::Visit(Column::Domain),
    Target::Visit(Column::Source),
    Target::Visit(Column::UtmSource),
    Target::Visit(Column::UtmMedium),
    Target::Visit(Column::UtmCampaign),
    Target::Visit(Column::Browser),
    Target::Visit(Column::Os),
    Target::Visit(Column::Device),
    Target::Visit(Column::Country),
    Target::Visit(Column::Entry),
    Target::Visit(Column::Exit),
    Target::ViewedPage,
];

/// The index in [`GROUPINGS`] of a scan grouping, if cells hold it.
pub fn grouping_of(group: &Group) -> Option<usize> {
    match group {
        Group::Pages(None) => Some(GROUPINGS.len() - 1),
        Group::Visits(cols) => GROUPINGS
            .iter()
            .position(|g| matches!(g, Grouping::Visits(c) if *c == cols.as_slice())),
        _ => None,
    }
}

/// The name of a target in object keys (`seal::cells_key`).
pub fn target_name(t: Target) -> &'static str {
    match t {
        Target::Visit(c) => match c {
            Column::Domain => "domain",
            Column::Source => "source",
            Column::UtmSource => "utm_source",
            Column::UtmMedium => "utm_medium",
            Column::UtmCampaign => "utm_campaign",
            Column::Browser => "browser",
            Column::Os => "os",
            Column::Device => "device",
            Column::Country => "country",
            Column::Entry => "entry_path",
            Column::Exit => "exit_path",
        },
        Target::ViewedPage => "page",
    }
}

/// Whether cells of `target` hold `grouping` (the viewed page's cells hold no pages grouping: a page
/// filter on `top_pages` is a condition on the page itself, which the rollups answer).
pub fn holds(target: Target, grouping: usize) -> bool {
    !(target == Target::ViewedPage && matches!(GROUPINGS.get(grouping), Some(Grouping::Pages)))
        && grouping < GROUPINGS.len()
}

fn target_index(t: Target) -> usize {
    TARGETS.iter().position(|x| *x == t).unwrap_or(0)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(b: &[u8], at: &mut usize) -> Result<u64, SegmentError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b
            .get(*at)
            .ok_or(SegmentError::Corrupt("cell stream ends in a number"))?;
        *at += 1;
        v |= u64::from(x & 0x7F) << shift;
        if x & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(SegmentError::Corrupt("cell number over 64 bits"))
}

/// One cell's running sums and the last visitor counted (a part's visits come ordered by visitor,
/// so a visitor's visits of one cell follow each other).
#[derive(Clone, Copy)]
struct Acc {
    sums: Sums,
    last_visitor: u32,
}

/// The cells of `target` over one decoded part `seg`, sealed at version `sealed` of its day.
pub fn build(seg: &Segment, target: Target, sealed: i64) -> Vec<u8> {
    // (value code, grouping, group key as codes packed 32 bits each) → sums, in the segment's codes.
    let mut acc: HashMap<(u32, u8, u128), Acc> = HashMap::new();
    let value_dict = match target {
        Target::Visit(c) => c.dict(),
        Target::ViewedPage => PATH_DICT,
    };
    let mut values: Vec<u32> = Vec::new();
    let mut add = |key: (u32, u8, u128), visitor: u32, s: Sums| {
        let a = acc.entry(key).or_insert(Acc {
            sums: Sums::default(),
            last_visitor: u32::MAX,
        });
        a.sums.add(&s);
        if a.last_visitor != visitor {
            a.last_visitor = visitor;
            a.sums.visitors += 1;
        }
    };
    for i in 0..seg.visits {
        values.clear();
        let (a, b) = (seg.page_at[i] as usize, seg.page_at[i + 1] as usize);
        match target {
            Target::Visit(c) => values.push(seg.codes(c).get(i)),
            Target::ViewedPage => {
                values.extend((a..b).map(|j| seg.page_path.get(j)));
                values.sort_unstable();
                values.dedup();
            }
        }
        let visitor = seg.visitor.get(i);
        let pv = seg.pageviews.get(i);
        let visit = Sums {
            visits: 1,
            pageviews: i64::from(pv),
            bounces: i64::from(pv == 1),
            duration: i64::from(seg.duration.get(i)),
            visitors: 0,
        };
        for (g, grouping) in GROUPINGS.iter().enumerate() {
            if !holds(target, g) {
                continue;
            }
            match grouping {
                Grouping::Visits(cols) => {
                    let key = cols
                        .iter()
                        .fold(0u128, |k, c| (k << 32) | u128::from(seg.codes(*c).get(i)));
                    for &v in &values {
                        add((v, g as u8, key), visitor, visit);
                    }
                }
                Grouping::Pages => {
                    for j in a..b {
                        let page = Sums {
                            visits: 1,
                            pageviews: i64::from(seg.page_hits.get(j)),
                            ..Sums::default()
                        };
                        let key = u128::from(seg.page_path.get(j));
                        for &v in &values {
                            add((v, g as u8, key), visitor, page);
                        }
                    }
                }
            }
        }
    }

    // The strings used, by segment dictionary; each one's code in the cells' own dictionary.
    let mut used: Vec<Vec<bool>> = (0..DICT_COUNT)
        .map(|d| vec![false; seg.dict_at(d).len()])
        .collect();
    let dicts_of = |g: u8| -> Vec<usize> {
        match GROUPINGS[usize::from(g)] {
            Grouping::Visits(cols) => cols.iter().map(|c| c.dict()).collect(),
            Grouping::Pages => vec![PATH_DICT],
        }
    };
    let group_dicts: Vec<Vec<usize>> = (0..GROUPINGS.len() as u8).map(dicts_of).collect();
    let mark = |used: &mut Vec<Vec<bool>>, d: usize, code: u32| {
        if let Some(u) = used[d].get_mut(code as usize) {
            *u = true;
        }
    };
    for &(v, g, key) in acc.keys() {
        mark(&mut used, value_dict, v);
        let ds = &group_dicts[usize::from(g)];
        for (at, &d) in ds.iter().enumerate() {
            let code = (key >> (32 * (ds.len() - 1 - at))) as u32;
            mark(&mut used, d, code);
        }
    }
    let strings = used.iter().enumerate().flat_map(|(d, u)| {
        let dict = seg.dict_at(d);
        u.iter()
            .enumerate()
            .filter(|(_, x)| **x)
            .map(move |(code, _)| dict.get(code))
    });
    let dict = DictBuilder::new(strings);
    let remap: Vec<Vec<u32>> = used
        .iter()
        .enumerate()
        .map(|(d, u)| {
            let sd = seg.dict_at(d);
            (0..u.len())
                .map(|code| if u[code] { dict.code(sd.get(code)) } else { 0 })
                .collect()
        })
        .collect();

    // Cells in the cells' codes, ordered by value, grouping, key.
    let mut cells: Vec<(u32, u8, Vec<u32>, Sums)> = acc
        .into_iter()
        .map(|((v, g, key), a)| {
            let ds = &group_dicts[usize::from(g)];
            let codes = ds
                .iter()
                .enumerate()
                .map(|(at, &d)| {
                    let code = (key >> (32 * (ds.len() - 1 - at))) as u32 as usize;
                    remap[d].get(code).copied().unwrap_or(0)
                })
                .collect();
            let v = remap[value_dict].get(v as usize).copied().unwrap_or(0);
            (v, g, codes, a.sums)
        })
        .collect();
    cells.sort_unstable_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));

    let built: u16 = (0..GROUPINGS.len())
        .filter(|&g| holds(target, g))
        .fold(0, |m, g| m | (1 << g));
    let head = Head {
        target,
        built,
        day: seg.day,
        last_page: seg.last_page,
        sealed,
    };
    write(&head, &dict, &cells)
}

/// What a cells object's header says besides its lengths.
struct Head {
    target: Target,
    built: u16,
    day: i64,
    last_page: u32,
    sealed: i64,
}

/// Encodes cells (in `dict`'s codes, sorted by value, grouping, key) with their header.
fn write(head: &Head, dict: &DictBuilder, cells: &[(u32, u8, Vec<u32>, Sums)]) -> Vec<u8> {
    let mut value_codes: Vec<u32> = cells.iter().map(|c| c.0).collect();
    value_codes.dedup();
    let mut stream = Vec::new();
    let mut ends = Vec::with_capacity(value_codes.len() * GROUPINGS.len());
    let mut at = 0;
    for &v in &value_codes {
        for g in 0..GROUPINGS.len() as u8 {
            while at < cells.len() && cells[at].0 == v && cells[at].1 == g {
                let (_, _, codes, s) = &cells[at];
                for &c in codes {
                    put_varint(&mut stream, u64::from(c));
                }
                for n in [s.visits, s.pageviews, s.bounces, s.duration, s.visitors] {
                    put_varint(&mut stream, n.max(0) as u64);
                }
                at += 1;
            }
            ends.push(stream.len() as u32);
        }
    }

    let mut body = Vec::with_capacity(stream.len() + 1024);
    dict.write(&mut body);
    put_column(&mut body, &value_codes);
    put_column(&mut body, &ends);
    body.extend_from_slice(&stream);

    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(CELLS_VERSION);
    out.push(target_index(head.target) as u8);
    out.extend_from_slice(&head.built.to_le_bytes());
    out.extend_from_slice(&(head.day as i32).to_le_bytes());
    out.extend_from_slice(&head.last_page.to_le_bytes());
    out.extend_from_slice(&head.sealed.to_le_bytes());
    out.extend_from_slice(&(value_codes.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    let sum = checksum(&out, &body);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&body);
    out
}

/// One part's cells of one target, read in place.
#[derive(Debug, Clone)]
pub struct Cells<'a> {
    day: i64,
    last_page: u32,
    sealed: i64,
    target: Target,
    built: u16,
    dict: Dict<'a>,
    values: super::block::Col<'a>,
    n_values: usize,
    ends: super::block::Col<'a>,
    stream: &'a [u8],
}

impl<'a> Cells<'a> {
    /// Reads cells, checking the checksum and every length: a corrupt or truncated object is an
    /// error, never a panic (a cell's numbers are checked when [`answer`] reads them).
    pub fn decode(bytes: &'a [u8]) -> Result<Cells<'a>, SegmentError> {
        Self::read(bytes, true)
    }

    /// [`Cells::decode`] without the checksum, for bytes that decoded before.
    pub fn decode_again(bytes: &'a [u8]) -> Result<Cells<'a>, SegmentError> {
        Self::read(bytes, false)
    }

    fn read(bytes: &'a [u8], verify: bool) -> Result<Cells<'a>, SegmentError> {
        let header = header(bytes, MAGIC, CELLS_VERSION)?;
        let word = |at: usize| word(header, at);
        let target = *TARGETS
            .get(usize::from(header[5]))
            .ok_or(SegmentError::Corrupt("cells target"))?;
        let built = u16::from_le_bytes([header[6], header[7]]);
        let day = i64::from(word(8) as i32);
        let last_page = word(12);
        let mut s = [0u8; 8];
        s.copy_from_slice(&header[16..24]);
        let sealed = i64::from_le_bytes(s);
        let n_values = word(24) as usize;
        let body_len = word(28) as usize;
        let body = &bytes[HEADER..];
        if body.len() < body_len {
            return Err(SegmentError::Truncated);
        }
        if body.len() > body_len {
            return Err(SegmentError::Corrupt("bytes after the body"));
        }
        if header[36..] != [0; 4] {
            return Err(SegmentError::Corrupt("reserved header bytes"));
        }
        if verify && checksum(&header[..32], body) != word(32) {
            return Err(SegmentError::Checksum);
        }
        let mut r = Reader { b: body, at: 0 };
        let dict = r.dict(verify)?;
        let values = r.column(n_values)?;
        let n_ends = n_values
            .checked_mul(GROUPINGS.len())
            .ok_or(SegmentError::Corrupt("cells values"))?;
        let ends = r.column(n_ends)?;
        let stream = &body[r.at..];
        let mut prev = 0u32;
        // Bytes that passed before (`decode_again`) are not checked again.
        for i in (0..n_ends).filter(|_| verify) {
            let e = ends.get(i);
            if e < prev {
                return Err(SegmentError::Corrupt("cell offsets"));
            }
            prev = e;
        }
        if verify && prev as usize != stream.len() {
            return Err(SegmentError::Corrupt("cell stream length"));
        }
        for i in (0..n_values).filter(|_| verify) {
            if values.get(i) as usize >= dict.len() || (i > 0 && values.get(i - 1) >= values.get(i))
            {
                return Err(SegmentError::Corrupt("cell values"));
            }
        }
        Ok(Cells {
            day,
            last_page,
            sealed,
            target,
            built,
            dict,
            values,
            n_values,
            ends,
            stream,
        })
    }

    /// The UTC day (days since 1970-01-01).
    pub fn day(&self) -> i64 {
        self.day
    }

    /// The version of the day the part was sealed at (`segment_days.version`).
    pub fn sealed(&self) -> i64 {
        self.sealed
    }

    /// The filter target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Whether these cells answer `grouping` ([`GROUPINGS`] index) over `[start, end)` for their
    /// day: the window holds the whole UTC day, and for pages every page of the day's visits (the
    /// latest first hit before `end`).
    pub fn usable(&self, (start, end): (i64, i64), grouping: usize) -> bool {
        let day_start = self.day * DAY;
        let whole = start <= day_start && day_start + DAY <= end;
        let pages_in = !matches!(GROUPINGS.get(grouping), Some(Grouping::Pages))
            || day_start + i64::from(self.last_page) < end;
        whole && pages_in && self.built & (1 << grouping) != 0
    }

    /// The range of the stream holding `value`'s cells of `grouping`, if any.
    fn section(&self, value: &str, grouping: usize) -> Option<(usize, usize)> {
        let code = self.dict.find(value)? as u32;
        let (mut lo, mut hi) = (0, self.n_values);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.values.get(mid).cmp(&code) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.range(mid, grouping)),
            }
        }
        None
    }
    /// The stream range of the `i`-th value's cells of `grouping`.
    fn range(&self, i: usize, grouping: usize) -> (usize, usize) {
        let at = i * GROUPINGS.len() + grouping;
        let start = if at == 0 {
            0
        } else {
            self.ends.get(at - 1) as usize
        };
        (start, self.ends.get(at) as usize)
    }

    /// Calls `f(key codes, sums)` for each cell in the stream range `(at, end)`, whose keys are
    /// `width` dictionary codes (checked: offsets and codes not verified again are an error).
    fn each(
        &self,
        (mut at, end): (usize, usize),
        width: usize,
        mut f: impl FnMut(&[u32], Sums),
    ) -> Result<(), SegmentError> {
        let b = self
            .stream
            .get(..end)
            .ok_or(SegmentError::Corrupt("cell offsets"))?;
        let mut codes = [0u32; 3];
        let codes = codes
            .get_mut(..width)
            .ok_or(SegmentError::Corrupt("cell key width"))?;
        while at < end {
            for c in codes.iter_mut() {
                let code = varint(b, &mut at)?;
                if code >= self.dict.len() as u64 {
                    return Err(SegmentError::Corrupt("cell key code"));
                }
                *c = code as u32;
            }
            let mut n = [0i64; 5];
            for x in &mut n {
                *x = i64::try_from(varint(b, &mut at)?)
                    .map_err(|_| SegmentError::Corrupt("cell number"))?;
            }
            f(
                codes,
                Sums {
                    visits: n[0],
                    pageviews: n[1],
                    bounces: n[2],
                    duration: n[3],
                    visitors: n[4],
                },
            );
        }
        Ok(())
    }
}

/// The key columns of `GROUPINGS[grouping]`.
fn width(grouping: usize) -> Result<usize, SegmentError> {
    match GROUPINGS.get(grouping) {
        Some(Grouping::Visits(cols)) => Ok(cols.len()),
        Some(Grouping::Pages) => Ok(1),
        None => Err(SegmentError::Query("no such cells grouping")),
    }
}

/// The cells of one day and target from the cells of every part of the day ([`build`] of each, or
/// earlier merges), all of the same day, version and target: one object answering, for every value
/// and grouping, what [`answer`] gives over the parts (parts hold disjoint visitors of the day, so
/// every sum, distinct visitors included, adds up exactly). A grouping is held when every part holds
/// it; the last page is the parts' latest. The cron writes it once every part of the day is sealed
/// at the same version ([`super::seal::day_cells_key`]), so a read fetches one object per day and
/// target instead of one per part. Memory: the parts' objects and the merged cells of one target.
pub fn merge(parts: &[Cells]) -> Result<Vec<u8>, SegmentError> {
    let first = parts
        .first()
        .ok_or(SegmentError::Query("no cells to merge"))?;
    if parts
        .iter()
        .any(|c| (c.day, c.sealed, c.target) != (first.day, first.sealed, first.target))
    {
        return Err(SegmentError::Query(
            "cells of other days, versions or targets",
        ));
    }
    let built = parts.iter().fold(u16::MAX, |m, c| m & c.built) & ((1 << GROUPINGS.len()) - 1);
    // Every string interned once; cells keyed by (value, grouping, key) in interned ids.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut strings: Vec<&str> = Vec::new();
    let mut intern = |s| {
        *ids.entry(s).or_insert_with(|| {
            strings.push(s);
            strings.len() as u32 - 1
        })
    };
    let mut acc: HashMap<(u32, u8, u128), Sums> = HashMap::new();
    for c in parts {
        for i in 0..c.n_values {
            let code = c.values.get(i) as usize;
            if code >= c.dict.len() {
                return Err(SegmentError::Corrupt("cell values"));
            }
            let value = intern(c.dict.get(code));
            for g in (0..GROUPINGS.len()).filter(|g| built & (1 << g) != 0) {
                c.each(c.range(i, g), width(g)?, |codes, s| {
                    let key = codes.iter().fold(0u128, |k, &code| {
                        (k << 32) | u128::from(intern(c.dict.get(code as usize)))
                    });
                    acc.entry((value, g as u8, key)).or_default().add(&s);
                })?;
            }
        }
    }
    let dict = DictBuilder::new(strings.iter().copied());
    let remap: Vec<u32> = strings.iter().map(|s| dict.code(s)).collect();
    let mut cells: Vec<(u32, u8, Vec<u32>, Sums)> = acc
        .into_iter()
        .map(|((v, g, key), s)| {
            let w = width(usize::from(g)).unwrap_or(1);
            let codes = (0..w)
                .map(|at| remap[(key >> (32 * (w - 1 - at))) as u32 as usize])
                .collect();
            (remap[v as usize], g, codes, s)
        })
        .collect();
    cells.sort_unstable_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    let head = Head {
        target: first.target,
        built,
        day: first.day,
        last_page: parts.iter().map(|c| c.last_page).max().unwrap_or(0),
        sealed: first.sealed,
    };
    Ok(write(&head, &dict, &cells))
}

/// The sums per group key of the visits (pages, for [`Grouping::Pages`]) of every part in `cells`
/// whose target equals `value`, grouped by `GROUPINGS[grouping]`; with `skip_empty`, the groups
/// whose first key column is `''` left out (`top_campaigns`). Equal to [`super::scan()`] over the same
/// parts' segments with the window holding their whole days, the one filter `target is value` (and
/// `first key column is not ''` with `skip_empty`). Every part must hold `grouping`
/// ([`Cells::usable`]); the caller picks the parts of one target.
pub fn answer(
    cells: &[Cells],
    value: &str,
    grouping: usize,
    skip_empty: bool,
) -> Result<Partial, SegmentError> {
    let width = width(grouping)?;
    let mut groups: HashMap<Vec<&str>, Sums> = HashMap::new();
    let mut key: Vec<&str> = Vec::with_capacity(width);
    for c in cells {
        if c.built & (1 << grouping) == 0 {
            return Err(SegmentError::Query("cells without this grouping"));
        }
        let Some((at, end)) = c.section(value, grouping) else {
            continue;
        };
        c.each((at, end), width, |codes, s| {
            key.clear();
            key.extend(codes.iter().map(|&code| c.dict.get(code as usize)));
            if skip_empty && key[0].is_empty() {
                return;
            }
            match groups.get_mut(key.as_slice()) {
                Some(g) => g.add(&s),
                None => {
                    groups.insert(key.clone(), s);
                }
            }
        })?;
    }
    Ok(Partial {
        groups: groups
            .into_iter()
            .map(|(k, s)| (k.into_iter().map(str::to_owned).collect(), s))
            .collect(),
    })
}
