// The live event log of a deployment: newest last, at most MAX items in the DOM (the page keeps
// every seq it saw in window.flotillaSeenSeqs). Follows the newest event unless the reader
// scrolled up.
import { el, clock } from './dom.js';

function typeTone(type) {
  if (/(failed|rolling_back|rolled_back|lost|cancelled|cancelling|superseded)$/.test(type) || type === 'alert') return 'bad';
  if (/(succeeded|approved|checks_passed|promotion_met|returned)$/.test(type)) return 'ok';
  if (/(paused|awaiting_approval|frozen|queued|blocked_by_checks|blocked_by_promotion|approval|approval_expired|held)$/.test(type)) return 'wait';
  return 'run';
}

export class EventLog {
  static MAX = 500;
  static FLUSH_MS = 50;

  constructor(onShown) {
    this.onShown = onShown || (() => {});
    this.queue = [];
    this.timer = null;
    this.lastFlush = -Infinity;
    this.list = el('ol', { class: 'event-log', dataset: { testid: 'event-log' }, 'aria-label': 'Events, newest last' });
    this.box = el('div', { class: 'event-box', tabindex: '0', role: 'region', 'aria-label': 'Event log' }, this.list);
    this.empty = el('p', { class: 'muted small', text: 'No events yet.' });
    this.node = el('div', {}, this.empty, this.box);
  }

  // Queued and appended together (one layout per batch, not per event: a fleet-wide rollout
  // sends thousands a second); onShown(seq) is told once each is in the DOM.
  add(e) {
    this.queue.push(e);
    if (this.timer) return;
    // A lone event goes in at once; in a burst, at most one layout every FLUSH_MS.
    const wait = Math.max(0, this.lastFlush + EventLog.FLUSH_MS - performance.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    this.timer = null;
    this.lastFlush = performance.now();
    const batch = this.queue;
    this.queue = [];
    if (!batch.length) return;
    this.empty.hidden = true;
    const follow = this.box.scrollTop + this.box.clientHeight >= this.box.scrollHeight - 24;
    const items = document.createDocumentFragment();
    for (const e of batch.slice(-EventLog.MAX)) items.append(this.item(e));
    this.list.append(items);
    let extra = this.list.childElementCount - EventLog.MAX;
    while (extra-- > 0) this.list.firstElementChild.remove();
    if (follow) this.box.scrollTop = this.box.scrollHeight;
    for (const e of batch) this.onShown(e);
  }

  item(e) {
    const when = e.time ? new Date(e.time) : null;
    const where = [e.wave && `wave ${e.wave}`, e.cluster, e.step].filter(Boolean).join(' · ');
    return el('li', { dataset: { testid: 'event', seq: e.seq, type: e.type } },
      el('span', { class: 'ev-seq mono', text: `#${e.seq}` }),
      el('time', { class: 'ev-time mono', datetime: e.time || null, text: when ? clock(when) : '' }),
      el('span', { class: `ev-type tone-text-${typeTone(e.type)}`, dataset: { testid: 'event-type' }, text: e.type }),
      el('span', { class: 'ev-where', dataset: { testid: 'event-cluster' }, text: where }),
      el('span', { class: 'ev-message', text: e.message || '' }));
  }

  stop() {
    clearTimeout(this.timer);
  }
}
