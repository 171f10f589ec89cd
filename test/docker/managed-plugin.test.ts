import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importBusyboxImage } from './support/busybox-image.js';
import { docker, dockerOk, dockerdDirs, startDockerd, stopDockerd, type Dockerd } from './support/dockerd.js';
import { makeTempDir, mountsUnder, removeTempDir, tail, unmountAll } from './support/files.js';
import { MOUNT_TOOL_MESSAGE } from './support/mount-errors.js';
import { netvolConfig, readStateFile, PLUGIN_DIR } from './support/netvol.js';
import { describeDocker } from './support/prerequisites.js';
import { findDockerCli, findExecutable, repoRoot } from './support/tools.js';
import { waitFor } from './support/wait.js';

/**
 * netvol as a Docker managed plugin, built without a registry by scripts/build-plugin.sh
 * (debootstrap rootfs + host node + dist/), run by a private dockerd through its whole
 * lifecycle: create, set, enable, volumes, disable/enable, replace (an upgrade), rm.
 *
 * This kernel has no NFS client, so a real mount fails; the test asserts that the failure is
 * mount.nfs4's own message, which can only come from the plugin's rootfs (the host has no
 * mount.nfs). To see a container really get a share through the propagated mount, one step
 * points the plugin at a bind-mount stand-in for mount(8) that the test adds to its copy of
 * the rootfs, through the settable EXTRA_ARGS (--mount-command).
 */

const PLUGIN = 'netvol-test:latest';
/** plugin-config.json's PropagatedMount: where netvol mounts inside the plugin. */
const PROPAGATED = '/var/lib/docker-volumes/netshare';
const SHARE = '127.0.0.1:/exports/x';
/** First build debootstraps a Debian rootfs (1-3 minutes with a good mirror); later ones take seconds. */
const BUILD_TIMEOUT_MS = 15 * 60_000;
/** In the plugin's rootfs: serves `host:/PATH` from /exports/PATH by `mount --bind`. */
const STAND_IN = '/usr/local/bin/netvol-test-bind-mount';

interface InspectedVolume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  Options: Record<string, string> | null;
  Status?: Record<string, unknown>;
}

interface InspectedPlugin {
  Id: string;
  Name: string;
  Enabled: boolean;
  Settings: { Env: string[]; Mounts: { Name: string; Source: string }[] };
}

const isCi = Boolean(process.env['CI']) && process.env['CI'] !== 'false' && process.env['CI'] !== '0';

/** Like describeDocker, but also needs debootstrap to build the plugin's rootfs. */
function describeManagedPlugin(name: string, body: () => void): void {
  if (findExecutable('debootstrap') || isCi) {
    describeDocker(name, body);
    return;
  }
  const reason = 'no debootstrap to build the plugin rootfs (Debian package debootstrap)';
  console.warn(`[docker tier] skipping "${name}": ${reason} (set CI=1 to make this an error)`);
  describe.skip(`${name} [skipped: ${reason}]`, body);
}

/** Runs scripts/build-plugin.sh; `docker` adds --create through this dockerd's CLI. */
async function buildPlugin(out: string, extraArgs: string[] = [], dockerd?: Dockerd) {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('DOCKER')) env[key] = value;
  }
  if (dockerd) {
    env['DOCKER'] = findDockerCli() ?? 'docker';
    env['DOCKER_HOST'] = `unix://${dockerd.dirs.socket}`;
    env['DOCKER_CONFIG'] = dockerd.dirs.cliConfig;
  }
  return execa('bash', [join(repoRoot, 'scripts', 'build-plugin.sh'), '--out', out, ...extraArgs], {
    env,
    extendEnv: false,
    reject: false,
    timeout: BUILD_TIMEOUT_MS,
    stdin: 'ignore',
  });
}

/** The stand-in for mount(8) (see bind-mount-command.ts), added to the test's plugin rootfs. */
async function addBindMountStandIn(rootfs: string): Promise<void> {
  const path = join(rootfs, STAND_IN);
  await writeFile(
    path,
    `#!/bin/sh
set -eu
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
[ "$#" -eq 3 ] || { echo "bind-mount: expected -- SOURCE TARGET" >&2; exit 2; }
exec mount --bind -- /exports"\${2#*:}" "$3"
`,
    { mode: 0o755 },
  );
  await chmod(path, 0o755);
  await mkdir(join(rootfs, 'exports', 'exports', 'x'), { recursive: true });
}

