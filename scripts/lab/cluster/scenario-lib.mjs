// netvol cluster labs: what both scenarios (cluster-scenario.mjs for the classic driver,
// csi-scenario.mjs for cluster volumes) do the same way on the manager guest: the docker
// CLI, polling, Swarm's view of tasks and nodes, the shared log.txt, the workers' snapshots,
// requests to the host, and the report with one entry per step.
//
// Clocks: every guest set its clock from the host's at boot (run-cluster.mjs), so times from
// every node and the host compare (to ~0.1-0.2 s). log.txt lines carry the writing node's time.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export const RES = '/mnt/results';
export const env = Object.fromEntries(fs.readFileSync(`${RES}/cluster.env`, 'utf8').split('\n')
  .map((l) => /^([A-Z_a-z]+)=(.*)$/.exec(l)).filter(Boolean).map((m) => [m[1], m[2].replace(/^'|'$/g, '')]));

export const now = () => Date.now() / 1000;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const up = () => fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0];
export const say = (...a) => console.log(`[scenario ${up()}]`, ...a);
export const round = (x) => (typeof x === 'number' && Number.isFinite(x) ? Math.round(x * 10) / 10 : x);
/** Every lab node is called node-<letter>; steps and files use the letter. */
export const idOf = (host) => { const m = /^node-([a-z])$/.exec(host || ''); return m ? m[1] : host; };

// The container's command: append "hostname time" every second to /data/log.txt and serve
// /data with busybox httpd (the seed's Portainer keeps its state in /data). The first line
// of each task says how many lines it found: proof that it sees what earlier tasks wrote.
// trap: sh as PID 1 ignores SIGTERM otherwise, and every stop would wait the grace period.
export const APP = [
  'H=$(hostname)',
  "trap 'kill $P 2>/dev/null; exit 0' TERM INT",
  'N=0; [ -f /data/log.txt ] && N=$(wc -l < /data/log.txt)',
  'echo "$H $EPOCHREALTIME start seen=$N" >> /data/log.txt',
  'httpd -f -p 80 -h /data & P=$!',
  'while :; do echo "$H $EPOCHREALTIME" >> /data/log.txt; sleep 1; done',
].join('\n');

export function sh(cmd, args, { timeout = 120, allowFail = false, input } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeout * 1000, input });
  if (r.status !== 0 && !allowFail) {
    throw new Error(`${cmd} ${args.join(' ').slice(0, 200)} failed (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}): ${(r.stderr || '').trim().slice(0, 500)}`);
  }
  return (r.stdout || '').trim();
}
export const docker = (args, o) => sh('docker', args, o);

