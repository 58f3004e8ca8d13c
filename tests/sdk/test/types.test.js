'use strict';
// All eight REST message types reach the SDK through their own handlers,
// with their fields and ext, online (NOTICE + SYNC) and offline (UNREAD +
// SYNC), in both SDK packages.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Chatd } = require('../lib/server');
const { Client, HANDLER_OF } = require('../lib/sdk');

const server = new Chatd();
const clients = [];

test.before(async () => {
  await server.start();
  await server.users('alice', 'bob', 'carol', 'dave', 'erin', 'p1', 'p2', 'p3', 'many');
});
test.after(async () => {
  for (const c of clients) await c.close();
  await server.close();
});

const EXT = { a: 1, b: 'x', c: true, d: { nested: [1, 2] }, e: 1.5, em_ignore_notification: true };

/** The eight messages, and what the SDK must make of each. */
function cases() {
  const file = (name) => `${server.api}/acme/chat/chatfiles/${name}`;
  // The SDK points attachment URLs at its apiUrl and adds the share secret.
  const shared = (name, secret) => `${file(name)}?em-redirect=true&share-secret=${secret}`;
  return [
    { type: 'txt', body: { msg: 'hello 中文 👋' }, expect: { msg: 'hello 中文 👋' } },
    {
      type: 'img',
      body: { url: file('img-1'), filename: 'a.jpg', secret: 's-img', size: { width: 480, height: 720 }, file_length: 4096 },
      expect: {
        url: shared('img-1', 's-img'), secret: 's-img', width: 480, height: 720, file_length: 4096,
        thumb: `${shared('img-1', 's-img')}&thumbnail=true`,
      },
    },
    {
      type: 'audio',
      body: { url: file('aud-1'), filename: 'a.amr', length: 10, secret: 's-aud', file_length: 2048 },
      expect: { url: shared('aud-1', 's-aud'), filename: 'a.amr', length: 10, secret: 's-aud', file_length: 2048 },
    },
    {
      type: 'video',
      body: {
        url: file('vid-1'), filename: 'v.mp4', thumb: file('vid-1-thumb'), length: 7, secret: 's-vid',
        file_length: 58103, thumb_secret: 's-thumb',
      },
      expect: {
        url: shared('vid-1', 's-vid'), filename: 'v.mp4', thumb: file('vid-1-thumb'), length: 7, secret: 's-vid',
        file_length: 58103, thumb_secret: 's-thumb',
      },
    },
    {
      type: 'file',
      body: { url: file('file-1'), filename: 'f.txt', secret: 's-file', file_length: 12 },
      expect: { url: shared('file-1', 's-file'), filename: 'f.txt', secret: 's-file', file_length: 12 },
    },
    {
      type: 'loc',
      body: { lat: '39.9042', lng: '116.4074', addr: 'Beijing', buildingName: 'Tower' },
      expect: { lat: 39.9042, lng: 116.4074, addr: 'Beijing', buildingName: 'Tower' },
    },
    { type: 'cmd', body: { action: 'refresh' }, expect: { action: 'refresh' } },
    {
      type: 'custom',
      body: { customEvent: 'gift', customExts: { k: 'v', n: '1' } },
      expect: { customEvent: 'gift', customExts: { k: 'v', n: '1' } },
    },
  ];
}

async function checkArrivals(c, sent, from, to) {
  for (const { type, expect, id } of sent) {
    const m = await c.waitFor(HANDLER_OF[type], (x) => x.id === id);
    assert.equal(m.type, type);
    assert.equal(m.chatType, 'singleChat');
    assert.equal(m.from, from);
    assert.equal(m.to, to);
    assert.ok(Number(m.time) > 1.7e12, `${type}: time`);
    assert.deepEqual(m.ext, EXT, `${type}: ext`);
    for (const [k, v] of Object.entries(expect)) {
      assert.deepEqual(m[k], v, `${type}.${k}`);
    }
  }
  // Each exactly once.
  const ids = c.messages().map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, 'no message twice');
}

const users = { 'easemob-websdk': ['bob', 'carol'], 'agora-chat': ['dave', 'erin'] };

for (const sdk of ['easemob-websdk', 'agora-chat']) {
  const [online, offline] = users[sdk];

  test(`${sdk}: the eight types sent by REST arrive online`, async () => {
    const c = new Client(server, { sdk, user: online });
    clients.push(c);
    await c.open();
    const sent = [];
    for (const k of cases()) {
      sent.push({ ...k, id: await server.send('alice', online, k.type, k.body, { ext: EXT }) });
    }
    await checkArrivals(c, sent, 'alice', online);
    assert.equal(c.seen('onOfflineMessageSyncStart').length, 0, 'nothing was offline');
    await c.close();
  });

  test(`${sdk}: the eight types sent by REST arrive offline, at login`, async () => {
    const sent = [];
    for (const k of cases()) {
      sent.push({ ...k, id: await server.send('alice', offline, k.type, k.body, { ext: EXT }) });
    }
    const count = await server.request('GET', `/users/${offline}/offline_msg_count`, undefined, await server.admin());
    assert.equal(count.body.data[offline], 8);
    const c = new Client(server, { sdk, user: offline });
    clients.push(c);
    await c.open();
    await checkArrivals(c, sent, 'alice', offline);
    await c.waitFor('onOfflineMessageSyncFinish');
    assert.equal(c.seen('onOfflineMessageSyncStart').length, 1);
    // Taken messages leave the inbox once their queue key is acknowledged.
    let left;
    for (let i = 0; i < 50; i++) {
      left = await server.request('GET', `/users/${offline}/offline_msg_count`, undefined, await server.admin());
      if (left.body.data[offline] === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(left.body.data[offline], 0);
    await c.close();
  });
}

test('an offline backlog larger than the delivery window arrives whole, once, in order', async () => {
  const peers = ['p1', 'p2', 'p3'];
  const sent = {};
  await Promise.all(peers.map(async (p) => {
    sent[p] = [];
    for (let i = 0; i < 230; i++) sent[p].push(await server.send(p, 'many', 'txt', { msg: `${p} ${i}` }));
  }));
  const c = new Client(server, { user: 'many' });
  clients.push(c);
  await c.open();
  await c.waitFor('onOfflineMessageSyncFinish', () => true, 30000);
  for (let i = 0; i < 200 && c.seen('onTextMessage').length < 690; i++) await new Promise((r) => setTimeout(r, 50));
  const got = c.seen('onTextMessage');
  assert.equal(got.length, 690);
  assert.equal(new Set(got.map((m) => m.id)).size, 690);
  for (const p of peers) {
    assert.deepEqual(got.filter((m) => m.from === p).map((m) => m.id), sent[p], `${p}: all, in order`);
  }
  await c.close();
  const left = await server.request('GET', '/users/many/offline_msg_count', undefined, await server.admin());
  assert.equal(left.body.data.many, 0);
});
