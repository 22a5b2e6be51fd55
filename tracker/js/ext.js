// t/<hash>.x.js: what t.js adds for a tag with an opt-in capture (`data-web-vitals`,
// `data-outbound-links`, `data-file-downloads`, `data-engagement`, `data-hash`, `data-404`). It fetches
// and instantiates the extended module H.x.wasm, which builds each beacon itself
// (starling_beacon::Event::each: the captures' events, hash routing, the 404 event) and posts it through
// its one import, replaces t.js's `run` with one that hands each event to that module, and loads each
// enabled capture script. t.js keeps the API, the queue, the SPA hooks and sending with retry; every
// decision is made in the module; this file only reads the page and calls browser APIs. t.js calls
// `run` inside a `try`: nothing here may throw into the host page, and a trap turns the tracker off.
//
// Build-time constant (scripts/build-tracker.sh): H, the build's content hash. t.js leaves the script
// tag in `starling.s`, a sender with retry in `starling.p` and a setter for its `run` in `starling.r`;
// this file leaves the module's promise in `starling.m`.
try {
  const W = window;
  const D = document;
  const N = navigator;
  const S = W.starling;
  const s = S.s;
  const dir = new URL('t/' + H, s.src);
  const cfg = [...s.attributes].map((a) => a.name + '\0' + a.value).join('\0') + '\0src-origin\0' + dir.origin;
  let last = ''; // the last page hit sent
  let x; // the module's exports
  const dec = (a, b) => new TextDecoder().decode(new Uint8Array(x.memory.buffer, a, b));
  const put = (t) => new TextEncoder().encodeInto(t, new Uint8Array(x.memory.buffer, x.b(), 32768));

  // One event into the module; kind and n describe a capture script's report (beacon::kind).
  S.r((name, props, href, kind = 0, n = []) => {
    // The storage script (data-storage) keeps flock.js's session id: [id, save after a send].
    const [sid, save] = (S.$ || Array)();
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
  });
  S.m = fetch(dir + '.x.wasm')
    .then((r) => r.arrayBuffer())
    .then((b) => WebAssembly.instantiate(b, { e: { s: (a, u, n) => S.p(dec(a, u), dec(a + u, n - u)) } }))
    .then((m) => {
      x = m.instance.exports;
      return m;
    });
  // The capture scripts, each only when its attribute is there (`hash` and `404` need none).
  for (const a of ['web-vitals', 'outbound-links', 'file-downloads', 'engagement'])
    s.hasAttribute('data-' + a) && D.head.append(Object.assign(D.createElement('script'), { src: dir + '.' + a[0] + '.js' }));
} catch {}
