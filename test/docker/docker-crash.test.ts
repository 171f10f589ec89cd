import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mountsUnder } from './support/files.js';
import { callName, callRequest, calls, readStateFile, waitForCall } from './support/netvol.js';
import { describeDocker } from './support/prerequisites.js';
import { Tier } from './support/tier.js';
import { waitFor } from './support/wait.js';

/**
 * After a crash of dockerd (docker/for-linux#404) the Unmount for a running container never
 * comes. Starting that container again mounts with the same ID, which must count once; a
 * container that never starts again leaves its ID behind, and the daemon's periodic stale
 * release (it asks the private dockerd which volumes running containers use) must free it.
 */
const GRACE_SECONDS = 10;

describeDocker('a crash of the whole docker stack while a container uses a netvol volume', () => {
  let tier: Tier;

  const heldIds = (name: string): unknown[] => {
    const ids = readStateFile(tier.netvolConfig)?.volumes?.[name]?.mountIds;
    return Array.isArray(ids) ? ids : [];
  };

  beforeAll(async () => {
    tier = await Tier.start('crash', { bindMounts: true });
    // The grace outlasts the crash and restart below, so the ID is still held when the
    // container starts again; the release then comes within about GRACE s of the rm.
    tier.netvolConfig.extraArgs.push('--release-stale-interval', '1', '--stale-grace', String(GRACE_SECONDS));
    await tier.stopNetvol();
    await tier.startNetvol();
  });

  afterAll(async () => {
    await tier?.stop();
  });

  const crashWhileRunning = async (label: string) => {
    const name = `${label}-${tier.id}`;
    await mkdir(join(tier.exportsRoot, 'srv', label), { recursive: true });
    await tier.dockerOk(['volume', 'create', '-d', tier.driver, '--name', name, '-o', `share=127.0.0.1:/srv/${label}`]);
    const container = `${label}-c-${tier.id}`;
    await tier.dockerOk(['run', '-d', '--name', container, '-v', `${name}:/data`, tier.image, 'sleep', '1000']);
    const [id] = heldIds(name);
    expect(id).toBeDefined();
    await tier.crashDockerd();
    await tier.startDockerd();
    expect(await tier.dockerOk(['inspect', '-f', '{{.State.Running}}', container])).toBe('false');
    // Still held: no Unmount came, and nothing may release a volume within its grace period.
    expect(heldIds(name)).toEqual([id]);
    return { name, container, id };
  };

  it('counts the old mount ID once when the container starts again, so its one Unmount frees the share', async () => {
    const { name, container, id } = await crashWhileRunning('restart');
    const since = calls(tier.netvol).length;
    await tier.dockerOk(['start', container]);
    const remount = calls(tier.netvol).slice(since).find((c) => c.call === '/VolumeDriver.Mount' && callName(c) === name);
    expect(callRequest(remount ?? {})['ID'], 'the restarted container mounts with its old ID').toBe(id);
    // dockerd activated the plugin again after its restart: the same ID is the same reference.
    expect(heldIds(name)).toEqual([id]);
    expect(await tier.dockerOk(['exec', container, 'ls', '/data'])).toBe('');

    await tier.dockerOk(['rm', '-f', container]);
    await waitForCall(tier.netvol, `Unmount(${name})`, (c) => c.call === '/VolumeDriver.Unmount' && callName(c) === name, { since });
    // Within the grace period, so this is the Unmount's doing, not the stale release's.
    expect(heldIds(name)).toEqual([]);
    expect(mountsUnder(tier.netvolConfig.basedir)).toEqual([]);
    await tier.dockerOk(['volume', 'rm', name]);
  });

  it('releases the mount ID of a container that never starts again once no running container uses the volume', async () => {
    const { name, container } = await crashWhileRunning('gone');
    await tier.dockerOk(['rm', '-f', container]);
    await waitFor(() => heldIds(name).length === 0, {
      what: `the stale mount ID of ${name} to be released`,
      timeoutMs: (GRACE_SECONDS + 20) * 1000,
      detail: () => `held: ${JSON.stringify(heldIds(name))}`,
    });
    expect(mountsUnder(tier.netvolConfig.basedir)).toEqual([]);
    await tier.dockerOk(['volume', 'rm', name]);
  });
});
