// t/<hash>.o.js (`data-outbound-links`, WHICH = 1) and t/<hash>.f.js (`data-file-downloads`, WHICH = 2):
// reports clicks and middle clicks on links (the target, and its host name and path as the browser
// parsed them). The module decides whether a click is an outbound link or
// a download (beacon::ext::link_event) and strips the target like every URL (beacon::ext::capture).
try {
  const report = (e) => {
    try {
      const a = e.target.closest('a[href]');
      if (a && (e.type == 'click' || e.button == 1)) starling._([a.href, a.hostname, a.pathname].join('\0'), 0, 2, [WHICH]);
    } catch {}
  };
  addEventListener('click', report, true);
  addEventListener('auxclick', report, true);
} catch {}
