import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonStateStore } from '../../src/state/state-store.js';
import { parseMountInfo } from '../../src/system/mountinfo.js';
import { FAKE_MOUNT, spawnDaemon, waitFor, waitForReady, type DaemonProcess } from '../support/daemon-process.js';
import { tempDir } from '../support/fakes.js';
import { Prng } from '../support/robustness-prng.js';

/*
 * SIGKILL the real daemon at seeded random moments while concurrent loops Create, Mount,
 * Unmount and Remove a handful of volumes (one loop per volume, so each volume has at most
 * one call in flight), then restart it and check the acknowledged state survived:
 * - the daemon starts (the state file loads);
 * - every volume whose Create was acknowledged and whose Remove was not is there, with the
 *   same options; every volume acknowledged removed (and not re-created) is gone;
 * - each mount ID is held as often as acknowledged Mounts minus acknowledged Unmounts, give
 *   or take the one call that was in flight at the kill;
 * - the kernel mount table under the base directory holds exactly the mounts of the volumes
 *   that hold IDs, each once (orphans from a kill between mount and save are unmounted).
 */

const SEED = 0xc0ffee;
const KILLS = Number(process.env['NETVOL_CRASH_KILLS'] ?? 200);
const MAX_KILL_DELAY_MS = 300;
const IDS = ['1'.repeat(64), '2'.repeat(64), '3'.repeat(64)];
const VOLUMES: ReadonlyArray<{ name: string; options: Record<string, string> }> = [
  { name: 'pg', options: { share: '10.0.0.5:/exports/pg' } },
  { name: 'web', options: { share: '10.0.0.5:/exports/web', nfsopts: 'hard,timeo=600', version: '4.1' } },
  { name: 'logs', options: { share: 'files.example:/logs', create: 'true' } },
  { name: '10.0.0.6/exports/adhoc', options: {} },
  { name: 'cache', options: { share: '10.0.0.7:/cache', version: '3' } },
];

type Op = 'Create' | 'Remove' | 'Mount' | 'Unmount';

/** What the acknowledged replies say about one volume, plus the call in flight at the kill. */
interface Model {
  exists: boolean;
  ids: Map<string, number>;
  inFlight?: { op: Op; id?: string } | undefined;
}

interface CallResult {
  acknowledged: boolean;
  body?: Record<string, unknown>;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function call(socket: string, agent: Agent, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, agent, path, method: 'POST', headers: { Accept: 'application/vnd.docker.plugins.v1.2+json' } }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += String(chunk)));
      res.on('error', reject);
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch (error) {
          reject(error as Error);
        }
      });
    });
    req.on('error', reject);
    req.end(`${JSON.stringify(body)}\n`);
  });
}

function mountsUnder(dir: string): string[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((entry) => entry.mountPoint)
    .filter((mountPoint) => mountPoint.startsWith(`${dir}/`));
}

