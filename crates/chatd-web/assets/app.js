// chatd's web chat page: sign-in, conversation list, message pane, sending.
// Plain JavaScript modules, no build step (docs/web.md).
//
// Guarantees kept here:
// - message content is put in the page as text (render.js), never as HTML;
// - the token lives in this tab's sessionStorage and in memory, and goes
//   only into the Authorization header and the WebSocket's first frame:
//   never into a URL, never into a log;
// - every message is shown once: everything is keyed by msg_id, whatever
//   brought it (live delivery, redelivery after a reconnect, history, the
//   answer to our own send);
// - a delivered message is acknowledged only after it has been put on the
//   page.

import { Api, ApiError } from './api.js';
import { Connection, CLOSE } from './connection.js';
import { h, describe, renderBody, MediaCache, timeLabel, bytes, bodyOf } from './render.js';

const $ = (id) => document.getElementById(id);
const HISTORY_PAGE = 30;
const REFRESH_PAGE = 100;
const REFRESH_MAX_PAGES = 20;
const SEND_WAIT_MS = 15000;
const USERNAME = /^[A-Za-z0-9_.-]{1,64}$/;
const IMAGE_TYPES = /^image\/(png|jpeg|gif|webp)$/;

const store = {
  get(k) { try { return sessionStorage.getItem(`chatd.${k}`); } catch { return null; } },
  set(k, v) { try { sessionStorage.setItem(`chatd.${k}`, v); } catch { /* private mode */ } },
  del(k) { try { sessionStorage.removeItem(`chatd.${k}`); } catch { /* private mode */ } },
};

function randomHex(bytesLen) {
  const a = new Uint8Array(bytesLen);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** This tab's device id: one per tab, kept across reloads of the tab. */
function deviceId(fresh = false) {
  let d = fresh ? null : store.get('device');
  if (!d || !/^[A-Za-z0-9_.-]{1,64}$/.test(d)) {
    d = `web_${randomHex(8)}`;
    store.set('device', d);
  }
  return d;
}

const lc = (s) => String(s ?? '').toLowerCase();

function bigId(id) {
  try { return BigInt(id); } catch { return -1n; }
}

const S = {
  config: null,
  api: null,
  media: null,
  conn: null,
  me: null,
  device: deviceId(),
  /** peer → conversation */
  convs: new Map(),
  open: null,
  localSeq: 0,
  everReady: false,
  connState: { state: 'stopped' },
};

// ---------------------------------------------------------------- model

function convFor(peer) {
  peer = lc(peer);
  let c = S.convs.get(peer);
  if (!c) {
    c = {
      peer,
      /** msg_id → {id, n, record, mine} */
      msgs: new Map(),
      /** msg_ids, ascending */
      order: [],
      /** this tab's messages not confirmed yet, oldest first */
      locals: [],
      /** node of each shown message, by key (`m{id}` or a local key) */
      nodes: new Map(),
      last: null,
      lastLocal: null,
      unread: 0,
      countedUpTo: 0n,
      readUpTo: 0n,
      readPending: false,
      cursor: undefined,
      loading: false,
      stale: false,
      created: Date.now(),
    };
    S.convs.set(peer, c);
  }
  return c;
}

function insertOrdered(conv, id, n) {
  const o = conv.order;
  let lo = 0;
  let hi = o.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (conv.msgs.get(o[mid]).n < n) lo = mid + 1; else hi = mid;
  }
  o.splice(lo, 0, id);
}

/**
 * Takes one message record into the model. Returns its conversation if the
 * message is new, null if it was already known.
 */
function ingest(record, source) {
  if (!record || record.msg_id === undefined) return null;
  const id = String(record.msg_id);
  const from = lc(record.from);
  const to = lc(record.to);
  const mine = from === S.me;
  const conv = convFor(mine ? to : from);
  if (conv.msgs.has(id)) return null;
  // One of ours whose `sent` answer was lost with the connection.
  const ext = record.payload && record.payload.ext;
  if (mine && ext && typeof ext.chatd_web_id === 'string') {
    const local = conv.locals.find((l) => l.clientId === ext.chatd_web_id);
    if (local) {
      confirmLocal(conv, local, id, record);
      return conv;
    }
  }
  const n = bigId(id);
  conv.msgs.set(id, { id, n, record, mine });
  insertOrdered(conv, id, n);
  if (!conv.last || n > conv.last.n) conv.last = { n, record };
  if (!mine && source === 'live' && n > conv.countedUpTo && n > conv.readUpTo) {
    conv.unread += 1;
    conv.countedUpTo = n;
  }
  return conv;
}

