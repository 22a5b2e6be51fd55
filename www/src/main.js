// Starling's tenant dashboard. Reads a read token from the URL fragment (#token=…) or from the
// embedding page (postMessage), removes it from the address bar, and draws the tenant's figures from
// the worker's /v0/pipes endpoints on this origin. The token is never logged and never sent elsewhere.
// This module loads the view, wires the controls and starts the page; what it draws and keeps is in
// the modules below, all of them sharing the one `state` (state.js).
import { pipe, ApiError, MESSAGES, FATAL } from './api.js';
import { todayIn, rangeDates, isDate, MAX_DAYS, spanDays, previousPeriod } from './dates.js';
import * as fmt from './format.js';
import { Chart } from './chart.js';
import { buildCaptures, loadCaptures } from './speed.js';
import { buildHours, loadHours } from './hours.js';
import { $, h } from './dom.js';
import { state, tz, framed } from './state.js';
import { themeNow, loadTenantTheme } from './branding.js';
import { readFragment, writeFragment } from './fragment.js';
import { announce, showError, clearError, setBusy, onError } from './status.js';
import { scheduleLive, stopLive } from './live.js';
import { buildKpis, renderKpis, renderSeries } from './kpis.js';
import { TABLES, TABLE_LIMIT, buildTables, renderTable, tableFailed } from './tables.js';
import { renderFilters } from './filters.js';
import { buildFunnels, loadFunnels } from './funnels.js';
import { buildGoals, loadGoals } from './goals.js';
import { buildProps, loadProps, renderPropGoals } from './props.js';
import { wireEmbedding } from './host.js';
import { MODES, validCompare, pipesAnswer, loadComparison, withPrevious, summaryWithPrevious } from './compare.js';
import { listSegments, renderSegments, saveSegment } from './segments.js';

// ---- loading ---------------------------------------------------------------------------------------

function query() {
  const today = todayIn(tz);
  const { from, to } = rangeDates(state.range, today, state.custom);
  return {
    from,
    to,
    // The segment goes to the pipes with the dashboard filters (kpis and the tables), not the captures.
    params: { date_from: from, date_to: to, timezone: tz, domain: state.domain, ...state.filters, segment: state.segment },
    view: { from, to, tz, domain: state.domain, filters: state.filters, segment: state.segment },
  };
}

/** Loads everything for the current view; later calls cancel earlier ones. */
async function load() {
  clearTimeout(state.retryTimer);
  const gen = ++state.generation;
  state.controller?.abort();
  state.controller = new AbortController();
  const { signal } = state.controller;
  if (!state.token) {
    if (framed) {
      announce('Waiting for the embedding page…');
      return;
    }
    showError(new ApiError('missing', 0, MESSAGES.missing));
    return;
  }
  if (state.tenantFor !== state.token) loadTenantTheme(state.token);
  const { from, to, params, view } = query();
  state.hourly = from === to;
  renderPeriod(from, to, pipesAnswer(state.compare) ? previousPeriod(from, to) : null);
  renderFilters();
  setBusy(true);
  announce('Loading…');
  const token = state.token;
  const current = (fn) => (r) => {
    if (gen === state.generation) fn(r);
  };
  try {
    if (!state.domains) {
      // One call first: a bad or expired token then fails once, not a dozen times.
      const r = await pipe('domains', {}, token, signal);
      if (gen !== state.generation) return;
      state.domains = r.data;
      renderDomains();
      clearError();
      scheduleLive();
    }
    if (state.segmentsFor !== token) {
      state.segmentsFor = token;
      state.segments = await listSegments(token, signal);
      if (gen !== state.generation) return;
      renderSegments();
    }
    const tasks = [
      ...kpiTasks(params, view, token, signal, current),
      loadHours(params, token, signal, current),
      ...loadCaptures({ from, to, days: spanDays(from, todayIn(tz)), domain: state.domain }, token, signal, current),
      loadGoals(
        { from, to, timezone: tz, domain: state.domain, filters: state.filters, segment: state.segment, compare: state.compare },
        token,
        signal,
        current,
      ).then(current(() => renderPropGoals(state.goalNames))),
      loadProps({ from, to, timezone: tz, domain: state.domain, filters: state.filters, segment: state.segment }, token, signal, current),
      loadFunnels({ from, to, timezone: tz, domain: state.domain, filters: state.filters, segment: state.segment }, token, signal, current),
      ...TABLES.map((t) =>
        pipe(t.pipe, { ...params, limit: TABLE_LIMIT }, token, signal).then(
          current((r) => renderTable(t, r.data)),
          (e) => {
            if (gen === state.generation) tableFailed(t);
            throw e;
          },
        ),
      ),
    ];
    const settled = await Promise.allSettled(tasks);
    if (gen !== state.generation) return;
    const errors = settled
      .filter((s) => s.status === 'rejected')
      .map((s) => s.reason)
      .filter((e) => e?.name !== 'AbortError');
    if (errors.length) {
      showError(errors.find((e) => e instanceof ApiError && FATAL.has(e.kind)) ?? errors[0]);
      announce('Some figures could not be loaded.');
    } else {
      clearError();
      state.rateRetries = 0;
      announce(`Updated: ${$('period').textContent}`);
    }
  } catch (e) {
    if (e?.name === 'AbortError' || gen !== state.generation) return;
    showError(e);
    announce('The dashboard could not be loaded.');
  } finally {
    if (gen === state.generation) {
      setBusy(false);
      document.body.dataset.ready = String(gen);
    }
  }
}

