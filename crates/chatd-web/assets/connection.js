// One device's WebSocket connection to chatd (docs/protocol.md), kept up:
// it authenticates with the first frame (the token never goes in the URL),
// keeps a heartbeat, and reconnects with backoff after the network or the
// server drops. Messages are handed to `onMessage`, which acknowledges them
// once they are shown.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 8000;
const PING_EVERY_MS = 20000;
const PONG_WITHIN_MS = 10000;

/** Close codes after which reconnecting on our own would be wrong. */
const CLOSE = {
  UNAUTHORIZED: 4001,
  REPLACED: 4003,
  TOO_MANY_DEVICES: 4004,
  DISCONNECTED: 4005,
};

export class SendError extends Error {
  constructor(message, { maybeSent = false, status = 0, error = '' } = {}) {
    super(message);
    this.maybeSent = maybeSent;
    this.status = status;
    this.error = error;
  }
}

export class Connection {
  /**
   * @param {object} o
   * @param {string} o.url        ws(s)://host/app-id/{id}/ws
   * @param {string} o.token      user token
   * @param {string} o.device     this tab's device id
   * @param {(c: Connection, info: {user: string, device: string, acked: number}) => void} o.onReady
   * @param {(seq: number, record: object, ack: () => void) => void} o.onMessage
   * @param {(state: string, detail: object) => void} o.onState
   * @param {(code: number, reason: string) => void} o.onStopped  the connection
   *        gave up (unauthorized, replaced, too many devices, disconnected)
   */
  constructor(o) {
    Object.assign(this, o);
    this.ws = null;
    this.ready = false;
    this.stopped = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.nextRef = 1;
    /** ref → {resolve, reject}: requests waiting for their answer. */
    this.waiting = new Map();
    this.lastError = null;
    this.generation = 0;
    this.onOnline = () => { if (!this.ready && !this.stopped) this.connectNow(); };
    window.addEventListener('online', this.onOnline);
  }

  start() {
    this.stopped = false;
    this.connectNow();
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      this.detach(old);
      try { old.close(1000); } catch { /* already closed */ }
    }
    this.open();
  }

  open() {
    const gen = ++this.generation;
    this.ready = false;
    this.lastError = null;
    this.onState('connecting', { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (gen !== this.generation) return;
      ws.send(JSON.stringify({ op: 'auth', token: this.token, device: this.device }));
    };
    ws.onmessage = (ev) => {
      if (gen !== this.generation) return;
      this.heard();
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      this.onFrame(frame, gen);
    };
    ws.onclose = (ev) => {
      if (gen !== this.generation) return;
      this.closed(ev.code, ev.reason);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
  }

  onFrame(frame, gen) {
    if (!this.ready) {
      if (frame.op === 'auth_ok') {
        this.ready = true;
        this.attempt = 0;
        this.startHeartbeat();
        this.onState('open', { user: frame.user });
        this.onReady(this, frame);
      } else if (frame.op === 'error') {
        this.lastError = frame;
      }
      return;
    }
    switch (frame.op) {
      case 'msg':
        this.onMessage(frame.seq, frame.message, () => {
          // Acknowledge on the connection that delivered it only.
          if (gen === this.generation) this.sendFrame({ op: 'ack', seq: frame.seq });
        });
        break;
      case 'sent':
      case 'read_ok':
      case 'error': {
        const w = frame.ref !== undefined ? this.waiting.get(frame.ref) : undefined;
        if (w) {
          this.waiting.delete(frame.ref);
          if (frame.op === 'error') {
            w.reject(new SendError(frame.error_description || frame.error, {
              status: frame.status, error: frame.error,
            }));
          } else {
            w.resolve(frame);
          }
        }
        break;
      }
      default:
        break; // pong: heard() did the work
    }
  }

  heard() {
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  startHeartbeat() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (!this.ready) return;
      this.sendFrame({ op: 'ping' });
      if (!this.pongTimer) {
        this.pongTimer = setTimeout(() => {
          // Nothing came back: the connection is dead without knowing it.
          this.pongTimer = null;
          const ws = this.ws;
          if (ws) {
            this.ws = null;
            this.detach(ws);
            try { ws.close(4000, 'no answer to ping'); } catch { /* closed */ }
          }
          this.closed(1006, 'no answer to ping');
        }, PONG_WITHIN_MS);
      }
    }, PING_EVERY_MS);
  }

  closed(code, reason) {
    const wasReady = this.ready;
    this.ready = false;
    this.ws = null;
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = null;
    // Requests without an answer may or may not have been carried out.
    for (const [, w] of this.waiting) {
      w.reject(new SendError('connection lost', { maybeSent: true }));
    }
    this.waiting.clear();
    if (this.stopped) return;
    if (code === CLOSE.UNAUTHORIZED || (!wasReady && this.lastError && this.lastError.status === 401)) {
      this.stop();
      this.onStopped(CLOSE.UNAUTHORIZED, (this.lastError && this.lastError.error_description) || reason);
      return;
    }
    if (code === CLOSE.REPLACED || code === CLOSE.TOO_MANY_DEVICES || code === CLOSE.DISCONNECTED) {
      this.stop();
      this.onStopped(code, reason);
      return;
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    if (this.stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    const at = Date.now() + delay;
    this.onState('waiting', { at, attempt: this.attempt });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  /** Stops for good (sign-out, or a close code that forbids retrying). */
  stop() {
    this.stopped = true;
    this.ready = false;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.retryTimer = this.pingTimer = this.pongTimer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      this.detach(ws);
      try { ws.close(1000); } catch { /* closed */ }
    }
    for (const [, w] of this.waiting) w.reject(new SendError('stopped', { maybeSent: true }));
    this.waiting.clear();
    this.onState('stopped', {});
  }

  destroy() {
    this.stop();
    window.removeEventListener('online', this.onOnline);
  }

  sendFrame(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends a frame with a `ref` and waits for its answer. */
  request(frame) {
    return new Promise((resolve, reject) => {
      const ref = `c${this.nextRef++}`;
      if (!this.sendFrame({ ...frame, ref })) {
        reject(new SendError('not connected', { maybeSent: false }));
        return;
      }
      this.waiting.set(ref, { resolve, reject });
    });
  }
}

export { CLOSE };
