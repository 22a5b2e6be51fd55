//! Decisions of the opt-in capture modules, compiled only into the extended tracker module (feature
//! `ext`), which the loader fetches instead of the default one when a site enables one of them.
//!
//! Each capture script only observes the browser (performance entries, clicks, scrolling, time
//! visible) and reports what it saw with a [`kind`]; [`capture`] answers with the custom event the
//! loader sends (`["name", {props}]`), or nothing:
//! - web vitals (`data-web-vitals`): `web_vital` with the standard rating ([`rating`]), the page's
//!   `pathname` and its `href` stripped like every URL, in the shape of Tinybird's web analytics kit;
//! - link clicks (`data-outbound-links`, `data-file-downloads`): `Outbound Link: Click` or
//!   `File Download` with the target `url` stripped like every URL ([`link_event`]);
//! - engagement (`data-engagement`): `engagement` with scroll depth `sd` (%) and engaged time `e` (ms),
//!   only when the depth grew or at least 3 s passed ([`engagement_due`]);
//! - a `404` event with the `path` after the first page hit of a page with `data-404` ([`not_found`]);
//! - hash routing (`data-hash`, [`setting::HASH`] in [`verdict`](crate::verdict)): the fragment is
//!   part of the page.

use crate::{copy, eq, kind, setting, strip_query, take, Config, Out};

/// The web vitals in the order the loader numbers them (`LCP`, `INP`, `CLS`, `FCP`, `TTFB`), each with
/// the standard thresholds in thousandths of its unit (good ≤ first, needs improvement ≤ second, poor
/// above): web.dev's Core Web Vitals. Only the numbers ship (the names are the loader's).
pub const METRICS: [(u32, u32); 5] = [
    (2_500_000, 4_000_000),
    (200_000, 500_000),
    (100, 250),
    (1_800_000, 3_000_000),
    (800_000, 1_800_000),
];

/// The file extensions counted as downloads unless `data-file-downloads` lists its own
/// (comma-separated): Plausible's default list.
pub const DOWNLOADS: &[u8] =
    b"pdf,xlsx,docx,txt,rtf,csv,exe,key,pps,ppt,pptx,7z,pkg,rar,gz,zip,avi,mov,mp4,mpeg,wmv,midi,mp3,wav,wma,dmg";

/// The standard rating of metric `metric` (see [`METRICS`]) at `milli` thousandths of its unit:
/// `good`, `needs-improvement` or `poor`; `None` for an unknown metric.
pub fn rating(metric: u32, milli: u32) -> Option<&'static [u8]> {
    let (good, ni) = METRICS.get(metric as usize)?;
    Some(if milli <= *good {
        b"good"
    } else if milli <= *ni {
        b"needs-improvement"
    } else {
        b"poor"
    })
}

/// Whether the link's path (`a.pathname`) has one of the extensions in the comma-separated `list`
/// (compared without case): the text after its last `.`, as Plausible matches file types; a path
/// whose last segment has no `.` has none.
fn has_extension(path: &[u8], list: &[u8]) -> bool {
    let mut ext = None;
    for (i, &c) in path.iter().enumerate() {
        if c == b'.' {
            ext = path.get(i + 1..);
        } else if c == b'/' {
            ext = None;
        }
    }
    let Some(ext) = ext else {
        return false;
    };
    let mut list = list;
    while !list.is_empty() {
        if take(&mut list, b',').eq_ignore_ascii_case(ext) {
            return true;
        }
    }
    false
}

/// The event a click on a link makes, reported by script `which` (`1` outbound links, `2` file
/// downloads), with the link's host name and path as the browser parsed them (`a.hostname`,
/// `a.pathname`): `Outbound Link: Click` when the link has a host other than the page's and outbound
/// links are on; `File Download` when its path has a download extension and it is not already
/// counted as an outbound click. `None`: nothing to send (same-host pages, `mailto:`, `javascript:`…,
/// which have no host).
pub fn link_event(
    cfg: &Config,
    page_host: &[u8],
    link_host: &[u8],
    link_path: &[u8],
    which: u32,
) -> Option<&'static [u8]> {
    let outbound =
        cfg.on(b"data-outbound-links") && !link_host.is_empty() && !eq(link_host, page_host);
    if which == 1 && outbound {
        return Some(b"Outbound Link: Click");
    }
    let list = cfg.attr(b"data-file-downloads")?;
    let list = if list.is_empty() || eq(list, b"true") {
        DOWNLOADS
    } else {
        list
    };
    (which == 2 && !outbound && !link_host.is_empty() && has_extension(link_path, list))
        .then_some(b"File Download")
}

