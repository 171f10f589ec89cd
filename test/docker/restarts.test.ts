import { afterAll, beforeAll, expect, it } from 'vitest';
import { callName, calls, readStateFile, waitForCall } from './support/netvol.js';
import { describeDocker } from './support/prerequisites.js';
import { Tier } from './support/tier.js';

interface InspectedVolume {
  Name: string;
  Driver: string;
  Options: Record<string, string> | null;
  Status?: Record<string, unknown>;
}

describeDocker('netvol volumes survive restarts of dockerd and of netvol', () => {
  let tier: Tier;
  let volumes: Record<string, Record<string, string>>;

  const listNames = async () => (await tier.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).split('\n');
  const inspect = async (name: string) => (JSON.parse(await tier.dockerOk(['volume', 'inspect', name])) as InspectedVolume[])[0];

  beforeAll(async () => {
    tier = await Tier.start('restarts');
    volumes = {
      [`r1-${tier.id}`]: { share: '127.0.0.1:/srv/r1' },
      [`r2-${tier.id}`]: { share: '127.0.0.1:/srv/r2', nfsopts: 'soft,timeo=30' },
    };
    for (const [name, opts] of Object.entries(volumes)) {
      const flags = Object.entries(opts).flatMap(([key, value]) => ['-o', `${key}=${value}`]);
      await tier.dockerOk(['volume', 'create', '-d', tier.driver, '--name', name, ...flags]);
    }
  });

  afterAll(async () => {
    await tier?.stop();
  });

  it('keeps the volumes when dockerd restarts; dockerd Gets each one at start', async () => {
    const since = calls(tier.netvol).length;
    await tier.stopDockerd();
    await tier.startDockerd();

    for (const name of Object.keys(volumes)) {
      await waitForCall(tier.netvol, `Get(${name}) from the restarted dockerd`, (c) => c.call === '/VolumeDriver.Get' && callName(c) === name, {
        since,
        timeoutMs: 30_000,
      });
    }
    const listed = await listNames();
    for (const [name, opts] of Object.entries(volumes)) {
      expect(listed).toContain(`${tier.driver} ${name}`);
      // dockerd drops a volume's record when Get fails at start: the options show it was kept.
      expect((await inspect(name))?.Options).toEqual(opts);
    }
  });

  it('keeps the volumes when netvol is killed and started again', async () => {
    await tier.stopNetvol('SIGKILL');
    await tier.startNetvol();

    const listed = await listNames();
    for (const [name, opts] of Object.entries(volumes)) {
      expect(listed).toContain(`${tier.driver} ${name}`);
      const volume = await inspect(name);
      expect(volume).toMatchObject({ Name: name, Driver: tier.driver, Options: opts });
      expect(volume?.Status).toBeTypeOf('object');
      expect(readStateFile(tier.netvolConfig)?.volumes?.[name]).toBeDefined();
    }
    // The new process answers for them: inspect went through its Get.
    for (const name of Object.keys(volumes)) {
      expect(calls(tier.netvol, 'VolumeDriver.Get').some((c) => callName(c) === name)).toBe(true);
    }
    const [first] = Object.keys(volumes);
    await tier.dockerOk(['volume', 'rm', first!]);
    await waitForCall(tier.netvol, `Remove(${first})`, (c) => c.call === '/VolumeDriver.Remove' && callName(c) === first);
  });
});
