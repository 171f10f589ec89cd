// Control-plane latency while something else is going on (a hung mount, a dead server):
// calls Capabilities, Get and List in turn over a daemon's socket, one at a time, until a stop
// file appears or the time is up, then prints {endpoint: {n, p50, p99, max}} in ms as JSON.
//   node probe-latency.mjs SOCKET VOLUME SECONDS STOPFILE
import { existsSync } from 'node:fs';
import { request } from 'node:http';

const [socketPath, volume, seconds, stopFile] = process.argv.slice(2);
const calls = [
  ['Capabilities', {}],
  ['Get', { Name: volume }],
  ['List', {}],
];

function call(endpoint, body) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: `/VolumeDriver.${endpoint}`, method: 'POST', timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${endpoint}: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${endpoint}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const samples = Object.fromEntries(calls.map(([e]) => [e, []]));
const errors = [];
const until = Date.now() + Number(seconds) * 1000;
while (Date.now() < until && !existsSync(stopFile)) {
  for (const [endpoint, body] of calls) {
    const t0 = process.hrtime.bigint();
    try {
      await call(endpoint, body);
      samples[endpoint].push(Number(process.hrtime.bigint() - t0) / 1e6);
    } catch (error) {
      errors.push(error.message);
    }
  }
  await new Promise((r) => setTimeout(r, 20));
}
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const out = {};
for (const [endpoint, xs] of Object.entries(samples)) {
  xs.sort((a, b) => a - b);
  out[endpoint] = xs.length ? { n: xs.length, p50: +pct(xs, 50).toFixed(1), p99: +pct(xs, 99).toFixed(1), max: +xs.at(-1).toFixed(1) } : { n: 0 };
}
out.errors = errors.slice(0, 5);
out.errorCount = errors.length;
console.log(JSON.stringify(out));
