import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseMountInfo } from '../../src/system/mountinfo.js';
import { JsonStateStore } from '../../src/state/state-store.js';
import {
  FAKE_MOUNT,
  pluginCall,
  spawnDaemon,
  stopDaemon,
  waitFor,
  waitForReady,
  type DaemonProcess,
} from '../support/daemon-process.js';
import { tempDir } from '../support/fakes.js';

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);

function processesRunning(commandLine: string): number {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim() === commandLine;
      } catch {
        return false;
      }
    }).length;
}

function mountedUnder(dir: string): string[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((entry) => entry.mountPoint)
    .filter((mountPoint) => mountPoint.startsWith(`${dir}/`));
}

describe('the daemon process', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let running: DaemonProcess[] = [];
  let socket: string;
  let args: string[];

  const start = async (extra: string[] = []) => {
    const daemon = spawnDaemon([...args, ...extra]);
    running.push(daemon);
    await waitForReady(daemon);
    return daemon;
  };

  beforeEach(async () => {
    dir = await tempDir('netvol-int-');
    socket = join(dir.path, 'run', 'nfstest.sock');
    args = ['nfs', '--socket', socket, '--state-dir', join(dir.path, 'state'), '--basedir', join(dir.path, 'base'), '--mount-command', FAKE_MOUNT, '--verbose'];
  });

  afterEach(async () => {
    for (const daemon of running) await stopDaemon(daemon, 'SIGKILL');
    running = [];
    for (const mountPoint of mountedUnder(dir.path).reverse()) execFileSync('umount', ['-l', mountPoint]);
    await dir.cleanup();
  });

  it('keeps every volume, its options and its mount IDs across SIGKILL', async () => {
    const first = await start();
    const volumes: Array<[string, Record<string, string> | null]> = [
      ['pg', { share: '10.0.0.5:/exports/pg', nfsopts: 'hard,timeo=600', version: '4.1' }],
      ['10.0.0.5/exports/web/', null],
      ['app', { share: '10.0.0.5:/exports', create: 'true' }],
    ];
    for (const [Name, Opts] of volumes) expect((await pluginCall(socket, '/VolumeDriver.Create', { Name, Opts })).body).toEqual({ Err: '' });
    const mounted = await pluginCall(socket, '/VolumeDriver.Mount', { Name: 'pg', ID: ID_A });
    await pluginCall(socket, '/VolumeDriver.Mount', { Name: 'pg', ID: ID_B });
    const before = await Promise.all(volumes.map(([Name]) => pluginCall(socket, '/VolumeDriver.Get', { Name })));
    await stopDaemon(first, 'SIGKILL');

    const second = await start();
    const after = await Promise.all(volumes.map(([Name]) => pluginCall(socket, '/VolumeDriver.Get', { Name })));
    expect(after).toEqual(before);
    expect(second.output()).toMatch(/adopted the existing mount with 2 mount ID/);
    expect(mountedUnder(dir.path)).toEqual([mounted.body['Mountpoint']]);
    await pluginCall(socket, '/VolumeDriver.Unmount', { Name: 'pg', ID: ID_A });
    expect(mountedUnder(dir.path)).toHaveLength(1);
    await pluginCall(socket, '/VolumeDriver.Unmount', { Name: 'pg', ID: ID_B });
    // The share outlives its last Unmount by the unmount delay (3 s by default), then goes.
    expect(mountedUnder(dir.path)).toHaveLength(1);
    await vi.waitFor(() => expect(mountedUnder(dir.path)).toEqual([]), { timeout: 15_000, interval: 200 });
  });

  it('drops mount IDs from before a reboot and unmounts what nobody holds', async () => {
    const first = await start();
    await pluginCall(socket, '/VolumeDriver.Create', { Name: 'pg', Opts: { share: '10.0.0.5:/exports/pg' } });
    await pluginCall(socket, '/VolumeDriver.Mount', { Name: 'pg', ID: ID_A });
    await stopDaemon(first, 'SIGKILL');
    const store = new JsonStateStore(join(dir.path, 'state', 'nfstest'));
    const state = await store.load();
    await store.save({ ...state!, bootId: 'an-earlier-boot' });

    const second = await start();
    expect(second.output()).toMatch(/dropped 1 mount ID\(s\) from before the reboot/);
    await waitFor(() => mountedUnder(dir.path).length === 0, 10_000, 'the leftover mount to come off');
    const got = await pluginCall(socket, '/VolumeDriver.Get', { Name: 'pg' });
    expect(got.body['Volume']).toMatchObject({ Name: 'pg', Status: { mounted: false, mounts: 0 } });
  });

  it("returns the mount tool's message and holds nothing after a failed mount", async () => {
    await start();
    await pluginCall(socket, '/VolumeDriver.Create', { Name: 'bad', Opts: { share: 'refused.example:/x' } });
    const reply = await pluginCall(socket, '/VolumeDriver.Mount', { Name: 'bad', ID: ID_A });
    expect(reply.status).toBe(500);
    expect(reply.body['Err']).toMatch(/^mounting refused.example:\/x \(nfs4\) on .* failed: mount.nfs: Connection refused/);
    expect(mountedUnder(dir.path)).toEqual([]);
    const state = await new JsonStateStore(join(dir.path, 'state', 'nfstest')).load();
    expect(state?.volumes['bad']?.mountIds).toEqual([]);
  });

  it('kills a hung mount at the mount timeout while other volumes keep answering', async () => {
    await start(['--mount-timeout', '2']);
    const sleeper = String(6_000_000 + Math.floor(Math.random() * 999_999));
    await pluginCall(socket, '/VolumeDriver.Create', { Name: 'slow', Opts: { share: `hang${sleeper}.example:/x` } });
    await pluginCall(socket, '/VolumeDriver.Create', { Name: 'fast', Opts: { share: '10.0.0.5:/x' } });
    const started = Date.now();
    const hung = pluginCall(socket, '/VolumeDriver.Mount', { Name: 'slow', ID: ID_A });
    const fast = await pluginCall(socket, '/VolumeDriver.Mount', { Name: 'fast', ID: ID_B });
    expect(fast.body['Err']).toBe('');
    expect((await pluginCall(socket, '/VolumeDriver.List', {})).body['Volumes']).toHaveLength(2);
    await waitFor(() => processesRunning(`sleep ${sleeper}`) === 1, 5000, 'the hung mount helper');
    const reply = await hung;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(reply.body['Err']).toContain(`timed out after 2 s: server hang${sleeper}.example did not answer`);
    // The whole process group went, including what mount had forked.
    expect(processesRunning(`sleep ${sleeper}`)).toBe(0);
  });

  it('replaces a stale socket file, refuses to steal a live one, and creates it 0660', async () => {
    await mkdir(join(dir.path, 'run'), { recursive: true });
    // A socket file whose server is gone, as a crashed daemon leaves it.
    execFileSync('python3', ['-c', `import socket; s=socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(socket)})`]);
    expect(statSync(socket).isSocket()).toBe(true);
    await start();
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    // Another mount root, so that the socket check (not the mount-root lock) is what refuses it.
    const intruder = spawnDaemon(args.map((arg) => (arg === join(dir.path, 'base') ? join(dir.path, 'other-base') : arg)));
    expect(await intruder.exited).toBe(1);
    expect(intruder.output()).toContain(`another process is already serving ${socket}`);
    expect((await pluginCall(socket, '/VolumeDriver.List', {})).status).toBe(200);
  });

  it('refuses to start on a damaged state file, saying what to do', async () => {
    await mkdir(join(dir.path, 'state', 'nfstest'), { recursive: true });
    await writeFile(join(dir.path, 'state', 'nfstest', 'state.json'), '{"version":1,');
    const daemon = spawnDaemon(args);
    expect(await daemon.exited).toBe(1);
    expect(daemon.output()).toMatch(/state file .*state.json is not valid JSON .*; move it aside to start with no volumes/);
  });
});