/**
 * The KPI cards and the chart with the chosen comparison: the pipes' own previous period, or the
 * pipes' current figures with the comparison's from /v0/query (compare.js), or none.
 */
function kpiTasks(params, view, token, signal, current) {
  const c = state.compare;
  if (pipesAnswer(c)) {
    const withPrev = { ...params, include_previous_period: 'true' };
    return [
      pipe('kpis_summary', withPrev, token, signal).then(current((r) => renderKpis(r.data[0]))),
      pipe('kpis', withPrev, token, signal).then(
        current((r) => {
          state.series = r.data;
          renderSeries();
        }),
      ),
    ];
  }
  const cmp = c.mode === 'off' ? Promise.resolve(null) : loadComparison(view, c, token, signal);
  const summary = pipe('kpis_summary', params, token, signal);
  const series = pipe('kpis', params, token, signal);
  return [
    Promise.all([summary, cmp]).then(
      current(([s, k]) => {
        if (k?.range) renderPeriod(view.from, view.to, { from: k.range[0], to: k.range[1] });
        renderKpis(summaryWithPrevious(s.data[0], k));
      }),
    ),
    Promise.all([series, cmp]).then(
      current(([s, k]) => {
        state.series = withPrevious(s.data, k);
        renderSeries();
      }),
    ),
  ];
}

/** The period line: the range and what it is compared with (`prev` null: not known yet, or none). */
function renderPeriod(from, to, prev) {
  const span = (a, b) => (a === b ? fmt.day(a) : `${fmt.day(a)} – ${fmt.day(b)}`);
  const off = state.compare.mode === 'off';
  $('period').textContent = off || !prev ? span(from, to) : `${span(from, to)}, compared with ${span(prev.from, prev.to)}`;
  $('period').dataset.from = from;
  $('period').dataset.to = to;
  $('period').dataset.compareFrom = prev && !off ? prev.from : '';
  $('period').dataset.compareTo = prev && !off ? prev.to : '';
}

