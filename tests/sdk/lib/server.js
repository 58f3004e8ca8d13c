'use strict';
// Starts the real chatd binary (target/debug/chatd, or $CHATD_BIN) on a free
// port with a fresh data directory and fixed app credentials, as
// crates/chatd/tests/common/mod.rs does, and talks to its REST API.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const REPO = path.resolve(__dirname, '..', '..', '..');
const CHATD = process.env.CHATD_BIN || path.join(REPO, 'target', 'debug', 'chatd');

const APP_ID = '0123456789abcdef0123456789abcdef';
const APP_CERT = 'fedcba9876543210fedcba9876543210';
const ORG = 'acme';
const APP = 'chat';
const APP_KEY = `${ORG}#${APP}`;
const CLIENT_ID = 'YXA6test-client-id';
const CLIENT_SECRET = 'YXA6test-client-secret';

class Chatd {
  constructor(extraEnv = {}) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-sdk-'));
    this.port = 0;
    this.base = '';
    this.child = null;
    this.stderr = [];
    this.env = {
      PATH: process.env.PATH || '/usr/bin:/bin',
      CHATD_DATA_DIR: this.dir,
      CHATD_LOG: process.env.CHATD_TEST_LOG || 'warn',
      CHATD_APP_ID: APP_ID,
      CHATD_APP_CERTIFICATE: APP_CERT,
      CHATD_ORG_NAME: ORG,
      CHATD_APP_NAME: APP,
      CHATD_CLIENT_ID: CLIENT_ID,
      CHATD_CLIENT_SECRET: CLIENT_SECRET,
      CHATD_RATE_CALLS_PER_SEC: '0',
      CHATD_RATE_MSGS_PER_MIN: '0',
      ...extraEnv,
    };
    this.adminToken = null;
  }

  get api() {
    return this.base;
  }

  get ws() {
    return this.base.replace(/^http/, 'ws') + '/websocket';
  }

  /** Starts, or starts again on the same port and data directory. */
  async start() {
    const env = { ...this.env, CHATD_LISTEN: `127.0.0.1:${this.port}` };
    const child = spawn(CHATD, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr.on('data', (d) => {
      this.stderr.push(d.toString());
      if (this.stderr.length > 500) this.stderr.shift();
      if (process.env.CHATD_TEST_LOG) process.stderr.write(d);
    });
    const lines = readline.createInterface({ input: child.stdout });
    const base = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('chatd did not report its address in 30 s')), 30000);
      const onExit = (code) => {
        clearTimeout(timer);
        reject(new Error(`chatd exited (${code}) before listening:\n${this.stderr.join('')}`));
      };
      child.once('exit', onExit);
      lines.on('line', (line) => {
        const m = line.match(/^chatd listening on (http:\/\/\S+)/);
        if (m) {
          clearTimeout(timer);
          child.off('exit', onExit);
          resolve(m[1]);
        }
      });
    });
    this.base = base;
    this.port = Number(new URL(base).port);
    return this;
  }

  /** SIGTERM (graceful), and wait for the process to exit. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.child = null;
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGTERM');
    });
  }

  /** SIGKILL: no shutdown code runs. */
  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.child = null;
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGKILL');
    });
  }

  async close() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs a chatd subcommand with the server's configuration. */
  cli(...args) {
    return execFileSync(CHATD, args, { env: this.env, encoding: 'utf8' }).trim();
  }

  /** An AccessToken2 user token minted locally (`chatd token user`). */
  accessToken2(user, ttl = 3600) {
    return this.cli('token', 'user', user, '--ttl', String(ttl));
  }

  async request(method, p, body, token, headers = {}) {
    const h = { Accept: 'application/json', ...headers };
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (token) h.Authorization = `Bearer ${token}`;
    const r = await fetch(`${this.base}/${ORG}/${APP}${p}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch (_) {
      json = text;
    }
    return { status: r.status, headers: r.headers, body: json };
  }

  async admin() {
    if (!this.adminToken) {
      const r = await this.request('POST', '/token', {
        grant_type: 'client_credentials',
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
      });
      if (r.status !== 200) throw new Error(`app token: ${r.status} ${JSON.stringify(r.body)}`);
      this.adminToken = r.body.access_token;
    }
    return this.adminToken;
  }

  /** Registers users with password `pw`. */
  async users(...names) {
    const r = await this.request(
      'POST',
      '/users',
      names.map((username) => ({ username, password: 'pw' })),
      await this.admin(),
    );
    if (r.status !== 200) throw new Error(`register: ${r.status} ${JSON.stringify(r.body)}`);
  }

  /** An issued user token (password grant), optionally with a lifetime. */
  async userToken(user, ttl) {
    const body = { grant_type: 'password', username: user, password: 'pw' };
    if (ttl !== undefined) body.ttl = ttl;
    const r = await this.request('POST', '/token', body);
    if (r.status !== 200) throw new Error(`user token: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.access_token;
  }

  /** `POST …/messages/users`; returns the id of `to`'s copy. */
  async send(from, to, type, body, extra = {}) {
    const r = await this.request(
      'POST',
      '/messages/users',
      { from, to: [to], type, body, ...extra },
      await this.admin(),
    );
    if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.data[to];
  }
}

module.exports = { Chatd, APP_ID, APP_CERT, ORG, APP, APP_KEY, CLIENT_ID, CLIENT_SECRET, REPO };
