// The Properties card: pick a custom property key (and, optionally, one goal), see the property's
// values with their visitors, events and share, from POST /v0/query (`event:props:<key>` as the
// dimension) with the dashboard's period, zone, site, filters and segment.
//
// Keys: when the key field is first used, the server is asked for the keys of the period
// (`dimensions: ["event:props"]` by events, asked again for a new period once asked); if it refuses (400), the
// viewer types a key (the field also offers the keys typed before in this tab). A goal adds
// `["is", "event:goal", [name]]`: the values the goal's own events carried. A refused query shows the
// server's reason in the card. The values are not row filters: the pipes behind the other panels take
// no property filter.
import * as fmt from './format.js';
import { $, h } from './dom.js';
import { state } from './state.js';
import { ApiError, plausibleToken } from './api.js';
import { postQuery } from './compare.js';
import { queryFilters } from './filters.js';

const COLUMNS = ['Value', 'Visitors', 'Events', 'Share'];
/** Longest key accepted (core/src/props.rs MAX_KEY). */
const MAX_KEY = 300;

/** What the card knows beyond `state`: keys listed by the server (null: it cannot list them) and typed here. */
const local = { listedFor: null, listed: null, typed: [], goals: [], view: null, token: null, shownKey: '' };

/** The card's goal: its own selector once used ('' for all events), else the dashboard's goal filter. */
const goalOf = () => state.propGoal ?? state.filters.goal ?? '';

/** Makes the Properties card in `root`; picking a key or a goal calls `onPick` (the view changed). */
export function buildProps(root, onPick) {
  root.style.gridTemplateColumns = 'minmax(0, 1fr)';
  const key = h('input', {
    id: 'prop-key',
    type: 'text',
    autocomplete: 'off',
    spellcheck: false,
    maxLength: MAX_KEY,
    placeholder: 'e.g. plan',
    dataset: { testid: 'prop-key' },
  });
  key.setAttribute('list', 'prop-keys');
  const goal = h('select', { id: 'prop-goal', dataset: { testid: 'prop-goal' } }, h('option', { value: '', textContent: 'All events' }));
  const show = h('button', {
    type: 'button',
    class: 'button',
    id: 'prop-show',
    dataset: { testid: 'prop-show' },
    textContent: 'Show values',
  });
  const pick = () => {
    const k = key.value.trim();
    if (k.length > MAX_KEY) return;
    state.propKey = k;
    state.propGoal = goal.value;
    if (k && !local.typed.includes(k)) local.typed.push(k);
    onPick();
  };
  show.addEventListener('click', pick);
  key.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      pick();
    }
  });
  goal.addEventListener('change', pick);
  key.addEventListener('focus', async () => {
    if (!local.view || !plausibleToken(local.token)) return;
    try {
      const keys = await listKeys(local.view, local.token);
      renderKeys();
      if (!state.propKey) note(keysNote(keys));
    } catch {
      /* listing is optional */
    }
  });
  const scroller = h('div', {});
  scroller.style.overflowX = 'auto';
  root.replaceChildren(
    h(
      'section',
      { class: 'card table-card', id: 'props-card', 'aria-labelledby': 'title-props', dataset: { testid: 'props' } },
      h('h2', { id: 'title-props', textContent: 'Properties' }),
      h(
        'div',
        { class: 'props-pick' },
        h('label', { class: 'field' }, h('span', { textContent: 'Property' }), key),
        h('datalist', { id: 'prop-keys' }),
        h('label', { class: 'field' }, h('span', { textContent: 'Of' }), goal),
        show,
      ),
      h('p', { class: 'props-note', id: 'props-note', dataset: { testid: 'props-note' }, hidden: true }),
      scroller,
    ),
  );
  scroller.append(
    h(
      'table',
      { id: 'table-props', dataset: { testid: 'table-props' } },
      h('caption', { class: 'sr-only', id: 'props-caption', textContent: 'Property values: visitors, events and share of visitors' }),
      h('thead', {}, h('tr', {}, ...COLUMNS.map((c, i) => h('th', { scope: 'col', class: i ? 'num' : '', textContent: c })))),
      h('tbody', {}, placeholder('Choose a property to see its values.')),
    ),
  );
}

function placeholder(text) {
  return h('tr', { class: 'placeholder' }, h('td', { colspan: COLUMNS.length, textContent: text }));
}

/** The /v0/query filters of the view, with the card's goal (if any) instead of the dashboard's. */
function filtersOf(view, goal) {
  const list = queryFilters(view, { goal: false });
  if (goal) list.push(['is', 'event:goal', [goal]]);
  return list;
}

/**
 * The /v0/query bodies of the card for `view` ({from, to, timezone, domain, filters, segment}): the
 * values of `key` (visitors, events) and the total visitors they are a share of (the same filters
 * and goal, without the property).
 */
export function propsQueries(view, key, goal) {
  const common = { date_range: [view.from, view.to], timezone: view.timezone, filters: filtersOf(view, goal) };
  if (view.domain) common.site_id = view.domain;
  return {
    values: {
      ...common,
      metrics: ['visitors', 'events'],
      dimensions: [`event:props:${key}`],
      order_by: [['visitors', 'desc']],
      pagination: { limit: 100 },
    },
    total: { ...common, metrics: ['visitors'] },
  };
}

/** The server's property keys for the view: null when it cannot list them (a 400), undefined when
 * the request failed otherwise (asked again next time). */