function renderDomains() {
  const select = $('domain');
  const names = (state.domains || []).map((d) => d.domain).filter(Boolean);
  if (state.domain && !names.includes(state.domain)) names.unshift(state.domain);
  select.replaceChildren(
    h('option', { value: '', textContent: names.length === 1 ? names[0] : 'All sites' }),
    ...names.filter((n) => names.length > 1 || n === state.domain).map((n) => h('option', { value: n, textContent: n })),
  );
  select.value = state.domain;
  select.disabled = names.length <= 1 && !state.domain;
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
  if (state.range === 'custom') {
    $('from').value = state.custom.from;
    $('to').value = state.custom.to;
  }
  $('domain').value = state.domain;
  $('compare').value = state.compare.mode;
  $('match-dow').checked = state.compare.matchDow;
  $('match-dow').disabled = !['previous_period', 'year_over_year'].includes(state.compare.mode);
  $('compare-custom').hidden = state.compare.mode !== 'custom';
  if (state.compare.mode === 'custom') {
    $('cmp-from').value = state.compare.from;
    $('cmp-to').value = state.compare.to;
  }
  for (const id of ['cmp-from', 'cmp-to']) $(id).max = today;
  if (state.segments) renderSegments();
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
    if (from > to) {
      $('to').setCustomValidity('The end date must not be before the start date.');
      $('to').reportValidity();
      return;
    }
    if (spanDays(from, to) > MAX_DAYS) {
      $('to').setCustomValidity(`Choose at most ${MAX_DAYS} days.`);
      $('to').reportValidity();
      return;
    }
    state.range = 'custom';
    state.custom = { from, to };
    changed();
  });
  $('to').addEventListener('input', () => $('to').setCustomValidity(''));
  $('compare').addEventListener('change', () => {
    const mode = $('compare').value;
    if (!(mode in MODES)) return;
    if (mode === 'custom') {
      // Picked on Compare; the default is the period before, as the plain previous period.
      const { from, to } = query();
      const prev = previousPeriod(from, to);
      $('cmp-from').value = state.compare.from || prev.from;
      $('cmp-to').value = state.compare.to || prev.to;
      $('compare-custom').hidden = false;
      $('match-dow').disabled = true;
      $('cmp-from').focus();
      return;
    }
    state.compare = { ...state.compare, mode };
    syncControls();
    changed();
  });
  $('compare-apply').addEventListener('click', () => {
    const next = { ...state.compare, mode: 'custom', from: $('cmp-from').value, to: $('cmp-to').value };
    $('cmp-to').setCustomValidity('');
    if (!validCompare(next)) {
      $('cmp-to').setCustomValidity(`Choose a start and an end date, at most ${MAX_DAYS} days apart.`);
      $('cmp-to').reportValidity();
      return;
    }
    state.compare = next;
    syncControls();
    changed();
  });
  $('match-dow').addEventListener('change', () => {
    state.compare = { ...state.compare, matchDow: $('match-dow').checked };
    changed();
  });
  $('segment').addEventListener('change', () => {
    state.segment = $('segment').value;
    changed();
  });
  $('save-segment').addEventListener('click', async () => {
    const name = prompt('Name of the new segment (the current filters):');
    if (!name?.trim()) return;
    try {
      const s = await saveSegment(name.trim(), state.token);
      state.segments = [...(state.segments ?? []), s];
      state.segment = String(s.id);
      state.filters = {};
      announce(`Saved segment ${s.name}`);
      renderSegments();
      changed();
    } catch (e) {
      announce(`The segment could not be saved: ${e.message}`);
      alert(`The segment could not be saved: ${e.message}`);
    }
  });
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
  $('retry').addEventListener('click', () => {
    clearError();
    state.rateRetries = 0;
    load();
  });
  document.addEventListener('visibilitychange', scheduleLive);
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => state.chart?.refresh());
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

// ---- start -----------------------------------------------------------------------------------------

function start() {
  onError({ retry: load, fatal: stopLive });
  buildKpis(writeFragment);
  buildTables(changed);
  buildCaptures($('captures'));
  buildHours($('hours'));
  buildGoals($('goals'), changed);
  buildProps($('props'), changed);
  buildFunnels($('funnels'), load);
  state.chart = new Chart($('chart'));
  readFragment();
  themeNow();
  $('timezone').textContent = `Times in ${tz}`;
  syncControls();
  wireControls();
  wireEmbedding(load);
  load();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
