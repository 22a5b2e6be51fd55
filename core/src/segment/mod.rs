//! Visit segments: a compact columnar copy of one tenant's visits of one UTC day, and a scan over
//! segments that answers the visit-level questions (any filter tree, one grouping) exactly.
//! Not to be confused with saved segments ([`crate::segments`], named filter lists).
//!
//! Why: the visit-level tables (`sessions`, `page_visits`) serve every query the rollups cannot
//! (filters combined, a top list filtered on another dimension) and they are most of D1's bytes per
//! event. A segment holds the same facts in a few tens of bytes per visit and is scanned in Rust with
//! dictionary codes, never a string per visit (docs/rollups.md, "Visit segments").
//!
//! - [`mod@block`]: the format. [`encode`] one (tenant, UTC day) of visits, [`Segment::decode`] (cheap:
//!   the columns are read in place; only the page offsets are built). Hand-written rather than a
//!   columnar crate (Arrow, Parquet): those are megabytes of wasm for the worker's ~3.4 MB, and the
//!   scan needs only fixed-width code columns, sorted dictionaries and a page list per visit.
//! - [`mod@scan`]: a [`Query`] (a window, AND-ed [`Filter`]s, a [`Group`]) evaluated over segments into a
//!   [`Partial`] of per-group [`Sums`] that add up across segments (and with SQL rows of other days).
//!
//! A segment holds no identifier: visitors are dense per-day ordinals (visitor ids rotate daily, so
//! distinct within the day is all a count of unique visitors needs), visits have no session key.
//! What it holds per visit is what `sessions` holds (times, pageviews, domain, entry and exit page,
//! source, UTM, browser, OS, device, country) and its page visits (path, first hit, hits).

pub mod block;
pub mod cells;
pub mod scan;
pub mod seal;

pub use block::{encode, Column, Segment, SegmentError, FORMAT_VERSION};
pub use cells::Cells;
pub use scan::{scan, Filter, Group, Op, Partial, PathFilter, Query, Sums, Target};

/// One visit as the visit-level tables hold it (`sessions` and its `page_visits` rows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitRow {
    /// First hit, UTC seconds: the visit belongs to the segment of this UTC day.
    pub first_ts: i64,
    /// Last hit, UTC seconds (`duration = last_ts - first_ts`).
    pub last_ts: i64,
    /// Page hits of the visit (a bounce is a visit with exactly one).
    pub pageviews: u32,
    /// The visit's hostname.
    pub domain: String,
    /// The visitor id of the day: only used to number the day's visitors, never stored.
    pub visitor: String,
    /// Entry page.
    pub entry_path: String,
    /// Exit page.
    pub exit_path: String,
    /// First hit's source (`''`: direct).
    pub source: String,
    /// UTM source.
    pub utm_source: String,
    /// UTM medium.
    pub utm_medium: String,
    /// UTM campaign.
    pub utm_campaign: String,
    /// Browser.
    pub browser: String,
    /// Operating system.
    pub os: String,
    /// Device class.
    pub device: String,
    /// Country code.
    pub country: String,
    /// Every page of the visit, including pages first hit after midnight.
    pub pages: Vec<PageRow>,
}

/// One page of a visit (a `page_visits` row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRow {
    /// Path.
    pub pathname: String,
    /// First hit on this page in the visit, UTC seconds (not before the visit's first hit).
    pub first_ts: i64,
    /// Hits on this page in the visit.
    pub hits: u32,
}
