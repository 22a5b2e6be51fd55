//! Enrichment: what the edge adds to an event, as pure functions.
//!
//! - Browser, OS and device class from the user agent, parsed with `woothee` (a maintained, table-driven
//!   parser), plus bot rules for crawlers, headless browsers and HTTP libraries.
//! - Source (referrer host), the five `utm_*` parameters, a normalised pathname and an `href` without
//!   query parameters other than `utm_*`.
//! - Geo from the edge (`request.cf`), falling back to the payload's `location`.
//! - A payload with identifying keys (user agent, IP) removed, URLs stripped like `href`, and the value
//!   of every sensitive key (`email`, `password`, `token`, `card`, …) masked with the tracker's own rule
//!   ([`crate::beacon::is_sensitive`]), so events from flock.js or any SDK are masked like the tracker's.
//! - [`quarantine_row`]: what is kept of a rejected row, after the same stripping and masking.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Longest pathname kept; longer ones are cut.
const MAX_PATH: usize = 512;
/// Longest dimension value (source, UTM fields) kept.
const MAX_DIM: usize = 200;
/// Payload keys that identify a person or device and are never stored.
const DROPPED_KEYS: &[&str] = &[
    "user-agent",
    "useragent",
    "user_agent",
    "ua",
    "ip",
    "ip_address",
    "ipaddress",
    "remote_addr",
    "x-forwarded-for",
];
/// Lower-case user-agent fragments that mark automated traffic woothee does not classify as a crawler.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "headless",
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "lighthouse",
    "pagespeed",
    "curl/",
    "wget",
    "python-",
    "python/",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "okhttp",
    "axios",
    "node-fetch",
    "undici",
    "libwww",
    "scrapy",
    "facebookexternalhit",
    "preview",
    "monitor",
    "uptime",
    "pingdom",
    "+http",
];

/// What the user agent says about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `chrome`, `firefox`, `safari`, `edge`, `opera`, `ie`, `samsung`, `yandex`, ... or `unknown`.
    pub browser: String,
    /// `windows`, `macos`, `ios`, `android`, `linux`, `chromeos`, ... or `unknown`.
    pub os: String,
    /// `desktop`, `mobile`, `tablet` or `bot`.
    pub device: &'static str,
    /// Crawler, headless browser or HTTP library.
    pub is_bot: bool,
}

/// Most entries each table of a [`Memo`] keeps; inputs past it are computed without being kept, so a
/// request of all-distinct values costs what it did without the memo plus a failed lookup.
const MEMO_MAX_ENTRIES: usize = 512;

/// A memo of the enrichment steps whose inputs repeat across the rows of a request: the user agent's
/// classification ([`client`]), stripped URLs ([`strip_url`]) and what a payload key is (dropped,
/// masked or kept). Real traffic repeats all three heavily (a batch from one site has a few user
/// agents, pages and property names), and the woothee parse and the key rules are the costliest
/// steps of a row. Every entry is a pure function of its key, so a row's result never depends on the
/// rows before it; a memo lives for one request and keeps at most 512 entries per table.
///
/// Its inputs are the client's, so its tables hash with a secret key ([`Memo::keyed`]): wasm32 has no
/// randomness for the standard `RandomState`, and known keys would let a body of colliding user agents
/// or property names turn every lookup into a scan of the table.
#[derive(Debug, Default)]
pub struct Memo {
    clients: HashMap<String, Client, Keyed>,
    urls: HashMap<String, String, Keyed>,
    keys: HashMap<String, KeyRule, Keyed>,
}

/// SipHash-1-3 with a fixed 128-bit key, for a [`Memo`]'s tables.
#[derive(Debug, Clone, Default)]
struct Keyed(u64, u64);

impl std::hash::BuildHasher for Keyed {
    type Hasher = siphasher::sip::SipHasher13;
    fn build_hasher(&self) -> Self::Hasher {
        siphasher::sip::SipHasher13::new_with_keys(self.0, self.1)
    }
}

/// What the payload rules do with a key: dropped at the top level (an identifying key), its value
/// masked at any depth (a sensitive key), or neither.
#[derive(Debug, Clone, Copy)]
struct KeyRule {
    dropped: bool,
    sensitive: bool,
}