function isShown(conv) {
  return S.open === conv.peer && document.visibilityState === 'visible';
}

function markRead(conv) {
  const newest = conv.last ? conv.last.n : 0n;
  if (conv.unread === 0 && newest <= conv.readUpTo && !conv.readPending) return;
  conv.unread = 0;
  if (newest > conv.readUpTo) conv.readUpTo = newest;
  if (newest > conv.countedUpTo) conv.countedUpTo = newest;
  conv.readPending = !(S.conn && S.conn.sendFrame({ op: 'read', peer: conv.peer }));
  renderList();
}

// ---------------------------------------------------------------- connection

function onMessage(seq, record, ack) {
  try {
    const conv = ingest(record, 'live');
    if (conv) {
      if (isShown(conv)) markRead(conv);
      renderList();
      if (S.open === conv.peer) renderPane({ follow: true });
    }
  } catch (e) {
    console.error('chatd: a message could not be shown', e && e.message);
  } finally {
    // Shown (or a repeat): the server may forget it for this device.
    ack();
  }
}

function onReady(conn, info) {
  if (conn !== S.conn) return;
  const user = lc(info.user);
  if (S.me && S.me !== user) {
    signOut('This token belongs to another user.');
    return;
  }
  const first = !S.everReady;
  S.everReady = true;
  S.me = user;
  store.set('user', user);
  hideBanner();
  if (first) showChat();
  for (const conv of S.convs.values()) {
    if (conv.readPending) markRead(conv);
  }
  loadChannels();
  if (!first) {
    // Anything may have happened while we were away (our other tabs'
    // messages, for one, are only copied to devices online at the time).
    for (const conv of S.convs.values()) {
      if (conv.cursor !== undefined) conv.stale = true;
    }
    const open = S.open && S.convs.get(S.open);
    if (open && open.stale) refreshNewest(open);
  }
  resumeLocals();
}

function onState(state, detail) {
  S.connState = { state, ...detail };
  renderConnState();
}

function onStopped(code, reason) {
  if (code === CLOSE.UNAUTHORIZED) {
    signOut(S.everReady ? 'Your session ended: sign in again.' : `Sign-in refused: ${reason || 'invalid token'}`);
  } else if (code === CLOSE.REPLACED) {
    // Another tab took this tab's device id (a duplicated tab copies
    // sessionStorage): become a device of our own and carry on.
    S.device = deviceId(true);
    S.conn.device = S.device;
    S.conn.start();
  } else if (code === CLOSE.TOO_MANY_DEVICES) {
    showBanner('Disconnected: this user has too many devices connected (other tabs or apps).', 'Reconnect',
      () => S.conn.start());
  } else {
    showBanner('Disconnected by the administrator.', 'Reconnect', () => S.conn.start());
  }
}

let connTicker = null;
function renderConnState() {
  const el = $('conn-status');
  const { state } = S.connState;
  el.dataset.state = state;
  clearInterval(connTicker);
  connTicker = null;
  const text = () => {
    switch (state) {
      case 'open': return 'online';
      case 'connecting': return 'connecting…';
      case 'waiting': {
        const s = Math.max(0, Math.ceil((S.connState.at - Date.now()) / 1000));
        return `offline — retrying in ${s} s`;
      }
      default: return 'offline';
    }
  };
  el.textContent = text();
  if (state === 'waiting') connTicker = setInterval(() => { el.textContent = text(); }, 500);
  const signinStatus = $('signin-error');
  if (!S.everReady && S.conn && state === 'waiting') {
    $('signin-submit').disabled = false;
    $('token-submit').disabled = false;
    signinStatus.hidden = false;
    signinStatus.textContent = `The server cannot be reached; ${text().replace('offline — ', '')}`;
  }
}

