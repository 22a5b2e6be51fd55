// The Funnels card: pick one of the tenant's saved funnels (GET /v0/funnels); per step a bar with its
// visitors, visits, conversion from step 1 and drop-off from the previous step, from POST /v0/funnel
// with the dashboard's period, zone, domain and filters (the goal filter too: the visits that completed it).
import * as fmt from './format.js';
import { $, h } from './dom.js';
import { plausibleToken, read } from './api.js';
import { queryFilters } from './filters.js';

/** The funnels of the token (loaded once per token) and the one shown. */
const local = { token: null, list: null, selected: null };

/** Makes the (hidden until a funnel exists) Funnels card in `root`; picking a funnel calls `onPick`. */
export function buildFunnels(root, onPick) {
  root.style.gridTemplateColumns = 'minmax(0, 1fr)';
  const select = h('select', { id: 'funnel-select', dataset: { testid: 'funnel-select' }, 'aria-label': 'Funnel' });
  select.addEventListener('change', () => {
    local.selected = Number(select.value);
    onPick();
  });
  root.replaceChildren(
    h(
      'section',
      { class: 'card table-card', 'aria-labelledby': 'title-funnels', id: 'funnels-card', dataset: { testid: 'funnels' } },
      h('h2', { id: 'title-funnels', textContent: 'Funnels' }),
      select,
      h('ol', { id: 'funnel-steps', class: 'funnel', dataset: { testid: 'funnel-steps' } }),
    ),
  );
  root.hidden = true;
}

/** The POST /v0/funnel body for funnel `id` over `from..to` with the dashboard's filters. */
export function funnelQuery(id, view) {
  const { from, to, timezone, domain } = view;
  const body = {
    funnel: id,
    date_range: [from, to],
    timezone,
    filters: queryFilters(view),
  };
  if (domain) body.site_id = domain;
  return body;
}

async function call(path, init, token, signal) {
  const r = await read(path, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    credentials: 'omit',
    referrerPolicy: 'no-referrer',
    signal,
  });
  if (!r.ok) throw new Error(String(r.status));
  return r.json();
}

/** Loads the funnel list (once per token) and the selected funnel's steps; never rejects but with an
 * AbortError. A token that cannot list funnels, or a tenant without any, hides the card. */
export async function loadFunnels(view, token, signal, current) {
  const root = $('funnels');
  try {
    if (!plausibleToken(token)) throw new Error('token');
    if (local.token !== token) {
      local.list = (await call('/v0/funnels', { method: 'GET' }, token, signal)).data;
      local.token = token;
    }
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    current(() => {
      root.hidden = true;
    })();
    return;
  }
  if (!local.list.length) {
    current(() => {
      root.hidden = true;
    })();
    return;
  }
  if (!local.list.some((f) => f.id === local.selected)) local.selected = local.list[0].id;
  let out;
  try {
    out = await call('/v0/funnel', { method: 'POST', body: JSON.stringify(funnelQuery(local.selected, view)) }, token, signal);
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    current(() => {
      root.hidden = false;
      $('funnel-steps').replaceChildren(h('li', { class: 'placeholder', textContent: 'Could not load the funnel.' }));
    })();
    return;
  }
  current(() => renderFunnel(out))();
}

function renderFunnel(out) {
  $('funnels').hidden = false;
  const select = $('funnel-select');
  select.replaceChildren(
    ...local.list.map((f) => h('option', { value: String(f.id), textContent: f.name, selected: f.id === local.selected })),
  );
  select.value = String(local.selected);
  const first = Math.max(1, Number(out.steps[0]?.visitors) || 0);
  $('funnel-steps').replaceChildren(
    ...out.steps.map((s) => {
      const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
      bar.style.width = `${Math.max(1, Math.round(((Number(s.visitors) || 0) / first) * 100))}%`;
      const drop = s.step > 1 ? ` · ${fmt.int(s.drop_off)} dropped off (${fmt.percent(s.drop_off_rate / 100)})` : '';
      return h(
        'li',
        {
          dataset: {
            testid: 'funnel-step',
            step: String(s.step),
            visitors: String(s.visitors),
            visits: String(s.visits),
            rate: String(s.conversion_rate),
            drop: String(s.drop_off),
          },
        },
        bar,
        h('span', { class: 'label', textContent: `${s.step}. ${s.name}` }),
        h('span', {
          class: 'figures',
          textContent: `${fmt.int(s.visitors)} visitors · ${fmt.int(s.visits)} visits · ${fmt.percent(s.conversion_rate / 100)}${drop}`,
        }),
      );
    }),
  );
}
