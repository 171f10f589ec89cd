#!/usr/bin/env node
// netvol real-mount lab: host-side runner.
//
// Builds (or reuses) the guest image, boots a Debian bookworm guest under qemu TCG with the
// repository shared over 9p, lets scripts/lab/guest-init.sh start the NFS/SMB servers and
// dockerd and run scripts/lab/scenarios.sh, then prints the report and exits non-zero on any
// failure or timeout.
//
// Usage: node scripts/lab/run-lab.mjs [--mode scenarios|smoke|demo|bench|systemd|boot2docker|dockerfile] [--only s1a,s3] [--no-reboot]
//                                     [--suite bookworm|forky] [--timeout SECONDS] [--results DIR] [--keep]
// --suite forky runs the classic driver's scenarios on the CSI lab's Docker 28 image.
// Environment: NETVOL_LAB_CACHE (image cache dir, default /var/cache/netvol-lab),
//              NETVOL_LAB_MEM (MiB, default 2048), NETVOL_LAB_CPUS (default 2).
// --mode systemd (npm run test:systemd) boots systemd as PID 1 twice on one persistent disk and
// runs scripts/lab/systemd-lab.sh: install.sh, socket activation, a reboot.
// --mode boot2docker (npm run test:boot2docker) boots three times with a throwaway root and one
// persistent disk, the hooks run in boot2docker's order: scripts/lab/boot2docker-lab.sh.
// --mode dockerfile (npm run test:dockerfile) builds the Dockerfile in a guest on an imported base
// image and runs the image as a managed plugin's rootfs: scripts/lab/dockerfile-lab.sh.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');

