// Starling's tenant dashboard. Reads a read token from the URL fragment (#token=…) or from the
// embedding page (postMessage), removes it from the address bar, and draws the tenant's figures from
// the worker's /v0/pipes endpoints on this origin. The token is never logged and never sent elsewhere.
import { pipe, tenantSettings, ApiError, MESSAGES, FATAL } from './api.js';
import { viewerTimeZone, todayIn, rangeDates, RANGES, isDate, MAX_DAYS, spanDays, previousPeriod } from './dates.js';
import * as fmt from './format.js';
import { DEFAULT_THEME, mergeTheme, applyTheme, tenantTheme } from './theme.js';
import { Chart } from './chart.js';
import { buildCaptures, loadCaptures } from './speed.js';

const $ = (id) => document.getElementById(id);

/** Creates an element; `props` are DOM properties (never HTML), children are nodes or text. */
function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('aria-') || k === 'role' || k === 'scope' || k === 'colspan') e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

/** The figures: key in kpis/kpis_summary rows, label, formatter, whether a fall is good news. */
const KPIS = [
  { key: 'visitors', label: 'Unique visitors', fmt: fmt.int },
  { key: 'visits', label: 'Visits', fmt: fmt.int },
  { key: 'pageviews', label: 'Pageviews', fmt: fmt.int },
  { key: 'views_per_visit', label: 'Views per visit', fmt: fmt.dec },
  { key: 'bounce_rate', label: 'Bounce rate', fmt: fmt.percent, lowerIsBetter: true },
  { key: 'avg_session_sec', label: 'Visit duration', fmt: fmt.duration },
];

/** Filters the date-ranged endpoints accept (core/src/query/params.rs), with their chip labels. */
const FILTERS = {
  pathname: 'Page',
  source: 'Source',
  utm_campaign: 'Campaign',
  utm_source: 'Campaign source',
  utm_medium: 'Campaign medium',
  browser: 'Browser',
  os: 'Operating system',
  device: 'Device',
  country: 'Country',
};
/** Display names of the worker's lower-case browser, OS and device values. */
const NAMES = { ios: 'iOS', macos: 'macOS', chromeos: 'ChromeOS', ipados: 'iPadOS', opera: 'Opera', edge: 'Edge', samsung: 'Samsung Internet', bot: 'Bot' };
const pretty = (v) => NAMES[v] ?? (v ? v.charAt(0).toUpperCase() + v.slice(1) : v);
const filterText = (k, v) => (k === 'country' ? fmt.country(v) : ['browser', 'os', 'device'].includes(k) ? pretty(v) : v);

/** The top lists: endpoint, key column, filter a row click sets, how a row is shown. */
const TABLES = [
  { pipe: 'top_pages', title: 'Pages', col: 'Page', key: 'pathname', filter: 'pathname' },
  { pipe: 'entry_pages', title: 'Entry pages', col: 'Page', key: 'pathname', filter: 'pathname' },
  { pipe: 'exit_pages', title: 'Exit pages', col: 'Page', key: 'pathname', filter: 'pathname' },
  { pipe: 'top_sources', title: 'Sources', col: 'Source', key: 'referrer', filter: 'source', empty: 'Direct / none' },
  {
    pipe: 'top_campaigns', title: 'Campaigns', col: 'Campaign', key: 'utm_campaign', filter: 'utm_campaign',
    sub: (r) => [r.utm_source, r.utm_medium].filter(Boolean).join(' / '),
    filters: (r) => ({ utm_campaign: r.utm_campaign, utm_source: r.utm_source, utm_medium: r.utm_medium }),
  },
  { pipe: 'top_browsers', title: 'Browsers', col: 'Browser', key: 'browser', filter: 'browser', empty: 'Unknown', label: (v) => pretty(v) },
  { pipe: 'top_os', title: 'Operating systems', col: 'System', key: 'os', filter: 'os', empty: 'Unknown', label: (v) => pretty(v) },
  { pipe: 'top_devices', title: 'Devices', col: 'Device', key: 'device', filter: 'device', empty: 'Unknown', label: (v) => pretty(v) },
  { pipe: 'top_locations', title: 'Countries', col: 'Country', key: 'location', filter: 'country', label: fmt.country },
];
const TABLE_LIMIT = 10;
const THEME_KEYS = ['name', 'logo', 'color', 'theme', 'brand'];
const TOKEN_KEY = 'starling.dashboard.token';
const LIVE_MS = 30_000;