describeManagedPlugin('netvol as a Docker managed plugin built without a registry', () => {
  let root = '';
  let pluginDir = '';
  let stateDir = '';
  let engine: Dockerd | undefined;
  let image = '';
  /** Plugin IDs this test created: dockerd gives each a directory under /run/docker/plugins. */
  const pluginIds = new Set<string>();
  const containers = new Set<string>();

  const dockerd = () => {
    if (!engine) throw new Error('dockerd is not running');
    return engine;
  };
  const run = (args: string[], timeoutMs?: number) => docker(dockerd(), args, timeoutMs);
  const ok = (args: string[], timeoutMs?: number) => dockerOk(dockerd(), args, timeoutMs);
  const inspectPlugin = async () => (JSON.parse(await ok(['plugin', 'inspect', PLUGIN])) as InspectedPlugin[])[0]!;
  const inspectVolume = async (name: string) => (JSON.parse(await ok(['volume', 'inspect', name])) as InspectedVolume[])[0]!;
  const volumeNames = async () => (await ok(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).split('\n');
  const stateFile = () => readStateFile({ ...netvolConfig(root, 'netvol'), stateDir });
  /** The plugin's own log lines, which dockerd copies into its log tagged plugin=<id>. */
  const pluginLog = async (id: string) =>
    readFileSync(dockerd().dirs.log, 'utf8')
      .split('\n')
      .filter((line) => line.includes(`plugin=${id}`))
      .join('\n');
  const created = async () => {
    const plugin = await inspectPlugin();
    pluginIds.add(plugin.Id);
    return plugin;
  };

  beforeAll(async () => {
    root = await makeTempDir('netvol-plugin');
    pluginDir = join(root, 'plugin');
    stateDir = join(root, 'state');
    const started = Date.now();
    const build = await buildPlugin(pluginDir);
    if (build.exitCode !== 0) {
      throw new Error(`scripts/build-plugin.sh exited ${build.exitCode}:\n${build.stderr.split('\n').slice(-30).join('\n')}`);
    }
    console.info(`[managed plugin] build-plugin.sh took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await addBindMountStandIn(join(pluginDir, 'rootfs'));
    engine = await startDockerd(dockerdDirs(root), `netvoltest-plugin-${randomBytes(3).toString('hex')}`);
    image = await importBusyboxImage(engine, root);
  }, BUILD_TIMEOUT_MS + 120_000);

  afterAll(async () => {
    if (engine) {
      for (const id of containers) await run(['rm', '-f', id]).catch(() => undefined);
      await run(['volume', 'rm', '-f', 'v1']).catch(() => undefined);
      await run(['plugin', 'rm', '-f', PLUGIN]).catch(() => undefined);
      await stopDockerd(engine);
    }
    // dockerd removes these with the plugin; a failed rm or a dockerd that died would leave them.
    for (const id of pluginIds) await rm(join(PLUGIN_DIR, id), { recursive: true, force: true });
    if (root) {
      await unmountAll(mountsUnder(root));
      await removeTempDir(root);
    }
  }, 120_000);

  it('built a plugin directory: config.json is plugin-config.json, rootfs has node, netvol and the mount tools', async () => {
    expect(JSON.parse(readFileSync(join(pluginDir, 'config.json'), 'utf8'))).toEqual(
      JSON.parse(readFileSync(join(repoRoot, 'plugin-config.json'), 'utf8')),
    );
    const rootfs = join(pluginDir, 'rootfs');
    for (const path of [
      'usr/local/bin/node',
      'usr/local/bin/netvol-plugin',
      'opt/netvol/dist/cli.js',
      'opt/netvol/package.json',
      'opt/netvol/node_modules/execa/package.json',
      'sbin/mount.nfs4',
      'sbin/mount.cifs',
      'run/docker/plugins',
      'var/lib/netvol',
      'var/lib/docker-volumes/netshare',
    ]) {
      expect(existsSync(join(rootfs, path)), path).toBe(true);
    }
    // Production dependencies only.
    expect(existsSync(join(rootfs, 'opt/netvol/node_modules/vitest'))).toBe(false);
    expect(existsSync(join(rootfs, 'opt/netvol/node_modules/typescript'))).toBe(false);
  });

  it('is created from the directory, takes settings, and will not enable until its state dir exists on the host', async () => {
    expect(await ok(['plugin', 'create', PLUGIN, pluginDir], 300_000)).toContain(PLUGIN);
    const plugin = await created();
    expect(plugin.Enabled).toBe(false);
    expect(plugin.Settings.Mounts).toContainEqual(expect.objectContaining({ Name: 'state', Source: '/var/lib/netvol' }));

    await ok(['plugin', 'set', PLUGIN, 'VERBOSE=true', 'MOUNT_TIMEOUT=15', `state.source=${stateDir}`]);
    const set = await inspectPlugin();
    expect(set.Settings.Env).toEqual(expect.arrayContaining(['VERBOSE=true', 'MOUNT_TIMEOUT=15']));
    expect(set.Settings.Mounts).toContainEqual(expect.objectContaining({ Name: 'state', Source: stateDir }));

    // The state mount is a bind mount: runc refuses a source that does not exist.
    const refused = await run(['plugin', 'enable', PLUGIN]);
    expect(refused.exitCode).not.toBe(0);
    expect(refused.stderr).toContain(stateDir);
    expect(refused.stderr).toMatch(/no such file or directory/i);

    await mkdir(stateDir, { recursive: true });
    await ok(['plugin', 'enable', PLUGIN], 120_000);
    expect(await ok(['plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}'])).toContain(`${PLUGIN} true`);
    // The entry point found node on the PATH dockerd gives plugins and netvol started.
    await waitFor(async () => (await pluginLog(plugin.Id)).includes('Ready'), {
      what: 'the plugin to log that it is ready',
      timeoutMs: 30_000,
      detail: () => tail(dockerd().dirs.log),
    });
  });

  it('creates a volume that ls lists and inspect describes; its state lands in the host state dir', async () => {
    await ok(['volume', 'create', '-d', PLUGIN, '--name', 'v1', '-o', `share=${SHARE}`]);
    expect(await volumeNames()).toContain(`${PLUGIN} v1`);

    const volume = await inspectVolume('v1');
    expect(volume).toMatchObject({ Name: 'v1', Driver: PLUGIN, Options: { share: SHARE } });
    expect(volume.Status).toMatchObject({ share: SHARE, mounted: false });
    // Unmounted: '' or its future place under the propagated mount.
    if (volume.Mountpoint) expect(volume.Mountpoint.startsWith(`${PROPAGATED}/`)).toBe(true);

    expect(readdirSync(stateDir)).toContain('netvol');
    expect(stateFile()?.volumes?.['v1']).toMatchObject({ options: { share: SHARE } });
    // VERBOSE=true reached the daemon: it logs every Docker call.
    expect(await pluginLog((await inspectPlugin()).Id)).toContain('VolumeDriver.Create');
  });

  it('runs the mount inside the plugin: docker run fails with mount.nfs4’s own message naming the share', async () => {
    const result = await run(['run', '--rm', '-v', 'v1:/data', image, 'true']);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain(SHARE);
    expect(result.stderr).toMatch(MOUNT_TOOL_MESSAGE);
    // mount.nfs4 exists only in the plugin's rootfs, not on this host.
    expect(result.stderr).toMatch(/mount\.nfs4?:/);
    expect((await inspectVolume('v1')).Status).toMatchObject({ mounted: false, mounts: 0 });
    expect(stateFile()?.volumes?.['v1']?.mountIds ?? []).toEqual([]);
  });

  it('refuses a plain disable while volumes use it; disable -f then enable keeps the volume', async () => {
    const plain = await run(['plugin', 'disable', PLUGIN]);
    expect(plain.exitCode).not.toBe(0);
    expect(plain.stderr).toMatch(/in use/);

    await ok(['plugin', 'disable', '-f', PLUGIN]);
    expect((await inspectPlugin()).Enabled).toBe(false);
    await ok(['plugin', 'enable', PLUGIN], 120_000);
    expect(await volumeNames()).toContain(`${PLUGIN} v1`);
    expect((await inspectVolume('v1')).Status).toMatchObject({ share: SHARE });
  });

  it('gives a container the share through the propagated mount (bind-mount stand-in for mount.nfs)', async () => {
    await ok(['plugin', 'disable', '-f', PLUGIN]);
    // The calls above went through the relay that holds dockerd's socket (EARLY_SOCKET, the
    // default); from here netvol binds the socket itself (EARLY_SOCKET=false). Either way its
    // socket is named netvol.sock, so the driver name and the state are the same.
    await ok(['plugin', 'set', PLUGIN, `EXTRA_ARGS=--mount-command ${STAND_IN}`, 'EARLY_SOCKET=false']);
    await ok(['plugin', 'enable', PLUGIN], 120_000);
    const { Id: id } = await inspectPlugin();
    const dataRoot = dockerd().dirs.dataRoot;

    const container = (await ok(['run', '-d', '-v', 'v1:/data', image, 'sh', '-c', 'echo hello > /data/f; sleep 600'])).trim();
    containers.add(container);
    const volume = await inspectVolume('v1');
    // The mount root is named after the driver, which inside the plugin is its socket's name.
    expect(volume.Mountpoint).toBe(`${PROPAGATED}/netvol/v1`);
    expect(volume.Status).toMatchObject({ mounted: true, mounts: 1 });
    expect(stateFile()?.volumes?.['v1']?.mountIds).toHaveLength(1);

    // On the host, the plugin's mount appears under <data-root>/plugins/<id>/propagated-mount.
    const propagated = join(dataRoot, 'plugins', id, 'propagated-mount');
    const onHost = join(propagated, 'netvol', 'v1');
    expect(mountsUnder(propagated)).toContain(onHost);
    await waitFor(() => existsSync(join(onHost, 'f')) && readFileSync(join(onHost, 'f'), 'utf8') === 'hello\n', {
      what: 'the container’s file to appear on the host through the propagated mount',
      timeoutMs: 15_000,
    });
    expect(readFileSync(join(dataRoot, 'plugins', id, 'rootfs', 'exports', 'exports', 'x', 'f'), 'utf8')).toBe('hello\n');

    await ok(['rm', '-f', container]);
    containers.delete(container);
    await waitFor(() => !mountsUnder(propagated).includes(onHost), { what: 'the unmount to propagate to the host', timeoutMs: 15_000 });
    expect((await inspectVolume('v1')).Status).toMatchObject({ mounted: false, mounts: 0 });
  });

  it('is replaced by build-plugin.sh --create --force-replace (an upgrade) and the volume survives', async () => {
    const exists = await buildPlugin(pluginDir, ['--create', PLUGIN], dockerd());
    expect(exists.exitCode).not.toBe(0);
    expect(exists.stderr).toContain('--force-replace');

    const replaced = await buildPlugin(pluginDir, ['--create', PLUGIN, '--force-replace'], dockerd());
    expect(replaced.exitCode, replaced.stderr).toBe(0);
    expect(replaced.stderr).toContain(`docker plugin enable ${PLUGIN}`);
    const plugin = await created();
    expect(plugin.Enabled).toBe(false);
    // A new plugin starts from config.json's settings again.
    expect(plugin.Settings.Mounts).toContainEqual(expect.objectContaining({ Name: 'state', Source: '/var/lib/netvol' }));
    await ok(['plugin', 'set', PLUGIN, `state.source=${stateDir}`]);
    await ok(['plugin', 'enable', PLUGIN], 120_000);

    expect(await volumeNames()).toContain(`${PLUGIN} v1`);
    // Status comes from the new plugin's Get, i.e. from the state it found on the host.
    expect((await inspectVolume('v1')).Status).toMatchObject({ share: SHARE, options: { share: SHARE } });
  });

  it('removes the volume, then disables and removes the plugin', async () => {
    const { Id: id } = await inspectPlugin();
    await ok(['volume', 'rm', 'v1']);
    expect(await volumeNames()).not.toContain(`${PLUGIN} v1`);
    expect(stateFile()?.volumes?.['v1']).toBeUndefined();

    await ok(['plugin', 'disable', PLUGIN]);
    await ok(['plugin', 'rm', PLUGIN]);
    expect(await ok(['plugin', 'ls', '--format', '{{.Name}}'])).not.toContain(PLUGIN);
    expect(existsSync(join(PLUGIN_DIR, id))).toBe(false);
    // The state dir is the user's: removing the plugin leaves it.
    expect(existsSync(join(stateDir, 'netvol'))).toBe(true);
  });
});