/// Scroll depth in percent: the deepest pixel seen over the document height, rounded, at most 100
/// (a document without height counts as fully seen).
pub fn scroll_depth(deepest: u32, height: u32) -> u32 {
    if height == 0 {
        return 100;
    }
    ((u64::from(deepest) * 200 / u64::from(height)).div_ceil(2)).min(100) as u32
}

/// Whether an engagement event is worth sending (Plausible's rule): the scroll depth grew since the
/// last one sent, or the page was engaged for at least 3 s since then.
pub fn engagement_due(depth: u32, last_depth: u32, ms: u32) -> bool {
    depth > last_depth || ms >= 3000
}

/// Whether a page hit is followed by a `404` event: on a page with `data-404`, after its first page
/// hit (`previous` is the URL of the page hit sent before this one, empty for the first). A call
/// `starling.track('404', {path})` works everywhere.
pub fn not_found(cfg: &Config, previous: &[u8]) -> bool {
    previous.is_empty() && cfg.on(b"data-404")
}

/// Writes `n` in decimal.
fn num(n: u32, out: &mut Out) {
    if n >= 10 {
        num(n / 10, out);
    }
    out.copy(&[b'0' + (n % 10) as u8], copy::RAW);
}

/// Writes `,"key":"value` (the comma unless right after `{`), the value escaped for a JSON string
/// ([`copy::JSON`]); the caller closes the string (the last one by the end of the answer).
#[inline(never)]
fn field(key: &[u8], value: &[u8], out: &mut Out) {
    if out.bytes().last() != Some(&b'{') {
        out.copy(b",", copy::RAW);
    }
    out.copy(b"\"", copy::RAW);
    out.copy(key, copy::RAW);
    out.copy(b"\":\"", copy::RAW);
    out.copy(value, copy::JSON);
}

/// What a capture script's report becomes (the extended module's `e`): writes `["action",{props}]`
/// (JSON) into `out` and returns whether to send it (false also when `out` overflowed). `input` is
/// `host\0href\0pathname\0text`: the page (`location`) and what the script saw (the kit's vital
/// props as JSON for [`kind::VITAL`], the link's `href\0hostname\0pathname` for [`kind::LINK`]; for
/// [`kind::NOT_FOUND`], asked by the loader right after a page hit, the page hit before it, empty
/// for the first). `n` is as [`kind`] says. The loader then sends it like any custom event (masking,
/// globals, privacy rules, envelope).
pub fn capture(
    settings: u32,
    attrs: &[u8],
    input: &[u8],
    kind: u32,
    n: [u32; 4],
    out: &mut Out,
) -> bool {
    // Only attributes the default module does not file by index are read here: no parsing.
    let cfg = &Config::unparsed(attrs);
    let mut rest = input;
    let [host, href, path] = [0; 3].map(|_| take(&mut rest, 0));
    let text = rest;
    let keep_query = settings & setting::KEEP_QUERY != 0;
    let [a, b, c, d] = n;
    out.copy(b"[\"", copy::RAW);
    match kind {
        kind::VITAL => {
            // The script's props, then the rating and where it was measured.
            let (Some(rating), Some(props)) = (rating(a, b), text.strip_suffix(b"}")) else {
                return false;
            };
            out.copy(b"web_vital\",", copy::RAW);
            out.copy(props, copy::RAW);
            field(b"rating", rating, out);
            out.copy(b"\"", copy::RAW);
            field(b"pathname", path, out);
            out.copy(b"\"", copy::RAW);
            field(b"href", b"", out);
            strip_query(href, keep_query, out);
        }
        kind::LINK => {
            // The link: `href\0hostname\0pathname`.
            let mut link = text;
            let [target, link_host] = [0; 2].map(|_| take(&mut link, 0));
            let Some(name) = link_event(cfg, host, link_host, link, a) else {
                return false;
            };
            out.copy(name, copy::RAW);
            out.copy(b"\",{", copy::RAW);
            field(b"url", b"", out);
            strip_query(target, keep_query, out);
        }
        kind::ENGAGE => {
            let sd = scroll_depth(a, b);
            if !engagement_due(sd, d, c) {
                return false;
            }
            out.copy(b"engagement\",{\"sd\":", copy::RAW);
            num(sd, out);
            out.copy(b",\"e\":", copy::RAW);
            num(c, out);
            field(b"pathname", path, out);
        }
        kind::NOT_FOUND if not_found(cfg, text) => {
            out.copy(b"404\",{", copy::RAW);
            field(b"path", path, out);
        }
        _ => return false,
    }
    // Every string written is closed here: the last field's value ends the object.
    out.copy(b"\"}]", copy::RAW);
    !out.full()
}

