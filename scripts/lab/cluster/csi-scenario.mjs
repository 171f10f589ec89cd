#!/usr/bin/env node
// netvol CSI cluster lab: the scenario, run on guest A (NFS and Samba server, Swarm manager,
// a node that runs tasks) by csi-node.sh. Swarm cluster volumes through the managed plugin
// netvol-csi:latest on Docker 28: provisioning on the share, the seed's Portainer-like service
// moving between nodes (drain, node loss), several writers, onewriter, CIFS with Swarm
// secrets, the classic plugin from the registry, docker plugin upgrade under a running task,
// a benchmark, and docker volume rm with each onDelete.
// A sees B through B's snapshot.json (csi-view.mjs) and runs commands there through cmd.sh;
// the host kills and boots B on request. One report entry per step, with timings.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import {
  APP, RES, check, docker, env, finishReport, firstLineOf, freshSnap, hostRequest, nodes, now,
  onNode, parseMountinfo, readLog, runningOn, say, sh, sleep, snap, step, tasks, up, waitFor,
} from './scenario-lib.mjs';
import { DOCKERD_LOG, csiSnapshot, pluginEvents } from './csi-view.mjs';

const SRV = env.IP_a;
const VOL = env.VOLUMES_PATH; // the NFS export: /home/adam/docker/volumes
const SMB = env.SMB_PATH; // the Samba share [csi]
const PLUGIN = env.PLUGIN; // netvol-csi:latest: the driver is named with its tag (swarmkit#3215)
const ALL = env.NODES.split(' ');
const WORKERS = env.WORKERS.split(' ');
const IMAGE = 'netvol-lab/portainer:latest';
const NFS_SHARE = `${SRV}:${VOL}`;
const CIFS_SHARE = `//${SRV}/csi`;
const host = (n) => `node-${n}`;
const other = (n) => (n === 'a' ? 'b' : 'a');

// ------------------------------------------------------------------ what a node holds
/** A node's view now: computed here for A, B's latest snapshot taken after this moment. */
async function view(n) {
  if (n === 'a') return csiSnapshot('a');
  return freshSnap(n, now(), 90);
}

/** A shell command on node n: A runs it here, a worker through its command runner. */
const runOn = (n, script, timeoutS) => (n === 'a' ? Promise.resolve(sh('bash', ['-c', script], { timeout: timeoutS })) : onNode(n, script, timeoutS));

/** Mounts (host and plugin namespaces) of a network share whose source is `share` or below it. */
function shareMounts(v, share) {
  const match = (m) => /^(nfs|cifs|smb3)/.test(m.fstype) && (m.source === share || m.source.startsWith(`${share}/`));
  return { host: parseMountinfo(v && v.mountinfo).filter(match), plugin: parseMountinfo(v && v.pluginMountinfo).filter(match) };
}
const held = (v, share) => { const m = shareMounts(v, share); return m.host.length + m.plugin.length; };
/** The kernel mounts of the share the plugin keeps under its --basedir (one per volume). */
const baseMounts = (v, share) => shareMounts(v, share).plugin.filter((m) => m.mountPoint.startsWith('/data/netvol/'));
/**
 * Network mounts stacked on a network mount at the same path: double mounts. Not the same as
 * a path listed twice: dockerd bind-mounts the plugin's propagated-mount directory onto itself,
 * so on the host each target also appears under the parent mount, hidden beneath the bind
 * (two entries, two different non-network parents): that is dockerd's propagation.
 */
function doubleMounts(v) {
  const out = [];
  for (const [ns, text] of [['host', v && v.mountinfo], ['plugin', v && v.pluginMountinfo]]) {
    const all = parseMountinfo(text);
    const byId = new Map(all.map((m) => [m.id, m]));
    const net = (m) => m && /^(nfs|cifs|smb3)/.test(m.fstype);
    for (const m of all) {
      const under = byId.get(m.parent);
      if (net(m) && net(under) && under.mountPoint === m.mountPoint) out.push(`${ns}:${m.mountPoint} (${m.source} on ${under.source})`);
    }
  }
  return out;
}
const describe = (v, share) => JSON.stringify(shareMounts(v, share), (k, x) => (k === 'options' || k === 'superOptions' ? undefined : x));

/** The plugin's log lines on node n (dockerd's log; B's is copied per boot into the share). */
function pluginLog(n) {
  if (n === 'a') { try { return pluginEvents(fs.readFileSync(DOCKERD_LOG, 'utf8')); } catch { return []; } }
  const dir = `${RES}/nodes/${n}`;
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^dockerd-.*\.log$/.test(f)) : [];
  return files.flatMap((f) => pluginEvents(fs.readFileSync(`${dir}/${f}`, 'utf8'))).sort((x, y) => x.t - y.t);
}
/** CSI calls the plugin on node n answered or failed after `after`, optionally one rpc. */
function calls(n, after, rpc) {
  return pluginLog(n).filter((e) => e.rpc && e.t >= after - 0.5 && (!rpc || e.rpc.endsWith(rpc)));
}
const callSummary = (evs) => evs.map((e) => `${e.rpc.split('.').pop()}${e.code ? `=${e.code}` : ''}(${e.ms}ms)`).join(' ');
const failedCalls = (n, after) => calls(n, after).filter((e) => e.msg === 'CSI call failed').map((e) => `${n}: ${e.rpc} ${e.code}: ${e.err}`);

// ------------------------------------------------------------------ Swarm objects
/**
 * `docker volume ls --cluster`: name -> {status, availability}; status is "pending creation",
 * "created" or "in use (N nodes)". The CLI ignores --format there: read the table by the
 * header's column offsets (GROUP is often empty).
 */
function clusterVolumes() {
  const [head, ...rows] = docker(['volume', 'ls', '--cluster'], { allowFail: true }).split('\n');
  if (!head) return {};
  const col = (title) => head.indexOf(title);
  const cut = (row, from, to) => row.slice(from, to < 0 ? undefined : to).trim();
  const [cName, cGroup, cDriver, cAvail, cStatus] = ['VOLUME NAME', 'GROUP', 'DRIVER', 'AVAILABILITY', 'STATUS'].map(col);
  return Object.fromEntries(rows.filter((r) => r.trim()).map((r) => [cut(r, cName, cGroup), {
    driver: cut(r, cDriver, cAvail), availability: cut(r, cAvail, cStatus), status: cut(r, cStatus, -1),
  }]));
}
const inspectVolume = (name) => { try { return JSON.parse(docker(['volume', 'inspect', name]))[0]; } catch { return null; } };

