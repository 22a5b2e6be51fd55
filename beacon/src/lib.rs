//! The browser tracker's decisions, kept pure so they are tested natively (`cargo test`) and in a
//! browser (`scripts/test-wasm.sh`: the same tests compiled to wasm32 under wasm-bindgen-test).
//!
//! The tracker's glue reads the page (script attributes, `location`, `document.referrer`, a few
//! privacy flags) and hands the raw text here; this module decides whether to send, what to send and
//! where, and the glue sends.
//!
//! Every byte of this module ships to every visitor inside the tracker's wasm module, so it is written
//! for size: it uses only `core` (no `alloc`, no `std`), works on UTF-8 bytes rather than `str` (the
//! text comes from `TextEncoder` and goes back through `TextDecoder`, so the string-searching and UTF-8
//! machinery stays out), writes into a caller's fixed buffer ([`Out`]) instead of growing vectors, looks
//! attributes up when needed instead of parsing them into a struct, routes comparisons and copies
//! through a few out-of-line helpers, and never indexes (so it has no panicking paths).
//!
//! Compared with flock.js it fixes: a proxy set twice no longer throws (the full URL wins); masked
//! values can no longer produce invalid JSON; SPA navigations send the previous page as referrer and
//! never repeat the same page; query strings are stripped to `utm_*`; GPC, opt-out, automation and
//! local pages are not tracked unless allowed. (The flock.js-compatible session id for `data-storage`,
//! with its cookie fixes, is kept by the loader, `tracker/js/main.js`: it only reads and writes storage.)
#![cfg_attr(not(test), no_std)]

/// Where flock.js sends by default when no `data-host` is given and the script has no http(s) origin.
pub const DEFAULT_HOST: &[u8] = b"https://api.tinybird.co";
/// The datasource events go to unless `data-datasource` says otherwise.
pub const DEFAULT_DATASOURCE: &[u8] = b"analytics_events";
/// Payloads longer than this are dropped, as flock.js does.
pub const MAX_PAYLOAD: usize = 10_240;
/// Room [`decide`] needs in its [`Out`]: the endpoint and the envelope with an escaped payload.
pub const OUT_CAPACITY: usize = 2 * MAX_PAYLOAD + 8192;

/// Words that make a property sensitive (its value is masked): a key's words are split at
/// non-alphanumerics and camelCase humps and compared lower-cased, exactly or, for entries ending in
/// `*`, as a prefix. So `userEmail`, `api_token`, `cc_number`, `newPassword1` and `pin` are masked;
/// `shipping`, `success`, `author` and `partnumber` are not.
const SENSITIVE: &[u8] = b"pass password* passwd passcode pin email* mail phone* tel mobile token* secret* auth user username userid address* card* cc cvv cvc ssn iban ";

/// Privacy and automation signals read from the browser, as bits of the `flags` argument.
pub mod flag {
    /// `navigator.globalPrivacyControl` is true.
    pub const GPC: u32 = 1;
    /// `navigator.webdriver`, `window.Cypress` or `window.__nightmare`. The same bit as
    /// [`setting::ALLOW_AUTOMATION`](super::setting::ALLOW_AUTOMATION), which lets it through.
    pub const AUTOMATION: u32 = 1 << super::at::ALLOW_AUTOMATION;
    /// The visitor opted out (`window.starlingOptOut` or `localStorage["starling-opt-out"]`).
    pub const OPT_OUT: u32 = 4;
}

/// A fixed-capacity output: writes past the end are counted but dropped, and [`Out::full`] tells.
/// Inside a JSON string (see [`json_str`]) it escapes what it is given.
pub struct Out<'a> {
    buf: &'a mut [u8],
    len: usize,
    /// 0: raw; 1: JSON string content; 2: the same with `-` written as `_`.
    mode: u8,
}

impl<'a> Out<'a> {
    /// Writes into `buf`, from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Out {
            buf,
            len: 0,
            mode: 0,
        }
    }

    #[inline(never)]
    fn byte(&mut self, b: u8) {
        if let Some(x) = self.buf.get_mut(self.len) {
            *x = b;
        }
        self.len += 1;
    }

    /// Appends bytes as they are ([`copy::RAW`]), percent-encoded ([`copy::URL`]) or with `-` written
    /// as `_` ([`copy::DASH`]): the copy loop of everything the default module writes (the endpoint
    /// and the global properties), which needs no JSON escaping, so [`Out::put`] stays out of it.
    #[inline(never)]
    pub fn copy(&mut self, s: &[u8], how: u8) {
        for &b in s {
            match how {
                copy::URL
                    if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')) =>
                {
                    self.byte(b'%');
                    self.byte(hex(b >> 4));
                    self.byte(hex(b));
                }
                copy::DASH if b == b'-' => self.byte(b'_'),
                #[cfg(feature = "ext")]
                copy::JSON if b == b'"' || b == b'\\' => {
                    self.byte(b'\\');
                    self.byte(b);
                }
                _ => self.byte(b),
            }
        }
    }

    /// Appends bytes, JSON-escaped inside a string (see [`json_str`]): used by [`decide`], which no
    /// module ships.
    #[inline(never)]
    pub fn put(&mut self, s: &[u8]) {
        for &b in s {
            // Written before two hex digits of `b`: `\u00` for a control character in JSON.
            let esc: &[u8] = match (self.mode, b) {
                (0, _) => b"",
                (_, 0..=0x1f) => b"\\u00",
                (_, b'"' | b'\\') => {
                    self.byte(b'\\');
                    b""
                }
                (2, b'-') => {
                    self.byte(b'_');
                    continue;
                }
                _ => b"",
            };
            if esc.is_empty() {
                self.byte(b);
            } else {
                for &c in esc {
                    self.byte(c);
                }
                self.byte(hex(b >> 4));
                self.byte(hex(b));
            }
        }
    }

    /// Everything written so far (empty once [`Out::full`]).
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Whether more was written than fits.
    pub fn full(&self) -> bool {
        self.len > self.buf.len()
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn last(&self) -> Option<&u8> {
        self.bytes().last()
    }
}

/// How [`Out::copy`] writes.
pub mod copy {
    /// As it is.
    pub const RAW: u8 = 0;
    /// Percent-encoded but for RFC 3986 unreserved characters.
    pub const URL: u8 = 1;
    /// With `-` written as `_`.
    pub const DASH: u8 = 2;
    /// Inside a JSON string, for URLs and paths as the browser serialises them: `"` and `\` escaped.
    /// Control characters are not (the URL parser percent-encodes them); the extended module's
    /// answers are `JSON.parse`d by the loader, so text with one is dropped, never sent broken.
    pub const JSON: u8 = 3;
}

/// Splits off the text before the first `sep` and leaves what follows it in `text` (empty when
/// there is no `sep`). The glue joins fields with `\0` and sections with `\x01`.
#[inline(never)]
pub fn take<'a>(text: &mut &'a [u8], sep: u8) -> &'a [u8] {
    let t = *text;
    let mut i = 0;
    // A plain loop: `position` becomes a call to the (large) word-at-a-time memchr.
    while t.get(i).is_some_and(|&b| b != sep) {
        i += 1;
    }
    *text = t.get(i + 1..).unwrap_or_default();
    t.get(..i).unwrap_or_default()
}

