// t.js: the loader. Reads its script tag synchronously, installs the public API (calls made before the
// wasm module is ready are queued and replayed), then fetches and instantiates the module. It only
// reads the page: every decision is made in the module (starling_core::beacon). Every entry point is
// wrapped: nothing here may throw into the host page, and a trap in the module turns the tracker off.
import { initSync, buf, ev } from '../pkg/starling_tracker.js';

try {
  const W = window;
  const D = document;
  const N = navigator;
  const L = location;
  const s = D.currentScript;
  const cfg = [...s.attributes].map((a) => a.name + '\0' + a.value).join('\0') + '\0src-origin\0' + new URL(s.src).origin;
  const store = s.getAttribute('data-storage');
  // Calls made before t.js ran (`window.starling = {q: [], track(n, p) { this.q.push([n, p]) }}`).
  const q = (W.starling && W.starling.q) || [];
  let last = '';
  let mem; // the module's memory and input buffer, once ready
  let state = 0; // 0 loading, 1 ready, 2 off

  const run = (name, props, href) => {
    if (state - 1) return;
    try {
      let sid = '';
      let save;
      let out;
      if (store != null) {
        // flock.js-compatible session id, 30 minutes sliding: a `session-id` cookie, or
        // {"value","expiry"} in local/session storage, written only once an event was sent. Unlike
        // flock.js the cookie gets SameSite=Lax, Secure only on https, and Domain only when the page
        // is on data-domain (else browsers reject it and every event starts a new session).
        const S = store == 'localStorage' ? localStorage : store == 'sessionStorage' ? sessionStorage : 0;
        const now = Date.now();
        const dom = s.getAttribute('data-domain')?.replace(/^\./, '');
        if (S) try { out = JSON.parse(S.getItem('session-id')); } catch {}
        sid = (S ? out && out.expiry > now && out.value : (D.cookie.match(/(^|; )session-id=([\w-]+)/) || [])[2])
          || crypto.randomUUID?.() || '';
        save = sid && (() => S ? S.setItem('session-id', JSON.stringify({ value: sid, expiry: now + 18e5 }))
          : D.cookie = 'session-id=' + sid + '; Max-Age=1800; Path=/; SameSite=Lax' + (L.protocol == 'https:' ? '; Secure' : '')
            + (/\./.test(dom) && ('.' + L.hostname).endsWith('.' + dom) ? '; Domain=' + dom : ''));
        out = 0;
      }
      try { out = W.starlingOptOut || localStorage.getItem('starling-opt-out'); } catch {}
      const u = new URL(href);
      const input = [cfg, [href, u.pathname, u.hostname, D.referrer, last, N.language,
        N.userAgent, new Date().toISOString(), sid].join('\0'), name, name ? JSON.stringify(props ?? {}) : ''].join('\x01');
      const r = new TextEncoder().encodeInto(input, new Uint8Array(mem.memory.buffer, buf(), 32768));
      const flags = (N.globalPrivacyControl ? 1 : 0) | (N.webdriver || W.Cypress || W.__nightmare ? 2 : 0) | (out ? 4 : 0);
      if (r.read == input.length && ev(r.written, flags)) {
        name || (last = href);
        save && save();
      }
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError) state = 2;
    }
  };
  const go = (name, props) => {
    try {
      state ? run(name, props, L.href) : q.push([name, props, L.href]);
    } catch {}
  };
  const track = (name, props) => name && go('' + name, props);
  const page = () => D.prerendering || go('');

  W.Tinybird = { trackEvent: track };
  W.starling = { track };
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
  D.prerendering ? D.addEventListener('prerenderingchange', page, { once: true }) : page();

  fetch(new URL(WASM_PATH, s.src))
    .then((r) => r.arrayBuffer())
    .then((b) => WebAssembly.compile(b))
    .then((module) => {
      mem = initSync({ module });
      state = 1;
      q.splice(0).forEach((e) => run(e[0] == null ? '' : '' + e[0], e[1], e[2] || L.href));
    })
    .catch(() => {});
} catch {}
