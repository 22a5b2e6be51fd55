// t/<hash>.e.js (`data-engagement`): time the page was visible and the deepest pixel seen, reported
// when the page is hidden. The module computes the scroll depth and decides whether the report is
// worth sending (beacon::ext::engagement_due: depth grew or at least 3 s engaged since the last one).
try {
  const D = document;
  const now = () => performance.now();
  let deepest = 0;
  let engaged = 0;
  let since = D.hidden ? 0 : now();
  let depth = 0; // the last depth sent
  const scrolled = () => {
    deepest = Math.max(deepest, scrollY + innerHeight);
  };
  scrolled();
  addEventListener('scroll', scrolled, { passive: true });
  addEventListener('visibilitychange', () => {
    if (!D.hidden) return (since = now());
    if (since) engaged += now() - since;
    since = 0;
    // The event's props when it was sent (beacon::ext::capture).
    const r = starling._('', 0, 3, [deepest, Math.max(D.body.scrollHeight, D.documentElement.scrollHeight), engaged, depth]);
    if (r) {
      depth = r.sd;
      engaged = 0;
    }
  });
} catch {}