/** PIDs of live processes whose command line mentions `text` (our daemon's leftover mount/umount children). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (cmdline.includes(text) && !/\) Z /.test(stat)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('crash consistency under SIGKILL', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let args: string[];
  let socket: string;
  let root: string;
  let stateDir: string | undefined;
  let current: DaemonProcess | undefined;
  const started: DaemonProcess[] = [];

  beforeAll(async () => {
    dir = await tempDir('netvol-crash-');
    socket = join(dir.path, 'run', 'crash.sock');
    // The mount root is named after the driver, here the socket's name.
    root = join(dir.path, 'base', 'crash');
    args = ['nfs', '--socket', socket, '--state-dir', join(dir.path, 'state'), '--basedir', join(dir.path, 'base'), '--mount-command', FAKE_MOUNT, '--no-activate'];
  });

  afterAll(async () => {
    for (const daemon of started) {
      const pid = daemon.child.pid;
      if (pid !== undefined && daemon.child.exitCode === null && daemon.child.signalCode === null) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await daemon.exited;
      }
    }
    if (dir) {
      for (const mountPoint of mountsUnder(dir.path).reverse()) execFileSync('umount', ['-l', mountPoint]);
      await dir.cleanup();
    }
  });

  it(`keeps every acknowledged change across ${KILLS} SIGKILLs at random moments`, async () => {
    const rng = new Prng(SEED);
    const model = new Map<string, Model>(VOLUMES.map((v) => [v.name, { exists: false, ids: new Map() }]));
    const failures: string[] = [];
    const t0 = Date.now();
    let kills = 0;
    let acknowledged = 0;
    let refused = 0;
    let unanswered = 0;
    let startMs = 0;
    let kernelMountsSeen = 0;
    let volumesSeen = 0;

    const start = async (): Promise<DaemonProcess> => {
      const before = Date.now();
      const daemon = spawnDaemon(args);
      started.push(daemon);
      await Promise.race([
        waitForReady(daemon),
        daemon.exited.then((code) => {
          throw new Error(`daemon exited with ${code} before it was ready (the state did not load?):\n${daemon.output()}`);
        }),
      ]);
      startMs += Date.now() - before;
      // Leftover mounts come off after the socket is up, in the background: wait for that.
      if (daemon.output().includes('no volume holds it: unmounting')) {
        await waitFor(() => daemon.output().includes('Leftover mounts unmounted'), 10_000, `leftover clean-up\n${daemon.output()}`);
      }
      return daemon;
    };

    /** Compares what the restarted daemon and the kernel say with the model, then adopts what it says. */
    const verify = async (epoch: number, agent: Agent): Promise<void> => {
      const problem = (text: string) => failures.push(`after kill ${epoch}: ${text}`);
      // DIR/<driver name>/, named after the socket's file name; read through the store itself
      // (snapshot plus any journal), as the next start would.
      stateDir ??= readdirSync(join(dir.path, 'state'))
        .map((name) => join(dir.path, 'state', name))
        .find((path) => existsSync(join(path, 'state.json')) || existsSync(join(path, 'state.journal')));
      if (!stateDir) throw new Error(`no state under ${join(dir.path, 'state')}`);
      const state = ((await new JsonStateStore(stateDir).load()) ?? { volumes: {} }) as unknown as {
        volumes: Record<string, { mountIds: string[] } | undefined>;
      };
      const expectedMounts: string[] = [];
      for (const volume of VOLUMES) {
        const m = model.get(volume.name)!;
        const got = await call(socket, agent, '/VolumeDriver.Get', { Name: volume.name });
        const present = got.body['Err'] === '';
        const record = state.volumes[volume.name];
        if (present !== (record !== undefined)) problem(`${volume.name}: Get says present=${present} but the state file disagrees`);
        const mayBeAbsent = !m.exists || m.inFlight?.op === 'Remove';
        const mayBePresent = m.exists || m.inFlight?.op === 'Create';
        if (present && !mayBePresent) problem(`${volume.name}: present although its Remove was acknowledged and no Create was in flight`);
        if (!present && !mayBeAbsent) problem(`${volume.name}: lost although its Create was acknowledged (${JSON.stringify(got.body)})`);
        const ids = new Map<string, number>();
        if (present) {
          const detail = got.body['Volume'];
          const status = isRecord(detail) ? detail['Status'] : undefined;
          const options = isRecord(status) ? status['options'] : undefined;
          if (JSON.stringify(options) !== JSON.stringify(volume.options)) problem(`${volume.name}: options ${JSON.stringify(options)}, created with ${JSON.stringify(volume.options)}`);
          for (const id of record?.mountIds ?? []) ids.set(id, (ids.get(id) ?? 0) + 1);
          const mounts = isRecord(status) ? status['mounts'] : undefined;
          if (mounts !== (record?.mountIds.length ?? 0)) problem(`${volume.name}: Get says ${String(mounts)} mounts, the state file ${record?.mountIds.length}`);
          if ((record?.mountIds.length ?? 0) > 0) expectedMounts.push(join(root, volume.name));
        }
        for (const id of IDS) {
          const held = ids.get(id) ?? 0;
          const acked = m.ids.get(id) ?? 0;
          const plus = m.inFlight?.op === 'Mount' && m.inFlight.id === id ? 1 : 0;
          const minus = m.inFlight?.op === 'Unmount' && m.inFlight.id === id ? 1 : 0;
          if (held > acked + plus) problem(`${volume.name}: ID ${id.slice(0, 4)}… held ${held} times, acknowledged ${acked} (in flight: ${JSON.stringify(m.inFlight)})`);
          if (held < acked - minus) problem(`${volume.name}: ID ${id.slice(0, 4)}… held ${held} times, but ${acked} acknowledged Mounts are outstanding (in flight: ${JSON.stringify(m.inFlight)})`);
        }
        // From here on the daemon's word is the model: the in-flight ambiguity is resolved.
        model.set(volume.name, { exists: present, ids });
      }
      const kernel = mountsUnder(root).sort();
      kernelMountsSeen += kernel.length;
      if (state.volumes && Object.keys(state.volumes).length > 0) volumesSeen += Object.keys(state.volumes).length;
      if (JSON.stringify(kernel) !== JSON.stringify(expectedMounts.sort())) {
        problem(`kernel mounts ${JSON.stringify(kernel)}, volumes holding IDs ${JSON.stringify(expectedMounts)}`);
      }
    };

    /** One volume's loop: sequential calls until the daemon dies under it. */
    const loop = async (volume: (typeof VOLUMES)[number], agent: Agent, loopRng: Prng, alive: () => boolean): Promise<void> => {
      const m = model.get(volume.name)!;
      while (alive()) {
        const held = IDS.filter((id) => (m.ids.get(id) ?? 0) > 0);
        const roll = loopRng.next();
        let op: Op;
        if (!m.exists) op = roll < 0.75 ? 'Create' : roll < 0.85 ? 'Mount' : roll < 0.95 ? 'Unmount' : 'Remove';
        else if (held.length === 0) op = roll < 0.55 ? 'Mount' : roll < 0.8 ? 'Remove' : roll < 0.9 ? 'Create' : 'Unmount';
        else op = roll < 0.35 ? 'Mount' : roll < 0.85 ? 'Unmount' : roll < 0.95 ? 'Remove' : 'Create';
        const id = op === 'Unmount' && held.length > 0 && loopRng.chance(0.9) ? loopRng.pick(held) : loopRng.pick(IDS);
        const body =
          op === 'Create'
            ? { Name: volume.name, Opts: Object.keys(volume.options).length > 0 || loopRng.chance(0.5) ? volume.options : null }
            : op === 'Remove'
              ? { Name: volume.name }
              : { Name: volume.name, ID: id };
        m.inFlight = { op, ...(op === 'Mount' || op === 'Unmount' ? { id } : {}) };
        let result: CallResult;
        try {
          const reply = await call(socket, agent, `/VolumeDriver.${op}`, body);
          result = { acknowledged: reply.body['Err'] === '', body: reply.body };
        } catch {
          unanswered++;
          return; // killed: the call stays in flight for verify()
        }
        m.inFlight = undefined;
        if (!result.acknowledged) {
          refused++;
          const err = String(result.body?.['Err'] ?? '');
          // The only refusals this workload should see: Mount/Remove of an absent volume, Remove while mounted.
          if (!/no volume named|still mounted/.test(err)) failures.push(`${op} ${volume.name} refused unexpectedly: ${err}`);
          continue;
        }
        acknowledged++;
        if (op === 'Create') m.exists = true;
        if (op === 'Remove') {
          if (held.length > 0) failures.push(`Remove ${volume.name} acknowledged while the model holds ${held.length} IDs`);
          m.exists = false;
        }
        if (op === 'Mount') {
          if (!m.exists) failures.push(`Mount ${volume.name} acknowledged but it was never created`);
          m.ids.set(id, (m.ids.get(id) ?? 0) + 1);
        }
        if (op === 'Unmount' && (m.ids.get(id) ?? 0) > 0) m.ids.set(id, (m.ids.get(id) ?? 0) - 1);
      }
    };

    current = await start();
    for (let epoch = 1; epoch <= KILLS; epoch++) {
      const agent = new Agent({ keepAlive: true });
      let alive = true;
      const loops = VOLUMES.map((volume) => loop(volume, agent, new Prng(rng.int(2 ** 32)), () => alive));
      await sleep(rng.int(MAX_KILL_DELAY_MS + 1));
      current.child.kill('SIGKILL');
      await current.exited;
      kills++;
      alive = false;
      await Promise.all(loops);
      agent.destroy();
      // mount/umount run in their own process groups and outlive the daemon: let them finish,
      // as the next start would otherwise race a mount landing after reconciliation.
      const waitStart = Date.now();
      while (processesMentioning(dir.path).length > 0 && Date.now() - waitStart < 10_000) await sleep(10);
      current = await start();
      const checkAgent = new Agent({ keepAlive: true });
      await verify(epoch, checkAgent);
      checkAgent.destroy();
      if (failures.length > 20) break;
    }

    const seconds = (Date.now() - t0) / 1000;
    console.log(
      `crash consistency: ${kills} SIGKILLs survived in ${seconds.toFixed(1)} s (daemon starts ${(startMs / (kills + 1)).toFixed(0)} ms on average); ${acknowledged} calls acknowledged, ${refused} refused, ${unanswered} cut off by a kill; ${kernelMountsSeen} kernel mounts and ${volumesSeen} volumes checked after restarts; ${failures.length} failures`,
    );
    expect(failures.slice(0, 20)).toEqual([]);
    expect(kills).toBe(KILLS);
    expect(acknowledged).toBeGreaterThan(KILLS);
    expect(kernelMountsSeen).toBeGreaterThan(KILLS / 2);
    expect(volumesSeen).toBeGreaterThan(KILLS);
  }, 300_000);
});

