//! Request parameters: which value is in force (token-fixed values always win) and what it means.

use std::collections::BTreeMap;

use super::api::SegmentFilter;
use super::timezone::{format_date, parse_date, Days};
use super::QueryError;
use crate::claims::TenantId;

/// Longest accepted parameter value; rollup keys are short, so longer values can only be mistakes.
const MAX_VALUE_LEN: usize = 512;
/// Longest accepted date range, in days (a year and a bit, enough for the dashboard's 12 months).
pub(crate) const MAX_RANGE_DAYS: i64 = 400;
/// Default and largest `limit` of the top lists.
pub(crate) const DEFAULT_LIMIT: i64 = 50;
pub(crate) const MAX_LIMIT: i64 = 1000;
const MAX_SKIP: i64 = 1_000_000;

/// The parameters in force for one request.
///
/// A token's `fixed_params` always win. Request parameter names are matched case-sensitively (as
/// Tinybird does), but a request parameter whose lower-cased name equals a fixed name (also compared
/// lower-cased) is dropped, so `TENANT_ID=other` or `Domain=x` can never smuggle in a value a token
/// fixes. Of repeated request parameters the first wins. `tenant_id` and `token` from the request are
/// never used. Empty request values count as absent (the dashboard drops falsy params); fixed values
/// are used as they are.
pub(crate) struct Params<'a> {
    tenant: Option<&'a TenantId>,
    /// A saved segment (`segment=<id>`), read by the caller for the verified tenant.
    segment: Option<&'a SegmentFilter>,
    fixed: &'a BTreeMap<String, String>,
    request: BTreeMap<&'a str, &'a str>,
}

impl<'a> Params<'a> {
    pub(crate) fn new(params: &'a [(String, String)], fixed: &'a BTreeMap<String, String>) -> Self {
        let fixed_lower: Vec<String> = fixed.keys().map(|k| k.to_ascii_lowercase()).collect();
        let mut request = BTreeMap::new();
        for (name, value) in params {
            let lower = name.to_ascii_lowercase();
            if lower == "tenant_id"
                || lower == "token"
                || fixed_lower.contains(&lower)
                || value.is_empty()
            {
                continue;
            }
            request.entry(name.as_str()).or_insert(value.as_str());
        }
        Self {
            tenant: None,
            segment: None,
            fixed,
            request,
        }
    }

    /// The same parameters with a saved segment's filters AND-ed to the dashboard filters.
    pub(crate) fn with_segment(self, segment: Option<&'a SegmentFilter>) -> Self {
        Self { segment, ..self }
    }

    /// The same parameters for a verified tenant: the only way [`Params::tenant`] answers.
    pub(crate) fn for_tenant(self, tenant: &'a TenantId) -> Self {
        Self {
            tenant: Some(tenant),
            ..self
        }
    }

