//! Goals and revenue: a tenant's conversion goals (a custom event name, or a page path pattern with
//! `*` wildcards), their validation, how an event completes them, and exact money.
//!
//! A goal is evaluated by the queue consumer when it folds an event into its visit's state
//! (`rollup::visits`): the state records, per goal name, the goal's currency, the matching events and
//! the revenue they carried. Rollup contributions are computed from that stored state only, never from
//! the current definitions, so creating or deleting a goal mid-visit never makes a delta subtract what
//! it never added. Goals apply to events processed after they exist; older events are counted by a
//! rebuild from the archive (`scripts/rebuild.sh`).
//!
//! Money is never a float: an amount is parsed from its decimal text (a JSON string, or a JSON number's
//! literal text) into integer minor units of its ISO 4217 currency ([`exponent`]). Revenue in another
//! currency than the goal's is not converted: the event counts, its revenue does not.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::event::EnrichedEvent;
use crate::field_error::FieldError;
use crate::sql::{SqlValue, Statement};

/// Longest goal name, in characters.
pub const MAX_NAME: usize = 120;
/// Longest event name or path pattern, in characters.
pub const MAX_MATCH: usize = 500;

/// What completes a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoalKind {
    /// A custom event whose action is the goal's `match` exactly.
    Event,
    /// A page hit whose path matches the goal's `match` pattern (`*` matches any run of characters).
    Page,
}

impl GoalKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Page => "page",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "event" => Some(Self::Event),
            "page" => Some(Self::Page),
            _ => None,
        }
    }
}

/// A validated goal definition (without its id and creation time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    /// Unique per tenant; the value of the `event:goal` dimension.
    pub name: String,
    /// Event or page goal.
    pub kind: GoalKind,
    /// The event name, or the path pattern.
    pub pattern: String,
    /// ISO 4217 code of a revenue goal.
    pub currency: Option<String>,
}

impl Goal {
    /// Whether `e` completes this goal (bots never do).
    pub fn matches(&self, e: &EnrichedEvent) -> bool {
        if e.is_bot {
            return false;
        }
        match self.kind {
            GoalKind::Event => !e.is_page_hit() && e.action == self.pattern,
            GoalKind::Page => e.is_page_hit() && path_matches(&self.pattern, &e.pathname),
        }
    }

    /// The revenue `e` brings this goal, in minor units of the goal's currency: `None` for a goal
    /// without a currency, an event without valid revenue, or revenue in another currency.
    pub fn revenue(&self, e: &EnrichedEvent) -> Option<i64> {
        let currency = self.currency.as_deref()?;
        let (c, minor) = revenue_of(&e.payload)?;
        (c == currency).then_some(minor)
    }
}

/// Whether `path` matches `pattern`, where `*` matches any run of characters (`/` included) and every
/// other character itself.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == path;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !path.starts_with(first) || path.len() < first.len() + last.len() || !path.ends_with(last) {
        return false;
    }
    let mut rest = &path[first.len()..path.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Active ISO 4217 currency codes with their minor-unit exponent (digits after the decimal point).
#[rustfmt::skip]
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2), ("AUD", 2),
    ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2), ("BHD", 3), ("BIF", 0),
    ("BMD", 2), ("BND", 2), ("BOB", 2), ("BRL", 2), ("BSD", 2), ("BTN", 2), ("BWP", 2), ("BYN", 2),
    ("BZD", 2), ("CAD", 2), ("CDF", 2), ("CHF", 2), ("CLF", 4), ("CLP", 0), ("CNY", 2), ("COP", 2),
    ("CRC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2), ("DJF", 0), ("DKK", 2), ("DOP", 2), ("DZD", 2),
    ("EGP", 2), ("ERN", 2), ("ETB", 2), ("EUR", 2), ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2),
    ("GHS", 2), ("GIP", 2), ("GMD", 2), ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2),
    ("HTG", 2), ("HUF", 2), ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0),
    ("JMD", 2), ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0), ("KPW", 2),
    ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2), ("LKR", 2), ("LRD", 2),
    ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2), ("MKD", 2), ("MMK", 2), ("MNT", 2),
    ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2), ("MWK", 2), ("MXN", 2), ("MYR", 2), ("MZN", 2),
    ("NAD", 2), ("NGN", 2), ("NIO", 2), ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2),
    ("PEN", 2), ("PGK", 2), ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2),
    ("RSD", 2), ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2),
    ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SOS", 2), ("SRD", 2), ("SSP", 2), ("STN", 2), ("SVC", 2),
    ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2), ("TMT", 2), ("TND", 3), ("TOP", 2), ("TRY", 2),
    ("TTD", 2), ("TWD", 2), ("TZS", 2), ("UAH", 2), ("UGX", 0), ("USD", 2), ("UYI", 0), ("UYU", 2),
    ("UYW", 4), ("UZS", 2), ("VED", 2), ("VES", 2), ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0),
    ("XCD", 2), ("XOF", 0), ("XPF", 0), ("YER", 2), ("ZAR", 2), ("ZMW", 2), ("ZWG", 2),
];

