// Starts the real chatd binary (target/debug/chatd) on a free port with a
// fresh data directory, as crates/chatd/tests/common/mod.rs does, and talks
// to its REST API with the app's credentials.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..', '..');
export const CHATD = process.env.CHATD_BIN || join(REPO, 'target', 'debug', 'chatd');

export const APP_ID = '0123456789abcdef0123456789abcdef';
export const APP_CERT = 'fedcba9876543210fedcba9876543210';
export const ORG = 'acme';
export const APP = 'chat';
export const CLIENT_ID = 'YXA6test-client-id';
export const CLIENT_SECRET = 'YXA6test-client-secret';

export class Chatd {
  constructor(extraEnv = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'chatd-web-'));
    this.port = 0;
    this.base = '';
    this.child = null;
    this.stderr = [];
    this.env = {
      PATH: process.env.PATH || '/usr/bin:/bin',
      CHATD_DATA_DIR: this.dir,
      CHATD_LOG: 'warn',
      CHATD_APP_ID: APP_ID,
      CHATD_APP_CERTIFICATE: APP_CERT,
      CHATD_ORG_NAME: ORG,
      CHATD_APP_NAME: APP,
      CHATD_CLIENT_ID: CLIENT_ID,
      CHATD_CLIENT_SECRET: CLIENT_SECRET,
      CHATD_RATE_CALLS_PER_SEC: '0',
      CHATD_RATE_MSGS_PER_MIN: '0',
      CHATD_PUSH_PROVIDER: 'none',
      ...extraEnv,
    };
    this.adminToken = null;
  }

  /** Starts (again) on the same port and data directory. */
  async start() {
    const env = { ...this.env, CHATD_LISTEN: `127.0.0.1:${this.port}` };
    const child = spawn(CHATD, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr.on('data', (d) => {
      this.stderr.push(d.toString());
      if (this.stderr.length > 200) this.stderr.shift();
    });
    const lines = createInterface({ input: child.stdout });
    const base = await new Promise((resolveBase, reject) => {
      const timer = setTimeout(() => reject(new Error('chatd did not report its address in 30 s')), 30000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`chatd exited (${code}) before listening:\n${this.stderr.join('')}`));
      });
      lines.on('line', (line) => {
        const m = line.match(/^chatd listening on (http:\/\/\S+)/);
        if (m) {
          clearTimeout(timer);
          resolveBase(m[1]);
        }
      });
    });
    // Keep reading stdout so that the server never blocks on it.
    lines.on('line', () => {});
    this.base = base;
    this.port = Number(new URL(base).port);
    return this;
  }

  /** SIGTERM, and wait for the process to exit. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    this.child = null;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timeout = setTimeout(() => child.kill('SIGKILL'), 20000);
    await exited;
    clearTimeout(timeout);
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  /** Stops and removes the data directory. */
  async dispose() {
    if (this.child) {
      const child = this.child;
      this.child = null;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  url(path) {
    return `${this.base}/${ORG}/${APP}${path}`;
  }

  async rest(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const auth = token === undefined ? await this.appToken() : token;
    if (auth) headers.Authorization = `Bearer ${auth}`;
    const res = await fetch(this.url(path), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return json;
  }

  async appToken() {
    if (!this.adminToken) {
      const r = await this.rest('POST', '/token', {
        grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: CLIENT_SECRET,
      }, null);
      this.adminToken = r.access_token;
    }
    return this.adminToken;
  }

  /** Registers users `[{username, password}]`. */
  register(users) {
    return this.rest('POST', '/users', users);
  }

  /** Sends one message through REST; answers the recipient → msg_id map. */
  async send(from, to, type, body, extra = {}) {
    const r = await this.rest('POST', '/messages/users', {
      from, to: Array.isArray(to) ? to : [to], type, body, ...extra,
    });
    return r.data;
  }

  /** Every message of `user` with `peer`, oldest first, read through REST. */
  async history(user, peer) {
    const out = [];
    let cursor;
    for (;;) {
      const q = new URLSearchParams({ peer, limit: '100' });
      if (cursor) q.set('cursor', cursor);
      const r = await this.rest('GET', `/users/${user}/history?${q}`);
      out.push(...r.entities);
      if (!r.cursor) break;
      cursor = r.cursor;
    }
    return out.reverse();
  }
}
