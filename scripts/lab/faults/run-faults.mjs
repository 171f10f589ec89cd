#!/usr/bin/env node
// netvol fault lab: host-side orchestrator. Faults under a writer that fsyncs every record,
// and a check on the NFS server's own disk that every acknowledged record survived.
//
//   server guest (192.168.77.1)  knfsd; its export /srv/export is a file system of its own
//                                (a second disk, a third to re-create it on)
//   client guest (192.168.77.2)  netvol (nfs -v 4 --health-interval 5, started before dockerd)
//                                and dockerd; the writer container runs here. Started by the
//                                faults that need them: netvol cifs (Samba restart) and a
//                                second knfsd on the client's loopback (the "other server"
//                                during the partition)
//
// The wire is a pair of UDP sockets on the host's loopback (qemu's `-netdev socket,udp=`),
// not the cluster lab's TCP listen/connect pair: either guest can be killed and booted again
// without the other one's qemu noticing, which a power cut of each side needs.
//
// Everything else goes through one 9p share (results/share, /mnt/results in both guests):
//   clock               the host's time, rewritten every 100 ms; guests set their clocks from it
//   faults.env          addresses and netvol's arguments
//   bin/faultwriter     writer.c, compiled static here (the container image is busybox)
//   acks/<name>.log     each writer's events; an A line = that record's fsync returned
//   <role>/cmd/<id>.sh  a command for a guest (faults-guest.sh serve), answered by .out, .rc
//   <role>/ready        written by the guest once its services are up (its boot id)
//   <role>/netvol-*.log, dmesg-*.log   live copies, so a power cut cannot take the evidence
//
// Usage: node scripts/lab/faults/run-faults.mjs [--only a,b] [--results DIR] [--keep] [--quiet] [--no-wait]
// Needs a C compiler with a static libc (gcc, libc6-dev) besides what the other labs need.
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildImage, consoleTail, ensureBuild, failuresAndNotes, freshResults, lineSplitter, resultsRoot, tcgArgs } from '../run-lab.mjs';
import { checkRecords, parseEvents } from './check-records.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..', '..');
const GUEST_SCRIPT = '/mnt/host/scripts/lab/faults/faults-guest.sh';
const MOUNT_TIMEOUT = 15;
const NETVOL_ARGS = `nfs -v 4 --mount-timeout ${MOUNT_TIMEOUT} --health-interval 5 --verbose`;
const OUTAGE_S = 60;
const PARTITION_S = 45;
// The Samba user's password: a lab secret, in faults.env for both guests.
const SMB_PASSWORD = `lab-${Math.random().toString(36).slice(2, 12)}`;
const VOLUME = 'faultvol';

const GUESTS = {
  server: { ip: '192.168.77.1', mac: '52:54:00:77:00:01', mem: 768, cpus: 1, exportDisks: ['export-a.img', 'export-b.img'] },
  client: { ip: '192.168.77.2', mac: '52:54:00:77:00:02', mem: 1536, cpus: 2, exportDisks: [] },
};

