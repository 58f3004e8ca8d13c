'use strict';
// One delivery core, two client protocols: SDK ⇄ JSON WebSocket, SDK ⇄ SDK,
// receipts, read state, several devices of one user, ROUTE_ONLINE.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Chatd } = require('../lib/server');
const { Client } = require('../lib/sdk');
const { JsonClient } = require('../lib/jsonws');

const server = new Chatd();
const closers = [];

async function sdkClient(user, opts = {}) {
  const c = new Client(server, { user, ...opts });
  closers.push(() => c.close());
  await c.open();
  return c;
}

async function jsonClient(user, device) {
  const c = await JsonClient.connect(server, await server.userToken(user), device);
  closers.push(() => c.close());
  return c;
}

test.before(async () => {
  await server.start();
  await server.users('alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hank');
});
test.after(async () => {
  for (const close of closers) await close();
  await server.close();
});

const EXT = { a: 1, b: 'x', c: true, d: { z: [1, 2] }, e: 1.5 };

test('an SDK sends all eight types to a JSON WebSocket client', async () => {
  const alice = await sdkClient('alice');
  const bob = await jsonClient('bob', 'bob-json');
  const f = (n) => `${server.api}/acme/chat/chatfiles/${n}`;
  const cases = [
    [{ type: 'txt', msg: 'hi bob', ext: EXT }, { type: 'txt', msg: 'hi bob' }, EXT],
    // Without a file to upload, the Web SDK sends an image's url, size and
    // length only.
    [
      { type: 'img', url: f('i1'), file_length: 10, width: 480, height: 720 },
      { type: 'img', url: f('i1'), file_length: 10, size: { width: 480, height: 720 } },
    ],
    [
      { type: 'audio', body: { url: f('a1'), filename: 'a.amr', secret: 's2', file_length: 11, length: 5 } },
      { type: 'audio', url: f('a1'), filename: 'a.amr', secret: 's2', file_length: 11, length: 5 },
    ],
    [
      { type: 'video', body: { url: f('v1'), filename: 'v.mp4', secret: 's3', file_length: 12, length: 6 } },
      {
        type: 'video', url: f('v1'), filename: 'v.mp4', secret: 's3', file_length: 12, length: 6,
        thumb: `${f('v1')}?vframe=true`, thumb_secret: 's3',
      },
    ],
    [
      { type: 'file', body: { url: f('f1'), filename: 'f.txt', secret: 's4', file_length: 13 } },
      { type: 'file', url: f('f1'), filename: 'f.txt', secret: 's4', file_length: 13 },
    ],
    [
      { type: 'loc', lat: 39.9, lng: 116.4, addr: 'Beijing', buildingName: 'T' },
      { type: 'loc', lat: 39.9, lng: 116.4, addr: 'Beijing', buildingName: 'T' },
    ],
    [{ type: 'cmd', action: 'refresh' }, { type: 'cmd', action: 'refresh' }],
    [
      // The REST API's customExts holds strings: typed SDK values keep their text.
      { type: 'custom', customEvent: 'gift', customExts: { k: 'v', n: 2 } },
      { type: 'custom', customEvent: 'gift', customExts: { k: 'v', n: '2' } },
    ],
  ];
  for (const [options, body, ext = {}] of cases) {
    const sent = await alice.send({ to: 'bob', ...options });
    assert.match(sent.serverMsgId, /^\d{18,20}$/);
    const m = await bob.message((x) => x.msg_id === sent.serverMsgId);
    assert.equal(m.from, 'alice');
    assert.equal(m.to, 'bob');
    assert.equal(m.chat_type, 'chat');
    const got = { ...m.payload.bodies[0] };
    delete got['v2:customExts'];
    assert.deepEqual(got, body, options.type);
    assert.deepEqual(m.payload.ext, ext, `${options.type} ext`);
  }
  await alice.close();
  bob.close();
});

test('a JSON WebSocket client sends to an SDK', async () => {
  const carol = await jsonClient('carol', 'carol-json');
  const dave = await sdkClient('dave', { sdk: 'agora-chat' });
  const ids = await carol.send('dave', 'txt', { msg: 'from json' }, EXT);
  const m = await dave.waitFor('onTextMessage', (x) => x.id === ids.dave);
  assert.equal(m.msg, 'from json');
  assert.equal(m.from, 'carol');
  assert.equal(m.to, 'dave');
  assert.deepEqual(m.ext, EXT);
  const ids2 = await carol.send('dave', 'custom', { customEvent: 'e', customExts: { k: 'v' } });
  const c = await dave.waitFor('onCustomMessage', (x) => x.id === ids2.dave);
  assert.equal(c.customEvent, 'e');
  assert.deepEqual(c.customExts, { k: 'v' });
  // The SDK's automatic delivery ack is answered, and the JSON client
  // (which takes no receipts) is not disturbed.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(carol.frames.filter((f) => f.op === 'error').length, 0);
  carol.close();
  await dave.close();
});