impl Memo {
    /// A memo whose tables hash with a key derived from `secret` (a request's daily visitor salt:
    /// unknown to clients), so that no client can choose inputs that collide in them.
    pub fn keyed(secret: &[u8; 16]) -> Self {
        use siphasher::sip128::Hasher128;
        use std::hash::Hasher;
        let mut h = siphasher::sip128::SipHasher13::new_with_key(secret);
        h.write(b"starling enrich::Memo table key");
        let k = h.finish128();
        let keyed = Keyed(k.h1, k.h2);
        Self {
            clients: HashMap::with_hasher(keyed.clone()),
            urls: HashMap::with_hasher(keyed.clone()),
            keys: HashMap::with_hasher(keyed),
        }
    }

    /// [`client`] of `ua`, memoised.
    pub fn client(&mut self, ua: &str) -> Client {
        if let Some(c) = self.clients.get(ua) {
            return c.clone();
        }
        let c = client(ua);
        if self.clients.len() < MEMO_MAX_ENTRIES {
            self.clients.insert(ua.to_owned(), c.clone());
        }
        c
    }

    /// [`strip_url`] of `raw`, memoised.
    pub fn strip_url(&mut self, raw: &str) -> String {
        if let Some(s) = self.urls.get(raw) {
            return s.clone();
        }
        let s = strip_url(raw);
        if self.urls.len() < MEMO_MAX_ENTRIES {
            self.urls.insert(raw.to_owned(), s.clone());
        }
        s
    }

    fn key_rule(&mut self, key: &str) -> KeyRule {
        if let Some(r) = self.keys.get(key) {
            return *r;
        }
        let r = KeyRule {
            dropped: DROPPED_KEYS.contains(&key.to_ascii_lowercase().as_str()),
            sensitive: crate::beacon::is_sensitive(key.as_bytes()),
        };
        if self.keys.len() < MEMO_MAX_ENTRIES {
            self.keys.insert(key.to_owned(), r);
        }
        r
    }

    /// [`sanitize_payload`], with this memo's URLs and key rules.
    pub fn sanitize_payload(&mut self, mut payload: Map<String, Value>) -> Map<String, Value> {
        // One pass and one rule lookup per key: drop, else mask, else strip a URL and mask inside.
        // (Stripping before masking, as the rule reads, gives the same: a masked value is replaced.)
        payload.retain(|key, value| {
            let rule = self.key_rule(key);
            if rule.dropped {
                return false;
            }
            if rule.sensitive {
                *value = Value::String(MASK.to_owned());
                return true;
            }
            if let ("href" | "referrer" | "url", Value::String(s)) = (key.as_str(), &mut *value) {
                if !s.is_empty() {
                    *s = self.strip_url(s);
                }
            }
            self.mask_sensitive(value);
            true
        });
        payload
    }

    fn mask_sensitive(&mut self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    self.mask_entry(key, v);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_sensitive(v)),
            _ => {}
        }
    }

    fn mask_entry(&mut self, key: &str, value: &mut Value) {
        if self.key_rule(key).sensitive {
            *value = Value::String(MASK.to_owned());
        } else {
            self.mask_sensitive(value);
        }
    }
}

/// Classifies a user agent. An empty one is `unknown` but not a bot (server-side senders often omit it).
pub fn client(ua: &str) -> Client {
    let lower = ua.to_ascii_lowercase();
    let parsed = woothee::parser::Parser::new().parse(ua);
    let is_bot = parsed.as_ref().is_some_and(|r| r.category == "crawler")
        || BOT_MARKERS.iter().any(|m| lower.contains(m));
    let browser = browser(&lower, parsed.as_ref().map(|r| r.name));
    let os = os(&lower, parsed.as_ref().map(|r| r.os));
    let device = if is_bot {
        "bot"
    } else if lower.contains("ipad")
        || lower.contains("tablet")
        || (lower.contains("android") && !lower.contains("mobile"))
    {
        "tablet"
    } else if parsed
        .as_ref()
        .is_some_and(|r| r.category == "smartphone" || r.category == "mobilephone")
        || lower.contains("mobile")
    {
        "mobile"
    } else {
        "desktop"
    };
    Client {
        browser,
        os,
        device,
        is_bot,
    }
}

