// DOM helpers: every piece of server text goes in through textContent or an attribute, never
// as markup, so that a cluster name or a message can not inject anything.

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else if (key === 'class') node.setAttribute('class', value);
    else if (key === 'on') {
      for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
    } else if (key === 'dataset') {
      for (const [k, v] of Object.entries(value)) {
        if (v !== null && v !== undefined) node.dataset[k] = String(v);
      }
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// el('td', {class: 'x', dataset: {testid: 'state'}}, 'text', otherNode)
export function el(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

// State words -> one of five tones, the same everywhere (badges, legend, charts).
const TONES = {
  succeeded: 'ok', passed: 'ok', connected: 'ok', met: 'ok',
  running: 'run', building: 'run', applying: 'run', verifying: 'run', deploying: 'run',
  shifting: 'run', analyzing: 'run', baking: 'run', finalizing: 'run', watching: 'run',
  failed: 'bad', rolled_back: 'bad', rolling_back: 'bad', rollback_failed: 'bad',
  aborted: 'bad', lost: 'bad', timed_out: 'bad', missing: 'bad',
  paused: 'wait', awaiting_approval: 'wait', blocked_by_checks: 'wait', frozen: 'wait',
  queued: 'wait', unknown: 'wait', inconclusive: 'wait',
  ready: 'ok', 'not ready': 'bad',
};

export function tone(state) {
  return TONES[state] || 'idle';
}

// A state badge: the state's name as text, its tone as colour and a glyph (drawn by CSS, so
// that the element's text is exactly the state name); never colour alone.
export function badge(state, testid) {
  return el('span', { class: `badge tone-${tone(state)}`, dataset: { testid, state } }, state || 'unknown');
}

export function legend() {
  const items = [
    ['ok', 'succeeded'], ['run', 'running'], ['wait', 'paused / awaiting'],
    ['bad', 'failed / rolled back'], ['idle', 'pending / other'],
  ];
  return el('ul', { class: 'legend', 'aria-label': 'Colour key' },
    items.map(([t, words]) => el('li', {}, el('span', { class: `badge tone-${t}`, text: words }))));
}

export function timeEl(iso, relative) {
  if (!iso) return el('span', { class: 'muted', text: '—' });
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return el('span', { text: iso });
  return el('time', { datetime: iso, title: when.toISOString() },
    relative ? ago(when) : clock(when));
}

export function clock(when) {
  const pad = (n) => String(n).padStart(2, '0');
  const today = new Date();
  const sameDay = when.toDateString() === today.toDateString();
  const hms = `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`;
  if (sameDay) return hms;
  return `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} ${hms}`;
}

export function ago(when) {
  const s = Math.max(0, Math.round((Date.now() - when.getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function percent(share) {
  if (share === null || share === undefined || Number.isNaN(share)) return '—';
  const p = share * 100;
  return `${p < 1 && p > 0 ? p.toFixed(2) : p.toFixed(1)}%`;
}

export function seconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '—';
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
}

export function rate(r) {
  if (r === null || r === undefined || Number.isNaN(r)) return '—';
  return `${r < 10 ? r.toFixed(1) : Math.round(r)}/s`;
}

export function link(href, text, attrs) {
  return el('a', { href, ...(attrs || {}) }, text);
}

export function deploymentHref(id) {
  return `#/deployments/${encodeURIComponent(id)}`;
}

export function releaseHref(service, version) {
  return `#/releases/${encodeURIComponent(service)}/${encodeURIComponent(version)}`;
}

// Only http(s) links from the server become links (never javascript: or data:).
export function safeUrl(url) {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

// Replaces the options of a <select> when they changed, keeping the chosen value.
export function setOptions(select, values, allLabel) {
  const chosen = select.value;
  if (chosen && !values.includes(chosen)) values = [...values, chosen];
  const wanted = ['', ...values];
  const have = Array.from(select.options, (o) => o.value);
  if (have.length === wanted.length && have.every((v, i) => v === wanted[i])) return;
  clear(select);
  select.append(el('option', { value: '', text: allLabel }));
  for (const v of values) select.append(el('option', { value: v, text: v }));
  select.value = wanted.includes(chosen) ? chosen : '';
}