const tz = viewerTimeZone();
const framed = window.parent !== window;
const state = {
  token: null,
  /** Theme values, lowest precedence first: the tenant's settings (for the token `tenantFor`), the
   * fragment (kept there), the parent (postMessage). */
  tenantTheme: {},
  tenantFor: null,
  hashTheme: {},
  parentTheme: {},
  theme: DEFAULT_THEME,
  range: '7d',
  custom: {},
  domain: '',
  filters: {},
  metric: 'visitors',
  domains: null,
  series: null,
  hourly: false,
  fatal: false,
  parentOrigin: null,
};
let chart;

// ---- URL fragment ----------------------------------------------------------------------------------

/** Reads token, theme and view state from the fragment, then rewrites it without the token. */
function readFragment() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = p.get('token');
  if (token) {
    setToken(token.trim(), true);
  } else if (!state.token) {
    try { state.token = sessionStorage.getItem(TOKEN_KEY); } catch { state.token = null; }
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
  const metric = p.get('metric');
  state.metric = KPIS.some((k) => k.key === metric) ? metric : 'visitors';
  writeFragment();
}

/** The view state (never the token) in the fragment, so a reload or bookmark keeps it. */
function writeFragment() {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state.hashTheme)) p.set(k, v);
  if (state.range !== '7d') p.set('range', state.range);
  if (state.range === 'custom') { p.set('from', state.custom.from); p.set('to', state.custom.to); }
  if (state.domain) p.set('domain', state.domain);
  for (const [k, v] of Object.entries(state.filters)) p.set(k, v);
  if (state.metric !== 'visitors') p.set('metric', state.metric);
  const s = p.toString();
  const url = `${location.pathname}${location.search}${s ? `#${s}` : ''}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(history.state, '', url);
}

function setToken(token, remember) {
  const changed = token !== state.token;
  state.token = token;
  if (remember) {
    // Kept for this tab only, so a reload works after the fragment was cleared.
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch { /* storage disabled */ }
  }
  if (changed) { state.domains = null; state.fatal = false; }
  return changed;
}

function validCustom(from, to) {
  return isDate(from) && isDate(to) && from <= to && spanDays(from, to) <= MAX_DAYS;
}

// ---- theme -----------------------------------------------------------------------------------------

function themeNow() {
  state.theme = [state.tenantTheme, state.hashTheme, state.parentTheme].reduce(mergeTheme, DEFAULT_THEME);
  applyTheme(state.theme);
  chart?.refresh();
}

// ---- status and errors -----------------------------------------------------------------------------

function announce(text) {
  $('status').textContent = text;
}

let retryTimer = null;
function showError(err) {
  const alert = $('alert');
  clearTimeout(retryTimer);
  const kind = err instanceof ApiError ? err.kind : 'network';
  $('alert-text').textContent = err instanceof ApiError ? err.message : MESSAGES.network;
  alert.dataset.kind = kind;
  alert.hidden = false;
  $('retry').hidden = FATAL.has(kind);
  if (FATAL.has(kind)) {
    state.fatal = true;
    document.body.classList.add('fatal');
    stopLive();
  }
  // Rate limited: retry by itself a few times, backing off; then leave it to the button.
  if (kind === 'rate' && rateRetries < 3) {
    retryTimer = setTimeout(load, err.retryAfter * 1000 * 2 ** rateRetries);
    rateRetries += 1;
  }
}
let rateRetries = 0;

function clearError() {
  $('alert').hidden = true;
  delete $('alert').dataset.kind;
  document.body.classList.remove('fatal');
}

function setBusy(busy) {
  $('main').setAttribute('aria-busy', String(busy));
  document.body.classList.toggle('loading', busy);
}

// ---- loading ---------------------------------------------------------------------------------------

let generation = 0;
let controller = null;

