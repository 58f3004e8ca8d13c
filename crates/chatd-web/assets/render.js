// Turning message records into DOM nodes. Everything that came from a
// message is put in with textContent or as an attribute checked here:
// never as HTML (the page's policy enforces Trusted Types, so an innerHTML
// assignment would throw anyway).

/** An element with a class, text and children; no HTML parsing anywhere. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = String(props.text);
  if (props.title !== undefined) el.title = String(props.title);
  if (props.attrs) {
    for (const [k, v] of Object.entries(props.attrs)) {
      if (/^on/i.test(k) || k === 'style' || k === 'href' || k === 'src') {
        throw new Error(`attribute ${k} is not set through h()`);
      }
      el.setAttribute(k, String(v));
    }
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A URL a link may point to: http(s) only (never javascript: or data:). */
export function safeHttpUrl(url) {
  if (typeof url !== 'string') return null;
  try {
    const u = new URL(url, location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

export function bodyOf(record) {
  const b = record && record.payload && Array.isArray(record.payload.bodies) ? record.payload.bodies[0] : null;
  return b && typeof b === 'object' ? b : {};
}

const str = (v) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

function seconds(n) {
  const s = Number(n);
  if (!Number.isFinite(s) || s <= 0) return '';
  const m = Math.floor(s / 60);
  return m ? `${m}:${String(Math.round(s % 60)).padStart(2, '0')}` : `${Math.round(s)} s`;
}

export function bytes(n) {
  const b = Number(n);
  if (!Number.isFinite(b) || b < 0) return '';
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KB`;
  return `${(b / 1024 / 1024).toFixed(1)} MB`;
}

/** One line describing a message, for the conversation list. */
export function describe(record) {
  const b = bodyOf(record);
  switch (b.type) {
    case 'txt': return str(b.msg);
    case 'img': return 'Image';
    case 'file': return `File: ${str(b.filename) || 'file'}`;
    case 'audio': return 'Voice message';
    case 'video': return 'Video';
    case 'loc': return `Location: ${str(b.addr)}`;
    case 'cmd': return `Command: ${str(b.action)}`;
    case 'custom': return `Custom: ${str(b.customEvent)}`;
    default: return `[${str(b.type) || 'message'}]`;
  }
}

/**
 * Blob URLs of downloaded files, shared by every message showing the same
 * file, so that re-rendering does not download again.
 */
export class MediaCache {
  constructor(api) {
    this.api = api;
    this.urls = new Map();
  }

  /** A promise of a blob: URL for the file (or its thumbnail). */
  get(url, secret, thumbnail) {
    const key = `${thumbnail ? 't' : 'o'}|${url}|${secret || ''}`;
    let p = this.urls.get(key);
    if (!p) {
      p = this.api.download(url, { secret, thumbnail }).then((blob) => URL.createObjectURL(blob));
      p.catch(() => this.urls.delete(key));
      this.urls.set(key, p);
    }
    return p;
  }

  /** Shows a local file (just uploaded) under the URL it was uploaded to. */
  put(url, secret, blobUrl) {
    for (const t of [true, false]) {
      this.urls.set(`${t ? 't' : 'o'}|${url}|${secret || ''}`, Promise.resolve(blobUrl));
    }
  }

  clear() {
    for (const p of this.urls.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
    this.urls.clear();
  }
}

/** A button that downloads a chat file through fetch (the secret goes in a header). */
function downloadButton(ctx, url, secret, filename, label) {
  const btn = h('button', { class: 'file-link', text: label, attrs: { type: 'button' } });
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const href = await ctx.media.get(url, secret, false);
      const a = document.createElement('a');
      a.href = href;
      a.download = filename || 'file';
      a.rel = 'noopener';
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      btn.textContent = `${label} — not available (${e.message})`;
    } finally {
      btn.disabled = false;
    }
  });
  return btn;
}

/** A link to a file on another server (it cannot be fetched from here). */
function foreignLink(url, label) {
  const href = safeHttpUrl(url);
  if (!href) return h('span', { class: 'file-link', text: `${label} (no valid address)` });
  const a = h('a', { class: 'file-link', text: label });
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  return a;
}

function fileAccess(ctx, url, secret, filename, label) {
  return ctx.api.localFilePath(url) ? downloadButton(ctx, url, secret, filename, label) : foreignLink(url, label);
}

/** An <img> showing a file's thumbnail once it is downloaded. */
function thumbnailImage(ctx, url, secret, alt, size) {
  const img = h('img', { class: 'thumb', attrs: { alt: alt || 'image', loading: 'lazy' } });
  if (size && Number(size.width) > 0 && Number(size.height) > 0) {
    // Reserve the box, so that the pane does not jump when it loads.
    const w = Number(size.width);
    const hgt = Number(size.height);
    const scale = Math.min(1, 240 / w, 240 / hgt);
    img.width = Math.max(1, Math.round(w * scale));
    img.height = Math.max(1, Math.round(hgt * scale));
  }
  if (!ctx.api.localFilePath(url)) {
    return foreignLink(url, `Image ${alt} (on another server)`);
  }
  img.dataset.state = 'loading';
  ctx.media.get(url, secret, true).then(
    (src) => { img.src = src; img.dataset.state = 'loaded'; },
    (e) => { img.dataset.state = 'failed'; img.alt = `image not available: ${e.message}`; },
  );
  img.addEventListener('click', () => ctx.openImage(url, secret));
  return img;
}

/** The content of one message. */
export function renderBody(record, ctx) {
  const b = bodyOf(record);
  switch (b.type) {
    case 'txt':
      return h('div', { class: 'msg-text', text: str(b.msg) });
    case 'img': {
      const url = str(b.url);
      return h('figure', { class: 'msg-img' },
        thumbnailImage(ctx, url, str(b.secret), str(b.filename), b.size),
        h('figcaption', { class: 'muted', text: str(b.filename) }));
    }
    case 'file': {
      const name = str(b.filename) || 'file';
      const size = bytes(b.file_length);
      return h('div', { class: 'msg-file' },
        fileAccess(ctx, str(b.url), str(b.secret), name, `${name}${size ? ` (${size})` : ''}`));
    }
    case 'audio': {
      const wrap = h('div', { class: 'msg-audio' });
      const len = seconds(b.length);
      const label = `Voice message${len ? ` · ${len}` : ''}`;
      if (!ctx.api.localFilePath(str(b.url))) {
        wrap.append(foreignLink(str(b.url), label));
        return wrap;
      }
      const play = h('button', { class: 'file-link', text: `▶ ${label}`, attrs: { type: 'button' } });
      play.addEventListener('click', async () => {
        play.disabled = true;
        try {
          const src = await ctx.media.get(str(b.url), str(b.secret), false);
          const audio = h('audio', { attrs: { controls: '' } });
          audio.src = src;
          play.replaceWith(h('span', { class: 'muted', text: label }), audio);
          audio.play().catch(() => {});
        } catch (e) {
          play.textContent = `${label} — not available (${e.message})`;
        }
      });
      wrap.append(play);
      return wrap;
    }
    case 'video': {
      const len = seconds(b.length);
      const size = bytes(b.file_length);
      const name = str(b.filename) || 'video';
      const wrap = h('div', { class: 'msg-video' });
      if (b.thumb) wrap.append(thumbnailImage(ctx, str(b.thumb), str(b.thumb_secret), `${name} (preview)`));
      wrap.append(fileAccess(ctx, str(b.url), str(b.secret), name,
        `Video${len ? ` · ${len}` : ''}: ${name}${size ? ` (${size})` : ''}`));
      return wrap;
    }
    case 'loc': {
      const lat = Number(b.lat);
      const lng = Number(b.lng);
      const wrap = h('div', { class: 'msg-loc' },
        h('span', { text: `Location: ${str(b.addr)}` }),
        h('span', { class: 'muted', text: ` (${str(b.lat)}, ${str(b.lng)})` }));
      if (Number.isFinite(lat) && Number.isFinite(lng) && Math.abs(lat) <= 90 && Math.abs(lng) <= 180) {
        const a = h('a', { class: 'map-link', text: 'map' });
        a.href = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lng}#map=15/${lat}/${lng}`;
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
        wrap.append(' ', a);
      }
      return wrap;
    }
    case 'cmd':
      return h('div', { class: 'msg-cmd' }, h('span', { text: 'Command: ' }), h('code', { text: str(b.action) }));
    case 'custom': {
      const exts = b.customExts && typeof b.customExts === 'object' ? b.customExts : (b['v2:customExts'] || {});
      const dl = h('dl', { class: 'kv' });
      for (const [k, v] of Object.entries(exts)) {
        dl.append(h('dt', { text: k }), h('dd', { text: typeof v === 'string' ? v : JSON.stringify(v) }));
      }
      return h('div', { class: 'msg-custom' },
        h('div', {}, h('span', { text: 'Custom event: ' }), h('code', { text: str(b.customEvent) || '(none)' })),
        dl.childElementCount ? dl : null);
    }
    default:
      return h('div', { class: 'msg-unknown' },
        h('span', { text: `[${str(b.type) || 'unknown'} message] ` }),
        h('code', { text: JSON.stringify(b).slice(0, 300) }));
  }
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export function timeLabel(ms) {
  const d = new Date(Number(ms) || Date.now());
  return { short: timeFmt.format(d), long: dateTimeFmt.format(d) };
}
