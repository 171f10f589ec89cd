import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sameDriver } from '../../src/main.js';
import { cifsProtocol } from '../../src/protocols/cifs.js';
import { CommandFailedError } from '../../src/system/command-runner.js';
import { driverFixture, type DriverFixture } from '../support/fakes.js';

// The core's behaviour where it meets the outside world (helper exit codes, a full disk,
// a hung share, callers that give up), each named after the defect it once had.

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);
const SHARE = { share: '10.0.0.5:/exports/pg' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('core hardening', () => {
  let f: DriverFixture | undefined;
  afterEach(async () => {
    await f?.cleanup();
    f = undefined;
  });

  it('R1: a Mount that fails on a share kept for the unmount delay unmounts it after the delay', async () => {
    f = await driverFixture(undefined, 200, 50);
    await f.driver.create('pg', SHARE);
    await f.driver.mount('pg', ID_A);
    await f.driver.unmount('pg', ID_A);
    f.store.failNextSave = true;
    await expect(f.driver.mount('pg', ID_B)).rejects.toThrow('disk full');
    await sleep(300);
    expect(f.table.entries).toEqual([]);
    expect(f.state.volumes['pg']?.mountIds).toEqual([]);
  });

  it('R2: Plugin.Activate succeeds when the state cannot be written, and the count is saved later', async () => {
    f = await driverFixture();
    f.store.failNextSave = true;
    await expect(f.driver.activated()).resolves.toBeUndefined();
    expect(f.state.activations).toBe(1);
  });

  it('R2b: the last Unmount succeeds and releases the ID when the state cannot be written', async () => {
    f = await driverFixture(undefined, 200, 50);
    await f.driver.create('pg', SHARE);
    await f.driver.mount('pg', ID_A);
    f.store.failNextSave = true;
    await expect(f.driver.unmount('pg', ID_A)).resolves.toBeUndefined();
    expect(f.state.volumes['pg']?.mountIds).toEqual([]);
    await sleep(200);
    expect(f.table.entries).toEqual([]);
  });

  it('R3: stale release goes on past a volume whose umount fails and reports each volume', async () => {
    f = await driverFixture();
    for (const name of ['v1', 'v2', 'v3']) {
      await f.driver.create(name, { share: `10.0.0.5:/exports/${name}` });
      await f.driver.mount(name, ID_A);
    }
    const runner = f.runner;
    const busy = join(f.root, 'v2');
    runner.next.push(
      () => ({ stdout: '', stderr: '' }),
      (command) => (command.args.includes(busy) ? new CommandFailedError(command, 32, 'umount: target is busy.', '') : { stdout: '', stderr: '' }),
      () => ({ stdout: '', stderr: '' }),
    );
    // The fake umount removes the table entry unless it fails; order of calls is v1, v2, v3.
    const results = await f.driver.releaseStale(new Set(), new Date('2030-01-01T00:00:00Z'), 0, false);
    expect(results.map((r) => [r.volume, r.action])).toEqual([
      ['v1', 'released'],
      ['v2', 'failed'],
      ['v3', 'released'],
    ]);
    expect(results[1]?.reason).toContain('target is busy');
    expect(f.state.volumes['v2']?.mountIds).toEqual([ID_A]);
  });

  it('R7: a container mount is matched by its source path, and managed-plugin driver names match', async () => {
    f = await driverFixture();
    await f.driver.create('pg', SHARE);
    await f.driver.mount('pg', ID_A);
    expect(f.driver.volumeAtPath(join(f.root, 'pg'))).toBe('pg');
    expect(f.driver.volumeAtPath('/elsewhere')).toBeUndefined();
    expect([sameDriver('netvol:latest', 'netvol'), sameDriver('registry:5000/netvol:latest', 'netvol'), sameDriver('nfs', 'nfs'), sameDriver('cifs', 'nfs')]).toEqual([
      true,
      true,
      true,
      false,
    ]);
  });

  it('R13: a Mount waiting behind a hung call on the same volume gives up at its bound and records nothing', async () => {
    f = await driverFixture(undefined, 400, 0, { lockWaitMs: 50 });
    await f.driver.create('pg', SHARE);
    f.runner.hangingSources.add('10.0.0.5:/exports/pg');
    const first = f.driver.mount('pg', ID_A).catch((error: unknown) => error);
    const started = Date.now();
    await expect(f.driver.mount('pg', ID_B)).rejects.toThrow(/volume 'pg' is busy: an earlier call for it has not finished after 0 s .*nothing was mounted, try again/);
    expect(Date.now() - started).toBeLessThan(300);
    await first;
    expect(f.state.volumes['pg']?.mountIds).toEqual([]);
  });

  it('R17: a mount command that exits 0 without mounting fails the Mount; the directory is never handed out', async () => {
    f = await driverFixture();
    await f.driver.create('pg', SHARE);
    f.runner.phantomMounts = 1;
    await expect(f.driver.mount('pg', ID_A)).rejects.toThrow(
      `mounting 10.0.0.5:/exports/pg (nfs4) on ${join(f.root, 'pg')}: the mount command reported success but nothing is mounted there; netvol does not hand out a directory that is not the share (check the mount options: bg or nofail make mount return before mounting)`,
    );
    expect(f.state.volumes['pg']?.mountIds).toEqual([]);
  });

  it('R17: a mount of another filesystem type than planned is undone and fails', async () => {
    f = await driverFixture();
    await f.driver.create('pg', SHARE);
    f.runner.mountedFsType = 'tmpfs';
    await expect(f.driver.mount('pg', ID_A)).rejects.toThrow('the mount table shows a tmpfs filesystem there, not nfs4; it was unmounted again');
    expect(f.table.entries).toEqual([]);
  });

  it('R4: the Mount failed log line carries no password the tool echoed', async () => {
    const password = 'S3cret-pa55';
    f = await driverFixture(cifsProtocol({}, async () => undefined));
    await f.driver.create('docs', { share: 'fileserver/docs', username: 'alice', password });
    f.runner.failNext(`mount error(13): Permission denied for pass=${password}`);
    await expect(f.driver.mount('docs', ID_A)).rejects.toThrow('Permission denied');
    const warn = f.lines.filter((line) => line.includes('Mount failed'));
    expect(warn).toHaveLength(1);
    expect(f.lines.join('')).not.toContain(password);
  });

  it('R12: making a subdirectory runs in a child process under the mount timeout; other volumes mount meanwhile', async () => {
    f = await driverFixture(undefined, 300);
    await f.driver.create('app', { ...SHARE, create: 'true' });
    await f.driver.create('other', { share: '10.0.0.6:/exports/other' });
    // The staging mount of the share's root succeeds; the helper then hangs.
    f.runner.next.push(() => ({ stdout: '', stderr: '' }), () => 'hang');
    const started = Date.now();
    const hung = f.driver.mount('app', ID_A).then(
      () => 'mounted',
      (error: unknown) => (error as Error).message,
    );
    await sleep(20);
    await expect(f.driver.mount('other', ID_A)).resolves.toBe(join(f.root, 'other'));
    expect(Date.now() - started).toBeLessThan(250);
    const message = await hung;
    expect(message).toMatch(/^volume 'app': cannot make the subdirectory app on 10.0.0.5:\/exports\/pg: creating app on 10.0.0.5:\/exports\/pg timed out after 0.3 s: server 10.0.0.5 stopped answering$/);
    const helper = f.runner.calls.find((call) => call.args[0]?.endsWith('share-directory-helper.js'));
    expect(helper?.file).toBe(process.execPath);
    expect(f.table.entries.map((entry) => entry.mountPoint)).toEqual([join(f.root, 'other')]);
    expect(f.state.volumes['app']?.mountIds).toEqual([]);
  });

  it('R16: a link on the share where the subdirectory should be fails the Mount and mounts nothing', async () => {
    f = await driverFixture();
    await f.driver.create('app', { ...SHARE, create: 'true' });
    f.runner.next.push(
      () => ({ stdout: '', stderr: '' }),
      (command) => new CommandFailedError(command, 3, "'app' on the share is a symbolic link, not a directory; netvol never follows links on a share: remove it on the server\n", ''),
    );
    await expect(f.driver.mount('app', ID_A)).rejects.toThrow(
      "volume 'app': cannot make the subdirectory app on 10.0.0.5:/exports/pg: creating app on 10.0.0.5:/exports/pg failed: 'app' on the share is a symbolic link, not a directory; netvol never follows links on a share: remove it on the server",
    );
    expect(f.table.entries).toEqual([]);
    expect(f.state.volumes['app']?.mountIds).toEqual([]);
  });
});
