//! The segment format: one tenant's visits of one UTC day, columnar, read in place.
//!
//! ```text
//! header (40 bytes, little-endian)
//!   magic "STVS" | version u8 | 3 zero bytes | day i32 (days since 1970-01-01)
//!   visits u32 | visitors u32 | pages u32 | last_page u32 (latest page first hit, s after the day start)
//!   body_len u32 | checksum u32 (of the body) | 4 zero bytes
//! body
//!   10 dictionaries: domain, source, utm_source, utm_medium, utm_campaign, browser, os, device,
//!     country, path (entry, exit and page paths share it). Each: count u32, its end offsets as a
//!     column, then the UTF-8 bytes. Entries are sorted and distinct, so a code order is a byte order.
//!   visit columns (one value per visit, visits sorted by visitor ordinal then first hit):
//!     visitor, start (s after the day start), duration, pageviews, page count, then one code per
//!     dictionary column: domain, source, utm_source, utm_medium, utm_campaign, browser, os, device,
//!     country, entry, exit
//!   page columns (CSR: a visit's pages follow each other, in visit order): path code, since_visit
//!     (s after the visit's first hit), hits
//! ```
//!
//! A column is a width byte (0 to 4) and `count × width` little-endian bytes; width 0 means every
//! value is 0 (one domain, one device...). Widths are the smallest that hold the column's largest
//! value, so codes of a small dictionary take one byte and a constant column none. Values are read
//! in place ([`Segment`] borrows the bytes); decoding builds only the visits' page offsets and checks
//! the checksum over header and body, every length, the dictionaries, the visitor order and the page
//! counts, so a corrupt or truncated segment is an error, never a panic or a half-read column.

use std::collections::HashMap;
use std::fmt;

use super::VisitRow;

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const MAGIC: [u8; 4] = *b"STVS";
/// Bytes of the header a segment (and a cells object, [`super::cells`]) starts with.
pub(crate) const HEADER: usize = 40;
const DAY: i64 = 86_400;
const DICTS: usize = 10;
pub(super) const PATH_DICT: usize = 9;
/// How many dictionaries a segment has.
pub(super) const DICT_COUNT: usize = DICTS;

/// A segment that cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentError {
    /// Shorter than its header or its sections say.
    Truncated,
    /// Not a segment (wrong magic bytes).
    NotASegment,
    /// Written by a format version this code does not read.
    Version(u8),
    /// The body does not match its checksum.
    Checksum,
    /// A section is inconsistent (what is wrong, for logs).
    Corrupt(&'static str),
    /// Rows that cannot go in one segment (what is wrong, for logs).
    Rows(String),
    /// A query the scan cannot answer (what is wrong).
    Query(&'static str),
}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "segment truncated"),
            Self::NotASegment => write!(f, "not a visit segment"),
            Self::Version(v) => write!(f, "segment format version {v} is not supported"),
            Self::Checksum => write!(f, "segment checksum mismatch"),
            Self::Corrupt(what) => write!(f, "corrupt segment: {what}"),
            Self::Rows(what) => write!(f, "rows do not fit one segment: {what}"),
            Self::Query(what) => write!(f, "query not supported by the segment scan: {what}"),
        }
    }
}

impl std::error::Error for SegmentError {}

/// A string attribute of a visit (a `sessions` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// `domain` (the `event:hostname` filter).
    Domain,
    /// `source` (`visit:source`, `referrer`).
    Source,
    /// `utm_source`.
    UtmSource,
    /// `utm_medium`.
    UtmMedium,
    /// `utm_campaign`.
    UtmCampaign,
    /// `browser`.
    Browser,
    /// `os`.
    Os,
    /// `device`.
    Device,
    /// `country`.
    Country,
    /// `entry_path`.
    Entry,
    /// `exit_path`.
    Exit,
}

impl Column {
    /// Every column, in the order of the segment's code columns.
    pub const ALL: [Column; 11] = [
        Column::Domain,
        Column::Source,
        Column::UtmSource,
        Column::UtmMedium,
        Column::UtmCampaign,
        Column::Browser,
        Column::Os,
        Column::Device,
        Column::Country,
        Column::Entry,
        Column::Exit,
    ];