describe('mount table consistency for names the kernel spells differently', () => {
  let dir: { path: string; cleanup: () => Promise<void> } | undefined;
  let daemon: DaemonProcess | undefined;

  afterAll(async () => {
    const pid = daemon?.child.pid;
    if (daemon && pid !== undefined && daemon.child.exitCode === null && daemon.child.signalCode === null) {
      process.kill(pid, 'SIGKILL');
      await daemon.exited;
    }
    if (dir) {
      for (const mountPoint of mountsUnder(dir.path).reverse()) execFileSync('umount', ['-l', mountPoint]);
      await dir.cleanup();
    }
  });

  // A lone surrogate reaches the filesystem and the mount table as U+FFFD, so such a name
  // could never find its own mount: it must be refused, or mount once and unmount at the end.
  it('mounts a volume whose name has a lone surrogate once, and unmounts it at the last Unmount', async () => {
    dir = await tempDir('netvol-surrogate-');
    const socket = join(dir.path, 'run', 'surrogate.sock');
    const root = join(dir.path, 'base', 'surrogate');
    daemon = spawnDaemon(['nfs', '--socket', socket, '--state-dir', join(dir.path, 'state'), '--basedir', join(dir.path, 'base'), '--mount-command', FAKE_MOUNT, '--no-activate']);
    await waitForReady(daemon);
    const agent = new Agent({ keepAlive: true });
    const name = 'x\ud800';
    const created = await call(socket, agent, '/VolumeDriver.Create', { Name: name, Opts: { share: '10.0.0.5:/x' } });
    if (created.body['Err'] !== '') return; // refusing the name is a fix too
    await call(socket, agent, '/VolumeDriver.Mount', { Name: name, ID: IDS[0] });
    await call(socket, agent, '/VolumeDriver.Mount', { Name: name, ID: IDS[1] });
    const whileMounted = mountsUnder(root).length;
    await call(socket, agent, '/VolumeDriver.Unmount', { Name: name, ID: IDS[0] });
    await call(socket, agent, '/VolumeDriver.Unmount', { Name: name, ID: IDS[1] });
    const afterUnmount = mountsUnder(root).length;
    agent.destroy();
    expect({ whileMounted, afterUnmount }).toEqual({ whileMounted: 1, afterUnmount: 0 });
  });
});
