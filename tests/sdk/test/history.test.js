'use strict';
// History (POST …/users/{me}/messageroaming) and the conversation list
// (GET …/sdk/user/{me}/user_channels/list), through the SDK's own calls.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Chatd } = require('../lib/server');
const { Client } = require('../lib/sdk');

const server = new Chatd({ CHATD_REST_MESSAGES_IN_CONVERSATIONS: 'true' });
const clients = [];
/** Ids of the conversation alice–bob, oldest first. */
const ids = [];

test.before(async () => {
  await server.start();
  await server.users('alice', 'bob', 'carol');
  const bob = new Client(server, { user: 'bob' });
  clients.push(bob);
  await bob.open();
  // 25 messages both ways: REST from alice, SDK from bob, of several types.
  for (let i = 0; i < 25; i++) {
    if (i % 2 === 0) {
      const type = i % 3 === 0 ? 'img' : 'txt';
      const body = type === 'img'
        ? { url: `${server.api}/acme/chat/chatfiles/h${i}`, filename: `h${i}.png`, secret: 's', size: { width: 1, height: 2 } }
        : { msg: `m${i}` };
      ids.push(await server.send('alice', 'bob', type, body, { ext: { i } }));
    } else {
      const r = await bob.send({ to: 'alice', type: 'txt', msg: `m${i}`, ext: { i } });
      ids.push(r.serverMsgId);
    }
  }
  await server.send('carol', 'bob', 'txt', { msg: 'from carol' });
  await bob.waitFor('onTextMessage', (m) => m.from === 'carol');
});
test.after(async () => {
  for (const c of clients) await c.close();
  await server.close();
});

for (const sdk of ['easemob-websdk', 'agora-chat']) {
  test(`${sdk}: getHistoryMessages pages back through the conversation`, async () => {
    const bob = new Client(server, { sdk, user: 'bob' });
    clients.push(bob);
    await bob.open();
    const seen = [];
    let cursor = -1;
    const sizes = [];
    for (;;) {
      const page = await bob.conn.getHistoryMessages({ targetId: 'alice', chatType: 'singleChat', pageSize: 10, cursor });
      sizes.push(page.messages.length);
      seen.push(...page.messages);
      if (page.isLast) break;
      assert.ok(page.cursor, 'a cursor while not last');
      cursor = page.cursor;
      assert.ok(sizes.length < 10, 'paging ends');
    }
    assert.deepEqual(sizes, [10, 10, 5]);
    // Newest first, every message once, both directions.
    assert.deepEqual(seen.map((m) => m.id), [...ids].reverse());
    for (const m of seen) {
      const i = ids.indexOf(m.id);
      assert.deepEqual(m.ext, { i });
      assert.equal(m.chatType, 'singleChat');
      if (i % 2 === 0) {
        assert.equal(m.from, 'alice');
        assert.equal(m.to, 'bob');
        assert.equal(m.type, i % 3 === 0 ? 'img' : 'txt');
        if (m.type === 'img') {
          assert.equal(m.width, 1);
          assert.equal(m.height, 2);
          assert.match(m.url, new RegExp(`/chatfiles/h${i}\\?em-redirect=true&share-secret=s$`));
        } else {
          assert.equal(m.msg, `m${i}`);
        }
      } else {
        assert.equal(m.from, 'bob');
        assert.equal(m.to, 'alice');
        assert.equal(m.msg, `m${i}`);
      }
    }
    await bob.close();
  });
}

test('getHistoryMessages: forward from a cursor, and filters', async () => {
  const bob = new Client(server, { user: 'bob' });
  clients.push(bob);
  await bob.open();
  const down = await bob.conn.getHistoryMessages({
    targetId: 'alice', chatType: 'singleChat', pageSize: 10, cursor: ids[4], searchDirection: 'down',
  });
  assert.deepEqual(down.messages.map((m) => m.id), ids.slice(5, 15));
  assert.equal(down.isLast, false);
  const rest = await bob.conn.getHistoryMessages({
    targetId: 'alice', chatType: 'singleChat', pageSize: 20, cursor: down.cursor, searchDirection: 'down',
  });
  assert.deepEqual(rest.messages.map((m) => m.id), ids.slice(15));
  assert.equal(rest.isLast, true);

  const imgs = await bob.conn.getHistoryMessages({
    targetId: 'alice', chatType: 'singleChat', pageSize: 50, searchOptions: { msgTypes: ['img'] },
  });
  const expected = ids.filter((_, i) => i % 2 === 0 && i % 3 === 0).reverse();
  assert.deepEqual(imgs.messages.map((m) => m.id), expected);

  const none = await bob.conn.getHistoryMessages({ targetId: 'nobody', chatType: 'singleChat' });
  assert.deepEqual(none.messages, []);
  assert.equal(none.isLast, true);
  await bob.close();
});

test('getServerConversations lists conversations with unread counts and last messages', async () => {
  const bob = new Client(server, { user: 'bob' });
  clients.push(bob);
  await bob.open();
  const r = await bob.conn.getServerConversations({ pageSize: 20 });
  const list = r.data.conversations;
  assert.deepEqual(list.map((c) => c.conversationId), ['carol', 'alice']);
  const [carol, alice] = list;
  assert.equal(carol.conversationType, 'singleChat');
  assert.equal(carol.unReadCount, 1);
  assert.equal(carol.lastMessage.msg, 'from carol');
  assert.equal(carol.lastMessage.from, 'carol');
  assert.equal(carol.lastMessage.type, 'txt');
  assert.equal(alice.lastMessage.id, ids[ids.length - 1]);
  assert.deepEqual(alice.lastMessage.ext, { i: 24 });
  // alice's REST messages to bob are unread: 13 of them.
  assert.equal(alice.unReadCount, 13);

  // Paging with the cursor.
  const p1 = await bob.conn.getServerConversations({ pageSize: 1 });
  assert.equal(p1.data.conversations.length, 1);
  assert.ok(p1.data.cursor);
  const p2 = await bob.conn.getServerConversations({ pageSize: 1, cursor: p1.data.cursor });
  assert.equal(p2.data.conversations[0].conversationId, 'alice');
  assert.equal(p2.data.cursor, '');

  // A read ack clears the conversation's unread count.
  await bob.send({ type: 'channel', to: 'carol' });
  const after = await bob.conn.getServerConversations({ pageSize: 20 });
  assert.equal(after.data.conversations.find((c) => c.conversationId === 'carol').unReadCount, 0);

  // Pinned conversations: none.
  const pinned = await bob.conn.getServerPinnedConversations({ pageSize: 20 });
  assert.deepEqual(pinned.data.conversations, []);
  await bob.close();
});
