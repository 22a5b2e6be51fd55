// t/<hash>.s.js, loaded by t.js only when the tag has `data-storage`: flock.js-compatible session id,
// 30 minutes sliding, in a `session-id` cookie or as {"value","expiry"} in local/session storage,
// written only once an event was sent. Unlike flock.js the cookie gets SameSite=Lax, Secure only on
// https, and Domain only when the page is on data-domain (else browsers reject it and every event
// starts a new session). Only reads and writes storage; t.js calls starling.$() for [id, save].
try {
  const D = document;
  const L = location;
  const s = starling.s;
  const store = s.getAttribute('data-storage');
  const dom = s.getAttribute('data-domain')?.replace(/^\./, '');
  starling.$ = () => {
    const S = store == 'localStorage' ? localStorage : store == 'sessionStorage' ? sessionStorage : 0;
    const now = Date.now();
    let old;
    if (S)
      try {
        old = JSON.parse(S.getItem('session-id'));
      } catch {}
    const sid =
      (S ? old && old.expiry > now && old.value : (D.cookie.match(/(^|; )session-id=([\w-]+)/) || [])[2]) || crypto.randomUUID?.() || '';
    return [
      sid,
      sid &&
        (() =>
          S
            ? S.setItem('session-id', JSON.stringify({ value: sid, expiry: now + 18e5 }))
            : (D.cookie =
                'session-id=' +
                sid +
                '; Max-Age=1800; Path=/; SameSite=Lax' +
                (L.protocol == 'https:' ? '; Secure' : '') +
                (/\./.test(dom) && ('.' + L.hostname).endsWith('.' + dom) ? '; Domain=' + dom : ''))),
    ];
  };
} catch {}
