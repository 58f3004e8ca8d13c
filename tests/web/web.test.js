// End-to-end tests of the web page (docs/web.md): the real chatd binary,
// the real page, Debian's Chromium. Run by scripts/web-test.sh.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Chatd, REPO } from './lib/chatd.js';
import { sunsetPng } from './lib/png.js';
import {
  launch, Watch, newUser, newTab, signIn, waitOnline, openChat, sendText, shown, waitForText,
  conversations, sleep,
} from './lib/browser.js';

const XSS = '<img src=x onerror=alert(1)>';
const SCREENSHOT = join(REPO, 'docs', 'web-screenshot.png');

let browser;
const watch = new Watch();

before(async () => {
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
});

/** The ids of a pane's messages, checked for repeats. */
function uniqueIds(messages) {
  const ids = messages.map((m) => m.id);
  assert.ok(ids.every(Boolean), `every message has an id: ${JSON.stringify(messages)}`);
  assert.equal(new Set(ids).size, ids.length, `no message shown twice: ${JSON.stringify(messages)}`);
  return ids;
}

describe('one server, several users', () => {
  let server;
  let alice;
  let bob;

  before(async () => {
    server = await new Chatd().start();
    await server.register([
      { username: 'alice', password: 'alice-pw' },
      { username: 'bob', password: 'bob-pw' },
    ]);
    alice = await newUser(browser, watch);
    bob = await newUser(browser, watch);
    await signIn(alice.page, server.base, 'alice', 'alice-pw', watch);
    await signIn(bob.page, server.base, 'bob', 'bob-pw', watch);
  });

  after(async () => {
    if (server) await server.dispose();
  });

  test('the page is served with its policy and / leads to it', async () => {
    const res = await fetch(`${server.base}/`, { redirect: 'manual' });
    assert.equal(res.status, 307);
    assert.equal(res.headers.get('location'), '/web/');
    const page = await fetch(`${server.base}/web/`);
    const csp = page.headers.get('content-security-policy');
    assert.match(csp, /script-src 'self';/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /connect-src 'self' ws:\/\/127\.0\.0\.1:\d+ wss:\/\/127\.0\.0\.1:\d+;/);
    const config = await (await fetch(`${server.base}/web/config.json`)).json();
    assert.deepEqual(config, { org_name: 'acme', app_name: 'chat', app_id: '0123456789abcdef0123456789abcdef' });
    assert.equal(await alice.page.textContent('#me-name'), 'alice');

    // The policy is enforced: no HTML can be assigned to innerHTML.
    const probe = await browser.newPage();
    await probe.goto(`${server.base}/web/`);
    const sink = await probe.evaluate(() => {
      try {
        document.createElement('div').innerHTML = '<b>x</b>';
        return 'allowed';
      } catch (e) {
        return e.name;
      }
    });
    assert.equal(sink, 'TypeError');
    await probe.close();
  });

  test('sign-in: a wrong password is refused, a pasted token works, the list comes with unread counts', async () => {
    await server.register([{ username: 'frank', password: 'frank-pw' }]);
    const frank = await newUser(browser, watch);
    await frank.page.goto(`${server.base}/`);
    await frank.page.fill('#signin-user', 'frank');
    await frank.page.fill('#signin-password', 'not-his-password');
    await frank.page.click('#signin-submit');
    await frank.page.waitForSelector('#signin-error:not([hidden])');
    assert.equal(await frank.page.textContent('#signin-error'), 'Wrong username or password.');

    await frank.page.click('#token-form summary');
    await frank.page.fill('#token-input', 'YWMtnot-a-real-token');
    await frank.page.click('#token-submit');
    await frank.page.waitForFunction(() => /Sign-in refused/.test(document.getElementById('signin-error').textContent));

    // Two messages wait for frank while he is away.
    await openChat(alice.page, 'frank');
    await sendText(alice.page, 'Frank, are you there?');
    await sendText(alice.page, 'Call me when you are back.');
    await waitForText(alice.page, 'Call me when you are back.', { status: 'sent' });

    const { access_token: token } = await server.rest('POST', '/token',
      { grant_type: 'password', username: 'frank', password: 'frank-pw' }, null);
    watch.tokens.add(token);
    await frank.page.fill('#token-input', token);
    await frank.page.click('#token-submit');
    await frank.page.waitForSelector('#chat:not([hidden])');
    assert.equal(await frank.page.textContent('#me-name'), 'frank');
    await frank.page.waitForSelector('#conversations li.conv[data-peer="alice"] .unread');
    assert.deepEqual(await conversations(frank.page),
      [{ peer: 'alice', unread: '2', last: 'Call me when you are back.' }]);
    await frank.page.click('#conversations li.conv[data-peer="alice"] button');
    await waitForText(frank.page, 'Frank, are you there?');
    await frank.page.waitForSelector('#conversations li.conv[data-peer="alice"] .unread', { state: 'detached' });
    await frank.context.close();
  });

  test('two users chat both ways', async () => {
    await openChat(alice.page, 'bob');
    const first = 'Hi Bob! Are we still on for Friday?';
    await sendText(alice.page, first);
    const sent = await waitForText(alice.page, first, { status: 'sent' });
    assert.ok(sent.mine);

    // Bob, looking at no conversation, sees it arrive in his list, unread.
    await bob.page.waitForSelector('#conversations li.conv[data-peer="alice"] .unread');
    const conv = (await conversations(bob.page)).find((c) => c.peer === 'alice');
    assert.deepEqual(conv, { peer: 'alice', unread: '1', last: first });

    await openChat(bob.page, 'alice');
    const got = await waitForText(bob.page, first);
    assert.equal(got.id, sent.id, 'the same msg_id on both sides');
    assert.ok(!got.mine);
    await bob.page.waitForSelector('#conversations li.conv[data-peer="alice"] .unread', { state: 'detached' });

    const reply = "Yes! 7 pm at the harbour. I'll bring the photos.";
    await sendText(bob.page, reply);
    await waitForText(bob.page, reply, { status: 'sent' });
    await waitForText(alice.page, reply);

    // The server recorded the read.
    const channels = await server.rest('GET', '/users/bob/user_channels');
    const info = channels.data.channel_infos.find((c) => c.channel_id === 'alice');
    assert.equal(info.unread_num, 0);

    // Both panes show the conversation the server holds, once each.
    const history = (await server.history('alice', 'bob')).map((m) => m.msg_id);
    assert.deepEqual(uniqueIds(await shown(alice.page)), history);
    assert.deepEqual(uniqueIds(await shown(bob.page)), history);
  });

  test('an image goes across and is displayed; a file as a download', async () => {
    const png = sunsetPng(320, 200);
    await alice.page.setInputFiles('#file-input', { name: 'sunset.png', mimeType: 'image/png', buffer: png });
    await alice.page.waitForSelector('#message-list li.msg.mine[data-status="sent"] img.thumb');

    // Bob's page downloads the thumbnail and shows it.
    await bob.page.waitForSelector('#message-list li.msg[data-type="img"] img.thumb[data-state="loaded"]');
    const img = await bob.page.$eval('#message-list li.msg[data-type="img"] img.thumb', (el) => ({
      complete: el.complete, w: el.naturalWidth, h: el.naturalHeight, src: el.src,
    }));
    await bob.page.waitForFunction(() => {
      const el = document.querySelector('#message-list li.msg[data-type="img"] img.thumb');
      return el.complete && el.naturalWidth > 0;
    });
    assert.match(img.src, /^blob:/);
    const dims = await bob.page.$eval('#message-list li.msg[data-type="img"] img.thumb', (el) => [el.naturalWidth, el.naturalHeight]);
    assert.ok(dims[0] > 0 && dims[0] <= 170 && dims[1] <= 170, `a thumbnail, not the original: ${dims}`);
    // The message names the upload, with its secret, never a token.
    const [record] = (await server.history('alice', 'bob')).slice(-1);
    const body = record.payload.bodies[0];
    assert.equal(body.type, 'img');
    assert.equal(body.filename, 'sunset.png');
    assert.deepEqual(body.size, { width: 320, height: 200 });
    assert.ok(body.secret, 'restricted upload: the message carries the secret');
    const direct = await fetch(body.url);
    assert.equal(direct.status, 403, 'the file is not readable without its secret');

    // Clicking shows the original.
    await bob.page.click('#message-list li.msg[data-type="img"] img.thumb');
    await bob.page.waitForFunction(() => {
      const el = document.getElementById('lightbox-img');
      return el.complete && el.naturalWidth === 320;
    });
    await bob.page.click('#lightbox');

    const more = ['Wow, what a sunset. Where was that?', 'Last night from the pier — the sky was on fire.'];
    await sendText(bob.page, more[0]);
    await waitForText(alice.page, more[0]);
    await sendText(alice.page, more[1]);
    await waitForText(bob.page, more[1]);
    await bob.page.waitForFunction(() => {
      const el = document.querySelector('#message-list li.msg[data-type="img"] img.thumb');
      return el.complete && el.naturalWidth > 0;
    });
    if (process.env.UPDATE_SCREENSHOT === '1') {
      await bob.page.screenshot({ path: SCREENSHOT });
    }

    // A file that is no image: a download button.
    const notes = Buffer.from('Friday: harbour, 7 pm.\n');
    await alice.page.setInputFiles('#file-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: notes });
    const button = '#message-list li.msg[data-type="file"] button.file-link';
    await bob.page.waitForSelector(button);
    assert.match(await bob.page.textContent(button), /^notes\.txt \(23 B\)$/);
    const [download] = await Promise.all([bob.page.waitForEvent('download'), bob.page.click(button)]);
    assert.equal(download.suggestedFilename(), 'notes.txt');
    const chunks = [];
    for await (const c of await download.createReadStream()) chunks.push(c);
    assert.equal(Buffer.concat(chunks).toString(), notes.toString());
  });

  test('a message sent from REST to a signed-in user appears within a second', async () => {
    const text = `Your parcel is at the front desk (${Date.now()})`;
    const started = Date.now();
    await server.send('frontdesk', 'bob', 'txt', { msg: text });
    await bob.page.waitForFunction(
      (t) => [...document.querySelectorAll('#conversations li.conv .conv-last')].some((e) => e.textContent === t),
      text, { timeout: 1000 },
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `shown after ${elapsed} ms`);

    // The other kinds of message, shown readably.
    await server.send('frontdesk', 'bob', 'loc', { lat: '39.9087', lng: '116.3975', addr: 'Tiananmen Square, Beijing' });
    await server.send('frontdesk', 'bob', 'audio', {
      url: `${server.base}/acme/chat/chatfiles/00000000-0000-0000-0000-000000000000`, filename: 'note.amr', length: 7,
    });
    await server.send('frontdesk', 'bob', 'video', {
      url: 'https://files.example.com/v.mp4', filename: 'clip.mp4', length: 75, file_length: 2097152,
    });
    await server.send('frontdesk', 'bob', 'cmd', { action: 'refresh_profile' });
    await server.send('frontdesk', 'bob', 'custom', { customEvent: 'gift', customExts: { item: 'flowers', count: '3' } });
    await server.send('frontdesk', 'bob', 'file', {
      url: 'javascript:alert(1)', filename: 'evil.txt', secret: 's',
    });
    await openChat(bob.page, 'frontdesk');
    await bob.page.waitForFunction(() => document.querySelectorAll('#message-list li.msg').length >= 7);
    const all = await shown(bob.page);
    const byType = Object.fromEntries(all.map((m) => [m.type, m.content]));
    assert.match(byType.txt, /Your parcel is at the front desk/);
    assert.match(byType.loc, /Location: Tiananmen Square, Beijing \(39\.9087, 116\.3975\)/);
    assert.match(byType.audio, /Voice message · 7 s/);
    assert.match(byType.video, /Video · 1:15: clip\.mp4 \(2\.0 MB\)/);
    assert.match(byType.cmd, /Command: refresh_profile/);
    assert.match(byType.custom, /Custom event: gift/);
    assert.match(byType.custom, /itemflowers/);
    assert.match(byType.file, /evil\.txt/);
    // A javascript: URL never becomes a link.
    const hrefs = await bob.page.$$eval('#message-list a', (as) => as.map((a) => a.href));
    assert.ok(hrefs.every((h) => /^https?:/.test(h)), JSON.stringify(hrefs));
    // The video on another server is a plain link to it.
    assert.ok(hrefs.includes('https://files.example.com/v.mp4'));
  });

  test('message text that looks like HTML is shown as text', async () => {
    await openChat(alice.page, 'bob');
    await openChat(bob.page, 'alice');
    await sendText(alice.page, XSS);
    const got = await waitForText(bob.page, XSS);
    assert.equal(got.text, XSS);
    await server.send('mallory', 'bob', 'txt', { msg: XSS });
    await server.send('mallory', 'bob', 'custom', { customEvent: 'x', customExts: { [XSS]: XSS } });
    await server.send('mallory', 'bob', 'loc', { lat: 1, lng: 2, addr: XSS });
    await server.send('mallory', 'bob', 'img', {
      url: `${server.base}/acme/chat/chatfiles/00000000-0000-0000-0000-000000000000`, filename: XSS,
    });
    await openChat(bob.page, 'mallory');
    await bob.page.waitForFunction(() => document.querySelectorAll('#message-list li.msg').length >= 4);
    await sleep(300);
    for (const page of [alice.page, bob.page]) {
      const injected = await page.$$eval('img[src="x"], img[onerror], #message-list script, [onerror]', (els) => els.length);
      assert.equal(injected, 0, 'no element was made from message text');
    }
    const list = await bob.page.textContent('#conversations');
    assert.ok(list.includes(XSS), 'the preview shows the text as it is');
    assert.deepEqual(watch.dialogs, []);
  });

  test('several tabs of one user are several devices and all show messages', async () => {
    const tab2 = await newTab(bob.context, watch);
    await signIn(tab2, server.base, 'bob', 'bob-pw', watch);
    const device1 = await bob.page.evaluate(() => sessionStorage.getItem('chatd.device'));
    const device2 = await tab2.evaluate(() => sessionStorage.getItem('chatd.device'));
    assert.notEqual(device1, device2);
    const resources = await server.rest('GET', '/users/bob/resources');
    const listed = JSON.stringify(resources);
    assert.ok(listed.includes(device1) && listed.includes(device2), listed);

    await openChat(bob.page, 'alice');
    await openChat(tab2, 'alice');
    const fromAlice = 'Both of your tabs should see this.';
    await sendText(alice.page, fromAlice);
    const a = await waitForText(bob.page, fromAlice);
    const b = await waitForText(tab2, fromAlice);
    assert.equal(a.id, b.id);

    // Sent from one tab: the other tab shows it as ours, once.
    const fromTab2 = 'Sent from my second tab.';
    await sendText(tab2, fromTab2);
    const own = await waitForText(tab2, fromTab2, { status: 'sent' });
    const copy = await waitForText(bob.page, fromTab2);
    assert.equal(copy.id, own.id);
    assert.ok(copy.mine);
    await waitForText(alice.page, fromTab2);
    for (const page of [alice.page, bob.page, tab2]) uniqueIds(await shown(page));
    await tab2.close();
  });

  test('the history scrolls back through every page', async () => {
    const n = 75;
    // Sent in bob's name (from his app server): not delivered to his
    // devices, only in the history.
    for (let i = 1; i <= n; i += 1) await server.send('bob', 'archive', 'txt', { msg: `old message ${i}` });
    await openChat(bob.page, 'archive');
    await waitForText(bob.page, `old message ${n}`);
    const first = (await shown(bob.page)).length;
    assert.ok(first < n, `one page first (${first})`);
    for (let i = 0; i < 10; i += 1) {
      const done = await bob.page.textContent('#history-status');
      if (done === 'Beginning of the conversation') break;
      await bob.page.$eval('#messages', (el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
      await sleep(200);
    }
    await bob.page.waitForFunction(() => document.getElementById('history-status').textContent === 'Beginning of the conversation');
    const texts = (await shown(bob.page)).map((m) => m.text);
    assert.deepEqual(texts, Array.from({ length: n }, (_, i) => `old message ${i + 1}`));
    uniqueIds(await shown(bob.page));
    assert.ok(watch.urls.some((u) => /\/history\?peer=archive&limit=\d+&cursor=\d+$/.test(u)), 'pages asked with the cursor');
  });

  test('a refused message shows as failed, with a retry', async () => {
    await openChat(alice.page, 'bob');
    const big = 'é'.repeat(3000); // 6000 bytes: over the 5 KB limit
    const sends = () => watch.framesSent(alice.page).filter((f) => f.op === 'send' && f.body && f.body.msg === big).length;
    await sendText(alice.page, big);
    await alice.page.waitForSelector('#message-list li.msg.mine[data-status="failed"] button.retry');
    const state = await alice.page.textContent('#message-list li.msg.mine[data-status="failed"] .state');
    assert.match(state, /not sent: message is too large/);
    assert.equal(sends(), 1);
    await alice.page.click('#message-list li.msg.mine[data-status="failed"] button.retry');
    for (let i = 0; i < 50 && sends() < 2; i += 1) await sleep(100);
    assert.equal(sends(), 2, 'the retry sent it again');
    await alice.page.waitForSelector('#message-list li.msg.mine[data-status="failed"] button.retry');
    assert.equal(await alice.page.$$eval('#message-list li.msg.mine[data-status="failed"]', (els) => els.length), 1);
  });

  test('tokens never appear in URLs or in the console', async () => {
    assert.ok(watch.tokens.size >= 2);
    const pages = [alice.page, bob.page];
    for (const p of pages) watch.urls.push(p.url());
    for (const password of ['alice-pw', 'bob-pw', 'frank-pw', 'not-his-password']) {
      assert.deepEqual(watch.urls.filter((u) => u.includes(password)), [], 'a password in a URL');
    }
    for (const token of watch.tokens) {
      for (const form of [token, encodeURIComponent(token), token.slice(0, 24)]) {
        const leaks = watch.urls.filter((u) => u.includes(form));
        assert.deepEqual(leaks, [], 'a token in a URL');
        assert.deepEqual(watch.console.filter((l) => l.includes(form)), [], 'a token in the console');
      }
    }
    assert.ok(watch.urls.some((u) => /\/ws$/.test(u)), 'the WebSocket URL was seen');
    assert.ok(watch.urls.some((u) => /\/history\?/.test(u)), 'history requests were seen');
    for (const p of pages) assert.match(p.url(), /\/web\/$/);
    assert.deepEqual(watch.problems(), []);
  });
});

describe('a server restart', () => {
  let server;
  let dave;
  let erin;

  before(async () => {
    server = await new Chatd().start();
    await server.register([
      { username: 'dave', password: 'dave-pw' },
      { username: 'erin', password: 'erin-pw' },
    ]);
    dave = await newUser(browser, watch);
    erin = await newUser(browser, watch);
    await signIn(dave.page, server.base, 'dave', 'dave-pw', watch);
    await signIn(erin.page, server.base, 'erin', 'erin-pw', watch);
  });

  after(async () => {
    if (server) await server.dispose();
  });

  test('the page reconnects and shows everything, nothing lost or doubled', async () => {
    await openChat(dave.page, 'erin');
    await openChat(erin.page, 'dave');
    for (let i = 1; i <= 3; i += 1) {
      await sendText(dave.page, `before the restart ${i}`);
      await waitForText(erin.page, `before the restart ${i}`);
      await sendText(erin.page, `reply ${i}`);
      await waitForText(dave.page, `reply ${i}`);
    }

    await server.stop();
    await dave.page.waitForSelector('#conn-status[data-state="waiting"]');
    await erin.page.waitForSelector('#conn-status[data-state="waiting"]');
    // Typed while the server is down: it waits, and goes once back.
    const queued = 'typed while the server was down';
    await sendText(dave.page, queued);
    await dave.page.waitForSelector('#message-list li.msg.mine[data-status="sending"]');
    assert.match(await dave.page.textContent('#conn-status'), /offline — retrying in \d+ s/);
    // An upload cannot wait: it fails, and is retried by hand later.
    await dave.page.setInputFiles('#file-input', { name: 'harbour.png', mimeType: 'image/png', buffer: sunsetPng(120, 80) });
    await dave.page.waitForSelector('#message-list li.msg.mine[data-status="failed"] button.retry');
    await sleep(500);
    await server.start();

    await waitOnline(dave.page, 20000);
    await waitOnline(erin.page, 20000);
    await waitForText(dave.page, queued, { status: 'sent' });
    await waitForText(erin.page, queued);
    await dave.page.click('#message-list li.msg.mine[data-status="failed"] button.retry');
    await dave.page.waitForSelector('#message-list li.msg.mine[data-status="sent"] img.thumb');
    await erin.page.waitForSelector('#message-list li.msg[data-type="img"] img.thumb[data-state="loaded"]');
    await sendText(erin.page, 'after the restart');
    await waitForText(dave.page, 'after the restart');
    // From REST in erin's name, copied to her online devices too.
    await server.send('erin', 'dave', 'txt', { msg: 'from REST after the restart' }, { sync_device: true });
    await waitForText(dave.page, 'from REST after the restart');

    const history = (await server.history('dave', 'erin')).map((m) => m.msg_id);
    assert.equal(history.length, 10);
    await erin.page.waitForFunction((n) => document.querySelectorAll('#message-list li.msg').length >= n, 10);
    assert.deepEqual(uniqueIds(await shown(dave.page)), history);
    assert.deepEqual(uniqueIds(await shown(erin.page)), history);

    // A reload of the tab: same device, signed in, the same conversation.
    await erin.page.reload();
    await waitOnline(erin.page);
    await erin.page.waitForSelector('#conversations li.conv[data-peer="dave"]');
    await erin.page.click('#conversations li.conv[data-peer="dave"] button');
    await erin.page.waitForFunction((n) => document.querySelectorAll('#message-list li.msg').length >= n, 10);
    await sleep(300);
    assert.deepEqual(uniqueIds(await shown(erin.page)), history);
    assert.deepEqual(watch.problems(), []);
  });
});
