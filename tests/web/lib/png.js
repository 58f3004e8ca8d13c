// A real (small) PNG, made here: an RGB picture of a sunset over the sea.

import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n += 1) {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A `width`×`height` PNG (8-bit RGB). */
export function sunsetPng(width = 320, height = 200) {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  const horizon = Math.round(height * 0.62);
  const sun = { x: width * 0.62, y: horizon - height * 0.06, r: height * 0.16 };
  for (let y = 0; y < height; y += 1) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x += 1) {
      let r; let g; let b;
      if (y < horizon) {
        const t = y / horizon;
        r = 255 - 60 * (1 - t); g = 120 + 80 * t; b = 90 + 40 * (1 - t);
        const d = Math.hypot(x - sun.x, y - sun.y);
        if (d < sun.r) { r = 255; g = 214; b = 90; }
      } else {
        const t = (y - horizon) / (height - horizon);
        r = 40 + 30 * (1 - t); g = 80 + 40 * (1 - t); b = 140 + 40 * (1 - t);
        // The sun's reflection.
        if (Math.abs(x - sun.x) < sun.r * (1 - t) && (y % 6) < 3) { r = 250; g = 190; b = 100; }
      }
      const i = row + 1 + x * 3;
      raw[i] = r; raw[i + 1] = g; raw[i + 2] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
