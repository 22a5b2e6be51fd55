//! Token claims in Tinybird's shape, and what they allow.
//!
//! A verified token ([`crate::token::verify`]) yields [`Claims`]. [`authorize_append`] and
//! [`authorize_read`] turn them into grants that carry a [`TenantId`], and these are the only places a
//! `TenantId` is made: a tenant always comes from a verified token's `fixed_params.tenant_id`, never
//! from a request body, parameter or header.

use std::collections::BTreeMap;
use std::fmt;

/// Scope type that allows appending to a data source (Tinybird's tracker tokens).
pub const APPEND: &str = "DATASOURCES:APPEND";
/// Scope type that allows reading a pipe (Tinybird's dashboard tokens).
pub const READ: &str = "PIPES:READ";
/// Scope type that allows reading the tenant's usage (`/v0/usage.json`).
pub const USAGE_READ: &str = "USAGE:READ";
/// Scope type that allows reading the tenant's white-label settings (`/v0/tenant.json`).
pub const SETTINGS_READ: &str = "SETTINGS:READ";
/// Scope type that allows a tenant to change its own settings (saved segments, goals, funnels) with its
/// token, besides the admin API. Never allowed by a read scope, and never carried by a tenant-key (EdDSA) token.
pub const SETTINGS_WRITE: &str = "SETTINGS:WRITE";

/// The pipes whose answer is bounded by `date_from..=date_to`: the only ones a token that fixes dates
/// may read (an allow-list, so a new pipe stays closed to such tokens until it is added here).
pub const DATED_PIPES: &[&str] = &[
    "kpis",
    "kpis_summary",
    "top_pages",
    "top_sources",
    "top_browsers",
    "top_devices",
    "top_locations",
    "top_os",
    "top_campaigns",
    "entry_pages",
    "exit_pages",
    // `POST /v0/query`: its planner puts the fixed dates in place of the body's range and refuses
    // comparisons (`query::plan_query`).
    "query",
    // Issue #12's endpoints that take `date_from`/`date_to`; `web_vitals_current` and
    // `web_vitals_routes` count back `days` from today instead, so they stay closed.
    "web_vitals_distribution",
    "web_vitals_timeseries",
    "top_outbound_links",
    "top_file_downloads",
    "top_not_found_pages",
];

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Tinybird's `workspace_id`, when present.
    pub workspace_id: Option<String>,
    /// Token name (Tinybird's `name`), for logs and audit.
    pub name: Option<String>,
    /// The `jti` claim: the id of a token minted by the admin API, checked against revocations.
    pub token_id: Option<String>,
    /// Issued-at (`iat`), Unix seconds: tokens issued before their tenant was (re)created are refused.
    pub issued_at: Option<i64>,
    /// Expiry, Unix seconds (required).
    pub exp: i64,
    /// Not-before, Unix seconds.
    pub nbf: Option<i64>,
    /// What the token may do.
    pub scopes: Vec<Scope>,
    /// `limits.rps`: requests per second allowed for this token.
    pub rps: Option<u32>,
}

/// One entry of `scopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `DATASOURCES:APPEND` or `PIPES:READ`.
    pub kind: String,
    /// Data source or pipe name; may be a glob (`top_*`, `*`). `None` matches nothing.
    pub resource: Option<String>,
    /// Parameters fixed by the token; they override anything the request says.
    pub fixed_params: BTreeMap<String, String>,
}

