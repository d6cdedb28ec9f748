// A deployment's live events over SSE. The page opens `events?after=SEQ&plain=1` (no `event:`
// lines, so onmessage gets every frame). EventSource reconnects by itself with Last-Event-ID;
// when it gives up (CLOSED, e.g. the coordinator restarted and refused once), the stream is
// reopened with after=<last seq seen>. Every seq is handed on once.
import { paths } from './api.js';

export class LiveEvents {
  // onEvent(event) gets each new event once, in order of arrival; onState(text) the connection.
  constructor(id, after, onEvent, onState) {
    this.id = id;
    this.lastSeq = after;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.seen = new Set();
    this.source = null;
    this.closed = false;
    this.retryTimer = null;
    this.retryMs = 1000;
    this.watchdog = setInterval(() => this.check(), 2000);
  }

  open() {
    if (this.closed) return;
    if (this.source) this.source.close();
    const source = new EventSource(paths.stream(this.id, this.lastSeq));
    this.source = source;
    this.onState('connecting');
    source.onopen = () => {
      this.retryMs = 1000;
      this.onState('live');
    };
    source.onmessage = (m) => {
      let event;
      try {
        event = JSON.parse(m.data);
      } catch {
        return;
      }
      const seq = Number(event.seq);
      if (!Number.isFinite(seq) || this.seen.has(seq)) return;
      this.seen.add(seq);
      if (seq > this.lastSeq) this.lastSeq = seq;
      this.onEvent(event);
    };
    source.onerror = () => {
      if (this.source !== source) return;
      if (source.readyState === EventSource.CLOSED) this.reopenLater();
      else this.onState('reconnecting');
    };
  }

  check() {
    if (!this.closed && this.source && this.source.readyState === EventSource.CLOSED) this.reopenLater();
  }

  reopenLater() {
    if (this.closed || this.retryTimer) return;
    this.onState('reconnecting');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 8000);
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    if (this.source) this.source.close();
    this.source = null;
    this.onState('closed');
  }
}