    /// The column of a `sessions` column name (`browser`, `entry_path`, ...).
    pub fn from_sessions(name: &str) -> Option<Column> {
        Some(match name {
            "domain" => Column::Domain,
            "source" => Column::Source,
            "utm_source" => Column::UtmSource,
            "utm_medium" => Column::UtmMedium,
            "utm_campaign" => Column::UtmCampaign,
            "browser" => Column::Browser,
            "os" => Column::Os,
            "device" => Column::Device,
            "country" => Column::Country,
            "entry_path" => Column::Entry,
            "exit_path" => Column::Exit,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The dictionary its codes index.
    pub(super) fn dict(self) -> usize {
        match self {
            Column::Entry | Column::Exit => PATH_DICT,
            c => c.index(),
        }
    }

    fn of(self, v: &VisitRow) -> &str {
        match self {
            Column::Domain => &v.domain,
            Column::Source => &v.source,
            Column::UtmSource => &v.utm_source,
            Column::UtmMedium => &v.utm_medium,
            Column::UtmCampaign => &v.utm_campaign,
            Column::Browser => &v.browser,
            Column::Os => &v.os,
            Column::Device => &v.device,
            Column::Country => &v.country,
            Column::Entry => &v.entry_path,
            Column::Exit => &v.exit_path,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

fn width(max: u32) -> u8 {
    match max {
        0 => 0,
        1..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

pub(super) fn put_column(out: &mut Vec<u8>, values: &[u32]) {
    let w = width(values.iter().copied().max().unwrap_or(0));
    out.push(w);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes()[..usize::from(w)]);
    }
}

/// A sorted dictionary of a column's distinct values, and each value's code.
pub(super) struct DictBuilder<'a> {
    codes: HashMap<&'a str, u32>,
    entries: Vec<&'a str>,
}

impl<'a> DictBuilder<'a> {
    pub(super) fn new(values: impl Iterator<Item = &'a str>) -> Self {
        let mut entries: Vec<&str> = values.collect();
        entries.sort_unstable();
        entries.dedup();
        // Every visit's value was collected: keep only the distinct ones (a dictionary is held
        // until the encoding ends, ten of them at once).
        entries.shrink_to_fit();
        let codes = entries
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, i as u32))
            .collect();
        Self { codes, entries }
    }

    pub(super) fn code(&self, s: &str) -> u32 {
        self.codes.get(s).copied().unwrap_or_default()
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        let mut end = 0u32;
        let ends: Vec<u32> = self
            .entries
            .iter()
            .map(|s| {
                end += s.len() as u32;
                end
            })
            .collect();
        put_column(out, &ends);
        for s in &self.entries {
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn rows_error(what: impl Into<String>) -> SegmentError {
    SegmentError::Rows(what.into())
}

/// Encodes the visits of one tenant whose first hit is in UTC day `day` (days since 1970-01-01),
/// each with all its pages. An error if a visit starts outside the day, ends before it starts, has a
/// page before its first hit, or the day holds more than `u32::MAX` of anything.
pub fn encode(day: i64, visits: &[VisitRow]) -> Result<Vec<u8>, SegmentError> {
    let day_start = day
        .checked_mul(DAY)
        .filter(|_| i32::try_from(day).is_ok())
        .ok_or_else(|| rows_error("day out of range"))?;
    let n_pages: usize = visits.iter().map(|v| v.pages.len()).sum();
    if visits.len() > u32::MAX as usize || n_pages > u32::MAX as usize {
        return Err(rows_error("too many rows"));
    }
    let mut last_page = 0u32;
    for v in visits {
        if v.first_ts < day_start || v.first_ts >= day_start + DAY {
            return Err(rows_error(format!(
                "visit starting at {} is not in day {day}",
                v.first_ts
            )));
        }
        let duration = v.last_ts - v.first_ts;
        if !(0..=i64::from(u32::MAX)).contains(&duration) {
            return Err(rows_error(format!(
                "visit starting at {} lasts {duration} s",
                v.first_ts
            )));
        }
        for p in &v.pages {
            let since = p.first_ts - v.first_ts;
            let off = p.first_ts - day_start;
            if since < 0 || off > i64::from(u32::MAX) {
                return Err(rows_error(format!(
                    "page first hit at {} outside its visit starting at {}",
                    p.first_ts, v.first_ts
                )));
            }
            last_page = last_page.max(off as u32);
        }
    }

    // Visitors numbered by their first visit; visits ordered by visitor, then first hit.
    let mut by_time: Vec<usize> = (0..visits.len()).collect();
    by_time.sort_by_key(|&i| (visits[i].first_ts, i));
    let mut ordinal: HashMap<&str, u32> = HashMap::new();
    for &i in &by_time {
        let next = ordinal.len() as u32;
        ordinal.entry(visits[i].visitor.as_str()).or_insert(next);
    }
    let mut order = by_time;
    order.sort_by_key(|&i| (ordinal[visits[i].visitor.as_str()], visits[i].first_ts, i));

    let dicts: Vec<DictBuilder> = (0..DICTS)
        .map(|d| {
            if d == PATH_DICT {
                DictBuilder::new(visits.iter().flat_map(|v| {
                    [v.entry_path.as_str(), v.exit_path.as_str()]
                        .into_iter()
                        .chain(v.pages.iter().map(|p| p.pathname.as_str()))
                }))
            } else {
                let col = Column::ALL[d];
                DictBuilder::new(visits.iter().map(move |v| col.of(v)))
            }
        })
        .collect();

    let mut body = Vec::with_capacity(visits.len() * 32 + n_pages * 6);
    for d in &dicts {
        d.write(&mut body);
    }
    let ordered = || order.iter().map(|&i| &visits[i]);
    let col = |f: &dyn Fn(&VisitRow) -> u32| -> Vec<u32> { ordered().map(f).collect() };
    put_column(&mut body, &col(&|v| ordinal[v.visitor.as_str()]));
    put_column(&mut body, &col(&|v| (v.first_ts - day_start) as u32));
    put_column(&mut body, &col(&|v| (v.last_ts - v.first_ts) as u32));
    put_column(&mut body, &col(&|v| v.pageviews));
    put_column(&mut body, &col(&|v| v.pages.len() as u32));
    for c in Column::ALL {
        let d = &dicts[c.dict()];
        put_column(&mut body, &col(&|v| d.code(c.of(v))));
    }
    let pages = || ordered().flat_map(|v| v.pages.iter().map(move |p| (v, p)));
    let path = &dicts[PATH_DICT];
    put_column(
        &mut body,
        &pages()
            .map(|(_, p)| path.code(&p.pathname))
            .collect::<Vec<_>>(),
    );
    put_column(
        &mut body,
        &pages()
            .map(|(v, p)| (p.first_ts - v.first_ts) as u32)
            .collect::<Vec<_>>(),
    );
    put_column(&mut body, &pages().map(|(_, p)| p.hits).collect::<Vec<_>>());

    let body_len = u32::try_from(body.len()).map_err(|_| rows_error("segment over 4 GB"))?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0]);
    out.extend_from_slice(&(day as i32).to_le_bytes());
    out.extend_from_slice(&(visits.len() as u32).to_le_bytes());
    out.extend_from_slice(&(ordinal.len() as u32).to_le_bytes());
    out.extend_from_slice(&(n_pages as u32).to_le_bytes());
    out.extend_from_slice(&last_page.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    let sum = checksum(&out, &body);
    out.extend_from_slice(&sum.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&body);
    Ok(out)
}

/// A 32-bit checksum of the header's first 32 bytes and the body: four independent multiply-rotate
/// lanes over the body's 8-byte words (several GB/s natively), then its tail, its length and the
/// header. Catches flipped bits and cut or shifted bytes; not a defence against a forger (R2 objects
/// are written only by the worker).
pub(super) fn checksum(head: &[u8], b: &[u8]) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut lanes: [u64; 4] = [
        0x243F_6A88_85A3_08D3,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    ];
    let chunks = b.chunks_exact(32);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, lane) in lanes.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&c[l * 8..l * 8 + 8]);
            *lane = (*lane ^ u64::from_le_bytes(w))
                .wrapping_mul(K)
                .rotate_left(31);
        }
    }
    let mut h = (b.len() as u64).wrapping_mul(K);
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(K).rotate_left(27);
    }
    for &x in tail.iter().chain(head) {
        h = (h ^ u64::from(x)).wrapping_mul(K).rotate_left(13);
    }
    (h ^ (h >> 32)) as u32
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A column of `len` values of `width` bytes each, read in place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Col<'a> {
    bytes: &'a [u8],
    width: usize,
}

