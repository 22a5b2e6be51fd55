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
