#!/usr/bin/env node
/**
 * Host benchmark for netvol: the real daemon (dist/cli.js) on a Unix socket, against a floor
 * (scripts/bench/floor-server.mjs: a bare node:http server with canned replies), with the
 * request shapes dockerd sends. See bench/README.md for how to read the results.
 *
 *   npm run bench                          # build, then everything (~4-5 minutes on 2 cores)
 *   node scripts/bench/run-bench.mjs --quick            # shorter cells, for trying changes
 *   node scripts/bench/run-bench.mjs --sizes 10000 --profile   # + daemon CPU profiles
 *
 * Options: --sizes 100,1000,10000  --duration SECONDS (per daemon cell, default 3)
 *          --floor-duration SECONDS (default 2)  --concurrency 1,64  --quick  --profile
 *          --endpoints Get,List (only these cells; Mount or Unmount selects the pair)
 *          --starts N (fresh starts per size for the ready time, median; default 3)
 *          --daemon-node-options "--max-semi-space-size=2" (extra node flags for the daemon)
 *          --keep-tmp (leave the temp dir, for reading the daemon log)
 *
 * Per size it writes a state file with that many volumes, starts a fresh daemon with
 * stand-ins for mount/umount that make real tmpfs mounts under its temp base directory,
 * measures start-up (spawn -> socket accepts) and memory, then loops every call at each
 * concurrency for a fixed duration, each followed by the same loop against the floor.
 * It stops only the processes it started (by PID), unmounts what is mounted under its
 * temp directory and removes that directory.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync, mkdtempSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createConnection } from 'node:net';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(REPO, 'dist/cli.js');
const FLOOR = join(REPO, 'scripts/bench/floor-server.mjs');
const RESULTS = join(REPO, 'bench/results');

// ---------------------------------------------------------------------------------------
// Options

/** The node options in dist/cli.js's shebang: the daemon is measured as users run it. */
function shebangNodeOptions() {
  const first = readFileSync(CLI, 'utf8').split('\n')[0] ?? '';
  return (/\bnode\s+(.*)$/.exec(first)?.[1] ?? '').split(/\s+/).filter(Boolean);
}

function parseArgs(argv) {
  const options = {
    sizes: [100, 1000, 10000],
    concurrency: [1, 64],
    durationMs: 3000,
    floorDurationMs: 2000,
    profile: false,
    keepTmp: false,
    starts: 3,
    daemonNodeOptions: [],
    endpoints: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      return value;
    };
    if (arg === '--sizes') options.sizes = next().split(',').map(Number);
    else if (arg === '--concurrency') options.concurrency = next().split(',').map(Number);
    else if (arg === '--duration') options.durationMs = Number(next()) * 1000;
    else if (arg === '--floor-duration') options.floorDurationMs = Number(next()) * 1000;
    else if (arg === '--quick') Object.assign(options, { durationMs: 700, floorDurationMs: 500 });
    else if (arg === '--profile') options.profile = true;
    else if (arg === '--starts') options.starts = Number(next());
    else if (arg === '--endpoints') options.endpoints = next().split(',');
    else if (arg === '--daemon-node-options') options.daemonNodeOptions = next().split(' ').filter(Boolean);
    else if (arg === '--keep-tmp') options.keepTmp = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]);
      process.exit(0);
    } else throw new Error(`unknown option ${arg} (see --help)`);
  }
  for (const n of [...options.sizes, ...options.concurrency, options.starts]) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`sizes and concurrency must be positive integers`);
  }
  return options;
}

// ---------------------------------------------------------------------------------------
// Processes we started, and cleanup

/** PIDs of children this run started; only these are ever signalled. */
const children = new Map(); // pid -> { child, name }
let tmpRoot;
let keepTmp = false;

function startChild(name, file, args, logPath, env = {}) {
  const log = openSync(logPath, 'a');
  const t0 = process.hrtime.bigint();
  const child = spawn(file, args, { stdio: ['ignore', log, log], env: { ...process.env, NODE_OPTIONS: '', ...env } });
  closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  children.set(child.pid, { child, name });
  exited.then(() => children.delete(child.pid));
  return { child, pid: child.pid, t0, exited, logPath };
}

async function stopChild(proc, timeoutMs = 5000) {
  if (!children.has(proc.pid)) return proc.exited;
  process.kill(proc.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (children.has(proc.pid)) process.kill(proc.pid, 'SIGKILL');
  }, timeoutMs);
  const result = await proc.exited;
  clearTimeout(timer);
  return result;
}

