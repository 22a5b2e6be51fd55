// t.js: the loader. Reads its script tag synchronously, installs the public API (calls made before the
// module is ready are queued and replayed), fetches and instantiates the wasm module, and sends what the
// module allows. The module (starling_beacon) makes the decisions: the endpoint and global properties
// (once), whether to send an event at all (GPC, opt-out, automation, local pages, same page, size),
// which property keys are masked and which query parameters stay. This file only calls browser APIs:
// `JSON.stringify` builds the flock.js envelope and `URL` takes URLs apart. Every entry point is
// wrapped: nothing here may throw into the host page, and a trap in the module turns the tracker off.
//
// Build-time constant (scripts/build-tracker.sh): H, the build's content hash. Files under t/ next to
// this script: H.wasm (the default module), H.s.js (data-storage), and for a tag with an opt-in
// capture H.x.wasm (the extended module: the same questions and two more, `e` and `h`) and the
// capture scripts H.w.js, H.o.js, H.f.js, H.e.js, which only observe the browser and report here.
//
// Everything is declared inside the one top-level `try` block, so nothing reaches the page's global
// scope without a function wrapper (scripts/build-tracker.sh builds this file without one).
try {
  const W = window;
  const D = document;
  const N = navigator;
  const L = location;
  const s = D.currentScript;
  const dir = new URL('t/' + H, s.src);
  const load = (c) =>
    new Promise((r) => D.head.append(Object.assign(D.createElement('script'), { src: dir + c + '.js', onload: r, onerror: r })));
  const early = W.starling?.q || []; // `window.starling = {q: [], track(n, p) {this.q.push([n, p])}}`
  // The opt-in captures on the tag: any of them loads the extended module; those with a script (the
  // names longer than 4 characters) load it too.
  const X = 'web-vitals outbound-links file-downloads engagement hash 404'.split(' ').filter((a) => s.hasAttribute('data-' + a));
  const q = []; // events waiting for the module
  const retry = []; // sends that failed (a network error, 429 or 5xx), each with its number of attempts
  let last = ''; // the last page hit sent
  let x = 0; // the module's exports; 0 while loading, null when off
  let B; // the module's text buffer: input at B, output at B + 32768
  let E; // endpoint, tenant, domain, global properties
  let T;
  let M;
  const G = {};

  // `fetch` with `keepalive` (it outlives the page like a beacon, and it sees the answer): an event the
  // edge did not accept (a network error, 429 or 5xx: the edge then accepted nothing) is sent again with
  // the same body after 2, 4, 8, ... s, at most 8 times (at most 50 waiting), and at once on hide and when
  // back online. Only a hidden page uses `sendBeacon` (a browser without keepalive may cancel a fetch on
  // unload). A string body is sent as text/plain: no CORS preflight.
  const post = (u, b, n = 0) => {
    try {
      if (D.hidden && N.sendBeacon(u, b)) return;
    } catch {}
    fetch(u, { method: 'POST', body: b, keepalive: true })
      .then((r) => {
        if (r.status > 499 || r.status == 429) throw 0;
      })
      .catch(() => n < 8 && retry.length < 50 && retry.push([u, b, n + 1]) && setTimeout(flush, 1e3 << (n + 1)));
  };
  const flush = () => retry.splice(0).forEach((e) => post(...e));
  // Text into the module's input; a negative length when it did not fit (the module then says no).
  const put = (t, r = new TextEncoder().encodeInto(t, new Uint8Array(x.m.buffer, B, 32768))) => r.read - t.length || r.written;
  // The module's answer: text in its output.
  const get = (n) => new TextDecoder().decode(new Uint8Array(x.m.buffer, B + 32768, n));
  // A URL as sent: no fragment, and only the query parameters the module keeps (beacon::keeps_param).
  const strip = (h, u) => {
    if (!h) return '';
    u = new URL(h);
    u.hash = '';
    u.search = u.search
      .slice(1)
      .split('&')
      .filter((p) => x.q(put(p)))
      .join('&');
    return u.href;
  };

  // One event; a trap is caught by `call`. A capture script's report (`kind`, `n` and its text in
  // `name`, beacon::kind) is first turned into an event by the extended module (beacon::ext::capture);
  // its props are returned when it was sent (the engagement script reads them).
  const run = (name, props, href, kind, n) => {
    name += '';
    // The storage script (data-storage) keeps flock.js's session id: [id, save after a send].
    const [sid, save] = (W.starling.$ || Array)();
    let out;
    try {
      out = W.starlingOptOut || localStorage['starling-opt-out'];
    } catch {}
    const u = new URL(href);
    // A capture (host\0href\0pathname\0its text): the module answers [name, props] as JSON, or
    // nothing (then JSON.parse throws and `call` drops the report).
    if (kind) [name, props] = JSON.parse(get(x.e(put([u.hostname, href, u.pathname, name].join('\0')), kind, ...n)));
    // data-hash (extended module): the fragment is part of the page.
    const F = x.h?.() ? u.hash : '';
    // Masking: JSON.stringify asks the module about every key (beacon::is_sensitive).
    let j = JSON.stringify(props ?? {}, (k, v) => (k && x.k(put(k)) ? '********' : v));
    const p = Object.assign(
      name
        ? j[0] == '{'
          ? JSON.parse(j)
          : {}
        : {
            'user-agent': N.userAgent,
            locale: N.language || 'en',
            referrer: strip(last || D.referrer),
            pathname: u.pathname + F,
            href: strip(href) + F,
          },
      G,
    );
    j = JSON.stringify(p);
    // The privacy flags (beacon::flag); `globalPrivacyControl` is a boolean (or undefined), `|` makes it 0 or 1.
    const r = x.t(
      put([u.hostname, href, last, name].join('\0')),
      N.globalPrivacyControl | (!!(N.webdriver || W.Cypress || W.__nightmare) << 11) | (!!out << 2),
      j.length,
    );
    if (r) {
      // A random idempotency key per event: a resent event (same URL and body) is applied once.
      post(
        E + '&idempotency_key=' + Math.random().toString(36).slice(2),
        JSON.stringify({
          timestamp: new Date().toISOString(),
          action: name || 'page_hit',
          version: '1',
          session_id: sid || '',
          tenant_id: T,
          domain: M || u.hostname,
          payload: r > 1 ? j : p,
        }),
      );
      save?.();
      // After a page hit: the 404 event (data-404), decided by the extended module, which is given the
      // previous page hit (empty: this is the first).
      name || ((name = last), (last = href), X[0] && run(name, 0, href, 4, []));
      return props;
    }
  };
  // What `run` returns (the capture scripts read it); a trap in the module turns the tracker off.
  const call = (e) => {
    try {
      return run(...e);
    } catch (err) {
      if (err instanceof WebAssembly.RuntimeError) x = null;
    }
  };
  // Everything goes through here: queued until the module is ready, dropped once it is off. `kind` and
  // `n` describe a capture script's report (beacon::kind).
  // Nothing here can throw: the name becomes text in `run`, under `call`'s catch.
  const go = (name, props, kind, n, e = [name, props, L.href, kind, n]) => (x ? call(e) : x === 0 && q.push(e) && 0);
  const track = (name, props) => name && go(name, props);
  const page = () => D.prerendering || go('');

  W.Tinybird = { trackEvent: track };
  // For the capture scripts: `_(text, 0, kind, n)` reports; `s` is the tag (for the storage script).
  W.starling = { track, s, _: go };
  for (const m of ['pushState', 'replaceState']) {
    const orig = history[m];
    history[m] = (...a) => ((a = orig.apply(history, a)), page(), a);
  }
  // A navigation is a page hit; leaving, hiding and coming back online send what is waiting.
  addEventListener('popstate', page);
  addEventListener('hashchange', page);
  for (const e of ['pagehide', 'online', 'visibilitychange']) addEventListener(e, flush);
  early.forEach((e) => track(...e));
  // A prerendered page is counted when it is shown (`page` skips it while prerendering).
  page();
  D.addEventListener('prerenderingchange', page);

  for (const a of X) a[4] && load('.' + a[0]);

  Promise.all([
    // INLINE (a build-time constant) is the module in base64 in t.inline.js, only built to compare sizes.
    // Compiled while it downloads: served as application/wasm.
    INLINE
      ? WebAssembly.instantiate(Uint8Array.from(atob(INLINE), (c) => c.charCodeAt(0)))
      : WebAssembly.instantiateStreaming(fetch(dir + (X[0] ? '.x.wasm' : '.wasm'))),
    s.hasAttribute('data-storage') && load('.s'),
  ])
    .then(([m]) => {
      x = m.instance.exports;
      B = x.b();
      const n = put([...s.attributes].map((a) => a.name + '\0' + a.value).join('\0') + '\0src-origin\0' + dir.origin);
      // `name\0value\0` per global property, then the endpoint, tenant and domain.
      const g = get(x.c(n)).split('\0');
      while (3 in g) G[g.shift()] = g.shift();
      [E, T, M] = g;
      if (!E) throw 0; // the attributes did not fit: off
      q.splice(0).forEach(call);
    })
    .catch(() => (x = null));
} catch {}
