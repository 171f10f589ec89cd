#!/usr/bin/env node
// netvol cluster lab: host-side orchestrator. Proves Swarm across nodes with qemu guests.
//
// Default (npm run test:cluster): the classic driver, three bookworm guests
//   guest A (192.168.42.1)   the seed's NFS server and the Swarm manager (runs no tasks)
//   guest B (192.168.42.11)  Swarm worker running netvol, started like a user would
//   guest C (192.168.42.12)  Swarm worker running netvol
// --csi (npm run test:cluster-csi): cluster volumes through the CSI managed plugin
// netvol-csi:latest, two forky guests (Docker 28: cluster volumes need 28.2+)
//   guest A (192.168.42.1)   NFS and Samba server, Swarm manager (so the CSI controller) and a
//                            node that runs tasks
//   guest B (192.168.42.11)  Swarm worker
// The classic lab's plugin is built and created once on the host (run-lab.mjs buildPlugin) and
// reaches each guest as a second disk holding dockerd's plugin store: a qcow2 overlay per
// guest, so a killed and rebooted worker finds it enabled, as a real node would. In the CSI lab
// that disk goes to A only and holds the plugins under their registry names (buildRegistryStore):
// A runs Debian's docker-registry and pushes them, and every node, A included, installs the CSI
// plugin with `docker plugin install` from it and later upgrades it to the :next build.
//
// The wire: no multicast and nothing outside this machine. A has two NICs, each a
// `-netdev socket,listen=127.0.0.1:PORT`, bridged inside A (br0); B and C each
// `-netdev socket,connect=` one of them. qemu re-accepts on a listen socket after its peer
// disconnects (checked with three connect/disconnect rounds), which is what lets a killed
// worker come back on the same port.
//
// Coordination goes through one 9p share (results/share, /mnt/results in every guest):
//   clock                   this host's time, rewritten every 100 ms; guests set their clocks
//                           from it at boot so timestamps from different nodes compare
//   cluster.env             settings for the guests
//   swarm/worker-token      written by A after `docker swarm init`; workers poll it and join
//   nodes/<n>/snapshot.json every ~2 s from each worker: mountinfo, `netvol status --json`,
//                           docker containers/volumes, boot id (scripts/lab/cluster/reporter.mjs)
//   requests/<id>.req       A asks this script to kill or boot a worker; answered in <id>.done
//   report.json             A's verdict per step, with timings
//   stop                    A tells the workers to shut down
//
// The image's /sbin/lab-init always runs /mnt/host/scripts/lab/guest-init.sh from the share
// tagged host0. Cluster guests get a small stub directory as host0 instead of the repo: its
// guest-init.sh mounts the repo (tag "repo") over /mnt/host and execs cluster-init.sh (which
// runs csi-node.sh's functions in the CSI lab). So the image recipe and the single-guest lab
// stay untouched.
//
// --upgrade: the CSI lab plus the classic plugin installed from the registry and docker plugin
// upgrade of the CSI plugin on every node under a running task (npm run test:cluster-upgrade).
// Usage: node scripts/lab/cluster/run-cluster.mjs [--csi [--upgrade]] [--timeout S] [--results DIR] [--keep] [--quiet] [--nfs 3|4]
// Environment: NETVOL_CLUSTER_MEM (MiB per guest, default 1024), NETVOL_CLUSTER_CPUS (vCPUs of
//              every guest; default 1, in the CSI lab 2 for A, which serves, manages and runs
//              the scenario, and 1 for B), NETVOL_LAB_CACHE (image cache, as for run-lab.mjs).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCmdlineWatch, buildImage, buildPlugin, consoleTail, earlyCrash, ensureBuild, failuresAndNotes, freshResults, lineSplitter, resultsRoot, tcgArgs } from '../run-lab.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..', '..');