function unescapeMountPath(field) {
  return field.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/** Mount points strictly below `dir`, deepest first. */
function mountsBelow(dir) {
  const prefix = `${dir}/`;
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter(Boolean)
    .map(unescapeMountPath)
    .filter((mountPoint) => mountPoint.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

function unmountAllBelow(dir) {
  let unmounted = 0;
  // Several passes: a mount point may be stacked more than once.
  for (let pass = 0; pass < 5; pass++) {
    const mounts = mountsBelow(dir);
    if (mounts.length === 0) break;
    for (const mountPoint of mounts) {
      const result = spawnSync('umount', ['--', mountPoint], { stdio: 'ignore' });
      if (result.status !== 0) spawnSync('umount', ['-l', '--', mountPoint], { stdio: 'ignore' });
      unmounted++;
    }
  }
  return unmounted;
}

function cleanupSync() {
  for (const [pid] of children) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  children.clear();
  if (tmpRoot && existsSync(tmpRoot)) {
    unmountAllBelow(tmpRoot);
    const left = mountsBelow(tmpRoot);
    if (left.length > 0) {
      process.stderr.write(`bench: still mounted, not removing ${tmpRoot}: ${left.join(', ')}\n`);
    } else if (keepTmp) {
      process.stderr.write(`bench: kept ${tmpRoot}\n`);
    } else {
      rmSync(tmpRoot, { recursive: true, force: true });
    }
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}: cleaning up\n`);
    cleanupSync();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------
// Load generator: node:http over the Unix socket, keep-alive, dockerd's request shape

/** Headers Go's net/http and moby's plugin client send; no Content-Type, on purpose. */
const DOCKERD_HEADERS = {
  Host: 'plugin',
  'User-Agent': 'Go-http-client/1.1',
  Accept: 'application/vnd.docker.plugins.v1.2+json',
  'Accept-Encoding': 'gzip',
};

/** One call; the body is JSON with the trailing newline of Go's json.Encoder. */
function call(agent, socketPath, path, body) {
  const payload = Buffer.from(`${JSON.stringify(body)}\n`);
  return new Promise((resolveCall, reject) => {
    const req = request(
      { agent, socketPath, path, method: 'POST', headers: { ...DOCKERD_HEADERS, 'Content-Length': payload.length } },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => resolveCall({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A reply is good when it is HTTP 200 and its Err is empty or absent. */
function replyError(reply) {
  if (reply.status !== 200) return `HTTP ${reply.status}: ${reply.text.slice(0, 200)}`;
  try {
    const json = JSON.parse(reply.text);
    if (json.Err) return `Err: ${json.Err}`;
  } catch {
    return `not JSON: ${reply.text.slice(0, 200)}`;
  }
  return undefined;
}

/**
 * Runs `scenario(ctx, worker, seq)` on `concurrency` workers until the deadline (or until
 * the scenario returns false). ctx.timed(label, path, body) makes one call and records its
 * latency under `label`. Returns per-label samples and the wall time.
 */
async function runLoop({ socketPath, concurrency, durationMs, scenario }) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const samples = new Map(); // label -> number[] (ms)
  const errors = new Map(); // label -> { count, first }
  const ctx = {
    async timed(label, path, body) {
      const t = process.hrtime.bigint();
      let problem;
      let reply;
      try {
        reply = await call(agent, socketPath, path, body);
        problem = replyError(reply);
      } catch (error) {
        problem = `transport: ${error.message}`;
      }
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (!samples.has(label)) samples.set(label, []);
      samples.get(label).push(ms);
      if (problem) {
        const entry = errors.get(label) ?? { count: 0, first: problem };
        entry.count++;
        errors.set(label, entry);
      }
      return reply;
    },
  };
  const started = process.hrtime.bigint();
  const deadline = Date.now() + durationMs;
  let seq = 0;
  const worker = async (w) => {
    while (Date.now() < deadline) {
      const more = await scenario(ctx, w, seq++);
      if (more === false) return;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  agent.destroy();
  return { samples, errors, wallMs };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

function median(list) {
  const sorted = [...list].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function summarise(list, wallMs) {
  const sorted = Float64Array.from(list).sort();
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
    rps: sorted.length / (wallMs / 1000),
  };
}

// ---------------------------------------------------------------------------------------
// /proc readings

function procStatus(pid) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMB: kb('VmRSS') / 1024, hwmMB: kb('VmHWM') / 1024, anonMB: kb('RssAnon') / 1024, fileMB: kb('RssFile') / 1024 };
}

/** Machine-wide busy and steal CPU seconds since boot (/proc/stat "cpu" line). */
function machineCpu() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = fields;
  return { busy: (user + nice + system + irq + softirq) / CLOCK_TICKS, steal: steal / CLOCK_TICKS };
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** User+system CPU seconds a process (and its reaped children: mount/umount) has used. */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------
// Fixtures

const volumeName = (i) => `vol-${String(i).padStart(5, '0')}`;
const shareOf = (name) => `10.0.0.1:/exports/${name}`;
const mountId = () => randomBytes(32).toString('hex');

/** A state file as src/state/state-schema.ts describes it (version 1), with n volumes. */
function writeStateFile(path, n, bootId) {
  const createdAt = new Date('2026-01-01T00:00:00.000Z').toISOString();
  const volumes = {};
  for (let i = 0; i < n; i++) {
    const name = volumeName(i);
    volumes[name] = { name, protocol: 'nfs', options: { share: shareOf(name) }, share: shareOf(name), createdAt, mountIds: [] };
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify({ version: 1, bootId, volumes })}\n`, { mode: 0o600 });
}

/** mount/umount stand-ins: a real tmpfs at TARGET, refused anywhere outside the bench base. */
function writeMountScripts(dir, base) {
  const mountScript = join(dir, 'bench-mount.sh');
  const umountScript = join(dir, 'bench-umount.sh');
  const guard = `case "$target" in '${base}'/*) ;; *) echo "bench stand-in: refusing $target (outside ${base})" >&2; exit 32 ;; esac`;
  writeFileSync(
    mountScript,
    `#!/bin/sh\n# argv: -t TYPE [-o OPTS] -- SOURCE TARGET\nfor arg; do target=$arg; done\n${guard}\nexec mount -t tmpfs -o size=1m netvol-bench "$target"\n`,
  );
  writeFileSync(umountScript, `#!/bin/sh\n# argv: [-l] -- TARGET\nfor arg; do target=$arg; done\n${guard}\nexec umount "$@"\n`);
  chmodSync(mountScript, 0o755);
  chmodSync(umountScript, 0o755);
  return { mountScript, umountScript };
}

/** Connect attempts until one succeeds; resolves with the time since `t0` in ms. */
async function waitForSocket(socketPath, t0, proc, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!children.has(proc.pid)) throw new Error(`process ${proc.pid} exited before its socket answered; log: ${proc.logPath}\n${tail(proc.logPath)}`);
    const ok = await new Promise((done) => {
      const socket = createConnection(socketPath);
      socket.once('connect', () => {
        socket.destroy();
        done(true);
      });
      socket.once('error', () => done(false));
    });
    if (ok) return Number(process.hrtime.bigint() - t0) / 1e6;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`${socketPath} did not answer within ${timeoutMs} ms; log:\n${tail(proc.logPath)}`);
}

