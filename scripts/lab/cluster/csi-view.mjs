// netvol CSI cluster lab: one node's view for the scenario, the same on every node. On the
// manager the scenario calls csiSnapshot() itself; on a worker csiReporter() (run by
// reporter.mjs when LAB_KIND=csi) writes it every ~2 s to /mnt/results/nodes/<n>/snapshot.json,
// and copies dockerd's log, which holds the plugin's own log lines, to dockerd-<boot>.log there.
//
// The plugin mounts in its own mount namespace: its node process is visible in the guest's
// PID namespace, and /proc/<pid>/mountinfo shows what it holds even where nothing
// propagates to the host.
import fs from 'node:fs';
import http from 'node:http';
import { RES, put, sleep } from './scenario-lib.mjs';

export const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
export const DOCKERD_LOG = '/var/log/dockerd.log';

export function dockerApi(method, path, body) {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: '/run/docker.sock', path, method, timeout: 5000, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => { try { resolve(JSON.parse(text)); } catch { resolve(null); } });
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => { req.destroy(); resolve(null); });
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

/** The plugin's `netvol csi` process: pid and argv (argv is what a secret must never be in). */
export function pluginProcess() {
  let pids = [];
  try { pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)); } catch { /* none */ }
  for (const pid of pids) {
    let argv;
    try { argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean); } catch { continue; }
    const i = argv.findIndex((a) => a.endsWith('dist/cli.js'));
    if (i >= 0 && argv[i + 1] === 'csi') return { pid: Number(pid), argv };
  }
  return null;
}

const read = (f) => { try { return fs.readFileSync(f, 'utf8'); } catch { return ''; } };

export async function csiSnapshot(node, seq = 0) {
  const p = pluginProcess();
  const [containers, plugins, info] = await Promise.all([dockerApi('GET', '/containers/json'), dockerApi('GET', '/plugins'), dockerApi('GET', '/info')]);
  return {
    node, bootId, seq, epoch: Date.now() / 1000, uptime: Number(read('/proc/uptime').split(' ')[0]),
    mountinfo: read('/proc/self/mountinfo'),
    pluginPid: p ? p.pid : null, pluginArgv: p ? p.argv : null,
    pluginMountinfo: p ? read(`/proc/${p.pid}/mountinfo`) : '',
    containers: containers && containers.map((c) => ({
      id: c.Id.slice(0, 12), state: c.State, status: c.Status,
      service: c.Labels && c.Labels['com.docker.swarm.service.name'], task: c.Labels && c.Labels['com.docker.swarm.task.id'],
      mounts: (c.Mounts || []).map((m) => ({ type: m.Type, name: m.Name, source: m.Source, destination: m.Destination, driver: m.Driver })),
    })),
    plugins: plugins && plugins.map((x) => ({ id: x.Id, name: x.Name, enabled: x.Enabled })),
    swarm: info && info.Swarm ? info.Swarm.LocalNodeState : null,
  };
}

/**
 * The plugin's JSON log lines out of dockerd's log: dockerd logs each line the plugin writes
 * as `time=... level=info msg="<the line, Go-quoted>" plugin=<id>` (stderr at level error).
 */
export function pluginEvents(text) {
  const events = [];
  for (const line of text.replace(/\0+/g, '').split('\n')) {
    if (!/ plugin=[0-9a-f]{64}/.test(line)) continue;
    const m = /\bmsg="((?:[^"\\]|\\.)*)"/.exec(line);
    if (!m) continue;
    let msg;
    try { msg = JSON.parse(`"${m[1].replace(/\\x([0-9a-fA-F]{2})/g, '\\u00$1')}"`); } catch { continue; }
    let j;
    try { j = JSON.parse(msg); } catch { events.push({ raw: msg, t: 0 }); continue; }
    events.push({ ...j, t: (j.time || 0) / 1000 });
  }
  return events;
}

/** A worker's reporter: snapshot.json every ~2 s, dockerd's log copied as it grows. */
export async function csiReporter() {
  const node = process.env.LABNODE;
  const out = `${RES}/nodes/${node}`;
  const logCopy = `${out}/dockerd-${bootId.slice(0, 8)}.log`;
  let offset = 0;
  let seq = 0;
  while (true) {
    seq++;
    try {
      put(`${out}/snapshot.json`, JSON.stringify(await csiSnapshot(node, seq)));
      const size = fs.existsSync(DOCKERD_LOG) ? fs.statSync(DOCKERD_LOG).size : 0;
      if (size > offset) {
        const fd = fs.openSync(DOCKERD_LOG, 'r');
        const buf = Buffer.alloc(size - offset);
        fs.readSync(fd, buf, 0, buf.length, offset);
        fs.closeSync(fd);
        fs.appendFileSync(logCopy, buf);
        offset = size;
      }
    } catch (e) {
      console.error(`csi reporter: ${e.message}`);
    }
    await sleep(2000);
  }
}
