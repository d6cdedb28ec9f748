// Canary charts, drawn as SVG by hand: per cluster, the error rate and the p95 latency of the
// candidate and the stable set per analysis window with the limit drawn as a line, the request
// rate beside them, and the health-check streak. Data: the cluster.analysis events' figures
// (common/analysis_figures.cpp figuresToJson), oldest first.
import { el, svg, percent, seconds, rate } from './dom.js';

const W = 320;
const H = 170;
const M = { left: 58, right: 10, top: 12, bottom: 30 };
const MAX_WINDOWS = 40;

function niceMax(v, floor) {
  const top = Math.max(v, floor);
  const pow = 10 ** Math.floor(Math.log10(top));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * pow >= top) return step * pow;
  }
  return 10 * pow;
}

// sets: [{name, label, points: [{window, step, value}]}] with points aligned by index.
function lineChart({ testid, title, summary, sets, count, threshold, format, floor }) {
  const values = sets.flatMap((s) => s.points.filter((p) => p && p.value !== null).map((p) => p.value));
  if (threshold !== null && threshold !== undefined) values.push(threshold);
  const yMax = niceMax(values.length ? Math.max(...values) * 1.1 : 0, floor);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const x = (i) => M.left + (count <= 1 ? plotW / 2 : (i * plotW) / (count - 1));
  const y = (v) => M.top + plotH - (Math.min(v, yMax) / yMax) * plotH;

  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}. ${summary}`,
    dataset: { testid },
  }, svg('title', { text: title }));

  // Grid and axes with labels.
  for (const frac of [0, 0.5, 1]) {
    const v = yMax * frac;
    root.append(
      svg('line', { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: frac === 0 ? 'axis' : 'grid' }),
      svg('text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick', text: format(v) }));
  }
  root.append(svg('line', { x1: M.left, x2: M.left, y1: M.top, y2: M.top + plotH, class: 'axis' }));
  const first = sets[0].points;
  const labelled = new Set([0, count - 1, Math.floor((count - 1) / 2)]);
  for (let i = 0; i < count; i++) {
    const p = first[i];
    if (!labelled.has(i) || !p) continue;
    const anchor = count > 1 && i === 0 ? 'start' : count > 1 && i === count - 1 ? 'end' : 'middle';
    root.append(svg('text', {
      x: x(i), y: H - M.bottom + 16, 'text-anchor': anchor, class: 'tick',
      text: p.step ? `s${p.step}·w${p.window}` : `w${p.window}`,
    }));
  }
  root.append(svg('text', { x: M.left + plotW / 2, y: H - 2, 'text-anchor': 'middle', class: 'tick dim', text: 'analysis window' }));

  if (threshold !== null && threshold !== undefined) {
    root.append(svg('line', {
      x1: M.left, x2: W - M.right, y1: y(threshold), y2: y(threshold), class: 'threshold',
      dataset: { testid: 'threshold', value: threshold },
    }, svg('title', { text: `limit ${format(threshold)}` })));
    root.append(svg('text', {
      x: W - M.right - 2, y: y(threshold) - 4, 'text-anchor': 'end', class: 'threshold-label',
      text: `limit ${format(threshold)}`,
    }));
  }

  for (const set of [...sets].reverse()) {
    let path = '';
    for (let i = 0; i < count; i++) {
      const p = set.points[i];
      if (!p || p.value === null) continue;
      path += `${path ? 'L' : 'M'}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`;
    }
    if (path) root.append(svg('path', { d: path, class: `series set-${set.name}` }));
    for (let i = 0; i < count; i++) {
      const p = set.points[i];
      if (!p || p.value === null) continue;
      root.append(svg('circle', {
        cx: x(i), cy: y(p.value), r: set.name === 'stable' ? 6 : 4, class: `point set-${set.name}`,
        dataset: { set: set.name, window: p.window, step: p.step || null, value: p.value },
      }, svg('title', { text: `${set.label}, window ${p.window}: ${format(p.value)}` })));
    }
  }
  return root;
}

function points(series, pick) {
  return series.map((f) => {
    const value = pick(f);
    return { window: f.window, step: f.strategy_step, value: value === undefined ? null : value };
  });
}

function healthText(h) {
  if (!h) return 'Health checks: no figures yet';
  const streak = h.failing === 0
    ? 'none failing'
    : `${h.failing} failing in a row`;
  return `Health checks: ${streak} (rolls back at ${h.threshold}) · ${h.checks} checks so far`;
}

// One cluster's charts, or null when it has no figures. `series` is its figures, oldest first.
export function clusterCharts(cluster, series) {
  if (!series || series.length === 0) return null;
  const recent = series.slice(-MAX_WINDOWS);
  const last = recent[recent.length - 1];
  const limits = last.limits || {};
  const hasStable = recent.some((f) => f.stable);
  const stableLabel = (f) => (f.stable ? ` vs stable ${f.stable.version}` : '');
  const where = last.strategy_step ? `step ${last.strategy_step}/${last.strategy_steps}, ` : '';

  const errorSets = [{ name: 'candidate', label: `candidate ${last.candidate.version}`,
    points: points(recent, (f) => f.candidate.error_rate) }];
  const latencySets = [{ name: 'candidate', label: `candidate ${last.candidate.version}`,
    points: points(recent, (f) => f.candidate.latency_p95_s) }];
  const requestSets = [{ name: 'candidate', label: `candidate ${last.candidate.version}`,
    points: points(recent, (f) => f.candidate.request_rate) }];
  if (hasStable) {
    const stableVersion = (recent.find((f) => f.stable) || {}).stable.version;
    const label = `stable ${stableVersion}`;
    errorSets.push({ name: 'stable', label, points: points(recent, (f) => (f.stable ? f.stable.error_rate : null)) });
    latencySets.push({ name: 'stable', label, points: points(recent, (f) => (f.stable ? f.stable.latency_p95_s : null)) });
    requestSets.push({ name: 'stable', label, points: points(recent, (f) => (f.stable ? f.stable.request_rate : null)) });
  }

  const errSummary = `Window ${last.window}: candidate ${percent(last.candidate.error_rate)}` +
    (last.stable ? `, stable ${percent(last.stable.error_rate)}` : '') +
    (limits.error_rate !== null && limits.error_rate !== undefined ? `, limit ${percent(limits.error_rate)}` : ', no limit');
  const latSummary = `Window ${last.window}: candidate ${seconds(last.candidate.latency_p95_s)}` +
    (last.stable ? `, stable ${seconds(last.stable.latency_p95_s)}` : '') +
    (limits.latency_p95_s !== null && limits.latency_p95_s !== undefined ? `, limit ${seconds(limits.latency_p95_s)}` : ', no limit');
  const reqSummary = `Window ${last.window}: candidate ${rate(last.candidate.request_rate)} (${last.candidate.requests} requests)` +
    (last.stable ? `, stable ${rate(last.stable.request_rate)} (${last.stable.requests} requests)` : '') +
    `, at least ${limits.min_requests ?? 0} requests needed`;

  const count = recent.length;
  const caption = el('figcaption', {},
    el('strong', { class: 'mono', text: cluster }), ' — ',
    `${last.step === 'bake' ? 'bake' : 'analysis'} ${where}window ${last.window} of candidate ${last.candidate.version}${stableLabel(last)}: `,
    el('span', { class: `badge tone-${last.verdict === 'pass' ? 'ok' : last.verdict === 'fail' ? 'bad' : last.verdict === 'inconclusive' ? 'wait' : 'idle'}`,
      dataset: { testid: 'verdict' } }, el('span', { class: 'label', text: `verdict ${last.verdict}` })),
    el('span', { class: 'visually-hidden', text: `. Error rate: ${errSummary}. p95 latency: ${latSummary}. Requests: ${reqSummary}.` }));

  return el('figure', { class: 'charts card', dataset: { testid: 'charts', cluster } },
    caption,
    el('div', { class: 'chart-row' },
      el('div', { class: 'chart-box' },
        el('h3', { class: 'chart-title', text: 'Error rate' }),
        lineChart({ testid: 'chart-error-rate', title: `Error rate per analysis window, ${cluster}`, summary: errSummary,
          sets: errorSets, count, threshold: limits.error_rate, format: percent, floor: 0.01 }),
        el('p', { class: 'small', text: errSummary })),
      el('div', { class: 'chart-box' },
        el('h3', { class: 'chart-title', text: 'p95 latency' }),
        lineChart({ testid: 'chart-latency', title: `p95 latency per analysis window, ${cluster}`, summary: latSummary,
          sets: latencySets, count, threshold: limits.latency_p95_s, format: seconds, floor: 0.05 }),
        el('p', { class: 'small', text: latSummary })),
      el('div', { class: 'chart-box' },
        el('h3', { class: 'chart-title', text: 'Request rate' }),
        lineChart({ testid: 'chart-requests', title: `Request rate per analysis window, ${cluster}`, summary: reqSummary,
          sets: requestSets, count, threshold: null, format: rate, floor: 1 }),
        el('p', { class: 'small', text: reqSummary }))),
    el('p', { class: 'health', dataset: { testid: 'health-streak' }, text: healthText(last.health) }),
    el('ul', { class: 'chart-key', 'aria-label': 'Chart key' },
      el('li', {}, el('span', { class: 'key key-candidate', 'aria-hidden': 'true' }), 'candidate (filled, solid line)'),
      hasStable ? el('li', {}, el('span', { class: 'key key-stable', 'aria-hidden': 'true' }), 'stable (hollow, dashed line)') : null,
      el('li', {}, el('span', { class: 'key key-threshold', 'aria-hidden': 'true' }), 'limit (red dashed line)')));
}
