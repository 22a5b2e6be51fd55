// What the page says about itself: the screen-reader status line, the error alert (with its Try
// again button and, after a rate limit, a few automatic retries), and the busy state.
import { ApiError, MESSAGES, FATAL } from './api.js';
import { $ } from './dom.js';
import { state } from './state.js';

/**
 * What an error sets off beyond this module: `retry` reloads the view (after a rate limit), `fatal`
 * stops the live poll. Given by main.js at start-up, so this module imports neither.
 */
const after = { retry: () => {}, fatal: () => {} };
export function onError({ retry, fatal }) {
  after.retry = retry;
  after.fatal = fatal;
}

export function announce(text) {
  $('status').textContent = text;
}

export function showError(err) {
  const alert = $('alert');
  clearTimeout(state.retryTimer);
  const kind = err instanceof ApiError ? err.kind : 'network';
  $('alert-text').textContent = err instanceof ApiError ? err.message : MESSAGES.network;
  alert.dataset.kind = kind;
  alert.hidden = false;
  $('retry').hidden = FATAL.has(kind);
  if (FATAL.has(kind)) {
    state.fatal = true;
    document.body.classList.add('fatal');
    after.fatal();
  }
  // Rate limited: retry by itself a few times, backing off; then leave it to the button.
  if (kind === 'rate' && state.rateRetries < 3) {
    state.retryTimer = setTimeout(after.retry, err.retryAfter * 1000 * 2 ** state.rateRetries);
    state.rateRetries += 1;
  }
}

export function clearError() {
  $('alert').hidden = true;
  delete $('alert').dataset.kind;
  document.body.classList.remove('fatal');
}

export function setBusy(busy) {
  $('main').setAttribute('aria-busy', String(busy));
  document.body.classList.toggle('loading', busy);
}
