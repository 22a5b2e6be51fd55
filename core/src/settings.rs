//! Per-tenant white-label settings for the dashboard: display name, logo, primary colour, scheme and
//! whether "Powered by Starling" is hidden (issue #5).
//!
//! [`validate`] turns an admin's JSON body into [`TenantSettings`] or a [`SettingsError`] that names the
//! field; [`upsert`] and [`select`] are the bound SQL over `tenant_settings`
//! (`migrations/0002_tenant_settings.sql`), and [`from_row`] reads a selected row back. The values are
//! validated again by the dashboard before use, so a stored value can never inject CSS or script.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sql::{SqlValue, Statement};

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 80;
/// Longest logo URL, in bytes.
pub const MAX_LOGO_BYTES: usize = 500;
/// The fields a settings body may have.
pub const FIELDS: [&str; 5] = [
    "display_name",
    "logo_url",
    "primary_color",
    "theme",
    "hide_branding",
];
/// The allowed `theme` values.
pub const THEMES: [&str; 3] = ["light", "dark", "auto"];

/// A tenant's validated settings. `None` means "not set": the dashboard keeps its own default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Shown in the dashboard header and title (1 to 80 characters, no control characters).
    pub display_name: Option<String>,
    /// An `https://` URL of the logo image (at most 500 bytes).
    pub logo_url: Option<String>,
    /// `#rgb` or `#rrggbb`.
    pub primary_color: Option<String>,
    /// `light`, `dark` or `auto`.
    pub theme: Option<String>,
    /// Hides "Powered by Starling".
    pub hide_branding: bool,
}

/// Why a settings body was rejected (400).
pub type SettingsError = crate::field_error::FieldError;

fn not_an_object() -> SettingsError {
    SettingsError::not_an_object(format!(
        "the body must be a JSON object with some of: {}",
        FIELDS.join(", ")
    ))
}

fn unknown_field(field: &str) -> SettingsError {
    SettingsError::unknown(
        field,
        format!("the allowed fields are {}", FIELDS.join(", ")),
    )
}

/// Validates a settings body. Absent or `null` fields (and empty strings) are "not set"; unknown fields
/// are rejected.
pub fn validate(json: &Value) -> Result<TenantSettings, SettingsError> {
    let obj = json.as_object().ok_or_else(not_an_object)?;
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(unknown_field(unknown));
    }
    let display_name = string(
        obj,
        "display_name",
        "expected a string of at most 80 characters",
    )?
    .map(|s| {
        let ok = s.chars().count() <= MAX_NAME_CHARS && !s.chars().any(char::is_control);
        ok.then(|| s.to_owned()).ok_or_else(|| {
            SettingsError::invalid(
                "display_name",
                "expected at most 80 characters and no control characters",
            )
        })
    })
    .transpose()?;
    let logo_url = string(obj, "logo_url", "expected an https:// URL")?
        .map(|s| {
            valid_logo(s).then(|| s.to_owned()).ok_or_else(|| {
                SettingsError::invalid(
                    "logo_url",
                    "expected an https:// URL of at most 500 characters",
                )
            })
        })
        .transpose()?;
    let primary_color = string(obj, "primary_color", "expected a colour as #rgb or #rrggbb")?
        .map(|s| {
            valid_color(s)
                .then(|| s.to_ascii_lowercase())
                .ok_or_else(|| {
                    SettingsError::invalid("primary_color", "expected a colour as #rgb or #rrggbb")
                })
        })
        .transpose()?;
    let theme = string(obj, "theme", "expected one of light, dark, auto")?
        .map(|s| {
            THEMES
                .contains(&s)
                .then(|| s.to_owned())
                .ok_or_else(|| SettingsError::invalid("theme", "expected one of light, dark, auto"))
        })
        .transpose()?;
    let hide_branding = match obj.get("hide_branding") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(SettingsError::invalid(
                "hide_branding",
                "expected true or false",
            ))
        }
    };
    Ok(TenantSettings {
        display_name,
        logo_url,
        primary_color,
        theme,
        hide_branding,
    })
}

/// A string field: `None` when absent, `null` or empty.
fn string<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
    reason: &'static str,
) -> Result<Option<&'a str>, SettingsError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SettingsError::invalid(field, reason)),
    }
}

