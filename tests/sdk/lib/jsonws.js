'use strict';
// A small client of chatd's JSON WebSocket protocol (crates/chatd-api/src/
// routes/ws.rs): `auth`, `msg` frames acknowledged with `ack`, `send`.

const { WebSocket } = require('ws');
const { ORG, APP } = require('./server');
const { withTimeout } = require('./sdk');

class JsonClient {
  constructor(ws) {
    this.ws = ws;
    this.frames = [];
    this.messages = [];
    this.waiters = [];
    this.refs = 0;
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString());
      this.frames.push(f);
      if (f.op === 'msg') {
        this.messages.push(f.message);
        ws.send(JSON.stringify({ op: 'ack', seq: f.seq }));
      }
      for (const w of [...this.waiters]) {
        if (w.pred(f)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(f);
        }
      }
    });
  }

  static async connect(server, token, device) {
    const ws = new WebSocket(`${server.base.replace(/^http/, 'ws')}/${ORG}/${APP}/ws`);
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }), 5000, 'JSON WebSocket open');
    const c = new JsonClient(ws);
    ws.send(JSON.stringify({ op: 'auth', token, device }));
    const hello = await c.frame((f) => f.op === 'auth_ok' || f.op === 'error');
    if (hello.op !== 'auth_ok') throw new Error(`JSON WebSocket auth: ${JSON.stringify(hello)}`);
    return c;
  }

  frame(pred, ms = 10000) {
    const past = this.frames.find(pred);
    if (past) return Promise.resolve(past);
    return withTimeout(new Promise((resolve) => this.waiters.push({ pred, resolve })), ms, 'a JSON WebSocket frame');
  }

  /** The first message record matching `pred`, received or to come. */
  async message(pred, ms = 10000) {
    const f = await this.frame((x) => x.op === 'msg' && pred(x.message), ms);
    return f.message;
  }

  /** Sends a message; returns the `sent` frame's `data` (recipient → id). */
  async send(to, type, body, ext) {
    const ref = `r${++this.refs}`;
    const frame = { op: 'send', ref, to: [to], type, body };
    if (ext) frame.ext = ext;
    this.ws.send(JSON.stringify(frame));
    const answer = await this.frame((f) => f.ref === ref);
    if (answer.op !== 'sent') throw new Error(`JSON send: ${JSON.stringify(answer)}`);
    return answer.data;
  }

  close() {
    this.ws.close();
  }
}

module.exports = { JsonClient };