/// The minor-unit exponent of an ISO 4217 code (upper case), or `None` for an unknown code.
pub fn exponent(currency: &str) -> Option<u8> {
    CURRENCIES
        .binary_search_by(|(c, _)| (*c).cmp(currency))
        .ok()
        .map(|i| CURRENCIES[i].1)
}

/// A non-negative decimal amount (`"10.29"`, `"1200"`, `".5"`) in minor units of a currency with
/// `exp` fraction digits. More fraction digits than the currency has are rounded half up. No sign, no
/// exponent, at most 15 integer digits.
pub fn parse_amount(text: &str, exp: u8) -> Option<i64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if (int.is_empty() && frac.is_empty())
        || int.len() > 15
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let exp = usize::from(exp);
    let digits = frac.as_bytes();
    let mut minor: i64 = 0;
    let fraction = (0..exp).map(|i| digits.get(i).copied().unwrap_or(b'0'));
    for b in int.bytes().chain(fraction) {
        minor = minor.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    if digits.get(exp).is_some_and(|b| *b >= b'5') {
        minor = minor.checked_add(1)?;
    }
    Some(minor)
}

/// Formats minor units as a decimal string with the currency's exponent (`1029`, USD → `"10.29"`).
pub fn format_amount(minor: i64, exp: u8) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    if exp == 0 {
        return format!("{sign}{m}");
    }
    let p = 10u64.pow(u32::from(exp));
    format!(
        "{sign}{}.{:0width$}",
        m / p,
        m % p,
        width = usize::from(exp)
    )
}

/// `total / n` in minor units, rounded half up (exact integer arithmetic).
pub fn average(total: i64, n: i64) -> i64 {
    if n <= 0 {
        return 0;
    }
    (2 * total + n).div_euclid(2 * n)
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow, default)]
    revenue: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Revenue<'a> {
    #[serde(borrow)]
    amount: &'a RawValue,
    currency: String,
}

/// The revenue an event's payload carries (`{"revenue": {"amount": 10.29 | "10.29", "currency":
/// "USD"}}`), as `(currency, minor units)`. Invalid revenue (unknown currency, negative or malformed
/// amount) is `None`: the event still counts, without revenue, as Plausible's Events API does. The
/// amount is read from its JSON text, never through a float.
pub fn revenue_of(payload: &str) -> Option<(String, i64)> {
    if !payload.contains("revenue") {
        return None;
    }
    let p: Payload = serde_json::from_str(payload).ok()?;
    let r: Revenue = serde_json::from_str(p.revenue?.get()).ok()?;
    let currency = r.currency.trim().to_ascii_uppercase();
    let exp = exponent(&currency)?;
    let raw = r.amount.get().trim();
    let text = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).ok()?
    } else {
        raw.to_owned()
    };
    Some((currency, parse_amount(text.trim(), exp)?))
}

/// A revenue value as the query API answers it: `{value, currency}` with `value` the exact decimal
/// number (written from integer minor units, so its JSON text has the currency's digits).
pub fn money_json(minor: i64, currency: &str) -> Value {
    let exp = exponent(currency).unwrap_or(2);
    let text = format_amount(minor, exp);
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    json!({ "value": value, "currency": currency })
}

/// Validates a goal body: `{"name", "kind": "event"|"page", "match", "currency"?}`. A page pattern
/// must start with `/`; a currency must be an ISO 4217 code.
pub fn validate(body: &Value) -> Result<Goal, FieldError> {
    let obj = body.as_object().ok_or_else(|| {
        FieldError::not_an_object(
            "the body must be a JSON object: {\"name\", \"kind\": \"event\"|\"page\", \"match\", \"currency\"?}",
        )
    })?;
    const FIELDS: [&str; 4] = ["name", "kind", "match", "currency"];
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(FieldError::unknown(
            k,
            "a goal has name, kind, match and currency",
        ));
    }
    let text = |field: &str, max: usize| -> Result<String, FieldError> {
        let s = obj
            .get(field)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default();
        if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
            return Err(FieldError::invalid(
                field,
                format!("must be a non-empty string of at most {max} characters, without control characters"),
            ));
        }
        Ok(s.to_owned())
    };
    let name = text("name", MAX_NAME)?;
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .and_then(GoalKind::parse)
        .ok_or_else(|| FieldError::invalid("kind", "must be \"event\" or \"page\""))?;
    let pattern = text("match", MAX_MATCH)?;
    match kind {
        GoalKind::Page if !pattern.starts_with('/') || pattern.contains("**") => {
            return Err(FieldError::invalid(
                "match",
                "a page pattern starts with / and uses single * wildcards, such as /blog/* or /checkout/done",
            ))
        }
        GoalKind::Event if pattern == "page_hit" || pattern == "web_vital" => {
            return Err(FieldError::invalid(
                "match",
                "must be a custom event name (page_hit and web_vital are not; use a page goal)",
            ))
        }
        _ => {}
    }
    let currency = match obj.get("currency") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if exponent(c).is_some() => Some(c.clone()),
        Some(_) => {
            return Err(FieldError::invalid(
                "currency",
                "must be an ISO 4217 code in upper case, such as USD, EUR or JPY",
            ))
        }
    };
    Ok(Goal {
        name,
        kind,
        pattern,
        currency,
    })
}

