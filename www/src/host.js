// Embedding: when the dashboard runs in an iframe, the embedding page (from an allowed origin only)
// sends the token and theme by postMessage, and learns the page's height, nothing else.
import { ApiError, MESSAGES } from './api.js';
import { state, framed } from './state.js';
import { THEME_KEYS, themeNow } from './branding.js';
import { setToken } from './fragment.js';
import { showError, clearError } from './status.js';

/**
 * The origins that may configure us from a parent frame: our own, plus those the worker wrote into the
 * `starling-frame-ancestors` meta tag (the same list as the page's CSP frame-ancestors: the operator's
 * FRAME_ANCESTORS and the tenant's allowed_origins). `https://*.example.com` matches any subdomain.
 */
function parentAllowed(origin) {
  if (origin === location.origin) return true;
  const list = (document.querySelector('meta[name="starling-frame-ancestors"]')?.content || '').split(/\s+/).filter(Boolean);
  let url;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  return list.some((entry) => {
    const star = entry.match(/^(https?):\/\/\*\.(.+)$/);
    if (!star) return entry === origin;
    const [host, port = ''] = star[2].split(':');
    return url.protocol === `${star[1]}:` && url.port === port && url.hostname.endsWith(`.${host}`);
  });
}

/** Listens to the parent, if framed; `load` is called when it sends a new token. */
export function wireEmbedding(load) {
  if (!framed) return;
  window.addEventListener('message', (e) => {
    // Only the page that embeds us, from an allowed origin, may configure us; it also learns nothing it
    // did not send.
    if (e.source !== window.parent || !parentAllowed(e.origin)) return;
    const d = e.data;
    if (!d || typeof d !== 'object' || (d.type !== 'starling:token' && d.type !== 'starling:config')) return;
    state.parentOrigin = e.origin;
    if (d.theme && typeof d.theme === 'object') {
      state.parentTheme = Object.fromEntries(THEME_KEYS.filter((k) => typeof d.theme[k] === 'string').map((k) => [k, d.theme[k]]));
      themeNow();
    }
    if (typeof d.token === 'string' && d.token && setToken(d.token, false)) {
      clearError();
      load();
    }
    postHeight();
  });
  new ResizeObserver(postHeight).observe(document.body);
  // Carries no data: the parent answers with the token and theme.
  window.parent.postMessage({ type: 'starling:ready' }, '*');
  setTimeout(() => {
    if (!state.token) showError(new ApiError('missing', 0, MESSAGES.missing));
  }, 5000);
}

function postHeight() {
  if (!state.parentOrigin) return;
  const height = Math.ceil(document.body.getBoundingClientRect().height);
  if (height === state.lastHeight) return;
  state.lastHeight = height;
  window.parent.postMessage({ type: 'starling:height', height }, state.parentOrigin);
}