impl Col<'_> {
    /// Value `i` (`i` below the column's length, which decoding checked).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u32 {
        let b = &self.bytes;
        match self.width {
            0 => 0,
            1 => u32::from(b[i]),
            2 => u32::from(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])),
            3 => u32::from_le_bytes([b[3 * i], b[3 * i + 1], b[3 * i + 2], 0]),
            _ => u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]),
        }
    }

    /// Calls `f(i, value)` for the first `len` values in order. The width is matched once, so each
    /// width gets its own tight loop.
    #[inline]
    pub(crate) fn for_each(&self, len: usize, mut f: impl FnMut(usize, u32)) {
        let b = self.bytes;
        match self.width {
            0 => (0..len).for_each(|i| f(i, 0)),
            1 => b.iter().enumerate().for_each(|(i, &x)| f(i, u32::from(x))),
            2 => b
                .chunks_exact(2)
                .enumerate()
                .for_each(|(i, c)| f(i, u32::from(u16::from_le_bytes([c[0], c[1]])))),
            3 => b
                .chunks_exact(3)
                .enumerate()
                .for_each(|(i, c)| f(i, u32::from_le_bytes([c[0], c[1], c[2], 0]))),
            _ => b
                .chunks_exact(4)
                .enumerate()
                .for_each(|(i, c)| f(i, u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        }
    }

    /// The values at the ascending indexes `at` (each below the column's length).
    #[inline]
    pub(crate) fn gather(&self, at: &[u32]) -> Vec<u32> {
        let b = self.bytes;
        match self.width {
            0 => vec![0; at.len()],
            1 => at.iter().map(|&i| u32::from(b[i as usize])).collect(),
            2 => at
                .iter()
                .map(|&i| {
                    let i = 2 * i as usize;
                    u32::from(u16::from_le_bytes([b[i], b[i + 1]]))
                })
                .collect(),
            3 => at
                .iter()
                .map(|&i| {
                    let i = 3 * i as usize;
                    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], 0])
                })
                .collect(),
            _ => at
                .iter()
                .map(|&i| {
                    let i = 4 * i as usize;
                    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
                })
                .collect(),
        }
    }
}