/// The text before the first `stop`, or all of it.
fn until(t: &[u8], stop: u8) -> &[u8] {
    let mut t = t;
    take(&mut t, stop)
}

/// Byte-string equality, out of line: comparisons with constants are otherwise unrolled into
/// word loads at every use.
#[inline(never)]
fn eq(a: &[u8], b: &[u8]) -> bool {
    a == b
}

/// The index of the first entry of the space-separated `list` (which ends with a space) that `word`
/// is, or that it starts with for an entry ending in `*`; the number of entries when none matches.
/// With `fold`, `word` is compared lower-cased (the lists are lower case). One out-of-line loop for
/// every lookup of the default module (attribute names, sensitive words, local hosts, `utm_`,
/// `"false"`): each comparison is a call with two slices and a number back, no slice returned through
/// memory, and no copy of the loop per list.
#[inline(never)]
pub fn find(list: &[u8], word: &[u8], fold: bool) -> usize {
    let (mut n, mut j, mut same) = (0, 0, true);
    for &l in list {
        match l {
            // A prefix entry ends: `word` starts with it. The space after it moves on.
            b'*' => {
                if same && word.len() >= j {
                    return n;
                }
                same = false;
            }
            b' ' => {
                if same && word.len() == j {
                    return n;
                }
                (n, j, same) = (n + 1, 0, true);
            }
            _ => {
                let c = word
                    .get(j)
                    .map(|&c| if fold { c.to_ascii_lowercase() } else { c });
                same &= c == Some(l);
                j += 1;
            }
        }
    }
    n
}

/// The number of entries of a [`find`] list.
const fn entries(list: &[u8]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < list.len() {
        if list[i] == b' ' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// `a` without the prefix `p`, if it has it.
fn strip_prefix<'a>(a: &'a [u8], p: &[u8]) -> Option<&'a [u8]> {
    let (head, tail) = a.split_at_checked(p.len())?;
    eq(head, p).then_some(tail)
}

/// The attributes the default module reads, space-separated, in the order of the indices in [`at`]:
/// [`Config::parse`] files each value under its name's index in one pass, so a lookup is an array
/// load instead of a call returning a slice through memory (about 300 B less wasm than a scan per
/// lookup, and less than a struct of named fields).
const NAMES: &[u8] = b"data-proxy-url data-proxy data-host src-origin data-datasource data-token data-domain data-tenant-id data-stringify-payload data-keep-query data-opt-out data-allow-automation data-allow-localhost data-hash data-tb-* tb_* ";

/// Indices into [`NAMES`].
mod at {
    pub const PROXY_URL: usize = 0;
    pub const PROXY: usize = 1;
    pub const HOST: usize = 2;
    pub const SRC_ORIGIN: usize = 3;
    pub const DATASOURCE: usize = 4;
    pub const TOKEN: usize = 5;
    pub const DOMAIN: usize = 6;
    pub const TENANT_ID: usize = 7;
    pub const STRINGIFY: usize = 8;
    pub const KEEP_QUERY: usize = 9;
    pub const OPT_OUT: usize = 10;
    pub const ALLOW_AUTOMATION: usize = 11;
    pub const ALLOW_LOCALHOST: usize = 12;
    pub const HASH: usize = 13;
    pub const COUNT: usize = 14;
}

/// The tracker's configuration: the script tag's attributes, the known ones (`NAMES`) filed by
/// index, the rest looked up by name when needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config<'a> {
    attrs: &'a [u8],
    known: [Option<&'a [u8]>; at::COUNT],
}

impl<'a> Config<'a> {
    /// Reads `name\0value\0…` attribute pairs (the last of a repeated name wins). Never fails.
    pub fn parse(attrs: &'a [u8]) -> Self {
        let mut known = [None; at::COUNT];
        let mut rest = attrs;
        while !rest.is_empty() {
            let k = take(&mut rest, 0);
            let v = take(&mut rest, 0);
            let mut names = NAMES;
            for slot in known.iter_mut() {
                if eq(take(&mut names, b' '), k) {
                    *slot = Some(v);
                }
            }
        }
        Config { attrs, known }
    }

    /// The attributes without filing the known ones: for [`Config::attr`] and [`Config::on`] only (the
    /// extended module's captures read attributes the default module does not know).
    #[cfg(feature = "ext")]
    fn unparsed(attrs: &'a [u8]) -> Self {
        Config {
            attrs,
            known: [None; at::COUNT],
        }
    }

    /// The known attribute number `i` ([`at`]).
    fn known(&self, i: usize) -> Option<&'a [u8]> {
        self.known.get(i).copied().flatten()
    }

    /// The known attribute number `i`, or empty.
    fn val(&self, i: usize) -> &'a [u8] {
        self.known(i).unwrap_or_default()
    }

    /// Whether the known switch number `i` is present and not `"false"` (see [`Config::on`]).
    fn is_on(&self, i: usize) -> bool {
        self.known(i).is_some_and(|v| !eq(v, b"false"))
    }

    /// The value of the attribute `name` (the last one if repeated).
    #[inline(never)]
    pub fn attr(&self, name: &[u8]) -> Option<&'a [u8]> {
        let (mut rest, mut found) = (self.attrs, None);
        while !rest.is_empty() {
            let k = take(&mut rest, 0);
            let v = take(&mut rest, 0);
            if eq(k, name) {
                found = Some(v);
            }
        }
        found
    }

    /// The switches as [`setting`] bits.
    pub fn settings(&self) -> u32 {
        // The switches are numbered from `STRINGIFY` to `ALLOW_LOCALHOST` in [`NAMES`]: one loop.
        let mut s = 0;
        // The extended module also keeps `data-hash` (the next index).
        let end = if cfg!(feature = "ext") {
            at::HASH
        } else {
            at::ALLOW_LOCALHOST
        };
        for i in at::STRINGIFY..=end {
            let v = self.known(i);
            // `STRINGIFY` is on unless "false"; the others when present and not "false".
            let on = !v.is_some_and(|v| eq(v, b"false")) && (v.is_some() || i == at::STRINGIFY);
            s |= u32::from(on) << i;
        }
        s
    }

    /// Whether a switch attribute is present and not `"false"` (`data-allow-localhost`,
    /// `data-allow-automation`, `data-opt-out`, `data-keep-query`).
    pub fn on(&self, name: &[u8]) -> bool {
        self.attr(name).is_some_and(|v| !eq(v, b"false"))
    }

    /// `data-datasource`, or [`DEFAULT_DATASOURCE`] when missing or empty.
    pub fn datasource(&self) -> &'a [u8] {
        match self.val(at::DATASOURCE) {
            [] => DEFAULT_DATASOURCE,
            d => d,
        }
    }

    /// `data-stringify-payload` is not `"false"`: the payload is sent as a JSON string.
    pub fn stringify(&self) -> bool {
        !eq(self.val(at::STRINGIFY), b"false")
    }

    /// `data-domain`, sent as the envelope `domain` (the page's host name when empty).
    pub fn domain(&self) -> &'a [u8] {
        self.val(at::DOMAIN)
    }

    /// Appends the global attributes (`data-tb-*`, `tb_*`) as JSON members, the prefix removed and
    /// `-` turned into `_` (`data-tb-app-version` → `app_version`).
    fn put_globals(&self, out: &mut Out) {
        self.globals(|k, v| {
            comma(out);
            json_str(k, true, out);
            out.put(b":");
            json_str(v, false, out);
        });
    }

    /// Calls `f(name, value)` for each global attribute (`data-tb-*`, `tb_*`), the prefix removed.
    fn globals(&self, mut f: impl FnMut(&'a [u8], &'a [u8])) {
        let mut rest = self.attrs;
        while !rest.is_empty() {
            let k = take(&mut rest, 0);
            let v = take(&mut rest, 0);
            if let Some(k @ [_, ..]) = strip_prefix(k, b"data-tb-").or(strip_prefix(k, b"tb_")) {
                f(k, v);
            }
        }
    }

    /// The endpoint events are posted to: the proxy URL, the proxy, or the Events API with the
    /// (URL-escaped) token. The default host is the script's own origin (`src-origin`, which the glue
    /// appends), else Tinybird's.
    pub fn endpoint(&self, out: &mut Out) {
        let mut val: Values = [b""; at::COUNT];
        for (i, v) in val.iter_mut().enumerate() {
            *v = self.val(i);
        }
        write_endpoint(&val, out);
    }
}

