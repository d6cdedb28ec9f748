// One deployment (#/deployments/ID): its state and the reason it stopped, the actions the
// caller's role allows, its waves with their clusters (paged: a wave may hold 10,000), the
// canary charts, and the live event log. It reads `?view=summary` and one page of clusters
// per wave, and re-reads them (debounced) on each event of the stream; never the full detail.
import { getJson, send, paths, errorText } from './api.js';
import {
  el, clear, badge, legend, timeEl, link, releaseHref, deploymentHref, safeUrl, setOptions, tone,
} from './dom.js';
import { clusterCharts } from './charts.js';
import { LiveEvents } from './live.js';
import { freezeBanner } from './overview.js';
import { EventLog } from './eventlog.js';

const PAGE = 50;
const MAX_CHARTS = 12;
// Up to this many events, the page reads a deployment's whole history on opening.
const FULL_HISTORY = 5000;
// Events re-read the summary and the visible cluster pages at most this often.
const REFRESH_MS = 200;
const FINAL = new Set(['succeeded', 'rolled_back', 'failed', 'cancelled']);
const ACTIONS = {
  pause: { label: 'Pause', verb: 'Pause', states: ['running', 'awaiting_approval', 'pending', 'frozen'] },
  resume: { label: 'Resume', verb: 'Resume', states: ['paused'] },
  rollback: {
    label: 'Roll back', verb: 'Roll back',
    states: ['running', 'awaiting_approval', 'pending', 'paused', 'frozen', 'blocked_by_checks', 'watching',
      'succeeded', 'cancelled', 'failed'],
  },
  cancel: {
    label: 'Cancel', verb: 'Cancel',
    states: ['pending', 'queued', 'running', 'awaiting_approval', 'blocked_by_checks', 'paused', 'frozen', 'watching'],
  },
};

function hasRole(session, roles) {
  return roles.includes(session.role);
}

// An environment-limited caller sees only the actions its environments allow (the server
// decides; this only spares a refusal).
function envAllows(session, envs) {
  const mine = Array.isArray(session.environments) ? session.environments : [];
  if (mine.length === 0 || mine.includes('*')) return true;
  return (envs || []).filter(Boolean).every((e) => mine.includes(e));
}

function countsOf(wave) {
  if (wave.counts) return wave.counts;
  const counts = {};
  for (const c of wave.clusters || []) counts[c.state] = (counts[c.state] || 0) + 1;
  return counts;
}

function totalOf(wave) {
  if (typeof wave.clusters_total === 'number') return wave.clusters_total;
  return (wave.clusters || []).length;
}

