'use strict';
// The official Web SDKs in Node, unchanged, pointed at chatd.
//
// The bundles expect a browser: the globals below must exist before they are
// required (their platform detection runs at load time and must find
// `window.WebSocket`, so that the SDK takes its "web" code paths).

const { WebSocket } = require('ws');

/** A WebSocket that remembers what the SDK sent on it (for the tests that
 * look at the SDK's own frames, such as its heartbeat). */
class RecordingWebSocket extends WebSocket {
  send(data, ...rest) {
    if (!this.sentFrames) this.sentFrames = [];
    this.sentFrames.push({ at: Date.now(), data: Buffer.from(data) });
    return super.send(data, ...rest);
  }
}

globalThis.self = globalThis;
globalThis.window = globalThis;
globalThis.WebSocket = RecordingWebSocket;
globalThis.XMLHttpRequest = require('xhr2');
if (typeof globalThis.navigator === 'undefined') {
  globalThis.navigator = { userAgent: `Node.js/${process.versions.node} (chatd sdk tests)`, onLine: true, language: 'en-US' };
}
if (typeof globalThis.document === 'undefined') {
  // agora-chat 1.4.0 listens to visibility changes without checking.
  globalThis.document = { hidden: false, visibilityState: 'visible', addEventListener() {}, removeEventListener() {} };
}
if (!globalThis.localStorage) {
  const store = new Map();
  globalThis.localStorage = {
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => store.set(k, String(v)),
    removeItem: (k) => store.delete(k),
    clear: () => store.clear(),
  };
}
// The SDK fires some promises and forgets them (the automatic delivery ack,
// sends rejected by a reconnect); a browser only logs those.
process.on('unhandledRejection', (e) => {
  if (process.env.SDK_TEST_DEBUG) console.log('[sdk] unhandled rejection', e && e.message ? e.message : e);
});

const BUNDLES = {
  'easemob-websdk': require('easemob-websdk'),
  'agora-chat': require('agora-chat'),
};
const { APP_KEY } = require('./server');

function sdk(name) {
  const mod = BUNDLES[name];
  if (!mod) throw new Error(`unknown SDK ${name}`);
  return mod.default || mod;
}

if (!process.env.SDK_TEST_DEBUG) {
  for (const name of Object.keys(BUNDLES)) {
    const { logger } = sdk(name);
    if (logger && logger.disableAll) logger.disableAll();
  }
}

const HANDLERS = [
  'onConnected', 'onDisconnected', 'onReconnecting', 'onError',
  'onTextMessage', 'onImageMessage', 'onAudioMessage', 'onVideoMessage', 'onFileMessage',
  'onLocationMessage', 'onCmdMessage', 'onCustomMessage',
  'onDeliveredMessage', 'onReadMessage', 'onChannelMessage', 'onReceivedMessage',
  'onOfflineMessageSyncStart', 'onOfflineMessageSyncFinish',
  'onTokenWillExpire', 'onTokenExpired',
];

/** The handler each REST message type arrives through. */
const HANDLER_OF = {
  txt: 'onTextMessage',
  img: 'onImageMessage',
  audio: 'onAudioMessage',
  video: 'onVideoMessage',
  file: 'onFileMessage',
  loc: 'onLocationMessage',
  cmd: 'onCmdMessage',
  custom: 'onCustomMessage',
};

let devices = 0;

/** The `command` of an MSync frame (field 8; absent means SYNC), read with
 * a minimal protobuf walk. */
