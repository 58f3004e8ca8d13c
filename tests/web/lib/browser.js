// Debian's Chromium driven by playwright-core, and the page's actions as a
// person does them (typing, clicking), plus what the tests read back.

import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/**
 * Launches headless Chromium. Playwright gives every launch a fresh,
 * empty profile directory of its own (it refuses `--user-data-dir` in
 * `args`) and removes it on close.
 */
export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** What every page did: URLs asked for, console lines, errors, dialogs. */
export class Watch {
  constructor() {
    this.urls = [];
    this.console = [];
    this.pageErrors = [];
    this.dialogs = [];
    this.tokens = new Set();
    this.pages = [];
    /** Frames the pages sent on their WebSockets (kept here, never printed). */
    this.frames = [];
  }

  /** The JSON frames `page` sent. */
  framesSent(page) {
    return this.frames.filter((f) => f.page === page).map((f) => {
      try { return JSON.parse(f.payload); } catch { return {}; }
    });
  }

  page(page) {
    this.pages.push(page);
    page.on('request', (r) => this.urls.push(r.url()));
    page.on('websocket', (ws) => {
      this.urls.push(ws.url());
      ws.on('framesent', (f) => this.frames.push({ page, payload: f.payload }));
    });
    page.on('framenavigated', (f) => this.urls.push(f.url()));
    page.on('console', (m) => this.console.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => this.pageErrors.push(String(e && e.stack ? e.stack : e)));
    page.on('dialog', (d) => {
      this.dialogs.push(`${d.type()}: ${d.message()}`);
      d.dismiss().catch(() => {});
    });
    return page;
  }

  /** Console lines that are errors, CSP violations among them. */
  problems() {
    return [
      ...this.pageErrors,
      ...this.console.filter((l) => /^error:|Content Security Policy|Trusted Type/i.test(l)
        // Expected while the server is down in the restart test.
        && !/ERR_CONNECTION_REFUSED|WebSocket connection to .* failed|Failed to load resource/.test(l)),
    ];
  }
}

export async function newTab(context, watch) {
  const page = watch.page(await context.newPage());
  page.setDefaultTimeout(15000);
  return page;
}

export async function newUser(browser, watch) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 }, acceptDownloads: true });
  const page = await newTab(context, watch);
  return { context, page };
}

export async function signIn(page, base, user, password, watch) {
  await page.goto(`${base}/`);
  await page.waitForSelector('#signin-form');
  await page.fill('#signin-user', user);
  await page.fill('#signin-password', password);
  await page.click('#signin-submit');
  await page.waitForSelector('#chat:not([hidden])');
  await waitOnline(page);
  const token = await page.evaluate(() => sessionStorage.getItem('chatd.token'));
  if (!token) throw new Error('no token kept in sessionStorage');
  if (watch) watch.tokens.add(token);
  return token;
}

export function waitOnline(page, timeout = 15000) {
  return page.waitForSelector('#conn-status[data-state="open"]', { timeout });
}

export async function openChat(page, peer) {
  await page.fill('#new-chat-peer', peer);
  await page.press('#new-chat-peer', 'Enter');
  await page.waitForFunction((p) => document.getElementById('peer-name').textContent === p, peer);
}

export async function sendText(page, text) {
  await page.fill('#composer-text', text);
  await page.press('#composer-text', 'Enter');
}

/** The open conversation's messages, in the order shown. */
export function shown(page) {
  return page.$$eval('#message-list li.msg', (lis) => lis.map((li) => ({
    id: li.dataset.msgId || null,
    status: li.dataset.status || null,
    type: li.dataset.type || null,
    mine: li.classList.contains('mine'),
    text: li.querySelector('.msg-text') ? li.querySelector('.msg-text').textContent : null,
    content: li.querySelector('.bubble').textContent,
  })));
}

/** Waits until a text message with exactly `text` is shown; returns it. */
export async function waitForText(page, text, { timeout = 15000, status } = {}) {
  await page.waitForFunction(([t, s]) => [...document.querySelectorAll('#message-list li.msg')].some((li) => {
    const el = li.querySelector('.msg-text');
    return el && el.textContent === t && li.dataset.msgId && (!s || li.dataset.status === s);
  }), [text, status], { timeout });
  return (await shown(page)).find((m) => m.text === text);
}

/** The conversation list: [{peer, unread, last}]. */
export function conversations(page) {
  return page.$$eval('#conversations li.conv', (lis) => lis.map((li) => ({
    peer: li.dataset.peer,
    unread: li.querySelector('.unread') ? li.querySelector('.unread').textContent : '',
    last: li.querySelector('.conv-last').textContent,
  })));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