function query() {
  const today = todayIn(tz);
  const { from, to } = rangeDates(state.range, today, state.custom);
  return { from, to, params: { date_from: from, date_to: to, timezone: tz, domain: state.domain, ...state.filters } };
}

/** The token's tenant settings under the fragment's and parent's theme; on failure the defaults. */
async function loadTenantTheme(token) {
  state.tenantFor = token;
  const settings = await tenantSettings(token);
  if (state.token !== token) return;
  state.tenantTheme = tenantTheme(settings);
  themeNow();
}

/** Loads everything for the current view; later calls cancel earlier ones. */
async function load() {
  clearTimeout(retryTimer);
  const gen = ++generation;
  controller?.abort();
  controller = new AbortController();
  const { signal } = controller;
  if (!state.token) {
    if (framed) { announce('Waiting for the embedding page…'); return; }
    showError(new ApiError('missing', 0, MESSAGES.missing));
    return;
  }
  if (state.tenantFor !== state.token) loadTenantTheme(state.token);
  const { from, to, params } = query();
  state.hourly = from === to;
  renderPeriod(from, to);
  renderFilters();
  setBusy(true);
  announce('Loading…');
  const token = state.token;
  const current = (fn) => (r) => { if (gen === generation) fn(r); };
  try {
    if (!state.domains) {
      // One call first: a bad or expired token then fails once, not a dozen times.
      const r = await pipe('domains', {}, token, signal);
      if (gen !== generation) return;
      state.domains = r.data;
      renderDomains();
      clearError();
      scheduleLive();
    }
    const withPrev = { ...params, include_previous_period: 'true' };
    const tasks = [
      pipe('kpis_summary', withPrev, token, signal).then(current((r) => renderKpis(r.data[0]))),
      pipe('kpis', withPrev, token, signal).then(current((r) => { state.series = r.data; renderSeries(); })),
      ...loadCaptures({ from, to, days: spanDays(from, todayIn(tz)), domain: state.domain }, token, signal, current),
      ...TABLES.map((t) => pipe(t.pipe, { ...params, limit: TABLE_LIMIT }, token, signal)
        .then(current((r) => renderTable(t, r.data)), (e) => { if (gen === generation) tableFailed(t); throw e; })),
    ];
    const settled = await Promise.allSettled(tasks);
    if (gen !== generation) return;
    const errors = settled.filter((s) => s.status === 'rejected').map((s) => s.reason).filter((e) => e?.name !== 'AbortError');
    if (errors.length) {
      showError(errors.find((e) => e instanceof ApiError && FATAL.has(e.kind)) ?? errors[0]);
      announce('Some figures could not be loaded.');
    } else {
      clearError();
      rateRetries = 0;
      announce(`Updated: ${$('period').textContent}`);
    }
  } catch (e) {
    if (e?.name === 'AbortError' || gen !== generation) return;
    showError(e);
    announce('The dashboard could not be loaded.');
  } finally {
    if (gen === generation) {
      setBusy(false);
      document.body.dataset.ready = String(gen);
    }
  }
}

// ---- live visitors ---------------------------------------------------------------------------------

let liveTimer = null;
let liveController = null;