function parseArgs(argv) {
  const o = { only: '', results: '', keep: false, quiet: false, wait: true, timeout: 2400 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--only') o.only = next();
    else if (a === '--results') o.results = next();
    else if (a === '--keep') o.keep = true;
    else if (a === '--quiet') o.quiet = true;
    else if (a === '--no-wait') o.wait = false;
    else if (a === '--timeout') o.timeout = Number(next());
    else if (a === '-h' || a === '--help') {
      console.log('usage: run-faults.mjs [--only restart,stop,stale,partition,netvol-kill,samba,samba-hard,lazy,server-cut,client-cut,lazy-noprobe] [--results DIR] [--keep] [--quiet] [--no-wait] [--timeout S]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const T0 = Date.now();
const stamp = () => `${new Date().toISOString().slice(11, 19)} +${((Date.now() - T0) / 1000).toFixed(0)}s`;
const log = (...a) => console.log(`[faults ${stamp()}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const secs = (ms) => Math.round(ms / 100) / 10;
const readText = (f) => { try { return fs.readFileSync(f, 'utf8'); } catch { return ''; } };

/** A reader polling the share must never see half a command. */
function writeWhole(file, text) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Other labs share this 2-core machine: emulated guests starve each other. */
async function waitForOtherGuests() {
  let said = false;
  while (true) {
    const r = spawnSync('pgrep', ['-f', 'qemu-system'], { encoding: 'utf8' });
    const pids = (r.stdout || '').split('\n').filter(Boolean);
    if (!pids.length) return;
    if (!said) log(`other qemu guests running (pids ${pids.join(' ')}): waiting for them to end`);
    said = true;
    await sleep(30_000);
  }
}

class Guest {
  constructor(lab, role) {
    this.lab = lab;
    this.role = role;
    this.cfg = GUESTS[role];
    this.dir = path.join(lab.share, role);
    this.boots = 0;
    this.vm = null;
    this.seq = 0;
    this.transcript = path.join(this.dir, 'commands.log');
  }

  qemuArgs() {
    const { cfg, lab } = this;
    const disks = [path.join(lab.disks, `${this.role}.qcow2`), ...cfg.exportDisks.map((d) => path.join(lab.disks, d))];
    return [
      '-name', `netvol-faults-${this.role}`, ...tcgArgs(),
      '-smp', String(cfg.cpus), '-m', String(cfg.mem), '-nographic', '-no-reboot', '-serial', 'stdio', '-monitor', 'none',
      '-kernel', lab.image.LAB_KERNEL, '-initrd', lab.image.LAB_INITRD,
      '-append', `root=/dev/vda rw console=ttyS0 apparmor=0 security= init=/sbin/lab-init panic=-1 quiet loglevel=4 systemd.unified_cgroup_hierarchy=1 LABROLE=${this.role}`,
      // writeback, not unsafe: a SIGKILLed qemu must leave the disks as a power cut would,
      // with everything the guest flushed on them (unsafe ignores the guest's flushes).
      ...disks.flatMap((d) => ['-drive', `file=${d},format=${d.endsWith('.qcow2') ? 'qcow2' : 'raw'},if=virtio,cache=writeback`]),
      '-virtfs', `local,path=${lab.stub},mount_tag=host0,security_model=none,id=host0,readonly=on`,
      '-virtfs', `local,path=${REPO},mount_tag=repo,security_model=none,id=repo`,
      '-virtfs', `local,path=${lab.share},mount_tag=results,security_model=none,id=results`,
      '-netdev', `socket,id=n0,udp=127.0.0.1:${lab.ports[this.role === 'server' ? 'client' : 'server']},localaddr=127.0.0.1:${lab.ports[this.role]}`,
      '-device', `virtio-net-pci,netdev=n0,mac=${cfg.mac}`,
      '-device', 'virtio-rng-pci',
    ];
  }

  launch() {
    const boot = ++this.boots;
    fs.rmSync(path.join(this.dir, 'ready'), { force: true });
    fs.rmSync(path.join(this.dir, 'stop'), { force: true });
    fs.rmSync(path.join(this.dir, 'cmd'), { recursive: true, force: true });
    fs.mkdirSync(path.join(this.dir, 'cmd'), { recursive: true });
    const consoleLog = path.join(this.lab.results, `console-${this.role}-${boot}.log`);
    const out = fs.createWriteStream(consoleLog);
    const proc = spawn('qemu-system-x86_64', this.qemuArgs(), { stdio: ['ignore', 'pipe', 'pipe'] });
    const vm = { proc, pid: proc.pid, boot, consoleLog, exited: false, expected: false, startedAt: Date.now() };
    const split = lineSplitter((line) => {
      if (!this.lab.o.quiet && /^\[faults-/.test(line)) console.log(`  ${this.role}${boot > 1 ? `#${boot}` : ''} ${line}`);
    });
    const onData = (chunk) => { out.write(chunk); split(chunk); };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    vm.exitPromise = new Promise((resolve) => proc.on('exit', (code, signal) => {
      vm.exited = true;
      out.end();
      const what = `${this.role} boot ${boot} (qemu pid ${vm.pid}) exited (${signal || `code ${code}`}) after ${secs(Date.now() - vm.startedAt)} s`;
      this.lab.events.push({ t: Date.now(), event: 'exit', role: this.role, boot, code, signal, expected: vm.expected || this.lab.finishing });
      log(vm.expected || this.lab.finishing ? what : `UNEXPECTED: ${what}`);
      resolve();
    }));
    this.vm = vm;
    this.lab.events.push({ t: Date.now(), event: 'boot', role: this.role, boot, pid: vm.pid });
    log(`started ${this.role} (boot ${boot}, qemu pid ${vm.pid}), console -> ${consoleLog}`);
    return vm;
  }

  /** The power cut: SIGKILL our own qemu, by its PID. Returns the host time of the kill. */
  async kill() {
    const vm = this.vm;
    if (!vm || vm.exited) return null;
    vm.expected = true;
    const t = Date.now();
    try { process.kill(vm.pid, 'SIGKILL'); } catch { /* gone already */ }
    await vm.exitPromise;
    this.lab.events.push({ t, event: 'kill', role: this.role, boot: vm.boot, pid: vm.pid });
    return t;
  }

  async waitReady(timeoutS = 300) {
    const t0 = Date.now();
    const f = path.join(this.dir, 'ready');
    while (!fs.existsSync(f)) {
      if (this.vm.exited) throw new Error(`${this.role} powered off before it was ready; its console ended:\n${consoleTail(this.vm.consoleLog, 15)}`);
      if (Date.now() - t0 > timeoutS * 1000) throw new Error(`${this.role} not ready after ${timeoutS} s; its console ended:\n${consoleTail(this.vm.consoleLog, 15)}`);
      await sleep(500);
    }
    this.bootId = readText(f).trim();
    return (Date.now() - t0) / 1000;
  }

  /** Run a bash script in the guest (faults-guest.sh serve). Resolves { rc, out, seconds }. */
  async sh(script, { timeout = 60, allowFail = false } = {}) {
    const id = `${String(++this.seq).padStart(4, '0')}`;
    const dir = path.join(this.dir, 'cmd');
    const t0 = Date.now();
    fs.appendFileSync(this.transcript, `--- ${new Date().toISOString()} #${id} (timeout ${timeout}s)\n${script}\n`);
    writeWhole(path.join(dir, `${id}.sh`), `# timeout ${timeout}\nset -o pipefail\n${script}\n`);
    const rcFile = path.join(dir, `${id}.rc`);
    while (!fs.existsSync(rcFile)) {
      if (this.vm.exited) throw new Error(`${this.role} went down while running: ${script.slice(0, 120)}`);
      if (Date.now() - t0 > (timeout + 30) * 1000) throw new Error(`${this.role} did not answer in ${timeout + 30} s: ${script.slice(0, 120)}`);
      await sleep(250);
    }
    const rc = Number(readText(rcFile).trim());
    const out = readText(path.join(dir, `${id}.out`)).trimEnd();
    const seconds = (Date.now() - t0) / 1000;
    fs.appendFileSync(this.transcript, `=== #${id} rc=${rc} in ${seconds.toFixed(1)}s\n${out}\n`);
    if (rc !== 0 && !allowFail) throw new Error(`${this.role}: \`${script.slice(0, 160)}\` failed (exit ${rc}${rc === 124 ? ', timed out' : ''}): ${out.slice(-600)}`);
    return { rc, out, seconds };
  }

  action(args, o) { return this.sh(`bash ${GUEST_SCRIPT} ${args}`, o); }
}

class Lab {
  constructor(o, image, results) {
    this.o = o;
    this.image = image;
    this.results = results;
    this.share = path.join(results, 'share');
    this.stub = path.join(results, 'stub');
    this.disks = path.join(results, 'disks');
    this.events = [];
    this.server = new Guest(this, 'server');
    this.mountpoints = {};
    this.client = new Guest(this, 'client');
  }

  async prepare() {
    for (const d of [this.share, this.disks, path.join(this.share, 'acks'), path.join(this.share, 'bin'), path.join(this.share, 'checks')]) fs.mkdirSync(d, { recursive: true });
    const cc = spawnSync('cc', ['-static', '-O2', '-Wall', '-o', path.join(this.share, 'bin', 'faultwriter'), path.join(HERE, 'writer.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`cannot build the writer (cc -static; needs gcc and libc6-dev): ${cc.error ? cc.error.message : cc.stderr}`);
    // The image's /sbin/lab-init runs scripts/lab/guest-init.sh from the share tagged host0:
    // a stub there puts the repository over /mnt/host and hands over to this lab's script.
    const stubScript = path.join(this.stub, 'scripts', 'lab', 'guest-init.sh');
    fs.mkdirSync(path.dirname(stubScript), { recursive: true });
    fs.writeFileSync(stubScript, [
      '#!/bin/sh',
      'mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose repo /mnt/host || { echo "faults stub: cannot mount the repo share"; exit 1; }',
      `exec /bin/bash ${GUEST_SCRIPT} init`,
      '',
    ].join('\n'), { mode: 0o755 });
    for (const role of Object.keys(GUESTS)) {
      const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', this.image.LAB_IMAGE, '-F', 'raw', path.join(this.disks, `${role}.qcow2`)], { stdio: 'inherit' });
      if (r.status !== 0) throw new Error('qemu-img create failed');
    }
    for (const d of GUESTS.server.exportDisks) {
      fs.closeSync(fs.openSync(path.join(this.disks, d), 'w'));
      fs.truncateSync(path.join(this.disks, d), 256 * 1024 * 1024);
    }
    fs.writeFileSync(path.join(this.share, 'faults.env'), [
      `IP_server=${GUESTS.server.ip}`, `IP_client=${GUESTS.client.ip}`,
      `MAC_server=${GUESTS.server.mac}`, `MAC_client=${GUESTS.client.mac}`,
      'NET=192.168.77.0/24',
      `NETVOL_ARGS='${NETVOL_ARGS}'`,
      `SMB_PASSWORD='${SMB_PASSWORD}'`,
      '',
    ].join('\n'));
    this.ports = { server: await freeUdpPort(), client: await freeUdpPort() };
    const tick = () => { try { writeWhole(path.join(this.share, 'clock'), (Date.now() / 1000).toFixed(3)); } catch { /* share gone at exit */ } };
    tick();
    this.clockTimer = setInterval(tick, 100);
    log(`wire: UDP 127.0.0.1:${this.ports.server} (server) <-> 127.0.0.1:${this.ports.client} (client)`);
  }

  async stopAll() {
    this.finishing = true;
    if (this.clockTimer) clearInterval(this.clockTimer);
    for (const g of [this.client, this.server]) {
      if (!g.vm || g.vm.exited) continue;
      log(`killing leftover qemu for ${g.role} (pid ${g.vm.pid})`);
      try { process.kill(g.vm.pid, 'SIGKILL'); } catch { /* gone */ }
      await g.vm.exitPromise;
    }
  }

  stopAllSync() {
    for (const g of [this.client, this.server]) if (g.vm && !g.vm.exited) { try { process.kill(g.vm.pid, 'SIGKILL'); } catch { /* gone */ } }
  }
}

// ------------------------------------------------------------------ writer and checks
class Writer {
  constructor(lab, name, volume = VOLUME) {
    this.lab = lab;
    this.name = name;
    this.volume = volume;
    this.file = path.join(lab.share, 'acks', `${name}.log`);
  }

  async start() {
    const t0 = Date.now();
    await this.lab.client.sh(`docker run -d --name w-${this.name} --network none -v ${this.volume}:/data -v /mnt/results/bin:/lab:ro -v /mnt/results/acks:/acks busybox /lab/faultwriter /data/${this.name}.rec /acks/${this.name}.log 100`, { timeout: 120 });
    this.startSeconds = (Date.now() - t0) / 1000;
    // netvol's Get names the mountpoint only while the share is mounted.
    const mps = this.lab.mountpoints;
    if (!mps[this.volume]) mps[this.volume] = (await this.lab.client.sh(`docker volume inspect -f '{{.Mountpoint}}' ${this.volume}`)).out.trim();
    if (!mps[this.volume]) throw new Error(`docker volume inspect ${this.volume} names no mountpoint while w-${this.name} runs`);
    return this;
  }

  events() { return parseEvents(readText(this.file)); }

  /** Wait for n acknowledgements whose fsync returned after host time `after`. */
  async acks(n, timeoutS, after = 0) {
    const t0 = Date.now();
    while (true) {
      const ev = this.events();
      const fresh = [...ev.acks.values()].filter(([, end]) => end > after).length;
      if (fresh >= n) return ev;
      if (Date.now() - t0 > timeoutS * 1000) {
        throw new Error(`writer ${this.name}: ${fresh} of ${n} acknowledgements after ${after ? new Date(after).toISOString().slice(11, 23) : 'start'} within ${timeoutS} s (${ev.acks.size} in all, ${ev.errors.length} errors${ev.errors.length ? `, last: ${fmtError(ev.errors.at(-1))}` : ''})`);
      }
      await sleep(500);
    }
  }

  /**
   * docker rm -f, then wait for netvol to unmount the share (its unmount delay, then umount):
   * the next fault starts from an unmounted volume. When the share stays mounted, who holds it
   * goes into the row's notes.
   */
  async remove(row, { waitUnmount = true } = {}) {
    const rm = await this.lab.client.sh(`docker rm -f w-${this.name} > /dev/null`, { timeout: 60, allowFail: true });
    if (!waitUnmount) return rm;
    const mp = this.lab.mountpoints[this.volume];
    const t0 = Date.now();
    while (Date.now() - t0 < 15_000) {
      const m = await this.lab.client.action('nfs-mounts', { timeout: 20, allowFail: true });
      if (!m.out.split('\n').some((l) => l.startsWith(`${mp} `))) return rm;
      await sleep(1500);
    }
    const h = await this.lab.client.action(`holders ${mp}`, { timeout: 30, allowFail: true });
    const why = netvolLog(this.lab, /Unmount after the unmount delay failed/).filter((x) => x.time >= t0 - 5000).map(logBrief);
    if (row) row.notes.push(`share still mounted ${secs(Date.now() - t0)} s after docker rm -f w-${this.name}: ${why.join(' | ') || 'no unmount failure logged'}; ${h.out.replace(/\n/g, '; ')}`);
    return rm;
  }
}

const fmtError = (e) => `${e.op} ${e.errno} (${e.text})`;

/** What the writer lived through: longest gap between acks, errors by kind, slow calls. */
function writerView(ev, faultAt, healAt) {
  const ends = [...ev.acks.entries()].sort((a, b) => a[0] - b[0]).map(([, [, end]]) => end);
  let stall = 0;
  let stallFrom = 0;
  for (let i = 1; i < ends.length; i++) if (ends[i] - ends[i - 1] > stall) { stall = ends[i] - ends[i - 1]; stallFrom = ends[i - 1]; }
  const kinds = new Map();
  for (const e of ev.errors) {
    const k = `${e.op} ${e.errno}`;
    const x = kinds.get(k) || { n: 0, first: e.t, last: e.t, text: e.text };
    x.n++;
    x.last = e.t;
    kinds.set(k, x);
  }
  const rel = (t) => (faultAt ? `${secs(t - faultAt) >= 0 ? '+' : ''}${secs(t - faultAt)} s` : new Date(t).toISOString().slice(11, 23));
  const errors = [...kinds.entries()].map(([k, x]) => `${k} (${x.text}) x${x.n}, ${rel(x.first)}..${rel(x.last)} after the fault`);
  const slowest = ev.slow.slice().sort((a, b) => b.ms - a.ms)[0];
  const resumed = healAt ? ends.find((t) => t > healAt) : undefined;
  return {
    stall: secs(stall),
    stallAt: stallFrom && faultAt ? secs(stallFrom - faultAt) : null,
    errors,
    errorCount: ev.errors.length,
    slowest: slowest ? `${slowest.op} of seq ${slowest.seq} blocked ${secs(slowest.ms)} s` : '',
    resumedAfterHeal: resumed ? secs(resumed - healAt) : null,
    summary: [
      ev.errors.length ? `${ev.errors.length} errors: ${[...kinds.keys()].join(', ')}` : 'no errors',
      slowest ? `${slowest.op} blocked ${secs(slowest.ms)} s` : '',
    ].filter(Boolean).join('; '),
  };
}

/**
 * The server's own copy of a records file (read from its disk, not through any client's
 * cache), checked against the writer's acknowledgements by check-records.mjs.
 */
async function checkOnServer(lab, name, dir = '/srv/export', guest = lab.server) {
  const copy = path.join(lab.share, 'checks', `${name}.server.rec`);
  fs.rmSync(copy, { force: true });
  const r = await guest.sh(`cp ${dir}/${name}.rec /mnt/results/checks/${name}.server.rec && ls -l --time-style=+%T ${dir}/${name}.rec`, { timeout: 60, allowFail: true });
  const v = { records: `${dir}/${name}.rec`, missing: r.rc === 0 ? false : r.out.slice(-200), ...checkRecords(readText(copy), parseEvents(readText(path.join(lab.share, 'acks', `${name}.log`)))) };
  fs.writeFileSync(path.join(lab.share, 'checks', `${name}.json`), JSON.stringify(v, null, 2));
  return v;
}

function addVerdict(row, v, label) {
  row.acked += v.acked;
  row.lost += v.lost;
  row.duplicated += v.duplicated;
  row.damaged += v.damaged;
  const bad = [];
  if (v.missing) bad.push(`records file missing on the server (${v.missing})`);
  if (v.lost) bad.push(`lost acknowledged seqs ${v.lostSeqs.join(',')}`);
  if (v.duplicated) bad.push(`duplicated acknowledged seqs ${v.duplicatedSeqs.join(',')}`);
  if (v.damaged) bad.push(`damaged acknowledged seqs ${v.damagedSeqs.join(',')}`);
  row.notes.push(`${label}: on the server ${v.found} intact records for ${v.acked} acknowledged (highest ${v.maxAcked}); unacknowledged but present ${v.unackedFound}${v.garbageLines ? `; ${v.garbageLines} unparsable lines` : ''}${v.tornTail ? '; torn last line' : ''}${v.outOfOrder ? `; ${v.outOfOrder} out of order` : ''}${bad.length ? `; ${bad.join('; ')}` : ''}`);
  if (bad.length) row.failures.push(`${label}: ${bad.join('; ')}`);
}

function volumeStatus(statusJson, volume = VOLUME) {
  try {
    const s = JSON.parse(statusJson);
    const v = (s.volumes || []).find((x) => x.name === volume);
    return v || null;
  } catch { return null; }
}
const fmtHealth = (v) => (v ? `mounted=${v.mounted} ids=${v.mounts} health=${v.health ? `${v.health.state}${v.health.detail ? ` (${v.health.detail})` : ''} at ${String(v.health.checkedAt).slice(11, 19)}` : 'none'}` : 'volume not in status');

async function netvolStatus(lab) {
  const t0 = Date.now();
  const r = await lab.client.action('status', { timeout: 30, allowFail: true });
  return { raw: r.out, volume: volumeStatus(r.out), ms: Date.now() - t0 };
}

/** netvol's log lines (JSON) of this client boot that match a pattern. */
function netvolLog(lab, re) {
  const text = readText(path.join(lab.client.dir, `netvol-${lab.client.bootId}.log`));
  return text.split('\n').filter((l) => re.test(l)).map((l) => { try { const j = JSON.parse(l); return { ...j, line: l }; } catch { return { msg: l, line: l }; } });
}
const logBrief = (x) => `${x.time ? new Date(x.time).toISOString().slice(11, 23) : ''} ${x.msg}${x.detail ? ` (${x.detail})` : ''}${x.err ? ` err=${String(x.err).slice(0, 160)}` : ''}`;

// ------------------------------------------------------------------ scenarios
const SCENARIOS = [];
const scenario = (name, fault, fn) => SCENARIOS.push({ name, fault, fn });

/** A writer through one fault: start, n acks, fault, heal, n acks after the heal, stop, check. */
async function throughFault(lab, row, name, inject, heal, { resumeTimeout = 180, volume = VOLUME, dir = '/srv/export' } = {}) {
  const w = await new Writer(lab, name, volume).start();
  await w.acks(15, 90);
  const faultAt = Date.now();
  row.figures.fault = await inject();
  const healAt = heal ? await heal(faultAt) : faultAt;
  await w.acks(15, resumeTimeout, healAt);
  await w.remove(row);
  const view = writerView(w.events(), faultAt, healAt);
  row.stall = view.stall;
  row.saw = view.summary;
  row.notes.push(`writer: longest gap between acks ${view.stall} s (from ${view.stallAt} s after the fault); writes resumed ${view.resumedAfterHeal} s after the ${heal ? 'heal' : 'fault'}; ${view.errorCount ? view.errors.join('; ') : 'no errors'}${view.slowest ? `; ${view.slowest}` : ''}`);
  addVerdict(row, await checkOnServer(lab, name, dir), name);
  return { w, view, faultAt, healAt };
}

scenario('restart', 'knfsd restarted', async (lab, row) => {
  await throughFault(lab, row, 'restart', async () => (await lab.server.action('nfsd-restart')).out);
});

scenario('stop', `knfsd stopped ${OUTAGE_S} s`, async (lab, row) => {
  await throughFault(lab, row, 'stop', async () => (await lab.server.action('nfsd-stop')).out, async (faultAt) => {
    await sleep(OUTAGE_S * 1000 / 2);
    const st = await netvolStatus(lab);
    row.notes.push(`netvol status ${secs(Date.now() - faultAt)} s into the outage (answered in ${secs(st.ms)} s): ${fmtHealth(st.volume)}`);
    await sleep(Math.max(0, faultAt + OUTAGE_S * 1000 - Date.now()));
    await lab.server.action('nfsd-start');
    return Date.now();
  });
});

scenario('stale', 'export re-created (new fsid)', async (lab, row) => {
  const old = await new Writer(lab, 'stale-old').start();
  await old.acks(15, 90);
  const faultAt = Date.now();
  const re = await lab.server.action('recreate-export');
  row.notes.push(re.out.split('\n').at(-1));
  // The background check (--health-interval 5) should see it within a round or two.
  let st;
  const deadline = Date.now() + 20_000;
  do {
    await sleep(3000);
    st = await netvolStatus(lab);
  } while (Date.now() < deadline && !(st.volume && st.volume.health && st.volume.health.state === 'stale'));
  row.notes.push(`netvol status ${secs(Date.now() - faultAt)} s after the re-creation: ${fmtHealth(st.volume)}`);
  if (!(st.volume && st.volume.health && st.volume.health.state === 'stale')) row.failures.push(`the background health check did not report the volume stale within 20 s: ${fmtHealth(st.volume)}`);
  // Nobody touches the node: the next container on the volume must get a working mount.
  const t0 = Date.now();
  const next = new Writer(lab, 'stale-next');
  try {
    await next.start();
    row.figures.next_container_start = secs(Date.now() - t0);
    await next.acks(15, 90);
    row.notes.push(`next container: docker run returned in ${row.figures.next_container_start} s and it wrote 15 records`);
  } catch (e) {
    row.failures.push(`the next container on the volume did not get a working mount: ${e.message}`);
  }
  const healed = netvolLog(lab, /stale|Stale/).filter((x) => !x.time || x.time >= faultAt - 2000);
  row.notes.push(`netvol log: ${healed.map(logBrief).join(' | ') || 'no stale lines'}`);
  if (!healed.some((x) => /Stale share mounted again/.test(x.msg || ''))) row.failures.push('netvol did not log "Stale share mounted again"');
  const after = await netvolStatus(lab);
  row.notes.push(`netvol status after the next container: ${fmtHealth(after.volume)}`);
  await old.remove(row, { waitUnmount: false });
  await next.remove(row);
  const view = writerView(old.events(), faultAt);
  row.stall = null;
  row.saw = `old writer: ${view.summary}, never resumed; next container: ${next.startSeconds !== undefined && !row.failures.length ? 'healthy mount' : 'FAILED'}`;
  row.notes.push(`old writer (its container keeps the stale mount): ${view.errorCount ? view.errors.join('; ') : 'no errors'}${view.slowest ? `; ${view.slowest}` : ''}; last ack ${secs(Math.max(0, ...[...old.events().acks.values()].map(([, e]) => e)) - faultAt)} s after the fault`);
  // The old writer's records are on the old file system, which the server keeps mounted there.
  addVerdict(row, await checkOnServer(lab, 'stale-old', '/mnt/old-export'), 'stale-old (old file system)');
  if (next.startSeconds !== undefined) addVerdict(row, await checkOnServer(lab, 'stale-next'), 'stale-next (new file system)');
});

// The partition, with a second volume on another server (a knfsd on the client's loopback)
// written to throughout: it must keep going, a new container on it must start, and netvol's
// socket must answer, while every call to the cut-off server hangs.
scenario('partition', `network partition ${PARTITION_S} s`, async (lab, row) => {
  row.notes.push((await lab.client.action('other-server-up', { timeout: 120 })).out.split('\n').at(-1));
  await lab.client.sh('docker volume create -d nfs --name othervol -o share=127.0.0.1:/srv/other > /dev/null', { timeout: 60 });
  const other = await new Writer(lab, 'partition-other', 'othervol').start();
  await other.acks(5, 90);
  await throughFault(lab, row, 'partition', async () => (await lab.server.action('partition')).out, async (faultAt) => {
    await sleep(15_000);
    const st = await netvolStatus(lab);
    row.notes.push(`netvol status ${secs(Date.now() - faultAt)} s into the partition (answered in ${secs(st.ms)} s): ${fmtHealth(st.volume)}; othervol: ${fmtHealth(volumeStatus(st.raw, 'othervol'))}`);
    if (st.ms > 5000 || !st.volume) row.failures.push(`netvol status during the partition: ${st.ms} ms, ${st.raw.slice(0, 200)}`);
    // The other server's volume: its writer goes on, and a new container starts on it.
    const during = [...other.events().acks.values()].filter(([, end]) => end > faultAt + 2000).length;
    row.figures.other_acks = during;
    // fsync of the one file (dd conv=fsync): sync(1) would flush every file system, the
    // cut-off share's too, and wait for the partition to end.
    const run = await lab.client.sh("docker run --rm --network none -v othervol:/data busybox sh -c 'echo during | dd of=/data/during.txt conv=fsync 2>/dev/null && cat /data/during.txt'", { timeout: 60, allowFail: true });
    row.figures.other_run = secs(run.seconds * 1000);
    row.notes.push(`other server's volume ${secs(Date.now() - faultAt)} s into the partition: its writer acknowledged ${during} records since the cut; a new container on it: exit ${run.rc} in ${row.figures.other_run} s (${run.out.trim()})`);
    if (during < 5) row.failures.push(`the writer on the other server's volume acknowledged only ${during} records during the partition`);
    if (run.rc !== 0 || run.out.trim() !== 'during') row.failures.push(`a new container on the other server's volume failed during the partition (exit ${run.rc}): ${run.out.slice(-200)}`);
    await sleep(Math.max(0, faultAt + PARTITION_S * 1000 - Date.now()));
    await lab.server.action('heal');
    return Date.now();
  }, { resumeTimeout: 300 });
  await other.remove(row);
  addVerdict(row, await checkOnServer(lab, 'partition-other', '/srv/other', lab.client), 'partition-other');
});

// netvol killed under a running writer: the kernel mount does not need the daemon, so the
// writer must not notice; the new netvol must adopt the mount (status shows it mounted, one
// mount ID) and unmount it when the container leaves.
scenario('netvol-kill', 'netvol SIGKILLed mid-write', async (lab, row) => {
  const w = await new Writer(lab, 'netvol-kill').start();
  await w.acks(15, 90);
  const k = await lab.client.action('netvol-kill', { timeout: 30 });
  const faultAt = Date.now();
  row.notes.push(k.out.split('\n')[0]);
  // The daemon stays dead for 10 s; the writer's records go on regardless.
  await sleep(10_000);
  const whileDead = [...w.events().acks.values()].filter(([, end]) => end > faultAt).length;
  row.figures.acks_while_down = whileDead;
  if (whileDead < 10) row.failures.push(`only ${whileDead} records acknowledged in the 10 s netvol was dead`);
  const restarted = await lab.client.action(`netvol-start ${NETVOL_ARGS}`, { timeout: 120 });
  const healAt = Date.now();
  row.figures.restart = secs(restarted.seconds * 1000);
  row.notes.push(`${whileDead} records acknowledged while netvol was dead; restarted: ${restarted.out.split('\n').at(-1)} (${row.figures.restart} s)`);
  const st = await netvolStatus(lab);
  row.notes.push(`netvol status after the restart: ${fmtHealth(st.volume)}`);
  if (!st.volume || !st.volume.mounted || st.volume.mounts !== 1) row.failures.push(`after the restart netvol does not hold the running writer's mount: ${fmtHealth(st.volume)}`);
  const rec = netvolLog(lab, /Reconcile|Leftover|adopt/i).filter((x) => !x.time || x.time >= faultAt);
  if (rec.length) row.notes.push(`netvol at start: ${rec.slice(0, 4).map(logBrief).join(' | ')}`);
  await w.acks(15, 60, healAt);
  const mp = lab.mountpoints[VOLUME];
  await w.remove(row);
  const left = (await lab.client.action('nfs-mounts', { timeout: 20, allowFail: true })).out.split('\n').filter((l) => l.startsWith(`${mp} `));
  if (left.length) row.failures.push(`the adopted mount stayed after its container left: ${left.join('; ')}`);
  const view = writerView(w.events(), faultAt, healAt);
  row.stall = view.stall;
  row.saw = `${view.summary}; ${whileDead} acks while netvol was dead; adopted, unmounted after the container`;
  row.notes.push(`writer: longest gap between acks ${view.stall} s; ${view.errorCount ? view.errors.join('; ') : 'no errors'}`);
  addVerdict(row, await checkOnServer(lab, 'netvol-kill'), 'netvol-kill');
});

// Samba restarted under a CIFS writer (the classic cifs driver): the client reconnects; what
// the writer sees is the measurement, lost records the check. Twice: with the kernel's
// default (soft) and with cifsopts=hard, the option the README tells users to add.
async function sambaRestart(lab, row, name, { hard = false } = {}) {
  row.notes.push((await lab.server.action('smb-start', { timeout: 90 })).out.split('\n').at(-1));
  row.notes.push((await lab.client.action('cifs-start --mount-timeout 15 --verbose', { timeout: 150 })).out.split('\n').at(-1));
  const volume = `smb-${name}`;
  await lab.client.sh(`docker volume create -d cifs --name ${volume} -o share=${GUESTS.server.ip}/lab -o username=faulty -o password=${SMB_PASSWORD}${hard ? ' -o cifsopts=hard' : ''} > /dev/null`, { timeout: 60 });
  await throughFault(lab, row, name, async () => (await lab.server.action('smb-restart', { timeout: 90 })).out, null, { volume, dir: '/srv/smb' });
  // netvol's unmount delay, then umount: the share must be gone soon after its last container.
  const cifsMounts = async () => (await lab.client.sh("awk '{ for (i = 7; $i != \"-\"; i++); if ($(i+1) == \"cifs\" || $(i+1) == \"smb3\") print $5, $(i+3) }' /proc/self/mountinfo", { timeout: 20, allowFail: true })).out.trim();
  let mounts = await cifsMounts();
  for (let i = 0; i < 10 && mounts; i++) { await sleep(1500); mounts = await cifsMounts(); }
  if (mounts) row.failures.push(`a CIFS mount stayed 15 s after the writer left: ${mounts}`);
}
scenario('samba', 'Samba restarted (CIFS, soft)', (lab, row) => sambaRestart(lab, row, 'samba'));
scenario('samba-hard', 'Samba restarted (cifsopts=hard)', (lab, row) => sambaRestart(lab, row, 'samba-hard', { hard: true }));

// Issue item 3: what netvol's lazy detach leaves behind when the server comes back. The
// container removed while the server is gone is an idle one: a process blocked in fsync on
// a dead hard mount waits for writeback uninterruptibly, dockerd cannot kill it and never
// calls Unmount. So the writer stops first, while the server is up, and its acknowledged
// records are the "data written before". Run twice: with the background health check the
// lab's netvol runs with, and with netvol restarted without it (last, as nothing after needs it).
async function lazyDetach(lab, row, name, { volume = VOLUME, settleMs = 0 } = {}) {
  const w = await new Writer(lab, name, volume).start();
  await w.acks(15, 90);
  await lab.client.sh(`docker run -d --name lazy-idle --network none -v ${volume}:/data busybox sleep 1000000 > /dev/null`, { timeout: 120 });
  await lab.client.sh(`docker stop -t 10 w-${name} > /dev/null && docker rm w-${name} > /dev/null`, { timeout: 60 });
  const ev = w.events();
  if (!ev.quit) row.failures.push('the writer did not stop cleanly before the server went away');
  const mp = lab.mountpoints[volume];
  await lab.server.action('partition');
  const faultAt = Date.now();
  // umount first resolves the path, and a stat of the mount's root goes to the server once
  // its cached attributes have expired: only then does umount block. Let them expire.
  await sleep(settleMs);
  const rm = await lab.client.sh('docker rm -f lazy-idle > /dev/null', { timeout: 90, allowFail: true });
  row.figures.rm = secs(rm.seconds * 1000);
  row.notes.push(`server unreachable; docker rm -f of the last container on the volume (idle): exit ${rm.rc} in ${row.figures.rm} s${rm.rc ? `: ${rm.out}` : ''}`);
  // netvol's Unmount: the unmount delay, then umount, which times out (--mount-timeout), then -l.
  let detachedAt = null;
  while (Date.now() - faultAt < 90_000) {
    const m = await lab.client.action('nfs-mounts', { timeout: 20, allowFail: true });
    if (m.rc === 0 && !m.out.split('\n').some((l) => l.startsWith(`${mp} `))) { detachedAt = Date.now(); break; }
    // netvol does not try again by itself after a failed unmount: no need to wait it out.
    if (netvolLog(lab, /Unmount after the unmount delay failed/).some((x) => x.time >= faultAt)) break;
    await sleep(2000);
  }
  // The mount can leave the table before netvol's umount returns: umount(2) takes it out and
  // then blocks in the NFSv4 client's teardown, which still talks to the dead server. netvol
  // says how it ended once its umount returns or times out (--mount-timeout 15 s, then the
  // runner's 5 s kill grace): wait for that line rather than read the log at once.
  if (detachedAt) {
    const until = Date.now() + 30_000;
    while (Date.now() < until && !netvolLog(lab, /Unmounted|detaching lazily|Unmount after the unmount delay failed/).some((x) => x.time >= faultAt)) await sleep(1000);
  }
  const lines = netvolLog(lab, /detaching lazily|Unmounted|Unmounting|unmount/i).filter((x) => x.time >= faultAt - 1000 && /mounter|after the unmount delay/.test(x.line));
  row.notes.push(`netvol: ${lines.map(logBrief).join(' | ') || 'no unmount lines'}`);
  // What the policy must give: the share unmounted once no container holds it, by a plain
  // umount (it can succeed with the server gone while the root's attributes are cached) or by
  // a lazy detach when umount times out or finds it busy. Which one happened is the measurement.
  // Checked in this order: a lazy detach also logs "Unmounted (lazily)".
  const ways = [
    { re: /detaching lazily/, word: 'lazily', how: 'lazily (umount -l after umount timed out or found it busy)' },
    { re: /^Unmounted \(was already gone\)/, word: 'from the table', how: 'by umount(2), which took the mount out of the table while umount.nfs4 still waited on the dead server (netvol: "Unmounted (was already gone)")' },
    { re: /^Unmounted/, word: 'plainly', how: 'by a plain umount, with the server still gone' },
  ];
  const way = ways.find((w) => lines.some((x) => w.re.test(x.msg || '')));
  if (way) row.notes.push(`netvol unmounted the share ${way.how}`);
  else row.failures.push('netvol did not unmount the share (neither "Unmounted" nor "detaching lazily" in its log)');
  if (!detachedAt) {
    row.failures.push(`the mount at ${mp} is still in the mount table ${secs(Date.now() - faultAt)} s after docker rm -f`);
    const h = await lab.client.action(`holders ${mp}`, { timeout: 30, allowFail: true });
    row.notes.push(`holders of the mount, server still gone: ${h.out.replace(/\n/g, '; ')}`);
  }
  else row.figures.detached = secs(detachedAt - faultAt);
  if (detachedAt) row.notes.push(`mountpoint gone from the mount table ${row.figures.detached} s after docker rm -f began`);
  const kern = await lab.client.sh('echo "nfsfs volumes:"; cat /proc/fs/nfsfs/volumes; echo "tasks in D state:"; ps -eo pid,stat,wchan:24,args | awk \'$2 ~ /D/\'', { timeout: 20, allowFail: true });
  row.notes.push(`server still gone, after the detach: ${kern.out.replace(/\n+/g, ' | ')}`);
  await lab.server.action('heal');
  const healAt = Date.now();
  row.notes.push(`server back ${secs(healAt - faultAt)} s after it went away`);
  // A new container on the same volume: does it mount, what does it see?
  const seen = path.join(lab.share, 'acks', `${name}-seen.rec`);
  fs.rmSync(seen, { force: true });
  const run = await lab.client.sh(`docker run --rm --network none -v ${volume}:/data -v /mnt/results/acks:/acks busybox sh -c 'cp /data/${name}.rec /acks/${name}-seen.rec && echo after > /data/${name}-after.txt && sync && wc -l /data/${name}.rec'`, { timeout: 120, allowFail: true });
  row.figures.new_container = secs(run.seconds * 1000);
  row.notes.push(`new container right after the server came back: exit ${run.rc} in ${row.figures.new_container} s: ${run.out.replace(/\n/g, ' ')}`);
  if (run.rc !== 0) row.failures.push(`a new container on the volume failed after the server came back (exit ${run.rc}): ${run.out.slice(-300)}`);
  if (fs.existsSync(seen)) {
    const c = checkRecords(readText(seen), ev);
    row.notes.push(`what the new container saw: ${c.found} intact records for ${c.acked} acknowledged before the server went away, lost ${c.lost}, damaged ${c.damaged}`);
    if (c.lost || c.damaged) row.failures.push(`the new container does not see ${c.lost + c.damaged} acknowledged records`);
  } else if (run.rc === 0) row.failures.push(`the new container saw no ${name}.rec`);
  const kern2 = await lab.client.sh(`echo "nfs mounts:"; bash ${GUEST_SCRIPT} nfs-mounts; echo "nfsfs volumes:"; cat /proc/fs/nfsfs/volumes`, { timeout: 20, allowFail: true });
  row.notes.push(`after the new container: ${kern2.out.replace(/\n+/g, ' | ')}`);
  const after = await lab.server.sh(`cat /srv/export/${name}-after.txt`, { timeout: 20, allowFail: true });
  if (after.out.trim() !== 'after') row.failures.push(`the new container's file is not on the server: ${after.out}`);
  row.saw = `writer stopped first; rm -f ${row.figures.rm} s, unmounted ${way ? way.word : '-'} ${row.figures.detached ?? '-'} s, new container ${run.rc === 0 ? 'mounted' : 'FAILED'}`;
  addVerdict(row, await checkOnServer(lab, name), name);
}

scenario('lazy', 'lazy detach, server back', (lab, row) => lazyDetach(lab, row, 'lazy'));


scenario('server-cut', 'server power cut', async (lab, row) => {
  await throughFault(lab, row, 'server-cut', async () => {
    const t = await lab.server.kill();
    lab.server.launch();
    const ready = await lab.server.waitReady(300);
    row.notes.push(`server qemu SIGKILLed, booted again from the same disks: knfsd up ${secs(Date.now() - t)} s after the cut (boot ${ready.toFixed(0)} s)`);
    return 'killed';
  }, null, { resumeTimeout: 240 });
});

scenario('client-cut', 'client power cut', async (lab, row) => {
  const w = await new Writer(lab, 'client-cut').start();
  await w.acks(15, 90);
  const faultAt = await lab.client.kill();
  // The writer's events are on the host: the acknowledged set is final now.
  addVerdict(row, await checkOnServer(lab, 'client-cut'), 'client-cut');
  lab.client.launch();
  const ready = await lab.client.waitReady(400);
  row.figures.client_boot = Math.round(ready);
  const st = await netvolStatus(lab);
  const mounts = (await lab.client.action('nfs-mounts', { timeout: 20, allowFail: true })).out.trim();
  row.notes.push(`after the reboot (ready in ${ready.toFixed(0)} s): netvol status ${fmtHealth(st.volume)}; nfs mounts: ${mounts || 'none'}`);
  if (!st.volume) row.failures.push(`volume ${VOLUME} missing from netvol status after the reboot: ${st.raw.slice(0, 300)}`);
  else if (st.volume.mounted || st.volume.mounts > 0) row.failures.push(`netvol status after the reboot says ${fmtHealth(st.volume)}, the mount table says ${mounts || 'nothing mounted'}`);
  if (mounts) row.failures.push(`NFS mounted right after the reboot, before any container: ${mounts}`);
  const rec = netvolLog(lab, /Reconcile|reboot/);
  if (rec.length) row.notes.push(`netvol at start: ${rec.slice(0, 3).map(logBrief).join(' | ')}`);
  const old = await lab.client.sh(`docker ps -a --filter name=w-client-cut --format '{{.Names}} {{.Status}}'; docker rm -f w-client-cut > /dev/null`, { timeout: 60, allowFail: true });
  row.notes.push(`the writer's container after the reboot: ${old.out.split('\n')[0] || 'gone'}`);
  const again = new Writer(lab, 'client-cut-after');
  await again.start();
  await again.acks(15, 120);
  await again.remove(row);
  row.notes.push(`a new writer on the volume after the reboot: docker run in ${secs(again.startSeconds * 1000)} s, 15 records`);
  row.saw = `killed with the client; after the reboot: ${mounts ? 'share mounted' : 'nothing mounted'}, ${st.volume ? `status mounted=${st.volume.mounted}` : 'no status'}, new writer wrote`;
  addVerdict(row, await checkOnServer(lab, 'client-cut-after'), 'client-cut-after');
});

// The same without the background probe, on a volume whose attribute cache lasts 5 s
// (actimeo=5) instead of the kernel's 30-60 s, so that umount blocks after a few seconds of
// outage rather than a minute: the case the lazy-detach policy is for.
scenario('lazy-noprobe', 'lazy detach, no health probe', async (lab, row) => {
  const args = NETVOL_ARGS.replace(/ --health-interval \d+/, '');
  const r = await lab.client.action(`netvol-restart ${args}`, { timeout: 120 });
  row.notes.push(`netvol restarted without --health-interval: ${r.out.split('\n').at(-1)}`);
  await lab.client.sh(`docker volume create -d nfs --name ${VOLUME}-ac -o share=${GUESTS.server.ip}:/srv/export -o nfsopts=actimeo=5 > /dev/null`, { timeout: 60 });
  await lazyDetach(lab, row, 'lazy-noprobe', { volume: `${VOLUME}-ac`, settleMs: 6000 });
});

// ------------------------------------------------------------------ main
async function runScenarios(lab, o) {
  const rows = [];
  const only = o.only ? o.only.split(',') : null;
  const summaryFile = path.join(lab.results, 'rows.json');
  await lab.client.sh(`docker volume create -d nfs --name ${VOLUME} -o share=${GUESTS.server.ip}:/srv/export`, { timeout: 60 });
  for (const s of SCENARIOS) {
    if (only && !only.includes(s.name)) continue;
    const row = { name: s.name, fault: s.fault, status: 'pass', acked: 0, lost: 0, duplicated: 0, damaged: 0, stall: null, saw: '', notes: [], failures: [], figures: {}, seconds: 0 };
    const t0 = Date.now();
    log(`=== ${s.name}: ${s.fault}`);
    try {
      await s.fn(lab, row);
    } catch (e) {
      row.failures.push(e.message);
      // A failed step can leave a writer or a partition behind; the next fault needs neither.
      if (lab.server.vm.exited) { lab.server.launch(); await lab.server.waitReady(300).catch(() => undefined); }
      if (lab.client.vm.exited) { lab.client.launch(); await lab.client.waitReady(400).catch(() => undefined); }
      await lab.server.action('heal', { allowFail: true }).catch(() => undefined);
      await lab.server.action('nfsd-start', { allowFail: true }).catch(() => undefined);
      await lab.client.sh('docker rm -f $(docker ps -aq) > /dev/null 2>&1; true', { timeout: 90, allowFail: true }).catch(() => undefined);
    }
    row.seconds = (Date.now() - t0) / 1000;
    if (row.failures.length) {
      row.status = 'fail';
      row.detail = row.failures.join('\n');
    }
    log(`=== ${s.name}: ${row.status.toUpperCase()} in ${row.seconds.toFixed(0)} s; acked ${row.acked}, lost ${row.lost}, duplicated ${row.duplicated}, damaged ${row.damaged}${row.failures.length ? `; ${row.failures.join('; ')}` : ''}`);
    rows.push(row);
    fs.writeFileSync(summaryFile, JSON.stringify(rows, null, 2));
  }
  return rows;
}

async function finish(lab) {
  lab.finishing = true;
  if (lab.client.vm && !lab.client.vm.exited) await lab.client.sh('docker rm -f $(docker ps -aq) > /dev/null 2>&1; true', { timeout: 60, allowFail: true }).catch(() => undefined);
  // The client first: its last sync must reach a live server, or it hangs on the hard mount.
  for (const g of [lab.client, lab.server]) {
    fs.writeFileSync(path.join(g.dir, 'stop'), '');
    const t0 = Date.now();
    while (g.vm && !g.vm.exited && Date.now() - t0 < 90_000) await sleep(500);
  }
  await lab.stopAll();
}

function table(rows) {
  const head = ['fault', 'result', 'acked', 'lost', 'dup', 'damaged', 'stall s', 'writer saw'];
  const body = rows.map((r) => [r.fault, r.status.toUpperCase(), String(r.acked), String(r.lost), String(r.duplicated), String(r.damaged), r.stall === null ? '-' : r.stall.toFixed(1), r.saw || '']);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const fmt = (cells) => cells.map((c, i) => (i >= 2 && i <= 6 ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ').trimEnd();
  return [fmt(head), w.map((n) => '-'.repeat(n)).join('  '), ...body.map(fmt)];
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const results = freshResults(o.results || resultsRoot().replace('netvol-lab-', 'netvol-faults-'));
  log(`repo ${REPO}; results in ${results}`);
  const buildNote = ensureBuild();
  log(buildNote);
  const image = buildImage();
  log(`image ready in ${image.seconds.toFixed(0)} s: ${image.LAB_IMAGE}`);
  const lab = new Lab(o, image, results);
  const onSig = () => { lab.stopAllSync(); process.exit(130); };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  process.once('exit', () => lab.stopAllSync());

  let rows = [];
  let fatal = '';
  try {
    await lab.prepare();
    if (o.wait) await waitForOtherGuests();
    // From the first boot on: waiting for other labs' guests is not this lab's time.
    setTimeout(() => { log(`TIMEOUT after ${o.timeout} s`); lab.stopAllSync(); process.exit(1); }, o.timeout * 1000).unref();
    const tBoot = Date.now();
    lab.server.launch();
    lab.client.launch();
    await Promise.all([lab.server.waitReady(300), lab.client.waitReady(400)]);
    log(`both guests ready in ${secs(Date.now() - tBoot)} s`);
    rows = await runScenarios(lab, o);
  } catch (e) {
    fatal = e.message;
    log(`fatal: ${e.message}`);
  }
  await finish(lab).catch((e) => log(`finish: ${e.message}`));

  if (fatal) rows.push({ name: 'lab', fault: 'lab', status: 'fail', acked: 0, lost: 0, duplicated: 0, damaged: 0, stall: null, saw: '', detail: fatal, notes: [] });
  const unexpected = lab.events.filter((e) => e.event === 'exit' && !e.expected);
  for (const e of unexpected) rows.push({ name: `exit-${e.role}${e.boot}`, fault: `${e.role} died`, status: 'fail', acked: 0, lost: 0, duplicated: 0, damaged: 0, stall: null, saw: '', detail: `${e.role} (boot ${e.boot}) powered off on its own (${e.signal || `code ${e.code}`})`, notes: [] });

  const total = (Date.now() - T0) / 1000;
  const lines = [...table(rows), '', ...failuresAndNotes(rows)];
  lines.push('acked = records whose fsync returned, checked on the server\'s disk: lost/dup/damaged count only those.');
  lines.push('stall = longest gap between two acknowledgements (writer\'s clock). Unacknowledged records may be missing.');
  const failed = rows.filter((r) => r.status === 'fail').length;
  lines.push(`${rows.length - failed} passed, ${failed} failed; image ${image.seconds.toFixed(0)} s; total ${total.toFixed(0)} s`);
  const text = lines.join('\n');
  console.log('\n' + text);
  fs.writeFileSync(path.join(results, 'summary.txt'), text + '\n');
  fs.writeFileSync(path.join(results, 'summary.json'), JSON.stringify({ rows, totalSeconds: total, imageSeconds: image.seconds, build: buildNote, ports: lab.ports, events: lab.events }, null, 2));
  if (!o.keep) fs.rmSync(lab.disks, { recursive: true, force: true });
  log(`results: ${results}`);
  process.exitCode = failed || rows.length === 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e); process.exit(2); });
}