// Addresses exist only on the emulated wire. MACs pick out the NICs inside the guests; A has
// one NIC (a listening socket) per worker, `port` is the index of the one a worker connects to.
const PROFILES = {
  classic: {
    suite: 'bookworm',
    nodes: {
      a: { ip: '192.168.42.1', role: 'manager', macs: ['52:54:00:42:00:a1', '52:54:00:42:00:a2'] },
      b: { ip: '192.168.42.11', role: 'worker', macs: ['52:54:00:42:00:0b'], port: 0 },
      c: { ip: '192.168.42.12', role: 'worker', macs: ['52:54:00:42:00:0c'], port: 1 },
    },
    cpus: {},
    env: [
      // The seed's export (seed-summary.md) and a second share for the service-only named volume.
      'SHARE_PATH=/home/adam/docker/portainer/data',
      'PG_PATH=/home/adam/docker/pgdata',
    ],
    legend: [
      'figures: to_first_write = event -> first log.txt line of the new task (its own timestamp);',
      '  to_mount_call = event -> VolumeDriver.Mount in the new node\'s netvol log; mount = that Mount call -> "Mounted";',
      '  to_running = event -> Swarm lists the task Running (polled every 2 s); to_node_down = kill -> Swarm says Down;',
      '  old_unmounted = drain -> the old node\'s netvol unmounted the share; comeback: boot request -> the node',
      '  reports its new boot id (to_reporting), is Ready (to_ready), netvol logs "Activated in dockerd" (to_activated);',
      '  status_cli = wall time of one `netvol status --json` inside a worker; *first_write = service create/update -> first line.',
    ],
  },
  csi: {
    suite: 'forky',
    nodes: {
      a: { ip: '192.168.42.1', role: 'manager', macs: ['52:54:00:42:00:a1'] },
      b: { ip: '192.168.42.11', role: 'worker', macs: ['52:54:00:42:00:0b'], port: 0 },
    },
    cpus: { a: 2 },
    registry: '192.168.42.1:5000',
    storeOn: ['a'],
    env: [
      // The name every node installs the plugin under (--alias), the one volumes are made
      // with; the registry's copies of the CSI plugin (two builds) and of the classic one.
      'PLUGIN=netvol-csi:latest',
      'REGISTRY=192.168.42.1:5000',
      'PLUGIN_REMOTE=192.168.42.1:5000/netvol-csi:latest',
      'PLUGIN_NEXT=192.168.42.1:5000/netvol-csi:next',
      'CLASSIC_REMOTE=192.168.42.1:5000/netvol:latest',
      // The NFS export the cluster volumes are made in, and the Samba share's directory.
      'VOLUMES_PATH=/home/adam/docker/volumes',
      'SMB_PATH=/home/adam/docker/smb',
      // Trials per way in the bench step (npm run bench:csi asks for more; 0 leaves it out).
      `BENCH_TRIALS=${/^\d+$/.test(process.env.NETVOL_BENCH_TRIALS || '') ? Number(process.env.NETVOL_BENCH_TRIALS) : 3}`,
      // Only these steps (NETVOL_LAB_STEPS=cluster,plugin,bench: the benchmark without the rest).
      `STEPS=${/^[a-z,-]*$/.test(process.env.NETVOL_LAB_STEPS || '') ? process.env.NETVOL_LAB_STEPS || '' : ''}`,
    ],
    legend: [
      'figures: to_created = docker volume create -> `docker volume ls --cluster` says created (polled every 1 s);',
      '  to_running = event -> Swarm lists the task Running (polled every 2 s); to_first_write = event -> the new task\'s',
      '  first log.txt line (its own timestamp); publish = NodePublishVolume call -> answer in the node\'s plugin log;',
      '  old_released = event -> the old node has nothing of the share mounted (host and plugin namespaces);',
      '  to_node_down = kill -> Swarm says Down; comeback: boot request -> Ready (to_ready), plugin answering (to_plugin);',
      '  install_<n> = docker plugin install from the registry on A; push = A pushing the plugins to it;',
      '  enable_<n> = docker plugin enable on the guest; csi_info_wait_<n> = how long the step waited for the manager to',
      '  know the node\'s CSI node id (from NodeGetInfo).',
      '  bench: service create -> first write on A, median per way (premounted = the share mounted by hand and',
      '  bind-mounted; legacy = netvol nfs, a volume-driver mount; cluster = a fresh cluster volume per trial);',
      '  *_vs_premounted = ratio of medians; create_call/publish_call = CreateVolume/NodePublishVolume medians.',
    ],
  },
};

