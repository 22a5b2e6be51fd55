//! `include.comparisons` of `POST /v0/query`: which local dates the comparison period covers.
//!
//! Modes: `previous_period` (the same number of days right before), `year_over_year` (the same local
//! dates a year earlier; 29 February becomes 28 February) and `custom` (`date_range`, validated like the
//! main one). `match_day_of_week: true` shifts a previous-period or year-over-year comparison so it
//! starts on the weekday the main period starts on, as Plausible does (below); a custom range is taken
//! as given.

use serde_json::{json, Map, Value};

use super::super::timezone::{civil_from_days, days_from_civil, format_date, Days};
use super::super::QueryError;

/// The resolved comparison: its local dates, and the request as echoed in `query.include`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Comparison {
    /// First local date.
    pub(crate) from: Days,
    /// Last local date (inclusive).
    pub(crate) to: Days,
    /// `{mode, date_range?, match_day_of_week?}` as requested.
    pub(crate) echo: Value,
}

fn bad(field: &str, reason: impl Into<String>) -> QueryError {
    QueryError::invalid(field, reason)
}

/// The same local date one year earlier (29 February becomes 28 February).
pub(crate) fn year_before(d: Days) -> Days {
    let (y, m, day) = civil_from_days(d);
    days_from_civil(y - 1, m, if m == 2 && day == 29 { 28 } else { day })
}

/// ISO weekday, Monday = 1 … Sunday = 7 (1970-01-01 was a Thursday).
pub(crate) fn weekday(d: Days) -> i64 {
    (d + 3).rem_euclid(7) + 1
}

/// Plausible's `match_day_of_week` (plausible/analytics `lib/plausible/stats/comparisons.ex`,
/// `maybe_match_day_of_week` and `shift_to_nearest`): when the comparison does not start on the main
/// period's first weekday, its start moves to the *next* date with that weekday, unless that date is the
/// main period's first day itself, then to the previous one (Plausible sorts both candidates by the
/// signed difference `Date.diff(date, candidate)`, so the later one comes first, then rejects the main
/// start). The end moves by the same number of days. Year over year this is always 364 days (52 weeks)
/// before the main period.
pub(crate) fn match_day_of_week(main_from: Days, from: Days, to: Days) -> (Days, Days) {
    let want = weekday(main_from);
    if weekday(from) == want {
        return (from, to);
    }
    let next = from + (want - weekday(from)).rem_euclid(7);
    let start = if next == main_from { next - 7 } else { next };
    (start, to + (start - from))
}