/// The JSON of a stored goal.
pub fn to_json(id: i64, goal: &Goal, created: i64) -> Value {
    json!({
        "id": id,
        "name": goal.name,
        "kind": goal.kind.as_str(),
        "match": goal.pattern,
        "currency": goal.currency,
        "created": created,
    })
}

/// The tenant's goals, oldest first (`id, name, kind, pattern, currency, created`).
pub fn list(tenant: &str) -> Statement {
    Statement::new(
        "SELECT id, name, kind, pattern, currency, created FROM goals WHERE tenant_id = ? ORDER BY id",
        vec![tenant.into()],
    )
}

/// Inserts a goal unless the tenant has `max` goals already or one of the same name: returns the new
/// `id` (no row when refused). The id is one more than the tenant's largest.
pub fn insert(tenant: &str, goal: &Goal, max: u32, now_secs: i64) -> Statement {
    Statement::new(
        "INSERT INTO goals (tenant_id, id, name, kind, pattern, currency, created) \
         SELECT ?, (SELECT COALESCE(MAX(id), 0) + 1 FROM goals WHERE tenant_id = ?), ?, ?, ?, ?, ? \
         WHERE (SELECT COUNT(*) FROM goals WHERE tenant_id = ?) < ? \
         AND NOT EXISTS (SELECT 1 FROM goals WHERE tenant_id = ? AND name = ?) \
         RETURNING id",
        vec![
            tenant.into(),
            tenant.into(),
            goal.name.as_str().into(),
            goal.kind.as_str().into(),
            goal.pattern.as_str().into(),
            goal.currency
                .as_deref()
                .map_or(SqlValue::Null, SqlValue::from),
            now_secs.into(),
            tenant.into(),
            i64::from(max).into(),
            tenant.into(),
            goal.name.as_str().into(),
        ],
    )
}

/// Deletes one of the tenant's goals; returns its id when it existed.
pub fn delete(tenant: &str, id: i64) -> Statement {
    Statement::new(
        "DELETE FROM goals WHERE tenant_id = ? AND id = ? RETURNING id",
        vec![tenant.into(), id.into()],
    )
}