// ---------------------------------------------------------------- REST loads

async function loadChannels() {
  let list;
  try {
    list = await S.api.channels(S.me);
  } catch (e) {
    if (e.status !== 401) console.warn('chatd: conversation list not loaded:', e.message);
    return;
  }
  for (const c of list) {
    if (!c || typeof c.channel_id !== 'string') continue;
    const conv = convFor(c.channel_id);
    let n = 0n;
    if (c.last_message && c.last_message.msg_id !== undefined) {
      n = bigId(String(c.last_message.msg_id));
      if (!conv.last || n > conv.last.n) conv.last = { n, record: c.last_message };
    }
    // The server's count covers messages up to its last one; add those
    // that arrived here since.
    let newer = 0;
    for (const m of conv.msgs.values()) {
      if (!m.mine && m.n > n && m.n > conv.readUpTo) newer += 1;
    }
    conv.unread = Number(c.unread_num || 0) + newer;
    if (n > conv.countedUpTo) conv.countedUpTo = n;
    if (isShown(conv)) markRead(conv);
  }
  renderList();
}

function setHistoryStatus(conv, text, retry) {
  if (S.open !== conv.peer) return;
  const el = $('history-status');
  el.replaceChildren(text);
  if (retry) {
    const b = h('button', { class: 'link', text: 'Try again', attrs: { type: 'button' } });
    b.addEventListener('click', retry);
    el.append(' ', b);
  }
}

function historyStatusText(conv) {
  if (conv.cursor === null) return conv.order.length ? 'Beginning of the conversation' : 'No messages yet';
  return '';
}

/** Loads the next older page (the newest one first). */
async function loadOlder(conv) {
  if (conv.loading || conv.cursor === null) return;
  conv.loading = true;
  setHistoryStatus(conv, 'Loading…');
  const pane = $('messages');
  const before = pane.scrollHeight - pane.scrollTop;
  const firstPage = conv.cursor === undefined;
  try {
    const r = await S.api.history(S.me, conv.peer, HISTORY_PAGE, conv.cursor);
    for (const e of r.entities || []) ingest(e, 'history');
    conv.cursor = typeof r.cursor === 'string' && r.cursor ? r.cursor : null;
    if (firstPage) conv.stale = false;
    conv.loading = false;
    setHistoryStatus(conv, historyStatusText(conv));
    if (S.open === conv.peer) {
      renderPane({ follow: firstPage });
      if (!firstPage) pane.scrollTop = pane.scrollHeight - before;
    }
    renderList();
  } catch (e) {
    conv.loading = false;
    setHistoryStatus(conv, `History not loaded: ${e.message}.`, () => loadOlder(conv));
    return;
  }
  fillPane(conv);
}

/** Loads older pages while the pane is not full. */
function fillPane(conv) {
  if (S.open !== conv.peer) return;
  const pane = $('messages');
  if (conv.cursor && !conv.loading && pane.scrollHeight <= pane.clientHeight + 10) loadOlder(conv);
}

/** After a reconnect: the newest messages, back to the first one known. */
async function refreshNewest(conv) {
  if (conv.refreshing) return;
  conv.refreshing = true;
  try {
    let cursor;
    for (let i = 0; i < REFRESH_MAX_PAGES; i += 1) {
      const r = await S.api.history(S.me, conv.peer, REFRESH_PAGE, cursor);
      const entities = r.entities || [];
      let overlap = false;
      for (const e of entities) {
        if (conv.msgs.has(String(e.msg_id))) overlap = true;
        ingest(e, 'history');
      }
      cursor = typeof r.cursor === 'string' && r.cursor ? r.cursor : null;
      if (overlap || !cursor) break;
    }
    conv.stale = false;
    if (S.open === conv.peer) renderPane({ follow: true });
    renderList();
  } catch (e) {
    console.warn('chatd: conversation not refreshed:', e.message);
  } finally {
    conv.refreshing = false;
  }
}

// ---------------------------------------------------------------- sending