function parseArgs(argv) {
  const o = { timeout: 3600, results: '', keep: false, quiet: false, nfs: '3', csi: false, upgrade: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--timeout') o.timeout = Number(next());
    else if (a === '--results') o.results = next();
    else if (a === '--keep') o.keep = true;
    else if (a === '--quiet') o.quiet = true;
    else if (a === '--nfs') o.nfs = next();
    else if (a === '--csi') o.csi = true;
    else if (a === '--upgrade') { o.csi = true; o.upgrade = true; }
    else if (a === '-h' || a === '--help') {
      console.log('usage: run-cluster.mjs [--csi [--upgrade]] [--timeout S] [--results DIR] [--keep] [--quiet] [--nfs 3|4]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const T0 = Date.now();
const stamp = () => `${new Date().toISOString().slice(11, 19)} +${((Date.now() - T0) / 1000).toFixed(0)}s`;
const log = (...a) => console.log(`[cluster ${stamp()}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Write a file so that a reader on the 9p share never sees half of it. */
function putAtomic(file, text) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** A free loopback port: bind port 0, read it, close. qemu binds it a moment later. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Is something listening on 127.0.0.1:port? Read /proc/net/tcp: connecting would take qemu's one accept. */
function listening(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const rows = fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1);
  return rows.some((r) => {
    const f = r.trim().split(/\s+/);
    return f[1] === `0100007F:${hex}` && f[3] === '0A';
  });
}

class Cluster {
  constructor(o, profile, image, results, pluginStore) {
    this.o = o;
    this.kind = o.csi ? 'csi' : 'classic';
    this.profile = profile;
    this.nodes = profile.nodes;
    this.workers = Object.keys(this.nodes).filter((n) => this.nodes[n].role === 'worker');
    this.image = image;
    this.results = results;
    this.pluginStore = pluginStore;
    this.share = path.join(results, 'share');
    this.stub = path.join(results, 'stub');
    this.disks = path.join(results, 'disks');
    this.ports = [];
    this.vms = {}; // node -> { proc, pid, boot, expectedExit, exited }
    this.boots = Object.fromEntries(Object.keys(this.nodes).map((n) => [n, 0]));
    this.events = []; // host-side log of kills, boots and exits, for the summary
  }

  hasStore(n) {
    return Boolean(this.pluginStore) && (!this.profile.storeOn || this.profile.storeOn.includes(n));
  }

  prepare() {
    for (const d of [this.share, this.disks, path.join(this.share, 'requests'), path.join(this.share, 'swarm')]) fs.mkdirSync(d, { recursive: true });
    for (const n of Object.keys(this.nodes)) fs.mkdirSync(path.join(this.share, 'nodes', n), { recursive: true });
    buildCmdlineWatch(path.join(this.share, 'bin'));
    // The stub that the image's lab-init runs (see the header).
    const stubScript = path.join(this.stub, 'scripts', 'lab', 'guest-init.sh');
    fs.mkdirSync(path.dirname(stubScript), { recursive: true });
    fs.writeFileSync(stubScript, [
      '#!/bin/sh',
      '# netvol cluster lab stub, run by the image\'s /sbin/lab-init from the share tagged host0.',
      '# Put the real repository (tag "repo") over /mnt/host, where a user\'s checkout would be,',
      '# and hand over to the cluster init script.',
      'mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose repo /mnt/host || { echo "cluster stub: cannot mount the repo share"; exit 1; }',
      'exec /bin/bash /mnt/host/scripts/lab/cluster/cluster-init.sh',
      '',
    ].join('\n'), { mode: 0o755 });
    // Persistent disks: a killed worker must come back with its swarm membership, images and
    // netvol state, as a real VM would. qcow2 overlays keep the cached image clean.
    const overlay = (base, disk) => {
      const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', disk], { stdio: 'inherit' });
      if (r.status !== 0) throw new Error('qemu-img create failed');
    };
    for (const n of Object.keys(this.nodes)) {
      overlay(this.image.LAB_IMAGE, path.join(this.disks, `${n}.qcow2`));
      if (this.hasStore(n)) overlay(path.join(this.pluginStore, 'plugins.img'), path.join(this.disks, `${n}-plugins.qcow2`));
    }
    fs.writeFileSync(path.join(this.share, 'cluster.env'), [
      `LAB_KIND=${this.kind}`,
      `NODES='${Object.keys(this.nodes).join(' ')}'`,
      `WORKERS='${this.workers.join(' ')}'`,
      `NFS_VERSION=${this.o.nfs}`,
      `UPGRADE=${this.o.upgrade ? 1 : 0}`,
      ...this.profile.env,
      ...Object.entries(this.nodes).map(([n, v]) => `IP_${n}=${v.ip}`),
      ...Object.entries(this.nodes).map(([n, v]) => `MACS_${n}='${v.macs.join(' ')}'`),
      '',
    ].join('\n'));
  }

  /** The host's clock for the guests (see the header). */
  startClock() {
    const file = path.join(this.share, 'clock');
    const tick = () => { try { putAtomic(file, (Date.now() / 1000).toFixed(3)); } catch { /* share gone at exit */ } };
    tick();
    this.clockTimer = setInterval(tick, 100);
  }

  qemuArgs(n) {
    const v = this.nodes[n];
    const mem = process.env.NETVOL_CLUSTER_MEM || '1024';
    const cpus = process.env.NETVOL_CLUSTER_CPUS || String(this.profile.cpus[n] || 1);
    const nics = [];
    if (v.role === 'manager') {
      v.macs.forEach((mac, i) => nics.push('-netdev', `socket,id=n${i},listen=127.0.0.1:${this.ports[i]}`, '-device', `virtio-net-pci,netdev=n${i},mac=${mac}`));
    } else {
      nics.push('-netdev', `socket,id=n0,connect=127.0.0.1:${this.ports[v.port]}`, '-device', `virtio-net-pci,netdev=n0,mac=${v.macs[0]}`);
    }
    return [
      '-name', `netvol-cluster-${n}`, ...tcgArgs(),
      '-smp', cpus, '-m', mem, '-nographic', '-no-reboot', '-serial', 'stdio', '-monitor', 'none',
      '-kernel', this.image.LAB_KERNEL, '-initrd', this.image.LAB_INITRD,
      // LABNODE=<n>: an unknown key=value on the kernel command line lands in init's environment.
      '-append', `root=/dev/vda rw console=ttyS0 apparmor=0 security= init=/sbin/lab-init panic=-1 quiet loglevel=4 systemd.unified_cgroup_hierarchy=1 LABNODE=${n}`,
      // cache=writeback, not unsafe: a SIGKILLed qemu must leave a consistent qcow2 behind
      // (unsafe may keep qcow2 metadata only in qemu's memory).
      '-drive', `file=${path.join(this.disks, `${n}.qcow2`)},format=qcow2,if=virtio,cache=writeback`,
      '-virtfs', `local,path=${this.stub},mount_tag=host0,security_model=none,id=host0,readonly=on`,
      '-virtfs', `local,path=${REPO},mount_tag=repo,security_model=none,id=repo`,
      '-virtfs', `local,path=${this.share},mount_tag=results,security_model=none,id=results`,
      // dockerd's plugin store (scripts/lab/plugin-store.sh): /dev/vdb in the guest.
      ...(this.hasStore(n) ? ['-drive', `file=${path.join(this.disks, `${n}-plugins.qcow2`)},format=qcow2,if=virtio,cache=writeback`] : []),
      ...nics,
      '-device', 'virtio-rng-pci',
    ];
  }

  launch(n) {
    const boot = ++this.boots[n];
    const consoleLog = path.join(this.results, `console-${n}-${boot}.log`);
    const out = fs.createWriteStream(consoleLog);
    const proc = spawn('qemu-system-x86_64', this.qemuArgs(n), { stdio: ['ignore', 'pipe', 'pipe'] });
    const vm = { proc, pid: proc.pid, boot, expectedExit: false, exited: false, startedAt: Date.now() };
    const split = lineSplitter((line) => {
      if (!this.o.quiet && /^\[(cluster|scenario)/.test(line)) console.log(`  ${n}${boot > 1 ? `#${boot}` : ''} ${line}`);
    });
    const onData = (chunk) => {
      out.write(chunk);
      split(chunk);
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    vm.exitPromise = new Promise((resolve) => proc.on('exit', (code, signal) => {
      vm.exited = true;
      out.end();
      // Workers power off by themselves once A has written "stop": that is the normal end.
      if (fs.existsSync(path.join(this.share, 'stop'))) vm.expectedExit = true;
      const what = `${n} boot ${boot} qemu pid ${vm.pid} exited (${signal || `code ${code}`}) after ${((Date.now() - vm.startedAt) / 1000).toFixed(0)} s`;
      this.events.push({ t: Date.now() / 1000, event: 'exit', node: n, boot, code, signal, expected: vm.expectedExit });
      if (!vm.expectedExit && n !== 'a' && !this.finishing) log(`UNEXPECTED: ${what}`);
      else log(what);
      resolve();
    }));
    this.vms[n] = vm;
    this.events.push({ t: Date.now() / 1000, event: 'boot', node: n, boot, pid: vm.pid });
    log(`started ${n} (boot ${boot}, qemu pid ${vm.pid}), console -> ${consoleLog}`);
    return vm;
  }

  /** SIGKILL one of our qemu processes, by its PID, and wait for it to go. */
  async kill(n) {
    const vm = this.vms[n];
    if (!vm || vm.exited) return null;
    vm.expectedExit = true;
    const t = Date.now() / 1000;
    try { process.kill(vm.pid, 'SIGKILL'); } catch { /* already gone */ }
    await vm.exitPromise;
    this.events.push({ t, event: 'kill', node: n, boot: vm.boot, pid: vm.pid });
    return t;
  }

  /** Requests from the manager guest: requests/<id>.req holding {"action":"kill|boot","node":"b"}. */
  async serveRequests() {
    const dir = path.join(this.share, 'requests');
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.req') && !x.startsWith('.')).sort()) {
      const done = path.join(dir, f.replace(/\.req$/, '.done'));
      if (fs.existsSync(done)) continue;
      let req;
      try { req = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')); } catch { continue; }
      let answer;
      if (!this.nodes[req.node] || this.nodes[req.node].role !== 'worker') answer = { ok: false, error: `unknown worker ${req.node}` };
      else if (req.action === 'kill') {
        log(`request ${f}: kill ${req.node}`);
        const t = await this.kill(req.node);
        answer = t ? { ok: true, t, pid: this.vms[req.node].pid } : { ok: false, error: `${req.node} is not running` };
      } else if (req.action === 'boot') {
        log(`request ${f}: boot ${req.node}`);
        if (this.vms[req.node] && !this.vms[req.node].exited) answer = { ok: false, error: `${req.node} is still running` };
        else {
          const vm = this.launch(req.node);
          answer = { ok: true, t: vm.startedAt / 1000, pid: vm.pid };
        }
      } else answer = { ok: false, error: `unknown action ${req.action}` };
      putAtomic(done, JSON.stringify(answer));
    }
  }

  async run() {
    this.prepare();
    this.startClock();
    for (const _ of this.nodes.a.macs) this.ports.push(await freePort());
    log(`wire: A listens on ${this.workers.map((w) => `127.0.0.1:${this.ports[this.nodes[w].port]} (${w.toUpperCase()})`).join(' and ')}`);
    this.launch('a');
    // The workers connect to A's sockets: qemu exits at once if nobody listens yet.
    const tl = Date.now();
    while (!this.ports.every(listening)) {
      if (this.vms.a.exited) throw new Error('qemu for A exited before listening');
      if (Date.now() - tl > 30_000) throw new Error('qemu for A does not listen after 30 s');
      await sleep(100);
    }
    for (const w of this.workers) this.launch(w);

    const deadline = T0 + this.o.timeout * 1000;
    const report = path.join(this.share, 'report.json');
    let reportSeenAt = 0;
    while (true) {
      await this.serveRequests().catch((e) => log(`request handling failed: ${e.message}`));
      if (!reportSeenAt && fs.existsSync(report)) { reportSeenAt = Date.now(); log('manager wrote report.json; waiting for the guests to power off'); }
      const allDown = Object.values(this.vms).every((vm) => vm.exited);
      if (allDown) break;
      if (this.vms.a.exited && !reportSeenAt) { log('manager A powered off without a report'); break; }
      if (this.vms.a.exited && Date.now() - reportSeenAt > 20_000) { log('A is down; workers still up after 20 s'); break; }
      if (reportSeenAt && Date.now() - reportSeenAt > 240_000) { log('guests still up 240 s after the report'); break; }
      if (Date.now() > deadline) { this.timedOut = true; log(`TIMEOUT after ${this.o.timeout} s`); break; }
      await sleep(500);
    }
    await this.stopAll();
  }

  /** Kill whatever qemu we started and is still running (by PID only). */
  async stopAll() {
    this.finishing = true;
    if (this.clockTimer) clearInterval(this.clockTimer);
    for (const [n, vm] of Object.entries(this.vms)) {
      if (vm.exited) continue;
      log(`killing leftover qemu for ${n} (pid ${vm.pid})`);
      vm.expectedExit = true;
      try { process.kill(vm.pid, 'SIGKILL'); } catch { /* gone */ }
      await vm.exitPromise;
    }
  }

  stopAllSync() {
    for (const vm of Object.values(this.vms)) if (!vm.exited) { try { process.kill(vm.pid, 'SIGKILL'); } catch { /* gone */ } }
  }
}

/**
 * The plugin store of the CSI lab's manager: the CSI plugin twice (builds lab-1 as :latest and
 * lab-2 as :next, told apart by /BUILD in their rootfs, for the upgrade step) and the classic
 * plugin, all under REGISTRY/ names so that `docker plugin push` sends them there. Created on
 * this host for the reason plugin-store.sh gives; nothing is installed on any node from here.
 */
function buildRegistryStore(registry) {
  const cache = process.env.NETVOL_PLUGIN_CACHE || '/var/cache/netvol-plugin';
  const dirs = { csi: path.join(cache, 'csi-plugin-lab'), next: path.join(cache, 'csi-plugin-next-lab'), classic: path.join(cache, 'plugin-lab') };
  const store = path.join(cache, 'store-registry-lab');
  const run = (cmd, args) => spawnSync(cmd, args, { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] }).status === 0;
  log(`building the CSI and classic managed plugins for the registry at ${registry}`);
  if (!run('bash', [path.join(REPO, 'scripts', 'build-plugin.sh'), '--csi', '--out', dirs.csi])) return undefined;
  if (!run('bash', [path.join(REPO, 'scripts', 'build-plugin.sh'), '--out', dirs.classic])) return undefined;
  fs.writeFileSync(path.join(dirs.csi, 'rootfs', 'BUILD'), 'lab-1\n');
  fs.rmSync(dirs.next, { recursive: true, force: true });
  execFileSync('cp', ['-a', dirs.csi, dirs.next]);
  fs.writeFileSync(path.join(dirs.next, 'rootfs', 'BUILD'), 'lab-2\n');
  const ok = run('bash', [path.join(REPO, 'scripts', 'lab', 'plugin-store.sh'),
    dirs.csi, `${registry}/netvol-csi:latest`, store,
    dirs.next, `${registry}/netvol-csi:next`,
    dirs.classic, `${registry}/netvol:latest`]);
  return ok ? store : undefined;
}

/** Each worker's clock minus the host's, from its last snapshot: its own epoch vs the file's mtime. */
function clockSkew(share, workers) {
  const parts = [];
  for (const n of workers) {
    const f = path.join(share, 'nodes', n, 'snapshot.json');
    try {
      const s = JSON.parse(fs.readFileSync(f, 'utf8'));
      parts.push(`${n} ${(s.epoch - fs.statSync(f).mtimeMs / 1000).toFixed(2)}`);
    } catch { /* no snapshot */ }
  }
  return parts.join(', ');
}

function fmtFigures(fig) {
  if (!fig) return '';
  return Object.entries(fig).map(([k, v]) => `${k}=${typeof v === 'number' ? v.toFixed(1) : v}`).join(' ');
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const profile = PROFILES[o.csi ? 'csi' : 'classic'];
  const results = freshResults(o.results || resultsRoot().replace('netvol-lab-', o.csi ? 'netvol-cluster-csi-' : 'netvol-cluster-'));
  log(`repo ${REPO}; results in ${results}`);
  const buildNote = ensureBuild();
  log(buildNote);
  const image = buildImage({ suite: profile.suite });
  log(`${profile.suite} image ready in ${image.seconds.toFixed(0)} s: ${image.LAB_IMAGE}`);
  let pluginStore;
  let pluginSeconds = 0;
  if (profile.plugin || profile.registry) {
    const t0 = Date.now();
    pluginStore = profile.registry ? buildRegistryStore(profile.registry) : buildPlugin(profile.plugin);
    pluginSeconds = (Date.now() - t0) / 1000;
    if (!pluginStore) throw new Error('the managed plugins could not be built or created (see above)');
  }

  let cluster = new Cluster(o, profile, image, results, pluginStore);
  const onSig = () => { cluster.stopAllSync(); process.exit(130); };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  process.once('exit', () => cluster.stopAllSync());
  // The run's fatal error, if any ('' when it ended by itself).
  const runCluster = async () => {
    try { await cluster.run(); return ''; } catch (e) { log(`fatal: ${e.message}`); await cluster.stopAll(); return e.message; }
  };
  let fatal = await runCluster();
  // A kernel that died in its own boot (earlyCrash in run-lab.mjs) ends the run before anything
  // of netvol ran: the whole cluster boots once more, on fresh disks, in results/retry.
  const retryNotes = [];
  const crashed = fs.existsSync(path.join(cluster.share, 'report.json')) ? []
    : Object.keys(cluster.nodes).map((n) => [n, earlyCrash(path.join(results, `console-${n}-1.log`))]).filter(([, c]) => c);
  if (crashed.length) {
    retryNotes.push(`the first run ended without a report: ${crashed.map(([n, c]) => `${n}'s kernel died in its boot (${c})`).join('; ')}; the cluster booted again in ${results}/retry`);
    log(retryNotes[0]);
    cluster = new Cluster(o, profile, image, path.join(results, 'retry'), pluginStore);
    fatal = await runCluster();
  }

  let rep = null;
  try { rep = JSON.parse(fs.readFileSync(path.join(cluster.share, 'report.json'), 'utf8')); } catch { /* none */ }
  const rows = rep ? rep.steps.slice() : [];
  if (retryNotes.length) rows.unshift({ name: 'boot:retried', status: 'retry', seconds: 0, notes: retryNotes });
  if (!rep) {
    const consoleA = path.join(cluster.results, 'console-a-1.log');
    rows.push({ name: 'report', status: 'fail', seconds: 0, detail: `no report.json from the manager${fatal ? ` (${fatal})` : ''}; ${consoleA} ended:\n${consoleTail(consoleA, 15)}` });
  }
  if (cluster.timedOut) rows.push({ name: 'timeout', status: 'fail', seconds: o.timeout, detail: `the run hit --timeout ${o.timeout} s` });
  const unexpected = cluster.events.filter((e) => e.event === 'exit' && !e.expected && e.node !== 'a');
  for (const e of unexpected) rows.push({ name: `exit-${e.node}${e.boot}`, status: 'fail', seconds: 0, detail: `worker ${e.node} (boot ${e.boot}) powered off on its own (${e.signal || `code ${e.code}`})` });

  const total = (Date.now() - T0) / 1000;
  const w = Math.max(12, ...rows.map((r) => r.name.length));
  const lines = [];
  lines.push(`${'step'.padEnd(w)}  result  seconds  figures (seconds)`);
  lines.push(`${'-'.repeat(w)}  ------  -------  -----------------`);
  for (const r of rows) lines.push(`${r.name.padEnd(w)}  ${r.status.toUpperCase().padEnd(6)}  ${Number(r.seconds || 0).toFixed(1).padStart(7)}  ${fmtFigures(r.figures)}`);
  lines.push('', ...failuresAndNotes(rows));
  lines.push(...profile.legend);
  const skew = clockSkew(cluster.share, cluster.workers);
  if (skew) lines.push(`clock skew of the workers against the host at the end (s): ${skew}`);
  const failed = rows.filter((r) => r.status === 'fail').length;
  const passed = rows.filter((r) => r.status === 'pass').length;
  lines.push(`${passed} passed, ${failed} failed; image ${image.seconds.toFixed(0)} s${profile.plugin ? `; plugin ${pluginSeconds.toFixed(0)} s` : ''}; total ${total.toFixed(0)} s${cluster.timedOut ? '; TIMEOUT' : ''}`);
  const text = lines.join('\n');
  console.log('\n' + text);
  fs.writeFileSync(path.join(results, 'summary.txt'), text + '\n');
  fs.writeFileSync(path.join(results, 'summary.json'), JSON.stringify({
    rows, totalSeconds: total, imageSeconds: image.seconds, pluginSeconds, suite: profile.suite, timeout: Boolean(cluster.timedOut), build: buildNote,
    ports: cluster.ports, events: cluster.events, guest: rep ? { startedAt: rep.startedAt, finishedAt: rep.finishedAt, clock: rep.clock } : null,
  }, null, 2));
  if (!o.keep) fs.rmSync(cluster.disks, { recursive: true, force: true });
  log(`results: ${results}`);
  process.exitCode = failed || cluster.timedOut || rows.length === 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e); process.exit(2); });
}