/// Parses `include.comparisons` for the main period `from..=to`; `range` parses a `date_range` value
/// (as the main one is parsed) with the field name to report.
pub(crate) fn parse(
    value: &Value,
    from: Days,
    to: Days,
    range: impl Fn(&Value, &str) -> Result<(Days, Days), QueryError>,
) -> Result<Comparison, QueryError> {
    const FIELD: &str = "include.comparisons";
    let obj: &Map<String, Value> = value.as_object().ok_or_else(|| {
        bad(
            FIELD,
            "must be an object such as {\"mode\": \"previous_period\"}",
        )
    })?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["mode", "date_range", "match_day_of_week"].contains(&k.as_str()))
    {
        return Err(bad(
            &format!("{FIELD}.{}", k.chars().take(60).collect::<String>()),
            "is not supported; use mode, date_range, match_day_of_week",
        ));
    }
    let match_dow = match obj.get("match_day_of_week") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(bad(
                &format!("{FIELD}.match_day_of_week"),
                "must be true or false",
            ))
        }
    };
    let mode = obj.get("mode").and_then(Value::as_str).unwrap_or_default();
    let date_range = obj.get("date_range").filter(|v| !v.is_null());
    let (cf, ct) = match mode {
        "previous_period" | "year_over_year" => {
            if date_range.is_some() {
                return Err(bad(
                    &format!("{FIELD}.date_range"),
                    "is only taken with mode \"custom\"",
                ));
            }
            let (f, t) = if mode == "previous_period" {
                let n = to - from + 1;
                (from - n, from - 1)
            } else {
                (year_before(from), year_before(to))
            };
            if match_dow {
                match_day_of_week(from, f, t)
            } else {
                (f, t)
            }
        }
        "custom" => {
            let v = date_range.ok_or_else(|| {
                bad(
                    &format!("{FIELD}.date_range"),
                    "is required with mode \"custom\": [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]",
                )
            })?;
            range(v, &format!("{FIELD}.date_range"))?
        }
        _ => {
            return Err(bad(
                &format!("{FIELD}.mode"),
                "must be previous_period, year_over_year or custom",
            ))
        }
    };
    let mut echo = json!({ "mode": mode });
    if mode == "custom" {
        echo["date_range"] = json!([format_date(cf), format_date(ct)]);
    }
    if match_dow {
        echo["match_day_of_week"] = true.into();
    }
    Ok(Comparison {
        from: cf,
        to: ct,
        echo,
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::timezone::parse_date;
    use super::*;

    fn d(s: &str) -> Days {
        parse_date(s).unwrap()
    }

    fn no_range(_: &Value, f: &str) -> Result<(Days, Days), QueryError> {
        Err(bad(f, "unused"))
    }

    fn pair(v: &Value, f: &str) -> Result<(Days, Days), QueryError> {
        let a = v.as_array().ok_or_else(|| bad(f, "pair"))?;
        let p = |i: usize| {
            a[i].as_str()
                .and_then(parse_date)
                .ok_or_else(|| bad(&format!("{f}[{i}]"), "date"))
        };
        Ok((p(0)?, p(1)?))
    }

    fn cmp(body: Value, from: &str, to: &str) -> (String, String) {
        let c = parse(&body, d(from), d(to), pair).unwrap();
        (format_date(c.from), format_date(c.to))
    }

    #[test]
    fn weekdays_are_iso() {
        assert_eq!(weekday(d("2025-03-31")), 1, "a Monday");
        assert_eq!(weekday(d("2023-01-01")), 7, "a Sunday");
    }

    #[test]
    fn plausibles_documented_example_year_over_year() {
        // The module doc's example: Sunday 2023-01-01 compares with Sunday 2022-01-02.
        assert_eq!(
            cmp(
                json!({"mode": "year_over_year", "match_day_of_week": true}),
                "2023-01-01",
                "2023-01-31"
            ),
            ("2022-01-02".into(), "2022-02-01".into())
        );
    }

    #[test]
    fn year_over_year_matched_is_52_weeks_back_also_across_leap_days() {
        for from in [
            "2024-02-29",
            "2024-03-01",
            "2025-03-30",
            "2023-12-31",
            "2025-01-01",
        ] {
            let c = parse(
                &json!({"mode": "year_over_year", "match_day_of_week": true}),
                d(from),
                d(from) + 6,
                no_range,
            )
            .unwrap();
            assert_eq!(c.from, d(from) - 364, "{from}");
            assert_eq!(c.to, d(from) + 6 - 364, "{from}");
        }
    }

    #[test]
    fn previous_period_matched_moves_to_the_next_same_weekday_unless_that_is_the_main_start() {
        // Plausible's tests: a 28-day February (Wed 2023-02-01) compares with Wed 2023-01-04..31.
        assert_eq!(
            cmp(
                json!({"mode": "previous_period", "match_day_of_week": true}),
                "2023-02-01",
                "2023-02-28"
            ),
            ("2023-01-04".into(), "2023-01-31".into())
        );
        // 30 days from Monday 2025-03-31: the plain previous period starts Saturday 03-01; the next
        // Monday is 03-03, and the end moves two days into the main period, as in Plausible.
        assert_eq!(
            cmp(
                json!({"mode": "previous_period", "match_day_of_week": true}),
                "2025-03-31",
                "2025-04-29"
            ),
            ("2025-03-03".into(), "2025-04-01".into())
        );
        // Three days Mon..Wed: the next Monday is the main start, so the week before.
        assert_eq!(
            cmp(
                json!({"mode": "previous_period", "match_day_of_week": true}),
                "2025-03-31",
                "2025-04-02"
            ),
            ("2025-03-24".into(), "2025-03-26".into())
        );
        // Seven days: already the same weekday.
        assert_eq!(
            cmp(
                json!({"mode": "previous_period", "match_day_of_week": true}),
                "2025-03-31",
                "2025-04-06"
            ),
            ("2025-03-24".into(), "2025-03-30".into())
        );
        assert_eq!(
            cmp(
                json!({"mode": "previous_period"}),
                "2025-03-31",
                "2025-04-02"
            ),
            ("2025-03-28".into(), "2025-03-30".into())
        );
    }

    #[test]
    fn custom_ranges_are_taken_as_given_and_echoed() {
        let c = parse(
            &json!({"mode": "custom", "date_range": ["2025-01-05", "2025-01-20"], "match_day_of_week": true}),
            d("2025-03-31"),
            d("2025-04-02"),
            pair,
        )
        .unwrap();
        assert_eq!((c.from, c.to), (d("2025-01-05"), d("2025-01-20")));
        assert_eq!(
            c.echo,
            json!({"mode": "custom", "date_range": ["2025-01-05", "2025-01-20"], "match_day_of_week": true})
        );
    }

    #[test]
    fn bad_comparisons_name_the_field() {
        let (f, t) = (d("2025-03-31"), d("2025-04-02"));
        for (body, field) in [
            (json!("previous_period"), "include.comparisons"),
            (json!({"mode": "last_week"}), "include.comparisons.mode"),
            (json!({}), "include.comparisons.mode"),
            (json!({"mode": "custom"}), "include.comparisons.date_range"),
            (
                json!({"mode": "custom", "date_range": 7}),
                "include.comparisons.date_range",
            ),
            (
                json!({"mode": "custom", "date_range": ["x", "2025-01-01"]}),
                "include.comparisons.date_range[0]",
            ),
            (
                json!({"mode": "previous_period", "date_range": ["2025-01-01", "2025-01-02"]}),
                "include.comparisons.date_range",
            ),
            (
                json!({"mode": "previous_period", "match_day_of_week": "yes"}),
                "include.comparisons.match_day_of_week",
            ),
            (
                json!({"mode": "previous_period", "shift": 1}),
                "include.comparisons.shift",
            ),
        ] {
            match parse(&body, f, t, pair) {
                Err(QueryError::InvalidParam { name, .. }) => assert_eq!(name, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