for (const [from, to, fromSdk, toSdk] of [
  ['erin', 'frank', 'easemob-websdk', 'agora-chat'],
  ['frank', 'erin', 'agora-chat', 'easemob-websdk'],
]) {
  test(`${fromSdk} → ${toSdk}: messages, delivery and read receipts, read state`, async () => {
    const a = await sdkClient(from, { sdk: fromSdk });
    const b = await sdkClient(to, { sdk: toSdk });
    const sent = await a.send({ to, type: 'txt', msg: `hello ${to}`, ext: { k: 1 } });
    const m = await b.waitFor('onTextMessage', (x) => x.id === sent.serverMsgId);
    assert.equal(m.msg, `hello ${to}`);
    assert.equal(m.from, from);
    assert.deepEqual(m.ext, { k: 1 });
    // The receiving SDK acknowledges delivery on its own (delivery: true).
    const delivered = await a.waitFor('onDeliveredMessage', (x) => x.mid === sent.serverMsgId);
    assert.equal(delivered.from, to);
    assert.equal(delivered.to, from);

    // Unread before the read ack, cleared after.
    const unread = async () => {
      const r = await server.request('GET', `/sdk/user/${to}/user_channels/list`, undefined, await server.userToken(to));
      assert.equal(r.status, 200);
      const ch = r.body.data.channel_infos.find((c) => c.session_to === from);
      return ch ? ch.unread_num : null;
    };
    assert.equal(await unread(), 1);
    await b.send({ type: 'read', to: from, id: sent.serverMsgId });
    const read = await a.waitFor('onReadMessage', (x) => x.mid === sent.serverMsgId);
    assert.equal(read.from, to);
    assert.equal(await unread(), 0);

    // A whole-conversation read ack.
    await b.send({ type: 'channel', to: from });
    const ch = await a.waitFor('onChannelMessage', (x) => x.from === to);
    assert.equal(ch.to, from);

    // Receipts are not messages: the sender's message list holds none.
    assert.equal(a.messages().length, 0);
    await a.close();
    await b.close();
  });
}

test('two devices of one user both receive, and see what the other sends', async () => {
  const phone = await sdkClient('gina', { device: 'gina-phone' });
  const laptop = await sdkClient('gina', { sdk: 'agora-chat', device: 'gina-laptop' });
  const web = await jsonClient('gina', 'gina-web');
  const hank = await sdkClient('hank', { device: 'hank-1' });

  const id = await server.send('hank', 'gina', 'txt', { msg: 'to every device' });
  for (const d of [phone, laptop]) {
    const m = await d.waitFor('onTextMessage', (x) => x.id === id);
    assert.equal(m.msg, 'to every device');
  }
  await web.message((x) => x.msg_id === id);

  const sent = await hank.send({ to: 'gina', type: 'txt', msg: 'from hank sdk' });
  for (const d of [phone, laptop]) await d.waitFor('onTextMessage', (x) => x.id === sent.serverMsgId);

  // gina's phone sends: hank gets it, her laptop and web client get a copy,
  // the phone does not get its own message back.
  const own = await phone.send({ to: 'hank', type: 'txt', msg: 'from gina phone' });
  await hank.waitFor('onTextMessage', (x) => x.id === own.serverMsgId && x.from === 'gina');
  const copy = await laptop.waitFor('onTextMessage', (x) => x.id === own.serverMsgId);
  assert.equal(copy.from, 'gina');
  assert.equal(copy.to, 'hank');
  const jcopy = await web.message((x) => x.msg_id === own.serverMsgId);
  assert.equal(jcopy.to, 'hank');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(phone.seen('onTextMessage', (x) => x.id === own.serverMsgId).length, 0);
  // The copy is not acknowledged back to gina as a delivery.
  assert.equal(phone.seen('onDeliveredMessage', (x) => x.from === 'gina').length, 0);
  for (const c of [phone, laptop, hank]) await c.close();
  web.close();
});

test('ROUTE_ONLINE reaches only users online at send time', async () => {
  const dave = await sdkClient('dave', { device: 'dave-route' });
  const on = await server.send('alice', 'dave', 'txt', { msg: 'live' }, { routetype: 'ROUTE_ONLINE' });
  await dave.waitFor('onTextMessage', (x) => x.id === on);
  await server.send('alice', 'carol', 'txt', { msg: 'lost' }, { routetype: 'ROUTE_ONLINE' });
  const carol = await sdkClient('carol', { device: 'carol-route' });
  const after = await server.send('alice', 'carol', 'txt', { msg: 'kept' });
  await carol.waitFor('onTextMessage', (x) => x.id === after);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(carol.seen('onTextMessage', (x) => x.msg === 'lost').length, 0);
});