function newLocal(peer, type, body, extra = {}) {
  const conv = convFor(peer);
  const local = {
    key: `l${++S.localSeq}`,
    clientId: randomHex(12),
    peer: conv.peer,
    type,
    body,
    status: 'sending',
    error: '',
    createdAt: Date.now(),
    ...extra,
  };
  conv.locals.push(local);
  conv.lastLocal = local;
  if (S.open === conv.peer) renderPane({ follow: true, force: true });
  renderList();
  return local;
}

function localConv(local) {
  return convFor(local.peer);
}

function updateLocal(local) {
  const conv = localConv(local);
  const node = conv.nodes.get(local.key);
  if (node) updateMeta(node, { mine: true, local });
}

function fail(local, why) {
  clearTimeout(local.timer);
  local.queued = false;
  local.status = 'failed';
  local.error = why;
  updateLocal(local);
}

function transmit(local) {
  clearTimeout(local.timer);
  if (!local.body) {
    upload(local);
    return;
  }
  local.status = 'sending';
  local.error = '';
  if (!S.conn || !S.conn.ready) {
    // Wait for the connection, a while.
    local.queued = true;
    local.timer = setTimeout(() => {
      if (local.queued) fail(local, 'not connected');
    }, SEND_WAIT_MS);
    updateLocal(local);
    return;
  }
  local.queued = false;
  updateLocal(local);
  S.conn.request({
    op: 'send', to: [local.peer], type: local.type, body: local.body, ext: { chatd_web_id: local.clientId },
  }).then((frame) => {
    const data = frame.data || {};
    const id = data[local.peer] ?? Object.values(data)[0];
    if (id === undefined) {
      fail(local, 'the server gave no message id');
      return;
    }
    confirmLocal(localConv(local), local, String(id), null, frame.timestamp);
  }, (err) => {
    if (local.status !== 'sending') return;
    if (err.maybeSent) {
      // Stored or not? The history will tell once we are back.
      local.status = 'unknown';
      updateLocal(local);
    } else if (err.message === 'not connected') {
      transmit(local);
    } else {
      fail(local, err.message || 'refused');
    }
  });
}

/** Back online: send what waited, check what was in flight. */
function resumeLocals() {
  for (const conv of S.convs.values()) {
    const unknown = conv.locals.filter((l) => l.status === 'unknown');
    for (const l of conv.locals) if (l.queued) transmit(l);
    if (unknown.length) verifyUnknown(conv, unknown);
  }
}

async function verifyUnknown(conv, unknown) {
  try {
    const r = await S.api.history(S.me, conv.peer, REFRESH_PAGE);
    for (const e of r.entities || []) ingest(e, 'history');
  } catch (e) {
    /* not known: let the user decide */
  }
  for (const l of unknown) {
    if (conv.locals.includes(l) && l.status === 'unknown') fail(l, 'the connection dropped before the server answered');
  }
  if (S.open === conv.peer) renderPane({ follow: true });
}

function confirmLocal(conv, local, id, record, timestamp) {
  clearTimeout(local.timer);
  conv.locals = conv.locals.filter((l) => l !== local);
  if (conv.lastLocal === local) conv.lastLocal = null;
  local.status = 'sent';
  const node = conv.nodes.get(local.key);
  conv.nodes.delete(local.key);
  if (conv.msgs.has(id)) {
    if (node) node.remove();
  } else {
    const rec = record || {
      msg_id: id,
      timestamp: timestamp || Date.now(),
      direction: 'outgoing',
      from: S.me,
      to: local.peer,
      chat_type: 'chat',
      payload: {
        bodies: [{ ...local.body, type: local.type }],
        ext: { chatd_web_id: local.clientId },
        from: S.me,
        to: local.peer,
      },
    };
    const n = bigId(id);
    const item = { id, n, record: rec, mine: true };
    conv.msgs.set(id, item);
    insertOrdered(conv, id, n);
    if (!conv.last || n > conv.last.n) conv.last = { n, record: rec };
    if (node) {
      conv.nodes.set(`m${id}`, node);
      node.dataset.msgId = id;
      updateMeta(node, item);
    }
  }
  if (S.open === conv.peer) renderPane({ follow: true });
  renderList();
}

function sendText(peer, text) {
  const local = newLocal(peer, 'txt', { msg: text });
  transmit(local);
}

