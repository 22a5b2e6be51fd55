//! Time zones without a time zone database: the caller supplies UTC offsets, we do civil-date arithmetic.
//!
//! Local dates become UTC instants by asking the zone for its offset at candidate instants and
//! re-checking (DST gaps and overlaps included). Bucketing happens in SQL with an offset table: the few
//! instants where the offset changes inside the queried window are bound as a `CASE` expression.

/// A time zone as the query planner needs it: the UTC offset in force at any instant.
pub trait TimeZone {
    /// UTC offset in seconds at the given UTC instant (east of Greenwich is positive).
    fn offset_secs(&self, utc_secs: i64) -> i32;
}

/// A zone with one constant offset; `FixedOffset(0)` is UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedOffset(pub i32);

impl TimeZone for FixedOffset {
    fn offset_secs(&self, _utc_secs: i64) -> i32 {
        self.0
    }
}

pub(crate) const DAY: i64 = 86_400;

/// A proleptic Gregorian date as days since 1970-01-01.
pub(crate) type Days = i64;

/// Days since the epoch for a civil date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> Days {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day number.
pub(crate) fn civil_from_days(z: Days) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parses a strict `YYYY-MM-DD` calendar date.
pub(crate) fn parse_date(s: &str) -> Option<Days> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(i64::from(y), m) {
        return None;
    }
    Some(days_from_civil(i64::from(y), m, d))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD`.
pub(crate) fn format_date(day: Days) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD hh:mm:ss` of a (local or UTC) seconds count.
pub(crate) fn format_datetime(secs: i64) -> String {
    let day = secs.div_euclid(DAY);
    let s = secs.rem_euclid(DAY);
    format!(
        "{} {:02}:{:02}:{:02}",
        format_date(day),
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Local wall-clock seconds (as if the local time were UTC) of a UTC instant.
pub(crate) fn to_local(tz: &dyn TimeZone, utc: i64) -> i64 {
    utc + i64::from(tz.offset_secs(utc))
}

/// The first UTC instant whose local time is `local` (or, when `local` falls in a DST gap, the instant
/// the gap ends). In an overlap the earlier of the two instants is returned.
pub(crate) fn to_utc(tz: &dyn TimeZone, local: i64) -> i64 {
    // Offsets in force around `local`: any valid instant for it uses one of these.
    let mut offsets: Vec<i64> = Vec::with_capacity(6);
    for probe in [local - DAY, local, local + DAY] {
        let o = i64::from(tz.offset_secs(probe));
        offsets.push(o);
        offsets.push(i64::from(tz.offset_secs(local - o)));
    }
    let valid = offsets
        .iter()
        .map(|o| local - o)
        .filter(|&t| to_local(tz, t) == local)
        .min();
    if let Some(t) = valid {
        return t;
    }
    // A gap: local time jumps past `local`. Find the first instant whose local time is at or after it;
    // local time is increasing within the bracket because it holds only the forward transition.
    let (mut lo, mut hi) = (
        local - offsets.iter().max().unwrap_or(&0),
        local - offsets.iter().min().unwrap_or(&0),
    );
    if to_local(tz, hi) < local {
        return hi;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if to_local(tz, mid) >= local {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// The UTC instant at which local date `day` begins, floored to the UTC hour. Every window is whole
/// UTC hours (the rollups' grain): in zones whose offset is a whole number of hours this is the exact
/// local midnight; in others (Asia/Kolkata +5:30, Asia/Kathmandu +5:45) a local day runs from the start
/// of the UTC hour holding its local midnight (Kolkata: 18:00 to 18:00 UTC instead of 18:30 to 18:30).
pub(crate) fn day_start(tz: &dyn TimeZone, day: Days) -> i64 {
    let t = to_utc(tz, day * DAY);
    t - t.rem_euclid(3600)
}

/// The local hour label of UTC hour `utc_hour` under the same rule: the local time of its start,
/// rounded up to a whole hour (the UTC hour holding local `H:00` is labelled `H:00`).
pub(crate) fn hour_label(tz: &dyn TimeZone, utc_hour: i64) -> i64 {
    let l = to_local(tz, utc_hour);
    l + (3600 - l.rem_euclid(3600)) % 3600
}

/// The local date of a UTC instant.
pub(crate) fn local_day(tz: &dyn TimeZone, utc: i64) -> Days {
    to_local(tz, utc).div_euclid(DAY)
}

/// Constant-offset pieces of a UTC window: `(until, offset)` pairs, the last one open-ended
/// (`until == i64::MAX`). Samples the offset at each `sample` instant (sorted, spanning the window)
/// and assumes at most one change between two samples, which holds for daily samples in real zones.
pub(crate) fn offset_segments(tz: &dyn TimeZone, samples: &[i64]) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    let Some(&first) = samples.first() else {
        return vec![(i64::MAX, 0)];
    };
    let mut current = tz.offset_secs(first);
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if tz.offset_secs(b) == current {
            continue;
        }
        // First instant in (a, b] whose offset differs from `current`.
        let (mut lo, mut hi) = (a + 1, b);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if tz.offset_secs(mid) != current {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        out.push((lo, current));
        current = tz.offset_secs(lo);
        // A second change before `b` (not in real zones at daily sampling) ends up at `b`'s offset.
        if tz.offset_secs(b) != current {
            out.push((b, current));
            current = tz.offset_secs(b);
        }
    }
    out.push((i64::MAX, current));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A European-style zone: +1h, +2h from 2025-03-30 01:00 UTC to 2025-10-26 01:00 UTC.
    pub(crate) struct TestDst;
    pub(crate) const SPRING: i64 = 1_743_296_400; // 2025-03-30T01:00:00Z
    pub(crate) const AUTUMN: i64 = 1_761_440_400; // 2025-10-26T01:00:00Z

    impl TimeZone for TestDst {
        fn offset_secs(&self, utc: i64) -> i32 {
            if (SPRING..AUTUMN).contains(&utc) {
                7200
            } else {
                3600
            }
        }
    }

    /// A zone whose DST change happens at local midnight (as Santiago's did): 00:00 does not exist.
    struct MidnightGap;
    const GAP: i64 = 1_743_901_200; // 2025-04-06T01:00:00Z: local time jumps from 00:00 to 01:00

    impl TimeZone for MidnightGap {
        fn offset_secs(&self, utc: i64) -> i32 {
            if utc >= GAP {
                0
            } else {
                -3600
            }
        }
    }

    #[test]
    fn civil_round_trip() {
        for day in [-1000, 0, 1, 59, 365, 10_957, 20_000, 20_177] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(parse_date("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        assert_eq!(format_datetime(1_743_296_400), "2025-03-30 01:00:00");
    }

    #[test]
    fn dates_are_strict() {
        for bad in [
            "2025-02-29",
            "2025-13-01",
            "2025-1-01",
            "25-01-01",
            "2025-01-00",
            "2025/01/01",
            "2025-01-01x",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_midnights_across_dst() {
        let tz = TestDst;
        let day = |s| parse_date(s).unwrap();
        // Winter: +1h, so local midnight is 23:00 UTC the day before.
        assert_eq!(
            format_datetime(day_start(&tz, day("2025-03-29"))),
            "2025-03-28 23:00:00"
        );
        assert_eq!(
            format_datetime(day_start(&tz, day("2025-03-30"))),
            "2025-03-29 23:00:00"
        );
        // Summer: +2h.
        assert_eq!(
            format_datetime(day_start(&tz, day("2025-03-31"))),
            "2025-03-30 22:00:00"
        );
        // The spring day is 23 hours long, the autumn day 25.
        assert_eq!(
            day_start(&tz, day("2025-03-31")) - day_start(&tz, day("2025-03-30")),
            23 * 3600
        );
        assert_eq!(
            day_start(&tz, day("2025-10-27")) - day_start(&tz, day("2025-10-26")),
            25 * 3600
        );
        // In the autumn overlap (02:30 local happens twice) the earlier instant wins.
        let local = day("2025-10-26") * DAY + 2 * 3600 + 1800;
        assert_eq!(format_datetime(to_utc(&tz, local)), "2025-10-26 00:30:00");
        // In the spring gap (02:30 local does not exist) the gap's end is returned.
        let local = day("2025-03-30") * DAY + 2 * 3600 + 1800;
        assert_eq!(to_utc(&tz, local), SPRING);
        assert_eq!(local_day(&tz, SPRING - 1), day("2025-03-30"));
    }

    #[test]
    fn a_day_starting_in_a_gap_starts_when_the_gap_ends() {
        let tz = MidnightGap;
        let day = parse_date("2025-04-06").unwrap();
        assert_eq!(
            format_datetime(to_local(&tz, GAP - 1)),
            "2025-04-05 23:59:59"
        );
        assert_eq!(day_start(&tz, day), GAP);
        assert_eq!(
            format_datetime(day_start(&tz, day - 1)),
            "2025-04-05 01:00:00"
        );
    }

    #[test]
    fn segments_find_each_change() {
        let tz = TestDst;
        let from = parse_date("2025-03-20").unwrap();
        let samples: Vec<i64> = (0..=20).map(|d| day_start(&tz, from + d)).collect();
        assert_eq!(
            offset_segments(&tz, &samples),
            vec![(SPRING, 3600), (i64::MAX, 7200)]
        );
        let samples: Vec<i64> = (0..=3)
            .map(|d| day_start(&FixedOffset(19_800), from + d))
            .collect();
        assert_eq!(
            offset_segments(&FixedOffset(19_800), &samples),
            vec![(i64::MAX, 19_800)]
        );
    }

    #[test]
    fn half_and_quarter_hour_zones_use_whole_utc_hours() {
        let day = parse_date("2026-11-23").unwrap();
        // Asia/Kolkata +5:30: local midnight is 18:30 UTC; the day runs from 18:00 UTC.
        let kolkata = FixedOffset(19_800);
        assert_eq!(
            format_datetime(day_start(&kolkata, day)),
            "2026-11-22 18:00:00"
        );
        // Asia/Kathmandu +5:45: local midnight is 18:15 UTC; the day runs from 18:00 UTC.
        let kathmandu = FixedOffset(20_700);
        assert_eq!(
            format_datetime(day_start(&kathmandu, day)),
            "2026-11-22 18:00:00"
        );
        // The UTC hour 04:00-05:00 holds Kolkata's 10:00 (04:30 UTC): it is labelled 10:00.
        let h = day * DAY + 4 * 3600;
        assert_eq!(
            format_datetime(hour_label(&kolkata, h)),
            "2026-11-23 10:00:00"
        );
        assert_eq!(
            format_datetime(hour_label(&kathmandu, h)),
            "2026-11-23 10:00:00"
        );
        // Whole-hour zones are unchanged: exact midnights and labels.
        let madrid = FixedOffset(3600);
        assert_eq!(
            format_datetime(day_start(&madrid, day)),
            "2026-11-22 23:00:00"
        );
        assert_eq!(
            format_datetime(hour_label(&madrid, h)),
            "2026-11-23 05:00:00"
        );
    }
}
