// Headless Chromium for the browser tests and the tracker trace benchmark: Debian's `chromium` (or
// $CHROMIUM), driven by playwright-core, with background traffic off so only the page's requests run.
import { chromium } from 'playwright-core';

/** Launches headless Chromium. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}

/**
 * Waits until the dashboard in `frame` (a page or an iframe) has drawn a load newer than `after` and is no
 * longer busy; returns that load's number (`document.body.dataset.ready`), to pass as `after` next time.
 */
export async function settled(frame, after = 0) {
  await frame.waitForFunction(
    (n) => Number(document.body.dataset.ready || 0) > n && document.getElementById('main').getAttribute('aria-busy') === 'false',
    after,
    { timeout: 30_000 },
  );
  return frame.evaluate(() => Number(document.body.dataset.ready));
}

/**
 * The browser's log line for a 502, 503 or 504 answer. The local runtime answers an occasional 503 of its
 * own under load (no request of the worker's is logged for it); the dashboard asks again (api.js `read`,
 * tested in dashboard.test.mjs "a 503 ... is asked again"), so the line is not a problem of the page. The
 * numbers the tests compare still have to match.
 */
export const refusedOnTheWay = (text) => /status of 50[234]\b/.test(text);

/**
 * The browser's own log line for a send the edge refused or left unanswered ("Failed to load resource",
 * "blocked by CORS policy"): the tracker sends the event again (tracker.test.mjs "an event the edge
 * refused ..."), so the line is not an error of the page.
 */
export const refusedSend = (text) => /^Failed to load resource|blocked by CORS policy/.test(text);

/**
 * Opens `${base}/dashboard/#${hash}` in a new context of `browser` (1280 px wide, en-US, zone `timezoneId`)
 * and collects its console errors and page errors in `problems`.
 */
export async function openDashboard(browser, base, hash, { height = 900, timezoneId = 'UTC' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height }, timezoneId, locale: 'en-US' });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => m.type() === 'error' && !refusedOnTheWay(m.text()) && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(`${base}/dashboard/#${hash}`);
  return { page, context, problems };
}

/**
 * Routes the tracker's files (`t.js`, `t/*.wasm`) from the worker `base` through the test: a GET the
 * local runtime never answers (seen now and then under load; tests/lib/worker.mjs `httpCall` asks its own
 * GETs again the same way) is asked again after 15 s, instead of holding the page's load event until the
 * page's timeout. The module also gets `Access-Control-Allow-Origin: *`, as production's `_headers` rules
 * give it (the "served with CORS and cache headers" test checks the real headers).
 */
export async function routeTracker(context, base) {
  const fetchAgain = async (route) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await route.fetch({ timeout: 15_000 });
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
  };
  await context.route(`${base}/t.js*`, async (route) => route.fulfill({ response: await fetchAgain(route) }));
  await context.route(`${base}/t/*.wasm`, async (route) => {
    const r = await fetchAgain(route);
    await route.fulfill({ response: r, headers: { ...r.headers(), 'access-control-allow-origin': '*' } });
  });
}