fn trim_slashes(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'/'] = s {
        s = rest;
    }
    s
}

fn hex(n: u8) -> u8 {
    let d = n & 15;
    d + if d < 10 { b'0' } else { b'A' - 10 }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_escape(s: &[u8], out: &mut Out) {
    out.copy(s, copy::URL);
}

/// Writes `s` as a JSON string literal (quotes included), escaping `"`, `\` and control characters;
/// with `dashes`, `-` becomes `_` (for global attribute names).
pub fn json_str(s: &[u8], dashes: bool, out: &mut Out) {
    out.put(b"\"");
    out.mode = 1 + u8::from(dashes);
    out.put(s);
    close(out);
}

/// A comma unless `out` ends with an opening brace.
fn comma(out: &mut Out) {
    if out.last() != Some(&b'{') {
        out.put(b",");
    }
}

/// Writes `"key":"` (after a comma unless `out` ends with an opening brace) and escapes what follows
/// until [`close`].
#[inline(never)]
fn open(key: &[u8], out: &mut Out) {
    comma(out);
    out.put(b"\"");
    out.put(key);
    out.put(b"\":\"");
    out.mode = 1;
}

/// Ends a JSON string opened by [`open`] or [`json_str`].
fn close(out: &mut Out) {
    out.mode = 0;
    out.put(b"\"");
}

/// Writes `"key":"value"`, after a comma unless `out` ends with an opening brace.
#[inline(never)]
fn member(key: &[u8], value: &[u8], out: &mut Out) {
    open(key, out);
    out.put(value);
    close(out);
}

/// Whether a property key names something personal or secret: one of its words (split at
/// non-alphanumerics and camelCase humps) is a sensitive word such as `pass`, `email`, `phone`,
/// `token`, `secret`, `auth`, `user`, `card`, `cc`, `pin`, `ssn` (some also as a prefix).
pub fn is_sensitive(key: &[u8]) -> bool {
    let (mut start, mut prev) = (0, 0u8);
    for i in 0..=key.len() {
        let c = key.get(i).copied().unwrap_or(b'_');
        let hump = c.is_ascii_uppercase() && prev.is_ascii_lowercase();
        prev = c;
        if !c.is_ascii_alphanumeric() || hump {
            if find(SENSITIVE, key.get(start..i).unwrap_or_default(), true) < SENSITIVE_WORDS {
                return true;
            }
            start = i + usize::from(!hump);
        }
    }
    false
}

/// The number of words in [`SENSITIVE`].
const SENSITIVE_WORDS: usize = entries(SENSITIVE);

/// Copies a URL without its fragment and, unless `keep_query`, with only its `utm_*` parameters, for a
/// JSON string ([`copy::JSON`]).
pub fn strip_query(url: &[u8], keep_query: bool, out: &mut Out) {
    let mut query = until(url, b'#');
    out.copy(take(&mut query, b'?'), copy::JSON);
    let mut sep = b"?";
    while !query.is_empty() {
        let p = take(&mut query, b'&');
        if keep_query || strip_prefix(p, b"utm_").is_some() {
            out.copy(sep, copy::RAW);
            out.copy(p, copy::JSON);
            sep = b"&";
        }
    }
}

/// Whether the page at `href` on host `host` is on this machine: `file:`, `localhost`, `*.localhost`,
/// loopback addresses.
pub fn is_local(href: &[u8], host: &[u8]) -> bool {
    // The last label of the host: `localhost` there is `localhost` or a subdomain of it.
    let mut start = 0;
    for (i, &b) in host.iter().enumerate() {
        if b == b'.' {
            start = i + 1;
        }
    }
    let label = host.get(start..).unwrap_or_default();
    find(b"file:* ", href, false) == 0
        || find(b"127.* [::1] 0.0.0.0 ", host, false) < 3
        || find(b"localhost ", label, false) == 0
}

/// Whether to send anything at all: never under GPC or an opt-out, not from automated browsers or
/// local pages unless the site allows them.
pub fn should_track(cfg: &Config, flags: u32, page: &Page) -> bool {
    allowed(cfg.settings(), flags, page.href, page.host)
}

/// [`should_track`] on the script tag's [`setting`]s, for the page at `href` on host `host`.
pub fn allowed(settings: u32, flags: u32, href: &[u8], host: &[u8]) -> bool {
    // What stops an event, as bits: the flags, a local page at the bit of the switch that allows it
    // (as automation is), and the site's opt-out at the visitor's; the switches clear what they allow.
    let stop = flags
        | (u32::from(is_local(href, host)) << at::ALLOW_LOCALHOST)
        | (u32::from(settings & setting::OPT_OUT != 0) * flag::OPT_OUT);
    stop & !settings & (flag::GPC | flag::OPT_OUT | flag::AUTOMATION | setting::ALLOW_LOCALHOST)
        == 0
}

/// The script tag's switches as bits of one word, which the default module keeps between calls
/// ([`Config::settings`], [`setup`]): each is on when its attribute is present and not `"false"`,
/// except [`STRINGIFY`](setting::STRINGIFY), which is on unless `data-stringify-payload="false"`.
pub mod setting {
    use super::at;
    /// `data-keep-query`: page URLs keep their whole query, not only `utm_*`.
    pub const KEEP_QUERY: u32 = 1 << at::KEEP_QUERY;
    /// `data-opt-out`: the site turned tracking off.
    pub const OPT_OUT: u32 = 1 << at::OPT_OUT;
    /// `data-allow-automation`: automated browsers are tracked.
    pub const ALLOW_AUTOMATION: u32 = 1 << at::ALLOW_AUTOMATION;
    /// `data-allow-localhost`: local pages are tracked.
    pub const ALLOW_LOCALHOST: u32 = 1 << at::ALLOW_LOCALHOST;
    /// The payload is sent as a JSON string (flock.js's default), not as an object.
    pub const STRINGIFY: u32 = 1 << at::STRINGIFY;
    /// `data-hash` (extended module only): the fragment is part of the page.
    pub const HASH: u32 = 1 << at::HASH;
}

/// The default module's setup, once per page: reads the script tag's `name\0value\0…` attributes
/// (with `src-origin`, see [`Config::endpoint`]) and writes `name\0value\0` for each global property
/// (`data-tb-app-version="2"` → `app_version`, `2`) into `out`, then `endpoint\0tenant\0domain`;
/// returns the [`setting`]s that [`verdict`] and [`keeps_param`] take.
///
/// The default module leaves the envelope's serialisation to the browser's `JSON.stringify` and the
/// URL's parsing to `URL`: what it decides is the endpoint, the globals, whether to send
/// ([`verdict`]), which keys are masked ([`is_sensitive`]) and which query parameters stay
/// ([`keeps_param`]).
pub fn setup(attrs: &[u8], out: &mut Out) -> u32 {
    // One pass files the known attributes' values by index (`NAMES`, the last of a repeated name
    // wins), sets the switches and writes the global properties; no `Config` (its array of options is
    // copied around).
    let mut val: Values = [b""; at::COUNT];
    let mut s = setting::STRINGIFY;
    let mut rest = attrs;
    while !rest.is_empty() {
        let k = take(&mut rest, 0);
        let v = take(&mut rest, 0);
        let i = find(NAMES, k, false);
        if let Some(x) = val.get_mut(i) {
            *x = v;
        }
        if (at::STRINGIFY..=LAST_SWITCH).contains(&i) {
            s = s & !(1 << i) | u32::from(find(b"false ", v, false) != 0) << i;
        }
        // `data-tb-x` or `tb_x` (the two entries after the known names): the global property `x`.
        let global = k.get(if i == at::COUNT { 8 } else { 3 }..);
        if let Some(g @ [_, ..]) = global.filter(|_| i == at::COUNT || i == at::COUNT + 1) {
            out.copy(g, copy::DASH);
            out.copy(b"\0", copy::RAW);
            out.copy(v, copy::RAW);
            out.copy(b"\0", copy::RAW);
        }
    }
    write_endpoint(&val, out);
    out.copy(b"\0", copy::RAW);
    out.copy(val[at::TENANT_ID], copy::RAW);
    out.copy(b"\0", copy::RAW);
    out.copy(val[at::DOMAIN], copy::RAW);
    s
}

/// The known attributes' values by index ([`at`]), empty when missing.
type Values<'a> = [&'a [u8]; at::COUNT];

