// The row filters: which ones the date-ranged endpoints accept, how their values read, and the chips
// that show the active ones (the chips' clicks are wired in main.js).
import * as fmt from './format.js';
import { $, h } from './dom.js';
import { state } from './state.js';

/** Filters the date-ranged endpoints accept (core/src/query/params.rs), with their chip labels. */
export const FILTERS = {
  pathname: 'Page',
  source: 'Source',
  utm_campaign: 'Campaign',
  utm_source: 'Campaign source',
  utm_medium: 'Campaign medium',
  browser: 'Browser',
  os: 'Operating system',
  device: 'Device',
  country: 'Country',
  goal: 'Goal',
};
/** The POST /v0/query (and /v0/funnel) dimension of each row filter. */
const QUERY_DIMS = {
  pathname: 'event:page',
  source: 'visit:source',
  utm_campaign: 'visit:utm_campaign',
  utm_source: 'visit:utm_source',
  utm_medium: 'visit:utm_medium',
  browser: 'visit:browser',
  os: 'visit:os',
  device: 'visit:device',
  country: 'visit:country',
  goal: 'event:goal',
};

/**
 * The view's row filters and saved segment ({filters, segment}) as /v0/query filters, as the pipes get
 * them; `goal: false` leaves the goal filter out (for a card that sets its own).
 */
export function queryFilters({ filters, segment }, { goal = true } = {}) {
  const list = Object.entries(filters)
    .filter(([k, v]) => v && QUERY_DIMS[k] && (goal || k !== 'goal'))
    .map(([k, v]) => ['is', QUERY_DIMS[k], [v]]);
  if (segment) list.push(['is', 'segment', [Number(segment)]]);
  return list;
}

/** Display names of the worker's lower-case browser, OS and device values. */
const NAMES = {
  ios: 'iOS',
  macos: 'macOS',
  chromeos: 'ChromeOS',
  ipados: 'iPadOS',
  opera: 'Opera',
  edge: 'Edge',
  samsung: 'Samsung Internet',
  bot: 'Bot',
};
export const pretty = (v) => NAMES[v] ?? (v ? v.charAt(0).toUpperCase() + v.slice(1) : v);
const filterText = (k, v) => (k === 'country' ? fmt.country(v) : ['browser', 'os', 'device'].includes(k) ? pretty(v) : v);

export function renderFilters() {
  const entries = Object.entries(state.filters);
  $('filters').hidden = entries.length === 0;
  const chips = entries.map(([k, v]) =>
    h(
      'li',
      { class: 'chip', dataset: { testid: 'filter-chip', filter: k, value: v } },
      h('span', {}, `${FILTERS[k]}: `, h('strong', { textContent: filterText(k, v) })),
      h('button', {
        type: 'button',
        class: 'chip-remove',
        'aria-label': `Remove filter ${FILTERS[k]}: ${filterText(k, v)}`,
        dataset: { remove: k },
        textContent: '×',
      }),
    ),
  );
  if (entries.length > 1)
    chips.push(h('li', {}, h('button', { type: 'button', class: 'link', dataset: { remove: '*' }, textContent: 'Clear all' })));
  $('filter-list').replaceChildren(...chips);
  $('live-label').textContent = entries.length ? 'visitors in the last 5 minutes (unfiltered)' : 'visitors in the last 5 minutes';
}
