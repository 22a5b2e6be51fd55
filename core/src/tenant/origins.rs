//! Origins and hostnames: the ingest check of a request's `Origin` against a tenant's `allowed_origins`,
//! and the dashboard's `frame-ancestors`.

use super::{Status, Tenant};

/// Whether `s` is a lowercase DNS hostname: dot-separated labels of 1 to 63 of `a-z 0-9 -` (not starting
/// or ending with `-`), at most 253 characters in all. IP addresses in dotted form pass too.
pub fn is_valid_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// An origin split into its parts, lowercase, with the scheme's default port dropped.
#[derive(Debug, PartialEq, Eq)]
struct Origin<'a> {
    scheme: &'a str,
    /// Without a `*.` prefix.
    host: &'a str,
    wildcard: bool,
    port: Option<u16>,
}

impl Origin<'_> {
    fn render(&self) -> String {
        let star = if self.wildcard { "*." } else { "" };
        match self.port {
            Some(p) => format!("{}://{star}{}:{p}", self.scheme, self.host),
            None => format!("{}://{star}{}", self.scheme, self.host),
        }
    }
}

/// Parses a lowercase origin; `allow_wildcard` admits a `*.` host prefix.
fn parse_origin(s: &str, allow_wildcard: bool) -> Option<Origin<'_>> {
    let (scheme, rest) = s.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p.parse().ok().filter(|&n| n != 0 && !p.starts_with('0'))?;
            (h, Some(port))
        }
        None => (rest, None),
    };
    let (host, wildcard) = match host.strip_prefix("*.") {
        Some(h) if allow_wildcard => (h, true),
        _ => (host, false),
    };
    if !is_valid_hostname(host) {
        return None;
    }
    let default = if scheme == "https" { 443 } else { 80 };
    Some(Origin {
        scheme,
        host,
        wildcard,
        port: port.filter(|&p| p != default),
    })
}

/// The stored form of an allowed origin (lowercase, no trailing slash, no default port), or `None`.
pub(super) fn normalize_origin(s: &str) -> Option<String> {
    let lower = s.trim().to_ascii_lowercase();
    parse_origin(&lower, true).map(|o| o.render())
}

/// Whether a request's `Origin` may send events for a tenant. An empty list allows any origin; no
/// `Origin` (a server-side sender) is allowed; otherwise the origin must match an entry exactly
/// (case-insensitive scheme, host and port) or an entry `scheme://*.example.com`, which matches every
/// subdomain of `example.com` but not `example.com` itself. `Origin: null` matches nothing.
pub fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed.is_empty() {
        return true;
    }
    let lower = origin.trim().to_ascii_lowercase();
    let Some(o) = parse_origin(&lower, false) else {
        return false;
    };
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        let Some(e) = parse_origin(&entry, true) else {
            return false;
        };
        e.scheme == o.scheme
            && e.port == o.port
            && if e.wildcard {
                o.host
                    .strip_suffix(e.host)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
            } else {
                e.host == o.host
            }
    })
}

/// The origins that may embed the dashboard in a frame (its CSP `frame-ancestors`, and the only parents
/// whose `postMessage` it accepts), besides its own origin: the operator's list `operator` (origins
/// separated by spaces or commas, as for `allowed_origins`; entries that are not origins are skipped)
/// and the `allowed_origins` of `tenant` when the dashboard URL names an active one. Unlike ingest, an
/// empty list allows no other origin.
pub fn frame_ancestors(operator: &str, tenant: Option<&Tenant>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let tenant_origins = tenant
        .filter(|t| t.status == Status::Active)
        .map(|t| t.allowed_origins.as_slice())
        .unwrap_or_default();
    let candidates = operator
        .split([' ', ',', '\n', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .chain(tenant_origins.iter().cloned());
    for origin in candidates.filter_map(|o| normalize_origin(&o)) {
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    out
}

/// `csp` with its `frame-ancestors` directive set to `'self'` and `ancestors` (added when absent).
pub fn with_frame_ancestors(csp: &str, ancestors: &[String]) -> String {
    let mut directive = String::from("frame-ancestors 'self'");
    for a in ancestors {
        directive.push(' ');
        directive.push_str(a);
    }
    let mut parts: Vec<String> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.to_ascii_lowercase().starts_with("frame-ancestors"))
        .map(str::to_owned)
        .collect();
    parts.push(directive);
    parts.join("; ")
}
