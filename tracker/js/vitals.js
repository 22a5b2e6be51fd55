// t/<hash>.w.js (`data-web-vitals`): LCP, INP, CLS, FCP and TTFB measured with PerformanceObserver as
// the web-vitals library does (simplified: no bfcache restores, INP as the 98th percentile of the
// interactions' longest event durations), reported as `web_vital` events in the shape of Tinybird's
// web analytics kit: {name, value, delta, id, navigationType}; the extended module adds the rating
// (standard thresholds, beacon::ext::rating), pathname and href (beacon::ext::capture). TTFB after load, FCP at first paint, LCP at the
// first input or when hidden, CLS and INP when hidden (again later with their delta if they grew).
try {
  const D = document;
  const P = performance;
  const nav = P.getEntriesByType('navigation')[0] || {};
  const start = nav.activationStart || 0;
  const id = 'v1-' + Date.now() + '-' + Math.random().toString(36).slice(2, 10);
  const sent = {};
  const report = (name, i, value) => {
    value = Math.max(0, value);
    if (sent[name] === value) return;
    starling._(
      JSON.stringify({
        name,
        value,
        delta: value - (sent[name] || 0),
        id: id + '-' + i,
        navigationType: (nav.type || 'navigate').replace('_', '-'),
      }),
      0,
      1,
      [i, Math.min(value * 1000, 4e9)],
    );
    sent[name] = value;
  };
  const observe = (type, f, o) => {
    try {
      new PerformanceObserver((l) => l.getEntries().forEach(f)).observe({ type, buffered: true, ...o });
    } catch {}
  };

  let lcp = -1;
  let cls = 0;
  let win = 0; // the current session window of layout shifts: value, first and last time
  let first = 0;
  let prev = 0;
  const inp = {}; // interactionId → longest duration
  observe('paint', (e) => e.name == 'first-contentful-paint' && report('FCP', 3, e.startTime - start));
  observe('largest-contentful-paint', (e) => {
    lcp = e.startTime - start;
  });
  observe('layout-shift', (e) => {
    if (e.hadRecentInput) return;
    win = win && e.startTime - prev < 1000 && e.startTime - first < 5000 ? win + e.value : ((first = e.startTime), e.value);
    prev = e.startTime;
    cls = Math.max(cls, win);
  });
  observe(
    'event',
    (e) => {
      if (e.interactionId) inp[e.interactionId] = Math.max(inp[e.interactionId] || 0, e.duration);
    },
    { durationThreshold: 40 },
  );
  observe('first-input', (e) => {
    inp[e.interactionId || 0] = Math.max(inp[e.interactionId || 0] || 0, e.duration);
  });

  const finalLcp = () => {
    lcp < 0 || 'LCP' in sent || report('LCP', 0, lcp);
  };
  for (const t of ['keydown', 'click']) addEventListener(t, finalLcp, { once: true, capture: true });
  const ttfb = () => setTimeout(() => nav.responseStart != null && report('TTFB', 4, nav.responseStart - start));
  D.readyState == 'complete' ? ttfb() : addEventListener('load', ttfb, { once: true });
  addEventListener('visibilitychange', () => {
    if (!D.hidden) return;
    finalLcp();
    report('CLS', 2, cls);
    const d = Object.values(inp).sort((a, b) => b - a);
    if (d.length) report('INP', 1, d[Math.min(d.length - 1, Math.floor(d.length / 50))]);
  });
} catch {}