#[cfg(test)]
mod tests {
    // The same tests run in headless Chromium as wasm32 (scripts/test-tracker.sh): there `#[test]` is
    // wasm-bindgen-test's attribute.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::{kind, setting, setup, verdict, Config, Out};

    fn attrs(list: &[(&str, &str)]) -> &'static [u8] {
        let joined = list.iter().flat_map(|(k, v)| [*k, *v]).collect::<Vec<_>>();
        joined.join("\0").leak().as_bytes()
    }

    /// What the extended module answers for a capture on page `href`:
    /// the action and the props, parsed; `None` when nothing is to be sent.
    fn capture_on(
        cfg: &[(&str, &str)],
        href: &str,
        kind: u32,
        n: [u32; 4],
        text: &str,
    ) -> Option<(String, serde_json::Value)> {
        let rest = href.split_once("://").map_or("", |r| r.1);
        let host = rest.split(['/', ':']).next().unwrap_or("");
        let path = rest[host.len()..].split(['?', '#']).next().unwrap_or("");
        let path = if path.is_empty() { "/" } else { path };
        let input = [host, href, path, text].join("\0");
        let mut buf = vec![0u8; 4096];
        let mut out = Out::new(&mut buf);
        let attrs = attrs(cfg);
        let settings = Config::parse(attrs).settings();
        if !capture(settings, attrs, input.as_bytes(), kind, n, &mut out) {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(out.bytes()).expect("valid JSON");
        let [action, props] = v.as_array().expect("[action, props]").as_slice() else {
            panic!("{v}")
        };
        assert!(props.is_object(), "{v}");
        Some((action.as_str().expect("action").to_owned(), props.clone()))
    }

    #[test]
    fn ratings_follow_the_standard_thresholds() {
        let cases = [
            (0, 2_500_000, "good"),
            (0, 2_500_001, "needs-improvement"),
            (0, 4_000_001, "poor"),
            (1, 200_000, "good"),
            (1, 500_000, "needs-improvement"),
            (1, 500_001, "poor"),
            (2, 100, "good"),
            (2, 101, "needs-improvement"),
            (2, 251, "poor"),
            (3, 1_800_000, "good"),
            (3, 3_000_001, "poor"),
            (4, 800_000, "good"),
            (4, 1_800_000, "needs-improvement"),
            (4, 1_800_001, "poor"),
        ];
        for (m, v, want) in cases {
            assert_eq!(rating(m, v), Some(want.as_bytes()), "metric {m} at {v}");
        }
        assert_eq!(rating(5, 0), None);
    }

    #[test]
    fn a_web_vital_gets_its_rating_path_and_stripped_href_in_the_kit_shape() {
        let href = "https://a.example/blog/x?utm_source=n&q=secret#h";
        let props = r#"{"name":"LCP","value":3100.5,"delta":3100.5,"id":"v1-1-a-0","navigationType":"navigate"}"#;
        let (action, p) =
            capture_on(&[], href, kind::VITAL, [0, 3_100_500, 0, 0], props).expect("sent");
        assert_eq!(action, "web_vital");
        // The kit's shape, in its order, then where it was measured.
        let keys: Vec<_> = p.as_object().expect("object").keys().cloned().collect();
        let mut want = [
            "name",
            "value",
            "delta",
            "id",
            "navigationType",
            "rating",
            "pathname",
            "href",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(
            (
                p["name"].as_str(),
                p["value"].as_f64(),
                p["rating"].as_str()
            ),
            (Some("LCP"), Some(3100.5), Some("needs-improvement"))
        );
        assert_eq!(p["pathname"], "/blog/x");
        assert_eq!(p["href"], "https://a.example/blog/x?utm_source=n");
        let keep = [("data-keep-query", "")];
        let (_, p) = capture_on(&keep, href, kind::VITAL, [2, 5, 0, 0], props).expect("sent");
        assert_eq!(
            (p["href"].as_str(), p["rating"].as_str()),
            (
                Some("https://a.example/blog/x?utm_source=n&q=secret"),
                Some("good")
            )
        );
        // An unknown metric or props that are not an object: nothing.
        assert_eq!(
            capture_on(&[], href, kind::VITAL, [9, 1, 0, 0], props),
            None
        );
        assert_eq!(capture_on(&[], href, kind::VITAL, [0, 1, 0, 0], "3"), None);
    }

    #[test]
    fn links_are_outbound_or_downloads_and_their_targets_are_stripped() {
        let page = "https://shop.example/p";
        let both = [("data-outbound-links", ""), ("data-file-downloads", "")];
        // What the links script reports: href, and the host name and path as `a` parses them.
        let click = |cfg: &[(&str, &str)], href: &str, which: u32| {
            let (host, path) = match href.split_once("://") {
                Some((_, rest)) => {
                    let host = rest.split(['/', ':', '?', '#']).next().unwrap_or("");
                    let path = rest[host.len()..].split(['?', '#']).next().unwrap_or("");
                    (host, if path.is_empty() { "/" } else { path })
                }
                None => ("", href.split_once(':').map_or("", |p| p.1)),
            };
            let text = [href, host, path].join("\0");
            capture_on(cfg, page, kind::LINK, [which, 0, 0, 0], &text)
        };
        let (action, p) =
            click(&both, "https://other.example/a?utm_medium=x&token=t#f", 1).expect("sent");
        assert_eq!(action, "Outbound Link: Click");
        assert_eq!(
            p,
            serde_json::json!({"url": "https://other.example/a?utm_medium=x"})
        );
        // The download script does not count an outbound link again, but counts same-host files.
        assert_eq!(click(&both, "https://other.example/file.pdf", 2), None);
        let dl = click(&both, "https://shop.example/files/Report.PDF?sig=abc", 2).expect("sent");
        assert_eq!(
            (dl.0.as_str(), dl.1["url"].as_str()),
            (
                "File Download",
                Some("https://shop.example/files/Report.PDF")
            )
        );
        // Same host, other schemes, a script that is off, extensions not listed: nothing.
        assert_eq!(click(&both, "https://shop.example/about", 1), None);
        assert_eq!(click(&both, "mailto:a@b.example", 1), None);
        assert_eq!(
            click(&[("data-file-downloads", "")], "https://other.example/", 1),
            None
        );
        assert_eq!(
            click(
                &[("data-outbound-links", "")],
                "https://shop.example/a.zip",
                2
            ),
            None
        );
        assert_eq!(
            click(
                &[("data-outbound-links", "false")],
                "https://other.example/",
                1
            ),
            None
        );
        let own = [("data-file-downloads", "epub,ZIP")];
        assert!(click(&own, "https://shop.example/b.epub", 2).is_some());
        assert!(click(&own, "https://shop.example/b.zip", 2).is_some());
        assert_eq!(click(&own, "https://shop.example/b.pdf", 2), None);
        assert_eq!(click(&own, "https://shop.example/bzip", 2), None);
        // The extension is what follows the last `.` of the last path segment.
        assert!(click(
            &[("data-file-downloads", "")],
            "https://shop.example/b.tar.gz",
            2
        )
        .is_some());
        assert_eq!(click(&own, "https://shop.example/v1.zip/readme", 2), None);
        assert_eq!(
            click(&own, "https://shop.example/a/.zip", 2).map(|e| e.0),
            Some("File Download".into())
        );
        // Without the outbound script a download on another host is still a download.
        assert!(click(
            &[("data-file-downloads", "")],
            "https://cdn.example/x.zip",
            2
        )
        .is_some());
        // A target's quotes and backslashes (which a browser leaves in a query) stay valid JSON.
        let odd = click(&both, "https://other.example/a?utm_x=\"b\\c", 1).expect("sent");
        assert_eq!(odd.1["url"], "https://other.example/a?utm_x=\"b\\c");
    }

    #[test]
    fn engagement_is_sent_when_depth_grew_or_three_seconds_passed() {
        assert_eq!(
            (
                scroll_depth(500, 1000),
                scroll_depth(999, 1000),
                scroll_depth(5000, 1000)
            ),
            (50, 100, 100)
        );
        assert_eq!((scroll_depth(0, 0), scroll_depth(333, 1000)), (100, 33));
        assert!(engagement_due(10, 0, 0) && engagement_due(10, 10, 3000));
        assert!(!engagement_due(10, 10, 2999) && !engagement_due(5, 10, 100));
        let page = "https://a.example/doc?x=1";
        let (action, p) =
            capture_on(&[], page, kind::ENGAGE, [750, 1000, 4200, 0], "").expect("sent");
        assert_eq!(action, "engagement");
        assert_eq!(
            p,
            serde_json::json!({"sd": 75, "e": 4200, "pathname": "/doc"})
        );
        assert_eq!(
            capture_on(&[], page, kind::ENGAGE, [750, 1000, 1000, 75], ""),
            None
        );
    }

    #[test]
    fn a_404_page_sends_its_path_once_after_the_first_hit() {
        // The loader asks right after a page hit; the text is the page hit before it.
        let cfg = [("data-404", "")];
        let (page, later) = ("https://a.example/nope?q=1", "https://a.example/next");
        let ask = |cfg: &[(&str, &str)], href: &str, previous: &str| {
            capture_on(cfg, href, kind::NOT_FOUND, [0; 4], previous)
        };
        let (action, p) = ask(&cfg, page, "").expect("sent");
        assert_eq!(
            (action.as_str(), p),
            ("404", serde_json::json!({"path": "/nope"}))
        );
        // After an SPA navigation, without data-404, with data-404="false": nothing.
        assert_eq!(ask(&cfg, later, page), None);
        assert_eq!(ask(&[], page, ""), None);
        assert_eq!(ask(&[("data-404", "false")], page, ""), None);
        // Unknown kinds (and 0, a plain event) are not captures.
        assert_eq!(capture_on(&cfg, page, 0, [0; 4], ""), None);
        assert_eq!(capture_on(&cfg, page, 9, [0; 4], ""), None);
    }

    #[test]
    fn hash_routing_makes_a_new_fragment_a_new_page() {
        let mut buf = [0u8; 256];
        let on = setup(attrs(&[("data-hash", "")]), &mut Out::new(&mut buf));
        assert_ne!(on & setting::HASH, 0);
        let off = setup(attrs(&[("data-hash", "false")]), &mut Out::new(&mut buf));
        assert_eq!(off & setting::HASH, 0);
        let hit = |s: u32, href: &str, last: &str| {
            let page = ["a.example", href, last, ""].join("\0");
            verdict(s, 0, page.as_bytes(), 2)
        };
        let (home, settings) = (
            "https://a.example/app#/home",
            "https://a.example/app#/settings",
        );
        assert_ne!(hit(on, settings, home), 0);
        assert_eq!(hit(on, home, home), 0);
        // Without data-hash a fragment change is the same page.
        assert_eq!(hit(off, settings, home), 0);
        assert_ne!(hit(off, "https://a.example/other", home), 0);
    }
}