/// A tenant id taken from a verified token: 1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting
/// with `.`. It is safe in storage keys (`events/{tenant}/...`) and cache keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    fn parse(raw: &str) -> Option<Self> {
        is_valid_tenant_id(raw).then(|| Self(raw.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A tenant id without a verified token, for tests, benchmarks and data generation only (feature
    /// `testing`, which the worker never enables). `None` when `raw` is not a valid id.
    #[cfg(any(test, feature = "testing"))]
    pub fn for_tests(raw: &str) -> Option<Self> {
        Self::parse(raw)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `raw` follows the [`TenantId`] rules (1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with `.`).
/// For trusted callers that name a tenant themselves (the admin API); it does not make a `TenantId`.
pub fn is_valid_tenant_id(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && !raw.starts_with('.')
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// What an append token allows: events into one tenant, with its fixed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendGrant {
    /// Every event lands in this tenant.
    pub tenant: TenantId,
    /// The scope's fixed parameters (`tenant_id`, and `domain` when the token fixes one).
    pub fixed: BTreeMap<String, String>,
}

/// What a read token allows for one pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadGrant {
    /// The only tenant this request can see.
    pub tenant: TenantId,
    /// The scope's fixed parameters; they win over request parameters.
    pub fixed: BTreeMap<String, String>,
    /// The token's `limits.rps`.
    pub rps: Option<u32>,
}

/// Why verified claims do not allow a request (all 403).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No scope of the needed type names this resource.
    NotInScope {
        /// The scope type that was needed.
        kind: &'static str,
        /// The data source or pipe requested (truncated).
        resource: String,
    },
    /// The matching scope has no `fixed_params.tenant_id`.
    NoTenant,
    /// `fixed_params.tenant_id` is not a valid tenant id.
    InvalidTenant,
    /// Several matching scopes name different tenants.
    AmbiguousTenant,
    /// A token signed with a tenant key names another tenant than the key's.
    CrossTenant,
    /// A token signed with a tenant key asks for more than reading.
    ReadOnlyKey,
    /// No scope allows reading a tenant-level document ([`TenantDoc`]).
    TenantDocNotInScope(TenantDoc),
    /// The token fixes `date_from`/`date_to` and the pipe has no date range (the pipe's name, truncated).
    UndatedPipe(String),
    /// The token fixes `date_from`/`date_to` and the request asks for the previous period too.
    PreviousPeriod,
}

/// A tenant-level document a token may read besides pipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantDoc {
    /// `/v0/usage.json`: events, queries and bytes of the whole tenant.
    Usage,
    /// `/v0/tenant.json`: the tenant's white-label settings.
    Settings,
    /// Writing the tenant's own settings (`/v0/segments`, `/v0/goals`): a `SETTINGS:WRITE` scope only.
    SettingsWrite,
}

impl TenantDoc {
    /// The dedicated scope type.
    pub fn scope(self) -> &'static str {
        match self {
            Self::Usage => USAGE_READ,
            Self::Settings => SETTINGS_READ,
            Self::SettingsWrite => SETTINGS_WRITE,
        }
    }

    /// Whether a `PIPES:READ` scope also allows this document: it must read every pipe (resource `*`),
    /// and, for usage (tenant-wide counts), fix nothing but the tenant (no domain, no dates).
    fn allowed_by_read_scope(self, scope: &Scope) -> bool {
        scope.resource.as_deref() == Some("*")
            && match self {
                Self::Settings => true,
                Self::SettingsWrite => false,
                Self::Usage => scope.fixed_params.keys().all(|k| k == "tenant_id"),
            }
    }
}

impl AuthError {
    /// HTTP status (always 403: the token is valid but does not allow this).
    pub fn status(&self) -> u16 {
        403
    }

