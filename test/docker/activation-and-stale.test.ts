import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeBindMountCommand } from './support/bind-mount-command.js';
import { dockerdDirs } from './support/dockerd.js';
import { mountsUnder } from './support/files.js';
import { pluginCall, readLog, readStateFile } from './support/netvol.js';
import { describeDocker } from './support/prerequisites.js';
import { Tier } from './support/tier.js';
import { netvolCli } from './support/tools.js';
import { waitFor } from './support/wait.js';

const STALE_ID = 'e'.repeat(64);

describeDocker('netvol and the Docker API: activation for Swarm, release of stale mount IDs', () => {
  let tier: Tier;
  let exportsRoot: string;

  const volumeDrivers = async () => JSON.parse(await tier.dockerOk(['info', '--format', '{{json .Plugins.Volume}}'])) as string[];

  beforeAll(async () => {
    // Started without activation, so the first test sees dockerd before and after netvol asks.
    tier = await Tier.start('activation', { activate: false });
    exportsRoot = join(tier.root, 'exports');
    await mkdir(join(exportsRoot, 'used'), { recursive: true });
    await mkdir(join(exportsRoot, 'stale'), { recursive: true });
  });

  afterAll(async () => {
    await tier?.stop();
  });

  it('asks dockerd to activate it at start, so Swarm can place tasks without a manual docker volume ls', async () => {
    expect(await volumeDrivers()).not.toContain(tier.driver);
    tier.netvolConfig.extraArgs.splice(tier.netvolConfig.extraArgs.indexOf('--no-activate'), 1);
    tier.netvolConfig.extraArgs.push(
      '--docker-socket', dockerdDirs(tier.root).socket,
      '--mount-command', await writeBindMountCommand(join(tier.root, 'bin'), exportsRoot),
      '--stale-grace', '0',
    );
    await tier.stopNetvol();
    await tier.startNetvol();
    await waitFor(async () => readLog(tier.netvol).some((entry) => String(entry.msg).startsWith('Activated in dockerd')), {
      what: 'the daemon to log its activation',
      timeoutMs: 30_000,
    });
    expect(await volumeDrivers()).toContain(tier.driver);
  });

  it('releases the mount IDs of a volume no running container uses, never those of one in use', async () => {
    await tier.dockerOk(['volume', 'create', '-d', tier.driver, '--name', 'used', '-o', 'share=127.0.0.1:/used']);
    await tier.dockerOk(['volume', 'create', '-d', tier.driver, '--name', 'stale', '-o', 'share=127.0.0.1:/stale']);
    const container = (await tier.dockerOk(['run', '-d', '-v', 'used:/data', tier.image, 'sleep', '600'])).trim();
    // As after a dockerd crash: a Mount whose Unmount will never come.
    const mounted = (await pluginCall(tier.netvolConfig.socket, 'VolumeDriver.Mount', { Name: 'stale', ID: STALE_ID })) as { Err?: string };
    expect(mounted.Err ?? '').toBe('');
    expect(mountsUnder(tier.netvolConfig.basedir)).toHaveLength(2);

    const cli = (...args: string[]) => spawnSync(process.execPath, [netvolCli, 'release-stale', '--socket', tier.netvolConfig.socket, ...args], { encoding: 'utf8' });
    const dry = cli('--dry-run');
    expect(dry.status).toBe(0);
    expect(dry.stdout).toBe('stale: would release 1 mount ID(s) (no running container uses it)\n');
    expect(readStateFile(tier.netvolConfig)?.volumes?.['stale']?.mountIds).toEqual([STALE_ID]);

    const real = cli();
    expect(real.stdout).toBe('stale: released 1 mount ID(s) (no running container uses it)\n');
    expect(readStateFile(tier.netvolConfig)?.volumes?.['stale']?.mountIds).toEqual([]);
    expect(readStateFile(tier.netvolConfig)?.volumes?.['used']?.mountIds).toHaveLength(1);
    // The mount root is named after the driver.
    expect(mountsUnder(tier.netvolConfig.basedir)).toEqual([join(tier.netvolConfig.basedir, tier.driver, 'used')]);

    await tier.dockerOk(['rm', '-f', container]);
    expect(mountsUnder(tier.netvolConfig.basedir)).toEqual([]);
  });
});