    /// The tenant, from the verified token only (never a parameter, not even a fixed one).
    pub(crate) fn tenant(&self) -> Result<&'a TenantId, QueryError> {
        self.tenant.ok_or(QueryError::MissingTenant)
    }

    /// The value in force for `name`: the fixed one, else the request's.
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.get_any(&[name])
    }

    /// The value in force for the first of several aliases: a fixed value of any alias wins over a
    /// request value of any alias.
    pub(crate) fn get_any(&self, names: &[&str]) -> Option<&'a str> {
        let fixed: &'a BTreeMap<String, String> = self.fixed;
        names
            .iter()
            .find_map(|n| fixed.get(*n).map(String::as_str))
            .or_else(|| names.iter().find_map(|n| self.request.get(n).copied()))
    }

    /// A bounded free-text value (`domain`, filters, `action_filter`).
    pub(crate) fn text(&self, names: &[&str]) -> Result<Option<&'a str>, QueryError> {
        match self.get_any(names) {
            Some(v) if v.len() > MAX_VALUE_LEN => Err(QueryError::invalid(
                names[0],
                format!("must be at most {MAX_VALUE_LEN} bytes"),
            )),
            v => Ok(v),
        }
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub(crate) fn int(
        &self,
        name: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, QueryError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match raw.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(QueryError::invalid(
                name,
                format!(
                    "must be a whole number from {min} to {max}, got '{}'",
                    clip(raw)
                ),
            )),
        }
    }

    /// Tinybird's boolean flags: only the string `true` turns them on.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }

    /// `skip` and `limit` of the top lists.
    pub(crate) fn page(&self) -> Result<(i64, i64), QueryError> {
        Ok((
            self.int("skip", 0, 0, MAX_SKIP)?,
            self.int("limit", DEFAULT_LIMIT, 0, MAX_LIMIT)?,
        ))
    }

    /// `date_from`..=`date_to` as local dates. Defaults: `date_to` = today, `date_from` = `date_to` - 7
    /// (the kit's eight days).
    pub(crate) fn dates(&self, today: Days) -> Result<(Days, Days), QueryError> {
        let date = |name: &str| -> Result<Option<Days>, QueryError> {
            match self.get(name) {
                None => Ok(None),
                Some(raw) => parse_date(raw).map(Some).ok_or_else(|| {
                    QueryError::invalid(
                        name,
                        format!(
                            "must be a date as YYYY-MM-DD, e.g. 2025-08-13, got '{}'",
                            clip(raw)
                        ),
                    )
                }),
            }
        };
        let to = date("date_to")?.unwrap_or(today);
        let from = date("date_from")?.unwrap_or(to - 7);
        if from > to {
            return Err(QueryError::invalid(
                "date_from",
                format!(
                    "must not be after date_to ({} > {})",
                    format_date(from),
                    format_date(to)
                ),
            ));
        }
        if to - from + 1 > MAX_RANGE_DAYS {
            return Err(QueryError::invalid(
                "date_to",
                format!(
                    "the range may span at most {MAX_RANGE_DAYS} days; narrow date_from..date_to"
                ),
            ));
        }
        Ok((from, to))
    }
}

/// A value shortened for an error message.
fn clip(raw: &str) -> String {
    raw.chars().take(40).collect()
}

/// The `segment` parameter in force (a token's fixed value wins): a saved segment's id.
pub fn segment_param(
    params: &[(String, String)],
    fixed: &BTreeMap<String, String>,
) -> Result<Option<i64>, QueryError> {
    let p = Params::new(params, fixed);
    p.get("segment")
        .map(|v| {
            v.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                QueryError::invalid("segment", "must be a segment id (a whole number from 1)")
            })
        })
        .transpose()
}

/// The IANA time zone name in force (`timezone`, the fixed value wins), checked for syntax only:
/// letters, digits, `/`, `_`, `-`, `+`, at most 64 characters. `None` means UTC.
pub fn timezone_param(
    params: &[(String, String)],
    fixed: &BTreeMap<String, String>,
) -> Result<Option<String>, QueryError> {
    let p = Params::new(params, fixed);
    let Some(name) = p.get("timezone") else {
        return Ok(None);
    };
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-+".contains(&b))
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    if ok {
        Ok(Some(name.to_owned()))
    } else {
        Err(QueryError::invalid(
            "timezone",
            "must be an IANA time zone name such as Europe/Berlin or UTC",
        ))
    }
}

/// A dashboard filter: parameter names (canonical first) and the `sessions` column it compares.
pub(crate) struct Dim {
    pub(crate) names: &'static [&'static str],
    pub(crate) column: &'static str,
}

/// `pathname` is special: on sessions it means "sessions that viewed this page".
pub(crate) const PATHNAME: Dim = Dim {
    names: &["pathname"],
    column: "pathname",
};

