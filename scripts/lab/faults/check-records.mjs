#!/usr/bin/env node
// netvol fault lab: what the writer (writer.c) acknowledged against what a records file holds.
//
//   node check-records.mjs RECORDS EVENTS     prints the verdict as JSON (for a look by hand)
//
// The lab runs it on the host over a copy the server guest made from its own disk, so the
// verdict is about what the server stored, not what the client's cache shows.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32(text) {
  let c = 0xffffffff;
  for (let i = 0; i < text.length; i++) c = CRC_TABLE[(c ^ text.charCodeAt(i)) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const xorshift = (x) => {
  x = (x ^ (x << 13)) >>> 0;
  x = (x ^ (x >>> 17)) >>> 0;
  return (x ^ (x << 5)) >>> 0;
};

/** The payload writer.c derives from seq (same generator, same 32-bit arithmetic). */
export function expectedPayload(seq) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let x = (Math.imul(seq, 2654435761) | 1) >>> 0;
  x = xorshift(x);
  const len = 24 + (x % 96);
  let out = '';
  for (let i = 0; i < len; i++) {
    x = xorshift(x);
    out += alphabet[x % 36];
  }
  return out;
}

export const expectedRecord = (seq) => {
  const p = expectedPayload(seq);
  return `${seq} ${crc32(p).toString(16).padStart(8, '0')} ${p}`;
};

/**
 * The writer's event file: acks (seq -> [start, end] ms), errors, slow calls, begin and quit.
 * A line cut short by a kill is ignored.
 */
export function parseEvents(text) {
  const acks = new Map();
  const errors = [];
  const slow = [];
  let begin = null;
  let quit = null;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'A' && f.length === 4) acks.set(Number(f[1]), [Number(f[2]), Number(f[3])]);
    else if (f[0] === 'E' && f.length >= 5) errors.push({ t: Number(f[1]), seq: Number(f[2]), op: f[3], errno: f[4], text: f.slice(5).join(' ') });
    else if (f[0] === 'S' && f.length === 5) slow.push({ t: Number(f[1]), seq: Number(f[2]), op: f[3], ms: Number(f[4]) });
    else if (f[0] === 'B' && f.length >= 4) begin = { t: Number(f[1]), pid: Number(f[2]) };
    else if (f[0] === 'Q' && f.length === 3) quit = { t: Number(f[1]), seq: Number(f[2]) };
  }
  return { acks, errors, slow, begin, quit };
}

/**
 * Every acknowledged record must be in the file once and intact. Records the writer did not
 * acknowledge may be missing (the fault took them) or present (written, but the fsync's
 * answer never came back); both are counted, neither fails.
 */
export function checkRecords(recordsText, events) {
  const count = new Map();
  const damagedSeqs = new Set();
  let garbage = 0;
  let outOfOrder = 0;
  let last = 0;
  const lines = recordsText.split('\n');
  // A last line without its newline is a write the fault cut short.
  const torn = lines.at(-1) !== '' ? 1 : 0;
  for (const line of lines.slice(0, lines.length - 1)) {
    const m = /^(\d+) ([0-9a-f]{8}) ([a-z0-9]+)$/.exec(line);
    if (!m) {
      garbage++;
      const s = /^(\d+) /.exec(line);
      if (s) damagedSeqs.add(Number(s[1]));
      continue;
    }
    const seq = Number(m[1]);
    if (line !== expectedRecord(seq)) {
      damagedSeqs.add(seq);
      continue;
    }
    count.set(seq, (count.get(seq) || 0) + 1);
    if (seq <= last) outOfOrder++;
    last = Math.max(last, seq);
  }
  const acked = [...events.acks.keys()].sort((a, b) => a - b);
  const lost = [];
  const duplicated = [];
  const damaged = [];
  for (const seq of acked) {
    const n = count.get(seq) || 0;
    if (n === 0) (damagedSeqs.has(seq) ? damaged : lost).push(seq);
    else if (n > 1) duplicated.push(seq);
  }
  const unackedFound = [...count.keys()].filter((s) => !events.acks.has(s)).sort((a, b) => a - b);
  const dupUnacked = [...count.entries()].filter(([s, n]) => n > 1 && !events.acks.has(s)).map(([s]) => s);
  return {
    acked: acked.length,
    maxAcked: acked.at(-1) || 0,
    found: count.size,
    lost: lost.length,
    duplicated: duplicated.length,
    damaged: damaged.length,
    lostSeqs: lost.slice(0, 20),
    duplicatedSeqs: duplicated.slice(0, 20),
    damagedSeqs: damaged.slice(0, 20),
    unackedFound: unackedFound.length,
    unackedFoundSeqs: unackedFound.slice(0, 20),
    duplicatedUnacked: dupUnacked.length,
    garbageLines: garbage,
    tornTail: torn,
    outOfOrder,
    bytes: recordsText.length,
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [records, eventsFile] = process.argv.slice(2);
  let text = '';
  let missing = false;
  try { text = fs.readFileSync(records, 'latin1'); } catch (e) { missing = e.code; }
  const events = parseEvents(fs.readFileSync(eventsFile, 'utf8'));
  console.log(JSON.stringify({ records, missing, ...checkRecords(text, events) }));
}
