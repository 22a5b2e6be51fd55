// White-label theme: display name, logo, primary colour, light/dark, "Powered by Starling".
// Values come from, lowest precedence first: the defaults below, the tenant's stored settings
// (GET /v0/tenant.json), the URL fragment, the embedding parent (postMessage). Every value is validated
// here whatever its source, so neither a link nor stored settings can inject CSS or script: colours are
// hex only and applied through CSSOM custom properties, logos must be https: or same-origin URLs,
// names are text.

export const DEFAULT_THEME = Object.freeze({ name: 'Analytics', logo: '', color: '#2563eb', theme: 'auto', brand: 'starling' });

const HEX = /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/;
/** Page backgrounds of the two schemes (styles.css), for contrast checks of the primary colour. */
const BG = { light: [255, 255, 255], dark: [17, 24, 39] };

/** `#abc` or `#aabbcc` as `#aabbcc`; anything else `null`. */
export function safeColor(v) {
  if (typeof v !== 'string' || !HEX.test(v.trim())) return null;
  let h = v.trim().slice(1).toLowerCase();
  if (h.length === 3) h = [...h].map((c) => c + c).join('');
  return `#${h}`;
}

/** An https: or same-origin absolute URL for the logo; anything else `null`. */
export function safeLogo(v, base = location.href) {
  if (typeof v !== 'string' || !v.trim() || v.length > 2048) return null;
  let u;
  try {
    u = new URL(v.trim(), base);
  } catch {
    return null;
  }
  if (u.username || u.password) return null;
  if (u.protocol === 'https:' || u.origin === new URL(base).origin) return u.href;
  return null;
}

/** Display text: no control characters, single spaces, at most 60 characters. */
export function safeName(v) {
  if (typeof v !== 'string') return null;
  const s = v
    // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return s ? [...s].slice(0, 60).join('') : null;
}

/** `base` with the valid fields of `raw` (an object of strings) applied on top. */
export function mergeTheme(base, raw) {
  const t = { ...base };
  if (!raw || typeof raw !== 'object') return t;
  const name = safeName(raw.name);
  if (name) t.name = name;
  if ('logo' in raw) {
    const logo = raw.logo === '' ? '' : safeLogo(raw.logo);
    if (logo !== null) t.logo = logo;
  }
  const color = safeColor(raw.color);
  if (color) t.color = color;
  if (['light', 'dark', 'auto'].includes(raw.theme)) t.theme = raw.theme;
  if (raw.brand === 'none' || raw.brand === 'starling') t.brand = raw.brand;
  return t;
}

/** The raw theme values (like the fragment's) of a `/v0/tenant.json` answer; `{}` for anything else. */
export function tenantTheme(s) {
  const raw = {};
  if (!s || typeof s !== 'object') return raw;
  if (typeof s.display_name === 'string') raw.name = s.display_name;
  if (typeof s.logo_url === 'string') raw.logo = s.logo_url;
  if (typeof s.primary_color === 'string') raw.color = s.primary_color;
  if (typeof s.theme === 'string') raw.theme = s.theme;
  if (s.hide_branding === true) raw.brand = 'none';
  return raw;
}

const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
const toHex = (c) => `#${c.map((v) => Math.round(v).toString(16).padStart(2, '0')).join('')}`;
function luminance([r, g, b]) {
  const f = (v) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
}
export function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}
/** `c` mixed towards `to` in 5 % steps until it reaches `ratio` against `bg`. */
function adjust(c, bg, to, ratio) {
  let out = c;
  for (let k = 0; k <= 20 && contrast(out, bg) < ratio; k++) out = c.map((v, i) => v + (to[i] - v) * (k / 20));
  return out;
}

/** Applies a validated theme to the document. */
export function applyTheme(t, doc = document) {
  const root = doc.documentElement;
  if (t.theme === 'auto') delete root.dataset.theme;
  else root.dataset.theme = t.theme;
  const c = rgb(t.color);
  // The colour as given where it has 3:1 against the background (charts, bars, focus), else adjusted.
  const forLight = adjust(c, BG.light, [0, 0, 0], 3);
  const forDark = adjust(c, BG.dark, [255, 255, 255], 4);
  root.style.setProperty('--accent-light', toHex(forLight));
  root.style.setProperty('--accent-dark', toHex(forDark));
  root.style.setProperty('--on-accent-light', contrast(forLight, [255, 255, 255]) >= 4.5 ? '#ffffff' : '#111827');
  root.style.setProperty('--on-accent-dark', contrast(forDark, [255, 255, 255]) >= 4.5 ? '#ffffff' : '#111827');
  const name = doc.getElementById('site-name');
  if (name) name.textContent = t.name;
  doc.title = `${t.name} · Analytics`.replace(/^Analytics · Analytics$/, 'Analytics');
  const logo = doc.getElementById('logo');
  if (logo) {
    logo.hidden = false;
    logo.onerror = () => {
      logo.hidden = true;
    };
    const src = t.logo || new URL('assets/logo.svg', doc.baseURI).href;
    if (logo.src !== src) logo.src = src;
  }
  const powered = doc.getElementById('powered');
  if (powered) powered.hidden = t.brand === 'none';
}

/** The scheme in force ('light' or 'dark'). */
export function scheme(t) {
  if (t.theme === 'light' || t.theme === 'dark') return t.theme;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}