fn browser(lower: &str, name: Option<&str>) -> String {
    // Chromium derivatives that woothee reports as Chrome or Safari.
    for (marker, name) in [
        ("edg/", "edge"),
        ("edga/", "edge"),
        ("edgios/", "edge"),
        ("opr/", "opera"),
        ("samsungbrowser/", "samsung"),
        ("yabrowser/", "yandex"),
        ("fxios/", "firefox"),
        ("crios/", "chrome"),
    ] {
        if lower.contains(marker) {
            return name.to_owned();
        }
    }
    match name {
        Some("Internet Explorer") => "ie".to_owned(),
        Some("Mobile Safari") | Some("Safari") => "safari".to_owned(),
        Some(n) if !n.is_empty() && n != "UNKNOWN" => n.to_ascii_lowercase().replace(' ', "_"),
        _ if lower.contains("chrome/") => "chrome".to_owned(),
        _ => "unknown".to_owned(),
    }
}

fn os(lower: &str, name: Option<&str>) -> String {
    match name {
        Some(n) if n.starts_with("Windows") => "windows",
        Some("Mac OSX") | Some("Mac OS") => "macos",
        Some("iPhone") | Some("iPad") | Some("iPod") | Some("iOS") => "ios",
        Some("Android") => "android",
        Some("ChromeOS") => "chromeos",
        Some("Linux") => "linux",
        _ if lower.contains("android") => "android",
        _ if lower.contains("iphone") || lower.contains("ipad") => "ios",
        _ if lower.contains("cros") => "chromeos",
        _ if lower.contains("mac os x") => "macos",
        _ if lower.contains("linux") => "linux",
        _ => "unknown",
    }
    .to_owned()
}

/// A parsed absolute URL: the parts enrichment needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url<'a> {
    /// `https`, `http`, `android-app`, ...
    pub scheme: &'a str,
    /// Lower-cased host without port or credentials.
    pub host: String,
    /// Path as sent (may be empty).
    pub path: &'a str,
    /// Query string without `?` (may be empty).
    pub query: &'a str,
}

/// Splits `scheme://[user@]host[:port]/path?query#fragment`; `None` for anything else.
pub fn parse_url(raw: &str) -> Option<Url<'_>> {
    let raw = raw.trim();
    let (scheme, rest) = raw.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        host_port
            .split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    Some(Url {
        scheme,
        host: host.to_ascii_lowercase(),
        path,
        query,
    })
}

/// A host without a leading `www.` and without a trailing dot.
pub fn bare_host(host: &str) -> &str {
    let host = host.trim_end_matches('.');
    host.strip_prefix("www.").unwrap_or(host)
}

/// Normalises a pathname: no query or fragment, a leading `/`, no trailing `/` (except the root), no
/// repeated slashes, at most 512 bytes.
pub fn normalize_path(raw: &str) -> String {
    let raw = raw.split(['?', '#']).next().unwrap_or_default();
    let mut out = String::with_capacity(raw.len() + 1);
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    truncate(out, MAX_PATH)
}

/// The page of a page hit: [`normalize_path`] of the sent pathname, plus its fragment when the
/// tracker marked the hit as hash-routed (`data-hash`, `/app#/settings`). `location.pathname` never
/// contains `#` (a literal one is `%23`), so a `#` in the sent pathname is that mark; the fragment's
/// own query (`#/reset?token=…`) is dropped like any other query. At most 512 bytes.
pub fn hash_routed_path(raw: &str) -> String {
    let Some((path, fragment)) = raw.split_once('#') else {
        return normalize_path(raw);
    };
    match fragment.split('?').next().unwrap_or_default() {
        "" => normalize_path(path),
        f => truncate(format!("{}#{f}", normalize_path(path)), MAX_PATH),
    }
}

/// The `utm_*` parameters of a page URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Utm {
    /// `utm_source`.
    pub source: String,
    /// `utm_medium`.
    pub medium: String,
    /// `utm_campaign`.
    pub campaign: String,
    /// `utm_term`.
    pub term: String,
    /// `utm_content`.
    pub content: String,
}

/// Reads the five `utm_*` parameters (first occurrence each, percent-decoded, trimmed).
pub fn utm(query: &str) -> Utm {
    let mut u = Utm::default();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "utm_source" => &mut u.source,
            "utm_medium" => &mut u.medium,
            "utm_campaign" => &mut u.campaign,
            "utm_term" => &mut u.term,
            "utm_content" => &mut u.content,
            _ => continue,
        };
        if slot.is_empty() {
            *slot = truncate(v.trim().to_owned(), MAX_DIM);
        }
    }
    u
}

