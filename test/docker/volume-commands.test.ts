import { afterAll, beforeAll, expect, it } from 'vitest';
import { callName, callOpts, calls, pluginCall, readStateFile, waitForCall } from './support/netvol.js';
import { describeDocker } from './support/prerequisites.js';
import { Tier } from './support/tier.js';

interface InspectedVolume {
  Name: string;
  Driver: string;
  Mountpoint: string;
  Options: Record<string, string> | null;
  Status?: Record<string, unknown>;
}

describeDocker('docker volume create/ls/inspect/rm through a real dockerd', () => {
  let tier: Tier;

  beforeAll(async () => {
    tier = await Tier.start('volumes');
  });

  afterAll(async () => {
    await tier?.stop();
  });

  it('creates a volume that ls lists, inspect describes and rm removes from dockerd and netvol', async () => {
    const name = `v1-${tier.id}`;
    await tier.dockerOk(['volume', 'create', '-d', tier.driver, '--name', name, '-o', 'share=127.0.0.1:/srv/a']);

    const create = await waitForCall(tier.netvol, `Create(${name})`, (c) => c.call === '/VolumeDriver.Create' && callName(c) === name);
    expect(callOpts(create)).toEqual({ share: '127.0.0.1:/srv/a' });

    const listed = await tier.dockerOk(['volume', 'ls', '--format', '{{.Driver}} {{.Name}}']);
    expect(listed.split('\n')).toContain(`${tier.driver} ${name}`);

    const [volume] = JSON.parse(await tier.dockerOk(['volume', 'inspect', name])) as InspectedVolume[];
    expect(volume).toMatchObject({ Name: name, Driver: tier.driver, Options: { share: '127.0.0.1:/srv/a' } });
    // Status is whatever the daemon's Get returned; an unmounted volume has a Mountpoint of
    // '' or its future place under --basedir.
    expect(volume?.Status).toBeTypeOf('object');
    if (volume?.Mountpoint) expect(volume.Mountpoint.startsWith(`${tier.netvolConfig.basedir}/`)).toBe(true);
    expect(readStateFile(tier.netvolConfig)?.volumes?.[name]).toBeDefined();

    await tier.dockerOk(['volume', 'rm', name]);
    await waitForCall(tier.netvol, `Remove(${name})`, (c) => c.call === '/VolumeDriver.Remove' && callName(c) === name);
    expect((await tier.dockerOk(['volume', 'ls', '--format', '{{.Name}}'])).split('\n')).not.toContain(name);
    const get = (await pluginCall(tier.netvolConfig.socket, 'VolumeDriver.Get', { Name: name })) as { Err?: string };
    expect(get.Err, 'Get after Remove must fail').toBeTruthy();
    expect(readStateFile(tier.netvolConfig)?.volumes?.[name]).toBeUndefined();
  });

  it('refuses an unknown option with a message naming the accepted ones', async () => {
    const name = `bad-${tier.id}`;
    const result = await tier.docker([
      'volume', 'create', '-d', tier.driver, '--name', name, '-o', 'share=127.0.0.1:/srv/a', '-o', 'bogus=1',
    ]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('bogus');
    const afterKey = result.stderr.slice(result.stderr.indexOf('bogus'));
    for (const key of ['share', 'create', 'nfsopts', 'version']) expect(afterKey).toContain(key);
    expect((await tier.dockerOk(['volume', 'ls', '--format', '{{.Name}}'])).split('\n')).not.toContain(name);
    expect(calls(tier.netvol, 'VolumeDriver.Create').some((c) => callName(c) === name)).toBe(true);
    expect(readStateFile(tier.netvolConfig)?.volumes?.[name]).toBeUndefined();
  });
});