fn valid_color(s: &str) -> bool {
    let Some(hex) = s.strip_prefix('#') else {
        return false;
    };
    matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

fn valid_logo(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    s.len() <= MAX_LOGO_BYTES
        && !host.is_empty()
        && !host.contains('@')
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'<>\\`".contains(&b))
}

/// Inserts or replaces the tenant's settings (all fields: a `PUT`).
pub fn upsert(tenant: &str, s: &TenantSettings, now_secs: i64) -> Statement {
    let text = |v: &Option<String>| v.clone().map_or(SqlValue::Null, SqlValue::Text);
    Statement::new(
        "INSERT INTO tenant_settings (tenant_id, display_name, logo_url, primary_color, theme, hide_branding, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (tenant_id) DO UPDATE SET display_name = excluded.display_name, logo_url = excluded.logo_url, \
         primary_color = excluded.primary_color, theme = excluded.theme, hide_branding = excluded.hide_branding, \
         updated_at = excluded.updated_at",
        vec![
            tenant.into(),
            text(&s.display_name),
            text(&s.logo_url),
            text(&s.primary_color),
            text(&s.theme),
            SqlValue::Int(i64::from(s.hide_branding)),
            now_secs.into(),
        ],
    )
}

/// Selects the tenant's settings row (none when nothing was stored).
pub fn select(tenant: &str) -> Statement {
    Statement::new(
        "SELECT display_name, logo_url, primary_color, theme, hide_branding \
         FROM tenant_settings WHERE tenant_id = ?",
        vec![tenant.into()],
    )
}

/// The settings from a row of [`select`]; no row gives the defaults. Values that do not validate any more
/// are dropped rather than served.
pub fn from_row(row: Option<&Map<String, Value>>) -> TenantSettings {
    let Some(row) = row else {
        return TenantSettings::default();
    };
    let mut body = Map::new();
    for f in ["display_name", "logo_url", "primary_color", "theme"] {
        if let Some(Value::String(s)) = row.get(f) {
            if validate(&serde_json::json!({ f: s })).is_ok() {
                body.insert(f.to_owned(), Value::String(s.clone()));
            }
        }
    }
    let hide = row
        .get("hide_branding")
        .and_then(Value::as_f64)
        .is_some_and(|v| v != 0.0);
    body.insert("hide_branding".into(), Value::Bool(hide));
    validate(&Value::Object(body)).unwrap_or_default()
}

/// The public JSON for a tenant: `{"tenant_id", "display_name", "logo_url", "primary_color", "theme",
/// "hide_branding"}`, with `null` for what is not set.
pub fn to_json(tenant: &str, s: &TenantSettings) -> Value {
    serde_json::json!({
        "tenant_id": tenant,
        "display_name": s.display_name,
        "logo_url": s.logo_url,
        "primary_color": s.primary_color,
        "theme": s.theme,
        "hide_branding": s.hide_branding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(v: Value) -> String {
        validate(&v).unwrap_err().field().unwrap_or("-").to_owned()
    }

    #[test]
    fn accepts_a_full_body() {
        let s = validate(&json!({
            "display_name": "Acme Analytics",
            "logo_url": "https://cdn.acme.example/logo.svg?v=2",
            "primary_color": "#0A7D32",
            "theme": "dark",
            "hide_branding": true,
        }))
        .unwrap();
        assert_eq!(s.display_name.as_deref(), Some("Acme Analytics"));
        assert_eq!(
            s.logo_url.as_deref(),
            Some("https://cdn.acme.example/logo.svg?v=2")
        );
        assert_eq!(s.primary_color.as_deref(), Some("#0a7d32"));
        assert_eq!(s.theme.as_deref(), Some("dark"));
        assert!(s.hide_branding);
        assert_eq!(
            validate(&json!({"primary_color": "#abc", "theme": "auto"}))
                .unwrap()
                .primary_color
                .as_deref(),
            Some("#abc")
        );
    }

    #[test]
    fn absent_null_and_empty_are_not_set() {
        assert_eq!(validate(&json!({})).unwrap(), TenantSettings::default());
        let s = validate(&json!({"display_name": null, "logo_url": "", "hide_branding": null}));
        assert_eq!(s.unwrap(), TenantSettings::default());
        assert_eq!(
            validate(&json!({"display_name": "x".repeat(80)}))
                .unwrap()
                .display_name
                .map(|n| n.len()),
            Some(80)
        );
        assert!(validate(&json!({"display_name": "Ünïcode ✓ 名前"})).is_ok());
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        assert_eq!(
            field_of(json!({"logo_url": "javascript:alert(1)"})),
            "logo_url"
        );
        assert_eq!(
            field_of(json!({"logo_url": "http://acme.example/l.png"})),
            "logo_url"
        );
        assert_eq!(field_of(json!({"logo_url": "https://"})), "logo_url");
        assert_eq!(
            field_of(json!({"logo_url": "https://a.example/x y.png"})),
            "logo_url"
        );
        assert_eq!(
            field_of(json!({"logo_url": "https://a.example/\")"})),
            "logo_url"
        );
        assert_eq!(
            field_of(json!({"logo_url": "https://user@evil.example/"})),
            "logo_url"
        );
        let long = format!("https://a.example/{}", "x".repeat(500));
        assert_eq!(field_of(json!({ "logo_url": long })), "logo_url");
        for c in [
            "red;}", "red", "#12", "#1234", "#ggg", "#0a7d32;", " #0a7d32", "0a7d32",
        ] {
            assert_eq!(
                field_of(json!({ "primary_color": c })),
                "primary_color",
                "{c}"
            );
        }
        assert_eq!(
            field_of(json!({"display_name": "x".repeat(81)})),
            "display_name"
        );
        assert_eq!(
            field_of(json!({"display_name": "a\u{0007}b"})),
            "display_name"
        );
        assert_eq!(field_of(json!({"display_name": "a\nb"})), "display_name");
        assert_eq!(field_of(json!({"display_name": 5})), "display_name");
        assert_eq!(field_of(json!({"theme": "blue"})), "theme");
        assert_eq!(field_of(json!({"theme": "Dark"})), "theme");
        assert_eq!(field_of(json!({"hide_branding": "true"})), "hide_branding");
        assert_eq!(field_of(json!({"hide_branding": 1})), "hide_branding");
    }

    #[test]
    fn rejects_unknown_fields_and_non_objects() {
        let e = validate(&json!({"display_name": "A", "tenant_id": "globex"})).unwrap_err();
        assert_eq!(e, unknown_field("tenant_id"));
        assert!(e.message().contains("'tenant_id'"), "{}", e.message());
        assert_eq!(validate(&json!([1])), Err(not_an_object()));
        assert_eq!(validate(&json!("x")), Err(not_an_object()));
        let e = validate(&json!({"primary_color": "red;}"})).unwrap_err();
        assert!(e.message().contains("primary_color"), "{}", e.message());
    }

    #[test]
    fn statements_bind_everything() {
        let s = validate(&json!({"display_name": "A'); DROP TABLE x;--", "hide_branding": true}))
            .unwrap();
        let up = upsert("acme", &s, 1_700_000_000);
        assert_eq!(up.sql.matches('?').count(), up.binds.len());
        assert!(!up.sql.contains("DROP"));
        assert_eq!(up.binds[0], SqlValue::Text("acme".into()));
        assert_eq!(up.binds[2], SqlValue::Null);
        assert_eq!(up.binds[5], SqlValue::Int(1));
        assert_eq!(up.binds[6], SqlValue::Int(1_700_000_000));
        let sel = select("acme");
        assert_eq!(sel.binds, vec![SqlValue::Text("acme".into())]);
        assert!(sel.sql.contains("WHERE tenant_id = ?"));
    }

    #[test]
    fn rows_read_back_and_defaults() {
        assert_eq!(from_row(None), TenantSettings::default());
        let row = json!({"display_name": "Acme", "logo_url": null, "primary_color": "#0a7d32",
            "theme": "bogus", "hide_branding": 1.0});
        let s = from_row(row.as_object());
        assert_eq!(s.display_name.as_deref(), Some("Acme"));
        assert_eq!(s.primary_color.as_deref(), Some("#0a7d32"));
        assert_eq!(
            s.theme, None,
            "a stored value that no longer validates is dropped"
        );
        assert!(s.hide_branding);
        let j = to_json("acme", &s);
        assert_eq!(j["tenant_id"], "acme");
        assert_eq!(j["logo_url"], Value::Null);
        assert_eq!(j["hide_branding"], true);
    }
}
