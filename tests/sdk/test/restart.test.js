'use strict';
// The server restarts under connected SDKs: they reconnect on their own and
// nothing is lost (nor shown twice).

const test = require('node:test');
const assert = require('node:assert/strict');
const { Chatd } = require('../lib/server');
const { Client } = require('../lib/sdk');

const server = new Chatd();
const clients = [];

test.before(async () => {
  await server.start();
  await server.users('alice', 'bob', 'carol');
});
test.after(async () => {
  for (const c of clients) await c.close();
  await server.close();
});

function once(c, id) {
  return c.seen('onTextMessage', (m) => m.id === id).length;
}

async function reconnected(c, times) {
  for (let i = 0; i < 300 && c.seen('onConnected').length < times; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(c.seen('onConnected').length, times, 'the SDK logged in again');
}

test('graceful restart: the SDK reconnects, gets what was sent meanwhile, and sends again', async () => {
  const bob = new Client(server, { user: 'bob' });
  clients.push(bob);
  await bob.open();
  const before = await server.send('alice', 'bob', 'txt', { msg: 'before' });
  await bob.waitFor('onTextMessage', (m) => m.id === before);

  await server.stop();
  await server.start();
  // Sent while the SDK is still away (it retries every 1 to 2 s).
  const meanwhile = await server.send('alice', 'bob', 'txt', { msg: 'meanwhile' });
  await bob.waitFor('onTextMessage', (m) => m.id === meanwhile, 20000);
  await reconnected(bob, 2);
  const after = await server.send('alice', 'bob', 'txt', { msg: 'after' });
  await bob.waitFor('onTextMessage', (m) => m.id === after);
  for (const id of [before, meanwhile, after]) assert.equal(once(bob, id), 1);

  // Sending works on the new connection.
  const sent = await bob.send({ to: 'alice', type: 'txt', msg: 'back' });
  const hist = await server.request('GET', `/users/alice/history?peer=bob&limit=1`, undefined, await server.admin());
  assert.equal(hist.body.entities[0].msg_id, sent.serverMsgId);
  await bob.close();
});

test('crash (SIGKILL) mid-session: messages stored before the crash are delivered once', async () => {
  const carol = new Client(server, { user: 'carol', sdk: 'agora-chat' });
  clients.push(carol);
  await carol.open();
  const first = await server.send('alice', 'carol', 'txt', { msg: 'first' });
  await carol.waitFor('onTextMessage', (m) => m.id === first);
  // Acknowledged and stored, then the process dies at once: the SDK may or
  // may not have had them.
  const burst = [];
  for (let i = 0; i < 5; i++) burst.push(await server.send('alice', 'carol', 'txt', { msg: `burst ${i}` }));
  await server.kill();
  await server.start();
  for (const id of burst) await carol.waitFor('onTextMessage', (m) => m.id === id, 20000);
  const last = await server.send('alice', 'carol', 'txt', { msg: 'last' });
  await carol.waitFor('onTextMessage', (m) => m.id === last);
  for (const id of [first, ...burst, last]) assert.equal(once(carol, id), 1);
  assert.equal(carol.messages().length, 7);
  await carol.close();
});