    /// A message that says what is missing.
    pub fn message(&self) -> String {
        match self {
            Self::NotInScope { kind, resource } => format!(
                "the token does not allow this: it needs a {kind} scope whose resource matches '{resource}'"
            ),
            Self::NoTenant => "the token's scope has no fixed_params.tenant_id: mint a token bound to a tenant".into(),
            Self::InvalidTenant => {
                "the token's fixed_params.tenant_id is not a valid tenant id (1-64 of A-Z a-z 0-9 _ - .)".into()
            }
            Self::AmbiguousTenant => {
                "the token's matching scopes name different tenants: mint one token per tenant".into()
            }
            Self::CrossTenant => "the token names another tenant than its signing key's: a tenant key only \
                signs tokens for its own tenant (leave fixed_params.tenant_id out or set it to the key's tenant)"
                .into(),
            Self::ReadOnlyKey => {
                "tokens signed with a tenant key can only read (PIPES:READ, USAGE:READ, SETTINGS:READ): mint tracker tokens with the admin API".into()
            }
            Self::TenantDocNotInScope(TenantDoc::Usage) => {
                "reading usage needs a USAGE:READ scope, or a PIPES:READ scope on '*' that fixes nothing but \
                 tenant_id: a token limited to some pipes, a domain or dates cannot read the tenant's usage"
                    .into()
            }
            Self::TenantDocNotInScope(TenantDoc::Settings) => {
                "reading the tenant's settings needs a SETTINGS:READ scope or a PIPES:READ scope on '*' \
                 (a dashboard token): a token limited to some pipes cannot read them"
                    .into()
            }
            Self::TenantDocNotInScope(TenantDoc::SettingsWrite) => {
                "changing the tenant's settings (segments, goals) needs a SETTINGS:WRITE scope: mint a \
                 'settings' token with the admin API, or use the admin API itself; a read token cannot"
                    .into()
            }
            Self::UndatedPipe(pipe) => format!(
                "the token fixes date_from/date_to, so it can only read pipes bounded by dates ({}); '{pipe}' is not",
                DATED_PIPES.join(", ")
            ),
            Self::PreviousPeriod => "the token fixes date_from/date_to: include_previous_period would read \
                outside them, leave it out"
                .into(),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for AuthError {}

/// Allows appending to `datasource` when a `DATASOURCES:APPEND` scope matches it and binds a tenant.
pub fn authorize_append(claims: &Claims, datasource: &str) -> Result<AppendGrant, AuthError> {
    let (tenant, fixed) = bind(claims, APPEND, datasource)?;
    Ok(AppendGrant { tenant, fixed })
}

/// Allows reading `pipe` when a `PIPES:READ` scope matches it and binds a tenant.
pub fn authorize_read(claims: &Claims, pipe: &str) -> Result<ReadGrant, AuthError> {
    let (tenant, fixed) = bind(claims, READ, pipe)?;
    Ok(ReadGrant {
        tenant,
        fixed,
        rps: claims.rps,
    })
}

/// Allows reading a tenant-level document (`/v0/usage.json`, `/v0/tenant.json`): a scope of its own type
/// ([`TenantDoc::scope`], any resource), or a `PIPES:READ` scope on `*` (for usage, one that fixes
/// nothing but `tenant_id`). A token limited to some pipes (a public live counter), a domain or dates
/// reads neither. The same tenant rules as [`authorize_read`]: every allowing scope names one tenant.
pub fn authorize_tenant_doc(claims: &Claims, doc: TenantDoc) -> Result<ReadGrant, AuthError> {
    let matching: Vec<&Scope> = claims
        .scopes
        .iter()
        .filter(|s| s.kind == doc.scope() || (s.kind == READ && doc.allowed_by_read_scope(s)))
        .collect();
    let Some(first) = matching.first() else {
        return Err(AuthError::TenantDocNotInScope(doc));
    };
    let (tenant, fixed) = one_tenant(first, &matching)?;
    Ok(ReadGrant {
        tenant,
        fixed,
        rps: claims.rps,
    })
}

/// For a token whose fixed params pin `date_from` or `date_to` (names compared case-insensitively, as
/// the query planner does): only [`DATED_PIPES`] may be read, and never with `include_previous_period`
/// (the previous period lies outside the fixed dates by construction). Other tokens pass.
pub fn check_fixed_dates(
    pipe: &str,
    fixed: &BTreeMap<String, String>,
    params: &[(String, String)],
) -> Result<(), AuthError> {
    let fixed_value = |name: &str| {
        fixed
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if fixed_value("date_from").is_none() && fixed_value("date_to").is_none() {
        return Ok(());
    }
    if !DATED_PIPES.contains(&pipe) {
        return Err(AuthError::UndatedPipe(pipe.chars().take(64).collect()));
    }
    let previous = fixed_value("include_previous_period").or_else(|| {
        params
            .iter()
            .find(|(k, _)| k == "include_previous_period")
            .map(|(_, v)| v.as_str())
    });
    if previous == Some("true") {
        return Err(AuthError::PreviousPeriod);
    }
    Ok(())
}

/// Confines the claims of a token signed with a tenant's own key (EdDSA) to that key's tenant: every
/// scope must be a read scope (`PIPES:READ`, `USAGE:READ`, `SETTINGS:READ`; [`AuthError::ReadOnlyKey`]
/// otherwise), and each scope's
/// `fixed_params.tenant_id` is set to `key_tenant` when absent and must equal it when present
/// ([`AuthError::CrossTenant`] otherwise). So such a token can only ever read its own tenant.
pub fn confine_to_key_tenant(mut claims: Claims, key_tenant: &str) -> Result<Claims, AuthError> {
    for scope in &mut claims.scopes {
        if ![READ, USAGE_READ, SETTINGS_READ].contains(&scope.kind.as_str()) {
            return Err(AuthError::ReadOnlyKey);
        }
        match scope.fixed_params.get("tenant_id") {
            None => {
                scope
                    .fixed_params
                    .insert("tenant_id".to_owned(), key_tenant.to_owned());
            }
            Some(t) if t == key_tenant => {}
            Some(_) => return Err(AuthError::CrossTenant),
        }
    }
    Ok(claims)
}

fn bind(
    claims: &Claims,
    kind: &'static str,
    resource: &str,
) -> Result<(TenantId, BTreeMap<String, String>), AuthError> {
    bind_matching(claims, kind, resource, |r| glob(r, resource))
}

fn bind_matching(
    claims: &Claims,
    kind: &'static str,
    resource: &str,
    matches: impl Fn(&str) -> bool,
) -> Result<(TenantId, BTreeMap<String, String>), AuthError> {
    let matching: Vec<&Scope> = claims
        .scopes
        .iter()
        .filter(|s| s.kind == kind)
        .filter(|s| s.resource.as_deref().is_some_and(&matches))
        .collect();
    let Some(first) = matching.first() else {
        return Err(AuthError::NotInScope {
            kind,
            resource: resource.chars().take(64).collect(),
        });
    };
    one_tenant(first, &matching)
}

/// The tenant `first` binds, when every scope of `matching` binds the same one.
fn one_tenant(
    first: &Scope,
    matching: &[&Scope],
) -> Result<(TenantId, BTreeMap<String, String>), AuthError> {
    let raw = first
        .fixed_params
        .get("tenant_id")
        .ok_or(AuthError::NoTenant)?;
    if matching
        .iter()
        .any(|s| s.fixed_params.get("tenant_id") != Some(raw))
    {
        return Err(AuthError::AmbiguousTenant);
    }
    let tenant = TenantId::parse(raw).ok_or(AuthError::InvalidTenant)?;
    Ok((tenant, first.fixed_params.clone()))
}

/// Glob match where `*` is any run of characters (possibly empty) and `?` one character.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(kind: &str, resource: &str, tenant: Option<&str>) -> Scope {
        Scope {
            kind: kind.into(),
            resource: Some(resource.into()),
            fixed_params: tenant
                .map(|t| BTreeMap::from([("tenant_id".to_owned(), t.to_owned())]))
                .unwrap_or_default(),
        }
    }

    fn claims(scopes: Vec<Scope>) -> Claims {
        Claims {
            workspace_id: None,
            name: Some("t".into()),
            token_id: None,
            issued_at: None,
            exp: 0,
            nbf: None,
            scopes,
            rps: Some(5),
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*", "kpis"));
        assert!(glob("top_*", "top_pages"));
        assert!(glob("top_*", "top_"));
        assert!(!glob("top_*", "kpis"));
        assert!(glob("k?is", "kpis"));
        assert!(glob("kpis", "kpis"));
        assert!(!glob("kpis", "kpis2"));
        assert!(glob("*_pages", "entry_pages"));
        assert!(!glob("", "kpis"));
    }

    #[test]
    fn append_binds_the_token_tenant() {
        let c = claims(vec![scope(APPEND, "analytics_events", Some("acme"))]);
        let g = authorize_append(&c, "analytics_events").unwrap();
        assert_eq!(g.tenant.as_str(), "acme");
        assert_eq!(g.fixed["tenant_id"], "acme");
        assert!(matches!(
            authorize_append(&c, "other"),
            Err(AuthError::NotInScope { .. })
        ));
        assert!(matches!(
            authorize_read(&c, "kpis"),
            Err(AuthError::NotInScope { .. })
        ));
    }

    #[test]
    fn read_needs_a_valid_single_tenant() {
        let ok = claims(vec![scope(READ, "top_*", Some("acme"))]);
        let g = authorize_read(&ok, "top_pages").unwrap();
        assert_eq!((g.tenant.as_str(), g.rps), ("acme", Some(5)));
        assert!(matches!(
            authorize_read(&ok, "kpis"),
            Err(AuthError::NotInScope { .. })
        ));
        let none = claims(vec![scope(READ, "*", None)]);
        assert_eq!(authorize_read(&none, "kpis"), Err(AuthError::NoTenant));
        for bad in ["", "a/b", "../x", ".hidden", "a b", &"x".repeat(65)] {
            let c = claims(vec![scope(READ, "*", Some(bad))]);
            assert_eq!(
                authorize_read(&c, "kpis"),
                Err(AuthError::InvalidTenant),
                "{bad}"
            );
        }
        let two = claims(vec![
            scope(READ, "*", Some("a")),
            scope(READ, "kpis", Some("b")),
        ]);
        assert_eq!(
            authorize_read(&two, "kpis"),
            Err(AuthError::AmbiguousTenant)
        );
        assert_eq!(authorize_read(&two, "trend").unwrap().tenant.as_str(), "a");
        let append_only = claims(vec![scope(APPEND, "*", Some("a"))]);
        assert!(authorize_read(&append_only, "kpis").is_err());
    }

    fn with(mut s: Scope, k: &str, v: &str) -> Scope {
        s.fixed_params.insert(k.into(), v.into());
        s
    }

    #[test]
    fn tenant_documents_need_their_own_scope_or_a_whole_tenant_read_scope() {
        use TenantDoc::{Settings, Usage};
        let dashboard = claims(vec![scope(READ, "*", Some("acme"))]);
        for doc in [Usage, Settings] {
            assert_eq!(
                authorize_tenant_doc(&dashboard, doc)
                    .unwrap()
                    .tenant
                    .as_str(),
                "acme"
            );
            let own = claims(vec![scope(doc.scope(), "*", Some("acme"))]);
            assert_eq!(
                authorize_tenant_doc(&own, doc).unwrap().tenant.as_str(),
                "acme"
            );
            // A public live counter, a glob, a tracker token: refused.
            for narrow in [
                scope(READ, "current_visitors", Some("acme")),
                scope(READ, "top_*", Some("acme")),
                scope(APPEND, "*", Some("acme")),
            ] {
                assert_eq!(
                    authorize_tenant_doc(&claims(vec![narrow]), doc),
                    Err(AuthError::TenantDocNotInScope(doc))
                );
            }
        }
        // The other document's scope does not count.
        let usage_only = claims(vec![scope(USAGE_READ, "*", Some("acme"))]);
        assert!(authorize_tenant_doc(&usage_only, Settings).is_err());
        // A '*' token narrowed to a domain or dates may show the dashboard's theme, not tenant-wide usage.
        for (k, v) in [("domain", "blog.acme.com"), ("date_from", "2025-01-01")] {
            let narrowed = claims(vec![with(scope(READ, "*", Some("acme")), k, v)]);
            assert!(authorize_tenant_doc(&narrowed, Settings).is_ok());
            assert_eq!(
                authorize_tenant_doc(&narrowed, Usage),
                Err(AuthError::TenantDocNotInScope(Usage))
            );
        }
        let none = claims(vec![scope(READ, "*", None)]);
        assert_eq!(authorize_tenant_doc(&none, Usage), Err(AuthError::NoTenant));
        let bad = claims(vec![scope(READ, "*", Some("../x"))]);
        assert_eq!(
            authorize_tenant_doc(&bad, Usage),
            Err(AuthError::InvalidTenant)
        );
        let two = claims(vec![
            scope(READ, "*", Some("a")),
            scope(USAGE_READ, "*", Some("b")),
        ]);
        assert_eq!(
            authorize_tenant_doc(&two, Usage),
            Err(AuthError::AmbiguousTenant)
        );
    }

    #[test]
    fn fixed_dates_bound_every_pipe() {
        let p = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let open = BTreeMap::from([("tenant_id".to_owned(), "a".to_owned())]);
        let ipp = p(&[("include_previous_period", "true")]);
        assert!(check_fixed_dates("current_visitors", &open, &ipp).is_ok());
        assert!(check_fixed_dates("kpis", &open, &ipp).is_ok());
        for key in ["date_from", "date_to", "DATE_FROM"] {
            let mut fixed = open.clone();
            fixed.insert(key.into(), "2025-01-01".into());
            assert!(check_fixed_dates("kpis", &fixed, &[]).is_ok(), "{key}");
            assert!(check_fixed_dates(
                "top_pages",
                &fixed,
                &p(&[("include_previous_period", "false")])
            )
            .is_ok());
            assert_eq!(
                check_fixed_dates("kpis", &fixed, &ipp),
                Err(AuthError::PreviousPeriod)
            );
            for undated in [
                "current_visitors",
                "trend",
                "domains",
                "domain",
                "actions",
                "new_pipe",
            ] {
                assert_eq!(
                    check_fixed_dates(undated, &fixed, &[]),
                    Err(AuthError::UndatedPipe(undated.into())),
                    "{undated}"
                );
            }
            // A fixed include_previous_period wins over the request's.
            let mut pinned = fixed.clone();
            pinned.insert("include_previous_period".into(), "true".into());
            assert_eq!(
                check_fixed_dates("kpis", &pinned, &[]),
                Err(AuthError::PreviousPeriod)
            );
        }
    }

    #[test]
    fn fixed_dates_open_the_date_ranged_vitals_and_capture_pipes_only() {
        let fixed = BTreeMap::from([
            ("tenant_id".to_owned(), "a".to_owned()),
            ("date_from".to_owned(), "2025-01-01".to_owned()),
        ]);
        for dated in [
            "web_vitals_distribution",
            "web_vitals_timeseries",
            "top_outbound_links",
            "top_file_downloads",
            "top_not_found_pages",
        ] {
            assert!(check_fixed_dates(dated, &fixed, &[]).is_ok(), "{dated}");
        }
        // These count back `days` from today, ignoring the token's dates.
        for undated in ["web_vitals_current", "web_vitals_routes"] {
            assert_eq!(
                check_fixed_dates(undated, &fixed, &[]),
                Err(AuthError::UndatedPipe(undated.into())),
                "{undated}"
            );
        }
    }

    #[test]
    fn a_tenant_key_only_reads_its_own_tenant() {
        // Missing tenant: injected, then reads work for the key's tenant.
        let c = confine_to_key_tenant(claims(vec![scope(READ, "*", None)]), "acme").unwrap();
        assert_eq!(authorize_read(&c, "kpis").unwrap().tenant.as_str(), "acme");
        // Same tenant: kept.
        let c = claims(vec![scope(READ, "top_*", Some("acme"))]);
        assert_eq!(confine_to_key_tenant(c.clone(), "acme"), Ok(c));
        // Another tenant, in any scope: refused.
        let c = claims(vec![
            scope(READ, "kpis", None),
            scope(READ, "*", Some("globex")),
        ]);
        assert_eq!(
            confine_to_key_tenant(c, "acme"),
            Err(AuthError::CrossTenant)
        );
        // Anything but a read scope: refused, whatever its tenant.
        for s in [
            scope(APPEND, "analytics_events", Some("acme")),
            scope(APPEND, "analytics_events", None),
            scope("ADMIN", "*", None),
        ] {
            let c = claims(vec![scope(READ, "*", None), s]);
            assert_eq!(
                confine_to_key_tenant(c, "acme"),
                Err(AuthError::ReadOnlyKey)
            );
        }
        assert_eq!(AuthError::CrossTenant.status(), 403);
        assert!(AuthError::ReadOnlyKey.message().contains("PIPES:READ"));
    }

    #[test]
    fn tenant_id_rules() {
        for ok in ["acme", "a", "A-b_c.d", &"x".repeat(64)] {
            assert!(is_valid_tenant_id(ok), "{ok}");
        }
        for bad in ["", "a/b", "../x", ".hidden", "a b", &"x".repeat(65), "é"] {
            assert!(!is_valid_tenant_id(bad), "{bad}");
        }
    }
}