/// Session-level filters, compared with the session's (first hit's) attributes.
pub(crate) const SESSION_DIMS: &[Dim] = &[
    Dim {
        names: &["source", "referrer"],
        column: "source",
    },
    Dim {
        names: &["browser"],
        column: "browser",
    },
    Dim {
        names: &["os"],
        column: "os",
    },
    Dim {
        names: &["device"],
        column: "device",
    },
    Dim {
        names: &["country", "location"],
        column: "country",
    },
    Dim {
        names: &["utm_source"],
        column: "utm_source",
    },
    Dim {
        names: &["utm_medium"],
        column: "utm_medium",
    },
    Dim {
        names: &["utm_campaign"],
        column: "utm_campaign",
    },
];

/// The filters of a date-ranged endpoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filters {
    pub(crate) domain: Option<String>,
    pub(crate) pathname: Option<String>,
    /// `(sessions column, value)`, in [`SESSION_DIMS`] order.
    pub(crate) session: Vec<(&'static str, String)>,
    /// A saved segment's filters (`segment=<id>`): any `/v0/query` filters, so never a rollup slice.
    pub(crate) segment: Option<SegmentFilter>,
    /// `goal`: the visits that completed this goal (by name, `crate::goals`).
    pub(crate) goal: Option<String>,
}

impl Filters {
    pub(crate) fn from_params(p: &Params) -> Result<Self, QueryError> {
        let mut session = Vec::new();
        for dim in SESSION_DIMS {
            if let Some(v) = p.text(dim.names)? {
                session.push((dim.column, v.to_owned()));
            }
        }
        Ok(Self {
            domain: p.text(&["domain"])?.map(str::to_owned),
            pathname: p.text(PATHNAME.names)?.map(str::to_owned),
            session,
            segment: p.segment.cloned(),
            goal: p.text(&["goal"])?.map(str::to_owned),
        })
    }

