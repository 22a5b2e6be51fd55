// Which theme applies now: the tenant's settings (GET /v0/tenant.json), under the fragment's values,
// under the embedding page's. theme.js validates and applies; this module keeps the three in state.
import { tenantSettings } from './api.js';
import { DEFAULT_THEME, mergeTheme, applyTheme, tenantTheme } from './theme.js';
import { state } from './state.js';

/** The theme keys the fragment and the embedding page may set. */
export const THEME_KEYS = ['name', 'logo', 'color', 'theme', 'brand'];

export function themeNow() {
  state.theme = [state.tenantTheme, state.hashTheme, state.parentTheme].reduce(mergeTheme, DEFAULT_THEME);
  applyTheme(state.theme);
  state.chart?.refresh();
}

/** The token's tenant settings under the fragment's and parent's theme; on failure the defaults. */
export async function loadTenantTheme(token) {
  state.tenantFor = token;
  const settings = await tenantSettings(token);
  if (state.token !== token) return;
  state.tenantTheme = tenantTheme(settings);
  themeNow();
}
