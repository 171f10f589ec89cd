// The lab half of the benchmark, run inside the guest (scenarios.sh bench_lab): what a user
// feels at `docker run`, with a netvol NFS volume versus Docker's own `local` driver mounting
// the same export (type=nfs), measured in the same boot, interleaved, several rounds; a second
// container on an already-mounted volume; 20 volumes mounted concurrently versus one by one
// through netvol's socket. Prints a table and writes JSON.
//   node bench-lab.mjs ROUNDS OUT.json
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';

const rounds = Number(process.argv[2] ?? 5);
const out = process.argv[3] ?? '/tmp/bench-lab.json';
const SRV = '10.99.0.1';
const EXPORT = '/srv/nfs/bench';
const SOCKET = '/run/docker/plugins/nfs.sock';

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout.trim();
}
const now = () => Number(process.hrtime.bigint()) / 1e6;

/** `docker run` until the container's first line of output, and until it is gone. */
function timedRun(volume) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    let first;
    const p = spawn('docker', ['run', '--rm', '-v', `${volume}:/data`, 'busybox', 'sh', '-c', 'echo ready; ls /data > /dev/null']);
    let err = '';
    p.stdout.on('data', (d) => { if (first === undefined && String(d).includes('ready')) first = now() - t0; });
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 && first !== undefined ? resolve({ first, total: now() - t0 }) : reject(new Error(`docker run -v ${volume}: exit ${code}: ${err}`))));
  });
}

const drivers = {
  netvol: (name) => sh('docker', ['volume', 'create', '-d', 'nfs', '--name', name, '-o', `share=${SRV}:${EXPORT}`]),
  local: (name) => sh('docker', ['volume', 'create', '-d', 'local', '--name', name, '-o', 'type=nfs', '-o', `o=addr=${SRV},rw,nfsvers=4`, '-o', `device=:${EXPORT}`]),
};

function stats(xs) {
  if (xs.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.round(p * (s.length - 1)))];
  return { n: s.length, median: +q(0.5).toFixed(0), min: +s[0].toFixed(0), max: +s.at(-1).toFixed(0) };
}

function call(endpoint, body) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: SOCKET, path: `/VolumeDriver.${endpoint}`, method: 'POST', timeout: 60_000 }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        const reply = JSON.parse(text || '{}');
        reply.Err ? reject(new Error(`${endpoint} ${body.Name}: ${reply.Err}`)) : resolve(reply);
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const result = { rounds, firstOutput: { netvol: [], local: [] }, total: { netvol: [], local: [] }, secondContainer: { netvol: [], local: [] } };

// Warm-up: image and page cache, the NFS server's first client.
for (const kind of ['netvol', 'local']) {
  drivers[kind](`bw-${kind}`);
  await timedRun(`bw-${kind}`);
  sh('docker', ['volume', 'rm', `bw-${kind}`]);
}

for (let r = 0; r < rounds; r++) {
  // Interleaved, order alternating: drift on a shared machine hits both alike.
  for (const kind of r % 2 ? ['local', 'netvol'] : ['netvol', 'local']) {
    const name = `b${r}-${kind}`;
    drivers[kind](name);
    const t = await timedRun(name);
    result.firstOutput[kind].push(t.first);
    result.total[kind].push(t.total);
    // A second container while a first one holds the volume mounted: the reuse path.
    sh('docker', ['run', '-d', '--name', `${name}-holder`, '-v', `${name}:/data`, 'busybox', 'sleep', '600']);
    const t2 = await timedRun(name);
    result.secondContainer[kind].push(t2.first);
    sh('docker', ['rm', '-f', `${name}-holder`]);
    sh('docker', ['volume', 'rm', name]);
  }
}

// 20 volumes through netvol's socket: one after another, then all at once.
const names = Array.from({ length: 20 }, (_, i) => `bc${i}`);
for (const Name of names) await call('Create', { Name, Opts: { share: `${SRV}:${EXPORT}/c${Name}` } });
sh('mkdir', ['-p', ...names.map((n) => `${EXPORT}/c${n}`)]);
let t0 = now();
for (const Name of names) await call('Mount', { Name, ID: 'seq' });
const sequential = now() - t0;
for (const Name of names) await call('Unmount', { Name, ID: 'seq' });
// The shares outlive their last Unmount by netvol's unmount delay: wait until they are gone,
// or the concurrent round would only reuse them.
await waitUnmounted(names);
t0 = now();
await Promise.all(names.map((Name) => call('Mount', { Name, ID: 'par' })));
const concurrent = now() - t0;
await Promise.all(names.map((Name) => call('Unmount', { Name, ID: 'par' })));
for (const Name of names) await call('Remove', { Name });
result.mount20 = { sequentialMs: +sequential.toFixed(0), concurrentMs: +concurrent.toFixed(0), speedup: +(sequential / concurrent).toFixed(2) };