    /// Entries for the cache key.
    pub(crate) fn key_entries(&self, out: &mut BTreeMap<String, String>) {
        if let Some(d) = &self.domain {
            out.insert("domain".into(), d.clone());
        }
        if let Some(p) = &self.pathname {
            out.insert("pathname".into(), p.clone());
        }
        for (col, v) in &self.session {
            out.insert((*col).into(), v.clone());
        }
        if let Some(s) = &self.segment {
            // The filters as read, so an edited segment gets a new key.
            out.insert("segment".into(), s.key.clone());
        }
        if let Some(g) = &self.goal {
            out.insert("goal".into(), g.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fixed(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fixed_params_win_over_any_spelling_and_repeat() {
        let f = fixed(&[("tenant_id", "acme"), ("domain", "acme.com")]);
        let q = pairs(&[
            ("tenant_id", "evil"),
            ("TENANT_ID", "evil"),
            ("Tenant_Id", "evil"),
            ("domain", "evil.com"),
            ("DOMAIN", "evil.com"),
            ("Domain", "evil.com"),
            ("browser", "firefox"),
            ("browser", "chrome"),
        ]);
        let acme = TenantId::for_tests("acme").unwrap();
        let p = Params::new(&q, &f).for_tenant(&acme);
        assert_eq!(p.tenant().unwrap().as_str(), "acme");
        assert_eq!(p.get("domain"), Some("acme.com"));
        assert_eq!(
            p.get("Domain"),
            None,
            "a case variant of a fixed name is dropped"
        );
        assert_eq!(p.get("TENANT_ID"), None);
        assert_eq!(p.get("browser"), Some("firefox"), "first occurrence wins");
    }

    #[test]
    fn request_tenant_is_never_used() {
        let f = fixed(&[]);
        let q = pairs(&[("tenant_id", "acme")]);
        let p = Params::new(&q, &f);
        assert!(matches!(p.tenant(), Err(QueryError::MissingTenant)));
        assert_eq!(p.get("tenant_id"), None);
    }

    #[test]
    fn names_are_case_sensitive_when_not_fixed() {
        let f = fixed(&[("tenant_id", "acme")]);
        let q = pairs(&[
            ("Browser", "x"),
            ("browser", "firefox"),
            ("token", "secret"),
            ("pathname", ""),
        ]);
        let p = Params::new(&q, &f);
        assert_eq!(p.get("browser"), Some("firefox"));
        assert_eq!(p.get("token"), None);
        assert_eq!(p.get("pathname"), None, "empty values are absent");
    }

    #[test]
    fn aliases_fixed_first() {
        let f = fixed(&[("tenant_id", "acme"), ("referrer", "google.com")]);
        let q = pairs(&[("source", "bing.com"), ("location", "DE")]);
        let p = Params::new(&q, &f);
        assert_eq!(p.get_any(&["source", "referrer"]), Some("google.com"));
        assert_eq!(p.get_any(&["country", "location"]), Some("DE"));
    }

    #[test]
    fn dates_default_and_validate() {
        let f = fixed(&[("tenant_id", "a")]);
        let today = parse_date("2025-08-13").unwrap();
        let none = pairs(&[]);
        assert_eq!(
            Params::new(&none, &f).dates(today).unwrap(),
            (today - 7, today)
        );
        let only_to = pairs(&[("date_to", "2025-08-01")]);
        assert_eq!(
            Params::new(&only_to, &f).dates(today).unwrap(),
            (today - 19, today - 12)
        );
        let cases = [
            (vec![("date_from", "2025-8-1")], "date_from"),
            (vec![("date_to", "2025-02-30")], "date_to"),
            (
                vec![("date_from", "2025-08-10"), ("date_to", "2025-08-01")],
                "date_from",
            ),
            (
                vec![("date_from", "2024-01-01"), ("date_to", "2025-08-01")],
                "date_to",
            ),
        ];
        for (q, name) in cases {
            let q = pairs(&q);
            match Params::new(&q, &f).dates(today) {
                Err(e @ QueryError::InvalidParam { .. }) => {
                    assert_eq!(e.status(), 400);
                    assert!(e.message().contains(name), "{}", e.message());
                }
                other => panic!("{q:?}: {other:?}"),
            }
        }
        let q = pairs(&[("date_from", "nope")]);
        let msg = Params::new(&q, &f).dates(today).unwrap_err().message();
        assert!(msg.contains("YYYY-MM-DD"), "{msg}");
    }

    #[test]
    fn paging_is_bounded() {
        let f = fixed(&[("tenant_id", "a")]);
        let ok = pairs(&[("skip", "10"), ("limit", "1000")]);
        assert_eq!(Params::new(&ok, &f).page().unwrap(), (10, 1000));
        assert_eq!(Params::new(&[], &f).page().unwrap(), (0, 50));
        for (name, v) in [
            ("limit", "1001"),
            ("limit", "-1"),
            ("skip", "-5"),
            ("skip", "1e3"),
            ("limit", "10; DROP"),
        ] {
            let q = pairs(&[(name, v)]);
            let e = Params::new(&q, &f).page().unwrap_err();
            assert!(
                e.message().starts_with(&format!("invalid '{name}'")),
                "{}",
                e.message()
            );
        }
    }

    #[test]
    fn timezone_syntax() {
        let f = fixed(&[("tenant_id", "a")]);
        for ok in [
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
            "UTC",
            "America/Port-au-Prince",
        ] {
            let q = pairs(&[("timezone", ok)]);
            assert_eq!(timezone_param(&q, &f).unwrap().as_deref(), Some(ok));
        }
        for bad in ["Europe/Berlin'", "../etc", "a b", &"A".repeat(65), "+01:00"] {
            let q = pairs(&[("timezone", bad)]);
            assert!(timezone_param(&q, &f).is_err(), "{bad}");
        }
        assert_eq!(timezone_param(&[], &f).unwrap(), None);
        let fz = fixed(&[("tenant_id", "a"), ("timezone", "Europe/Madrid")]);
        let q = pairs(&[("timezone", "Asia/Tokyo"), ("TIMEZONE", "Asia/Tokyo")]);
        assert_eq!(
            timezone_param(&q, &fz).unwrap().as_deref(),
            Some("Europe/Madrid")
        );
    }
}