/// The last switch index in [`NAMES`] this module keeps: `data-hash` only in the extended module.
const LAST_SWITCH: usize = if cfg!(feature = "ext") {
    at::HASH
} else {
    at::ALLOW_LOCALHOST
};

/// Writes the endpoint events are posted to, from the attributes `[data-proxy-url, data-proxy,
/// data-host, src-origin, data-datasource, data-token]` (empty when missing): the proxy URL, the
/// proxy, or the Events API with the (URL-escaped) token. The default host is the script's own origin
/// (`src-origin`, which the glue appends) when it is http(s), else Tinybird's.
fn write_endpoint(val: &Values, out: &mut Out) {
    let (proxy_url, proxy, host, origin) = (
        val[at::PROXY_URL],
        val[at::PROXY],
        val[at::HOST],
        val[at::SRC_ORIGIN],
    );
    let (datasource, token) = (val[at::DATASOURCE], val[at::TOKEN]);
    if !proxy_url.is_empty() {
        out.copy(proxy_url, copy::RAW);
    } else if !proxy.is_empty() {
        out.copy(trim_slashes(proxy), copy::RAW);
        out.copy(b"/api/tracking", copy::RAW);
    } else {
        let host = match trim_slashes(host) {
            [] if find(b"http* ", origin, false) == 0 => origin,
            [] => DEFAULT_HOST,
            h => h,
        };
        out.copy(host, copy::RAW);
        out.copy(b"/v0/events?name=", copy::RAW);
        url_escape(
            if datasource.is_empty() {
                DEFAULT_DATASOURCE
            } else {
                datasource
            },
            out,
        );
        if !token.is_empty() {
            out.copy(b"&token=", copy::RAW);
            url_escape(token, out);
        }
    }
}

/// Whether to send one event, and how: 0 nothing, 1 with the payload as an object, 2 with the payload
/// as a JSON string. `page` is `host\0href\0last\0action` (the page's host name and URL, the URL of
/// the last page hit sent or empty, the action or empty for a page hit), `payload_len` the length of
/// the serialised payload. Nothing is sent when not [`allowed`], for a page hit on the last page
/// ([`same_page`]; with `data-hash` in the extended module, only the same URL fragment included), or
/// for a payload over [`MAX_PAYLOAD`].
pub fn verdict(settings: u32, flags: u32, page: &[u8], payload_len: usize) -> u32 {
    let mut rest = page;
    let (host, href, last) = (take(&mut rest, 0), take(&mut rest, 0), take(&mut rest, 0));
    // With hash routing (extended module) only the same URL, fragment included, is the same page.
    let hash = cfg!(feature = "ext") && settings & setting::HASH != 0;
    if !allowed(settings, flags, href, host)
        || payload_len > MAX_PAYLOAD
        || rest.is_empty() && same_page(href, last) && (!hash || eq(href, last))
    {
        return 0;
    }
    1 + u32::from(settings & setting::STRINGIFY != 0)
}

/// Whether the query parameter `param` (`name=value` as in the URL) stays in a URL sent: `utm_*`
/// only, unless `data-keep-query` ([`setting::KEEP_QUERY`]).
pub fn keeps_param(settings: u32, param: &[u8]) -> bool {
    settings & setting::KEEP_QUERY != 0 || find(b"utm_* ", param, false) == 0
}

/// Whether a navigation to `href` stays on the page of the last hit `last` (same URL but for the
/// fragment): then no new page hit is sent (hash changes, `replaceState` of the same URL, `popstate`
/// followed by `hashchange`).
pub fn same_page(href: &[u8], last: &[u8]) -> bool {
    !last.is_empty() && eq(until(href, b'#'), until(last, b'#'))
}

/// The referrer of a page hit: the previous page on SPA navigations (`document.referrer` is stale
/// then), else `document.referrer`.
pub fn referrer<'a>(doc_referrer: &'a [u8], last: &'a [u8]) -> &'a [u8] {
    if last.is_empty() {
        doc_referrer
    } else {
        last
    }
}

/// What the glue knows about the page when an event happens.
#[derive(Debug, Clone, Default)]
pub struct Page<'a> {
    /// `location.href`.
    pub href: &'a [u8],
    /// `location.pathname`.
    pub path: &'a [u8],
    /// `location.hostname`.
    pub host: &'a [u8],
    /// `document.referrer`.
    pub referrer: &'a [u8],
    /// `href` of the last page hit sent, empty before the first.
    pub last: &'a [u8],
    /// `navigator.languages[0]`.
    pub locale: &'a [u8],
    /// `navigator.userAgent`.
    pub user_agent: &'a [u8],
    /// `new Date().toISOString()`.
    pub timestamp: &'a [u8],
    /// The session id kept by the glue when `data-storage` asks for one, else empty (the server
    /// then derives sessions itself, cookieless).
    pub session_id: &'a [u8],
}