async function waitUnmounted(volumes) {
  const until = Date.now() + 60_000;
  const mounted = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => volumes.some((v) => l.split(' ')[4]?.endsWith(`/${v}`)));
  while (mounted().length > 0) {
    if (Date.now() > until) throw new Error(`still mounted after 60 s: ${mounted().join('; ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// Where the difference goes. What netvol spent per first Mount (its log), what the mount
// command it runs costs on its own (mount(8) and mount.nfs4), and the kernel mount without the
// helper (mount -i, as the local driver calls mount(2) itself with addr=).
const netvolMountMs = readFileSync('/var/log/netvol/nfs.log', 'utf8').split('\n')
  .map((line) => { try { return JSON.parse(line); } catch { return undefined; } })
  .filter((e) => e && e.msg === 'Mounted' && /\/b\d+-netvol$/.test(e.target ?? '')).map((e) => e.ms);
sh('mkdir', ['-p', '/mnt/bench-mount']);
function timedMount(args) {
  const t = now();
  sh('mount', [...args, '/mnt/bench-mount']);
  const ms = now() - t;
  sh('umount', ['/mnt/bench-mount']);
  return ms;
}
const tool = [], kernel = [], socketGet = [];
for (let r = 0; r < rounds; r++) {
  tool.push(timedMount(['-t', 'nfs4', `${SRV}:${EXPORT}`]));
  kernel.push(timedMount(['-i', '-t', 'nfs4', '-o', `addr=${SRV},vers=4.2`, `${SRV}:${EXPORT}`]));
  await call('Create', { Name: 'bget', Opts: { share: `${SRV}:${EXPORT}` } });
  const t = now();
  await call('Get', { Name: 'bget' });
  socketGet.push(now() - t);
  await call('Remove', { Name: 'bget' });
}
result.breakdown = { netvolMountMs: stats(netvolMountMs), mountToolMs: stats(tool), kernelMountMs: stats(kernel), socketGetMs: stats(socketGet) };

const summary = {};
for (const key of ['firstOutput', 'total', 'secondContainer']) {
  const n = stats(result[key].netvol), l = stats(result[key].local);
  summary[key] = { netvol: n, local: l, ratio: +(n.median / l.median).toFixed(2) };
}
result.summary = summary;
writeFileSync(out, JSON.stringify(result, null, 2));

const row = (label, k) => {
  const { netvol: n, local: l, ratio } = summary[k];
  return `${label.padEnd(36)} ${String(n.median).padStart(7)} (${n.min}-${n.max})`.padEnd(62) + ` ${String(l.median).padStart(7)} (${l.min}-${l.max})`.padEnd(24) + ` ${ratio.toFixed(2)}x`;
};
console.log(`docker run timings in ms, median (min-max) of ${rounds} rounds, TCG guest`);
console.log(`${''.padEnd(36)} ${'netvol nfs'.padStart(20)}`.padEnd(62) + ` ${'local type=nfs'.padStart(18)}`.padEnd(24) + ' ratio');
console.log(row('docker run -> first output', 'firstOutput'));
console.log(row('docker run -> container gone', 'total'));
console.log(row('second container, volume mounted', 'secondContainer'));
const b = result.breakdown;
console.log(`breakdown (ms, median of ${rounds}): netvol Mount (its log) ${b.netvolMountMs.median}; mount -t nfs4 by hand ${b.mountToolMs.median}; mount(2) without the helper (mount -i, addr=) ${b.kernelMountMs.median}; one Get over the socket ${b.socketGetMs.median}`);
console.log(`20 volumes via netvol's socket: one by one ${result.mount20.sequentialMs} ms, concurrently ${result.mount20.concurrentMs} ms (${result.mount20.speedup}x)`);