/// A URL without fragment and without query parameters other than `utm_*`: personal data often rides
/// in query strings (`?email=`, reset tokens), so nothing else is kept.
pub fn strip_url(raw: &str) -> String {
    let Some(url) = parse_url(raw) else {
        return String::new();
    };
    let mut out = format!("{}://{}{}", url.scheme, url.host, url.path);
    let kept: Vec<(String, String)> = form_urlencoded::parse(url.query.as_bytes())
        .filter(|(k, _)| k.starts_with("utm_"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(kept)
                .finish(),
        );
    }
    truncate(out, 2 * MAX_PATH)
}

/// The traffic source for a referrer: its host without `www.`, or empty for direct traffic, a referrer
/// that is not a URL, or one on the site itself (`site_host`).
pub fn source(referrer: &str, site_host: &str) -> String {
    let Some(url) = parse_url(referrer) else {
        return String::new();
    };
    let host = bare_host(&url.host);
    if host.is_empty() || host == bare_host(site_host) {
        return String::new();
    }
    truncate(host.to_owned(), MAX_DIM)
}

/// Country, region and city.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Geo {
    /// ISO 3166-1 alpha-2, upper case, or empty.
    pub country: String,
    /// Region name or code, or empty.
    pub region: String,
    /// City, or empty.
    pub city: String,
}

/// Geo from the edge when it knows the country, else from the payload's `location`: flock.js sends an
/// ISO-2 country string; Tinybird's fixtures a `{country, region, city}` object.
pub fn geo(edge: &Geo, location: Option<&Value>) -> Geo {
    let country_ok = |c: &str| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic());
    if country_ok(&edge.country) {
        return Geo {
            country: edge.country.to_ascii_uppercase(),
            region: truncate(edge.region.clone(), MAX_DIM),
            city: truncate(edge.city.clone(), MAX_DIM),
        };
    }
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(|s| truncate(s.trim().to_owned(), MAX_DIM))
            .unwrap_or_default()
    };
    let (country, region, city) = match location {
        Some(Value::Object(o)) => (
            text(o.get("country")),
            text(o.get("region")),
            text(o.get("city")),
        ),
        Some(v @ Value::String(_)) => (text(Some(v)), String::new(), String::new()),
        _ => Default::default(),
    };
    if country_ok(&country) {
        Geo {
            country: country.to_ascii_uppercase(),
            region,
            city,
        }
    } else {
        Geo::default()
    }
}