describe('the command line', () => {
  it('explains every protocol and flag in --help', () => {
    const help = spawnSync(['nfs', '--help']);
    for (const flag of ['--basedir', '--socket', '--state-dir', '--mount-timeout', '--log-format', '--tcp', '--port', '-v, --version', '-o, --options', '--verbose']) {
      expect(help.output).toContain(flag);
    }
    expect(help.output).toContain('netvol nfs -v 3');
    const cifs = spawnSync(['cifs', '--help']);
    for (const flag of ['-u, --username', '-p, --password', '-d, --domain', '-s, --security', '-f, --fileMode', '-z, --dirMode', '--netrc']) {
      expect(cifs.output).toContain(flag);
    }
    expect(spawnSync(['efs', '--help']).output).toContain('--noresolve');
  });

  it('prints its version', () => {
    expect(spawnSync(['version']).output).toMatch(/^netvol \d+\.\d+\.\d+\n$/);
  });

  it('fails clearly when EFS has no region', () => {
    const result = spawnSync(['efs', '--socket', '/tmp/netvol-none.sock'], { NETVOL_IMDS_ENDPOINT: 'http://127.0.0.1:9', AWS_REGION: '' });
    expect(result.status).toBe(1);
    expect(result.output).toContain('EFS needs an AWS region');
  });

  it('refuses TCP on a non-loopback address without --insecure', () => {
    const result = spawnSync(['nfs', '--tcp', '--port', '0.0.0.0:8877']);
    expect(result.status).toBe(1);
    expect(result.output).toContain('refusing to serve the plugin API without authentication on 0.0.0.0');
  });

  it('rejects an unknown protocol', () => {
    const result = spawnSync(['ceph']);
    expect(result.status).toBe(2);
    expect(result.output).toContain('netvol:');
  });
});

import { spawnSync as nodeSpawnSync } from 'node:child_process';
import { CLI } from '../support/daemon-process.js';

function spawnSync(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; output: string } {
  const result = nodeSpawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('the command line and secrets', () => {
  it('never prints a password from the environment in --help', () => {
    const result = spawnSync(['cifs', '--help'], { NETSHARE_CIFS_PASSWORD: 'env-S3cret' });
    expect(result.status).toBe(0);
    expect(result.output).not.toContain('env-S3cret');
  });
});