function imageSize(src) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => resolve(null);
    img.src = src;
  });
}

function sendFile(peer, file) {
  const image = IMAGE_TYPES.test(file.type);
  const local = newLocal(peer, image ? 'img' : 'file', null, {
    file,
    blobUrl: image ? URL.createObjectURL(file) : null,
    status: 'uploading',
  });
  upload(local);
}

async function upload(local) {
  local.status = 'uploading';
  local.error = '';
  updateLocal(local);
  try {
    const size = local.blobUrl ? await imageSize(local.blobUrl) : null;
    const { url, secret } = await S.api.upload(local.file);
    const filename = local.file.name || (local.type === 'img' ? 'image' : 'file');
    if (local.blobUrl) S.media.put(url, secret, local.blobUrl);
    local.body = local.type === 'img'
      ? { url, filename, secret, ...(size ? { size } : {}) }
      : { url, filename, secret, file_length: local.file.size };
  } catch (e) {
    fail(local, `upload failed: ${e.message}`);
    return;
  }
  transmit(local);
}

// ---------------------------------------------------------------- rendering

const ctx = {
  get api() { return S.api; },
  get media() { return S.media; },
  openImage,
};

function statusText(local) {
  switch (local.status) {
    case 'uploading': return 'uploading…';
    case 'sending': return local.queued ? 'waiting for the connection…' : 'sending…';
    case 'unknown': return 'checking…';
    case 'failed': return `not sent: ${local.error}`;
    default: return '';
  }
}

/** The time and, for our messages, the delivery state. */
function updateMeta(node, item) {
  const meta = node.querySelector('.meta');
  const parts = [];
  if (item.local) {
    const l = item.local;
    node.dataset.status = l.status;
    parts.push(h('span', { class: 'state', text: statusText(l) }));
    if (l.status === 'failed') {
      const retry = h('button', { class: 'link retry', text: 'Retry', attrs: { type: 'button' } });
      retry.addEventListener('click', () => transmit(l));
      parts.push(retry);
    }
  } else {
    const t = timeLabel(item.record.timestamp);
    parts.push(h('time', { text: t.short, title: t.long }));
    if (item.mine) {
      node.dataset.status = 'sent';
      parts.push(h('span', { class: 'state', text: '✓', title: `sent (msg_id ${item.id})` }));
    }
  }
  meta.replaceChildren(...parts);
}

function localPreview(local) {
  if (local.type === 'img' && local.blobUrl) {
    const img = h('img', { class: 'thumb', attrs: { alt: local.file ? local.file.name : 'image' } });
    img.src = local.blobUrl;
    return h('figure', { class: 'msg-img' }, img);
  }
  if (local.file) {
    return h('div', { class: 'msg-file' }, h('span', { class: 'file-link', text: `${local.file.name} (${bytes(local.file.size)})` }));
  }
  return h('div', { class: 'msg-text', text: '' });
}

function messageNode(item) {
  const li = h('li', { class: `msg ${item.mine ? 'mine' : 'theirs'}` });
  let body;
  if (item.local) {
    const l = item.local;
    body = l.body ? renderBody({ payload: { bodies: [{ ...l.body, type: l.type }] } }, ctx) : localPreview(l);
    li.dataset.local = l.key;
  } else {
    li.dataset.msgId = item.id;
    const b = bodyOf(item.record);
    li.dataset.type = b.type || '';
    body = renderBody(item.record, ctx);
  }
  li.append(h('div', { class: 'bubble' }, body, h('div', { class: 'meta' })));
  updateMeta(li, item);
  return li;
}

/**
 * Brings the message list of the open conversation in line with the
 * model, reusing nodes (images are not downloaded again).
 */