/// A dictionary: sorted distinct strings, read in place.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dict<'a> {
    ends: Col<'a>,
    text: &'a str,
    len: usize,
}

impl<'a> Dict<'a> {
    /// Entries in the dictionary.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entry `code`; `""` for a code past the end (see [`Segment::decode`]).
    pub(crate) fn get(&self, code: usize) -> &'a str {
        if code >= self.len {
            return "";
        }
        let start = if code == 0 {
            0
        } else {
            self.ends.get(code - 1) as usize
        };
        // Checked slicing: offsets not verified again (`decode_again`) give "" rather than a panic.
        self.text
            .get(start..self.ends.get(code) as usize)
            .unwrap_or("")
    }

    /// The code of `s`, if it is an entry.
    pub(crate) fn find(&self, s: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

/// One decoded segment: the columns are views of the bytes it was decoded from.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    pub(crate) day: i64,
    pub(crate) visits: usize,
    pub(crate) visitors: usize,
    pub(crate) pages: usize,
    pub(crate) last_page: u32,
    dicts: [Dict<'a>; DICTS],
    pub(crate) visitor: Col<'a>,
    pub(crate) start: Col<'a>,
    pub(crate) duration: Col<'a>,
    pub(crate) pageviews: Col<'a>,
    codes: [Col<'a>; 11],
    pub(crate) page_path: Col<'a>,
    pub(crate) page_since: Col<'a>,
    pub(crate) page_hits: Col<'a>,
    /// Visit `i`'s pages are `page_at[i]..page_at[i + 1]`.
    pub(crate) page_at: Vec<u32>,
    /// Bytes of the dictionaries, the visit columns and the page columns.
    sections: [usize; 3],
}

pub(super) struct Reader<'a> {
    pub(super) b: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], SegmentError> {
        let end = self.at.checked_add(n).ok_or(SegmentError::Truncated)?;
        let s = self.b.get(self.at..end).ok_or(SegmentError::Truncated)?;
        self.at = end;
        Ok(s)
    }

    pub(super) fn u32(&mut self) -> Result<u32, SegmentError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub(super) fn column(&mut self, len: usize) -> Result<Col<'a>, SegmentError> {
        let width = usize::from(self.take(1)?[0]);
        if width > 4 {
            return Err(SegmentError::Corrupt("column width over 4"));
        }
        let n = len.checked_mul(width).ok_or(SegmentError::Truncated)?;
        Ok(Col {
            bytes: self.take(n)?,
            width,
        })
    }

    /// A dictionary; with `verify` false (bytes that passed with it before and have not changed
    /// since) its offsets and order are not checked again, only its text's UTF-8.
    pub(super) fn dict(&mut self, verify: bool) -> Result<Dict<'a>, SegmentError> {
        let len = self.u32()? as usize;
        // Every entry takes at least one byte of ends unless all are empty: bound the count first.
        if len > self.b.len() + 1 {
            return Err(SegmentError::Corrupt("dictionary count"));
        }
        let ends = self.column(len)?;
        let mut prev = 0;
        if verify {
            for i in 0..len {
                let e = ends.get(i);
                if e < prev {
                    return Err(SegmentError::Corrupt("dictionary offsets"));
                }
                prev = e;
            }
        } else if len > 0 {
            prev = ends.get(len - 1);
        }
        let bytes = self.take(prev as usize)?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| SegmentError::Corrupt("dictionary text"))?;
        let dict = Dict { ends, text, len };
        for i in (0..len).filter(|_| verify) {
            if !text.is_char_boundary(ends.get(i) as usize) {
                return Err(SegmentError::Corrupt("dictionary offsets"));
            }
            if i > 0 && dict.get(i - 1) >= dict.get(i) {
                return Err(SegmentError::Corrupt("dictionary order"));
            }
        }
        Ok(dict)
    }
}

