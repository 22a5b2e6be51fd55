// t/<hash>.x.js: the extended loader. t.js hands over to it when the tag enables an opt-in capture
// (`data-web-vitals`, `data-outbound-links`, `data-file-downloads`, `data-engagement`, `data-hash`,
// `data-404`): it installs the public API, fetches and instantiates the extended module H.x.wasm, which
// builds every beacon itself (starling_beacon::Event::each) and posts it through its one import, and
// loads the opt-in scripts. Every decision is made in the module; this file only reads the page and
// calls browser APIs. Every entry point is wrapped: nothing here may throw into the host page, and a
// trap in the module turns the tracker off.
//
// Build-time constant (scripts/build-tracker.sh): H, the build's content hash. t.js leaves the script
// tag in `starling.s` and the calls made so far in `starling.q`.
try {
  const W = window;
  const D = document;
  const N = navigator;
  const L = location;
  const s = W.starling.s;
  const dir = new URL('t/' + H, s.src);
  const cfg = [...s.attributes].map((a) => a.name + '\0' + a.value).join('\0') + '\0src-origin\0' + dir.origin;
  const load = (c) =>
    new Promise((r) => D.head.append(Object.assign(D.createElement('script'), { src: dir + c + '.js', onload: r, onerror: r })));
  // Opt-in features, each its own script; `hash` and `404` need only the extended module.
  const ext = ['storage', 'web-vitals', 'outbound-links', 'file-downloads', 'engagement', 'hash', '404'].filter((a) =>
    s.hasAttribute('data-' + a),
  );
  const early = W.starling?.q || []; // `window.starling = {q: [], track(n, p) {this.q.push([n, p])}}`
  const q = []; // events waiting for the module
  const retry = []; // beacons the browser refused, retried before the next send and on hide/online
  let last = '';
  let x = 0; // the module's exports; 0 while loading, null when off

  const post = (u, b) => {
    try {
      // A string body is sent as text/plain: no CORS preflight.
      if (N.sendBeacon(u, b)) return;
    } catch {}
    fetch(u, { method: 'POST', body: b, keepalive: true })
      .then((r) => {
        if (r.status > 499 || r.status == 429) throw 0;
      })
      .catch(() => retry.length < 20 && retry.push([u, b]));
  };
  const flush = () => retry.splice(0).forEach((e) => post(...e));
  const put = (t) => new TextEncoder().encodeInto(t, new Uint8Array(x.memory.buffer, x.b(), 32768));

  // One event into the module; kind and n describe an opt-in capture's report (beacon::kind).
  const run = (name, props, href, kind, n) => {
    try {
      // The storage script (data-storage) keeps flock.js's session id: [id, save after a send].
      const [sid, save] = (W.starling.$ || Array)();
      let out;
      try {
        out = W.starlingOptOut || localStorage.getItem('starling-opt-out');
      } catch {}
      const u = new URL(href);
      // Masking: JSON.stringify asks the module about every key (beacon::is_sensitive).
      props = name ? JSON.stringify(props ?? {}, (k, v) => (k && x.k(put(k).written) ? '********' : v)) : '';
      const input = [
        cfg,
        [href, u.pathname, u.hostname, D.referrer, last, N.language, N.userAgent, new Date().toISOString(), sid].join('\0'),
        name,
        props,
      ].join('\x01');
      const r = put(input);
      const sent =
        r.read == input.length &&
        x.e(r.written, !!N.globalPrivacyControl | (!!(N.webdriver || W.Cypress || W.__nightmare) << 1) | (!!out << 2), kind, ...n);
      if (sent) {
        kind || name || (last = href);
        save?.();
      }
      return sent;
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) x = null;
    }
  };
  // Everything goes through here: queued until the module is ready, dropped once it is off.
  const go = (name, props, kind = 0, n = []) => {
    try {
      const e = [name, props, L.href, kind, n];
      return x ? run(...e) : x === 0 && q.push(e) && 0;
    } catch {}
  };
  const track = (name, props) => name && go('' + name, props);
  const page = () => D.prerendering || go('');

  W.Tinybird = { trackEvent: track };
  // For the opt-in scripts: `_(name, props, kind, numbers)` returns what the module did; `s` is the tag.
  W.starling = { track, _: go, s };
  for (const m of ['pushState', 'replaceState']) {
    const orig = history[m];
    history[m] = function () {
      const r = orig.apply(this, arguments);
      page();
      return r;
    };
  }
  addEventListener('popstate', page);
  addEventListener('hashchange', page);
  addEventListener('pagehide', flush);
  addEventListener('online', flush);
  addEventListener('visibilitychange', () => D.hidden && flush());
  early.forEach((e) => go(e[0] == null ? '' : '' + e[0], e[1]));
  D.prerendering ? D.addEventListener('prerenderingchange', page, { once: true }) : page();

  const dec = (a, b) => new TextDecoder().decode(new Uint8Array(x.memory.buffer, a, b));
  Promise.all([
    fetch(dir + '.x.wasm')
      .then((r) => r.arrayBuffer())
      .then((b) =>
        WebAssembly.instantiate(b, {
          e: {
            s: (a, u, n) => {
              flush();
              post(dec(a, u), dec(a + u, n - u));
            },
          },
        }),
      ),
    ...ext.map((a) => a[0] < 'a' || a == 'hash' || load('.' + a[0])),
  ])
    .then(([m]) => {
      x = m.instance.exports;
      q.splice(0).forEach((e) => run(...e));
    })
    .catch(() => {
      x = null;
    });
} catch {}
