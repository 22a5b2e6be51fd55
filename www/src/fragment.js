// The URL fragment: the token arrives in it (and is then kept in sessionStorage for this tab only,
// never in the address bar), and the view state (theme, range, domain, filters, metric, the property
// shown) lives in it
// so a reload or bookmark keeps it.
import { RANGES, isDate, MAX_DAYS, spanDays } from './dates.js';
import { state } from './state.js';
import { THEME_KEYS } from './branding.js';
import { KPIS } from './kpis.js';
import { FILTERS } from './filters.js';
import { MODES, validCompare } from './compare.js';

const TOKEN_KEY = 'starling.dashboard.token';

/** Reads token, theme and view state from the fragment, then rewrites it without the token. */
export function readFragment() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = p.get('token');
  if (token) {
    setToken(token.trim(), true);
  } else if (!state.token) {
    try {
      state.token = sessionStorage.getItem(TOKEN_KEY);
    } catch {
      state.token = null;
    }
  }
  state.hashTheme = {};
  for (const k of THEME_KEYS) if (p.has(k)) state.hashTheme[k] = p.get(k);
  const range = p.get('range');
  state.range = RANGES.includes(range) ? range : '7d';
  state.custom = { from: p.get('from') || '', to: p.get('to') || '' };
  if (state.range === 'custom' && !validCustom(state.custom.from, state.custom.to)) state.range = '7d';
  state.domain = (p.get('domain') || '').slice(0, 512);
  state.filters = {};
  for (const k of Object.keys(FILTERS)) {
    const v = p.get(k);
    if (v) state.filters[k] = v.slice(0, 512);
  }
  const mode = p.get('compare') || 'previous_period';
  state.compare = { mode, from: p.get('cmp_from') || '', to: p.get('cmp_to') || '', matchDow: p.get('match_dow') === '1' };
  if (!(mode in MODES) || !validCompare(state.compare))
    state.compare = { mode: 'previous_period', from: '', to: '', matchDow: state.compare.matchDow };
  const segment = p.get('segment') || '';
  state.segment = /^[1-9][0-9]{0,9}$/.test(segment) ? segment : '';
  state.propKey = (p.get('prop') || '').trim().slice(0, 300);
  state.propGoal = p.has('prop_goal') ? p.get('prop_goal').slice(0, 512) : null;
  const metric = p.get('metric');
  state.metric = KPIS.some((k) => k.key === metric) ? metric : 'visitors';
  writeFragment();
}

/** The view state (never the token) in the fragment, so a reload or bookmark keeps it. */
export function writeFragment() {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state.hashTheme)) p.set(k, v);
  if (state.range !== '7d') p.set('range', state.range);
  if (state.range === 'custom') {
    p.set('from', state.custom.from);
    p.set('to', state.custom.to);
  }
  if (state.domain) p.set('domain', state.domain);
  for (const [k, v] of Object.entries(state.filters)) p.set(k, v);
  if (state.metric !== 'visitors') p.set('metric', state.metric);
  if (state.compare.mode !== 'previous_period') p.set('compare', state.compare.mode);
  if (state.compare.mode === 'custom') {
    p.set('cmp_from', state.compare.from);
    p.set('cmp_to', state.compare.to);
  }
  if (state.compare.matchDow) p.set('match_dow', '1');
  if (state.segment) p.set('segment', state.segment);
  if (state.propKey) p.set('prop', state.propKey);
  if (state.propGoal !== null) p.set('prop_goal', state.propGoal);
  const s = p.toString();
  const url = `${location.pathname}${location.search}${s ? `#${s}` : ''}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(history.state, '', url);
}

/** Takes a token (from the fragment, `remember`ed for this tab, or from the parent); true if it is a new one. */
export function setToken(token, remember) {
  const changed = token !== state.token;
  state.token = token;
  if (remember) {
    // Kept for this tab only, so a reload works after the fragment was cleared.
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      /* storage disabled */
    }
  }
  if (changed) {
    state.domains = null;
    state.fatal = false;
  }
  return changed;
}

function validCustom(from, to) {
  return isDate(from) && isDate(to) && from <= to && spanDays(from, to) <= MAX_DAYS;
}