function countsText(counts) {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`);
  return parts.length ? parts.join(' · ') : 'no clusters yet';
}

function approvalsText(wave) {
  const required = wave.approvals_required || 0;
  const given = wave.approvals || [];
  const who = given.map((a) => `${a.by} at ${a.at ? new Date(a.at).toLocaleTimeString() : '?'}`).join(', ');
  return `${given.length} of ${required}${who ? `: ${who}` : ''}`;
}

function clusterRow(c) {
  const weight = c.weight === null || c.weight === undefined ? null : Number(c.weight);
  const weightCell = el('td', { class: 'weight' },
    el('span', { dataset: { testid: 'cluster-weight' }, text: weight === null ? '—' : `${weight}%` }));
  if (weight !== null) {
    const bar = el('span', { class: 'bar', 'aria-hidden': 'true' }, el('span', { class: 'bar-fill' }));
    bar.firstChild.style.width = `${Math.max(0, Math.min(100, weight))}%`;
    weightCell.append(bar);
  }
  const strategy = c.strategy_step ? ` (traffic step ${c.strategy_step}/${c.strategy_steps})` : '';
  const checks = (c.checks || []).map((k) => el('li', { class: `check tone-text-${tone(k.state)}` },
    `${k.state === 'passed' ? '✓' : k.state === 'pending' || k.state === 'running' ? '…' : '✗'} ${k.name} ${k.state}`));
  return el('tr', { dataset: { testid: 'cluster', cluster: c.name } },
    el('th', { scope: 'row', class: 'mono', text: c.name }),
    el('td', {}, badge(c.state, 'cluster-state')),
    el('td', {}, el('span', { dataset: { testid: 'cluster-step' }, text: c.step || '—' }),
      strategy ? el('span', { class: 'muted small', text: strategy }) : null),
    weightCell,
    el('td', { class: 'small' }, c.from_version || c.previous_version || '—', ' → ', c.to_version || '—'),
    el('td', { class: 'num', text: String(c.attempt ?? '') }),
    el('td', { class: 'message' },
      c.message ? el('span', { text: c.message }) : null,
      c.exit_code !== null && c.exit_code !== undefined && c.exit_code !== 0
        ? el('span', { class: 'muted small', text: ` (exit ${c.exit_code})` }) : null,
      checks.length ? el('ul', { class: 'checks', 'aria-label': `Checks on ${c.name}` }, checks) : null));
}

// One wave's section; its controls (paging, filter, approve) stay in place across refreshes so
// that focus is never lost while the page updates live.
class WaveView {
  constructor(page, name) {
    this.page = page;
    this.name = name;
    this.offset = 0;
    this.stateFilter = '';
    this.clusters = [];
    this.total = 0;
    this.pageSig = null;
    this.slug = `wave-${page.waveIndex++}`;

    this.stateSlot = el('span');
    this.meta = el('p', { class: 'wave-meta' });
    this.counts = el('p', { class: 'counts-line', dataset: { testid: 'wave-counts' } });
    this.approvals = el('div', { class: 'approvals-box' });
    this.approveSlot = el('div', { class: 'approve-slot' });
    this.planned = el('div');
    this.attention = el('div');
    this.filter = el('select', { id: `${this.slug}-filter` });
    this.filter.append(el('option', { value: '', text: 'All' }));
    this.filter.addEventListener('change', () => {
      this.stateFilter = this.filter.value;
      this.offset = 0;
      this.pageSig = null;
      this.page.refreshSoon(0);
    });
    this.tbody = el('tbody');
    this.prev = el('button', { type: 'button', class: 'quiet', text: 'Previous' });
    this.next = el('button', { type: 'button', class: 'quiet', text: 'Next' });
    this.pageInfo = el('span', { class: 'page-info', dataset: { testid: 'page-info' }, 'aria-live': 'polite' });
    this.pager = el('div', { class: 'pager', dataset: { testid: 'pager' } }, this.prev, this.pageInfo, this.next);
    this.prev.addEventListener('click', () => this.turn(-PAGE));
    this.next.addEventListener('click', () => this.turn(PAGE));
    this.tableBox = el('div', { class: 'table-wrap' },
      el('table', { class: 'grid clusters' },
        el('caption', { class: 'visually-hidden', text: `Clusters of wave ${name}` }),
        el('thead', {}, el('tr', {},
          ['Cluster', 'State', 'Step', 'Weight', 'Version', 'Attempt', 'Message'].map(
            (h) => el('th', { scope: 'col', text: h })))),
        this.tbody));
    this.filterBox = el('div', { class: 'field inline' },
      el('label', { for: this.filter.id, text: 'Cluster state' }), this.filter);

    this.section = el('section', {
      class: 'wave card', dataset: { testid: 'wave', wave: name }, 'aria-labelledby': `${this.slug}-title`,
    },
    el('div', { class: 'wave-head' },
      el('h2', { id: `${this.slug}-title` }, 'Wave ', el('span', { class: 'mono', text: name })),
      this.stateSlot),
    this.meta, this.counts, this.approvals, this.approveSlot, this.planned, this.attention,
    el('div', { class: 'wave-tools' }, this.filterBox, this.pager),
    this.tableBox);
  }

  turn(delta) {
    const next = Math.max(0, Math.min(this.offset + delta, Math.max(0, this.total - 1)));
    if (next === this.offset) return;
    this.offset = next - (next % PAGE);
    this.pageSig = null;
    this.page.refreshSoon(0);
  }

  // The wave from the summary; returns whether its cluster page should be re-read.
  update(wave) {
    this.wave = wave;
    clear(this.stateSlot).append(badge(wave.state, 'wave-state'));
    const total = totalOf(wave);
    this.meta.textContent = [wave.environment && `environment ${wave.environment}`,
      wave.strategy && `${wave.strategy.replace('_', '-')} strategy`,
      `${total} cluster${total === 1 ? '' : 's'}`].filter(Boolean).join(' · ');
    const counts = countsOf(wave);
    this.counts.textContent = countsText(counts);
    setOptions(this.filter, Object.keys(counts).filter((s) => counts[s] > 0).sort(), 'All');

    clear(this.approvals);
    if (wave.approval_required) {
      const required = wave.approvals_required || 0;
      const given = (wave.approvals || []).length;
      this.approvals.append(el('p', {}, el('strong', { text: 'Approvals: ' }),
        el('span', { dataset: { testid: 'approvals' }, text: approvalsText(wave) })));
      const waiting = (wave.state === 'pending' || wave.state === 'awaiting_approval') &&
        !FINAL.has(this.page.detail.state);
      if (waiting && !wave.approved && given < required) {
        const left = required - given;
        const expires = wave.approval_expires_in !== null && wave.approval_expires_in !== undefined
          ? ` (the given ones expire in ${Math.ceil(wave.approval_expires_in / 60)} min)` : '';
        this.approvals.append(el('p', { class: 'awaited', dataset: { testid: 'approvals-awaited' },
          text: `Awaiting ${left} more approval${left === 1 ? '' : 's'} from an approver${expires}` }));
      } else if (wave.approved) {
        this.approvals.append(el('p', { class: 'muted small', text: 'Approved.' }));
      }
    }

    // The approve button, only for who may approve and only while the wave awaits it.
    const session = this.page.session;
    const canApprove = wave.state === 'awaiting_approval' &&
      hasRole(session, ['approver', 'admin']) && envAllows(session, [wave.environment]);
    const hasButton = this.approveSlot.firstChild !== null;
    if (canApprove && !hasButton) {
      const b = el('button', { type: 'button', class: 'primary', dataset: { action: 'approve', wave: wave.name },
        text: `Approve wave ${wave.name}` });
      b.addEventListener('click', () => this.page.confirm('approve', wave.name, b));
      this.approveSlot.append(b);
    } else if (!canApprove && hasButton) {
      clear(this.approveSlot);
    }

    clear(this.planned);
    if (Array.isArray(wave.planned_clusters) && wave.planned_clusters.length) {
      const names = wave.planned_clusters;
      const count = typeof wave.planned_clusters_total === 'number' ? wave.planned_clusters_total : names.length;
      const shown = names.slice(0, 20);
      this.planned.append(el('p', { class: 'small', dataset: { testid: 'planned-clusters' } },
        `Will deploy to ${count} cluster${count === 1 ? '' : 's'}: ${shown.join(', ')}`,
        count > shown.length ? ` and ${count - shown.length} more` : ''));
    }

    clear(this.attention);
    const attention = wave.attention || [];
    if (attention.length) {
      this.attention.append(el('div', { class: 'attention' },
        el('h3', { text: `Needs attention: ${wave.attention_total ?? attention.length} cluster${(wave.attention_total ?? attention.length) === 1 ? '' : 's'}` +
          ((wave.attention_total ?? 0) > attention.length ? ` (the first ${attention.length} listed)` : '') }),
        el('ul', { dataset: { testid: 'attention' } }, attention.map((c) => el('li', { dataset: { cluster: c.name } },
          el('span', { class: 'mono', text: c.name }), ' ', badge(c.state), ' ',
          c.step ? el('span', { class: 'muted', text: `${c.step} ` }) : null,
          el('span', { text: c.message || '' }))))));
    }

    if (Array.isArray(wave.clusters)) {
      // A coordinator without ?view=summary sent every cluster: page them here.
      const all = this.stateFilter ? wave.clusters.filter((c) => c.state === this.stateFilter) : wave.clusters;
      this.showPage(all.slice(this.offset, this.offset + PAGE), all.length);
      return false;
    }
    if (total === 0) {
      // Not started (or resolved to no cluster): nothing to page through.
      this.offset = 0;
      this.pageSig = null;
      this.showPage([], 0);
      return false;
    }
    const sig = JSON.stringify([wave.state, counts, attention.map((c) => [c.name, c.state, c.step, c.message])]);
    const moving = wave.state === 'running' || wave.state === 'rolling_back';
    const stale = this.pageSig !== sig || moving;
    this.pageSig = sig;
    return stale;
  }

  async loadPage(id) {
    const asked = [this.offset, this.stateFilter];
    const data = await getJson(paths.clusters(id, this.name, this.offset, PAGE, this.stateFilter));
    // The reader turned the page meanwhile: that page's read follows.
    if (asked[0] !== this.offset || asked[1] !== this.stateFilter) return undefined;
    if (this.offset >= (data.total || 0) && this.offset > 0) {
      this.offset = Math.max(0, (data.total || 0) - 1) - (Math.max(0, (data.total || 0) - 1) % PAGE);
      return this.loadPage(id);
    }
    this.showPage(data.clusters || [], data.total || 0);
  }

  showPage(clusters, total) {
    this.clusters = clusters;
    this.total = total;
    clear(this.tbody);
    for (const c of clusters) this.tbody.append(clusterRow(c));
    if (clusters.length === 0) {
      this.tbody.append(el('tr', {}, el('td', { colspan: '7', class: 'muted',
        text: this.stateFilter ? `No cluster is ${this.stateFilter}.` : 'No cluster has started in this wave yet.' })));
    }
    const paged = total > PAGE || this.offset > 0;
    this.pager.hidden = !paged;
    this.pageInfo.textContent = total === 0 ? '0 of 0'
      : `${this.offset + 1}–${Math.min(this.offset + clusters.length, total)} of ${total}`;
    this.prev.disabled = this.offset === 0;
    this.next.disabled = this.offset + PAGE >= total;
    this.filterBox.hidden = !paged && !this.stateFilter;
    this.tableBox.hidden = total === 0 && !this.stateFilter;
    this.page.clustersShown(clusters);
  }
}

class DeploymentPage {
  constructor(main, id, session) {
    this.main = main;
    this.id = id;
    this.session = session;
    this.alive = true;
    this.waves = new Map();
    this.waveIndex = 0;
    this.analysis = new Map();  // cluster -> Map(seq -> figures)
    this.figuresOf = new Map();  // cluster -> last figures from a cluster page (no events yet)
    this.chartNodes = new Map();
    this.detail = null;
    this.live = null;
    this.refreshTimer = null;
    this.refreshing = false;
    this.again = false;
    window.flotillaSeenSeqs = [];
    window.flotillaEventTimes = [];
    this.build();
  }

  build() {
    document.title = `${this.id} · Flotilla`;
    this.h1 = el('h1', { text: `Deployment ${this.id}` });
    this.stateLine = el('div', { class: 'state-line', 'aria-live': 'polite' });
    this.reasonSlot = el('div');
    this.freezeSlot = el('div');
    this.facts = el('dl', { class: 'facts' });
    this.actions = el('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' });
    this.actionKey = null;
    this.actionError = el('p', { class: 'error', role: 'alert', dataset: { testid: 'action-error' } });
    this.actionError.hidden = true;
    this.actionDone = el('p', { class: 'muted small', role: 'status' });
    this.wavesBox = el('div', { class: 'waves' });
    this.chartsBox = el('div', { class: 'charts-grid' });
    this.chartsNote = el('p', { class: 'muted small' });
    this.chartsSection = el('section', { class: 'charts-section', 'aria-labelledby': 'charts-title' },
      el('h2', { id: 'charts-title', text: 'Canary analysis' }), this.chartsNote, this.chartsBox);
    this.chartsSection.hidden = true;
    this.connection = el('span', { class: 'conn muted small', 'aria-live': 'polite' });
    this.eventLog = new EventLog((e) => {
      window.flotillaEventTimes.push({ seq: Number(e.seq), shownAt: performance.timeOrigin + performance.now() });
    });
    this.loadError = el('p', { class: 'error', role: 'alert' });
    this.loadError.hidden = true;
    this.notes = el('div');
    this.dialog = this.buildDialog();

    this.main.append(
      el('div', { class: 'page-head' }, this.h1, legend()),
      this.loadError,
      this.reasonSlot,
      this.freezeSlot,
      el('section', { class: 'card status-card', 'aria-label': 'Status' },
        this.stateLine, this.facts, this.actions, this.actionError, this.actionDone),
      this.wavesBox,
      this.chartsSection,
      el('section', { class: 'card', 'aria-labelledby': 'events-title' },
        el('div', { class: 'wave-head' }, el('h2', { id: 'events-title', text: 'Events' }), this.connection),
        this.eventLog.node),
      this.notes,
      this.dialog);
  }

  buildDialog() {
    this.dialogTitle = el('h2', { id: 'confirm-title' });
    this.dialogText = el('p', { id: 'confirm-text', dataset: { testid: 'confirm-text' } });
    this.reasonInput = el('input', { id: 'confirm-reason', type: 'text', maxlength: '500', autocomplete: 'off' });
    this.reasonField = el('div', { class: 'field' },
      el('label', { for: 'confirm-reason', text: 'Reason (optional, recorded in the audit log)' }), this.reasonInput);
    this.confirmButton = el('button', { type: 'button', class: 'primary', text: 'Confirm' });
    this.backButton = el('button', { type: 'button', class: 'quiet', text: 'Back' });
    const dialog = el('dialog', {
      dataset: { testid: 'confirm' }, 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-text',
    }, this.dialogTitle, this.dialogText, this.reasonField,
    el('div', { class: 'dialog-buttons' }, this.backButton, this.confirmButton));
    this.backButton.addEventListener('click', () => dialog.close('back'));
    this.confirmButton.addEventListener('click', () => this.doAction());
    dialog.addEventListener('close', () => {
      if (this.returnFocus && this.returnFocus.isConnected) this.returnFocus.focus();
    });
    return dialog;
  }

  confirm(verb, wave, button) {
    const d = this.detail;
    this.pending = { verb, wave };
    this.returnFocus = button;
    const what = `${d.service} ${d.version}`;
    if (verb === 'approve') {
      this.dialogTitle.textContent = `Approve wave ${wave}?`;
      this.dialogText.textContent = `Approve wave ${wave} of deployment ${this.id} (${what}). ` +
        'The wave starts once it has every approval it needs.';
      this.reasonField.hidden = true;
    } else {
      const a = ACTIONS[verb];
      const at = wave ? `wave ${wave}` : 'no wave running';
      const effect = {
        pause: 'Steps in flight finish; no new step starts.',
        resume: 'The deployment goes on where it stopped.',
        rollback: 'Every cluster the version reached goes back to its previous version.',
        cancel: 'Steps in flight are aborted, then every cluster it reached is rolled back.',
      }[verb];
      this.dialogTitle.textContent = `${a.verb} deployment ${this.id}?`;
      this.dialogText.textContent = `${a.verb} deployment ${this.id} (${what}), now at ${at}. ${effect}`;
      this.reasonField.hidden = false;
      this.reasonInput.value = '';
    }
    this.confirmButton.disabled = false;
    this.dialog.showModal();
    (verb === 'approve' ? this.backButton : this.reasonInput).focus();
  }

  async doAction() {
    const { verb, wave } = this.pending || {};
    if (!verb) return;
    this.confirmButton.disabled = true;
    const body = verb === 'approve' ? { wave } : (this.reasonInput.value.trim() ? { reason: this.reasonInput.value.trim() } : {});
    try {
      await send('POST', paths.action(this.id, verb), body);
      this.actionError.hidden = true;
      this.actionError.textContent = '';
      this.actionDone.textContent = verb === 'approve'
        ? `Approved wave ${wave}.` : `${ACTIONS[verb].verb}: sent at ${new Date().toLocaleTimeString()}.`;
      this.dialog.close('done');
    } catch (err) {
      this.dialog.close('failed');
      this.actionError.hidden = false;
      this.actionError.textContent = `${verb === 'approve' ? `Approve wave ${wave}` : ACTIONS[verb].verb} refused: ${errorText(err)}`;
    }
    this.pending = null;
    this.refreshSoon(0);
  }

  async start() {
    try {
      await this.refresh();
    } catch (err) {
      this.showLoadError(err);
      if (err.status === 404 || err.status === 400) return;
    }
    if (!this.alive) return;
    const last = this.detail && typeof this.detail.last_event_seq === 'number' ? this.detail.last_event_seq : 0;
    // Every event from the first (seqs count from 1 per deployment), unless there are so many
    // (a fleet-wide rollout) that reading them all would stall the page: then the last ones the
    // log keeps.
    const after = last > FULL_HISTORY ? last - EventLog.MAX : 0;
    this.live = new LiveEvents(this.id, after, (e) => this.onEvent(e), (s) => this.showConnection(s));
    this.live.open();
    this.loadAnalysis();
    this.safety = setInterval(() => this.refreshSoon(0), 10000);
  }

  async loadAnalysis() {
    try {
      const data = await getJson(paths.events(this.id, 0, 'cluster.analysis'));
      if (!this.alive) return;
      for (const e of data.events || []) this.addFigures(e);
      this.drawCharts();
    } catch (err) {
      this.chartsNote.textContent = `Could not load the analysis windows: ${errorText(err)}`;
    }
  }

  addFigures(e) {
    if (!e.cluster || !e.data || !e.data.candidate) return false;
    let byCluster = this.analysis.get(e.cluster);
    if (!byCluster) {
      byCluster = new Map();
      this.analysis.set(e.cluster, byCluster);
    }
    if (byCluster.has(e.seq)) return false;
    byCluster.set(e.seq, e.data);
    return true;
  }

  seriesOf(cluster) {
    const byCluster = this.analysis.get(cluster);
    if (byCluster && byCluster.size) return [...byCluster.entries()].sort((a, b) => a[0] - b[0]).map(([, f]) => f);
    const f = this.figuresOf.get(cluster);
    return f ? [f] : [];
  }

  lastSeqOf(cluster) {
    const byCluster = this.analysis.get(cluster);
    return byCluster && byCluster.size ? Math.max(...byCluster.keys()) : 0;
  }

  clustersShown(clusters) {
    let changed = false;
    for (const c of clusters) {
      if (c.figures && !this.analysis.has(c.name) && !this.figuresOf.has(c.name)) changed = true;
      if (c.figures) this.figuresOf.set(c.name, c.figures);
    }
    if (changed) this.drawCharts();
  }

  drawCharts(only) {
    const names = new Set([...this.analysis.keys(), ...this.figuresOf.keys()]);
    const ordered = [...names].sort((a, b) => this.lastSeqOf(b) - this.lastSeqOf(a) || a.localeCompare(b));
    const shown = ordered.slice(0, MAX_CHARTS).sort((a, b) => a.localeCompare(b));
    this.chartsSection.hidden = shown.length === 0;
    this.chartsNote.textContent = ordered.length > MAX_CHARTS
      ? `Showing the ${MAX_CHARTS} clusters analysed most recently of ${ordered.length}.`
      : 'Error rate and p95 latency of the candidate and the stable set per analysis window, with the limit drawn.';
    const keep = new Set(shown);
    for (const [name, node] of this.chartNodes) {
      if (!keep.has(name)) {
        node.remove();
        this.chartNodes.delete(name);
      }
    }
    let before = null;
    for (let i = shown.length - 1; i >= 0; i--) {
      const name = shown[i];
      let node = this.chartNodes.get(name);
      if (!node || only === undefined || only === name) {
        const fresh = clusterCharts(name, this.seriesOf(name));
        if (node) node.replaceWith(fresh);
        node = fresh;
        this.chartNodes.set(name, node);
      }
      if (node.nextSibling !== before || node.parentNode !== this.chartsBox) this.chartsBox.insertBefore(node, before);
      before = node;
    }
  }

  onEvent(e) {
    if (!this.alive) return;
    this.eventLog.add(e);
    window.flotillaSeenSeqs.push(Number(e.seq));
    if (e.type === 'cluster.analysis' && this.addFigures(e)) this.drawCharts(e.cluster);
    if (/^deployment\.(succeeded|rolled_back|failed|cancelled)$/.test(e.type)) this.sawEnd = true;
    this.refreshSoon(REFRESH_MS);
  }

  showConnection(state) {
    const text = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', closed: 'stream closed (final)' }[state] || state;
    this.connection.textContent = `Stream: ${text}`;
  }

  showLoadError(err) {
    this.loadError.hidden = false;
    this.loadError.textContent = err.status === 404
      ? `No deployment ${this.id}: ${errorText(err)}`
      : `Could not load deployment ${this.id}: ${errorText(err)}`;
  }

  refreshSoon(ms) {
    if (!this.alive) return;
    if (this.refreshTimer) {
      if (ms > 0) return;  // one is due already
      clearTimeout(this.refreshTimer);
    }
    this.refreshTimer = setTimeout(async () => {
      this.refreshTimer = null;
      if (this.refreshing) {
        this.again = true;
        return;
      }
      this.refreshing = true;
      try {
        await this.refresh();
        this.loadError.hidden = true;
      } catch (err) {
        if (this.alive) this.showLoadError(err);
      } finally {
        this.refreshing = false;
        if (this.again) {
          // Events came in meanwhile: read again, after a breath (a burst of thousands would
          // otherwise keep the page re-reading back to back).
          this.again = false;
          this.refreshSoon(REFRESH_MS);
        }
      }
    }, ms);
  }

  async refresh() {
    const d = await getJson(paths.summary(this.id));
    if (!this.alive) return;
    this.detail = d;
    this.render(d);
    const loads = [];
    for (const w of d.waves || []) {
      const view = this.waves.get(w.name);
      if (view.update(w)) loads.push(view.loadPage(this.id));
    }
    const results = await Promise.allSettled(loads);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    // Final, and every event up to its last one seen: the stream is over (EventSource would
    // otherwise reconnect to it for ever).
    const seenAll = typeof d.last_event_seq === 'number'
      ? this.live && this.live.lastSeq >= d.last_event_seq : this.sawEnd;
    if (FINAL.has(d.state) && this.live && seenAll) this.live.close();
  }

  render(d) {
    document.title = `${d.service} ${d.version} (${d.id}) · Flotilla`;
    this.h1.textContent = `${d.service} ${d.version} (${d.id})`;

    // Live regions and alerts are redrawn only when they change (a redraw is announced again).
    const stateKey = JSON.stringify([d.state, d.wave_index, d.waves_total, d.current_wave]);
    if (stateKey !== this.stateKey) this.renderState(d);
    this.stateKey = stateKey;
    const reasonKey = JSON.stringify([d.state, d.reason, d.failure, d.rollback_failed_clusters]);
    if (reasonKey !== this.reasonKey) this.renderReason(d);
    this.reasonKey = reasonKey;
    const freezeKey = JSON.stringify(d.frozen_by);
    if (freezeKey !== this.freezeKey) {
      clear(this.freezeSlot);
      if (d.frozen_by) {
        const banner = freezeBanner([d.frozen_by]);
        banner.prepend(el('p', { text: 'This deployment is held by a freeze.' }));
        this.freezeSlot.append(banner);
      }
    }
    this.freezeKey = freezeKey;

    // Rebuilt only when it changed (or every 10 s for the relative times): a link in it keeps
    // its focus while the page updates live.
    const factsKey = JSON.stringify([d.service, d.version, d.submitted_by, d.created_at, d.updated_at,
      d.finished_at, d.driver, d.hotfix, d.waits_for, d.watch, d.changes, d.release_notes_url,
      Math.floor(Date.now() / 10000)]);
    if (factsKey !== this.factsKey) this.renderFacts(d);
    this.factsKey = factsKey;

    this.renderActions(d);

    const notesKey = JSON.stringify(d.notes || []);
    if (notesKey !== this.notesKey) {
      this.notesKey = notesKey;
      clear(this.notes);
      if ((d.notes || []).length) {
        this.notes.append(el('section', { class: 'card', 'aria-labelledby': 'notes-title' },
          el('h2', { id: 'notes-title', text: 'Notes' }),
          el('ul', {}, d.notes.map((n) => el('li', {}, el('span', { text: n.text }), el('span', { class: 'muted small', text: ` — ${n.by}, ` }), timeEl(n.at))))));
      }
    }

    const names = (d.waves || []).map((w) => w.name);
    for (const name of names) {
      if (!this.waves.has(name)) {
        const view = new WaveView(this, name);
        this.waves.set(name, view);
        this.wavesBox.append(view.section);
      }
    }
  }

  renderState(d) {
    clear(this.stateLine).append(
      el('span', { class: 'state-caption', text: 'State ' }),
      el('span', { class: `badge big tone-${tone(d.state)}`, dataset: { testid: 'deployment-state' }, text: d.state }),
      el('span', { class: 'wave-progress', text: ` wave ${Math.min((d.wave_index || 0) + 1, d.waves_total || 0)} of ${d.waves_total || 0}${d.current_wave ? ` (${d.current_wave})` : ''}` }));
  }

  renderReason(d) {
    // Why it stopped, verbatim (the measured value and the limit are in the text).
    clear(this.reasonSlot);
    if (d.reason || d.failure) {
      const rolled = ['rolled_back', 'rolling_back', 'failed'].includes(d.state);
      const box = el('section', { class: `banner ${rolled ? 'tone-bad-box' : 'tone-wait-box'}`, role: 'alert',
        dataset: { testid: 'rollback-reason' } },
      el('strong', { text: rolled ? 'Rolled back because: ' : 'Reason: ' }),
      d.reason ? el('span', { class: 'reason-text', text: d.reason }) : null);
      if (d.failure && !(d.reason || '').includes(d.failure.message)) {
        box.append(el('p', { class: 'small' },
          `First failure: cluster ${d.failure.cluster}, step ${d.failure.step}: `,
          el('span', { text: d.failure.message })));
      }
      if ((d.rollback_failed_clusters || []).length) {
        box.append(el('p', { class: 'small', text: `Rollback failed on: ${d.rollback_failed_clusters.join(', ')}` }));
      }
      this.reasonSlot.append(box);
    }
  }

  renderFacts(d) {
    clear(this.facts);
    const fact = (term, ...value) => this.facts.append(el('div', {}, el('dt', { text: term }), el('dd', {}, ...value)));
    fact('Release', link(releaseHref(d.service, d.version), `${d.service} ${d.version}`), ' · ', link('#/log', 'deployment log'));
    fact('Submitted by', d.submitted_by || '—');
    fact('Created', timeEl(d.created_at), ' (', timeEl(d.created_at, true), ')');
    fact('Updated', timeEl(d.updated_at, true));
    if (d.finished_at) fact('Finished', timeEl(d.finished_at));
    if (d.driver) fact('Driver', d.driver);
    if (d.hotfix) fact('Hotfix', d.hotfix);
    if (d.waits_for) fact('Queued behind', link(deploymentHref(d.waits_for), d.waits_for));
    if (d.watch) {
      const w = d.watch;
      const left = w.tier_left_ms !== null && w.tier_left_ms !== undefined ? `, ${Math.ceil(w.tier_left_ms / 60000)} min left` : '';
      fact('Watch', w.tier_name ? `tier ${w.tier_name}${left}` : w.done ? 'done' : 'not started',
        w.ended_by ? ` (ended early by ${w.ended_by})` : '');
    }
    if (d.changes) fact('Changes', d.changes);
    if (d.release_notes_url) {
      const url = safeUrl(d.release_notes_url);
      fact('Release notes', url ? el('a', { href: url, rel: 'noreferrer noopener', target: '_blank', text: d.release_notes_url }) : d.release_notes_url);
    }
  }

  // The wave an action concerns: the current one, or the last one reached when none runs.
  waveInQuestion() {
    const d = this.detail;
    if (d.current_wave) return d.current_wave;
    const waves = d.waves || [];
    return waves.length ? waves[Math.min(d.wave_index || 0, waves.length - 1)].name : '';
  }

  renderActions(d) {
    const s = this.session;
    const allowed = [];
    if (hasRole(s, ['deployer', 'admin']) && envAllows(s, d.environments)) {
      for (const [verb, a] of Object.entries(ACTIONS)) {
        if (!a.states.includes(d.state)) continue;
        if (verb === 'pause' && d.cancelling) continue;
        // A failed deployment can only retry the rollbacks that failed.
        if (verb === 'rollback' && d.state === 'failed' && !(d.rollback_failed_clusters || []).length) continue;
        allowed.push(verb);
      }
    }
    const key = allowed.join(',');
    if (key === this.actionKey) return;
    this.actionKey = key;
    clear(this.actions);
    for (const verb of allowed) {
      const b = el('button', { type: 'button', class: verb === 'rollback' || verb === 'cancel' ? 'danger' : 'secondary',
        dataset: { action: verb }, text: ACTIONS[verb].label });
      b.addEventListener('click', () => this.confirm(verb, this.waveInQuestion(), b));
      this.actions.append(b);
    }
    if (!allowed.length) {
      const why = !hasRole(s, ['deployer', 'admin']) && !hasRole(s, ['approver'])
        ? `Your role (${s.role}) can only read.` : FINAL.has(d.state) ? 'The deployment is over.' : '';
      if (why) this.actions.append(el('p', { class: 'muted small', text: why }));
    }
  }

  stop() {
    this.alive = false;
    clearTimeout(this.refreshTimer);
    clearInterval(this.safety);
    if (this.live) this.live.close();
    this.eventLog.stop();
    if (this.dialog.open) this.dialog.close();
  }
}

export function renderDeployment(main, [id], ctx) {
  const page = new DeploymentPage(main, id, ctx.session);
  page.start();
  return () => page.stop();
}