/// The [`HEADER`] bytes of an object of this module's formats, once its magic and format version
/// are the ones given.
pub(crate) fn header(bytes: &[u8], magic: [u8; 4], version: u8) -> Result<&[u8], SegmentError> {
    let header = bytes.get(..HEADER).ok_or(SegmentError::Truncated)?;
    if header[..4] != magic {
        return Err(SegmentError::NotASegment);
    }
    if header[4] != version {
        return Err(SegmentError::Version(header[4]));
    }
    Ok(header)
}

/// The little-endian `u32` at `at` of a [`header`].
pub(crate) fn word(header: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
}

impl<'a> Segment<'a> {
    /// Reads a segment written by [`encode`], checking everything a scan relies on.
    pub fn decode(bytes: &'a [u8]) -> Result<Segment<'a>, SegmentError> {
        Self::read(bytes, true)
    }

    /// [`Segment::decode`] of bytes that passed it before and have not changed since (the worker's
    /// copies of the objects it fetched): the checksum, the visitor order and the dictionaries'
    /// offsets and order, the passes over every byte, visit and entry, are not checked again; the
    /// structure (lengths, the dictionaries' UTF-8, page counts) still is, so other bytes are an error
    /// or a wrong answer, never a panic.
    pub fn decode_again(bytes: &'a [u8]) -> Result<Segment<'a>, SegmentError> {
        Self::read(bytes, false)
    }

    fn read(bytes: &'a [u8], verify: bool) -> Result<Segment<'a>, SegmentError> {
        let header = header(bytes, MAGIC, FORMAT_VERSION)?;
        let word = |at: usize| word(header, at);
        let day = i64::from(word(8) as i32);
        let (visits, visitors, pages) = (word(12) as usize, word(16) as usize, word(20) as usize);
        let last_page = word(24);
        let body_len = word(28) as usize;
        let body = &bytes[HEADER..];
        if body.len() < body_len {
            return Err(SegmentError::Truncated);
        }
        if body.len() > body_len {
            return Err(SegmentError::Corrupt("bytes after the body"));
        }
        if header[5..8] != [0; 3] || header[36..] != [0; 4] {
            return Err(SegmentError::Corrupt("reserved header bytes"));
        }
        if verify && checksum(&header[..32], body) != word(32) {
            return Err(SegmentError::Checksum);
        }
        let mut r = Reader { b: body, at: 0 };
        let mut dicts = Vec::with_capacity(DICTS);
        for _ in 0..DICTS {
            dicts.push(r.dict(verify)?);
        }
        let dicts: [Dict; DICTS] = dicts
            .try_into()
            .map_err(|_| SegmentError::Corrupt("dictionaries"))?;
        let dict_end = r.at;
        let visitor = r.column(visits)?;
        let start = r.column(visits)?;
        let duration = r.column(visits)?;
        let pageviews = r.column(visits)?;
        let page_count = r.column(visits)?;
        let mut codes = Vec::with_capacity(11);
        for c in Column::ALL {
            let _ = c;
            codes.push(r.column(visits)?);
        }
        let codes: [Col; 11] = codes
            .try_into()
            .map_err(|_| SegmentError::Corrupt("columns"))?;
        let visits_end = r.at;
        let page_path = r.column(pages)?;
        let page_since = r.column(pages)?;
        let page_hits = r.column(pages)?;
        if r.at != body.len() {
            return Err(SegmentError::Corrupt("bytes after the columns"));
        }

        // Visitor order (the scan's distinct counts rely on it) and page offsets. Codes are not
        // checked against their dictionaries here (a pass over every column would cost more than
        // most scans): the body is under the checksum, and the scan looks codes up with `get`, so
        // an out-of-range code written by a faulty encoder matches nothing rather than panicking.
        // The header's last page is under the checksum too: a page scan uses it only to skip a
        // segment whose pages all precede its window.
        if verify {
            let mut ordered = true;
            let mut prev = 0;
            visitor.for_each(visits, |_, v| {
                ordered &= v >= prev;
                prev = v;
            });
            if !ordered || (visits > 0 && prev as usize >= visitors) {
                return Err(SegmentError::Corrupt("visitor order"));
            }
        }
        let mut page_at = Vec::with_capacity(visits + 1);
        page_at.push(0u32);
        let mut at = 0u64;
        page_count.for_each(visits, |_, n| {
            at += u64::from(n);
            page_at.push(at.min(u64::from(u32::MAX)) as u32);
        });
        if at != pages as u64 {
            return Err(SegmentError::Corrupt("page counts"));
        }
        Ok(Segment {
            day,
            visits,
            visitors,
            pages,
            last_page,
            dicts,
            visitor,
            start,
            duration,
            pageviews,
            codes,
            page_path,
            page_since,
            page_hits,
            page_at,
            sections: [dict_end, visits_end - dict_end, body.len() - visits_end],
        })
    }

    /// Bytes of its dictionaries, its visit columns and its page columns (the header is 40 more).
    pub fn section_bytes(&self) -> [usize; 3] {
        self.sections
    }

    /// The UTC day (days since 1970-01-01) whose visits this segment holds.
    pub fn day(&self) -> i64 {
        self.day
    }

    /// Visits in the segment.
    pub fn visits(&self) -> usize {
        self.visits
    }

    /// Distinct visitors of the day.
    pub fn visitors(&self) -> usize {
        self.visitors
    }

    /// Page visits in the segment.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The latest first hit of a page of these visits, UTC seconds (may be on a later day): a page
    /// scan of a window needs the segments of every day whose last page is in or after the window.
    pub fn last_page_ts(&self) -> i64 {
        self.day * DAY + i64::from(self.last_page)
    }

    pub(crate) fn codes(&self, c: Column) -> Col<'a> {
        self.codes[c.index()]
    }

    pub(crate) fn dict(&self, c: Column) -> Dict<'a> {
        self.dicts[c.dict()]
    }

    pub(crate) fn path_dict(&self) -> Dict<'a> {
        self.dicts[PATH_DICT]
    }