/// A goal from a [`list`] row, with its id and creation time.
pub fn from_row(r: &Map<String, Value>) -> Option<(i64, Goal, i64)> {
    let s = |k: &str| r.get(k).and_then(Value::as_str);
    Some((
        crate::sql::int(r.get("id"))?,
        Goal {
            name: s("name")?.to_owned(),
            kind: GoalKind::parse(s("kind")?)?,
            pattern: s("pattern")?.to_owned(),
            currency: s("currency").map(str::to_owned),
        },
        crate::sql::int(r.get("created")).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_table_is_sorted_unique_and_knows_the_odd_exponents() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(CURRENCIES
            .iter()
            .all(|(c, _)| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
        for (code, exp) in [
            ("USD", 2),
            ("EUR", 2),
            ("JPY", 0),
            ("KRW", 0),
            ("BHD", 3),
            ("KWD", 3),
            ("CLF", 4),
        ] {
            assert_eq!(exponent(code), Some(exp), "{code}");
        }
        assert_eq!(exponent("usd"), None);
        assert_eq!(exponent("XYZ"), None);
        assert!(CURRENCIES.len() > 150);
    }

    #[test]
    fn amounts_are_exact_decimal_text() {
        assert_eq!(parse_amount("10.29", 2), Some(1029));
        assert_eq!(parse_amount("0.1", 2), Some(10));
        assert_eq!(parse_amount(".5", 2), Some(50));
        assert_eq!(parse_amount("1200", 0), Some(1200));
        assert_eq!(parse_amount("1.5", 0), Some(2));
        assert_eq!(parse_amount("1.234", 3), Some(1234));
        assert_eq!(parse_amount("0.005", 2), Some(1));
        assert_eq!(parse_amount("0.004", 2), Some(0));
        for bad in [
            "",
            ".",
            "-1",
            "1e3",
            "1,5",
            "abc",
            "1.2.3",
            "9999999999999999",
        ] {
            assert_eq!(parse_amount(bad, 2), None, "{bad}");
        }
        // 0.1 + 0.2 with floats is 0.30000000000000004; here it is 30 cents.
        assert_eq!(
            parse_amount("0.1", 2).unwrap() + parse_amount("0.2", 2).unwrap(),
            30
        );
        assert_eq!(format_amount(1029, 2), "10.29");
        assert_eq!(format_amount(5, 2), "0.05");
        assert_eq!(format_amount(1200, 0), "1200");
        assert_eq!(format_amount(1234, 3), "1.234");
        assert_eq!(average(1000, 3), 333);
        assert_eq!(average(1001, 2), 501);
        assert_eq!(average(5, 0), 0);
    }

    #[test]
    fn revenue_is_read_from_numbers_and_strings_without_floats() {
        let r = |p: &str| revenue_of(p);
        assert_eq!(
            r(r#"{"revenue":{"amount":10.29,"currency":"USD"}}"#),
            Some(("USD".into(), 1029))
        );
        assert_eq!(
            r(r#"{"revenue":{"amount":"19.99","currency":"eur"}}"#),
            Some(("EUR".into(), 1999))
        );
        assert_eq!(
            r(r#"{"revenue":{"amount":1500,"currency":"JPY"}}"#),
            Some(("JPY".into(), 1500))
        );
        // A literal with more digits than an f64 keeps: exact.
        assert_eq!(
            r(r#"{"revenue":{"amount":"123456789012345.67","currency":"USD"}}"#),
            Some(("USD".into(), 12_345_678_901_234_567))
        );
        for bad in [
            r#"{"revenue":{"amount":"x","currency":"USD"}}"#,
            r#"{"revenue":{"amount":-3,"currency":"USD"}}"#,
            r#"{"revenue":{"amount":3,"currency":"XYZ"}}"#,
            r#"{"revenue":{"amount":3}}"#,
            r#"{"revenue":"3 USD"}"#,
            r#"{"plan":"pro"}"#,
            "not json",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
    }

    #[test]
    fn patterns_match_with_wildcards() {
        assert!(path_matches("/checkout/done", "/checkout/done"));
        assert!(!path_matches("/checkout/done", "/checkout/done/x"));
        assert!(path_matches("/blog/*", "/blog/a"));
        assert!(path_matches("/blog/*", "/blog/a/b"));
        assert!(!path_matches("/blog/*", "/blog"));
        assert!(path_matches("/blog*", "/blog"));
        assert!(path_matches("/*/pricing", "/en/pricing"));
        assert!(!path_matches("/*/pricing", "/en/pricing/x"));
        assert!(path_matches("/a*b*c", "/a-b-c"));
        assert!(!path_matches("/a*b*c", "/a-c-b"));
        assert!(!path_matches("/ab*ba", "/aba"));
        assert!(path_matches("*", "/anything"));
    }

    #[test]
    fn bad_goals_name_the_field() {
        let field = |v: Value| {
            validate(&v)
                .err()
                .and_then(|e| e.field().map(str::to_owned))
        };
        assert_eq!(
            field(json!({"name": "", "kind": "event", "match": "Signup"})).as_deref(),
            Some("name")
        );
        assert_eq!(
            field(json!({"name": "A", "kind": "click", "match": "Signup"})).as_deref(),
            Some("kind")
        );
        assert_eq!(
            field(json!({"name": "A", "kind": "event", "match": " "})).as_deref(),
            Some("match")
        );
        assert_eq!(
            field(json!({"name": "A", "kind": "page", "match": "blog/*"})).as_deref(),
            Some("match")
        );
        assert_eq!(
            field(json!({"name": "A", "kind": "event", "match": "page_hit"})).as_deref(),
            Some("match")
        );
        assert_eq!(
            field(json!({"name": "A", "kind": "event", "match": "Buy", "currency": "XYZ"}))
                .as_deref(),
            Some("currency")
        );
        assert_eq!(
            field(json!({"name": "A", "kind": "event", "match": "Buy", "colour": 1})).as_deref(),
            Some("colour")
        );
        let g = validate(
            &json!({"name": " Purchase ", "kind": "event", "match": "Purchase", "currency": "EUR"}),
        )
        .unwrap();
        assert_eq!(
            (g.name.as_str(), g.currency.as_deref()),
            ("Purchase", Some("EUR"))
        );
    }
}