impl<'a> Page<'a> {
    /// Reads the glue's `href\0path\0host\0referrer\0last\0locale\0user agent\0timestamp\0session id`.
    pub fn parse(mut ctx: &'a [u8]) -> Self {
        // A loop, not nine calls: each call returns its slice through memory.
        let mut f: [&[u8]; 9] = [&[]; 9];
        for x in f.iter_mut() {
            *x = take(&mut ctx, 0);
        }
        let [href, path, host, referrer, last, locale, user_agent, timestamp, session_id] = f;
        Page {
            href,
            path,
            host,
            referrer,
            last,
            locale,
            user_agent,
            timestamp,
            session_id,
        }
    }
}

/// The whole beacon as the loader sends it, built in Rust: no module ships this since both answer
/// questions instead (`t.js` builds the same envelope with `JSON.stringify`); kept as the reference
/// of the wire format that the native tests check (flock.js's shape, masking, globals, stripping).
///
/// Decides one event, writing the endpoint URL and then the JSON envelope into `out` (which needs
/// [`OUT_CAPACITY`] bytes); returns where the URL ends. `action` empty means a page hit on `page`,
/// else a custom event with the `JSON.stringify`-ed `props`; `scratch` holds the payload while it is
/// built (a caller's buffer, so the module needs no zeroing code for a stack array). `None` means send nothing: not tracked
/// (see [`should_track`]), a repeated page (see [`same_page`]), or a payload over [`MAX_PAYLOAD`].
#[inline(never)]
pub fn decide(
    cfg: &Config,
    page: &Page,
    action: &[u8],
    props: &[u8],
    flags: u32,
    out: &mut Out,
    scratch: &mut [u8; MAX_PAYLOAD],
) -> Option<usize> {
    if !should_track(cfg, flags, page) {
        return None;
    }
    let keep_query = cfg.is_on(at::KEEP_QUERY);
    // Hash routing (`data-hash`, extended module only): the fragment is part of the page.
    let hash = cfg!(feature = "ext") && cfg.is_on(at::HASH);
    let fragment = page
        .href
        .get(until(page.href, b'#').len()..)
        .filter(|_| hash)
        .unwrap_or_default();
    let mut payload = Out::new(scratch);
    if action.is_empty() {
        if same_page(page.href, page.last) && (!hash || eq(page.href, page.last)) {
            return None;
        }
        payload.put(b"{");
        member(b"user-agent", page.user_agent, &mut payload);
        let locale = if page.locale.is_empty() {
            b"en"
        } else {
            page.locale
        };
        member(b"locale", locale, &mut payload);
        open(b"referrer", &mut payload);
        strip_query(referrer(page.referrer, page.last), keep_query, &mut payload);
        close(&mut payload);
        open(b"pathname", &mut payload);
        payload.put(page.path);
        payload.put(fragment);
        close(&mut payload);
        open(b"href", &mut payload);
        strip_query(page.href, keep_query, &mut payload);
        payload.put(fragment);
        close(&mut payload);
    } else if props.first() == Some(&b'{') {
        // `JSON.stringify`'s output, sensitive values already replaced (see `is_sensitive`).
        payload.put(props);
        payload.len -= 1;
    } else {
        payload.put(b"{");
    }
    cfg.put_globals(&mut payload);
    payload.put(b"}");
    if payload.full() {
        return None;
    }

    cfg.endpoint(out);
    let url_end = out.len();
    out.put(b"{");
    member(b"timestamp", page.timestamp, out);
    member(
        b"action",
        if action.is_empty() {
            b"page_hit"
        } else {
            action
        },
        out,
    );
    member(b"version", b"1", out);
    member(b"session_id", page.session_id, out);
    member(b"tenant_id", cfg.val(at::TENANT_ID), out);
    let domain = match cfg.domain() {
        [] => page.host,
        d => d,
    };
    member(b"domain", domain, out);
    out.put(b",\"payload\":");
    if cfg.stringify() {
        json_str(payload.bytes(), false, out);
    } else {
        out.put(payload.bytes());
    }
    out.put(b"}");
    (!out.full()).then_some(url_end)
}

/// What a capture script reports, as the `kind` the extended module's `e` takes
/// (`ext::capture`).
pub mod kind {
    /// A web vital: the text is the kit's props `{name, value, delta, id, navigationType}` as JSON,
    /// `n = [metric, value × 1000, _, _]` with metrics numbered as in `ext::METRICS`.
    pub const VITAL: u32 = 1;
    /// A click on a link: the text is the link's absolute `href`, `n[0]` says which script saw it
    /// (`1` outbound links, `2` file downloads).
    pub const LINK: u32 = 2;
    /// The page is hidden: `n = [deepest pixel seen, document height, engaged ms, last depth sent]`.
    pub const ENGAGE: u32 = 3;
    /// A page hit was sent: asked by the loader right after it (`data-404`).
    pub const NOT_FOUND: u32 = 4;
}

#[cfg(feature = "ext")]
pub mod ext;

#[cfg(test)]
mod tests {
    // The same tests run in headless Chromium as wasm32 (scripts/test-wasm.sh): there `#[test]` is
    // wasm-bindgen-test's attribute.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    use super::*;