/// The user agent a payload carries (`user-agent`, flock.js; `userAgent`, Tinybird's fixtures).
pub fn payload_user_agent(payload: &Map<String, Value>) -> Option<&str> {
    ["user-agent", "userAgent", "user_agent"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// What a masked value is replaced with (the tracker writes the same).
pub const MASK: &str = "********";

/// The payload as stored: identifying keys removed (at the top level, where clients put them),
/// `href`/`referrer`/`url` stripped of query parameters other than `utm_*`, and the value of every
/// sensitive key masked at any depth ([`mask_sensitive`]), whichever client sent it.
pub fn sanitize_payload(payload: Map<String, Value>) -> Map<String, Value> {
    Memo::default().sanitize_payload(payload)
}

/// Replaces the value of every sensitive key (the tracker's rule, [`crate::beacon::is_sensitive`]) in
/// `value`, at any depth and of any type, with [`MASK`].
pub fn mask_sensitive(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                mask_entry(key, v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_sensitive),
        _ => {}
    }
}

fn mask_entry(key: &str, value: &mut Value) {
    if crate::beacon::is_sensitive(key.as_bytes()) {
        *value = Value::String(MASK.to_owned());
    } else {
        mask_sensitive(value);
    }
}

/// What is kept of a quarantined row: enough to debug it, nothing an accepted row would not keep. A JSON
/// object keeps its fields after the accepted rows' stripping and masking ([`sanitize_payload`], applied
/// to the envelope and to its `payload`, object or JSON string); a `payload` string that is not a JSON
/// object is kept as its length only. A row that is not JSON is kept as the parser's error and its
/// length (the parser's message names a position, never content).
pub fn quarantine_row(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(mut envelope)) => {
            let payload = match envelope.remove("payload") {
                Some(Value::Object(p)) => Some(Value::Object(sanitize_payload(p))),
                Some(Value::String(s)) => {
                    Some(Value::String(match serde_json::from_str::<Value>(&s) {
                        Ok(Value::Object(p)) => Value::Object(sanitize_payload(p)).to_string(),
                        _ => format!("[payload not a JSON object: {} bytes]", s.len()),
                    }))
                }
                Some(Value::Null) | None => None,
                Some(other) => Some(Value::String(format!(
                    "[payload not a JSON object: {} bytes]",
                    other.to_string().len()
                ))),
            };
            let mut kept = sanitize_payload(envelope);
            if let Some(p) = payload {
                kept.insert("payload".to_owned(), p);
            }
            Value::Object(kept).to_string()
        }
        Ok(other) => format!(
            "[not a JSON object: a JSON {} of {} bytes]",
            match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                Value::Bool(_) => "boolean",
                _ => "null",
            },
            text.len()
        ),
        Err(e) => format!("[invalid JSON: {e}; {} bytes]", text.len()),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_agents() {
        let cases = [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "chrome", "windows", "desktop", false),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15", "safari", "macos", "desktop", false),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "safari", "ios", "mobile", false),
            ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "safari", "ios", "tablet", false),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", "chrome", "android", "mobile", false),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "firefox", "linux", "desktop", false),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "edge", "windows", "desktop", false),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "googlebot", "unknown", "bot", true),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", "chrome", "linux", "bot", true),
            ("curl/8.5.0", "http_library", "unknown", "bot", true),
            ("python-requests/2.32", "unknown", "unknown", "bot", true),
            ("", "unknown", "unknown", "desktop", false),
        ];
        for (ua, browser, os, device, bot) in cases {
            let c = client(ua);
            assert_eq!(
                (c.browser.as_str(), c.os.as_str(), c.device, c.is_bot),
                (browser, os, device, bot),
                "{ua}"
            );
        }
    }

    #[test]
    fn urls_paths_and_sources() {
        let u = parse_url("HTTPS://user@WWW.Example.com:8443/a/b?x=1&utm_source=n#top").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.path, u.query),
            ("HTTPS", "www.example.com", "/a/b", "x=1&utm_source=n")
        );
        assert_eq!(parse_url("/relative"), None);
        assert_eq!(parse_url("http://[::1]:80/x").unwrap().host, "::1");
        for (raw, want) in [
            ("", "/"),
            ("/", "/"),
            ("/a/", "/a"),
            ("a//b/", "/a/b"),
            ("/p?q=1#h", "/p"),
            ("/x#/y", "/x"),
        ] {
            assert_eq!(normalize_path(raw), want, "{raw:?}");
        }
        assert_eq!(normalize_path(&"/x".repeat(400)).len(), 512);
        for (raw, want) in [
            ("/app#/settings", "/app#/settings"),
            ("/app/#/settings/2?email=a@b.c", "/app#/settings/2"),
            ("//app#", "/app"),
            ("/app#?x=1", "/app"),
            ("/plain", "/plain"),
        ] {
            assert_eq!(hash_routed_path(raw), want, "{raw:?}");
        }
        assert_eq!(
            hash_routed_path(&["/a#", &"x".repeat(600)].concat()).len(),
            512
        );
        assert_eq!(
            source("https://www.google.com/search?q=x", "acme.example"),
            "google.com"
        );
        assert_eq!(source("https://acme.example/other", "www.acme.example"), "");
        assert_eq!(source("", "acme.example"), "");
        assert_eq!(
            source("android-app://com.google.android.gm/", "a.example"),
            "com.google.android.gm"
        );
        assert_eq!(source("not a url", "a.example"), "");
    }

    #[test]
    fn utm_and_stripping() {
        let q = "utm_source=News%20letter&utm_medium=email&utm_campaign=nov+sale&utm_term=t&utm_content=c&utm_source=second&email=a%40b.c";
        let u = utm(q);
        assert_eq!(
            (
                u.source.as_str(),
                u.medium.as_str(),
                u.campaign.as_str(),
                u.term.as_str(),
                u.content.as_str()
            ),
            ("News letter", "email", "nov sale", "t", "c")
        );
        let s = strip_url("https://acme.example/p?email=a@b.c&utm_campaign=nov&token=x#frag");
        assert_eq!(s, "https://acme.example/p?utm_campaign=nov");
        assert_eq!(
            strip_url("https://acme.example/p?email=a@b.c"),
            "https://acme.example/p"
        );
        assert_eq!(strip_url("garbage"), "");
    }

    #[test]
    fn geo_prefers_the_edge_then_the_payload() {
        let edge = Geo {
            country: "de".into(),
            region: "Berlin".into(),
            city: "Berlin".into(),
        };
        assert_eq!(geo(&edge, Some(&json!("US"))).country, "DE");
        let none = Geo::default();
        assert_eq!(
            geo(&none, Some(&json!("us"))),
            Geo {
                country: "US".into(),
                ..Geo::default()
            }
        );
        let nested = json!({"country": "ES", "region": "Madrid", "city": "Madrid"});
        assert_eq!(geo(&none, Some(&nested)).city, "Madrid");
        assert_eq!(geo(&none, Some(&json!("Spain"))), Geo::default());
        assert_eq!(geo(&none, None), Geo::default());
    }

    #[test]
    fn payloads_lose_identifying_keys() {
        let p = json!({"user-agent": "UA", "userAgent": "UA", "IP": "1.2.3.4", "href": "https://a.example/x?email=a@b.c&utm_medium=m",
            "referrer": "https://g.example/?q=secret", "plan": "pro"});
        let Value::Object(p) = p else { unreachable!() };
        assert_eq!(payload_user_agent(&p), Some("UA"));
        let out = Value::Object(sanitize_payload(p));
        assert_eq!(
            out,
            json!({"href": "https://a.example/x?utm_medium=m", "referrer": "https://g.example/", "plan": "pro"})
        );
    }

    #[test]
    fn payloads_are_masked_like_the_tracker_masks_them() {
        let p = json!({"email": "ann@example.com", "userEmail": "b@example.com", "plan": "pro",
            "form": {"newPassword1": "hunter2", "fields": [{"cc_number": 4111, "size": "L"}]},
            "api_token": {"nested": "x"}, "shipping": "express", "author": "ann"});
        let Value::Object(p) = p else { unreachable!() };
        assert_eq!(
            Value::Object(sanitize_payload(p)),
            json!({"email": MASK, "userEmail": MASK, "plan": "pro",
                "form": {"newPassword1": MASK, "fields": [{"cc_number": MASK, "size": "L"}]},
                "api_token": MASK, "shipping": "express", "author": "ann"})
        );
        // The same keys the tracker masks (beacon::mask_json) are masked here.
        for key in [
            "email", "password", "card", "phone", "pin", "ssn", "auth", "user",
        ] {
            let mut v = json!({ key: "v" });
            mask_sensitive(&mut v);
            assert_eq!(v[key], MASK, "{key}");
        }
    }

    #[test]
    fn quarantined_rows_are_stripped_and_masked_like_accepted_ones() {
        let row = json!({"timestamp": "2099-01-01T00:00:00Z", "action": "signup", "session_id": "s1",
            "tenant_id": "acme", "email": "top@example.com",
            "payload": json!({"href": "https://a.example/p?session=abc&utm_source=x", "email": "ann@example.com",
                "user-agent": "UA/1", "plan": "pro"}).to_string()})
        .to_string();
        let kept: Value = serde_json::from_str(&quarantine_row(&row)).unwrap();
        let payload: Value = serde_json::from_str(kept["payload"].as_str().unwrap()).unwrap();
        assert_eq!(
            payload,
            json!({"href": "https://a.example/p?utm_source=x", "email": MASK, "plan": "pro"})
        );
        assert_eq!(kept["email"], MASK);
        assert_eq!(
            (kept["action"].as_str(), kept["timestamp"].as_str()),
            (Some("signup"), Some("2099-01-01T00:00:00Z"))
        );
        // Object payloads too; a payload that is not an object keeps only its size.
        let obj =
            json!({"action": "x", "payload": {"phone": "555", "url": "https://a.example/?q=1"}})
                .to_string();
        assert_eq!(
            serde_json::from_str::<Value>(&quarantine_row(&obj)).unwrap()["payload"],
            json!({"phone": MASK, "url": "https://a.example/"})
        );
        let bad = json!({"action": "x", "payload": "{\"email\": \"ann@example.com\""}).to_string();
        let kept = quarantine_row(&bad);
        assert!(
            !kept.contains("ann@example.com") && kept.contains("payload not a JSON object"),
            "{kept}"
        );
        // Not JSON at all: the parser's position, never the content.
        let broken = r#"{"email": "ann@example.com", "href": "https://a.example/?s=1"#;
        let kept = quarantine_row(broken);
        assert!(
            kept.starts_with("[invalid JSON: ") && !kept.contains("ann@"),
            "{kept}"
        );
        assert_eq!(
            quarantine_row("[1,2]"),
            "[not a JSON object: a JSON array of 5 bytes]"
        );
    }
}