    /// Dictionary `d` (a column's [`Column::dict`], or [`PATH_DICT`]).
    pub(super) fn dict_at(&self, d: usize) -> Dict<'a> {
        self.dicts[d]
    }

    /// The visits back as rows (visitors named by their ordinal `v{n}`), in the segment's order.
    pub fn rows(&self) -> Vec<VisitRow> {
        let day_start = self.day * DAY;
        let text = |c: Column, i: usize| self.dict(c).get(self.codes(c).get(i) as usize).to_owned();
        (0..self.visits)
            .map(|i| {
                let first_ts = day_start + i64::from(self.start.get(i));
                VisitRow {
                    first_ts,
                    last_ts: first_ts + i64::from(self.duration.get(i)),
                    pageviews: self.pageviews.get(i),
                    domain: text(Column::Domain, i),
                    visitor: format!("v{}", self.visitor.get(i)),
                    entry_path: text(Column::Entry, i),
                    exit_path: text(Column::Exit, i),
                    source: text(Column::Source, i),
                    utm_source: text(Column::UtmSource, i),
                    utm_medium: text(Column::UtmMedium, i),
                    utm_campaign: text(Column::UtmCampaign, i),
                    browser: text(Column::Browser, i),
                    os: text(Column::Os, i),
                    device: text(Column::Device, i),
                    country: text(Column::Country, i),
                    pages: (self.page_at[i] as usize..self.page_at[i + 1] as usize)
                        .map(|j| super::PageRow {
                            pathname: self
                                .path_dict()
                                .get(self.page_path.get(j) as usize)
                                .to_owned(),
                            first_ts: first_ts + i64::from(self.page_since.get(j)),
                            hits: self.page_hits.get(j),
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::{scan, Filter, Group, Op, PageRow, Query, Target};

    fn visit(browser: &str, at: i64) -> VisitRow {
        VisitRow {
            first_ts: at,
            last_ts: at + 5,
            pageviews: 1,
            visitor: format!("v{at}"),
            browser: browser.into(),
            pages: vec![PageRow {
                pathname: "/".into(),
                first_ts: at,
                hits: 1,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_code_past_its_dictionary_under_a_valid_checksum_counts_nowhere_and_never_panics() {
        let day = 20_000;
        let rows = [visit("chrome", day * DAY), visit("safari", day * DAY + 60)];
        let mut bytes = encode(day, &rows).unwrap();
        let seg = Segment::decode(&bytes).unwrap();
        let col = seg.codes(Column::Browser);
        assert_eq!(col.width, 1);
        let at = col.bytes.as_ptr() as usize - bytes.as_ptr() as usize;
        drop(seg);
        bytes[at] = 0xFF; // the first visit's browser: code 255 of a two-entry dictionary
        let sum = checksum(&bytes[..32], &bytes[HEADER..]);
        bytes[32..36].copy_from_slice(&sum.to_le_bytes());
        let seg = Segment::decode(&bytes).unwrap();
        for filters in [
            Vec::new(),
            vec![Filter::Leaf {
                op: Op::IsNot,
                target: Target::Visit(Column::Browser),
                values: vec!["x".into()],
                case_sensitive: false,
            }],
        ] {
            let q = Query {
                window: (day * DAY, (day + 1) * DAY),
                filters,
                group: Group::Visits(vec![Column::Browser]),
            };
            let got = scan(std::slice::from_ref(&seg), &q).unwrap();
            assert_eq!(got.groups.len(), 1);
            assert_eq!(got.groups[&vec!["safari".to_owned()]].visits, 1);
        }
        assert_eq!(seg.rows()[0].browser, "");
    }
}
