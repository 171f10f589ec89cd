#!/usr/bin/env node
// netvol cluster lab: a worker's eyes for the manager, which cannot ask a worker anything
// directly and reads files in the share instead. Every ~2 s this writes
// /mnt/results/nodes/<node>/snapshot.json (one atomic file, so every field is from the same
// moment): boot id, /proc/self/mountinfo, `netvol status --json` output and dockerd's
// containers (volumes and swarm state every third round), plus plain copies (mountinfo.txt,
// status.json) for people and an appended copy of netvol's log (netvol.log, every boot: the
// disk is persistent).
//
// Cost matters: the worker has one emulated CPU. Spawning the netvol CLI takes ~24 s there
// (8 s of CPU: the whole CLI loads over 9p and is JIT-compiled under TCG), so doing it every
// 2 s starved the node and distorted every timing. The periodic status therefore comes from
// the CLI's own code (dist/status-command.js, loaded once here), which prints exactly what
// `netvol status --json` prints. The real command still runs on demand: the manager drops
// `status-request` into the node's directory and gets `status-cli.json` back.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';

// The CSI lab's nodes report other things (the managed plugin's process and mounts): csi-view.mjs.
if (process.env.LAB_KIND === 'csi') {
  const { csiReporter } = await import('./csi-view.mjs');
  await csiReporter();
}

const NODE = process.env.LABNODE;
const OUT = `/mnt/results/nodes/${NODE}`;
const CLI = '/mnt/host/dist/cli.js';
const NETVOL_LOG = '/var/log/netvol/nfs.log';
const PLUGINS = '/run/docker/plugins';
const { statusCommand, findSockets } = await import('/mnt/host/dist/status-command.js');
const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function put(name, text) {
  const tmp = `${OUT}/.${name}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, `${OUT}/${name}`);
}

function dockerGet(path) {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: '/run/docker.sock', path, method: 'GET', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => { try { resolve(JSON.parse(body)); } catch { resolve(null); } });
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => { req.destroy(); resolve(null); });
    req.end();
  });
}

/** What `netvol status --json` prints, from its own code. */
async function netvolStatus() {
  try {
    const r = await statusCommand({ sockets: await findSockets(PLUGINS), json: true, explicit: false });
    let json = null;
    try { json = JSON.parse(r.output); } catch { /* not JSON */ }
    return { exit: r.exitCode, raw: r.output, json };
  } catch (e) {
    return { exit: 'error', raw: e.message, json: null };
  }
}

/** The real CLI, when the manager asks for it. */
function runCli() {
  const started = Date.now() / 1000;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'status', '--json'], { timeout: 120000 }, (err, stdout, stderr) => {
      let json = null;
      try { json = JSON.parse(stdout); } catch { /* not JSON */ }
      resolve({ node: NODE, bootId, started, epoch: Date.now() / 1000, exit: err ? (err.code ?? 'error') : 0, json, stdout, stderr });
    });
  });
}

// netvol's log, appended to the share copy as it grows (rewritten once per boot).
let logOffset = 0;
function copyLog() {
  if (!fs.existsSync(NETVOL_LOG)) return;
  const size = fs.statSync(NETVOL_LOG).size;
  if (size === logOffset) return;
  if (logOffset === 0 || size < logOffset) {
    put('netvol.log', fs.readFileSync(NETVOL_LOG));
  } else {
    const fd = fs.openSync(NETVOL_LOG, 'r');
    const buf = Buffer.alloc(size - logOffset);
    fs.readSync(fd, buf, 0, buf.length, logOffset);
    fs.closeSync(fd);
    fs.appendFileSync(`${OUT}/netvol.log`, buf);
  }
  logOffset = size;
}

let seq = 0;
let slow = { volumes: null, swarm: null, volumePlugins: null, slowEpoch: 0 };
while (true) {
  seq++;
  try {
    if (fs.existsSync(`${OUT}/status-request`)) {
      fs.rmSync(`${OUT}/status-request`, { force: true });
      put('status-cli.json', JSON.stringify(await runCli()));
    }
    const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    const [status, containers] = await Promise.all([netvolStatus(), dockerGet('/containers/json?all=1')]);
    // /volumes makes dockerd call the plugin's List, /info is heavy: every third round only.
    if (seq % 3 === 1) {
      const [volumes, info] = await Promise.all([dockerGet('/volumes'), dockerGet('/info')]);
      slow = {
        volumes: volumes && (volumes.Volumes || []).map((v) => ({ name: v.Name, driver: v.Driver })),
        swarm: info && info.Swarm ? info.Swarm.LocalNodeState : null,
        volumePlugins: info && info.Plugins ? info.Plugins.Volume : null,
        slowEpoch: Date.now() / 1000,
      };
    }
    const snap = {
      node: NODE, bootId, seq, epoch: Date.now() / 1000, uptime: Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]),
      mountinfo,
      status: status.json, statusExit: status.exit,
      containers: containers && containers.map((c) => ({
        id: c.Id.slice(0, 12), name: (c.Names || [])[0], state: c.State, status: c.Status,
        service: c.Labels && c.Labels['com.docker.swarm.service.name'], task: c.Labels && c.Labels['com.docker.swarm.task.name'],
        mounts: (c.Mounts || []).filter((m) => m.Type === 'volume').map((m) => ({ name: m.Name, driver: m.Driver })),
      })),
      ...slow,
    };
    put('snapshot.json', JSON.stringify(snap));
    put('mountinfo.txt', mountinfo);
    put('status.json', status.raw || '');
    copyLog();
  } catch (e) {
    console.error(`reporter: ${e.message}`);
  }
  await sleep(2000);
}