function renderPane({ follow = false, force = false } = {}) {
  const conv = S.open && S.convs.get(S.open);
  const list = $('message-list');
  if (!conv) {
    list.replaceChildren();
    return;
  }
  const pane = $('messages');
  const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 60;
  const wanted = [];
  for (const id of conv.order) {
    const key = `m${id}`;
    let node = conv.nodes.get(key);
    if (!node) {
      node = messageNode(conv.msgs.get(id));
      conv.nodes.set(key, node);
    }
    wanted.push(node);
  }
  for (const l of conv.locals) {
    let node = conv.nodes.get(l.key);
    if (!node) {
      node = messageNode({ mine: true, local: l });
      conv.nodes.set(l.key, node);
    }
    wanted.push(node);
  }
  for (let i = 0; i < wanted.length; i += 1) {
    if (list.children[i] !== wanted[i]) list.insertBefore(wanted[i], list.children[i] || null);
  }
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  if (force || (follow && atBottom)) pane.scrollTop = pane.scrollHeight;
}

function renderList() {
  const ul = $('conversations');
  const convs = [...S.convs.values()].sort((a, b) => sortKey(b) - sortKey(a));
  const items = convs.map((conv) => {
    const li = h('li', { class: `conv${S.open === conv.peer ? ' active' : ''}`, attrs: { 'data-peer': conv.peer } });
    let preview = '';
    const lastRec = conv.last && conv.last.record;
    if (conv.lastLocal && (!lastRec || conv.lastLocal.createdAt > Number(lastRec.timestamp || 0))) {
      preview = `You: ${conv.lastLocal.body ? describe({ payload: { bodies: [{ ...conv.lastLocal.body, type: conv.lastLocal.type }] } }) : conv.lastLocal.file ? `File: ${conv.lastLocal.file.name}` : ''}`;
    } else if (lastRec) {
      preview = `${lc(lastRec.from) === S.me ? 'You: ' : ''}${describe(lastRec)}`;
    }
    const btn = h('button', { class: 'conv-button', attrs: { type: 'button' } },
      h('span', { class: 'conv-peer', text: conv.peer }),
      conv.unread > 0 ? h('span', { class: 'unread', text: conv.unread > 99 ? '99+' : conv.unread, title: `${conv.unread} unread` }) : null,
      h('span', { class: 'conv-last', text: preview.slice(0, 120) }));
    btn.addEventListener('click', () => openConv(conv.peer));
    li.append(btn);
    return li;
  });
  ul.replaceChildren(...items);
  const total = convs.reduce((n, c) => n + c.unread, 0);
  document.title = total ? `(${total}) chatd` : 'chatd';
}

function sortKey(conv) {
  let t = conv.created;
  if (conv.last) t = Math.max(t, Number(conv.last.record.timestamp) || 0);
  if (conv.lastLocal) t = Math.max(t, conv.lastLocal.createdAt);
  return t;
}

function openConv(peer) {
  const conv = convFor(peer);
  S.open = conv.peer;
  $('peer-name').textContent = conv.peer;
  $('composer').hidden = false;
  $('message-list').replaceChildren();
  setHistoryStatus(conv, historyStatusText(conv));
  renderPane({ force: true });
  renderList();
  markRead(conv);
  if (conv.cursor === undefined) loadOlder(conv);
  else if (conv.stale) refreshNewest(conv);
  else fillPane(conv);
  $('composer-text').focus();
}

async function openImage(url, secret) {
  const box = $('lightbox');
  const img = $('lightbox-img');
  img.removeAttribute('src');
  box.hidden = false;
  try {
    img.src = await S.media.get(url, secret, false);
  } catch (e) {
    img.alt = `not available: ${e.message}`;
  }
}

function showBanner(text, action, onAction) {
  $('banner').hidden = false;
  $('banner-text').textContent = text;
  const b = $('banner-action');
  b.hidden = !action;
  b.textContent = action || '';
  b.onclick = () => { hideBanner(); onAction(); };
}

function hideBanner() {
  $('banner').hidden = true;
}

// ---------------------------------------------------------------- session

function showSignIn(message) {
  $('chat').hidden = true;
  $('signin').hidden = false;
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('signin-submit').disabled = false;
  $('token-submit').disabled = false;
  $('signin-user').focus();
}

function showChat() {
  $('signin').hidden = true;
  $('chat').hidden = false;
  $('me-name').textContent = S.me;
  renderList();
}

function startSession(token) {
  if (S.conn) S.conn.destroy();
  store.set('token', token);
  S.api.setToken(token);
  S.everReady = false;
  S.conn = new Connection({
    url: S.api.wsUrl(), token, device: S.device, onReady, onMessage, onState, onStopped,
  });
  S.conn.start();
}