// Polls every 2 s by default: each docker CLI call costs the manager's emulated CPU dearly.
export async function waitFor(what, timeoutS, fn, everyMs = 2000) {
  const t0 = Date.now();
  let last = '';
  while (true) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e.message; }
    if (Date.now() - t0 > timeoutS * 1000) throw new Error(`timed out after ${timeoutS} s waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
    await sleep(everyMs);
  }
}

/** Write a file so that a reader on the 9p share never sees half of it. */
export function put(file, text) {
  const parts = file.split('/');
  const tmp = [...parts.slice(0, -1), `.${parts.at(-1)}.tmp`].join('/');
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** Swarm's view of a service's tasks. */
export function tasks(service) {
  const out = docker(['service', 'ps', '--no-trunc', '--format', '{{.ID}}|{{.Name}}|{{.Node}}|{{.DesiredState}}|{{.CurrentState}}|{{.Error}}', service], { allowFail: true });
  return out.split('\n').filter(Boolean).map((l) => {
    const [id, name, node, desired, current, error] = l.split('|');
    return { id, name, node: idOf(node), desired, current, error };
  });
}
export const runningOn = (service) => tasks(service).filter((t) => t.desired === 'Running' && t.current.startsWith('Running')).map((t) => t.node);

export function nodes() {
  const out = docker(['node', 'ls', '--format', '{{.Hostname}}|{{.Status}}|{{.Availability}}'], { allowFail: true });
  return Object.fromEntries(out.split('\n').filter(Boolean).map((l) => {
    const [host, status, availability] = l.split('|');
    return [idOf(host), { status, availability }];
  }));
}

/** log.txt as the server sees it (the manager's own disk): "host time [start seen=N]" per line. */
export function readLog(dir) {
  let text = '';
  try { text = fs.readFileSync(`${dir}/log.txt`, 'utf8'); } catch { /* not yet */ }
  const lines = text.split('\n').filter(Boolean).map((raw) => {
    const [host, ts] = raw.split(' ');
    const m = /start seen=(\d+)/.exec(raw);
    return { host: idOf(host), ts: Number(ts), seen: m ? Number(m[1]) : undefined, raw };
  });
  return { text, lines };
}
export const firstLineOf = (dir, node, after) => readLog(dir).lines.find((l) => l.host === node && l.ts > after);

/** A worker's latest snapshot (reporter.mjs). */
export function snap(n) {
  try { return JSON.parse(fs.readFileSync(`${RES}/nodes/${n}/snapshot.json`, 'utf8')); } catch { return null; }
}
/** A snapshot taken after `after` (our clock, the worker's clock: both are the host's). */
export const freshSnap = (n, after, timeoutS = 60) => waitFor(`a fresh snapshot from ${n}`, timeoutS, () => { const s = snap(n); return s && s.epoch > after + 0.5 ? s : null; }, 500);

export function parseMountinfo(text) {
  return (text || '').split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    const i = f.indexOf('-');
    return { id: f[0], parent: f[1], root: f[3], mountPoint: f[4], options: f[5], fstype: f[i + 1], source: f[i + 2], superOptions: f[i + 3] };
  });
}

/** Ask the host (run-cluster.mjs) to kill or boot a worker's qemu; returns its answer. */
let reqSeq = 0;
export async function hostRequest(action, node) {
  const id = `${String(++reqSeq).padStart(3, '0')}-${action}-${node}`;
  put(`${RES}/requests/${id}.req`, JSON.stringify({ action, node }));
  const answer = await waitFor(`the host to ${action} ${node}`, 120, () => {
    try { return JSON.parse(fs.readFileSync(`${RES}/requests/${id}.done`, 'utf8')); } catch { return null; }
  }, 300);
  if (!answer.ok) throw new Error(`host could not ${action} ${node}: ${answer.error}`);
  return answer;
}

/**
 * Run a shell script on worker n (cluster-init.sh's serve_cmds runs nodes/<n>/cmd.sh and
 * leaves its output in cmd.out); one at a time per node.
 */
export async function onNode(n, script, timeoutS = 120) {
  const dir = `${RES}/nodes/${n}`;
  fs.rmSync(`${dir}/cmd.out`, { force: true });
  put(`${dir}/cmd.sh`, script);
  return waitFor(`${n} to run a command`, timeoutS, () => { try { return fs.readFileSync(`${dir}/cmd.out`, 'utf8'); } catch { return null; } }, 500);
}

// ------------------------------------------------------------------ the report
export const report = { startedAt: new Date().toISOString(), steps: [], clock: {} };

const onlySteps = (env.STEPS || '').split(',').filter(Boolean);
export async function step(name, fn) {
  if (onlySteps.length && !onlySteps.includes(name)) {
    say(`=== step ${name}: not run (STEPS=${env.STEPS})`);
    return null;
  }
  const t0 = Date.now();
  say(`=== step ${name}`);
  const entry = { name, status: 'pass', seconds: 0, figures: {}, notes: [] };
  try {
    await fn(entry);
  } catch (e) {
    entry.status = 'fail';
    entry.detail = e.message;
    say(`step ${name} FAILED: ${e.message}`);
  }
  entry.seconds = round((Date.now() - t0) / 1000);
  for (const k of Object.keys(entry.figures)) entry.figures[k] = round(entry.figures[k]);
  if (!entry.notes.length) delete entry.notes;
  report.steps.push(entry);
  say(`=== step ${name}: ${entry.status.toUpperCase()} in ${entry.seconds} s ${JSON.stringify(entry.figures)}`);
  put(`${RES}/report.partial.json`, JSON.stringify(report, null, 2));
  return entry;
}
export const check = (cond, msg) => { if (!cond) throw new Error(msg); };

export function finishReport() {
  report.finishedAt = new Date().toISOString();
  put(`${RES}/report.json`, JSON.stringify(report, null, 2));
  say(`report written: ${report.steps.filter((s) => s.status === 'pass').length}/${report.steps.length} steps passed`);
}
