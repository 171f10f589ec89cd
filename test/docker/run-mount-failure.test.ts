import { afterAll, beforeAll, expect, it } from 'vitest';
import { mountsUnder } from './support/files.js';
import { BARE_EXIT_STATUS, MOUNT_TOOL_MESSAGE } from './support/mount-errors.js';
import { callName, callRequest, calls, pluginCall, readStateFile, waitForCall } from './support/netvol.js';
import { describeDocker } from './support/prerequisites.js';
import { Tier } from './support/tier.js';

const MOUNT_ID = /\b[0-9a-f]{64}\b/;

describeDocker('docker run with a netvol volume on a machine that cannot mount', () => {
  let tier: Tier;

  beforeAll(async () => {
    tier = await Tier.start('run');
  });

  afterAll(async () => {
    await tier?.stop();
  });

  it('reaches Create then Mount and fails with the mount tool’s own message, holding no mount ID', async () => {
    const name = '127.0.0.1/srv/x';
    const result = await tier.docker(['run', '--rm', `--volume-driver=${tier.driver}`, '-v', `${name}:/data`, tier.image, 'true']);

    expect(result.exitCode).not.toBe(0);
    const create = await waitForCall(tier.netvol, `Create(${name})`, (c) => c.call === '/VolumeDriver.Create' && callName(c) === name);
    const trace = calls(tier.netvol);
    const createAt = trace.indexOf(create);
    const mount = trace.slice(createAt + 1).find((c) => c.call === '/VolumeDriver.Mount' && callName(c) === name);
    expect(mount, 'Mount after Create').toBeDefined();

    expect(result.stderr).toMatch(/mount/i);
    expect(result.stderr).toMatch(MOUNT_TOOL_MESSAGE);
    expect(result.stderr).not.toMatch(BARE_EXIT_STATUS);

    // A failed Mount is never followed by an Unmount: the daemon must not keep its ID.
    const record = readStateFile(tier.netvolConfig)?.volumes?.[name];
    expect(record, 'the ad-hoc volume is in the state file').toBeDefined();
    expect(record?.mountIds ?? []).toEqual([]);
    const mountId = callRequest(mount!)['ID'];
    expect(mountId).toMatch(MOUNT_ID);
    expect(JSON.stringify(readStateFile(tier.netvolConfig))).not.toContain(String(mountId));
    const get = (await pluginCall(tier.netvolConfig.socket, 'VolumeDriver.Get', { Name: name })) as {
      Err?: string;
      Volume?: { Status?: unknown };
    };
    expect(get.Err ?? '').toBe('');
    expect(JSON.stringify(get.Volume?.Status ?? {})).not.toMatch(MOUNT_ID);
    expect(mountsUnder(tier.netvolConfig.basedir)).toEqual([]);

    // Nothing holds it, so it can be removed.
    await tier.dockerOk(['volume', 'rm', name]);
    await waitForCall(tier.netvol, `Remove(${name})`, (c) => c.call === '/VolumeDriver.Remove' && callName(c) === name);
  });
});