function parseArgs(argv) {
  const o = { mode: 'scenarios', only: '', reboot: true, timeout: 0, results: '', keep: false, quiet: false, suite: 'bookworm' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--mode') o.mode = next();
    else if (a === '--only') o.only = next();
    else if (a === '--no-reboot') o.reboot = false;
    else if (a === '--suite') o.suite = next();
    else if (a === '--timeout') o.timeout = Number(next());
    else if (a === '--results') o.results = next();
    else if (a === '--keep') o.keep = true;
    else if (a === '--quiet') o.quiet = true;
    else if (a === '-h' || a === '--help') {
      console.log('usage: run-lab.mjs [--mode scenarios|smoke|demo|bench|systemd|boot2docker|dockerfile] [--only s1a,s3] [--no-reboot] [--suite bookworm|forky] [--timeout S] [--results DIR]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const log = (...a) => console.log(`[lab ${new Date().toISOString().slice(11, 19)}]`, ...a);

/** The guest image of a Debian suite (build-image.sh): bookworm for these labs, forky for the CSI lab. */
export function buildImage({ suite = 'bookworm' } = {}) {
  const t0 = Date.now();
  const r = spawnSync('bash', [path.join(HERE, 'build-image.sh'), suite], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build-image.sh failed (exit ${r.status})`);
  const env = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(LAB_[A-Z]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2];
  }
  if (!env.LAB_IMAGE || !env.LAB_KERNEL || !env.LAB_INITRD) throw new Error('build-image.sh printed no image paths');
  return { ...env, seconds: (Date.now() - t0) / 1000 };
}

function newestMtime(dir) {
  let newest = 0;
  if (!fs.existsSync(dir)) return 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

// Build dist/ when it is missing or older than src/. Returns a note for the report.
export function ensureBuild() {
  const src = path.join(REPO, 'src');
  const cli = path.join(REPO, 'dist', 'cli.js');
  const srcM = newestMtime(src);
  if (srcM === 0) return 'no src/: daemon scenarios will be skipped';
  const distM = fs.existsSync(cli) ? newestMtime(path.join(REPO, 'dist')) : 0;
  if (distM >= srcM) return 'dist/ up to date';
  log('dist/ missing or stale: npm run build');
  const r = spawnSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'inherit' });
  if (r.status !== 0) return `npm run build failed (exit ${r.status}); using whatever dist/ holds`;
  return 'built dist/ with npm run build';
}

/**
 * The secret watcher the CIFS scenarios run in the guests (scripts/lab/cmdline-watch.c),
 * compiled static into DIR/cmdline-watch (a directory the guests see). Needs gcc and libc6-dev.
 */
export function buildCmdlineWatch(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('cc', ['-static', '-O2', '-Wall', '-o', path.join(dir, 'cmdline-watch'), path.join(HERE, 'cmdline-watch.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot build scripts/lab/cmdline-watch.c (cc -static; needs gcc and libc6-dev): ${r.error ? r.error.message : r.stderr}`);
}

/**
 * Machine and CPU for every lab guest: TCG (the paravirtual /dev/kvm hangs Debian's kernel),
 * a smaller translation cache, and a CPU model with what Debian's userland expects.
 */
export function tcgArgs(tbSizeMb = 256) {
  return ['-machine', 'q35', '-accel', `tcg,thread=multi,tb-size=${tbSizeMb}`, '-cpu', process.env.NETVOL_LAB_CPU || 'qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16'];
}

/** Calls onLine with each complete line of a stream's chunks (a guest console: CR LF endings). */
export function lineSplitter(onLine) {
  let buf = '';
  return (chunk) => {
    buf += chunk.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      onLine(line);
    }
  };
}

/**
 * Units masked for a guest booted with systemd as PID 1: they only cost boot time under TCG and
 * the systemd lab uses none of them (Samba, timers that would run apt or fstrim, the gettys,
 * logind).
 */
export const SYSTEMD_LAB_MASKED = [
  'smbd.service', 'nmbd.service', 'samba-ad-dc.service', 'e2scrub_reap.service', 'e2scrub_all.timer',
  'apt-daily.timer', 'apt-daily-upgrade.timer', 'dpkg-db-backup.timer', 'fstrim.timer',
  'getty@tty1.service', 'serial-getty@ttyS0.service', 'systemd-logind.service',
  // 4-7 s each under TCG in the first boot's systemd-analyze blame, for hardware the guest lacks
  'modprobe@efi_pstore.service', 'modprobe@fuse.service', 'modprobe@dm_mod.service', 'modprobe@loop.service',
  'systemd-binfmt.service',
];

/**
 * boot()'s init and extra kernel arguments for systemd as PID 1 (--mode systemd).
 * systemd-run-generator turns systemd.run= into kernel-command-line.service, which mounts the
 * repository's 9p share (the second boot has it from fstab already) and starts
 * scripts/lab/systemd-lab.sh as the transient netvol-lab.service; --no-block lets that oneshot
 * end at once, so the boot finishes (multi-user.target would wait for it). systemd.run= alone
 * would boot into kernel-command-line.service and leave docker.service stopped, hence
 * systemd.unit=multi-user.target and systemd.wants= (the debug generator adds the wants to the
 * systemd.unit= target). The command has no $ or %: systemd would expand them.
 */
export function systemdBoot() {
  const mount = 'mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose host0 /mnt/host';
  const run = `/bin/sh -c 'modprobe 9pnet_virtio; mountpoint -q /mnt/host || ${mount}; exec systemd-run --no-block --unit=netvol-lab /mnt/host/scripts/lab/systemd-lab.sh'`;
  return {
    init: '/lib/systemd/systemd',
    append: [
      'systemd.unit=multi-user.target', 'systemd.wants=kernel-command-line.service',
      `systemd.run="${run}"`, 'systemd.run_success_action=none', 'systemd.run_failure_action=none',
      ...SYSTEMD_LAB_MASKED.map((u) => `systemd.mask=${u}`),
    ].join(' '),
  };
}

// Boot the guest once. init: PID 1 (the image's /sbin/lab-init stub unless told otherwise);
// append: more kernel arguments. Resolves with { code, timedOut, seconds }.
export function boot({ img, format = 'raw', snapshot = true, kernel, initrd, resultsDir, env, timeoutSec, consoleLog, quiet, onLine, pluginDir, dataDisks = [], init = '/sbin/lab-init', append = '', tbSizeMb }) {
  fs.mkdirSync(resultsDir, { recursive: true });
  buildCmdlineWatch(path.join(resultsDir, 'bin'));
  fs.writeFileSync(path.join(resultsDir, 'lab.env'),
    Object.entries(env).map(([k, v]) => `${k}='${String(v).replace(/'/g, '')}'`).join('\n') + '\n');
  const mem = process.env.NETVOL_LAB_MEM || '2048';
  const cpus = process.env.NETVOL_LAB_CPUS || '2';
  const args = [
    '-name', 'netvol-lab', ...tcgArgs(tbSizeMb),
    '-smp', cpus, '-m', mem, '-nographic', '-no-reboot', '-nic', 'none',
    '-serial', 'stdio', '-monitor', 'none',
    '-kernel', kernel, '-initrd', initrd,
    '-append', `root=/dev/vda rw console=ttyS0 apparmor=0 security= init=${init} panic=-1 quiet loglevel=4 systemd.unified_cgroup_hierarchy=1 nfsd.nfs4_disable_idmapping=1${append ? ' ' + append : ''}`,
    '-drive', `file=${img},format=${format},if=virtio,cache=unsafe${snapshot ? ',snapshot=on' : ''}`,
    '-virtfs', `local,path=${REPO},mount_tag=host0,security_model=none,id=host0`,
    '-virtfs', `local,path=${resultsDir},mount_tag=results,security_model=none,id=results`,
    // The managed plugin's store (scripts/lab/plugin-store.sh), a second disk: /dev/vdb.
    ...(pluginDir ? ['-drive', `file=${path.join(pluginDir, 'plugins.img')},format=raw,if=virtio,cache=unsafe,snapshot=on`] : []),
    // The boot2docker lab's persistent disks (the root disk is a snapshot there): /dev/vdb, vdc.
    ...dataDisks.flatMap((d) => ['-drive', `file=${d},format=raw,if=virtio,cache=unsafe`]),
    '-device', 'virtio-rng-pci',
  ];
  const t0 = Date.now();
  return new Promise((resolve) => {
    const out = fs.createWriteStream(consoleLog);
    const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      log(`timeout after ${timeoutSec} s: killing qemu pid ${q.pid}`);
      try { process.kill(q.pid, 'SIGKILL'); } catch { /* already gone */ }
    }, timeoutSec * 1000);
    const onSig = () => { try { process.kill(q.pid, 'SIGKILL'); } catch { /* gone */ } process.exit(130); };
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const split = lineSplitter((line) => {
      if (onLine) onLine(line);
      if (!quiet && /^\[(guest|scenario)/.test(line)) console.log('  ' + line);
    });
    const handle = (chunk) => {
      out.write(chunk);
      split(chunk);
    };
    q.stdout.on('data', handle);
    q.stderr.on('data', handle);
    q.on('exit', (code) => {
      clearTimeout(timer);
      process.removeListener('SIGINT', onSig);
      process.removeListener('SIGTERM', onSig);
      out.end();
      resolve({ code, timedOut, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

function readReport(dir) {
  const p = path.join(dir, 'report.json');
  if (!fs.existsSync(p)) return null;
  try { return JSON.parse(fs.readFileSync(p, 'utf8')); } catch { return null; }
}

export function resultsRoot() {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  return path.join(os.tmpdir(), `netvol-lab-${stamp}`);
}

const RESULTS_MARK = '.netvol-lab-results';
/**
 * The results directory, empty: the labs' checks read what the guests wrote there (the fault
 * lab's writers append their acknowledgements to acks/, the cluster lab waits for report.json),
 * so a run that found an earlier run's files would check those instead of its own. Only a
 * directory a lab made (it holds the mark file) is emptied; any other that is not empty is
 * refused rather than deleted.
 */
export function freshResults(dir) {
  if (fs.existsSync(dir) && fs.readdirSync(dir).length) {
    if (!fs.existsSync(path.join(dir, RESULTS_MARK))) {
      throw new Error(`results directory ${dir} is not empty and no netvol lab made it: name a new or empty one with --results`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, RESULTS_MARK), `netvol lab results, started ${new Date().toISOString()}\n`);
  return dir;
}

/**
 * A managed plugin, built on the host by scripts/build-plugin.sh (its base rootfs is cached
 * like the guest image) and created there by a private dockerd (scripts/lab/plugin-store.sh);
 * the guests' dockerd gets that plugin store (DIR/plugins.img). kind: classic (netvol:lab, for
 * s13) or csi (netvol-csi:latest, for the CSI cluster lab). A failure is not fatal here: the
 * scenarios that need the plugin fail instead.
 */
export function buildPlugin({ kind = 'classic', name = 'netvol:lab' } = {}) {
  const cache = process.env.NETVOL_PLUGIN_CACHE || '/var/cache/netvol-plugin';
  const out = path.join(cache, kind === 'csi' ? 'csi-plugin-lab' : 'plugin-lab');
  const store = path.join(cache, kind === 'csi' ? 'store-csi-lab' : 'store-lab');
  const t0 = Date.now();
  log(`building the ${kind} managed plugin ${name} (scripts/build-plugin.sh, then docker plugin create on the host)`);
  const run = (args) => spawnSync('bash', args, { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] }).status;
  const status = run([path.join(REPO, 'scripts', 'build-plugin.sh'), ...(kind === 'csi' ? ['--csi'] : []), '--out', out]);
  const created = status === 0 ? run([path.join(REPO, 'scripts', 'lab', 'plugin-store.sh'), out, name, store]) : status;
  if (created !== 0) {
    log(`managed plugin build or create failed (exit ${created})`);
    return undefined;
  }
  log(`managed plugin built and created in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${store}`);
  return store;
}

/**
 * dockerd's data root for the Dockerfile lab's first boot, as an ext4 disk image, with the
 * Dockerfile's FROM image in it: scripts/lab/node-base.sh's tar (cached like the guest image),
 * docker import'ed by a private dockerd on the host (scripts/lab/docker-root.sh).
 */
export function dockerRootWithBase(disk) {
  const t0 = Date.now();
  const r = spawnSync('bash', [path.join(REPO, 'scripts', 'lab', 'node-base.sh')], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  const tar = /^NODE_BASE_TAR=(.*)$/m.exec(r.stdout ?? '')?.[1];
  if (r.status !== 0 || !tar) throw new Error(`scripts/lab/node-base.sh failed (exit ${r.status})`);
  const i = spawnSync('bash', [path.join(REPO, 'scripts', 'lab', 'docker-root.sh'), 'import', disk, tar, 'node:20-bookworm-slim'], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
  if (i.status !== 0) throw new Error(`docker import of ${tar} into ${disk} failed (exit ${i.status})`);
  log(`dockerd's data root with node:20-bookworm-slim (docker import of ${tar}) ready in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${disk}`);
  return disk;
}

/**
 * The managed plugin whose rootfs is a container of the image the first boot built, exported by
 * a private dockerd on the host from that boot's data root, with plugin-config.json, created by
 * another (scripts/lab/plugin-store.sh). Returns its store for the second boot.
 */
export function dockerfilePlugin(dockerDisk, dir) {
  const t0 = Date.now();
  fs.rmSync(dir, { recursive: true, force: true });
  const x = spawnSync('bash', [path.join(REPO, 'scripts', 'lab', 'docker-root.sh'), 'export', dockerDisk, 'netvol:dockerfile', path.join(dir, 'rootfs')], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
  if (x.status !== 0) throw new Error(`cannot export the image the Dockerfile built from ${dockerDisk}`);
  fs.copyFileSync(path.join(REPO, 'plugin-config.json'), path.join(dir, 'config.json'));
  const store = `${dir}-store`;
  const c = spawnSync('bash', [path.join(REPO, 'scripts', 'lab', 'plugin-store.sh'), dir, 'netvol-dockerfile:lab', store], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
  if (c.status !== 0) throw new Error(`docker plugin create of the Dockerfile image's export failed (exit ${c.status})`);
  fs.rmSync(dir, { recursive: true, force: true });
  log(`the Dockerfile image's export is the managed plugin netvol-dockerfile:lab, created in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return store;
}

/** The lab benchmark's table to the console, its JSON next to the host benchmark's. */
function keepBenchResults(dir) {
  const json = path.join(dir, 'bench-lab.json');
  if (!fs.existsSync(json)) return;
  const text = fs.readFileSync(path.join(dir, 'bench-lab.txt'), 'utf8');
  console.log('\n' + text);
  const target = path.join(REPO, 'bench', 'results', `lab-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.json`);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(json, target);
  log(`benchmark JSON: ${target}`);
}

/** A guest's console as lines of text: without the terminal's escapes and CRs, nor empty lines. */
function consoleLines(file) {
  let text;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return null; }
  return text.replace(/\x1b\[[0-9;?]*[a-zA-Z]|\x1bc/g, '').split(/\r?\n/).map((l) => l.trimEnd()).filter(Boolean);
}

/**
 * The last lines of a guest's console, for a boot that ended without its report: CI keeps only
 * the end of the output, and this says where the guest was.
 */
export function consoleTail(file, n = 25) {
  const lines = consoleLines(file);
  return lines ? lines.slice(-n).join('\n') : '(no console log)';
}

/**
 * The kernel's oops line when a guest died in its own boot, before the lab's own scripts said
 * anything (no "[guest", "[scenario" or "[cluster-" line): the emulator's fault, not the lab's,
 * since nothing of netvol ran. Seen once under CI: "Oops: int3" in the scheduler 1.8 s into a
 * forky boot with two vCPUs (multi-threaded TCG patching kernel text under another vCPU). Such a
 * boot is worth one more try.
 */
export function earlyCrash(file) {
  const lines = consoleLines(file) ?? [];
  if (lines.some((l) => /^\[(guest|scenario|cluster-)/.test(l))) return '';
  return lines.find((l) => /Oops:|Kernel panic|BUG: /.test(l))?.trim() ?? '';
}

/** The report's tail, shared with the cluster lab: each failure's detail, then every note. */
export function failuresAndNotes(rows) {
  const lines = [];
  for (const r of rows.filter((x) => x.status === 'fail')) {
    lines.push(`--- ${r.name} FAILED:`);
    lines.push(String(r.detail || '').split('\n').map((l) => '    ' + l).join('\n'));
  }
  const notes = rows.filter((x) => x.notes && x.notes.length);
  if (notes.length) {
    lines.push('notes:');
    for (const r of notes) for (const n of r.notes) lines.push(`  ${r.name}: ${n}`);
  }
  return lines;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const T0 = Date.now();
  const results = freshResults(o.results || resultsRoot());
  log(`repo ${REPO}; results in ${results}`);
  const buildNote = ensureBuild();
  log(buildNote);
  const image = buildImage({ suite: o.suite });
  log(`${o.suite} image ready in ${image.seconds.toFixed(0)} s: ${image.LAB_IMAGE}`);

  const pluginDir = o.mode === 'scenarios' && (!o.only || o.only.split(',').some((s) => s === 's13' || s.startsWith('s13_'))) ? buildPlugin() : undefined;

  const rows = [];
  let anyTimeout = false;
  const boots = [];
  // main boot: disposable snapshot of the image
  boots.push({ name: 'main', env: { LAB_MODE: o.mode, LAB_ONLY: o.only } });
  // reboot scenario: two boots of one persistent qcow2 overlay
  const wantS9 = o.mode === 'scenarios' && o.reboot && (!o.only || o.only.split(',').includes('s9'));
  if (wantS9) {
    boots.push({ name: 'reboot1', env: { LAB_MODE: 'reboot1', LAB_ONLY: '' }, persistent: true });
    boots.push({ name: 'reboot2', env: { LAB_MODE: 'reboot2', LAB_ONLY: '' }, persistent: true });
  }
  if (o.only && o.only.split(',').every((s) => s === 's9')) boots.shift();
  // systemd lab: systemd as PID 1, two boots of one persistent disk (scripts/lab/systemd-lab.sh).
  if (o.mode === 'systemd') {
    boots.splice(0, boots.length,
      { name: 'systemd1', env: { LAB_MODE: 'systemd1' }, persistent: true, systemd: true },
      { name: 'systemd2', env: { LAB_MODE: 'systemd2' }, persistent: true, systemd: true });
  }

  // boot2docker lab: three boots of a throwaway root (boot2docker's root is a RAM disk), the
  // node's persistent disk and the file server's (scripts/lab/boot2docker-lab.sh); the first
  // boot installs from a tarball.
  const dataDisks = [];
  if (o.mode === 'boot2docker') {
    boots.splice(0, boots.length,
      { name: 'b2d1', env: { LAB_MODE: 'b2d1' } },
      { name: 'b2d2', env: { LAB_MODE: 'b2d2' } },
      { name: 'b2d3', env: { LAB_MODE: 'b2d3' } });
    for (const [file, label] of [['b2d-data.img', 'boot2docker-data'], ['b2d-server.img', 'fileserver']]) {
      const disk = path.join(results, file);
      fs.rmSync(disk, { force: true });
      fs.writeFileSync(disk, '');
      fs.truncateSync(disk, 2 * 1024 ** 3);
      const mk = spawnSync('mkfs.ext4', ['-q', '-F', '-L', label, disk], { stdio: 'inherit' });
      if (mk.status !== 0) throw new Error(`mkfs.ext4 of ${disk} failed`);
      dataDisks.push(disk);
    }
    const tgz = path.join(results, 'b2d1', 'netvol-install.tgz');
    fs.mkdirSync(path.dirname(tgz), { recursive: true });
    const mt = spawnSync('sh', [path.join(REPO, 'packaging', 'boot2docker', 'make-tarball.sh'), tgz], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
    if (mt.status !== 0) throw new Error('packaging/boot2docker/make-tarball.sh failed');
  }
  // Dockerfile lab: the first boot builds the Dockerfile on an imported base image and exports
  // a container of it to a raw disk; the host makes that export a managed plugin's rootfs
  // (dockerfilePlugin); the second boot enables it and writes through it
  // (scripts/lab/dockerfile-lab.sh).
  if (o.mode === 'dockerfile') {
    const dockerDisk = dockerRootWithBase(path.join(results, 'df-docker.img'));
    boots.splice(0, boots.length,
      // A larger translation cache for a build that is mostly node's JIT (npm ci, tsc).
      { name: 'df1', env: { LAB_MODE: 'df1' }, dataDisks: [dockerDisk], tbSizeMb: 1024 },
      {
        name: 'df2', env: { LAB_MODE: 'df2' },
        prepare: () => {
          fs.mkdirSync(path.join(results, 'df2'), { recursive: true });
          fs.copyFileSync(path.join(results, 'df1', 'image-cli.sha256'), path.join(results, 'df2', 'image-cli.sha256'));
          return { pluginDir: dockerfilePlugin(dockerDisk, path.join(results, 'df-plugin')) };
        },
      });
    if (!o.keep) dataDisks.push(dockerDisk);
  }
  // What a boot needs from the one before it: the report row that says it ended cleanly (the
  // systemd and boot2docker labs), or every scenario passed (the VM lab's reboot pair).
  const needs = { reboot2: ['reboot1'], systemd2: ['systemd1', 'before_reboot'], b2d2: ['b2d1', 'before_poweroff'], b2d3: ['b2d2', 'before_poweroff'], df2: ['df1', 'close_root'] };

  let overlay = '';
  let firstBootClean = false;
  for (let i = 0; i < boots.length; i++) {
    const b = boots[i];
    const dir = path.join(results, b.retry ? `${b.name}-retry` : b.name);
    // The second boot only means something after a clean first one: a killed qemu leaves the
    // shared overlay half-written.
    if (needs[b.name] && !firstBootClean) {
      rows.push({ name: b.name === 'reboot2' ? 's9_boot2' : b.name, status: 'skip', seconds: 0, detail: `${needs[b.name][0]} did not finish cleanly` });
      continue;
    }
    let img = image.LAB_IMAGE, format = 'raw', snapshot = true;
    if (b.persistent) {
      if (!overlay) {
        overlay = path.join(results, 'reboot-overlay.qcow2');
        const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', image.LAB_IMAGE, '-F', 'raw', overlay], { stdio: 'inherit' });
        if (r.status !== 0) throw new Error('qemu-img create failed');
      }
      img = overlay; format = 'qcow2'; snapshot = false;
    }
    // Bounds for a hung guest, not for speed: under CI, beside another guest, test:e2e's main boot
    // took 2025 s and systemd1 reached its reboot at 586 s.
    const timeoutSec = o.timeout || (b.name === 'main' ? (o.mode === 'scenarios' ? 3000 : o.mode === 'bench' ? 1500 : 900) : b.name === 'df1' ? 1800 : b.name === 'systemd1' ? 1200 : b.name === 'b2d1' ? 900 : 600);
    let prepared = {};
    try {
      prepared = b.prepare ? b.prepare() : {};
    } catch (e) {
      rows.push({ name: `${b.name}:prepare`, status: 'fail', seconds: 0, detail: String(e.message || e) });
      continue;
    }
    log(`boot ${b.name} (mode ${b.env.LAB_MODE}${b.env.LAB_ONLY ? `, only ${b.env.LAB_ONLY}` : ''}), timeout ${timeoutSec} s, console -> ${dir}/console.log`);
    fs.mkdirSync(dir, { recursive: true });
    const r = await boot({
      img, format, snapshot, kernel: image.LAB_KERNEL, initrd: image.LAB_INITRD, resultsDir: dir, env: b.env, pluginDir: prepared.pluginDir ?? (b.name === 'main' ? pluginDir : undefined), dataDisks: b.dataDisks ?? (o.mode === 'dockerfile' ? [] : dataDisks),
      timeoutSec, consoleLog: path.join(dir, 'console.log'), quiet: o.quiet, ...(b.systemd ? systemdBoot() : {}), ...(b.tbSizeMb ? { tbSizeMb: b.tbSizeMb } : {}),
    });
    log(`boot ${b.name} ended after ${r.seconds.toFixed(0)} s${r.timedOut ? ' (TIMEOUT)' : ''}`);
    const rep = readReport(dir);
    // No report at all from the first reboot boot means the guest never got through its own
    // bounded steps (kernel, dockerd, image import): every scenario step writes the report when
    // it ends or times out. That is the emulator or the machine, not netvol: the pair runs once
    // more on a fresh overlay, and the table says so.
    if (b.name === 'reboot1' && !rep && !b.retry) {
      const why = `reboot1 ended without a report after ${r.seconds.toFixed(0)} s (qemu exit ${r.code}${r.timedOut ? ', timeout' : ''}); the pair ran again. Its console ended:\n${consoleTail(path.join(dir, 'console.log'), 12)}`;
      rows.push({ name: 'reboot1:retried', status: 'retry', seconds: r.seconds, notes: why.split('\n') });
      log(why);
      fs.rmSync(overlay, { force: true });
      overlay = '';
      boots.splice(i + 1, 0, { ...b, retry: true });
      continue;
    }
    const crash = !rep && !b.crashRetried ? earlyCrash(path.join(dir, 'console.log')) : '';
    if (crash) {
      const why = `${b.name}: the guest's kernel died in its boot, before the lab began (${crash}); the boot ran again`;
      rows.push({ name: `${b.name}:retried`, status: 'retry', seconds: r.seconds, notes: [why] });
      log(why);
      boots.splice(i + 1, 0, { ...b, retry: true, crashRetried: true });
      continue;
    }
    if (r.timedOut) anyTimeout = true;
    const next = Object.values(needs).find(([prev]) => prev === b.name);
    if (next) {
      const [, row] = next;
      firstBootClean = !r.timedOut && !!rep && (row ? rep.scenarios.some((x) => x.name === row && x.status === 'pass') : rep.scenarios.every((x) => x.status === 'pass'));
    }
    if (!rep) {
      rows.push({ name: `${b.name}:report`, status: 'fail', seconds: r.seconds, detail: `no report.json (qemu exit ${r.code}${r.timedOut ? ', timeout' : ''}); the console ended:\n${consoleTail(path.join(dir, 'console.log'))}` });
    } else {
      for (const s of rep.scenarios) rows.push({ ...s, boot: b.name });
      if (r.timedOut) rows.push({ name: `${b.name}:timeout`, status: 'fail', seconds: r.seconds, detail: `boot timed out before finishing; the console ended:\n${consoleTail(path.join(dir, 'console.log'))}` });
    }
  }
  if (overlay && !o.keep) fs.rmSync(overlay, { force: true });
  if (!o.keep) for (const d of dataDisks) fs.rmSync(d, { force: true });
  if (o.mode === 'bench') keepBenchResults(path.join(results, 'main'));
  // The demo is for reading: its narration (commands, the file on the server) goes to the screen.
  if (o.mode === 'demo') {
    const demoLog = path.join(results, 'main', 'logs', 'scenario-logs', 'demo.log');
    if (fs.existsSync(demoLog)) console.log('\n' + fs.readFileSync(demoLog, 'utf8').trimEnd());
  }

  const total = (Date.now() - T0) / 1000;
  const w = Math.max(8, ...rows.map((r) => r.name.length));
  const lines = [];
  lines.push(`${'scenario'.padEnd(w)}  result  seconds`);
  lines.push(`${'-'.repeat(w)}  ------  -------`);
  for (const r of rows) lines.push(`${r.name.padEnd(w)}  ${r.status.toUpperCase().padEnd(6)}  ${Number(r.seconds).toFixed(1).padStart(7)}`);
  lines.push('', ...failuresAndNotes(rows));
  const failed = rows.filter((r) => r.status === 'fail').length;
  const passed = rows.filter((r) => r.status === 'pass').length;
  const skipped = rows.filter((r) => r.status === 'skip').length;
  lines.push(`${passed} passed, ${failed} failed, ${skipped} skipped; image ${image.seconds.toFixed(0)} s; total ${total.toFixed(0)} s${anyTimeout ? '; TIMEOUT' : ''}`);
  const text = lines.join('\n');
  console.log('\n' + text);
  fs.writeFileSync(path.join(results, 'summary.txt'), text + '\n');
  fs.writeFileSync(path.join(results, 'summary.json'), JSON.stringify({ rows, imageSeconds: image.seconds, totalSeconds: total, timeout: anyTimeout, build: buildNote }, null, 2));
  log(`results: ${results}`);
  process.exitCode = failed || anyTimeout || rows.length === 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => { console.error(e); process.exit(2); });
}