async function listKeys(view, token, signal) {
  // Asked again when the token or the view's range or site change; a server that cannot list them
  // (null) is not asked again for the same token.
  const asked = `${token}|${view.from}|${view.to}|${view.domain}`;
  if (local.listedFor === asked || (local.listed === null && local.listedFor?.startsWith(`${token}|`))) return local.listed;
  let keys = null;
  try {
    // By events: the server reads the key list by events alone from rollup cells (days × values),
    // any other metric from every visit that carried a property. Only the names are used here.
    const body = { metrics: ['events'], dimensions: ['event:props'], date_range: [view.from, view.to], timezone: view.timezone };
    if (view.domain) body.site_id = view.domain;
    const r = await postQuery(body, token, signal);
    keys = r.results.map((x) => String(x.dimensions[0])).filter(Boolean);
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    // Any other failure (rate limit, network): keep what was known, ask again next time.
    if (!(e instanceof ApiError && e.status === 400)) return local.listedFor?.startsWith(`${token}|`) ? local.listed : undefined;
  }
  local.listedFor = asked;
  local.listed = keys;
  return keys;
}

function renderKeys() {
  const keys = [...new Set([...(local.listed ?? []), ...local.typed, ...(state.propKey ? [state.propKey] : [])])].sort();
  $('prop-keys').replaceChildren(...keys.map((k) => h('option', { value: k })));
  // The key in force (it may come from the link), unless the viewer is typing another one.
  const input = $('prop-key');
  if (document.activeElement !== input || input.value.trim() === local.shownKey) input.value = state.propKey;
  local.shownKey = state.propKey;
}

/** The goal selector: the goals of the Goals table (the period's), plus the one in force. */
export function renderPropGoals(names) {
  if (names) local.goals = names;
  const select = $('prop-goal');
  const list = [...local.goals];
  const goal = goalOf();
  if (goal && !list.includes(goal)) list.push(goal);
  select.replaceChildren(
    h('option', { value: '', textContent: 'All events' }),
    ...list.map((g) => h('option', { value: g, textContent: `Goal: ${g}` })),
  );
  select.value = goal;
}

function keysNote(keys) {
  if (keys === undefined) return '';
  if (keys === null) return 'Type the key of a property your events carry (such as plan): the keys could not be listed.';
  return keys.length ? '' : 'No events carried custom properties in this period.';
}

function note(text) {
  $('props-note').textContent = text;
  $('props-note').hidden = !text;
}

/** Loads and draws the card; resolves when drawn (rejects only with an AbortError). */
export async function loadProps(view, token, signal, current) {
  const body = $('table-props').tBodies[0];
  const key = state.propKey;
  const goal = goalOf();
  if (!plausibleToken(token)) {
    current(() => body.replaceChildren(placeholder('Could not load the properties.')))();
    return;
  }
  local.view = view;
  local.token = token;
  // Keys already asked for this token: listed again for a new period (only a server that lists them).
  const keys = local.listedFor?.startsWith(`${token}|`) ? await listKeys(view, token, signal) : undefined;
  current(() => {
    renderKeys();
    renderPropGoals();
    if (!key) note(keysNote(keys));
  })();
  if (!key) {
    current(() => body.replaceChildren(placeholder('Choose a property to see its values.')))();
    return;
  }
  const q = propsQueries(view, key, goal);
  let values;
  let total;
  try {
    [values, total] = await Promise.all([postQuery(q.values, token, signal), postQuery(q.total, token, signal)]);
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    current(() => {
      $('props-caption').textContent = `Values of the property ${key}`;
      if (e instanceof ApiError && e.status === 400) {
        note(`The server did not accept the property ${key}: ${e.message.replace(/^[^:]*: /, '')}`);
        body.replaceChildren(placeholder('No values to show.'));
      } else {
        note('');
        body.replaceChildren(placeholder('Could not load the property.'));
      }
    })();
    return;
  }
  current(() => renderProps(key, goal, values.results, Number(total.results[0]?.metrics[0]) || 0))();
}

function renderProps(key, goal, rows, total) {
  const body = $('table-props').tBodies[0];
  note('');
  $('props-caption').textContent =
    `Values of the property ${key}${goal ? ` for the goal ${goal}` : ''}: visitors, events and share of visitors`;
  if (!rows.length) {
    body.replaceChildren(
      placeholder(goal ? `No conversions of ${goal} carried ${key} in this period.` : `No events carried ${key} in this period.`),
    );
    return;
  }
  const max = Math.max(1, ...rows.map((r) => Number(r.metrics[0]) || 0));
  body.replaceChildren(
    ...rows.map((r) => {
      const value = String(r.dimensions[0]);
      const [visitors, events] = r.metrics;
      const share = total ? (Number(visitors) || 0) / total : 0;
      const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
      bar.style.width = `${Math.max(1, Math.round(((Number(visitors) || 0) / max) * 100))}%`;
      return h(
        'tr',
        { dataset: { testid: 'row', key: value } },
        h('td', { class: 'name' }, bar, h('span', { class: 'row-static' }, h('span', { class: 'label', textContent: value || '(empty)' }))),
        h('td', { class: 'num', dataset: { testid: 'visitors', value: String(visitors) }, textContent: fmt.int(visitors) }),
        h('td', { class: 'num', dataset: { testid: 'events', value: String(events) }, textContent: fmt.int(events) }),
        h('td', { class: 'num', dataset: { testid: 'share', value: String(share) }, textContent: fmt.percent(share) }),
      );
    }),
  );
}