function tail(path, lines = 20) {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The daemon's own "Ready" log line: its ms counts from startDaemon(), after module loading. */
function daemonReadyMs(logPath) {
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (!line.includes('"msg":"Ready')) continue;
    try {
      return JSON.parse(line).ms;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Scenarios: one per call, each as dockerd shapes it

const MOUNTED_VOLUME = volumeName(0);

/**
 * The driver name decides the state file's directory (<state-dir>/<name>/state.json); set
 * explicitly so it does not depend on how the daemon derives it from the socket name.
 */
const DRIVER_NAME = 'bench';

/**
 * Never talk to a real dockerd on this host: the daemon's Docker API socket points at a path
 * that does not exist, and where the daemon has --activate (ask dockerd to activate the
 * plugin at start), it is turned off.
 */
let extraArgs;
function daemonExtraArgs() {
  if (!extraArgs) {
    const help = spawnSync(process.execPath, [CLI, 'nfs', '--help'], { encoding: 'utf8' }).stdout ?? '';
    extraArgs = [
      ...(help.includes('--docker-socket') ? ['--docker-socket', join(tmpRoot, 'no-dockerd.sock')] : []),
      ...(help.includes('--activate') ? ['--no-activate'] : []),
    ];
  }
  return extraArgs;
}

function scenarios(size, conc) {
  const names = (seq) => volumeName((seq * 7919) % size);
  const created = []; // names made by Create, then deleted by Remove
  let removeNext = 0;
  return [
    { endpoint: 'Capabilities', run: (ctx) => ctx.timed('Capabilities', '/VolumeDriver.Capabilities', {}) },
    { endpoint: 'Get', run: (ctx, w, seq) => ctx.timed('Get', '/VolumeDriver.Get', { Name: names(seq) }) },
    // Half the Paths hit the mounted volume (non-empty Mountpoint), half an unmounted one.
    { endpoint: 'Path', run: (ctx, w, seq) => ctx.timed('Path', '/VolumeDriver.Path', { Name: seq % 2 ? MOUNTED_VOLUME : names(seq) }) },
    { endpoint: 'List', run: (ctx) => ctx.timed('List', '/VolumeDriver.List', {}) },
    {
      // The reference-counting path: the volume stays mounted (ID "base"), so Mount only adds
      // an ID and Unmount only removes one. dockerd sends a random 64-hex ID per mount point.
      endpoint: 'Mount+Unmount',
      labels: ['Mount', 'Unmount'],
      run: async (ctx) => {
        const ID = mountId();
        await ctx.timed('Mount', '/VolumeDriver.Mount', { Name: MOUNTED_VOLUME, ID });
        await ctx.timed('Unmount', '/VolumeDriver.Unmount', { Name: MOUNTED_VOLUME, ID });
      },
    },
    {
      endpoint: 'Create',
      // Capped so the volume count stays close to the nominal size during later cells.
      maxCalls: Math.max(200, Math.min(2000, size)),
      run: async (ctx, w, seq, state) => {
        if (state.calls++ >= state.maxCalls) return false;
        const name = `new-c${conc}-${seq}`;
        created.push(name);
        await ctx.timed('Create', '/VolumeDriver.Create', { Name: name, Opts: { share: `10.0.0.2:/exports/${name}` } });
      },
    },
    {
      endpoint: 'Remove',
      untimed: true, // a fixed amount of work: every volume the Create cell made
      run: async (ctx) => {
        if (removeNext >= created.length) return false;
        const name = created[removeNext++];
        await ctx.timed('Remove', '/VolumeDriver.Remove', { Name: name });
      },
    },
  ];
}

// ---------------------------------------------------------------------------------------
// Benchmark of one size

async function benchSize({ size, options, floor, scripts, bootId, rows, startups }) {
  const dir = join(tmpRoot, `n${size}`);
  const base = join(tmpRoot, 'base'); // the stand-in scripts only mount below this
  const basedir = join(base, `n${size}`);
  const stateDir = join(dir, 'state');
  const socketPath = join(dir, 'bench.sock');
  mkdirSync(dir, { recursive: true });

  // Start-up is measured over several fresh starts (median), since one start is noisy; the
  // state file is rewritten before each, so every start loads the same N volumes.
  const starts = [];
  let daemon;
  for (let attempt = 0; attempt < options.starts; attempt++) {
    const last = attempt === options.starts - 1;
    writeStateFile(join(stateDir, DRIVER_NAME, 'state.json'), size, bootId);
    const nodeArgs = [
      ...shebangNodeOptions(),
      ...options.daemonNodeOptions,
      ...(options.profile && last
        ? ['--cpu-prof', '--cpu-prof-dir', join(RESULTS, 'profiles'), '--cpu-prof-name', `daemon-n${size}-${Date.now()}.cpuprofile`]
        : []),
    ];
    const logPath = join(dir, `daemon-${attempt}.log`);
    const proc = startChild(
      `daemon n=${size}`,
      process.execPath,
      [...nodeArgs, CLI, 'nfs', '--socket', socketPath, '--state-dir', stateDir, '--basedir', basedir,
        '--mount-command', scripts.mountScript, '--umount-command', scripts.umountScript, ...daemonExtraArgs()],
      logPath,
      { NETSHARE_SOCKET_NAME: DRIVER_NAME },
    );
    const readyMs = await waitForSocket(socketPath, proc.t0, proc);
    // RSS once the start-up work has settled: the socket answers before the event loop is idle.
    await new Promise((r) => setTimeout(r, 200));
    const idle = procStatus(proc.pid);
    if (last) {
      daemon = proc;
      starts.push({ readyMs, idle });
    } else {
      await stopChild(proc);
      starts.push({ readyMs, idle, startDaemonMs: daemonReadyMs(logPath) });
    }
  }
  const readyList = starts.map((s) => s.readyMs);
  const readyMs = median(readyList);
  const idle = starts[starts.length - 1].idle;
  process.stdout.write(
    `\n== ${size} volumes: ready in ${readyList.map((ms) => ms.toFixed(0)).join(', ')} ms (median ${readyMs.toFixed(0)}); daemon pid ${daemon.pid}, RSS ${idle.rssMB.toFixed(1)} MB (anon ${idle.anonMB.toFixed(1)}, file ${idle.fileMB.toFixed(1)})\n`,
  );

  // Mount the volume the Mount/Unmount cells reuse, once, for real (a tmpfs via the stand-in).
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const firstMountStart = process.hrtime.bigint();
  const first = await call(agent, socketPath, '/VolumeDriver.Mount', { Name: MOUNTED_VOLUME, ID: 'base' });
  const firstMountMs = Number(process.hrtime.bigint() - firstMountStart) / 1e6;
  if (replyError(first)) throw new Error(`first Mount failed: ${replyError(first)}\n${tail(daemon.logPath)}`);
  if (!mountsBelow(basedir).length) throw new Error('first Mount answered but nothing is mounted under the base directory');

  // Warm up (JIT) both servers with a little of everything that has no side effects.
  for (const target of [socketPath, floor.socketPath]) {
    await runLoop({
      socketPath: target,
      concurrency: 4,
      durationMs: 300,
      scenario: (ctx, w, seq) =>
        seq % 3 === 0
          ? ctx.timed('warm', '/VolumeDriver.Get', { Name: volumeName(seq % size) })
          : seq % 3 === 1
            ? ctx.timed('warm', '/VolumeDriver.Capabilities', {})
            : ctx.timed('warm', '/VolumeDriver.Path', { Name: volumeName(seq % size) }),
    });
  }

  // The floor answers what the daemon answers, byte for byte, for each call shape.
  const sample = async (path, body) => (await call(agent, socketPath, path, body)).text;
  const cannedReplies = {
    '/VolumeDriver.Capabilities': await sample('/VolumeDriver.Capabilities', {}),
    '/VolumeDriver.Get': await sample('/VolumeDriver.Get', { Name: volumeName(Math.floor(size / 2)) }),
    '/VolumeDriver.Path': await sample('/VolumeDriver.Path', { Name: MOUNTED_VOLUME }),
    '/VolumeDriver.List': await sample('/VolumeDriver.List', {}),
    '/VolumeDriver.Mount': first.text,
    '/VolumeDriver.Unmount': '{"Err":""}',
    '/VolumeDriver.Create': '{"Err":""}',
    '/VolumeDriver.Remove': '{"Err":""}',
  };
  agent.destroy();
  await call(false, floor.socketPath, '/__bench/canned', cannedReplies);
  const listBytes = Buffer.byteLength(cannedReplies['/VolumeDriver.List']);

  for (const conc of options.concurrency) {
    for (const sc of scenarios(size, conc)) {
      if (options.endpoints && !options.endpoints.some((e) => sc.endpoint.split('+').includes(e))) continue;
      const labels = sc.labels ?? [sc.endpoint];
      const measured = {};
      for (const [kind, target, durationMs] of [
        ['daemon', socketPath, options.durationMs],
        ['floor', floor.socketPath, options.floorDurationMs],
      ]) {
        // Create/Remove against the floor: same count of calls as the daemon got.
        const state = { calls: 0, maxCalls: sc.maxCalls ?? Infinity };
        let scenario = (ctx, w, seq) => sc.run(ctx, w, seq, state);
        if (kind === 'floor' && (sc.endpoint === 'Create' || sc.endpoint === 'Remove')) {
          const count = measured[sc.endpoint]?.daemon.n ?? 0;
          let issued = 0;
          scenario = (ctx) => (issued++ >= count ? false : ctx.timed(sc.endpoint, `/VolumeDriver.${sc.endpoint}`, { Name: `floor-${issued}` }));
        }
        const pid = kind === 'daemon' ? daemon.pid : floor.proc.pid;
        const cpu0 = cpuSeconds(pid);
        const machine0 = machineCpu();
        const self0 = process.cpuUsage();
        const result = await runLoop({
          socketPath: target,
          concurrency: conc,
          durationMs: sc.untimed || (kind === 'floor' && sc.endpoint === 'Create') ? 600_000 : durationMs,
          scenario,
        });
        const cpuUsed = cpuSeconds(pid) - cpu0;
        const selfUsed = (() => {
          const u = process.cpuUsage(self0);
          return (u.user + u.system) / 1e6;
        })();
        const machine1 = machineCpu();
        const wallS = result.wallMs / 1000;
        // CPU the machine spent on anything but this bench (other users' jobs), in cores.
        const otherCores = Math.max(0, (machine1.busy - machine0.busy - cpuUsed - selfUsed) / wallS);
        const stealCores = (machine1.steal - machine0.steal) / wallS;
        for (const label of labels) {
          const stats = summarise(result.samples.get(label) ?? [], result.wallMs);
          const err = result.errors.get(label);
          measured[label] ??= {};
          measured[label][kind] = {
            ...stats,
            cpuUsPerCall: (cpuUsed * 1e6) / Math.max(1, result.samples.get(labels[0])?.length ?? 0) / labels.length,
            errors: err?.count ?? 0,
            firstError: err?.first,
            otherCores,
            stealCores,
          };
        }
      }
      for (const label of labels) {
        const { daemon: d, floor: f } = measured[label];
        const row = {
          endpoint: label,
          volumes: size,
          concurrency: conc,
          n: d.n,
          p50Ms: d.p50,
          p99Ms: d.p99,
          maxMs: d.max,
          rps: d.rps,
          cpuUsPerCall: d.cpuUsPerCall,
          errors: d.errors,
          ...(d.firstError ? { firstError: d.firstError } : {}),
          otherCores: d.otherCores,
          stealCores: d.stealCores,
          floor: { n: f.n, p50Ms: f.p50, p99Ms: f.p99, rps: f.rps, cpuUsPerCall: f.cpuUsPerCall, errors: f.errors, otherCores: f.otherCores },
          // CPU is read in clock ticks (10 ms): no ratio when the floor used too few to count.
          ratioCpu: f.cpuUsPerCall * f.n >= 50_000 ? d.cpuUsPerCall / f.cpuUsPerCall : null,
          ratioP50: d.p50 / f.p50,
          ratioP99: d.p99 / f.p99,
          ratioRps: d.rps / f.rps,
        };
        rows.push(row);
        process.stdout.write(`${formatRow(row)}\n`);
        if (d.errors) process.stdout.write(`   ! ${d.errors} failed calls, first: ${d.firstError}\n`);
      }
    }
  }

  const loaded = procStatus(daemon.pid);
  const stopped = await stopChild(daemon);
  const selfReportedMs = median(
    [...starts.slice(0, -1).map((s) => s.startDaemonMs), daemonReadyMs(daemon.logPath)].filter((ms) => ms !== undefined),
  );
  const startup = {
    volumes: size,
    readyMs,
    readyAllMs: readyList,
    startDaemonMs: selfReportedMs,
    rssIdleMB: idle.rssMB,
    rssIdleAnonMB: idle.anonMB,
    rssIdleFileMB: idle.fileMB,
    rssAfterLoadMB: loaded.rssMB,
    rssAfterLoadAnonMB: loaded.anonMB,
    rssAfterLoadFileMB: loaded.fileMB,
    peakRssMB: loaded.hwmMB,
    firstMountMs,
    listReplyBytes: listBytes,
    stateFileBytes: readFileSync(join(stateDir, DRIVER_NAME, 'state.json')).length,
    exit: stopped,
  };
  startups.push(startup);
  unmountAllBelow(basedir);
  return startup;
}

// ---------------------------------------------------------------------------------------
// Output

const COLUMNS = [
  ['endpoint', 13, (r) => r.endpoint],
  ['volumes', 7, (r) => String(r.volumes)],
  ['conc', 4, (r) => String(r.concurrency)],
  ['n', 6, (r) => String(r.n)],
  ['p50 ms', 8, (r) => fmt(r.p50Ms)],
  ['p99 ms', 8, (r) => fmt(r.p99Ms)],
  ['req/s', 7, (r) => r.rps.toFixed(0)],
  ['cpu µs', 7, (r) => r.cpuUsPerCall.toFixed(0)],
  ['floor p50', 9, (r) => fmt(r.floor.p50Ms)],
  ['floor p99', 9, (r) => fmt(r.floor.p99Ms)],
  ['floor r/s', 9, (r) => r.floor.rps.toFixed(0)],
  ['floor cpu', 9, (r) => r.floor.cpuUsPerCall.toFixed(0)],
  ['×p50', 6, (r) => r.ratioP50.toFixed(1)],
  ['×p99', 6, (r) => r.ratioP99.toFixed(1)],
  ['÷r/s', 6, (r) => (1 / r.ratioRps).toFixed(1)],
  ['×cpu', 6, (r) => (r.ratioCpu == null ? '-' : r.ratioCpu.toFixed(1))],
  ['bg', 4, (r) => Math.max(r.otherCores, r.floor.otherCores).toFixed(1)],
];

function fmt(ms) {
  if (!Number.isFinite(ms)) return '-';
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

function formatRow(row) {
  return COLUMNS.map(([, width, get], i) => (i === 0 ? get(row).padEnd(width) : get(row).padStart(width))).join(' ');
}

function header() {
  const head = COLUMNS.map(([name, width], i) => (i === 0 ? name.padEnd(width) : name.padStart(width))).join(' ');
  return `${head}\n${'-'.repeat(head.length)}`;
}

function evaluateTargets(rows, startups) {
  const targets = [];
  const find = (endpoint, volumes, concurrency) => rows.find((r) => r.endpoint === endpoint && r.volumes === volumes && r.concurrency === concurrency);
  const getRows = rows.filter((r) => r.endpoint === 'Get');
  if (getRows.length) {
    const worst = getRows.reduce((a, b) => (b.ratioP50 > a.ratioP50 ? b : a));
    targets.push({
      target: 'Get p50 within 1.5× the floor (every size and concurrency)',
      met: getRows.every((r) => r.ratioP50 <= 1.5),
      measured: getRows.map((r) => `${r.volumes}/c${r.concurrency}: ${r.ratioP50.toFixed(2)}×`).join(', '),
      worst: `${worst.ratioP50.toFixed(2)}× (${worst.volumes} volumes, concurrency ${worst.concurrency})`,
    });
  }
  const list = find('List', 10000, 1);
  if (list) {
    targets.push({
      target: 'List of 10,000 volumes under 20 ms (p50 at concurrency 1; p99 shown)',
      met: list.p50Ms < 20,
      measured: `p50 ${fmt(list.p50Ms)} ms, p99 ${fmt(list.p99Ms)} ms (${list.p99Ms < 20 ? 'p99 also under' : 'p99 over'} 20 ms)`,
    });
  }
  const big = startups.find((s) => s.volumes === 10000);
  if (big) {
    targets.push({
      target: 'Ready with 10,000 volumes under 1 s (spawn to socket accepting)',
      met: big.readyMs < 1000,
      measured: `${big.readyMs.toFixed(0)} ms`,
    });
    targets.push({
      target: 'Under 100 MB resident at 10,000 volumes (VmRSS after the load)',
      met: big.rssAfterLoadMB < 100,
      measured: `${big.rssAfterLoadMB.toFixed(1)} MB (peak ${big.peakRssMB.toFixed(1)} MB)`,
    });
  }
  return targets;
}

function gitCommit() {
  const result = spawnSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['-C', REPO, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).stdout.trim() !== '';
  return result.status === 0 ? `${result.stdout.trim()}${dirty ? '+dirty src' : ''}` : 'unknown';
}

// ---------------------------------------------------------------------------------------

async function main() {
  const options = parseArgs(process.argv.slice(2));
  keepTmp = options.keepTmp;
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (npm run bench does)`);
  if (process.getuid?.() !== 0) throw new Error('the bench makes real tmpfs mounts: run it as root');
  const runStarted = Date.now();
  const loadBefore = loadavg();
  tmpRoot = mkdtempSync(join(tmpdir(), 'netvol-bench-'));
  mkdirSync(RESULTS, { recursive: true });
  if (options.profile) mkdirSync(join(RESULTS, 'profiles'), { recursive: true });
  const scripts = writeMountScripts(tmpRoot, join(tmpRoot, 'base'));
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

  // Node start-up plus loading every module of the daemon, with nothing else: `netvol version`
  // imports the whole daemon (cli.ts imports main.ts). Run twice: the first warms the page cache.
  const baseline = [];
  for (let i = 0; i < 3; i++) {
    const t = process.hrtime.bigint();
    spawnSync(process.execPath, [CLI, 'version'], { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: '' } });
    baseline.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const moduleLoadMs = Math.min(...baseline.slice(1));

  const floorSocket = join(tmpRoot, 'floor.sock');
  const floorProc = startChild('floor', process.execPath, [FLOOR, floorSocket], join(tmpRoot, 'floor.log'));
  const floorReadyMs = await waitForSocket(floorSocket, floorProc.t0, floorProc);
  const floor = { socketPath: floorSocket, proc: floorProc };

  process.stdout.write(
    `netvol host benchmark: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, commit ${gitCommit()}\n` +
      `load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}${loadBefore[0] > 0.5 ? '  (!) other work is running: latencies will be noisy; see the bg column' : ''}\n` +
      `sizes ${options.sizes.join(', ')}; concurrency ${options.concurrency.join(', ')}; ${options.durationMs / 1000} s per daemon cell, ${options.floorDurationMs / 1000} s per floor cell\n` +
      `\`node dist/cli.js version\` (node + every daemon module, no work): ${moduleLoadMs.toFixed(0)} ms; floor server ready in ${floorReadyMs.toFixed(0)} ms\n\n` +
      `${header()}\n`,
  );

  const rows = [];
  const startups = [];
  for (const size of options.sizes) {
    await benchSize({ size, options, floor, scripts, bootId, rows, startups });
  }
  const floorRss = procStatus(floorProc.pid);
  await stopChild(floorProc);

  // Final report
  const targets = evaluateTargets(rows, startups);
  const out = [];
  out.push('', header(), ...rows.map(formatRow), '');
  out.push('Start-up and memory');
  const startCols = [
    ['volumes', 7, (s) => String(s.volumes)],
    ['ready ms (median; each)', 24, (s) => `${s.readyMs.toFixed(0)}; ${s.readyAllMs.map((ms) => ms.toFixed(0)).join('/')}`],
    ['startDaemon ms', 14, (s) => (Number.isFinite(s.startDaemonMs) ? s.startDaemonMs.toFixed(0) : '?')],
    ['RSS idle MB (anon+file)', 23, (s) => `${s.rssIdleMB.toFixed(1)} (${s.rssIdleAnonMB.toFixed(0)}+${s.rssIdleFileMB.toFixed(0)})`],
    ['RSS loaded MB (anon+file)', 25, (s) => `${s.rssAfterLoadMB.toFixed(1)} (${s.rssAfterLoadAnonMB.toFixed(0)}+${s.rssAfterLoadFileMB.toFixed(0)})`],
    ['peak MB', 8, (s) => s.peakRssMB.toFixed(1)],
    ['state file', 10, (s) => `${(s.stateFileBytes / 1024).toFixed(0)} KiB`],
    ['List reply', 10, (s) => `${(s.listReplyBytes / 1024).toFixed(0)} KiB`],
    ['1st Mount ms', 12, (s) => s.firstMountMs.toFixed(1)],
  ];
  out.push(startCols.map(([name, width]) => name.padStart(width)).join(' '));
  for (const s of startups) out.push(startCols.map(([, width, get]) => get(s).padStart(width)).join(' '));
  out.push(`(node + module loading alone: ${moduleLoadMs.toFixed(0)} ms; floor server RSS ${floorRss.rssMB.toFixed(1)} MB)`, '');
  out.push('Targets');
  for (const t of targets) out.push(`  [${t.met ? 'met   ' : 'MISSED'}] ${t.target}: ${t.worst ? `worst ${t.worst}; ` : ''}${t.measured}`);
  const totalErrors = rows.reduce((sum, r) => sum + r.errors, 0);
  const busiest = rows.reduce((m, r) => Math.max(m, r.otherCores, r.floor.otherCores), 0);
  out.push('', `Background load (CPU cores used by other processes, worst cell): ${busiest.toFixed(1)}; load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  out.push(`${totalErrors} failed calls in total. Run time ${((Date.now() - runStarted) / 1000).toFixed(0)} s.`);
  process.stdout.write(`${out.join('\n')}\n`);

  const stamp = new Date(runStarted).toISOString().replace(/[:.]/g, '-');
  const result = {
    schema: 'netvol-bench/1',
    startedAt: new Date(runStarted).toISOString(),
    runSeconds: (Date.now() - runStarted) / 1000,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, kernel: release(), node: process.version },
    commit: gitCommit(),
    options,
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadavg(),
    moduleLoadMs,
    floorRssMB: floorRss.rssMB,
    startups,
    rows,
    targets,
  };
  const json = `${JSON.stringify(result, null, 2)}\n`;
  writeFileSync(join(RESULTS, `${stamp}.json`), json);
  writeFileSync(join(RESULTS, 'latest.json'), json);
  process.stdout.write(`Results: bench/results/${stamp}.json (and bench/results/latest.json)\n`);
  if (options.profile) process.stdout.write(`CPU profiles: ${join(RESULTS, 'profiles')} (summarise with node scripts/bench/profile-summary.mjs FILE)\n`);
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench: ${error.stack ?? error}\n`);
  process.exitCode = 1;
} finally {
  cleanupSync();
}
