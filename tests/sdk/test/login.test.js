'use strict';
// Logging in: password, issued token, AccessToken2; refused tokens; CORS.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Chatd } = require('../lib/server');
const { Client } = require('../lib/sdk');

const server = new Chatd();
const clients = [];
function client(opts) {
  const c = new Client(server, opts);
  clients.push(c);
  return c;
}

test.before(async () => {
  await server.start();
  await server.users('alice', 'bob');
});
test.after(async () => {
  for (const c of clients) await c.close();
  await server.close();
});

for (const sdk of ['easemob-websdk', 'agora-chat']) {
  test(`${sdk}: login with the password (POST …/token, then PROVISION)`, async () => {
    const c = client({ sdk, user: 'alice' });
    const r = await c.open({ pwd: 'pw' });
    assert.match(r.accessToken, /^YWMt/);
    assert.equal(r.duration, 5184000, 'expires_in of the password grant');
    await c.close();
  });
}

test('login with an issued user token (password grant)', async () => {
  const token = await server.userToken('alice');
  const c = client({ user: 'alice' });
  const r = await c.open({ accessToken: token });
  assert.equal(r.accessToken, token);
  await c.close();
});

test('login with an AccessToken2 user token minted by the app server', async () => {
  const token = server.accessToken2('bob');
  assert.match(token, /^007/);
  for (const sdk of ['easemob-websdk', 'agora-chat']) {
    const c = client({ sdk, user: 'bob' });
    await c.open({ accessToken: token });
    await c.close();
  }
});

test('a wrong password is refused by the token call', async () => {
  const c = client({ user: 'alice' });
  await assert.rejects(c.open({ pwd: 'nope' }), (e) => {
    assert.match(JSON.stringify(e), /invalid password/);
    return true;
  });
  await c.close();
});

test('a bad token is refused: open() rejects with "Auth failed"', async () => {
  const c = client({ user: 'alice' });
  await assert.rejects(c.open({ accessToken: 'bogus-token' }), (e) => {
    assert.equal(e.message, 'Auth failed');
    return true;
  });
  assert.equal(c.seen('onConnected').length, 0);
  await c.close();
});

test("another user's token is refused", async () => {
  const c = client({ user: 'alice' });
  await assert.rejects(c.open({ accessToken: await server.userToken("bob") }), { message: "Auth failed" });
  assert.equal(c.seen('onConnected').length, 0);
  await c.close();
});

test('an app token is refused', async () => {
  const c = client({ user: 'alice' });
  await assert.rejects(c.open({ accessToken: await server.admin() }));
  assert.equal(c.seen('onConnected').length, 0);
  await c.close();
});

test('an expired token is refused as expired', async () => {
  const issued = await server.userToken('alice', 1);
  const minted = server.accessToken2('alice', 1);
  await new Promise((r) => setTimeout(r, 2200));
  for (const token of [issued, minted]) {
    const c = client({ user: 'alice' });
    await assert.rejects(c.open({ accessToken: token }), (e) => {
      assert.match(e.message, /token expired/i);
      return true;
    });
    assert.equal(c.seen('onConnected').length, 0);
    await c.close();
  }
});

test('browsers: the CORS preflight of the SDK calls is answered', async () => {
  for (const [method, p, headers] of [
    ['POST', '/acme/chat/token', 'content-type'],
    ['POST', '/acme/chat/users/alice/messageroaming', 'authorization,content-type'],
    ['GET', '/acme/chat/sdk/user/alice/user_channels/list', 'authorization,content-type'],
  ]) {
    const r = await fetch(server.api + p, {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://app.example',
        'Access-Control-Request-Method': method,
        'Access-Control-Request-Headers': headers,
      },
    });
    assert.equal(r.status, 200, p);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    assert.match(r.headers.get('access-control-allow-methods'), new RegExp(method));
    for (const h of headers.split(',')) {
      assert.match(r.headers.get('access-control-allow-headers').toLowerCase(), new RegExp(h));
    }
  }
  // And the answers themselves carry the header.
  const r = await fetch(`${server.api}/acme/chat/token`, {
    method: 'POST',
    headers: { Origin: 'http://app.example', 'Content-Type': 'application/json' },
    body: JSON.stringify({ grant_type: 'password', username: 'alice', password: 'pw' }),
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
});

test('one resource, two live SDKs: the older is told it logged in elsewhere, and stays out', async () => {
  const first = client({ user: 'alice', device: 'shared' });
  await first.open();
  const second = client({ user: 'alice', device: 'shared' });
  await second.open();
  const err = await first.waitFor('onError', (e) => /another device/.test(e.message));
  assert.ok(err.type);
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(first.seen('onConnected').length, 1, 'no reconnection loop');
  const id = await server.send('bob', 'alice', 'txt', { msg: 'to the live one' });
  await second.waitFor('onTextMessage', (m) => m.id === id);
  assert.equal(first.seen('onTextMessage').length, 0);
  await second.close();
});

test('past the device limit (4), the longest-connected device is told', async () => {
  const devices = [];
  for (let i = 0; i < 5; i++) {
    const c = client({ user: 'bob' });
    await c.open();
    devices.push(c);
  }
  await devices[0].waitFor('onError', (e) => /another device/.test(e.message));
  const id = await server.send('alice', 'bob', 'txt', { msg: 'to four devices' });
  for (const c of devices.slice(1)) await c.waitFor('onTextMessage', (m) => m.id === id);
  assert.equal(devices[0].seen('onTextMessage').length, 0);
  for (const c of devices.slice(1)) await c.close();
});

test('a token near its expiry is announced (onTokenWillExpire), and renewToken extends it', async () => {
  const c = client({ user: 'alice' });
  const opened = Date.now();
  await c.open({ accessToken: server.accessToken2('alice', 5) });
  // At 4/5 of its life.
  await c.waitFor('onTokenWillExpire', () => true, 8000);
  assert.ok(Date.now() - opened >= 3000);
  const fresh = server.accessToken2('alice', 3600);
  const r = await c.conn.renewToken(fresh);
  assert.equal(r.status, true);
  assert.ok(r.expire > Date.now() + 3500 * 1000);
  // Past the first token's expiry: still connected.
  await new Promise((res) => setTimeout(res, Math.max(0, opened + 6500 - Date.now())));
  assert.equal(c.seen('onTokenExpired').length, 0);
  const id = await server.send('bob', 'alice', 'txt', { msg: 'still in' });
  await c.waitFor('onTextMessage', (m) => m.id === id);
  // renewToken checks the token is the user's own.
  await assert.rejects(c.conn.renewToken(server.accessToken2('bob', 3600)));
  await c.close();
});

test('a long-lived token is not announced (the SDK timer would fire early)', async () => {
  const c = client({ user: 'alice' });
  await c.open({ accessToken: await server.userToken('alice') });
  assert.ok(!c.conn.expirationTime);
  assert.ok(!c.conn.tokenExpiredTimer);
  await c.close();
});
