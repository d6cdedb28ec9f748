// The fleet overview (#/): active freezes, every deployment with filters, and the agents by
// state. No fleet-wide stream exists, so it polls every 2 s.
import { getJson, paths, errorText } from './api.js';
import { el, clear, badge, legend, timeEl, link, deploymentHref, releaseHref, setOptions } from './dom.js';
import { poll } from './poll.js';

// Rows drawn at most: the overview is read at a glance, the log keeps the rest.
const MAX_ROWS = 200;

export function freezeBanner(freezes) {
  if (!freezes || freezes.length === 0) return null;
  return el('section', { class: 'banner tone-wait-box', role: 'status', dataset: { testid: 'freeze-banner' } },
    el('strong', { text: freezes.length === 1 ? 'Deploys are frozen' : `${freezes.length} freezes are active` }),
    el('ul', {}, freezes.map((f) => el('li', {},
      `${f.scope === 'fleet' || !f.environment ? 'Whole fleet' : `Environment ${f.environment}`}: `,
      el('q', { text: f.reason }),
      ` — by ${f.by || 'unknown'} since `, timeEl(f.since), ` (${f.id})`))));
}

function waveProgress(d) {
  const total = d.waves_total || 0;
  const at = Math.min((d.wave_index || 0) + 1, total);
  return `${total === 0 ? 0 : at}/${total}${d.current_wave ? ` ${d.current_wave}` : ''}`;
}

function filterSelect(id, label) {
  const select = el('select', { id });
  select.append(el('option', { value: '', text: 'All' }));
  return [el('div', { class: 'field inline' }, el('label', { for: id, text: label }), select), select];
}

export function renderOverview(main) {
  document.title = 'Overview · Flotilla';
  const bannerSlot = el('div');
  const [serviceField, serviceSel] = filterSelect('filter-service', 'Service');
  const [envField, envSel] = filterSelect('filter-environment', 'Environment');
  const [stateField, stateSel] = filterSelect('filter-state', 'State');
  const status = el('p', { class: 'muted small' });
  const tbody = el('tbody');
  const table = el('table', { class: 'grid', dataset: { testid: 'deployments' } },
    el('caption', { class: 'visually-hidden', text: 'Deployments, newest first' }),
    el('thead', {}, el('tr', {},
      ['Deployment', 'Service', 'Version', 'State', 'Wave', 'Submitted by', 'Age'].map(
        (h) => el('th', { scope: 'col', text: h })))),
    tbody);
  const agentsBox = el('div', { class: 'agent-counts', dataset: { testid: 'agents-summary' } });

  main.append(
    el('div', { class: 'page-head' }, el('h1', { text: 'Fleet overview' }), legend()),
    bannerSlot,
    el('div', { class: 'columns' },
      el('section', { class: 'card grow', 'aria-labelledby': 'dep-title' },
        el('h2', { id: 'dep-title', text: 'Deployments' }),
        el('form', { class: 'filters', 'aria-label': 'Filter deployments' }, serviceField, envField, stateField),
        el('div', { class: 'table-wrap' }, table),
        status),
      el('section', { class: 'card side', 'aria-labelledby': 'agents-title' },
        el('h2', { id: 'agents-title', text: 'Agents' }),
        agentsBox,
        el('p', {}, link('#/agents', 'All agents')))));

  let deployments = [];
  let shownFreezes = '';

  let drawn = '';
  function draw(force) {
    const want = { service: serviceSel.value, env: envSel.value, state: stateSel.value };
    // Redrawn when something changed (or every 30 s for the ages), so that a row's link keeps
    // its focus between polls.
    const key = JSON.stringify([deployments, want, Math.floor(Date.now() / 30000)]);
    if (key === drawn && force !== true) return;
    drawn = key;
    const shown = deployments.filter((d) =>
      (!want.service || d.service === want.service) &&
      (!want.env || (d.environments || []).includes(want.env)) &&
      (!want.state || d.state === want.state));
    clear(tbody);
    for (const d of shown.slice(0, MAX_ROWS)) {
      tbody.append(el('tr', { dataset: { testid: 'deployment-row', id: d.id } },
        el('td', {}, link(deploymentHref(d.id), d.id, { class: 'mono' })),
        el('td', { text: d.service }),
        el('td', {}, link(releaseHref(d.service, d.version), d.version)),
        el('td', {}, badge(d.state, 'state'),
          d.hotfix ? el('span', { class: 'tag', title: d.hotfix, text: 'hotfix' }) : null),
        el('td', { dataset: { testid: 'wave-progress' }, text: waveProgress(d) }),
        el('td', { text: d.submitted_by || '—' }),
        el('td', {}, timeEl(d.created_at, true))));
    }
    if (shown.length === 0) {
      tbody.append(el('tr', {}, el('td', { colspan: '7', class: 'muted',
        text: deployments.length === 0 ? 'No deployments yet.' : 'No deployment matches the filters.' })));
    }
    status.textContent = `${shown.length} of ${deployments.length} deployments` +
      (shown.length > MAX_ROWS ? ` (the newest ${MAX_ROWS} listed: filter to find others)` : '');
  }

  for (const s of [serviceSel, envSel, stateSel]) s.addEventListener('change', () => draw(true));

  const stop = poll(2000, async (signal) => {
    const [list, agents] = await Promise.allSettled([
      getJson(paths.deployments(), signal), getJson(paths.agents(), signal)]);
    if (list.status === 'fulfilled') {
      deployments = list.value.deployments || [];
      // Redrawn only when the freezes change: a status region is announced on each redraw.
      const freezeKey = JSON.stringify(list.value.freezes || []);
      if (freezeKey !== shownFreezes) {
        shownFreezes = freezeKey;
        clear(bannerSlot);
        const banner = freezeBanner(list.value.freezes);
        if (banner) bannerSlot.append(banner);
      }
      const uniq = (xs) => [...new Set(xs.filter(Boolean))].sort();
      setOptions(serviceSel, uniq(deployments.map((d) => d.service)), 'All');
      setOptions(envSel, uniq(deployments.flatMap((d) => d.environments || [])), 'All');
      setOptions(stateSel, uniq(deployments.map((d) => d.state)), 'All');
      draw();
    } else {
      status.textContent = `Could not load deployments: ${errorText(list.reason)}`;
    }
    clear(agentsBox);
    if (agents.status === 'fulfilled') {
      const counts = {};
      for (const a of agents.value.agents || []) counts[a.state] = (counts[a.state] || 0) + 1;
      const total = (agents.value.agents || []).length;
      agentsBox.append(el('p', { class: 'big', text: `${total} agent${total === 1 ? '' : 's'}` }),
        el('ul', { class: 'counts' }, ['connected', 'unknown', 'lost']
          .concat(Object.keys(counts).filter((s) => !['connected', 'unknown', 'lost'].includes(s)))
          .map((s) => el('li', { dataset: { testid: 'agent-count', state: s } },
            badge(s), ` ${counts[s] || 0}`))));
    } else {
      agentsBox.append(el('p', { class: 'error', text: `Could not load agents: ${errorText(agents.reason)}` }));
    }
  });
  return stop;
}
