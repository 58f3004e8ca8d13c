// chatd's REST API, as the page uses it: tokens, history, conversations and
// chat files. The token travels only in the Authorization header, never in
// a URL.

export class ApiError extends Error {
  constructor(status, error, description) {
    super(description || error || `HTTP ${status}`);
    this.status = status;
    this.error = error;
  }
}

export class Api {
  /** @param {{org_name: string, app_name: string, app_id: string}} app */
  constructor(app) {
    this.app = app;
    this.base = `/app-id/${encodeURIComponent(app.app_id)}`;
    this.token = null;
    /** Called when the server refuses the token (401). */
    this.onUnauthorized = () => {};
  }

  setToken(token) {
    this.token = token;
  }

  wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${this.base}/ws`;
  }

  async request(method, path, { json, body, headers = {}, auth = true } = {}) {
    const h = new Headers(headers);
    h.set('Accept', 'application/json');
    if (auth && this.token) h.set('Authorization', `Bearer ${this.token}`);
    if (json !== undefined) {
      h.set('Content-Type', 'application/json');
      body = JSON.stringify(json);
    }
    let res;
    try {
      res = await fetch(this.base + path, {
        method, headers: h, body, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      });
    } catch (e) {
      throw new ApiError(0, 'network', 'The server cannot be reached');
    }
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) {
      const err = new ApiError(res.status, data && data.error, data && data.error_description);
      if (res.status === 401 && auth) this.onUnauthorized(err);
      throw err;
    }
    return data;
  }

  /** The `password` grant: `{access_token, user: {username}}`. */
  passwordToken(username, password) {
    return this.request('POST', '/token', {
      json: { grant_type: 'password', username, password }, auth: false,
    });
  }

  /** One page of the conversation with `peer`, newest first. */
  history(me, peer, limit, cursor) {
    const q = new URLSearchParams({ peer, limit: String(limit) });
    if (cursor) q.set('cursor', cursor);
    return this.request('GET', `/users/${encodeURIComponent(me)}/history?${q}`);
  }

  /** The user's conversations, most recent first. */
  async channels(me) {
    const r = await this.request('GET', `/users/${encodeURIComponent(me)}/user_channels`);
    return (r && r.data && r.data.channel_infos) || [];
  }

  /**
   * Uploads a file; restricted, so that downloading it needs the secret
   * sent with the message. Answers `{url, secret}`.
   */
  async upload(file) {
    const form = new FormData();
    form.append('file', file, file.name || 'file');
    const r = await this.request('POST', '/chatfiles', {
      body: form, headers: { 'restrict-access': 'true' },
    });
    const entity = r && r.entities && r.entities[0];
    if (!entity || !entity.uuid) throw new ApiError(500, 'bad_answer', 'The upload answer has no file');
    // `uri` names the server as it knows itself (its public URL).
    const base = typeof r.uri === 'string' && r.uri ? r.uri : `${location.origin}/${this.app.org_name}/${this.app.app_name}/chatfiles`;
    return { url: `${base}/${entity.uuid}`, secret: entity['share-secret'] || '' };
  }

  /**
   * The same-origin path of a chat file URL of this app, or null for any
   * other URL (another server's files cannot be fetched: the page's
   * policy allows connections to this origin only).
   */
  localFilePath(url) {
    let u;
    try { u = new URL(url, location.href); } catch { return null; }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    const m = u.pathname.match(/^\/(?:app-id\/([^/]+)|([^/]+)\/([^/]+))\/chatfiles\/([0-9A-Fa-f-]{32,36})$/);
    if (!m) return null;
    const lc = (s) => decodeURIComponent(s).toLowerCase();
    const ours = m[1] !== undefined
      ? lc(m[1]) === this.app.app_id.toLowerCase()
      : lc(m[2]) === this.app.org_name.toLowerCase() && lc(m[3]) === this.app.app_name.toLowerCase();
    // The same app on another host name (public_url vs. how this browser
    // reaches the server) is the same file: fetch it from here.
    if (!ours && u.origin !== location.origin) return null;
    return u.pathname;
  }

  /** Downloads a chat file (or its thumbnail) as a Blob. */
  async download(url, { secret, thumbnail = false } = {}) {
    const path = this.localFilePath(url);
    if (!path) throw new ApiError(0, 'foreign_url', 'This file is on another server');
    const h = new Headers();
    if (secret) h.set('share-secret', secret);
    // The thumbnail is asked for in the query, not only with the
    // `thumbnail` header: the server's answers carry no `Vary`, so the
    // browser's cache would otherwise serve one variant for the other.
    if (thumbnail) h.set('thumbnail', 'true');
    const target = thumbnail ? `${path}?thumbnail=true` : path;
    let res;
    try {
      res = await fetch(target, { headers: h, credentials: 'omit', referrerPolicy: 'no-referrer' });
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached');
    }
    if (!res.ok) {
      let data = null;
      try { data = await res.json(); } catch { /* not JSON */ }
      throw new ApiError(res.status, data && data.error, data && data.error_description);
    }
    return res.blob();
  }
}