async function loadLive() {
  if (!state.token || state.fatal || document.visibilityState !== 'visible') return;
  liveController?.abort();
  liveController = new AbortController();
  try {
    const r = await pipe('current_visitors', { domain: state.domain }, state.token, liveController.signal);
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

function stopLive() {
  clearInterval(liveTimer);
  liveTimer = null;
  liveController?.abort();
}

/** Refreshes now and every 30 s while the page is visible. */
function scheduleLive() {
  stopLive();
  if (document.visibilityState !== 'visible' || !state.domains) return;
  loadLive();
  liveTimer = setInterval(loadLive, LIVE_MS);
}

// ---- rendering -------------------------------------------------------------------------------------

function renderPeriod(from, to) {
  const prev = previousPeriod(from, to);
  const span = (a, b) => (a === b ? fmt.day(a) : `${fmt.day(a)} – ${fmt.day(b)}`);
  $('period').textContent = `${span(from, to)}, compared with ${span(prev.from, prev.to)}`;
  $('period').dataset.from = from;
  $('period').dataset.to = to;
}

function renderDomains() {
  const select = $('domain');
  const names = (state.domains || []).map((d) => d.domain).filter(Boolean);
  if (state.domain && !names.includes(state.domain)) names.unshift(state.domain);
  select.replaceChildren(h('option', { value: '', textContent: names.length === 1 ? names[0] : 'All sites' }),
    ...names.filter((n) => names.length > 1 || n === state.domain).map((n) => h('option', { value: n, textContent: n })));
  select.value = state.domain;
  select.disabled = names.length <= 1 && !state.domain;
}

function buildKpis() {
  $('kpis').replaceChildren(...KPIS.map((k) => h('button', {
    type: 'button', class: 'kpi', 'aria-pressed': String(k.key === state.metric), dataset: { metric: k.key },
    title: `Show ${k.label.toLowerCase()} in the chart`,
  },
  h('span', { class: 'kpi-label', textContent: k.label }),
  h('strong', { class: 'kpi-value', id: `kpi-${k.key}`, dataset: { testid: `kpi-${k.key}` }, textContent: '–' }),
  h('span', { class: 'kpi-delta', id: `delta-${k.key}`, dataset: { testid: `delta-${k.key}` } }))));
  $('kpis').addEventListener('click', (e) => {
    const b = e.target.closest('button.kpi');
    if (!b) return;
    state.metric = b.dataset.metric;
    for (const x of $('kpis').querySelectorAll('button.kpi')) x.setAttribute('aria-pressed', String(x === b));
    writeFragment();
    renderSeries();
  });
}

function renderKpis(row = {}) {
  for (const k of KPIS) {
    const cur = Number(row[k.key]) || 0;
    const prev = Number(row[`previous_${k.key}`]) || 0;
    const v = $(`kpi-${k.key}`);
    v.textContent = k.fmt(cur);
    v.dataset.value = String(cur);
    const d = $(`delta-${k.key}`);
    d.className = 'kpi-delta';
    d.dataset.previous = String(prev);
    let text;
    let said;
    if (prev === 0) {
      text = cur === 0 ? '–' : 'new';
      said = cur === 0 ? 'no data in either period' : 'none in the previous period';
    } else {
      const pct = ((cur - prev) / prev) * 100;
      const r = Math.round(pct);
      const dir = r > 0 ? 'up' : r < 0 ? 'down' : 'flat';
      text = `${r > 0 ? '▲' : r < 0 ? '▼' : '='} ${Math.abs(r)}%`;
      said = `${dir === 'flat' ? 'no change' : `${dir} ${Math.abs(r)}%`} from ${k.fmt(prev)} in the previous period`;
      if (dir !== 'flat') d.classList.add((dir === 'up') !== Boolean(k.lowerIsBetter) ? 'good' : 'bad');
    }
    d.replaceChildren(h('span', { 'aria-hidden': 'true', textContent: text }), h('span', { class: 'sr-only', textContent: said }));
    d.title = said.charAt(0).toUpperCase() + said.slice(1);
  }
  const empty = !(Number(row.visits) > 0);
  $('main').classList.toggle('empty', empty);
}

function renderSeries() {
  const rows = state.series || [];
  const k = KPIS.find((x) => x.key === state.metric) || KPIS[0];
  $('chart-title').textContent = `${k.label} ${state.hourly ? 'by hour' : 'by day'}`;
  chart.render(rows, k.key, k.fmt, state.hourly, k.label);
  const body = $('chart-table').tBodies[0];
  body.replaceChildren(...rows.map((r) => h('tr', {},
    h('th', { scope: 'row', textContent: fmt.bucket(r.date, state.hourly) }),
    h('td', { class: 'num', textContent: k.fmt(r[k.key]) }),
    h('td', { class: 'num', textContent: k.fmt(r[`previous_${k.key}`]) }))));
  $('chart-table').tHead.rows[0].cells[0].textContent = state.hourly ? 'Hour' : 'Date';
}

function buildTables() {
  $('tables').replaceChildren(...TABLES.map((t) => h('section', { class: 'card table-card', 'aria-labelledby': `title-${t.pipe}` },
    h('h2', { id: `title-${t.pipe}`, textContent: t.title }),
    h('table', { id: `table-${t.pipe}`, dataset: { testid: `table-${t.pipe}` } },
      h('caption', { class: 'sr-only', textContent: `${t.title}: visits and pageviews; select a row to filter the dashboard` }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', textContent: t.col }),
        h('th', { scope: 'col', class: 'num', textContent: 'Visits' }),
        h('th', { scope: 'col', class: 'num', textContent: 'Views' }))),
      h('tbody', {}, h('tr', { class: 'placeholder' }, h('td', { colspan: 3, textContent: 'Loading…' })))))));
  $('tables').addEventListener('click', (e) => {
    const b = e.target.closest('button.row-filter');
    if (!b) return;
    const add = JSON.parse(b.dataset.filters);
    const active = Object.entries(add).every(([k, v]) => !v || state.filters[k] === v);
    for (const [k, v] of Object.entries(add)) {
      if (active) delete state.filters[k];
      else if (v) state.filters[k] = v;
      else delete state.filters[k];
    }
    changed();
    $('main').focus({ preventScroll: true });
  });
}

function renderTable(t, rows) {
  const body = $(`table-${t.pipe}`).tBodies[0];
  if (!rows.length) {
    body.replaceChildren(h('tr', { class: 'placeholder' }, h('td', { colspan: 3, textContent: 'No data for this period.' })));
    return;
  }
  const max = Math.max(1, ...rows.map((r) => Number(r.visits) || 0));
  body.replaceChildren(...rows.map((r) => {
    const value = r[t.key] ?? '';
    const label = value ? (t.label ? t.label(value) : value) : (t.empty || '(none)');
    const filters = t.filters ? t.filters(r) : { [t.filter]: value };
    const active = value && Object.entries(filters).every(([k, v]) => !v || state.filters[k] === v);
    const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
    bar.style.width = `${Math.max(1, Math.round(((Number(r.visits) || 0) / max) * 100))}%`;
    const sub = t.sub ? t.sub(r) : '';
    const name = value
      ? h('button', {
        type: 'button', class: 'row-filter', title: `Filter by ${FILTERS[t.filter].toLowerCase()}: ${label}`,
        'aria-pressed': String(Boolean(active)), dataset: { filters: JSON.stringify(filters) },
      }, h('span', { class: 'label', textContent: label }), sub && h('span', { class: 'sub', textContent: sub }))
      : h('span', { class: 'row-static' }, h('span', { class: 'label', textContent: label }));
    return h('tr', { dataset: { testid: 'row', key: value } },
      h('td', { class: 'name' }, bar, name),
      h('td', { class: 'num', dataset: { testid: 'visits', value: String(r.visits) }, textContent: fmt.int(r.visits) }),
      h('td', { class: 'num', dataset: { testid: 'hits', value: String(r.hits) }, textContent: fmt.int(r.hits) }));
  }));
}

function tableFailed(t) {
  $(`table-${t.pipe}`).tBodies[0].replaceChildren(h('tr', { class: 'placeholder' }, h('td', { colspan: 3, textContent: 'Could not load this list.' })));
}

function renderFilters() {
  const entries = Object.entries(state.filters);
  $('filters').hidden = entries.length === 0;
  const chips = entries.map(([k, v]) => h('li', { class: 'chip', dataset: { testid: 'filter-chip', filter: k, value: v } },
    h('span', {}, `${FILTERS[k]}: `, h('strong', { textContent: filterText(k, v) })),
    h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove filter ${FILTERS[k]}: ${filterText(k, v)}`, dataset: { remove: k }, textContent: '×' })));
  if (entries.length > 1) chips.push(h('li', {}, h('button', { type: 'button', class: 'link', dataset: { remove: '*' }, textContent: 'Clear all' })));
  $('filter-list').replaceChildren(...chips);
  $('live-label').textContent = entries.length ? 'visitors in the last 5 minutes (unfiltered)' : 'visitors in the last 5 minutes';
}

// ---- controls --------------------------------------------------------------------------------------

/** The view changed: keep it in the fragment and reload. */
function changed() {
  writeFragment();
  load();
}

function syncControls() {
  $('range').value = state.range;
  $('custom').hidden = state.range !== 'custom';
  const today = todayIn(tz);
  for (const id of ['from', 'to']) $(id).max = today;
  if (state.range === 'custom') { $('from').value = state.custom.from; $('to').value = state.custom.to; }
  $('domain').value = state.domain;
  for (const x of $('kpis').querySelectorAll('button.kpi')) x.setAttribute('aria-pressed', String(x.dataset.metric === state.metric));
}

function wireControls() {
  $('range').addEventListener('change', () => {
    const v = $('range').value;
    if (v === 'custom') {
      const { from, to } = query();
      $('from').value = state.custom.from || from;
      $('to').value = state.custom.to || to;
      $('custom').hidden = false;
      $('from').focus();
      return;
    }
    $('custom').hidden = true;
    state.range = v;
    changed();
  });
  $('controls').addEventListener('submit', (e) => {
    e.preventDefault();
    const from = $('from').value;
    const to = $('to').value;
    $('to').setCustomValidity('');
    if (!isDate(from) || !isDate(to)) return;
    if (from > to) { $('to').setCustomValidity('The end date must not be before the start date.'); $('to').reportValidity(); return; }
    if (spanDays(from, to) > MAX_DAYS) { $('to').setCustomValidity(`Choose at most ${MAX_DAYS} days.`); $('to').reportValidity(); return; }
    state.range = 'custom';
    state.custom = { from, to };
    changed();
  });
  $('to').addEventListener('input', () => $('to').setCustomValidity(''));
  $('domain').addEventListener('change', () => {
    state.domain = $('domain').value;
    changed();
    scheduleLive();
  });
  $('filters').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-remove]');
    if (!b) return;
    if (b.dataset.remove === '*') state.filters = {};
    else delete state.filters[b.dataset.remove];
    changed();
    $('main').focus({ preventScroll: true });
  });
  $('retry').addEventListener('click', () => { clearError(); rateRetries = 0; load(); });
  document.addEventListener('visibilitychange', scheduleLive);
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => chart?.refresh());
  window.addEventListener('hashchange', () => {
    // A pasted link (#token=… or new settings) in the same tab.
    const hadToken = /(^|[#&])token=/.test(location.hash);
    readFragment();
    themeNow();
    syncControls();
    if (hadToken) scheduleLive();
    load();
  });
}

// ---- embedding -------------------------------------------------------------------------------------

/**
 * The origins that may configure us from a parent frame: our own, plus those the worker wrote into the
 * `starling-frame-ancestors` meta tag (the same list as the page's CSP frame-ancestors: the operator's
 * FRAME_ANCESTORS and the tenant's allowed_origins). `https://*.example.com` matches any subdomain.
 */
function parentAllowed(origin) {
  if (origin === location.origin) return true;
  const list = (document.querySelector('meta[name="starling-frame-ancestors"]')?.content || '').split(/\s+/).filter(Boolean);
  let url;
  try { url = new URL(origin); } catch { return false; }
  return list.some((entry) => {
    const star = entry.match(/^(https?):\/\/\*\.(.+)$/);
    if (!star) return entry === origin;
    const [host, port = ''] = star[2].split(':');
    return url.protocol === `${star[1]}:` && url.port === port && url.hostname.endsWith(`.${host}`);
  });
}

function wireEmbedding() {
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
  setTimeout(() => { if (!state.token) showError(new ApiError('missing', 0, MESSAGES.missing)); }, 5000);
}

let lastHeight = 0;
function postHeight() {
  if (!state.parentOrigin) return;
  const height = Math.ceil(document.body.getBoundingClientRect().height);
  if (height === lastHeight) return;
  lastHeight = height;
  window.parent.postMessage({ type: 'starling:height', height }, state.parentOrigin);
}

// ---- start -----------------------------------------------------------------------------------------

function start() {
  buildKpis();
  buildTables();
  buildCaptures($('captures'));
  chart = new Chart($('chart'));
  readFragment();
  themeNow();
  $('timezone').textContent = `Times in ${tz}`;
  syncControls();
  wireControls();
  wireEmbedding();
  load();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