    fn attrs(list: &[(&str, &str)]) -> &'static [u8] {
        let joined = list.iter().flat_map(|(k, v)| [*k, *v]).collect::<Vec<_>>();
        joined.join("\0").leak().as_bytes()
    }

    fn text(v: &[u8]) -> String {
        String::from_utf8(v.to_vec()).expect("utf-8")
    }

    /// Runs a writer into a fresh buffer and returns the text.
    fn written(f: impl FnOnce(&mut Out)) -> String {
        let mut buf = vec![0u8; OUT_CAPACITY];
        let mut out = Out::new(&mut buf);
        f(&mut out);
        assert!(!out.full());
        text(out.bytes())
    }

    fn endpoint(list: &[(&str, &str)]) -> String {
        written(|o| Config::parse(attrs(list)).endpoint(o))
    }

    /// What the loader sends for `props`: `JSON.stringify(props, replacer)` whose replacer asks
    /// [`is_sensitive`] about every key at every depth, modelled with serde_json.
    fn masked(json_text: &str) -> String {
        fn mask(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m.iter_mut() {
                        if is_sensitive(k.as_bytes()) {
                            *v = "********".into();
                        } else {
                            mask(v);
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(mask),
                _ => {}
            }
        }
        let mut v: serde_json::Value = serde_json::from_str(json_text).unwrap_or_default();
        mask(&mut v);
        let sent = run(
            &[("data-stringify-payload", "false")],
            &page(HREF, ""),
            "e",
            &v.to_string(),
            0,
        );
        sent.expect("sent").body["payload"].to_string()
    }

    fn stripped(url: &str, keep: bool) -> String {
        written(|o| strip_query(url.as_bytes(), keep, o))
    }

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    /// A decided beacon: endpoint and envelope.
    #[derive(Debug, PartialEq)]
    struct Sent {
        url: String,
        body: serde_json::Value,
    }

    impl Sent {
        /// The payload, whether sent as a JSON string or an object.
        fn payload(&self) -> serde_json::Value {
            match &self.body["payload"] {
                serde_json::Value::String(s) => json(s.as_bytes()),
                v => v.clone(),
            }
        }
    }

    fn run(
        cfg: &[(&str, &str)],
        page: &Page,
        action: &str,
        props: &str,
        flags: u32,
    ) -> Option<Sent> {
        let mut buf = vec![0u8; OUT_CAPACITY];
        let mut out = Out::new(&mut buf);
        let url_end = decide(
            &Config::parse(attrs(cfg)),
            page,
            action.as_bytes(),
            props.as_bytes(),
            flags,
            &mut out,
            &mut [0; MAX_PAYLOAD],
        )?;
        let (url, body) = out.bytes().split_at(url_end);
        Some(Sent {
            url: text(url),
            body: json(body),
        })
    }

    const HREF: &str = "https://www.acme.example/pricing?utm_source=news&email=a@b.c#top";

    fn page(href: &'static str, last: &'static str) -> Page<'static> {
        let rest = href.split_once("://").map_or("", |r| r.1);
        let host = match rest.find(']') {
            Some(i) if rest.starts_with('[') => &rest[..=i],
            _ => rest.split(['/', ':']).next().unwrap_or(""),
        };
        let path = rest
            .get(host.len()..)
            .unwrap_or("")
            .trim_start_matches(|c: char| c == ':' || c.is_ascii_digit());
        let path = path.split(['?', '#']).next().unwrap_or("");
        Page {
            href: href.as_bytes(),
            path: if path.is_empty() {
                b"/"
            } else {
                path.as_bytes()
            },
            host: host.as_bytes(),
            referrer: b"https://www.google.com/",
            last: last.as_bytes(),
            locale: b"en-US",
            user_agent: b"Mozilla/5.0",
            timestamp: b"2025-08-13T10:41:02.123Z",
            session_id: b"",
        }
    }

    fn hit(cfg: &[(&str, &str)], href: &'static str, last: &'static str) -> Option<Sent> {
        run(cfg, &page(href, last), "", "", 0)
    }

    #[test]
    fn defaults_match_flock() {
        let c = Config::parse(b"");
        assert_eq!(
            (c.datasource(), c.stringify(), c.on(b"data-keep-query")),
            (DEFAULT_DATASOURCE, true, false)
        );
        assert_eq!(
            endpoint(&[]),
            "https://api.tinybird.co/v0/events?name=analytics_events"
        );
    }

    #[test]
    fn host_loses_trailing_slashes_and_token_is_escaped() {
        let url = endpoint(&[
            ("data-host", "https://s.example//"),
            ("data-token", "a b&c=d/é"),
        ]);
        assert_eq!(
            url,
            "https://s.example/v0/events?name=analytics_events&token=a%20b%26c%3Dd%2F%C3%A9"
        );
        let jwt = "eyJ0.eyJ1-_x.s~ig";
        assert!(endpoint(&[("data-token", jwt)]).ends_with(&["&token=", jwt].concat()));
    }

    #[test]
    fn default_host_is_the_script_origin() {
        let url = endpoint(&[
            ("src-origin", "http://127.0.0.1:8787"),
            ("data-datasource", "ev ents"),
        ]);
        assert_eq!(url, "http://127.0.0.1:8787/v0/events?name=ev%20ents");
        let url = endpoint(&[
            ("src-origin", "http://a.example"),
            ("data-host", "https://b.example"),
        ]);
        assert!(url.starts_with("https://b.example/v0/events"), "{url}");
        assert!(endpoint(&[("src-origin", "null")]).starts_with("https://api.tinybird.co/"));
    }

    #[test]
    fn proxy_url_wins_over_proxy_without_throwing() {
        let p = [("data-token", "t"), ("data-proxy", "https://p.example/")];
        assert_eq!(endpoint(&p), "https://p.example/api/tracking");
        let both = [p[0], p[1], ("data-proxy-url", "https://q.example/ingest")];
        assert_eq!(endpoint(&both), "https://q.example/ingest");
    }

    #[test]
    fn switches_are_parsed() {
        let c = Config::parse(attrs(&[
            ("data-stringify-payload", "false"),
            ("data-allow-localhost", ""),
            ("data-opt-out", "false"),
        ]));
        assert_eq!(
            (
                c.stringify(),
                c.on(b"data-allow-localhost"),
                c.on(b"data-opt-out")
            ),
            (false, true, false)
        );
        assert!(Config::parse(attrs(&[("data-stringify-payload", "no")])).stringify());
        assert_eq!(
            Config::parse(attrs(&[("data-datasource", "")])).datasource(),
            DEFAULT_DATASOURCE
        );
        let twice = Config::parse(attrs(&[("src-origin", "a"), ("src-origin", "b")]));
        assert_eq!(twice.attr(b"src-origin"), Some(&b"b"[..]));
    }

    #[test]
    fn globals_lose_prefix_and_dashes() {
        let cfg = [
            ("data-tb-app-version", "1.2"),
            ("tb_plan", "pro"),
            ("data-token", "x"),
            ("data-tb-", "empty"),
        ];
        let p = hit(&cfg, "https://a.example/", "").expect("sent").payload();
        assert_eq!(
            (p["app_version"].as_str(), p["plan"].as_str()),
            (Some("1.2"), Some("pro"))
        );
        assert_eq!(p.as_object().map(|o| o.len()), Some(7), "{p}");
    }

    #[test]
    fn json_strings_are_escaped() {
        let raw = "a\"b\\c\nd\u{1}\té\u{7f}-";
        let out = written(|o| json_str(raw.as_bytes(), false, o));
        assert_eq!(out, "\"a\\\"b\\\\c\\u000Ad\\u0001\\u0009é\u{7f}-\"");
        assert_eq!(json(out.as_bytes()).as_str(), Some(raw));
    }

    #[test]
    fn sensitive_values_are_masked_at_any_depth_and_stay_valid_json() {
        // Each of these broke flock.js's regex masking (defect D5) or escaped it.
        let input = r#"{"partnumber":"A1708","quantity":1,"email":"a@b.com","pin":12.5,"userEmail":"","Password":"x\"y","note":"email","nested":{"credit_card":{"n":[1,2]},"ok":[1,{"token":null}]},"flag":true,"phone":-1,"last":"z"}"#;
        let out = masked(input);
        let v = json(out.as_bytes());
        for ptr in [
            "/email",
            "/pin",
            "/userEmail",
            "/Password",
            "/nested/credit_card",
            "/nested/ok/1/token",
            "/phone",
        ] {
            assert_eq!(
                v.pointer(ptr).and_then(|x| x.as_str()),
                Some("********"),
                "{ptr} in {out}"
            );
        }
        assert_eq!(
            (v["partnumber"].as_str(), v["quantity"].as_i64()),
            (Some("A1708"), Some(1))
        );
        assert_eq!(
            (v["note"].as_str(), v["flag"].as_bool(), v["last"].as_str()),
            (Some("email"), Some(true), Some("z"))
        );
        assert_eq!(
            masked(r#"{"card":[1,{"a":"}"}],"b":2}"#),
            r#"{"b":2,"card":"********"}"#
        );
        assert_eq!(masked("[1]"), "{}");
        assert_eq!(masked("\"text\""), "{}");
        assert_eq!(masked("{}"), "{}");
    }

    #[test]
    fn sensitive_keys_are_words_not_any_substring() {
        for k in [
            "password",
            "userPass",
            "email",
            "user_id",
            "userId",
            "cc_number",
            "pin",
            "phoneNumber",
            "api-token",
            "Auth",
            "card",
        ] {
            assert!(is_sensitive(k.as_bytes()), "{k}");
        }
        let long = "x".repeat(100);
        for k in [
            "shipping",
            "success",
            "author",
            "partnumber",
            "quantity",
            "discard",
            "compass",
            "",
            &long,
        ] {
            assert!(!is_sensitive(k.as_bytes()), "{k}");
        }
    }

    #[test]
    fn query_is_stripped_to_utm_and_hash_dropped() {
        assert_eq!(
            stripped(HREF, false),
            "https://www.acme.example/pricing?utm_source=news"
        );
        assert_eq!(
            stripped("https://a.example/p?q=1#x", false),
            "https://a.example/p"
        );
        assert_eq!(
            stripped("https://a.example/p?q=1&utm_medium=m#x", true),
            "https://a.example/p?q=1&utm_medium=m"
        );
        assert_eq!(
            stripped("https://a.example/p?", false),
            "https://a.example/p"
        );
        assert_eq!(stripped("", false), "");
    }

    #[test]
    fn tracking_is_off_under_gpc_opt_out_automation_and_locally() {
        let c = Config::parse(b"");
        let web = page("https://a.example/", "");
        assert!(should_track(&c, 0, &web));
        for f in [flag::GPC, flag::OPT_OUT, flag::AUTOMATION] {
            assert!(!should_track(&c, f, &web), "flag {f}");
        }
        for local in [
            "http://localhost:3000/",
            "http://127.0.0.1/x",
            "file:///x.html",
            "http://[::1]:80/",
            "http://app.localhost/",
        ] {
            assert!(!should_track(&c, 0, &page(local, "")), "{local}");
        }
        assert!(should_track(
            &c,
            0,
            &page("https://notlocalhost.example/", "")
        ));
        let allowed = Config::parse(attrs(&[
            ("data-allow-localhost", ""),
            ("data-allow-automation", "true"),
        ]));
        assert!(should_track(
            &allowed,
            flag::AUTOMATION,
            &page("http://127.0.0.1/", "")
        ));
        assert!(!should_track(&allowed, flag::GPC, &web));
        assert!(!should_track(
            &Config::parse(attrs(&[("data-opt-out", "")])),
            0,
            &web
        ));
    }

    #[test]
    fn same_url_but_for_the_fragment_is_not_a_new_page() {
        let a = b"https://a.example/docs?x=1";
        assert!(same_page(a, a));
        assert!(same_page(b"https://a.example/docs?x=1#part", a));
        assert!(!same_page(b"https://a.example/docs?x=2", a));
        assert!(!same_page(
            b"https://a.example/docs/",
            b"https://a.example/docs"
        ));
        assert!(!same_page(a, b""));
        assert_eq!(
            hit(&[], "https://a.example/a#2", "https://a.example/a#1"),
            None
        );
    }

    #[test]
    fn spa_navigations_use_the_previous_page_as_referrer() {
        let first = hit(&[], HREF, "").expect("sent").payload();
        assert_eq!(first["referrer"], "https://www.google.com/");
        let next = hit(&[], "https://www.acme.example/docs#a", HREF)
            .expect("sent")
            .payload();
        assert_eq!(
            next["referrer"],
            "https://www.acme.example/pricing?utm_source=news"
        );
        assert_eq!(
            (next["pathname"].as_str(), next["href"].as_str()),
            (Some("/docs"), Some("https://www.acme.example/docs"))
        );
    }

    #[test]
    fn page_hit_envelope_is_flock_shaped() {
        let cfg = [
            ("data-token", "tok"),
            ("data-host", "https://s.example"),
            ("data-tenant-id", "acme"),
            ("data-tb-plan", "pro"),
        ];
        let b = hit(&cfg, HREF, "").expect("sent");
        assert_eq!(
            b.url,
            "https://s.example/v0/events?name=analytics_events&token=tok"
        );
        let e = &b.body;
        let keys: Vec<_> = e.as_object().expect("object").keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "action",
                "domain",
                "payload",
                "session_id",
                "tenant_id",
                "timestamp",
                "version"
            ]
        );
        let got = (
            e["action"].as_str(),
            e["version"].as_str(),
            e["session_id"].as_str(),
        );
        assert_eq!(got, (Some("page_hit"), Some("1"), Some("")));
        assert_eq!(
            (e["tenant_id"].as_str(), e["domain"].as_str()),
            (Some("acme"), Some("www.acme.example"))
        );
        assert_eq!(e["timestamp"], "2025-08-13T10:41:02.123Z");
        assert!(e["payload"].is_string());
        let p = b.payload();
        assert_eq!(p.as_object().map(|o| o.len()), Some(6), "{p}");
        assert_eq!(
            p["href"],
            "https://www.acme.example/pricing?utm_source=news"
        );
        assert_eq!(p["pathname"], "/pricing");
        let got = (
            p["locale"].as_str(),
            p["user-agent"].as_str(),
            p["plan"].as_str(),
        );
        assert_eq!(got, (Some("en-US"), Some("Mozilla/5.0"), Some("pro")));
    }

    #[test]
    fn custom_events_keep_their_masked_props_and_get_globals_after_them() {
        let cfg = [
            ("data-stringify-payload", "false"),
            ("data-tb-user-tier", "gold"),
            ("data-domain", "acme.example"),
        ];
        let props = r#"{"partnumber":"A1708","email":"********"}"#;
        let b = run(&cfg, &page(HREF, ""), "add_to_cart", props, 0).expect("sent");
        assert_eq!(
            (b.body["action"].as_str(), b.body["domain"].as_str()),
            (Some("add_to_cart"), Some("acme.example"))
        );
        assert_eq!(
            b.body["payload"],
            json(br#"{"partnumber":"A1708","email":"********","user_tier":"gold"}"#)
        );
        let empty = run(&[], &page(HREF, ""), "signup", "", 0).expect("sent");
        assert_eq!(empty.body["payload"], "{}");
        let quoted = run(&[], &page(HREF, ""), "say \"hi\"", "{}", 0).expect("sent");
        assert_eq!(quoted.body["action"], "say \"hi\"");
    }

    #[test]
    fn nothing_is_decided_when_not_tracking_or_too_large() {
        assert_eq!(run(&[], &page(HREF, ""), "", "", flag::GPC), None);
        assert_eq!(run(&[], &page(HREF, ""), "x", "{}", flag::AUTOMATION), None);
        let big = ["{\"a\":\"", &"x".repeat(MAX_PAYLOAD), "\"}"].concat();
        assert_eq!(run(&[], &page(HREF, ""), "x", &big, 0), None);
        let mut small = [0u8; 8];
        let mut out = Out::new(&mut small);
        assert_eq!(
            decide(
                &Config::parse(b""),
                &page(HREF, ""),
                b"x",
                b"{}",
                0,
                &mut out,
                &mut [0; MAX_PAYLOAD]
            ),
            None
        );
    }

    /// What the default module's setup writes, split at `\0`, and its settings.
    fn set_up(list: &[(&str, &str)]) -> (Vec<String>, u32) {
        let mut buf = vec![0u8; OUT_CAPACITY];
        let mut out = Out::new(&mut buf);
        let s = setup(attrs(list), &mut out);
        assert!(!out.full());
        (text(out.bytes()).split('\0').map(String::from).collect(), s)
    }

    #[test]
    fn setup_gives_globals_then_endpoint_tenant_and_domain() {
        let (out, s) = set_up(&[
            ("data-token", "a b"),
            ("src-origin", "http://127.0.0.1:8787"),
            ("data-tenant-id", "acme"),
            ("data-domain", "shop.example"),
            ("data-tb-app-version", "2\"1"),
            ("tb_plan", "pro"),
            ("data-tb-", "no name"),
            ("data-keep-query", "false"),
        ]);
        assert_eq!(
            out,
            [
                "app_version",
                "2\"1",
                "plan",
                "pro",
                "http://127.0.0.1:8787/v0/events?name=analytics_events&token=a%20b",
                "acme",
                "shop.example"
            ]
        );
        assert_eq!(s, setting::STRINGIFY);
        let (out, s) = set_up(&[
            ("data-stringify-payload", "false"),
            ("data-keep-query", ""),
            ("data-opt-out", "yes"),
            ("data-allow-automation", ""),
            ("data-allow-localhost", "true"),
        ]);
        assert_eq!(
            out,
            [
                "https://api.tinybird.co/v0/events?name=analytics_events",
                "",
                ""
            ]
        );
        assert_eq!(
            s,
            setting::KEEP_QUERY
                | setting::OPT_OUT
                | setting::ALLOW_AUTOMATION
                | setting::ALLOW_LOCALHOST
        );
    }

    /// The default module's verdict on a page hit (`action` empty) or an event.
    fn verdict_on(
        settings: u32,
        flags: u32,
        host: &str,
        href: &str,
        last: &str,
        action: &str,
    ) -> u32 {
        let page = [host, href, last, action].join("\0");
        verdict(settings, flags, page.as_bytes(), 2)
    }

    #[test]
    fn verdict_follows_privacy_flags_local_pages_and_same_page() {
        let (web, s) = ("https://a.example/p", setting::STRINGIFY);
        assert_eq!(verdict_on(s, 0, "a.example", web, "", ""), 2);
        assert_eq!(verdict_on(0, 0, "a.example", web, "", "x"), 1);
        for f in [flag::GPC, flag::OPT_OUT, flag::AUTOMATION] {
            assert_eq!(verdict_on(s, f, "a.example", web, "", ""), 0, "flag {f}");
        }
        assert_eq!(
            verdict_on(setting::OPT_OUT, 0, "a.example", web, "", "x"),
            0
        );
        let bot = setting::ALLOW_AUTOMATION;
        assert_eq!(
            verdict_on(bot, flag::AUTOMATION, "a.example", web, "", ""),
            1
        );
        assert_eq!(verdict_on(bot, flag::GPC, "a.example", web, "", ""), 0);
        for (host, href) in [
            ("localhost", "http://localhost:3000/"),
            ("127.0.0.1", "http://127.0.0.1/x"),
            ("", "file:///x.html"),
            ("[::1]", "http://[::1]/"),
            ("app.localhost", "http://app.localhost/"),
        ] {
            assert_eq!(verdict_on(0, 0, host, href, "", ""), 0, "{href}");
            assert_eq!(
                verdict_on(setting::ALLOW_LOCALHOST, 0, host, href, "", ""),
                1,
                "{href}"
            );
        }
        // A page hit on the last page (but for the fragment) is not sent; an event there is.
        let docs = "https://a.example/docs?x=1";
        assert_eq!(
            verdict_on(0, 0, "a.example", &[docs, "#b"].concat(), docs, ""),
            0
        );
        assert_eq!(verdict_on(0, 0, "a.example", docs, docs, "click"), 1);
        assert_eq!(
            verdict_on(0, 0, "a.example", "https://a.example/docs?x=2", docs, ""),
            1
        );
        // Too large: nothing (text that did not fit in the module is refused by the glue).
        let page = ["a.example", web, "", ""].join("\0");
        assert_eq!(verdict(0, 0, page.as_bytes(), MAX_PAYLOAD + 1), 0);
        assert_eq!(verdict(0, 0, page.as_bytes(), MAX_PAYLOAD), 1);
    }

    #[test]
    fn only_utm_parameters_are_kept_unless_keep_query() {
        for p in ["utm_source=news", "utm_campaign=", "utm_x"] {
            assert!(keeps_param(0, p.as_bytes()), "{p}");
        }
        for p in ["email=a@b.c", "utm=1", "UTM_source=x", "", "xutm_a=1"] {
            assert!(!keeps_param(0, p.as_bytes()), "{p}");
            assert!(keeps_param(setting::KEEP_QUERY, p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn the_glue_session_id_is_sent_as_is() {
        let p = Page {
            session_id: b"4b0f-sid",
            ..page(HREF, "")
        };
        assert_eq!(
            run(&[], &p, "", "", 0).expect("sent").body["session_id"],
            "4b0f-sid"
        );
    }

    #[test]
    fn local_hosts_are_matched_by_their_last_label() {
        for host in [
            "localhost",
            "a.b.localhost",
            "127.0.0.2",
            "[::1]",
            "0.0.0.0",
        ] {
            assert!(is_local(b"http://x/", host.as_bytes()), "{host}");
        }
        for host in [
            "localhost.example",
            "notlocalhost",
            "localhost.",
            "127",
            "0.0.0.01",
            "",
        ] {
            assert!(!is_local(b"https://x/", host.as_bytes()), "{host}");
        }
        assert!(is_local(b"file:///C:/x.html", b""));
    }

    #[test]
    fn find_matches_whole_entries_and_star_prefixes() {
        let list = b"ab cd* e ";
        assert_eq!(entries(list), 3);
        for (word, at) in [
            ("ab", 0),
            ("cd", 1),
            ("cdx", 1),
            ("e", 2),
            ("a", 3),
            ("abc", 3),
            ("c", 3),
            ("", 3),
            ("AB", 3),
        ] {
            assert_eq!(find(list, word.as_bytes(), false), at, "{word}");
        }
        assert_eq!(find(list, b"AB", true), 0);
        assert_eq!(find(list, b"CDX", true), 1);
        assert_eq!(find(b"", b"", false), 0);
    }

    #[test]
    fn escapes_and_overflow_without_panics() {
        assert_eq!(written(|o| url_escape(b"~a-Z_.9 ", o)), "~a-Z_.9%20");
        let mut small = [0u8; 2];
        let mut out = Out::new(&mut small);
        out.put(b"abc");
        assert!(out.full() && out.bytes().is_empty() && out.len() == 3);
    }
}