function createVolume(name, opts, { sharing = 'all', secrets = [] } = {}) {
  const args = ['volume', 'create', '-d', PLUGIN, '--type', 'mount', '--scope', 'multi', '--sharing', sharing];
  for (const [k, v] of Object.entries(opts)) args.push('--opt', `${k}=${v}`);
  for (const s of secrets) args.push('--secret', s);
  docker([...args, name], { timeout: 60 });
}
async function volumeCreated(name, timeoutS = 120) {
  const t0 = now();
  await waitFor(`volume ${name} "created" in docker volume ls --cluster`, timeoutS, () => {
    const v = clusterVolumes()[name];
    return v && v.status === 'created';
  }, 1000).catch((e) => { throw new Error(`${e.message}; ls --cluster: ${JSON.stringify(clusterVolumes())}; plugin failures: ${failedCalls('a', t0 - 60).join('; ') || 'none'}`); });
  return now() - t0;
}

function createService(name, mount, { replicas = 1, extra = [], cmd = APP } = {}) {
  docker(['service', 'create', '--detach', '--name', name, '--replicas', String(replicas),
    // one task per node, so a scale to 2 spreads over both nodes
    '--replicas-max-per-node', '1',
    // the image exists only on the nodes (docker import): do not ask a registry
    '--no-resolve-image',
    '--hostname', '{{.Node.Hostname}}',
    '--stop-grace-period', '5s',
    '--mount', mount, ...extra, IMAGE, '/bin/sh', '-c', cmd], { timeout: 180 });
}
const clusterMount = (src, extra = '') => `type=cluster,src=${src},dst=/data${extra}`;
function where(service) {
  return `tasks: ${JSON.stringify(tasks(service).slice(0, 6).map(({ id, ...t }) => t))}; nodes: ${JSON.stringify(nodes())}`;
}
const running = (service, n) => waitFor(`${service} running on ${n}`, 300, () => runningOn(service).includes(n))
  .catch((e) => { throw new Error(`${e.message}; ${where(service)}; plugin failures: ${ALL.flatMap((x) => failedCalls(x, now() - 300)).join('; ') || 'none'}`); });

/** After the task of `service` started on node y at t0: its first line and that it saw every line written before. */
async function checkTakeover(e, dir, y, t0, before) {
  const first = await waitFor(`a log.txt line from ${y}`, 180, () => firstLineOf(dir, y, t0));
  e.figures.to_first_write = first.ts - t0;
  const start = readLog(dir).lines.find((l) => l.host === y && l.ts > t0 && l.seen !== undefined);
  check(start && start.seen >= before.lines.length, `${y}'s task saw ${start && start.seen} lines at start, ${before.lines.length} were written before`);
  const pub = calls(y, t0, 'NodePublishVolume').filter((c) => c.msg === 'CSI call answered');
  if (pub.length) e.figures.publish = pub[0].ms / 1000;
  e.notes.push(`${y}'s first line: '${start.raw}' (${before.lines.length} lines before)`);
}

/** Wait until node n holds nothing of `share` in either namespace; returns the view. */
async function released(n, share, timeoutS = 120) {
  let last;
  try {
    return await waitFor(`${n} to hold nothing of ${share}`, timeoutS, async () => {
      last = await view(n);
      return held(last, share) === 0 ? last : null;
    }, 1000);
  } catch (e) {
    throw new Error(`${e.message}: ${describe(last, share)}; calls since: ${callSummary(calls(n, now() - timeoutS))}`);
  }
}

const volDir = (name) => `${VOL}/${name}`;

// The worker running the portainer task and its container: a plugin restart or upgrade is
// done there, so the manager's controller stays up.
async function portainerOnWorker() {
  const n = WORKERS.find((w) => runningOn('portainer').includes(w));
  check(n, `no portainer task on a worker: ${where('portainer')}`);
  const v = await view(n);
  const c = (v.containers || []).find((x) => x.service === 'portainer' && x.state === 'running');
  check(c, `${n}: no running portainer container`);
  return { n, v, c };
}

// After a plugin restart or upgrade on n (from..to, host clock): the task writes again, the
// longest gap between its lines around it, and the same container still running.
async function keptWriting(e, n, c0, from, to, what) {
  await waitFor(`${n}'s task writing after the ${what}`, 30, () => firstLineOf(volDir('portainerdata'), n, to + 1));
  const lines = readLog(volDir('portainerdata')).lines.filter((l) => l.host === n && l.ts > from - 5 && l.ts < to + 5).map((l) => l.ts);
  let gap = 0;
  for (let i = 1; i < lines.length; i++) gap = Math.max(gap, lines[i] - lines[i - 1]);
  e.figures.max_gap = gap;
  const v1 = await view(n);
  const c1 = (v1.containers || []).find((c) => c.service === 'portainer' && c.state === 'running');
  check(c1 && c1.id === c0.id, `${n}: the portainer container changed across the ${what} (${c0.id} -> ${c1 && c1.id})`);
  check(gap < 5, `${n}: the task's lines stopped for ${gap.toFixed(1)} s around the ${what}`);
  return { gap, v1 };
}
const ctx = {};

// ------------------------------------------------------------------ steps
await step('cluster', async (e) => {
  await waitFor('every node Ready and Active', 900, () => {
    const n = nodes();
    return ALL.every((x) => n[x] && n[x].status === 'Ready' && n[x].availability === 'Active');
  });
  e.figures.ready_after_boot = Number(up());
  const version = docker(['version', '--format', '{{.Server.Version}}']);
  check(/^(2[89]|[3-9]\d)\./.test(version), `dockerd ${version}: cluster volumes need 28.2 or newer`);
  e.notes.push(`dockerd ${version}; nodes: ${JSON.stringify(nodes())}`);
});

