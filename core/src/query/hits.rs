//! `analytics_hits` (the kit's): the parsed page hits themselves, newest first, read from the R2
//! archive (`events/{tenant}/{YYYY-MM-DD}/{HH}/{object}.ndjson`, one object per delivery, tenant and
//! UTC hour; see `crate::archive`).
//!
//! The plan holds no SQL: it is a [`HitsScan`], which the worker runs hour folder by hour folder,
//! newest first, feeding each folder's objects to a [`Collector`] until the page is full. Every key
//! the scan names starts with `events/{tenant}/` for the verified tenant, so another tenant's objects
//! are never listed.
//!
//! Bounds: `limit` 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]), `page` such that
//! `(page + 1) × limit` ≤ [`MAX_DEPTH`], a range of at most [`MAX_RANGE_DAYS`] local days (default:
//! today), and at most [`MAX_OBJECTS`] archive objects read per request; a scan that reaches that
//! bound before the page is full returns what it found and says so ([`Collector::truncated`]).
//!
//! Columns as the kit's: `timestamp` (local to `timezone`), `action`, `version`, `session_id`
//! (`'0'` when none), `tenant_id`, `domain`, `location` (country), `referrer` (the payload's, else the
//! referring host), `pathname`, `href`, `current_domain` (the host of `href` without `www.`), `device`
//! (`bot`, `mobile-android`, `mobile-ios`, `desktop`) and `browser` (`firefox`, `chrome`, `opera`,
//! `ie`, `safari`, `Unknown`), mapped from the enriched event. No IP or user agent: the archive holds
//! neither. `like_filter` is matched against the stored payload with SQL `LIKE` rules (`%`, `_`, `\`
//! escapes; case-sensitive, as ClickHouse).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::params::Params;
use super::pipes::{Planned, Shape};
use super::timezone::{day_start, format_date, format_datetime, local_day, parse_date, to_local};
use super::timezone::{Days, TimeZone, DAY};
use super::{Column, Output, QueryError, Request};
use crate::archive::Reader;
use crate::event::EnrichedEvent;

/// Rows per page when `limit` is absent (the kit's default).
pub const DEFAULT_LIMIT: i64 = 20;
/// Largest `limit`.
pub const MAX_LIMIT: i64 = 100;
/// The deepest row a request may reach: `(page + 1) × limit` at most.
pub const MAX_DEPTH: i64 = 1000;
/// Longest range, in local days.
pub const MAX_RANGE_DAYS: i64 = 7;
/// Archive objects read per request at most.
pub const MAX_OBJECTS: usize = 200;

const HOUR: i64 = 3600;

/// One `analytics_hits` request, resolved: which archive folders to read and which rows to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitsScan {
    tenant: String,
    /// UTC window `[start, end)`, whole hours.
    start: i64,
    end: i64,
    domain: Option<String>,
    like: Option<String>,
    offset: usize,
    limit: usize,
}

/// Plans `analytics_hits`: parameters only; the rows come from the archive.
pub(crate) fn plan(
    req: &Request,
    p: &Params,
    tenant: &crate::claims::TenantId,
    key: &mut BTreeMap<String, String>,
) -> Result<Planned, QueryError> {
    let today = local_day(req.tz, req.now_secs);
    let date = |names: &[&str]| -> Result<Option<Days>, QueryError> {
        match p.get_any(names) {
            None => Ok(None),
            Some(raw) => parse_date(raw).map(Some).ok_or_else(|| {
                QueryError::invalid(names[0], "must be a date as YYYY-MM-DD, e.g. 2025-08-13")
            }),
        }
    };
    let to = date(&["to_date", "date_to"])?.unwrap_or(today);
    let from = date(&["from_date", "date_from"])?.unwrap_or(to);
    if from > to {
        return Err(QueryError::invalid(
            "from_date",
            format!(
                "must not be after to_date ({} > {})",
                format_date(from),
                format_date(to)
            ),
        ));
    }
    if to - from + 1 > MAX_RANGE_DAYS {
        return Err(QueryError::invalid(
            "to_date",
            format!("the range may span at most {MAX_RANGE_DAYS} days; narrow from_date..to_date"),
        ));
    }
    let limit = p.int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let page = p.int("page", 0, 0, MAX_DEPTH)?;
    if (page + 1) * limit > MAX_DEPTH {
        return Err(QueryError::invalid(
            "page",
            format!(
                "(page + 1) × limit may be at most {MAX_DEPTH}; narrow the dates or like_filter"
            ),
        ));
    }
    let domain = p.text(&["domain"])?.map(str::to_owned);
    let like = p.text(&["like_filter"])?.map(str::to_owned);
    key.insert("from_date".into(), format_date(from));
    key.insert("to_date".into(), format_date(to));
    key.insert("limit".into(), limit.to_string());
    key.insert("page".into(), page.to_string());
    if let Some(d) = &domain {
        key.insert("domain".into(), d.clone());
    }
    if let Some(l) = &like {
        key.insert("like_filter".into(), l.clone());
    }
    // The archive changes as hits arrive: the minute is part of the key (the worker caches briefly).
    key.insert(
        "minute".into(),
        (req.now_secs - req.now_secs.rem_euclid(60)).to_string(),
    );
    let scan = HitsScan {
        tenant: tenant.as_str().to_owned(),
        start: day_start(req.tz, from),
        end: day_start(req.tz, to + 1),
        domain,
        like,
        // Both bounded by MAX_DEPTH above.
        offset: (page * limit) as usize,
        limit: limit as usize,
    };
    Ok((Vec::new(), Shape::Hits(scan)))
}

