//! Decisions of the opt-in capture modules, compiled only into the extended tracker module (feature
//! `ext`), which the loader fetches instead of the default one when a site enables one of them.
//!
//! Each module's JavaScript only observes the browser (performance entries, clicks, scrolling, time
//! visible) and reports what it saw as an [`Event`] of a [`kind`]; here it becomes a custom event:
//! - web vitals (`data-web-vitals`): `web_vital` with the standard rating ([`rating`]), the page's
//!   `pathname` and its `href` stripped like every URL, in the shape of Tinybird's web analytics kit;
//! - link clicks (`data-outbound-links`, `data-file-downloads`): `Outbound Link: Click` or
//!   `File Download` with the target `url` stripped like every URL ([`link_event`]);
//! - engagement (`data-engagement`): `engagement` with scroll depth `sd` (%) and engaged time `e` (ms),
//!   only when the depth grew or at least 3 s passed ([`engagement_due`]);
//! - a `404` event with the `path` after the first page hit of a page with `data-404` ([`not_found`]);
//! - hash routing (`data-hash`, in [`decide`](crate::decide)): the fragment is part of the page.

use crate::{
    close, eq, kind, member, open, strip_query, until, Config, Event, Out, Page, MAX_PAYLOAD,
};

/// Web vital names in the order the loader numbers them, with the standard thresholds in thousandths
/// of their unit (good ≤ first, needs improvement ≤ second, poor above): web.dev's Core Web Vitals.
pub const METRICS: [(&[u8], u32, u32); 5] = [
    (b"LCP", 2_500_000, 4_000_000),
    (b"INP", 200_000, 500_000),
    (b"CLS", 100, 250),
    (b"FCP", 1_800_000, 3_000_000),
    (b"TTFB", 800_000, 1_800_000),
];

/// The file extensions counted as downloads unless `data-file-downloads` lists its own
/// (comma-separated): Plausible's default list.
pub const DOWNLOADS: &[u8] =
    b"pdf,xlsx,docx,txt,rtf,csv,exe,key,pps,ppt,pptx,7z,pkg,rar,gz,zip,avi,mov,mp4,mpeg,wmv,midi,mp3,wav,wma,dmg";

/// The standard rating of metric `metric` (see [`METRICS`]) at `milli` thousandths of its unit:
/// `good`, `needs-improvement` or `poor`; `None` for an unknown metric.
pub fn rating(metric: u32, milli: u32) -> Option<&'static [u8]> {
    let (_, good, ni) = METRICS.get(metric as usize)?;
    Some(if milli <= *good {
        b"good"
    } else if milli <= *ni {
        b"needs-improvement"
    } else {
        b"poor"
    })
}

/// The host of an absolute http(s) URL (between `://` and the next `/`, `:`, `?` or `#`), or `None`.
fn host(url: &[u8]) -> Option<&[u8]> {
    let mut rest = url
        .strip_prefix(b"https://")
        .or(url.strip_prefix(b"http://"))?;
    let mut i = 0;
    while rest.get(i).is_some_and(|c| !b"/:?#".contains(c)) {
        i += 1;
    }
    rest = rest.get(..i)?;
    Some(rest)
}

/// Whether the path of `url` (query and fragment ignored) ends in `.ext` for one of the extensions in
/// the comma-separated `list`, compared without case.
fn has_extension(url: &[u8], list: &[u8]) -> bool {
    let path = until(until(url, b'#'), b'?');
    let mut list = list;
    while !list.is_empty() {
        let ext = crate::take(&mut list, b',');
        let n = path.len().wrapping_sub(ext.len());
        if !ext.is_empty()
            && path.get(n.wrapping_sub(1)) == Some(&b'.')
            && path.get(n..).is_some_and(|e| e.eq_ignore_ascii_case(ext))
        {
            return true;
        }
    }
    false
}

/// The event a click on a link to `href` makes, reported by module `which` (`1` outbound links, `2`
/// file downloads): `Outbound Link: Click` when the link leaves the page's host and outbound links are
/// on; `File Download` when its path has a download extension and it is not already counted as an
/// outbound click. `None`: nothing to send (same-host pages, `mailto:`, `javascript:`…).
pub fn link_event(cfg: &Config, page: &Page, href: &[u8], which: u32) -> Option<&'static [u8]> {
    let outbound = cfg.on(b"data-outbound-links") && host(href).is_some_and(|h| !eq(h, page.host));
    if which == 1 && outbound {
        return Some(b"Outbound Link: Click");
    }
    let list = match cfg.attr(b"data-file-downloads")? {
        b"" | b"true" => DOWNLOADS,
        l => l,
    };
    (which == 2 && !outbound && host(href).is_some() && has_extension(href, list))
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

