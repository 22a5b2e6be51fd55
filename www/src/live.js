// The live visitors count (current_visitors): polled every 30 s while the page is visible, once the
// token has proved good; stopped by a fatal error.
import { pipe, ApiError, FATAL } from './api.js';
import * as fmt from './format.js';
import { $ } from './dom.js';
import { state } from './state.js';
import { showError } from './status.js';

const LIVE_MS = 30_000;

async function loadLive() {
  if (!state.token || state.fatal || document.visibilityState !== 'visible') return;
  state.liveController?.abort();
  state.liveController = new AbortController();
  try {
    const r = await pipe('current_visitors', { domain: state.domain }, state.token, state.liveController.signal);
    const n = r.data[0]?.visits ?? 0;
    const el = $('live-count');
    el.textContent = fmt.int(n);
    el.dataset.value = String(n);
  } catch (e) {
    if (e?.name === 'AbortError') return;
    if (e instanceof ApiError && FATAL.has(e.kind)) showError(e);
    $('live-count').textContent = '–';
    delete $('live-count').dataset.value;
  }
}

export function stopLive() {
  clearInterval(state.liveTimer);
  state.liveTimer = null;
  state.liveController?.abort();
}

/** Refreshes now and every 30 s while the page is visible. */
export function scheduleLive() {
  stopLive();
  if (document.visibilityState !== 'visible' || !state.domains) return;
  loadLive();
  state.liveTimer = setInterval(loadLive, LIVE_MS);
}