impl HitsScan {
    /// The tenant's archive prefix: every key this scan reads starts with it.
    pub fn tenant_prefix(&self) -> String {
        format!("events/{}/", self.tenant)
    }

    /// The UTC day folders that may hold hits of the window, newest first
    /// (`events/{tenant}/{YYYY-MM-DD}/`).
    pub fn day_prefixes(&self) -> Vec<String> {
        let first = self.start.div_euclid(DAY);
        let last = (self.end - 1).div_euclid(DAY);
        (first..=last)
            .rev()
            .map(|d| format!("{}{}/", self.tenant_prefix(), format_date(d)))
            .collect()
    }

    /// The UTC hour an hour folder (`events/{tenant}/{YYYY-MM-DD}/{HH}/`) stands for, when it is this
    /// tenant's and inside the window; `None` otherwise (the worker skips it).
    pub fn folder_hour(&self, folder: &str) -> Option<i64> {
        let rest = folder.strip_prefix(&self.tenant_prefix())?;
        let mut parts = rest.trim_end_matches('/').split('/');
        let (day, hour) = (parts.next()?, parts.next()?);
        if parts.next().is_some() || hour.len() != 2 {
            return None;
        }
        let hour: i64 = hour.parse().ok().filter(|h| (0..24).contains(h))?;
        let t = parse_date(day)? * DAY + hour * HOUR;
        (self.start <= t && t < self.end).then_some(t)
    }

    /// Hour folders (as listed) of the window, newest first, with their hours.
    pub fn newest_first<'a>(&self, folders: &'a [String]) -> Vec<(i64, &'a str)> {
        let mut out: Vec<(i64, &str)> = folders
            .iter()
            .filter_map(|f| Some((self.folder_hour(f)?, f.as_str())))
            .collect();
        out.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
        out
    }

    /// A collector for this scan's rows.
    pub fn collector(&self) -> Collector<'_> {
        Collector {
            scan: self,
            skipped: 0,
            rows: Vec::new(),
            objects: 0,
            bad_lines: 0,
            truncated: false,
        }
    }

    fn keeps(&self, e: &EnrichedEvent) -> bool {
        let ts = e.ts_secs();
        e.tenant_id == self.tenant
            && e.is_page_hit()
            && self.start <= ts
            && ts < self.end
            && self.domain.as_ref().is_none_or(|d| *d == e.domain)
            && self.like.as_ref().is_none_or(|l| like(&e.payload, l))
    }
}

/// Gathers one page of hits from hour folders given newest first.
#[derive(Debug)]
pub struct Collector<'a> {
    scan: &'a HitsScan,
    skipped: usize,
    rows: Vec<EnrichedEvent>,
    objects: usize,
    bad_lines: usize,
    truncated: bool,
}

impl Collector<'_> {
    /// Whether the page is full: the worker reads no further folder.
    pub fn is_full(&self) -> bool {
        self.rows.len() >= self.scan.limit
    }

    /// How many more objects this request may read (of `MAX_OBJECTS`).
    pub fn objects_left(&self) -> usize {
        MAX_OBJECTS.saturating_sub(self.objects)
    }

    /// Records that the next folder would pass `MAX_OBJECTS`: the page stays as it is.
    pub fn stop_at_budget(&mut self) {
        self.truncated = true;
    }

    /// Whether the scan stopped at `MAX_OBJECTS` before the page was full.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Lines of the objects read that did not parse (logged by the worker).
    pub fn bad_lines(&self) -> usize {
        self.bad_lines
    }

    /// Adds the objects of one hour folder, given in key order (each batch's rows are kept once, from
    /// the first object holding them); the folder's hits are taken newest first. Returns
    /// [`Collector::is_full`].
    pub fn add_folder(&mut self, objects: &[String]) -> bool {
        let mut reader = Reader::new();
        let mut events = Vec::new();
        for text in objects {
            let (mut read, bad) = reader.read_object(text);
            self.bad_lines += bad;
            events.append(&mut read);
        }
        self.objects += objects.len();
        events.retain(|e| self.scan.keeps(e));
        // Stable: ties keep the order of the keys and of the lines.
        events.sort_by_key(|e| std::cmp::Reverse(e.ts));
        for e in events {
            if self.is_full() {
                break;
            }
            if self.skipped < self.scan.offset {
                self.skipped += 1;
            } else {
                self.rows.push(e);
            }
        }
        self.is_full()
    }

    /// The response: the kit's columns, timestamps local to `tz`.
    pub fn finish(self, tz: &dyn TimeZone) -> Output {
        let rows_read = (self.skipped + self.rows.len()) as u64;
        let data = self.rows.iter().map(|e| row(e, tz)).collect();
        Output {
            meta: COLUMNS
                .iter()
                .map(|(name, ty)| Column {
                    name: (*name).into(),
                    r#type: (*ty).into(),
                })
                .collect(),
            data,
            rows_read,
        }
    }
}

