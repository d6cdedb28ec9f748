// The agents (#/agents): every cluster's agent, its state (text and colour), when it was last
// heard from, its labels and version. Polled every 2 s.
import { getJson, paths, errorText } from './api.js';
import { el, clear, badge, legend, timeEl } from './dom.js';
import { poll } from './poll.js';

export function renderAgents(main) {
  document.title = 'Agents · Flotilla';
  const tbody = el('tbody');
  const status = el('p', { class: 'muted small' });
  const summary = el('p', { class: 'big' });
  main.append(
    el('div', { class: 'page-head' }, el('h1', { text: 'Agents' }), legend()),
    el('section', { class: 'card', 'aria-labelledby': 'agents-list' },
      el('h2', { id: 'agents-list', text: 'Clusters and their agents' }),
      summary,
      el('div', { class: 'table-wrap' },
        el('table', { class: 'grid', dataset: { testid: 'agents' } },
          el('thead', {}, el('tr', {},
            ['Cluster', 'State', 'Last seen', 'Labels', 'Agent version'].map(
              (h) => el('th', { scope: 'col', text: h })))),
          tbody)),
      status));

  let drawn = '';
  return poll(2000, async (signal) => {
    let agents;
    try {
      agents = (await getJson(paths.agents(), signal)).agents || [];
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      status.textContent = `Could not load agents: ${errorText(err)}`;
      return;
    }
    status.textContent = '';
    agents.sort((a, b) => a.cluster.localeCompare(b.cluster));
    const key = JSON.stringify(agents.map((a) => [a.cluster, a.state, a.last_seen, a.labels, a.agent_version]));
    if (key === drawn) return;
    drawn = key;
    clear(tbody);
    for (const a of agents) {
      const labels = Object.entries(a.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ');
      tbody.append(el('tr', { dataset: { testid: 'agent-row', cluster: a.cluster } },
        el('th', { scope: 'row', class: 'mono', text: a.cluster }),
        el('td', {}, badge(a.state, 'agent-state')),
        el('td', { dataset: { testid: 'last-seen' } }, a.last_seen ? timeEl(a.last_seen, true) : 'not since the coordinator started'),
        el('td', { class: 'small', text: labels || '—' }),
        el('td', { class: 'mono small', text: a.agent_version || '—' })));
    }
    if (agents.length === 0) {
      tbody.append(el('tr', {}, el('td', { colspan: '5', class: 'muted', text: 'No agent has registered.' })));
    }
    const counts = {};
    for (const a of agents) counts[a.state] = (counts[a.state] || 0) + 1;
    summary.textContent = `${agents.length} agents: ` +
      Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ');
  });
}