/// The page's path for a `404` event after the first page hit on a page with `data-404` (a call
/// `starling.track('404', {path})` works everywhere).
pub fn not_found<'a>(ev: &Event, cfg: &Config, page: &Page<'a>) -> Option<&'a [u8]> {
    (ev.kind == kind::PLAIN && ev.action.is_empty() && page.last.is_empty() && cfg.on(b"data-404"))
        .then_some(page.path)
}

/// Writes `n` in decimal.
fn num(n: u32, out: &mut Out) {
    if n >= 10 {
        num(n / 10, out);
    }
    out.put(&[b'0' + (n % 10) as u8]);
}

/// Turns a capture module's report into the custom event to decide (its props written into `buf`) and
/// the value [`Event::each`] returns; `None`: nothing to send. Plain events pass through.
pub(crate) fn rewrite<'s: 'b, 'b>(
    ev: &Event<'s>,
    cfg: &Config,
    page: &Page,
    buf: &'b mut [u8; MAX_PAYLOAD],
) -> Option<(Event<'b>, u32)> {
    let mut out = Out::new(buf);
    let keep_query = cfg.on(b"data-keep-query");
    let [a, b, c, d] = ev.n;
    let (action, ret): (&[u8], u32) = match ev.kind {
        kind::PLAIN => return Some((*ev, 1)),
        kind::VITAL => {
            // The loader's props, then the rating and where it was measured.
            let props = ev.props.strip_suffix(b"}")?;
            out.put(props);
            member(b"rating", rating(a, b)?, &mut out);
            member(b"pathname", page.path, &mut out);
            open(b"href", &mut out);
            strip_query(page.href, keep_query, &mut out);
            close(&mut out);
            (b"web_vital", 1)
        }
        kind::LINK => {
            let name = link_event(cfg, page, ev.action, a)?;
            out.put(b"{");
            open(b"url", &mut out);
            strip_query(ev.action, keep_query, &mut out);
            close(&mut out);
            (name, 1)
        }
        kind::ENGAGE => {
            let sd = scroll_depth(a, b);
            if !engagement_due(sd, d, c) {
                return None;
            }
            out.put(b"{\"sd\":");
            num(sd, &mut out);
            out.put(b",\"e\":");
            num(c, &mut out);
            member(b"pathname", page.path, &mut out);
            (b"engagement", sd + 1)
        }
        _ => return None,
    };
    out.put(b"}");
    if out.full() {
        return None;
    }
    let len = out.len();
    let props = buf.get(..len)?;
    Some((
        Event {
            action,
            props,
            kind: ev.kind,
            n: ev.n,
        },
        ret,
    ))
}

#[cfg(test)]
mod tests {
    // The same tests run in headless Chromium as wasm32 (scripts/test-wasm.sh): there `#[test]` is
    // wasm-bindgen-test's attribute.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::{kind, Config, Event, Page, MAX_PAYLOAD, OUT_CAPACITY};