function msyncCommand(buf) {
  let i = 0;
  const varint = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++];
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  let command = 0;
  while (i < buf.length) {
    const tag = varint();
    const [field, wire] = [Math.floor(tag / 8), tag % 8];
    if (wire === 0) {
      const v = varint();
      if (field === 8) command = v;
    } else if (wire === 2) {
      const n = varint();
      i += n;
    } else if (wire === 1) {
      i += 8;
    } else if (wire === 5) {
      i += 4;
    } else {
      throw new Error(`wire type ${wire}`);
    }
  }
  return ['SYNC', 'UNREAD', 'NOTICE', 'PROVISION', 'LOGOUT'][command] || String(command);
}

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout (${ms} ms) waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** One SDK connection, with every event it fires recorded. */
class Client {
  constructor(server, { sdk: name = 'easemob-websdk', user, device, delivery = true, heartBeatWait } = {}) {
    this.name = name;
    this.user = user;
    this.WebIM = sdk(name);
    this.device = device || `t${process.pid}_${++devices}`;
    this.conn = new this.WebIM.connection({
      appKey: APP_KEY,
      isHttpDNS: false,
      url: server.ws,
      apiUrl: server.api,
      https: false,
      delivery,
      // A known resource per client (webim_web_<device>), not one shared
      // through localStorage by every client of this process.
      isFixedDeviceId: false,
      deviceId: this.device,
      autoReconnectNumMax: 30,
      isDebug: !!process.env.SDK_TEST_DEBUG,
      ...(heartBeatWait ? { heartBeatWait } : {}),
    });
    if (!process.env.SDK_TEST_DEBUG && this.WebIM.logger && this.WebIM.logger.disableAll) {
      this.WebIM.logger.disableAll();
    }
    // SDK defect (both bundles): a local message id is "ms since 2010 +
    // a counter", but the connection's prototype borrows the utils'
    // generator, so `conn.getUniqueId()` (automatic delivery acks) counts
    // on the connection while `message.create` counts on the utils. When
    // an ack is made k ms after a send and the two counters differ by k,
    // both get the same id: the ack's entry replaces the send's in the
    // SDK's table of pending sends, and that send's promise never settles
    // (seen as a 16 s timeout about once in ten runs on a loaded machine).
    // The server answers both; one counter for both makes ids unique.
    const utils = this.WebIM.utils;
    if (utils && typeof utils.getUniqueId === 'function') {
      this.conn.getUniqueId = () => utils.getUniqueId();
    }
    // The SDK sends its delivery acks without waiting for them; when the
    // connection drops meanwhile (server restarts) their promises reject
    // with nobody to hear it, which node:test would count as a failure.
    // Callers that await a send still see its rejection.
    const send = this.conn.send.bind(this.conn);
    this.conn.send = (m) => {
      const p = send(m);
      if (p && typeof p.catch === 'function') p.catch(() => {});
      return p;
    };
    this.events = [];
    this.waiters = [];
    const handlers = {};
    for (const h of HANDLERS) {
      handlers[h] = (data) => this.record(h, data);
    }
    this.conn.addEventHandler('chatd-test', handlers);
  }

  get resource() {
    return `webim_web_${this.device}`;
  }

  record(name, data) {
    const ev = { name, data: data === undefined ? null : JSON.parse(JSON.stringify(data, (k, v) => (k === 'xhr' ? undefined : v))) };
    this.events.push(ev);
    for (const w of [...this.waiters]) {
      if (w.name === name && w.pred(ev.data)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(ev.data);
      }
    }
  }

  /** Logs in with `{pwd}` or `{accessToken}`. */
  async open(auth = { pwd: 'pw' }) {
    const r = await withTimeout(this.conn.open({ user: this.user, ...auth }), 20000, `${this.user} open()`);
    await this.waitFor('onConnected', () => true, 10000);
    return r;
  }

  /** The events `name` seen so far that match `pred`. */
  seen(name, pred = () => true) {
    return this.events.filter((e) => e.name === name && pred(e.data)).map((e) => e.data);
  }

  /** The first event `name` matching `pred`, seen or to come. */
  waitFor(name, pred = () => true, ms = 10000) {
    const past = this.events.find((e) => e.name === name && pred(e.data));
    if (past) return Promise.resolve(past.data);
    return withTimeout(
      new Promise((resolve) => this.waiters.push({ name, pred, resolve })),
      ms,
      `${this.user}: ${name}`,
    );
  }

  /** Every message received (the eight message handlers). */
  messages() {
    const names = new Set(Object.values(HANDLER_OF));
    return this.events.filter((e) => names.has(e.name)).map((e) => e.data);
  }

  /** `conn.send` of `WebIM.message.create(options)`. */
  send(options) {
    const msg = this.WebIM.message.create({ chatType: 'singleChat', ...options });
    return withTimeout(this.conn.send(msg), 16000, `${this.user} send(${options.type})`);
  }

  /** The commands of the frames the SDK sent on its current socket, with
   * their times. */
  sentCommands() {
    return ((this.conn.sock && this.conn.sock.sentFrames) || []).map((f) => ({ at: f.at, command: msyncCommand(f.data) }));
  }

  /** Sends still waiting for the server's answer (the SDK's own table). */
  pending() {
    return Object.keys(this.conn._msgHash || {}).length;
  }

  /** Logs out, once the sends in flight (such as the automatic delivery
   * acks) are answered: closing first would reject them. */
  async close() {
    for (let i = 0; i < 40 && this.pending() > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      this.conn.close();
    } catch (_) {
      // already closed
    }
  }
}

module.exports = { Client, HANDLER_OF, withTimeout, sdk, msyncCommand };
