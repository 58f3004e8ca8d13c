'use strict';
// An idle SDK keeps its session with its own heartbeat (UNREAD after 30 s
// without a frame from the server), answered like any UNREAD. Slow: about
// 40 s, run beside the other suites.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Chatd } = require('../lib/server');
const { Client } = require('../lib/sdk');

const server = new Chatd();

test.before(async () => {
  await server.start();
  await server.users('alice', 'bob');
});
test.after(async () => {
  await server.close();
});

test('an idle SDK sends its heartbeat, gets its answer, and stays connected', { timeout: 90000 }, async () => {
  const bob = new Client(server, { user: 'bob', heartBeatWait: 2000 });
  await bob.open();
  const opened = Date.now();
  // The first UNREAD is the login's; the heartbeat comes after 30 s idle.
  for (let i = 0; i < 90; i++) {
    const unread = bob.sentCommands().filter((f) => f.command === 'UNREAD' && f.at - opened > 25000);
    if (unread.length > 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const beats = bob.sentCommands().filter((f) => f.command === 'UNREAD' && f.at - opened > 25000);
  assert.ok(beats.length >= 1, 'the SDK sent a heartbeat');
  // Answered: still the same session, and messages still flow.
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(bob.seen('onConnected').length, 1);
  assert.equal(bob.seen('onDisconnected').length, 0);
  const id = await server.send('alice', 'bob', 'txt', { msg: 'still there' });
  await bob.waitFor('onTextMessage', (m) => m.id === id);
  await bob.close();
});
