#!/usr/bin/env node
/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `run-bench.mjs --profile`):
 * the functions with the most self time, the packages/files they live in, and the
 * inclusive (self + callees) time of the functions whose name matches --focus.
 *
 *   node scripts/bench/profile-summary.mjs bench/results/profiles/daemon-n10000-*.cpuprofile
 *   node scripts/bench/profile-summary.mjs FILE --top 40 --focus save,list,create,startDaemon
 */
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const files = args.filter((a, i) => !a.startsWith('--') && !['--top', '--focus'].includes(args[i - 1]));
const top = Number(args[args.indexOf('--top') + 1]) || 30;
const focus = args.includes('--focus') ? args[args.indexOf('--focus') + 1].split(',') : [];
if (files.length === 0) {
  process.stderr.write('usage: profile-summary.mjs FILE.cpuprofile [--top N] [--focus fnA,fnB]\n');
  process.exit(2);
}

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  // Self time per node from the sample timeline.
  const selfUs = new Map();
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = deltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt);
  }
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

  const where = (frame) => {
    const url = frame.url.replace(/^file:\/\//, '');
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
    if (pkg) return pkg;
    if (url.includes('/dist/')) return `netvol ${url.slice(url.indexOf('/dist/') + 6)}`;
    if (url.startsWith('node:')) return url;
    return url || '(native/V8)';
  };
  const label = (frame) => `${frame.functionName || '(anonymous)'}  ${where(frame)}:${frame.lineNumber + 1}`;

  const byFunction = new Map();
  const byPlace = new Map();
  for (const [id, us] of selfUs) {
    const frame = nodes.get(id).callFrame;
    const key = frame.url || frame.functionName.startsWith('(') ? label(frame) : label(frame);
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const place = frame.functionName === '(garbage collector)' ? 'GC' : frame.functionName === '(idle)' ? 'idle' : where(frame);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
  }

  const pct = (us) => `${((100 * us) / totalUs).toFixed(1).padStart(5)}%`;
  const ms = (us) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  process.stdout.write(`\n${file}: ${(totalUs / 1e6).toFixed(2)} s sampled\n\nSelf time by place\n`);
  for (const [place, us] of [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, 15)) process.stdout.write(`${ms(us)} ${pct(us)}  ${place}\n`);
  process.stdout.write(`\nTop ${top} functions by self time\n`);
  for (const [key, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${ms(us)} ${pct(us)}  ${key}\n`);

  if (focus.length > 0) {
    // Inclusive time: a sample counts once for a function if any frame on its stack matches.
    process.stdout.write('\nInclusive time (self + callees)\n');
    for (const name of focus) {
      let us = 0;
      for (const [id, self] of selfUs) {
        for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
          if (nodes.get(cur).callFrame.functionName === name) {
            us += self;
            break;
          }
        }
      }
      process.stdout.write(`${ms(us)} ${pct(us)}  ${name}\n`);
    }
  }
}