function signOut(message) {
  if (S.conn) S.conn.destroy();
  S.conn = null;
  store.del('token');
  store.del('user');
  S.api.setToken(null);
  S.me = null;
  S.open = null;
  S.everReady = false;
  S.convs.clear();
  S.media.clear();
  $('conversations').replaceChildren();
  $('message-list').replaceChildren();
  $('composer').hidden = true;
  $('peer-name').textContent = 'Pick a conversation';
  hideBanner();
  showSignIn(message);
}

async function signInWithPassword(username, password) {
  $('signin-submit').disabled = true;
  $('signin-error').hidden = true;
  try {
    const r = await S.api.passwordToken(username, password);
    if (!r || typeof r.access_token !== 'string') throw new ApiError(500, 'bad_answer', 'no token in the answer');
    startSession(r.access_token);
  } catch (e) {
    const wrong = e.error === 'invalid_grant';
    showSignIn(wrong ? 'Wrong username or password.' : `Sign-in failed: ${e.message}`);
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const user = $('signin-user').value.trim();
    const password = $('signin-password').value;
    $('signin-password').value = '';
    if (user && password) signInWithPassword(user, password);
  });
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('token-input').value.trim();
    $('token-input').value = '';
    if (!token) return;
    $('token-submit').disabled = true;
    $('signin-error').hidden = true;
    startSession(token);
  });
  $('signout').addEventListener('click', () => signOut(''));
  $('new-chat').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const peer = $('new-chat-peer').value.trim();
    if (!USERNAME.test(peer)) {
      $('new-chat-peer').setCustomValidity('A username: letters, digits, _ . - (at most 64)');
      $('new-chat-peer').reportValidity();
      return;
    }
    $('new-chat-peer').value = '';
    openConv(peer);
  });
  $('new-chat-peer').addEventListener('input', () => $('new-chat-peer').setCustomValidity(''));
  const text = $('composer-text');
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const msg = text.value;
    if (!S.open || !msg.trim()) return;
    text.value = '';
    sendText(S.open, msg);
  });
  text.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $('composer').requestSubmit();
    }
  });
  text.addEventListener('paste', (ev) => {
    const files = [...(ev.clipboardData ? ev.clipboardData.files : [])];
    if (files.length && S.open) {
      ev.preventDefault();
      for (const f of files) sendFile(S.open, f);
    }
  });
  $('attach').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', (ev) => {
    const files = [...ev.target.files];
    ev.target.value = '';
    if (S.open) for (const f of files) sendFile(S.open, f);
  });
  const pane = $('pane');
  pane.addEventListener('dragover', (ev) => { if (S.open) ev.preventDefault(); });
  pane.addEventListener('drop', (ev) => {
    ev.preventDefault();
    if (S.open) for (const f of ev.dataTransfer.files) sendFile(S.open, f);
  });
  $('messages').addEventListener('scroll', () => {
    const conv = S.open && S.convs.get(S.open);
    if (conv && $('messages').scrollTop < 120) loadOlder(conv);
  });
  $('lightbox').addEventListener('click', () => { $('lightbox').hidden = true; });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') $('lightbox').hidden = true;
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || !S.me) return;
    const conv = S.open && S.convs.get(S.open);
    if (conv) markRead(conv);
    // Another tab may have read conversations meanwhile.
    if (S.conn && S.conn.ready) loadChannels();
  });
}

async function main() {
  wire();
  try {
    const res = await fetch('/web/config.json', { cache: 'no-store' });
    S.config = await res.json();
  } catch {
    showSignIn('This page cannot read its configuration (/web/config.json).');
    return;
  }
  $('app-name').textContent = `${S.config.org_name}/${S.config.app_name}`;
  S.api = new Api(S.config);
  S.api.onUnauthorized = () => signOut('Your session ended: sign in again.');
  S.media = new MediaCache(S.api);
  const token = store.get('token');
  if (token) {
    $('signin').hidden = false;
    $('signin-error').hidden = false;
    $('signin-error').textContent = 'Connecting…';
    startSession(token);
  } else {
    showSignIn('');
  }
}

main();
