import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseMountInfo } from '../../src/system/mountinfo.js';
import { FAKE_MOUNT, REPO, pluginCall, spawnDaemon, stopDaemon, waitFor, waitForReady, type DaemonProcess } from '../support/daemon-process.js';
import { tempDir } from '../support/fakes.js';

// The core against real processes, a real filesystem and the real mount table (shares are
// tmpfs or bind mounts: this kernel has no NFS client), each test named after the defect
// it once had.

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);
const HELPER = join(REPO, 'dist/system/share-directory-helper.js');

function mounts(): ReturnType<typeof parseMountInfo> {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}
const mountedUnder = (dir: string) => mounts().filter((entry) => entry.mountPoint.startsWith(`${dir}/`));

function helper(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [HELPER, ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr.trim() };
}

describe('core hardening (real processes)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  const running: DaemonProcess[] = [];
  const cleanups: Array<() => void> = [];

  beforeEach(async () => {
    dir = await tempDir('netvol-harden-');
  });

  afterEach(async () => {
    for (const daemon of running.splice(0)) await stopDaemon(daemon, 'SIGKILL');
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
    for (const entry of mountedUnder(dir.path).reverse()) spawnSync('umount', ['-l', entry.mountPoint]);
    await dir.cleanup();
  });

  const start = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const daemon = spawnDaemon(args, env);
    running.push(daemon);
    await Promise.race([
      waitForReady(daemon),
      daemon.exited.then((code) => {
        throw new Error(`daemon exited with ${code}:\n${daemon.output()}`);
      }),
    ]);
    return daemon;
  };
  const nfsArgs = (name: string, extra: string[] = []) => [
    'nfs',
    '--socket',
    join(dir.path, 'run', `${name}.sock`),
    '--state-dir',
    join(dir.path, 'state'),
    '--basedir',
    join(dir.path, 'base'),
    '--mount-command',
    FAKE_MOUNT,
    '--no-activate',
    '--unmount-delay',
    '0',
    ...extra,
  ];

  describe('R16: the directory helper never follows a link on the share', () => {
    it('R16: refuses a symbolic link, and never touches its target', async () => {
      const share = join(dir.path, 'share');
      const outside = join(dir.path, 'outside');
      await mkdir(share);
      await mkdir(outside);
      await symlink(outside, join(share, 'app'));
      const made = helper('make', share, 'app', '700', '1000', '1000');
      expect([made.status, made.stderr]).toEqual([3, "'app' on the share is a symbolic link, not a directory; netvol never follows links on a share: remove it on the server"]);
      expect(statSync(outside).mode & 0o777).not.toBe(0o700);
      expect(statSync(outside).uid).toBe(0);
      expect(helper('remove', share, 'app').status).toBe(3);
      expect(existsSync(outside)).toBe(true);
      expect(helper('rename', share, 'app', 'archived-app').status).toBe(3);
      expect((await lstat(join(share, 'app'))).isSymbolicLink()).toBe(true);
    });

    it('R16: refuses a file and a parent that is itself a link', async () => {
      const share = join(dir.path, 'share');
      await mkdir(share);
      await writeFile(join(share, 'app'), 'not a directory');
      expect(helper('make', share, 'app', '-', '-', '-')).toMatchObject({ status: 3, stderr: "'app' on the share is not a directory; remove or rename it on the server" });
      await symlink(share, join(dir.path, 'link'));
      expect(helper('make', join(dir.path, 'link'), 'x', '-', '-', '-').status).toBe(1);
      expect(existsSync(join(share, 'x'))).toBe(false);
      expect(helper('make', share, '../x', '-', '-', '-')).toMatchObject({ status: 3, stderr: "directory '../x' is not a single path segment" });
    });

    it('makes a directory with the owner and mode asked for, once', async () => {
      const share = join(dir.path, 'share');
      await mkdir(share);
      expect(JSON.parse(helper('make', share, 'pg', '750', '999', '998').stdout)).toEqual({ made: true, uid: 999, gid: 998, mode: '750' });
      await chmod(join(share, 'pg'), 0o755);
      // Data that exists is never changed.
      expect(JSON.parse(helper('make', share, 'pg', '700', '1', '1').stdout)).toEqual({ made: false, uid: 999, gid: 998, mode: '755' });
      expect(JSON.parse(helper('rename', share, 'pg', 'archived-pg').stdout)).toEqual({ renamed: true });
      await writeFile(join(share, 'archived-pg', 'data'), 'x');
      expect(JSON.parse(helper('remove', share, 'archived-pg').stdout)).toEqual({ removed: true });
      expect(await readdir(share)).toEqual([]);
    });
  });

  it('R16: a link placed on the share never makes the path handed to dockerd resolve outside the mount root', async () => {
    const daemon = await start(nfsArgs('nfss'));
    await pluginCall(daemon.socket, '/VolumeDriver.Create', { Name: 'app', Opts: { share: '10.0.0.5:/exports', create: 'true' } });
    const first = String((await pluginCall(daemon.socket, '/VolumeDriver.Mount', { Name: 'app', ID: ID_A })).body['Mountpoint']);
    // Whoever can write to the share puts a link where the volume's subdirectory is.
    const root = mountedUnder(dir.path).map((entry) => entry.mountPoint).find((path) => first.startsWith(path)) ?? first;
    execFileSync('rm', ['-rf', join(root, 'app')]);
    await symlink('/etc', join(root, 'app'));
    const second = String((await pluginCall(daemon.socket, '/VolumeDriver.Mount', { Name: 'app', ID: ID_B })).body['Mountpoint']);
    const { realpathSync } = await import('node:fs');
    expect(realpathSync(second).startsWith(`${realpathSync(join(dir.path, 'base'))}/`)).toBe(true);
  });

  it('R10: two daemons of one protocol under other names keep their own mount roots and never unmount each other', async () => {
    const a = await start(nfsArgs('nfsa'));
    const b = await start(nfsArgs('nfsb'));
    await pluginCall(a.socket, '/VolumeDriver.Create', { Name: 'data', Opts: { share: '10.0.0.5:/team-a' } });
    await pluginCall(b.socket, '/VolumeDriver.Create', { Name: 'data', Opts: { share: '10.0.0.6:/team-b' } });
    const pathA = (await pluginCall(a.socket, '/VolumeDriver.Mount', { Name: 'data', ID: ID_A })).body['Mountpoint'];
    const pathB = (await pluginCall(b.socket, '/VolumeDriver.Mount', { Name: 'data', ID: ID_B })).body['Mountpoint'];
    // R10b: each daemon's volume gets its own share.
    expect([pathA, pathB]).toEqual([join(dir.path, 'base', 'nfsa', 'data'), join(dir.path, 'base', 'nfsb', 'data')]);
    expect(mountedUnder(dir.path).map((entry) => [entry.mountPoint, entry.source])).toEqual([
      [pathA, '10.0.0.5:/team-a'],
      [pathB, '10.0.0.6:/team-b'],
    ]);
    // B restarts: A's mount is not B's leftover.
    await stopDaemon(b, 'SIGKILL');
    const b2 = await start(nfsArgs('nfsb'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(mountedUnder(join(dir.path, 'base', 'nfsa')).map((entry) => entry.mountPoint)).toEqual([pathA]);
    expect((await pluginCall(a.socket, '/VolumeDriver.Get', { Name: 'data' })).body['Volume']).toMatchObject({ Status: { mounted: true, mounts: 1 } });
    expect((await pluginCall(b2.socket, '/VolumeDriver.Get', { Name: 'data' })).body['Volume']).toMatchObject({ Status: { mounted: true, mounts: 1 } });
  });

  it('R10: a second daemon on the same mount root refuses to start and says why', async () => {
    const first = await start(nfsArgs('nfsa'));
    const second = spawnDaemon([...nfsArgs('nfsa').map((arg) => (arg.endsWith('nfsa.sock') ? join(dir.path, 'run2', 'nfsa.sock') : arg))]);
    running.push(second);
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain(
      `mount root ${join(dir.path, 'base', 'nfsa')} is in use by another netvol (driver 'nfsa', pid ${first.child.pid}); two daemons must not share one: stop that one, or give this one another driver name (NETSHARE_SOCKET_NAME) or --basedir`,
    );
    // A lock left by a killed daemon does not hold.
    await stopDaemon(first, 'SIGKILL');
    await start(nfsArgs('nfsa'));
  });

  it('R14: with a symlinked --basedir a share is mounted once and unmounted with the last container', async () => {
    await mkdir(join(dir.path, 'real-base'));
    await symlink(join(dir.path, 'real-base'), join(dir.path, 'base'));
    const daemon = await start(nfsArgs('nfsl'));
    await pluginCall(daemon.socket, '/VolumeDriver.Create', { Name: 'pg', Opts: { share: '10.0.0.5:/pg' } });
    const first = await pluginCall(daemon.socket, '/VolumeDriver.Mount', { Name: 'pg', ID: ID_A });
    await pluginCall(daemon.socket, '/VolumeDriver.Mount', { Name: 'pg', ID: ID_B });
    expect(first.body['Mountpoint']).toBe(join(dir.path, 'real-base', 'nfsl', 'pg'));
    expect(mountedUnder(dir.path).length).toBe(1);
    await pluginCall(daemon.socket, '/VolumeDriver.Unmount', { Name: 'pg', ID: ID_A });
    await pluginCall(daemon.socket, '/VolumeDriver.Unmount', { Name: 'pg', ID: ID_B });
    expect(mountedUnder(dir.path)).toEqual([]);
  });

  it('R11: leftover mounts of a dead server do not delay readiness', async () => {
    const hangingUmount = join(dir.path, 'hanging-umount.sh');
    await writeFile(hangingUmount, '#!/bin/sh\nsleep 30\n');
    await chmod(hangingUmount, 0o755);
    const args = nfsArgs('nfso', ['--mount-timeout', '2']);
    const first = await start(args);
    for (const name of ['o1', 'o2', 'o3']) {
      await pluginCall(first.socket, '/VolumeDriver.Create', { Name: name, Opts: { share: `10.0.0.5:/${name}` } });
      await pluginCall(first.socket, '/VolumeDriver.Mount', { Name: name, ID: ID_A });
      await pluginCall(first.socket, '/VolumeDriver.Unmount', { Name: name, ID: ID_A }).catch(() => undefined);
    }
    // Leave three shares mounted that no volume holds: a crash between mount and save.
    for (const name of ['o1', 'o2', 'o3']) await mkdir(join(dir.path, 'base', 'nfso', name), { recursive: true });
    for (const name of ['o1', 'o2', 'o3']) execFileSync(FAKE_MOUNT, ['-t', 'nfs4', '--', `10.0.0.5:/${name}`, join(dir.path, 'base', 'nfso', name)]);
    await stopDaemon(first, 'SIGKILL');
    const before = Date.now();
    const second = await start([...args, '--umount-command', hangingUmount]);
    const readyMs = Date.now() - before;
    expect(second.output()).toContain('no volume holds it: unmounting');
    // Before: 3 orphans x (2 s umount + 2 s umount -l) one after another, then listen (13.3 s in review).
    expect(readyMs).toBeLessThan(2000);
    expect((await pluginCall(second.socket, '/VolumeDriver.List', {})).status).toBe(200);
  });

  it('R15: credentials files left by a daemon killed during mount.cifs are removed at start', async () => {
    const secrets = join(dir.path, 'state', 'cifst', 'secrets');
    await mkdir(secrets, { recursive: true, mode: 0o700 });
    await writeFile(join(secrets, 'cifs-0123456789abcdef'), 'username=alice\npassword=S3cret-pw\n', { mode: 0o600 });
    const daemon = await start([
      'cifs',
      '--socket',
      join(dir.path, 'run', 'cifst.sock'),
      '--state-dir',
      join(dir.path, 'state'),
      '--basedir',
      join(dir.path, 'base'),
      '--mount-command',
      FAKE_MOUNT,
      '--no-activate',
    ]);
    expect(await readdir(secrets)).toEqual([]);
    expect(daemon.output()).toContain('Removed CIFS credentials files left by a daemon that was killed during a mount');
  });

  describe('R12: a hung share', () => {
    let frozen: string | undefined;
    let loop = true;
    beforeEach(async () => {
      // A loop-mounted ext4 frozen with fsfreeze stands in for a dead `hard` NFS server: a
      // mkdir on it blocks in the kernel, unkillable, until it thaws.
      const image = join(dir.path, 'frozen.img');
      frozen = join(dir.path, 'frozen');
      await mkdir(frozen);
      try {
        execFileSync('truncate', ['-s', '16M', image]);
        execFileSync('mkfs.ext4', ['-q', image]);
        execFileSync('mount', ['-o', 'loop', image, frozen]);
      } catch {
        loop = false;
        return;
      }
      const thawAndUnmount = (path: string) => () => {
        spawnSync('fsfreeze', ['-u', path]);
        spawnSync('umount', ['-l', path]);
      };
      cleanups.push(thawAndUnmount(frozen));
    });

    it('R12: making a subdirectory on a hung share delays only its own volume, and only up to the mount timeout', async (context) => {
      if (!loop || !frozen) context.skip();
      const fakeMount = join(dir.path, 'mount-frozen.sh');
      await writeFile(
        fakeMount,
        `#!/bin/sh
for arg; do source_arg=$target_arg; target_arg=$arg; done
case "$source_arg" in
  frozen:/share/*) echo "mount.nfs4: mounting $source_arg failed, reason given by server: No such file or directory" >&2; exit 32 ;;
  frozen:/share) exec mount --bind "${frozen}" "$target_arg" ;;
esac
exec "${FAKE_MOUNT}" "$@"
`,
      );
      await chmod(fakeMount, 0o755);
      const args = nfsArgs('nfsh', ['--mount-timeout', '2']).map((arg) => (arg === FAKE_MOUNT ? fakeMount : arg));
      const daemon = await start(args);
      execFileSync('fsfreeze', ['-f', frozen!]);
      const names = ['h1', 'h2', 'h3', 'h4', 'h5'];
      for (const name of names) await pluginCall(daemon.socket, '/VolumeDriver.Create', { Name: name, Opts: { share: 'frozen:/share', create: 'true' } });
      await pluginCall(daemon.socket, '/VolumeDriver.Create', { Name: 'ok', Opts: { share: '10.0.0.5:/ok' } });
      const t0 = Date.now();
      // Five hung Mounts: more than libuv's four pool threads.
      const hung = names.map((name) =>
        pluginCall(daemon.socket, '/VolumeDriver.Mount', { Name: name, ID: ID_A }).then((reply) => ({ ms: Date.now() - t0, err: String(reply.body['Err']) })),
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      const ok = await pluginCall(daemon.socket, '/VolumeDriver.Mount', { Name: 'ok', ID: ID_A });
      const okMs = Date.now() - t0;
      expect(ok.body['Err']).toBe('');
      expect(okMs).toBeLessThan(1500);
      const replies = await Promise.all(hung);
      for (const reply of replies) {
        expect(reply.err).toMatch(/cannot make the subdirectory h\d on frozen:\/share: creating h\d on frozen:\/share timed out after 2 s: server frozen stopped answering/);
        // The mount timeout, SIGKILL's 5 s grace for a process stuck in the kernel, and the rest.
        expect(reply.ms).toBeLessThan(12_000);
      }
      // Unmount of the healthy volume answers at once, and nothing of a hung volume is held.
      expect((await pluginCall(daemon.socket, '/VolumeDriver.Unmount', { Name: 'ok', ID: ID_A })).body['Err']).toBe('');
      const got = await pluginCall(daemon.socket, '/VolumeDriver.Get', { Name: 'h1' });
      expect(got.body['Volume']).toMatchObject({ Status: { mounted: false, mounts: 0 } });
      execFileSync('fsfreeze', ['-u', frozen!]);
      await waitFor(async () => (await readFile('/proc/self/mountinfo', 'utf8')).split(join(dir.path, 'state')).length === 1, 15_000, 'the staging mounts to come off');
    }, 60_000);
  });
});