/// The kit's `analytics_hits` columns, in order.
const COLUMNS: [(&str, &str); 13] = [
    ("timestamp", "DateTime"),
    ("action", "String"),
    ("version", "String"),
    ("session_id", "String"),
    ("tenant_id", "String"),
    ("domain", "String"),
    ("location", "String"),
    ("referrer", "String"),
    ("pathname", "String"),
    ("href", "String"),
    ("current_domain", "String"),
    ("device", "String"),
    ("browser", "String"),
];

fn row(e: &EnrichedEvent, tz: &dyn TimeZone) -> Map<String, Value> {
    let payload: Map<String, Value> = serde_json::from_str(&e.payload).unwrap_or_default();
    let referrer = payload
        .get("referrer")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map_or_else(|| e.source.clone(), str::to_owned);
    let values: [String; 13] = [
        format_datetime(to_local(tz, e.ts_secs())),
        e.action.clone(),
        // The archive does not keep the envelope's version; flock.js and Starling's tracker send "1".
        "1".into(),
        e.session_id.clone().unwrap_or_else(|| "0".into()),
        e.tenant_id.clone(),
        e.domain.clone(),
        e.country.clone(),
        referrer,
        e.pathname.clone(),
        e.href.clone(),
        current_domain(&e.href),
        kit_device(e).into(),
        kit_browser(&e.browser).into(),
    ];
    COLUMNS
        .iter()
        .zip(values)
        .map(|((name, _), v)| ((*name).to_owned(), Value::String(v)))
        .collect()
}

/// The kit's `current_domain`: the host of `href`, lower case, without a port or a leading `www.`.
pub fn current_domain(href: &str) -> String {
    let rest = href.split_once("://").map_or(href, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    host.strip_prefix("www.").map(str::to_owned).unwrap_or(host)
}

/// The kit's device classes from the enriched event: bots first, then the OS of phones and tablets.
pub fn kit_device(e: &EnrichedEvent) -> &'static str {
    if e.is_bot || e.device == "bot" {
        "bot"
    } else if e.os == "android" {
        "mobile-android"
    } else if e.os == "ios" {
        "mobile-ios"
    } else {
        "desktop"
    }
}

/// The kit's browser classes: its user-agent rules put every Chromium browser (Edge, Opera, Samsung)
/// under `chrome`, since their user agents contain `Chrome`.
pub fn kit_browser(browser: &str) -> &'static str {
    match browser {
        "firefox" => "firefox",
        "chrome" | "chromium" | "edge" | "opera" | "samsung" | "yandex" | "vivaldi" | "brave" => {
            "chrome"
        }
        "ie" => "ie",
        "safari" => "safari",
        _ => "Unknown",
    }
}

/// SQL `LIKE`: `%` any run of characters, `_` one character, `\` makes the next one literal;
/// case-sensitive. Linear in `text` per pattern segment (greedy `%` with one backtrack point).
pub fn like(text: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '%' => Tok::Any,
            '_' => Tok::One,
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                t += 1;
                p += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_follows_sql_rules() {
        let cases = [
            ("{\"pathname\":\"/pricing\"}", "%/pricing%", true),
            ("{\"pathname\":\"/pricing\"}", "%/Pricing%", false),
            ("abc", "a_c", true),
            ("abc", "a_", false),
            ("abc", "%", true),
            ("", "%", true),
            ("", "_", false),
            ("50%_off", "50\\%\\_off", true),
            ("50x_off", "50\\%\\_off", false),
            ("aXbXc", "a%b%c", true),
            ("aXbXd", "a%b%c", false),
            ("mississippi", "%iss%ppi", true),
            ("abc", "abc", true),
            ("abcd", "abc", false),
            ("día", "d_a", true),
        ];
        for (text, pattern, want) in cases {
            assert_eq!(like(text, pattern), want, "{text} LIKE {pattern}");
        }
    }

    #[test]
    fn kit_classes_from_the_enriched_event() {
        let e = |device: &str, os: &str, bot: bool| EnrichedEvent {
            device: device.into(),
            os: os.into(),
            is_bot: bot,
            ..Default::default()
        };
        assert_eq!(kit_device(&e("mobile", "android", false)), "mobile-android");
        assert_eq!(kit_device(&e("tablet", "ios", false)), "mobile-ios");
        assert_eq!(kit_device(&e("desktop", "macos", false)), "desktop");
        assert_eq!(kit_device(&e("desktop", "android", true)), "bot");
        assert_eq!(kit_browser("edge"), "chrome");
        assert_eq!(kit_browser("unknown"), "Unknown");
        assert_eq!(
            current_domain("https://WWW.Example.com:8080/a?b#c"),
            "example.com"
        );
        assert_eq!(current_domain("http://user@shop.example/x"), "shop.example");
        assert_eq!(current_domain(""), "");
    }
}