await step('plugin', async (e) => {
  const tstep = now();
  ctx.pluginId = docker(['plugin', 'inspect', '-f', '{{.Id}}', PLUGIN]);
  for (const n of ALL) {
    const enable = await waitFor(`${n} to enable the plugin`, 600, () => {
      try { return fs.readFileSync(`${RES}/nodes/${n}/plugin-enable.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l))[0]; } catch { return null; }
    });
    e.figures[`enable_${n}`] = enable.enabled - enable.started;
    if (enable.attempts > 1) e.notes.push(`${n}: enable took ${enable.attempts} attempts`);
    // swarmkit learns a node's CSI node id from NodeGetInfo; until then volumes cannot be used there.
    const info = await waitFor(`the manager to know ${n}'s CSI node id`, 180, () => {
      const list = JSON.parse(docker(['node', 'inspect', host(n), '--format', '{{json .Description.CSIInfo}}']) || 'null') || [];
      return list.find((x) => x.PluginName === PLUGIN);
    });
    e.figures[`csi_info_wait_${n}`] = now() - tstep;
    check(info.NodeID === host(n), `${n}: CSI node id ${info.NodeID}, expected ${host(n)} (the host name)`);
    const v = await view(n);
    check(v.pluginArgv, `${n}: no netvol csi process`);
    e.notes.push(`${n}: CSIInfo ${JSON.stringify(info)}; plugin argv: ${v.pluginArgv.slice(1).join(' ')}`);
  }
  // Every node installed the plugin from the registry on A (csi-node.sh install_plugin).
  const pushed = JSON.parse(fs.readFileSync(`${RES}/registry/pushed`, 'utf8'));
  e.figures.push = pushed.done - pushed.started;
  for (const n of ALL) {
    const inst = fs.readFileSync(`${RES}/nodes/${n}/plugin-install.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l))[0];
    check(inst.rc === 0, `${n}: docker plugin install exit ${inst.rc}`);
    e.figures[`install_${n}`] = inst.done - inst.started;
    const out = await runOn(n, `docker plugin inspect -f '{{.PluginReference}} {{json .Settings.Env}}' ${PLUGIN}`, 60);
    const [ref, ...penv] = out.trim().split(' ');
    check(ref === env.PLUGIN_REMOTE, `${n}: ${PLUGIN} comes from ${ref}, expected ${env.PLUGIN_REMOTE}`);
    check(penv.join(' ').includes('VERBOSE=true'), `${n}: the install's VERBOSE=true is not in the settings: ${penv.join(' ')}`);
  }
  const cat = await (await fetch(`http://${env.REGISTRY}/v2/_catalog`)).json();
  const tags = await (await fetch(`http://${env.REGISTRY}/v2/netvol-csi/tags/list`)).json();
  e.notes.push(`registry ${env.REGISTRY}: catalog ${JSON.stringify(cat.repositories)}, netvol-csi tags ${JSON.stringify(tags.tags)}`);
  e.notes.push(`first calls on a: ${callSummary(calls('a', 0).slice(0, 8))}`);
});

await step('volume-create', async (e) => {
  const t0 = now();
  createVolume('portainerdata', { protocol: 'nfs', share: NFS_SHARE, uid: 1000, gid: 1000, mode: '0750' });
  e.figures.to_created = await volumeCreated('portainerdata');
  const cv = calls('a', t0, 'CreateVolume').find((c) => c.msg === 'CSI call answered');
  if (cv) e.figures.create_call = cv.ms / 1000;
  const st = fs.statSync(volDir('portainerdata'));
  const mode = (st.mode & 0o7777).toString(8);
  check(st.isDirectory() && st.uid === 1000 && st.gid === 1000 && mode === '750', `${volDir('portainerdata')} on the server: uid ${st.uid} gid ${st.gid} mode ${mode}, expected 1000 1000 750`);
  const iv = inspectVolume('portainerdata');
  ctx.volId = iv && iv.ClusterVolume && iv.ClusterVolume.ID;
  const info = (iv && iv.ClusterVolume && iv.ClusterVolume.Info) || {};
  e.notes.push(`server: ${sh('ls', ['-ldn', volDir('portainerdata')])}; swarm volume ${ctx.volId}, CSI volume_id ${info.VolumeID}, volume_context keys ${Object.keys(info.VolumeContext || {}).join(',')}`);
  e.notes.push(`docker volume ls --cluster: ${JSON.stringify(clusterVolumes())}`);
});

await step('service-manager', async (e) => {
  const t0 = now();
  createService('portainer', clusterMount('portainerdata'), { extra: ['--constraint', 'node.role==manager'] });
  await running('portainer', 'a');
  e.figures.to_running = now() - t0;
  await checkTakeover(e, volDir('portainerdata'), 'a', t0, { lines: [] });
  const v = await view('a');
  const target = `/var/lib/docker/plugins/${ctx.pluginId}/propagated-mount/${ctx.volId}`;
  check(shareMounts(v, NFS_SHARE).host.some((m) => m.mountPoint === target), `a: nothing of the share at ${target} on the host: ${describe(v, NFS_SHARE)}`);
  check(baseMounts(v, NFS_SHARE).length === 1, `a: expected one kernel mount of the share under the plugin's basedir: ${describe(v, NFS_SHARE)}`);
  e.notes.push(`a: ${describe(v, NFS_SHARE)}`);
  e.notes.push(`volume: ${JSON.stringify(clusterVolumes().portainerdata)}`);
});

await step('service-anywhere', async (e) => {
  const before = readLog(volDir('portainerdata'));
  const old = tasks('portainer').find((t) => t.desired === 'Running');
  docker(['service', 'update', '--detach', '--constraint-rm', 'node.role==manager', 'portainer'], { timeout: 120 });
  const placement = docker(['service', 'inspect', '-f', '{{json .Spec.TaskTemplate.Placement.Constraints}}', 'portainer']);
  check(!/node\.role/.test(placement), `the constraint is still in the service: ${placement}`);
  // swarmkit does not restart a task for a placement change its node still satisfies:
  // force a new task, which the scheduler may now put on any node.
  const t0 = now();
  docker(['service', 'update', '--detach', '--force', 'portainer'], { timeout: 120 });
  const y = await waitFor('a new portainer task running', 300, () => {
    const t = tasks('portainer').find((x) => x.desired === 'Running' && x.current.startsWith('Running') && (!old || x.id !== old.id));
    return t && t.node;
  }).catch((err) => { throw new Error(`${err.message}; ${where('portainer')}`); });
  e.figures.to_running = now() - t0;
  await checkTakeover(e, volDir('portainerdata'), y, t0, before);
  e.notes.push(`without the constraint the task runs on ${y}`);
});

await step('drain', async (e) => {
  const [x] = runningOn('portainer');
  check(x, `no running portainer task: ${where('portainer')}`);
  const y = other(x);
  const before = readLog(volDir('portainerdata'));
  const t0 = now();
  docker(['node', 'update', '--availability', 'drain', host(x)]);
  ctx.drained = x;
  await running('portainer', y);
  e.figures.to_running = now() - t0;
  await checkTakeover(e, volDir('portainerdata'), y, t0, before);
  const v = await released(x, NFS_SHARE);
  e.figures.old_released = now() - t0;
  check(doubleMounts(v).length === 0, `${x}: double mounts ${doubleMounts(v)}`);
  const unpub = calls(x, t0, 'NodeUnpublishVolume');
  e.notes.push(`${x} drained -> ${y}; ${x}'s calls since the drain: ${callSummary(calls(x, t0))}`);
  check(unpub.some((c) => c.msg === 'CSI call answered'), `${x}: no answered NodeUnpublishVolume after the drain: ${callSummary(calls(x, t0))}`);
  docker(['node', 'update', '--availability', 'active', host(x)]);
  delete ctx.drained;
});

await step('node-loss', async (e) => {
  if (ctx.drained) docker(['node', 'update', '--availability', 'active', host(ctx.drained)], { allowFail: true });
  // Only a worker can be lost: A is the server and the only manager.
  const lost = WORKERS[0];
  const keep = other(lost);
  if (!runningOn('portainer').includes(lost)) {
    docker(['node', 'update', '--availability', 'drain', host(keep)]);
    await running('portainer', lost).finally(() => docker(['node', 'update', '--availability', 'active', host(keep)], { allowFail: true }));
    e.notes.push(`moved the task to ${lost} first (drained ${keep})`);
  }
  await waitFor(`${keep} Active again`, 60, () => nodes()[keep].availability === 'Active');
  const sv = await view(lost);
  ctx.oldBoot = sv.bootId;
  check(held(sv, NFS_SHARE) > 0, `${lost} holds nothing of the share before the kill: ${describe(sv, NFS_SHARE)}`);
  await waitFor(`a line from ${lost}`, 60, () => firstLineOf(volDir('portainerdata'), lost, now() - 3));
  const before = readLog(volDir('portainerdata'));
  const kill = await hostRequest('kill', lost);
  const t0 = kill.t;
  say(`killed ${lost} (qemu pid ${kill.pid}) at ${t0}`);
  ctx.lost = lost;
  await waitFor(`node ${lost} Down`, 180, () => nodes()[lost].status === 'Down');
  e.figures.to_node_down = now() - t0;
  await running('portainer', keep);
  e.figures.to_running = now() - t0;
  await checkTakeover(e, volDir('portainerdata'), keep, t0, before);
  e.notes.push(`volume while ${lost} is down: ${JSON.stringify(clusterVolumes().portainerdata)}`);
});

await step('comeback', async (e) => {
  const y = ctx.lost;
  check(y && ctx.oldBoot, 'no lost node from the previous step');
  const x = other(y);
  const boot = await hostRequest('boot', y);
  const t0 = boot.t;
  await waitFor(`${y} reporting a new boot id`, 600, () => { const s = snap(y); return s && s.bootId !== ctx.oldBoot ? s : null; });
  await waitFor(`node ${y} Ready`, 600, () => nodes()[y].status === 'Ready');
  e.figures.to_ready = now() - t0;
  // dockerd enables the plugin by itself at start: it was enabled when the node died.
  const sy = await waitFor(`${y}'s plugin running again`, 300, async () => {
    const s = await freshSnap(y, now());
    return s.bootId !== ctx.oldBoot && s.pluginPid && (s.plugins || []).some((p) => p.name === PLUGIN && p.enabled) ? s : null;
  }, 1000);
  e.figures.to_plugin = sy.epoch - t0;
  const enables = fs.readFileSync(`${RES}/nodes/${y}/plugin-enable.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const last = enables.at(-1);
  e.notes.push(last.was === 'true' ? `${y}: dockerd restored the plugin at start by itself`
    : `${y}: dockerd did NOT restore the plugin at start (its socket was not up within dockerd's ~12 s); the lab enabled it again in ${(last.enabled - last.started).toFixed(1)} s, ${last.attempts} attempt(s)`);
  // swarmkit may now unpublish the dead task's volume there: give it a moment, then look.
  await sleep(15000);
  const vy = await view(y);
  const vx = await view(x);
  check(held(vy, NFS_SHARE) === 0, `${y}: holds the share after its return: ${describe(vy, NFS_SHARE)}`);
  check(baseMounts(vx, NFS_SHARE).length === 1, `${x}: expected one kernel mount of the share: ${describe(vx, NFS_SHARE)}`);
  for (const [n, v] of [[x, vx], [y, vy]]) check(doubleMounts(v).length === 0, `${n}: double mounts ${doubleMounts(v)}`);
  check(JSON.stringify(runningOn('portainer')) === JSON.stringify([x]), `portainer should still run on ${x} only: ${where('portainer')}`);
  const tl = now();
  await waitFor(`${x} still writing`, 30, () => firstLineOf(volDir('portainerdata'), x, tl));
  e.notes.push(`${y}'s calls after its return: ${callSummary(calls(y, t0)) || 'none'}`);
  e.notes.push(`volume: ${JSON.stringify(clusterVolumes().portainerdata)}`);
});

await step('sharing-all', async (e) => {
  const t0 = now();
  docker(['service', 'scale', '--detach', 'portainer=2']);
  await waitFor('portainer running on both nodes', 300, () => { const r = runningOn('portainer'); return ALL.every((n) => r.includes(n)); })
    .catch((err) => { throw new Error(`${err.message}; ${where('portainer')}`); });
  e.figures.to_running = now() - t0;
  await waitFor('5 lines from each node since the scale', 120, () => ALL.every((n) => readLog(volDir('portainerdata')).lines.filter((l) => l.host === n && l.ts > t0).length >= 5));
  for (const n of ALL) {
    const v = await view(n);
    check(baseMounts(v, NFS_SHARE).length === 1, `${n}: expected one kernel mount of the share: ${describe(v, NFS_SHARE)}`);
    check(doubleMounts(v).length === 0, `${n}: double mounts ${doubleMounts(v)}`);
  }
  const since = readLog(volDir('portainerdata')).lines.filter((l) => l.ts > t0);
  const bad = readLog(volDir('portainerdata')).lines.filter((l) => !/^node-[a-z] \d+\.\d+( start seen=\d+)?$/.test(l.raw));
  e.notes.push(`one log.txt, since the scale: ${ALL.map((n) => `${since.filter((l) => l.host === n).length} lines from ${n}`).join(', ')}${bad.length ? `; ${bad.length} garbled line(s) from concurrent NFS appends` : ''}`);
  e.notes.push(`volume: ${JSON.stringify(clusterVolumes().portainerdata)}`);
});

// What Docker does with --sharing onewriter (MULTI_NODE_SINGLE_WRITER): measured, and
// asserted only as "never two writers at once".
await step('sharing-onewriter', async (e) => {
  let t0 = now();
  createVolume('onewriter', { protocol: 'nfs', share: NFS_SHARE }, { sharing: 'onewriter' });
  e.figures.to_created = await volumeCreated('onewriter');
  t0 = now();
  createService('ow', clusterMount('onewriter'), { replicas: 2 });
  await waitFor('one ow task running', 300, () => runningOn('ow').length >= 1).catch((err) => { throw new Error(`${err.message}; ${where('ow')}`); });
  e.figures.first_running = now() - t0;
  // The second writer: give the scheduler time to place it if it would.
  await sleep(30000);
  const ts = tasks('ow').filter((t) => t.desired === 'Running');
  const writers = new Set(readLog(volDir('onewriter')).lines.filter((l) => l.ts > t0 + 25).map((l) => l.host));
  e.notes.push(`2 replicas, read-write: ${ts.map((t) => `${t.name}@${t.node || '-'}: ${t.current}${t.error ? ` (${t.error})` : ''}`).join('; ')}; nodes writing: ${[...writers].join(',') || 'none'}`);
  check(runningOn('ow').length === 1 && writers.size === 1, `onewriter: ${runningOn('ow').length} tasks running, ${writers.size} nodes writing`);
  // A reader beside the writer: a read-only mount of the same volume.
  const tr = now();
  createService('owreader', clusterMount('onewriter', ',readonly'), { cmd: 'while :; do wc -l < /data/log.txt > /tmp/n; sleep 1; done' });
  const reader = await waitFor('the read-only task running', 120, () => runningOn('owreader')[0]).catch(() => null);
  e.notes.push(reader ? `a read-only task runs beside it on ${reader} (${(now() - tr).toFixed(1)} s)` : `a read-only task did not start in 120 s: ${where('owreader')}`);
  e.notes.push(`volume: ${JSON.stringify(clusterVolumes().onewriter)}`);
  docker(['service', 'rm', 'ow', 'owreader']);
});

await step('cifs-secrets', async (e) => {
  const password = fs.readFileSync('/run/lab/cifs-password', 'utf8').trim();
  check(password.length >= 12, 'no Samba password from csi-node.sh');
  // Watch every process's argv on both nodes while the volume is created and mounted.
  fs.writeFileSync('/run/lab/pw.pattern', password);
  const watch = spawn('/mnt/results/bin/cmdline-watch', ['/run/lab/pw.pattern', '/run/lab/cmdline-hits.txt'], { stdio: 'ignore' });
  for (const w of WORKERS) {
    await onNode(w, `umask 077; printf '%s' '${password}' > /run/lab/pw.pattern
setsid /mnt/results/bin/cmdline-watch /run/lab/pw.pattern /run/lab/cmdline-hits.txt > /dev/null 2>&1 < /dev/null &
echo $! > /run/lab/watch.pid; echo started`);
  }
  // Whatever happens below, the watchers stop.
  const stopWatchers = async () => {
    watch.kill('SIGTERM');
    for (const w of WORKERS) await onNode(w, 'kill $(cat /run/lab/watch.pid) 2>/dev/null; rm -f /run/lab/pw.pattern; echo stopped', 60).catch(() => undefined);
  };
  try {
    const user = docker(['secret', 'create', 'cifs-user', '-'], { input: 'carol' });
    const pass = docker(['secret', 'create', 'cifs-pass', '-'], { input: password });
    const t0 = now();
    createVolume('cifsdata', { protocol: 'cifs', share: CIFS_SHARE }, { secrets: [`username=${user}`, `password=${pass}`] });
    e.figures.to_created = await volumeCreated('cifsdata');
    const ts = now();
    createService('smbsvc', clusterMount('cifsdata'), { extra: ['--constraint', `node.hostname==${host(WORKERS[0])}`] });
    await running('smbsvc', WORKERS[0]);
    e.figures.to_running = now() - ts;
    const first = await waitFor('a line in the Samba share', 120, () => firstLineOf(`${SMB}/cifsdata`, WORKERS[0], ts));
    e.figures.to_first_write = first.ts - ts;
    e.notes.push(`written through CIFS by ${WORKERS[0]}, on the server: ${sh('ls', ['-ln', `${SMB}/cifsdata`])}`);
    await sleep(3000);
    watch.kill('SIGTERM');
    const leaks = [];
    const hits = fs.readFileSync('/run/lab/cmdline-hits.txt', 'utf8').trim();
    if (hits) leaks.push(`a argv: ${hits}`);
    // Where else it must not be: the plugin's logs (in dockerd's), its state, the mounts, inspect.
    const grep = (paths) => sh('sh', ['-c', `grep -rlF -f /run/lab/pw.pattern ${paths} 2>/dev/null; true`]);
    const aFiles = grep('/var/lib/netvol-csi /var/log/dockerd.log /proc/self/mountinfo');
    if (aFiles) leaks.push(`a files: ${aFiles}`);
    const va = await view('a');
    if ((va.pluginMountinfo || '').includes(password)) leaks.push('a: plugin mountinfo');
    if (docker(['volume', 'inspect', 'cifsdata']).includes(password)) leaks.push('docker volume inspect cifsdata');
    if (docker(['service', 'inspect', 'smbsvc']).includes(password)) leaks.push('docker service inspect smbsvc');
    for (const w of WORKERS) {
      const out = await onNode(w, `kill $(cat /run/lab/watch.pid) 2>/dev/null; sleep 0.5
    echo "argv: $(cat /run/lab/cmdline-hits.txt)"
    echo "files: $(grep -rlF -f /run/lab/pw.pattern /var/lib/netvol-csi /var/log/dockerd.log /proc/self/mountinfo 2>/dev/null | tr '\\n' ' ')"
    p=$(for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline 2>/dev/null | grep -q 'dist/cli[.]js csi ' && basename $d; done | head -1)
    echo "pluginmounts: $(grep -cF -f /run/lab/pw.pattern /proc/$p/mountinfo)"
    echo "statefiles: $(find /var/lib/netvol-csi -type f | wc -l)"
    rm -f /run/lab/pw.pattern`);
      const m = Object.fromEntries(out.trim().split('\n').map((l) => [l.split(':')[0], l.slice(l.indexOf(':') + 1).trim()]));
      if (m.argv) leaks.push(`${w} argv: ${m.argv}`);
      if (m.files) leaks.push(`${w} files: ${m.files}`);
      if (m.pluginmounts && m.pluginmounts !== '0') leaks.push(`${w}: plugin mountinfo`);
      e.notes.push(`${w}: password searched in every argv during the mount, /var/lib/netvol-csi (${m.statefiles} files), dockerd's log (the plugin's), mountinfo: ${m.argv || m.files ? 'FOUND' : 'absent'}`);
    }
    fs.rmSync('/run/lab/pw.pattern', { force: true });
    const v = await view(WORKERS[0]);
    const cm = shareMounts(v, CIFS_SHARE);
    e.notes.push(`${WORKERS[0]} cifs mounts: ${cm.plugin.map((m) => `${m.mountPoint} (${(m.superOptions || '').split(',').filter((o) => /^(username|vers|uid|gid)=/.test(o)).join(',')})`).join('; ')}`);
    check(leaks.length === 0, `the password leaked: ${leaks.join('; ')}`);
    check(cm.plugin.length > 0, `${WORKERS[0]}: no CIFS mount in the plugin's namespace: ${describe(v, CIFS_SHARE)}`);
  } finally {
    await stopWatchers();
  }
});

await step('plugin-restart', async (e) => {
  const { n, v: v0, c: c0 } = await portainerOnWorker();
  const out = await onNode(n, `t0=$(date +%s.%N); docker plugin disable -f ${PLUGIN} > /tmp/dis.out 2>&1; r1=$?; t1=$(date +%s.%N)
sleep 3; t2=$(date +%s.%N); : > /tmp/en.out
r2=1; for i in 1 2 3 4; do docker plugin enable --timeout 60 ${PLUGIN} >> /tmp/en.out 2>&1 && { r2=0; break; }; sleep 2; done
t3=$(date +%s.%N)
echo "$t0 $t1 $r1 $t2 $t3 $r2 $(tr '\\n' ' ' < /tmp/dis.out) | $(tr '\\n' ' ' < /tmp/en.out)"`, 300);
  const [td0, td1, r1, te0, te1, r2] = out.trim().split(' ');
  e.figures.disable = Number(td1) - Number(td0);
  e.figures.enable = Number(te1) - Number(te0);
  check(r1 === '0' && r2 === '0', `${n}: disable -f exit ${r1}, enable exit ${r2}: ${out.trim()}`);
  const { gap, v1 } = await keptWriting(e, n, c0, Number(td0), Number(te1), 'plugin restart');
  e.notes.push(`${n}: container ${c0.id} kept running and writing (longest gap between its lines ${gap.toFixed(1)} s); plugin ${v0.pluginPid} -> ${v1.pluginPid}; ${n}'s mounts now: ${describe(v1, NFS_SHARE)}`);
  e.notes.push(`${n}'s calls since: ${callSummary(calls(n, Number(td0))) || 'none'}`);
});

// --upgrade (UPGRADE=1): besides, the classic plugin from the registry, and docker plugin
// upgrade of the CSI plugin on every node under a running task (each pull of a plugin's 220 MB
// rootfs takes a minute or more under emulation).
const UPGRADE = env.UPGRADE === '1';
if (UPGRADE) {
await step('registry-classic', async (e) => {
  // The classic driver's managed plugin, from the same registry, on a worker: installed with a
  // setting on the command line under the name netshare users type (-d nfs), a volume, a write.
  const n = WORKERS[0];
  const dir = volDir('registry-classic');
  fs.mkdirSync(dir, { recursive: true });
  // Installed by csi-node.sh's install_classic while the worker joined the swarm.
  const inst = await waitFor(`${n} to install the classic plugin`, 900, () => {
    try { return JSON.parse(fs.readFileSync(`${RES}/nodes/${n}/classic-install.json`, 'utf8')); } catch { return null; }
  });
  check(inst.rc === 0, `${n}: docker plugin install ${env.CLASSIC_REMOTE} exit ${inst.rc}: ${fs.readFileSync(`${RES}/nodes/${n}/classic-install.out`, 'utf8').slice(-400)}`);
  e.figures.install = inst.done - inst.started;
  const out = await onNode(n, `t1=$(date +%s.%N)
r1=0
r2=1; for i in 1 2 3 4; do docker plugin enable --timeout 60 nfs >> /tmp/rc.out 2>&1 && { r2=0; break; }; sleep 2; done
t2=$(date +%s.%N)
docker volume create -d nfs -o share=${SRV}:${dir} regclassic >> /tmp/rc.out 2>&1; r3=$?
docker run --rm -v regclassic:/data ${IMAGE} sh -c 'echo written-on-${n} > /data/classic.txt' >> /tmp/rc.out 2>&1; r4=$?
t3=$(date +%s.%N)
ref=$(docker plugin inspect -f '{{.PluginReference}}' nfs)
penv=$(docker plugin inspect -f '{{json .Settings.Env}}' nfs)
docker volume rm regclassic >> /tmp/rc.out 2>&1; r5=$?
docker plugin disable nfs >> /tmp/rc.out 2>&1; docker plugin rm nfs >> /tmp/rc.out 2>&1; r6=$?
echo "$t1 $t1 $t2 $t3 $r1 $r2 $r3 $r4 $r5 $r6 $ref $penv"
echo "--- $(tr '\\n' ' ' < /tmp/rc.out | cut -c1-600)"`, 600);
  const [line, rest = ''] = out.trim().split('\n');
  const [t0, t1, t2, t3, ...f] = line.split(' ');
  const [r1, r2, r3, r4, r5, r6, ref, ...penv] = f;
  e.figures.enable = Number(t2) - Number(t1);
  e.figures.create_run = Number(t3) - Number(t2);
  check([r1, r2, r3, r4, r5, r6].every((r) => r === '0'), `${n}: install ${r1}, enable ${r2}, volume create ${r3}, run ${r4}, volume rm ${r5}, plugin rm ${r6}: ${rest}`);
  check(ref === env.CLASSIC_REMOTE, `${n}: the nfs plugin's reference is ${ref}, expected ${env.CLASSIC_REMOTE}`);
  check(penv.join(' ').includes('NFS_VERSION=4'), `${n}: the install's NFS_VERSION=4 is not in the plugin's settings: ${penv.join(' ')}`);
  const text = fs.readFileSync(`${dir}/classic.txt`, 'utf8');
  check(text === `written-on-${n}\n`, `${dir}/classic.txt on the server holds ${JSON.stringify(text)}`);
  e.notes.push(`${n}: docker plugin install --alias nfs ${env.CLASSIC_REMOTE} NFS_VERSION=4 VERBOSE=true EARLY_SOCKET=true; settings ${penv.join(' ')}; the container's write is on the server: ${sh('ls', ['-ln', dir])}`);
});

await step('plugin-upgrade', async (e) => {
  // docker plugin upgrade to the :next build while volumes exist and a task writes: on the
  // worker running portainer (disable -f under a running task, as a user must) and on the
  // manager, whose plugin is also the controller, at once (the worker's pull of the new rootfs
  // over the emulated wire is most of the step).
  const { n, v: v0, c: c0 } = await portainerOnWorker();
  const volsBefore = clusterVolumes();
  // 'cli[.]js': on A the script is bash -c's own argv, which a plain 'cli.js' would match.
  const upgrade = (node) => runOn(node, `build() { local p; for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'dist/cli[.]js csi ' && { cat $p/root/BUILD 2>/dev/null; return; }; done; echo none; }
b0=$(build)
t0=$(date +%s.%N)
docker plugin disable -f ${PLUGIN} > /tmp/up.out 2>&1; r1=$?
docker plugin upgrade --grant-all-permissions --skip-remote-check ${PLUGIN} ${env.PLUGIN_NEXT} >> /tmp/up.out 2>&1; r2=$?
t1=$(date +%s.%N)
r3=1; for i in 1 2 3 4; do docker plugin enable --timeout 60 ${PLUGIN} >> /tmp/up.out 2>&1 && { r3=0; break; }; sleep 2; done
t2=$(date +%s.%N)
echo "$t0 $t1 $t2 $r1 $r2 $r3 $b0 $(build) $(docker plugin inspect -f '{{.PluginReference}}' ${PLUGIN}) $(docker plugin inspect -f '{{json .Settings.Env}}' ${PLUGIN})"
echo "--- $(tr '\\n' ' ' < /tmp/up.out | cut -c1-600)"`, 400);
  const results = {};
  // The worker first: its request is written to the share before A's own call blocks.
  const upgraded = [n, 'a'];
  const outs = await Promise.all(upgraded.map((node) => upgrade(node)));
  for (const [i, node] of upgraded.entries()) {
    const out = outs[i];
    const [line, rest = ''] = out.trim().split('\n');
    const [t0, t1, t2, r1, r2, r3, b0, b1, ref, ...penv] = line.split(' ');
    results[node] = { t0: Number(t0), t2: Number(t2) };
    e.figures[`upgrade_${node}`] = Number(t1) - Number(t0);
    e.figures[`enable_${node}`] = Number(t2) - Number(t1);
    check(r1 === '0' && r2 === '0' && r3 === '0', `${node}: disable -f exit ${r1}, upgrade exit ${r2}, enable exit ${r3}: ${rest}`);
    check(b0 === 'lab-1' && b1 === 'lab-2', `${node}: the plugin's build went ${b0} -> ${b1}, expected lab-1 -> lab-2`);
    check(ref === env.PLUGIN_NEXT, `${node}: plugin reference ${ref} after the upgrade, expected ${env.PLUGIN_NEXT}`);
    const s = penv.join(' ');
    check(s.includes('VERBOSE=true') && s.includes('EARLY_SOCKET=true'), `${node}: the install's settings did not survive the upgrade: ${s}`);
    e.notes.push(`${node}: build ${b0} -> ${b1}, reference ${ref}, settings ${s}`);
  }
  const { gap, v1 } = await keptWriting(e, n, c0, results[n].t0, results[n].t2, 'upgrade');
  const volsAfter = clusterVolumes();
  check(JSON.stringify(Object.keys(volsAfter).sort()) === JSON.stringify(Object.keys(volsBefore).sort()), `cluster volumes before ${JSON.stringify(volsBefore)}, after ${JSON.stringify(volsAfter)}`);
  e.notes.push(`${n}: container ${c0.id} kept running and writing through disable -f, upgrade and enable (longest gap between its lines ${gap.toFixed(1)} s); plugin ${v0.pluginPid} -> ${v1.pluginPid}`);
  e.notes.push(`docker volume ls --cluster after: ${JSON.stringify(volsAfter)}`);
  e.notes.push(`${n}'s calls since: ${callSummary(calls(n, results[n].t0)) || 'none'}`);
});
}

// Benchmark: docker service create -> the task's first write, three ways of giving a task its
// share on one node (A, so every timestamp is one clock), in one run and interleaved so load
// drifts hit each alike: a cluster volume through the plugin (a fresh volume per trial, so
// every trial is a first NodePublishVolume), the classic driver (netvol nfs on the host, a
// volume-driver mount) and the seed's first method (the share mounted by hand on the node and
// bind-mounted). Ratios are against the pre-mounted floor of the same run.
// NETVOL_BENCH_TRIALS=0 (as .ci/run sets it) leaves the benchmark out; npm run bench:csi runs 7.
const BENCH_TRIALS = Number(env.BENCH_TRIALS ?? 3);
if (!(BENCH_TRIALS > 0)) say('bench: not run (BENCH_TRIALS=0)');
else await step('bench', async (e) => {
  const trials = BENCH_TRIALS;
  const pre = '/mnt/bench-pre';
  for (const d of ['bench-pre', 'bench-legacy']) fs.mkdirSync(volDir(d), { recursive: true });
  fs.mkdirSync(pre, { recursive: true });
  fs.mkdirSync('/var/log/netvol', { recursive: true });
  const samples = { premounted: [], legacy: [], cluster: [] };
  const createCalls = [];
  try {
    sh('mount', ['-t', 'nfs', '-o', 'vers=4.2,hard', `${NFS_SHARE}/bench-pre`, pre]);
    // The classic driver as a user runs it from systemd: its own socket in /run/docker/plugins.
    sh('sh', ['-c', 'setsid node /mnt/host/dist/cli.js nfs --basedir /var/lib/netvol-bench --state-dir /var/lib/netvol-bench-state --log-format pretty > /var/log/netvol/bench-nfs.log 2>&1 < /dev/null & echo $! > /run/lab/netvol-bench.pid']);
    await waitFor('the classic driver socket', 120, () => fs.existsSync('/run/docker/plugins/nfs.sock'))
      .catch((err) => { throw new Error(`${err.message}; netvol nfs said: ${sh('tail', ['-5', '/var/log/netvol/bench-nfs.log'], { allowFail: true })}`); });
    for (let i = 1; i <= trials; i++) {
      const cname = `bench-c${i}`;
      const tc = now();
      createVolume(cname, { protocol: 'nfs', share: NFS_SHARE });
      await volumeCreated(cname);
      const cv = calls('a', tc, 'CreateVolume').find((c) => c.msg === 'CSI call answered');
      if (cv) createCalls.push(cv.ms / 1000);
      const ways = [
        ['premounted', `type=bind,src=${pre},dst=/data`, volDir('bench-pre'), `${NFS_SHARE}/bench-pre`],
        ['legacy', `type=volume,src=benchlegacy,dst=/data,volume-driver=nfs,volume-opt=share=${NFS_SHARE}/bench-legacy`, volDir('bench-legacy'), `${NFS_SHARE}/bench-legacy`],
        ['cluster', clusterMount(cname), volDir(cname), `${NFS_SHARE}/${cname}`],
      ];
      // Rotate the order each trial.
      for (let k = 0; k < ways.length; k++) {
        const [way, mount, dir, share] = ways[(k + i) % ways.length];
        const svc = `bench-${way}`;
        const t0 = now();
        createService(svc, mount, { extra: ['--constraint', 'node.hostname==node-a'] });
        const first = await waitFor(`${svc}'s first line`, 180, () => firstLineOf(dir, 'a', t0))
          .catch((err) => { throw new Error(`${err.message}; ${where(svc)}`); });
        samples[way].push(first.ts - t0);
        docker(['service', 'rm', svc]);
        await waitFor(`${svc} gone`, 120, () => tasks(svc).length === 0);
        if (way !== 'premounted') await released('a', share);
      }
    }
  } finally {
    // Whatever happened, leave nothing behind for the steps after (service-rm checks A holds nothing).
    docker(['service', 'rm', 'bench-premounted', 'bench-legacy', 'bench-cluster'], { allowFail: true });
    await waitFor('the bench services gone', 120, () => ['bench-premounted', 'bench-legacy', 'bench-cluster'].every((x) => tasks(x).length === 0)).catch(() => undefined);
    sh('sh', ['-c', 'kill $(cat /run/lab/netvol-bench.pid); umount /mnt/bench-pre || umount -l /mnt/bench-pre'], { allowFail: true });
  }
  const med = (xs) => { const v = [...xs].sort((x, y) => x - y); const h = v.length >> 1; return !v.length ? NaN : v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2; };
  const pubs = calls('a', 0, 'NodePublishVolume').filter((c) => c.msg === 'CSI call answered').map((c) => c.ms / 1000);
  const floor = med(samples.premounted);
  const table = {
    trials,
    to_first_write_s: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, { median: med(v), samples: v.map((x) => Math.round(x * 100) / 100) }])),
    ratio_vs_premounted: { legacy: med(samples.legacy) / floor, cluster: med(samples.cluster) / floor },
    create_volume_call_s: { median: med(createCalls), samples: createCalls },
    node_publish_call_s: { median: med(pubs), samples: pubs.slice(-8) },
  };
  fs.writeFileSync(`${RES}/bench-csi.json`, `${JSON.stringify(table, null, 2)}\n`);
  for (const [k, v] of Object.entries(samples)) e.figures[`${k}_first_write`] = med(v);
  e.figures.cluster_vs_premounted = table.ratio_vs_premounted.cluster;
  e.figures.legacy_vs_premounted = table.ratio_vs_premounted.legacy;
  e.figures.create_call = med(createCalls);
  e.figures.publish_call = med(pubs);
  e.notes.push(`service create -> first write, median of ${trials} (s): ${Object.entries(samples).map(([k, v]) => `${k} ${med(v).toFixed(2)} [${v.map((x) => x.toFixed(2)).join(' ')}]`).join('; ')}`);
  e.notes.push(`ratios to pre-mounted: cluster ${table.ratio_vs_premounted.cluster.toFixed(2)}x, classic ${table.ratio_vs_premounted.legacy.toFixed(2)}x; CreateVolume ${med(createCalls).toFixed(3)} s, NodePublishVolume ${med(pubs).toFixed(3)} s (medians of ${createCalls.length} and ${pubs.length} calls)`);
  const tr = now();
  for (let i = 1; i <= trials; i++) docker(['volume', 'rm', `bench-c${i}`], { allowFail: true });
  docker(['volume', 'rm', 'benchlegacy'], { allowFail: true });
  await waitFor('the bench volumes gone', 120, () => { const cv = clusterVolumes(); return Object.keys(cv).every((n) => !n.startsWith('bench-c')); }).catch(() => e.notes.push(`bench volumes still listed: ${JSON.stringify(clusterVolumes())}`));
  e.figures.rm = now() - tr;
});

await step('service-rm', async (e) => {
  const t0 = now();
  docker(['service', 'rm', 'portainer', 'smbsvc']);
  for (const n of ALL) {
    await released(n, NFS_SHARE);
    await released(n, CIFS_SHARE);
  }
  e.figures.released = now() - t0;
  // moby#45547: volumes may stay "in use" after their service is gone.
  await waitFor('the volumes no longer in use', 120, () => {
    const cv = clusterVolumes();
    return ['portainerdata', 'cifsdata', 'onewriter'].every((v) => cv[v] && !/in use/.test(cv[v].status));
  }).catch((err) => { throw new Error(`${err.message}: ${JSON.stringify(clusterVolumes())}`); });
  e.figures.not_in_use = now() - t0;
  const t1 = now();
  for (const v of ['portainerdata', 'cifsdata', 'onewriter']) docker(['volume', 'rm', v]);
  await waitFor('the volumes gone from docker volume ls --cluster', 120, () => { const cv = clusterVolumes(); return !cv.portainerdata && !cv.cifsdata && !cv.onewriter; })
    .catch((err) => { throw new Error(`${err.message}: ${JSON.stringify(clusterVolumes())}; plugin failures: ${failedCalls('a', t1).join('; ') || 'none'}`); });
  e.figures.rm = now() - t1;
  // retain is the default: the data stays on the server.
  check(fs.existsSync(`${volDir('portainerdata')}/log.txt`), `${volDir('portainerdata')}/log.txt is gone after docker volume rm (onDelete defaults to retain)`);
  check(fs.existsSync(`${SMB}/cifsdata/log.txt`), `${SMB}/cifsdata/log.txt is gone after docker volume rm`);
  e.notes.push(`DeleteVolume calls: ${callSummary(calls('a', t1, 'DeleteVolume'))}; retained: ${sh('ls', [VOL])}`);
});

await step('on-delete', async (e) => {
  const policies = ['retain', 'delete', 'archive'];
  for (const p of policies) createVolume(`del-${p}`, { protocol: 'nfs', share: NFS_SHARE, onDelete: p });
  for (const p of policies) await volumeCreated(`del-${p}`);
  for (const p of policies) fs.writeFileSync(`${volDir(`del-${p}`)}/marker`, p);
  const t0 = now();
  for (const p of policies) docker(['volume', 'rm', `del-${p}`]);
  await waitFor('the del-* volumes gone', 120, () => { const cv = clusterVolumes(); return policies.every((p) => !cv[`del-${p}`]); })
    .catch((err) => { throw new Error(`${err.message}: ${JSON.stringify(clusterVolumes())}; plugin failures: ${failedCalls('a', t0).join('; ') || 'none'}`); });
  e.figures.rm = now() - t0;
  const listing = fs.readdirSync(VOL);
  check(fs.existsSync(`${volDir('del-retain')}/marker`), `retain: ${volDir('del-retain')} is gone`);
  check(!fs.existsSync(volDir('del-delete')), `delete: ${volDir('del-delete')} still exists`);
  check(!fs.existsSync(volDir('del-archive')), `archive: ${volDir('del-archive')} still exists under its name`);
  const archived = listing.filter((f) => /^archived-/.test(f) && f.includes('del-archive'));
  check(archived.length === 1 && fs.readFileSync(`${VOL}/${archived[0]}/marker`, 'utf8') === 'archive', `archive: no single archived- directory with the data: ${listing.join(' ')}`);
  e.notes.push(`server after docker volume rm: ${listing.join(' ')}`);
  e.notes.push(`DeleteVolume calls: ${callSummary(calls('a', t0, 'DeleteVolume'))}`);
});

await step('final', async (e) => {
  for (const n of ALL) {
    const v = await view(n);
    check(held(v, NFS_SHARE) === 0 && held(v, CIFS_SHARE) === 0, `${n} still holds a share: ${describe(v, NFS_SHARE)} ${describe(v, CIFS_SHARE)}`);
    check(doubleMounts(v).length === 0, `${n}: double mounts ${doubleMounts(v)}`);
  }
  const failures = ALL.flatMap((n) => failedCalls(n, 0));
  e.notes.push(`failed CSI calls over the run: ${failures.length ? failures.slice(0, 12).join(' | ') : 'none'}`);
  e.notes.push(`calls per node: ${ALL.map((n) => { const c = {}; for (const x of calls(n, 0)) { const k = x.rpc.split('.').pop(); c[k] = (c[k] || 0) + 1; } return `${n} ${JSON.stringify(c)}`; }).join('; ')}`);
});

finishReport();
