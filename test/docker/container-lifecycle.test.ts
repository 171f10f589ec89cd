import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mountsUnder } from './support/files.js';
import { callName, callRequest, calls, readStateFile, waitForCall } from './support/netvol.js';
import { describeDocker } from './support/prerequisites.js';
import { Tier } from './support/tier.js';
import { waitFor } from './support/wait.js';

/**
 * The success path, which this machine cannot reach with NFS: the daemon's mount(8) is
 * replaced by a bind mount of a local directory, everything else (dockerd, the daemon's
 * mount-ID accounting, umount) is real.
 */
describeDocker('containers using a netvol volume (mount(8) replaced by a local bind mount)', () => {
  let tier: Tier;

  const heldIds = (name: string): unknown[] => {
    const ids = readStateFile(tier.netvolConfig)?.volumes?.[name]?.mountIds;
    return Array.isArray(ids) ? ids : [];
  };

  const createVolume = async (name: string, path: string): Promise<string> => {
    const exported = join(tier.exportsRoot, path);
    await mkdir(exported, { recursive: true });
    await tier.dockerOk(['volume', 'create', '-d', tier.driver, '--name', name, '-o', `share=127.0.0.1:${path}`]);
    return exported;
  };

  beforeAll(async () => {
    tier = await Tier.start('containers', { bindMounts: true });
  });

  afterAll(async () => {
    await tier?.stop();
  });

  it('mounts the share for a container, which reads and writes it, and releases the mount ID after', async () => {
    const name = `data-${tier.id}`;
    const exported = await createVolume(name, '/srv/data');
    await writeFile(join(exported, 'hello'), 'from the server\n');

    const output = await tier.dockerOk(['run', '--rm', '-v', `${name}:/data`, tier.image, 'sh', '-c', 'cat /data/hello && echo written > /data/out']);

    expect(output).toBe('from the server');
    expect(await readFile(join(exported, 'out'), 'utf8')).toBe('written\n');
    const mount = calls(tier.netvol, 'VolumeDriver.Mount').find((c) => callName(c) === name);
    const unmount = await waitForCall(tier.netvol, `Unmount(${name})`, (c) => c.call === '/VolumeDriver.Unmount' && callName(c) === name);
    expect(callRequest(unmount)['ID']).toBe(callRequest(mount ?? {})['ID']);
    expect(heldIds(name)).toEqual([]);
    expect(mountsUnder(tier.netvolConfig.basedir)).toEqual([]);
  });

  it('keeps the share mounted until the last of two containers stops, holding one mount ID each', async () => {
    const name = `shared-${tier.id}`;
    await createVolume(name, '/srv/shared');
    const containers = [`c1-${tier.id}`, `c2-${tier.id}`];
    for (const container of containers) {
      await tier.dockerOk(['run', '-d', '--name', container, '-v', `${name}:/data`, tier.image, 'sleep', '1000']);
    }
    expect(heldIds(name)).toHaveLength(2);
    const [mountpoint, ...more] = mountsUnder(tier.netvolConfig.basedir);
    expect(more, 'mounted once, not once per container').toEqual([]);
    expect(mountpoint).toBeDefined();

    await tier.dockerOk(['rm', '-f', containers[0]!]);
    await waitFor(() => heldIds(name).length === 1, { what: 'one mount ID left after the first container went' });
    expect(mountsUnder(tier.netvolConfig.basedir), 'still mounted for the second container').toEqual([mountpoint]);
    expect(await tier.dockerOk(['exec', containers[1]!, 'ls', '/data'])).toBe('');

    await tier.dockerOk(['rm', '-f', containers[1]!]);
    await waitFor(() => heldIds(name).length === 0, { what: 'no mount ID left after the last container went' });
    expect(mountsUnder(tier.netvolConfig.basedir)).toEqual([]);
  });

  it('keeps a running container\'s mount ID across a netvol crash and unmounts when it stops', async () => {
    const name = `crash-${tier.id}`;
    await createVolume(name, '/srv/crash');
    const container = `c3-${tier.id}`;
    await tier.dockerOk(['run', '-d', '--name', container, '-v', `${name}:/data`, tier.image, 'sleep', '1000']);
    const [id] = heldIds(name);
    expect(id).toBeDefined();

    await tier.stopNetvol('SIGKILL');
    await tier.startNetvol();

    expect(heldIds(name)).toEqual([id]);
    expect(mountsUnder(tier.netvolConfig.basedir)).toHaveLength(1);
    await tier.dockerOk(['rm', '-f', container]);
    const unmount = await waitForCall(tier.netvol, `Unmount(${name}) by the restarted daemon`, (c) => c.call === '/VolumeDriver.Unmount' && callName(c) === name);
    expect(callRequest(unmount)['ID']).toBe(id);
    await waitFor(() => heldIds(name).length === 0, { what: 'the mount ID to be released' });
    expect(mountsUnder(tier.netvolConfig.basedir)).toEqual([]);
  });

  it('survives docker cp on a running container (a nested Mount/Unmount of the same ID)', async () => {
    const name = `cp-${tier.id}`;
    const exported = await createVolume(name, '/srv/cp');
    await writeFile(join(exported, 'report'), 'numbers\n');
    const container = `c4-${tier.id}`;
    await tier.dockerOk(['run', '-d', '--name', container, '-v', `${name}:/data`, tier.image, 'sleep', '1000']);
    const [id] = heldIds(name);
    const since = calls(tier.netvol).length;

    const copied = join(tier.root, 'copied-report');
    await tier.dockerOk(['cp', `${container}:/data/report`, copied]);

    expect(await readFile(copied, 'utf8')).toBe('numbers\n');
    const nestedMount = calls(tier.netvol).slice(since).find((c) => c.call === '/VolumeDriver.Mount' && callName(c) === name);
    expect(callRequest(nestedMount ?? {})['ID'], 'docker cp mounts with the container\'s own mount ID').toBe(id);
    const nestedUnmount = await waitForCall(tier.netvol, 'the Unmount that ends docker cp', (c) => c.call === '/VolumeDriver.Unmount' && callName(c) === name, {
      since,
    });
    expect(callRequest(nestedUnmount)['ID']).toBe(id);
    expect(heldIds(name), 'the running container still holds its mount').toEqual([id]);
    expect(mountsUnder(tier.netvolConfig.basedir)).toHaveLength(1);
    expect(await tier.dockerOk(['exec', container, 'cat', '/data/report'])).toBe('numbers');

    await tier.dockerOk(['rm', '-f', container]);
    await waitFor(() => heldIds(name).length === 0, { what: 'the mount ID to be released' });
    expect(mountsUnder(tier.netvolConfig.basedir)).toEqual([]);
  });
});
