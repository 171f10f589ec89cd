import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyProbeFailure, FindMountProbe, type MountHealth, type MountProbe } from '../../src/system/mount-health.js';
import { CommandFailedError } from '../../src/system/command-runner.js';
import { driverFixture, FakeMountTable, FakeRunner, type DriverFixture } from '../support/fakes.js';

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);

describe('what a failed health check means', () => {
  it.each<[string, MountHealth['state']]>([
    ["find: '/m': Stale file handle", 'stale'],
    ["find: '/m': Transport endpoint is not connected", 'stale'],
    ["find: '/m': Input/output error", 'stale'],
    ["find: '/m': Host is down", 'stale'],
    // root_squash: a live server said no.
    ["find: '/m': Permission denied", 'healthy'],
    ["find: '/m': Connection timed out", 'unreachable'],
    ['', 'unreachable'],
  ])('%j is %s', (stderr, state) => {
    expect(classifyProbeFailure(stderr).state).toBe(state);
  });

  it('runs find with a time bound: a stat and a one-entry read, nothing else', async () => {
    const runner = new FakeRunner(new FakeMountTable());
    runner.next.push((command) => new CommandFailedError(command, 1, "find: '/base/nfs/pg': Stale file handle\n", ''));
    expect(await new FindMountProbe(runner, 5000).probe('/base/nfs/pg')).toEqual({ state: 'stale', detail: "'/base/nfs/pg': Stale file handle" });
    expect(runner.calls).toEqual([{ file: 'find', args: ['/base/nfs/pg', '-mindepth', '1', '-maxdepth', '1', '-print', '-quit'] }]);
    runner.hangNext();
    expect(await new FindMountProbe(runner, 50).probe('/base/nfs/pg')).toEqual({ state: 'unreachable', detail: 'no answer within 0.05 s' });
  });
});

class ScriptedProbe implements MountProbe {
  answers: MountHealth[] = [];
  readonly probed: string[] = [];
  async probe(mountpoint: string): Promise<MountHealth> {
    this.probed.push(mountpoint);
    return this.answers.shift() ?? { state: 'healthy' };
  }
}

describe('a Mount of a share that is already mounted', () => {
  let f: DriverFixture | undefined;
  afterEach(async () => {
    await f?.cleanup();
    f = undefined;
  });

  it('checks it first; a stale share is unmounted and mounted again before the answer', async () => {
    const probe = new ScriptedProbe();
    f = await driverFixture(undefined, 200, 0, { probe });
    await f.driver.create('pg', { share: '10.0.0.5:/exports/pg' });
    await f.driver.mount('pg', ID_A);
    probe.answers.push({ state: 'stale', detail: "'/x': Stale file handle" });
    const path = await f.driver.mount('pg', ID_B);
    expect(probe.probed).toEqual([path]);
    expect(f.runner.calls.map((call) => call.file)).toEqual(['mount', 'umount', 'mount']);
    expect(f.table.entries.map((entry) => entry.mountPoint)).toEqual([path]);
    expect(f.state.volumes['pg']?.mountIds).toEqual([ID_A, ID_B]);
    expect(f.driver.healthOf('pg')).toMatchObject({ state: 'healthy', detail: 'mounted again after it was stale' });
    expect(f.lines.join('')).toContain('containers already running on it keep the stale mount until they restart');
  });

  it('a stale share that cannot be unmounted fails the Mount, saying so, and records nothing', async () => {
    const probe = new ScriptedProbe();
    f = await driverFixture(undefined, 200, 0, { probe });
    await f.driver.create('pg', { share: '10.0.0.5:/exports/pg' });
    const path = await f.driver.mount('pg', ID_A);
    probe.answers.push({ state: 'stale', detail: 'Stale file handle' });
    f.runner.failNext('umount: target is busy.');
    f.runner.failNext('umount: target is busy.');
    await expect(f.driver.mount('pg', ID_B)).rejects.toThrow(
      `volume 'pg': the mounted share at ${path} is stale (Stale file handle) and could not be unmounted: unmounting ${path} failed: umount: target is busy.; nothing was mounted: unmount it by hand (umount -l ${path}) and try again`,
    );
    expect(f.state.volumes['pg']?.mountIds).toEqual([ID_A]);
  });

  it('an unreachable share is handed out as it is, and its health is shown', async () => {
    const probe = new ScriptedProbe();
    f = await driverFixture(undefined, 200, 0, { probe });
    await f.driver.create('pg', { share: '10.0.0.5:/exports/pg' });
    await f.driver.mount('pg', ID_A);
    probe.answers.push({ state: 'unreachable', detail: 'no answer within 5 s' });
    expect(await f.driver.mount('pg', ID_B)).toBe(join(f.root, 'pg'));
    expect(f.runner.mounts()).toHaveLength(1);
    expect(f.driver.healthOf('pg')).toMatchObject({ state: 'unreachable', detail: 'no answer within 5 s' });
  });

  it('a burst of Mounts of one share pays for one check', async () => {
    const probe = new ScriptedProbe();
    f = await driverFixture(undefined, 200, 0, { probe });
    await f.driver.create('pg', { share: '10.0.0.5:/exports/pg' });
    await f.driver.mount('pg', ID_A);
    for (const id of ['c', 'd', 'e']) await f.driver.mount('pg', id.repeat(64));
    expect(probe.probed).toHaveLength(1);
  });

  it('the background check reports and never unmounts', async () => {
    const probe = new ScriptedProbe();
    f = await driverFixture(undefined, 200, 0, { probe });
    await f.driver.create('pg', { share: '10.0.0.5:/exports/pg' });
    await f.driver.create('idle', { share: '10.0.0.5:/exports/idle' });
    await f.driver.mount('pg', ID_A);
    probe.answers.push({ state: 'stale', detail: 'Stale file handle' });
    await f.driver.checkHealth();
    expect(probe.probed).toEqual([join(f.root, 'pg')]);
    expect(f.driver.healthOf('pg')?.state).toBe('stale');
    expect(f.runner.umounts()).toEqual([]);
  });
});