    fn attrs(list: &[(&str, &str)]) -> &'static [u8] {
        let joined = list.iter().flat_map(|(k, v)| [*k, *v]).collect::<Vec<_>>();
        joined.join("\0").leak().as_bytes()
    }

    fn page(href: &str, path: &str, last: &str) -> &'static [u8] {
        let host = href.split('/').nth(2).unwrap_or("");
        [
            href,
            path,
            host,
            "",
            last,
            "en",
            "UA",
            "2026-01-01T00:00:00.000Z",
            "",
        ]
        .join("\0")
        .leak()
        .as_bytes()
    }

    /// Every beacon `ev` causes: (action, payload).
    fn beacons(
        cfg: &[(&str, &str)],
        page_ctx: &[u8],
        ev: Event,
    ) -> (u32, Vec<(String, serde_json::Value)>) {
        let cfg = Config::parse(attrs(
            &[&[("data-stringify-payload", "false")], cfg].concat(),
        ));
        let mut sent = Vec::new();
        let mut out = vec![0u8; OUT_CAPACITY];
        let mut scratch = [0u8; 2 * MAX_PAYLOAD];
        let ret = ev.each(
            &cfg,
            &Page::parse(page_ctx),
            0,
            &mut scratch,
            &mut out,
            |o, url_end, len| {
                let body: serde_json::Value =
                    serde_json::from_slice(&o[url_end..len]).expect("valid JSON");
                sent.push((
                    body["action"].as_str().unwrap_or("").to_owned(),
                    body["payload"].clone(),
                ));
            },
        );
        (ret, sent)
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
    fn a_web_vital_gets_its_rating_path_and_stripped_href() {
        let ctx = page(
            "https://a.example/blog/x?utm_source=n&q=secret#h",
            "/blog/x",
            "",
        );
        let props = r#"{"name":"LCP","value":3100.5,"delta":3100.5,"id":"v1-1-a-0","navigationType":"navigate"}"#;
        let ev = Event {
            action: b"web_vital",
            props: props.as_bytes(),
            kind: kind::VITAL,
            n: [0, 3_100_500, 0, 0],
        };
        let (ret, sent) = beacons(&[], ctx, ev);
        assert_eq!(ret, 1);
        let [(action, p)] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(action, "web_vital");
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
        let unknown = Event {
            n: [9, 1, 0, 0],
            ..ev
        };
        assert_eq!(beacons(&[], ctx, unknown), (0, vec![]));
    }

    #[test]
    fn links_are_outbound_or_downloads_and_their_targets_are_stripped() {
        let ctx = page("https://shop.example/p", "/p", "");
        let both = [("data-outbound-links", ""), ("data-file-downloads", "")];
        let click = |cfg: &[(&str, &str)], href: &'static str, which: u32| {
            let ev = Event {
                action: href.as_bytes(),
                props: b"0",
                kind: kind::LINK,
                n: [which, 0, 0, 0],
            };
            beacons(cfg, ctx, ev).1
        };
        let out = click(&both, "https://other.example/a?utm_medium=x&token=t#f", 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "Outbound Link: Click");
        assert_eq!(out[0].1["url"], "https://other.example/a?utm_medium=x");
        // The download module does not count an outbound link again, but counts same-host files.
        assert!(click(&both, "https://other.example/file.pdf", 2).is_empty());
        let dl = click(&both, "https://shop.example/files/Report.PDF?sig=abc", 2);
        assert_eq!(
            (dl[0].0.as_str(), dl[0].1["url"].as_str()),
            (
                "File Download",
                Some("https://shop.example/files/Report.PDF")
            )
        );
        // Same host, other schemes, a module that is off, extensions not listed: nothing.
        assert!(click(&both, "https://shop.example/about", 1).is_empty());
        assert!(click(&both, "mailto:a@b.example", 1).is_empty());
        assert!(click(&[("data-file-downloads", "")], "https://other.example/", 1).is_empty());
        assert!(click(
            &[("data-outbound-links", "")],
            "https://shop.example/a.zip",
            2
        )
        .is_empty());
        let own = [("data-file-downloads", "epub,ZIP")];
        assert_eq!(click(&own, "https://shop.example/b.epub", 2).len(), 1);
        assert_eq!(click(&own, "https://shop.example/b.zip", 2).len(), 1);
        assert!(click(&own, "https://shop.example/b.pdf", 2).is_empty());
        assert!(click(&own, "https://shop.example/bzip", 2).is_empty());
        // Without the outbound module a download on another host is still a download.
        assert_eq!(
            click(
                &[("data-file-downloads", "")],
                "https://cdn.example/x.zip",
                2
            )
            .len(),
            1
        );
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
        let ctx = page("https://a.example/doc", "/doc", "");
        let ev = Event {
            action: b"engagement",
            props: b"0",
            kind: kind::ENGAGE,
            n: [750, 1000, 4200, 0],
        };
        let (ret, sent) = beacons(&[], ctx, ev);
        assert_eq!(ret, 76);
        assert_eq!(sent[0].0, "engagement");
        assert_eq!(
            sent[0].1,
            serde_json::json!({"sd": 75, "e": 4200, "pathname": "/doc"})
        );
        let again = Event {
            n: [750, 1000, 1000, 75],
            ..ev
        };
        assert_eq!(beacons(&[], ctx, again), (0, vec![]));
    }

    #[test]
    fn a_404_page_sends_its_path_once_after_the_first_hit() {
        let cfg = [("data-404", "")];
        let first = beacons(
            &cfg,
            page("https://a.example/nope", "/nope", ""),
            Event::default(),
        )
        .1;
        let actions: Vec<_> = first.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(actions, ["page_hit", "404"]);
        assert_eq!(first[1].1["path"], "/nope");
        let spa = beacons(
            &cfg,
            page("https://a.example/next", "/next", "https://a.example/nope"),
            Event::default(),
        )
        .1;
        assert_eq!(spa.len(), 1);
        assert_eq!(
            beacons(&[], page("https://a.example/x", "/x", ""), Event::default())
                .1
                .len(),
            1
        );
    }

    #[test]
    fn hash_routing_keeps_the_fragment_as_part_of_the_page() {
        let cfg = [("data-hash", "")];
        let ctx = page(
            "https://a.example/app?x=1#/settings",
            "/app",
            "https://a.example/app?x=1#/home",
        );
        let hit = beacons(&cfg, ctx, Event::default()).1;
        assert_eq!(hit[0].1["pathname"], "/app#/settings");
        assert_eq!(hit[0].1["href"], "https://a.example/app#/settings");
        let same = page(
            "https://a.example/app#/home",
            "/app",
            "https://a.example/app#/home",
        );
        assert!(beacons(&cfg, same, Event::default()).1.is_empty());
        // Without data-hash a fragment change is the same page.
        assert!(beacons(&[], ctx, Event::default()).1.is_empty());
    }
}
