import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cifsProtocol } from '../../src/protocols/cifs.js';
import { CommandFailedError } from '../../src/system/command-runner.js';
import { driverFixture, type DriverFixture } from '../support/fakes.js';

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);
const SHARE = { share: '10.0.0.5:/exports/pg' };

describe('VolumeDriver', () => {
  let f: DriverFixture;
  beforeEach(async () => {
    f = await driverFixture();
  });
  afterEach(async () => {
    await f.cleanup();
  });

  describe('create', () => {
    it('stores the volume and saves state', async () => {
      await f.driver.create('pg', SHARE);
      expect(f.store.last()?.volumes['pg']).toMatchObject({ name: 'pg', share: '10.0.0.5:/exports/pg', mountIds: [] });
    });

    it('is idempotent for identical options and for a repeat without options', async () => {
      await f.driver.create('pg', SHARE);
      await f.driver.create('pg', { ...SHARE });
      await f.driver.create('pg', {});
      expect(Object.keys(f.state.volumes)).toEqual(['pg']);
    });

    it('refuses the same name with other options', async () => {
      await f.driver.create('pg', SHARE);
      await expect(f.driver.create('pg', { share: '10.0.0.6:/x' })).rejects.toThrow(
        "volume 'pg' already exists with other options (share 10.0.0.5:/exports/pg); remove it first (docker volume rm pg) or choose another name",
      );
    });

    it('rejects unknown keys naming the accepted ones, and keeps nothing', async () => {
      await expect(f.driver.create('pg', { shar: 'x' })).rejects.toThrow(
        "unknown option 'shar' for nfs volumes; accepted options: share, create, nfsopts, version",
      );
      expect(f.state.volumes).toEqual({});
    });

    it('takes the share from an ad-hoc name', async () => {
      await f.driver.create('10.0.0.5/exports/pg/', {});
      expect(f.state.volumes['10.0.0.5/exports/pg/']?.share).toBe('10.0.0.5:/exports/pg');
    });

    it('leaves no volume behind when the state cannot be saved', async () => {
      f.store.failNextSave = true;
      await expect(f.driver.create('pg', SHARE)).rejects.toThrow('disk full');
      expect(f.state.volumes).toEqual({});
    });

    it('refuses a volume whose mountpoint would nest in another one', async () => {
      await f.driver.create('10.0.0.5/exports', {});
      await expect(f.driver.create('10.0.0.5/exports/pg', {})).rejects.toThrow(/overlaps volume '10.0.0.5\/exports'/);
    });

    it.each(['../etc', '/abs', 'a/../../b', 'x\ny', 'nul\0'])('rejects the name %j', async (name) => {
      await expect(f.driver.create(name, SHARE)).rejects.toThrow(/volume name/);
      expect(f.state.volumes).toEqual({});
    });
  });

  describe('get, list, path', () => {
    it('fails Get for unknown names so other drivers keep theirs', () => {
      expect(() => f.driver.get('nope')).toThrow("no volume named 'nope' in the nfs driver");
    });

    it('shows the share and mount state in Status', async () => {
      await f.driver.create('pg', SHARE);
      expect(f.driver.get('pg')).toEqual({
        Name: 'pg',
        CreatedAt: '2026-01-02T03:04:05.000Z',
        Status: { protocol: 'nfs', share: '10.0.0.5:/exports/pg', mounted: false, mounts: 0, options: SHARE },
      });
      expect(f.driver.pathOf('pg')).toBe('');
      expect(f.driver.list()).toEqual([{ Name: 'pg' }]);
    });
  });

  describe('mount and unmount', () => {
    beforeEach(async () => {
      await f.driver.create('pg', SHARE);
    });

    it('mounts once for the first ID and reuses the mount for others', async () => {
      const path = await f.driver.mount('pg', ID_A);
      expect(path).toBe(join(f.root, 'pg'));
      expect(f.runner.mounts()).toEqual([{ file: 'mount', args: ['-t', 'nfs4', '--', '10.0.0.5:/exports/pg', path] }]);
      await f.driver.mount('pg', ID_B);
      expect(f.runner.mounts()).toHaveLength(1);
      expect(f.store.last()?.volumes['pg']?.mountIds).toEqual([ID_A, ID_B]);
      expect(f.driver.list()).toEqual([{ Name: 'pg', Mountpoint: path }]);
    });

    it('keeps the mount until the last ID is unmounted, then removes the empty mountpoint', async () => {
      const path = await f.driver.mount('pg', ID_A);
      await f.driver.mount('pg', ID_B);
      await f.driver.unmount('pg', ID_A);
      expect(f.runner.umounts()).toHaveLength(0);
      await f.driver.unmount('pg', ID_B);
      expect(f.runner.umounts()).toEqual([{ file: 'umount', args: ['--', path] }]);
      expect(existsSync(path)).toBe(false);
      expect(existsSync(f.root)).toBe(true);
      expect(f.store.last()?.volumes['pg']?.mountIds).toEqual([]);
    });

    it('needs two Unmounts for the same ID mounted twice (docker cp)', async () => {
      await f.driver.mount('pg', ID_A);
      await f.driver.mount('pg', ID_A);
      await f.driver.unmount('pg', ID_A);
      expect(f.runner.umounts()).toHaveLength(0);
      expect(f.driver.get('pg').Status['mounts']).toBe(1);
      await f.driver.unmount('pg', ID_A);
      expect(f.runner.umounts()).toHaveLength(1);
    });

    it('succeeds and changes nothing for an unknown ID or volume', async () => {
      await f.driver.mount('pg', ID_A);
      const saves = f.store.saved.length;
      await f.driver.unmount('pg', ID_B);
      await f.driver.unmount('ghost', ID_A);
      expect(f.store.saved.length).toBe(saves);
      expect(f.state.volumes['pg']?.mountIds).toEqual([ID_A]);
    });

    it("returns the mount tool's own message and keeps no ID when mount fails", async () => {
      f.runner.failNext('mount.nfs: access denied by server while mounting 10.0.0.5:/exports/pg');
      await expect(f.driver.mount('pg', ID_A)).rejects.toThrow(
        `mounting 10.0.0.5:/exports/pg (nfs4) on ${join(f.root, 'pg')} failed: mount.nfs: access denied by server while mounting 10.0.0.5:/exports/pg (check that 10.0.0.5 exports this path to this host, and the credentials)`,
      );
      expect(f.state.volumes['pg']?.mountIds).toEqual([]);
      expect(f.driver.get('pg').Status['lastError']).toMatch(/access denied/);
      expect(existsSync(join(f.root, 'pg'))).toBe(false);
    });

    it('names the server when the mount times out', async () => {
      f.runner.hangNext();
      await expect(f.driver.mount('pg', ID_A)).rejects.toThrow(
        /timed out after 0.2 s: server 10.0.0.5 did not answer; check that it is up/,
      );
      expect(f.state.volumes['pg']?.mountIds).toEqual([]);
    });

    it('unmounts again when the state cannot be saved after a mount', async () => {
      f.store.failNextSave = true;
      await expect(f.driver.mount('pg', ID_A)).rejects.toThrow('disk full');
      expect(f.runner.umounts()).toHaveLength(1);
      expect(f.table.entries).toEqual([]);
      expect(f.state.volumes['pg']?.mountIds).toEqual([]);
    });

    it('detaches lazily when the last reference goes and umount finds the share busy', async () => {
      await f.driver.mount('pg', ID_A);
      f.runner.next.push((command) => new CommandFailedError(command, 32, 'umount: /x: target is busy.', ''));
      await f.driver.unmount('pg', ID_A);
      expect(f.runner.umounts().map((call) => call.args.slice(0, -1))).toEqual([['--'], ['-l', '--']]);
      expect([f.state.volumes['pg']?.mountIds, f.table.entries]).toEqual([[], []]);
    });

    it('keeps the ID when the share cannot be unmounted even lazily', async () => {
      await f.driver.mount('pg', ID_A);
      const busy = (command: Parameters<typeof f.runner.run>[0]) => new CommandFailedError(command, 32, 'umount: /x: target is busy.', '');
      f.runner.next.push(busy, busy);
      await expect(f.driver.unmount('pg', ID_A)).rejects.toThrow(/target is busy/);
      expect(f.state.volumes['pg']?.mountIds).toEqual([ID_A]);
    });

    it('treats a mount that vanished behind its back as unmounted', async () => {
      const path = await f.driver.mount('pg', ID_A);
      f.table.remove(path);
      await f.driver.unmount('pg', ID_A);
      expect(f.runner.umounts()).toHaveLength(0);
      expect(f.state.volumes['pg']?.mountIds).toEqual([]);
    });

    it('adopts a mount that is already in the mount table', async () => {
      f.table.add(join(f.root, 'pg'));
      await mkdir(join(f.root, 'pg'), { recursive: true });
      await f.driver.mount('pg', ID_A);
      expect(f.runner.mounts()).toHaveLength(0);
    });

    it('lets a hung server delay only its own volume', async () => {
      await f.driver.create('other', { share: '10.0.0.7:/x' });
      f.runner.hangingSources.add('10.0.0.5:/exports/pg');
      const hung = f.driver.mount('pg', ID_A).catch((error: unknown) => error);
      await expect(f.driver.mount('other', ID_B)).resolves.toBe(join(f.root, 'other'));
      expect(f.driver.get('pg').Name).toBe('pg');
      await hung;
    });
  });

  describe('unmount delay', () => {
    let d: DriverFixture;
    beforeEach(async () => {
      d = await driverFixture(undefined, 200, 3000);
      await d.driver.create('pg', SHARE);
    });
    afterEach(async () => {
      vi.useRealTimers();
      await d.cleanup();
    });

    it('keeps the share after the last Unmount and reuses it for a Mount within the delay', async () => {
      // dockerd's docker run: Mount to copy the image data, Unmount, Mount for the container.
      await d.driver.mount('pg', ID_A);
      await d.driver.unmount('pg', ID_A);
      expect(d.runner.umounts()).toHaveLength(0);
      expect(d.driver.get('pg').Status).toMatchObject({ mounted: false, mounts: 0 });
      expect(d.store.last()?.volumes['pg']?.mountIds).toEqual([]);
      await d.driver.mount('pg', ID_B);
      expect(d.runner.mounts()).toHaveLength(1);
      expect(d.store.last()?.volumes['pg']?.mountIds).toEqual([ID_B]);
    });

    it('unmounts once the delay has passed with no Mount', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const path = await d.driver.mount('pg', ID_A);
      await d.driver.unmount('pg', ID_A);
      await vi.advanceTimersByTimeAsync(2900);
      expect(d.runner.umounts()).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(200);
      await vi.waitFor(() => expect(d.runner.umounts()).toEqual([{ file: 'umount', args: ['--', path] }]));
      await vi.advanceTimersByTimeAsync(100);
      await vi.waitFor(() => expect(d.lines.join('\n')).toContain('after the unmount delay'));
    });

    it('a Mount within the delay cancels the pending unmount for good', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      await d.driver.mount('pg', ID_A);
      await d.driver.unmount('pg', ID_A);
      await d.driver.mount('pg', ID_B);
      await vi.advanceTimersByTimeAsync(10_000);
      expect(d.runner.umounts()).toHaveLength(0);
      expect(d.driver.get('pg').Status).toMatchObject({ mounted: true, mounts: 1 });
    });

    it('Remove unmounts a share waiting out its delay before forgetting the volume', async () => {
      const path = await d.driver.mount('pg', ID_A);
      await d.driver.unmount('pg', ID_A);
      await d.driver.remove('pg');
      expect(d.runner.umounts()).toEqual([{ file: 'umount', args: ['--', path] }]);
      expect(d.table.entries.some((e) => e.mountPoint === path)).toBe(false);
      expect(d.store.last()?.volumes['pg']).toBeUndefined();
    });

    it('a stopping daemon unmounts the shares still waiting', async () => {
      await d.driver.mount('pg', ID_A);
      await d.driver.unmount('pg', ID_A);
      await d.driver.unmountLingering();
      expect(d.runner.umounts()).toHaveLength(1);
    });
  });

  describe('remove', () => {
    it('unmounts a share still mounted without mount IDs (an unmount queued behind it finds no volume)', async () => {
      await f.driver.create('pg', SHARE);
      const path = join(f.root, 'pg');
      f.table.add(path);
      await f.driver.remove('pg');
      expect(f.runner.umounts()).toEqual([{ file: 'umount', args: ['--', path] }]);
      expect(f.store.last()?.volumes['pg']).toBeUndefined();
    });

    it('refuses while mounted, saying by how many', async () => {
      await f.driver.create('pg', SHARE);
      await f.driver.mount('pg', ID_A);
      await f.driver.mount('pg', ID_B);
      await expect(f.driver.remove('pg')).rejects.toThrow(
        "volume 'pg' is still mounted for 2 container mounts; stop the containers using it first",
      );
      expect(f.state.volumes['pg']).toBeDefined();
    });

    it('removes the record and an empty mountpoint, never a directory with content', async () => {
      await f.driver.create('pg', SHARE);
      await mkdir(join(f.root, 'pg'), { recursive: true });
      await writeFile(join(f.root, 'pg', 'data'), 'keep');
      await f.driver.remove('pg');
      expect(f.state.volumes['pg']).toBeUndefined();
      expect(await readFile(join(f.root, 'pg', 'data'), 'utf8')).toBe('keep');
    });

    it('succeeds for unknown names', async () => {
      await expect(f.driver.remove('ghost')).resolves.toBeUndefined();
    });
  });

  describe('create=true', () => {
    it('makes or checks the subdirectory on a staging mount of the share, then mounts the subdirectory itself', async () => {
      await f.driver.create('pg', { ...SHARE, create: 'true' });
      const path = await f.driver.mount('pg', ID_A);
      expect(path).toBe(join(f.root, 'pg'));
      const calls = f.runner.calls.filter((call) => call.file !== 'umount');
      expect(calls.map((call) => (call.file === 'mount' ? `mount ${call.args.at(-2)}` : call.args.slice(1, 3).join(' ')))).toEqual([
        'mount 10.0.0.5:/exports/pg',
        `make ${f.runner.mounts()[0]?.args.at(-1)}`,
        'mount 10.0.0.5:/exports/pg/pg',
      ]);
      // The staging mount is gone again and was never the path handed out.
      expect(f.table.entries.map((entry) => [entry.mountPoint, entry.source])).toEqual([[path, '10.0.0.5:/exports/pg/pg']]);
    });

    it('uses the part after # for ad-hoc names', async () => {
      await f.driver.create('10.0.0.5/exports#app1', {});
      expect(await f.driver.mount('10.0.0.5/exports#app1', ID_A)).toBe(join(f.root, '10.0.0.5/exports#app1'));
      expect(f.runner.mounts().at(-1)?.args.at(-2)).toBe('10.0.0.5:/exports/app1');
    });

    it('a share already mounted for the volume is reused without touching the share again', async () => {
      await f.driver.create('pg', { ...SHARE, create: 'true' });
      await f.driver.mount('pg', ID_A);
      const before = f.runner.calls.length;
      await f.driver.mount('pg', ID_B);
      expect(f.runner.calls.length).toBe(before);
    });
  });
});

describe('VolumeDriver with CIFS credentials', () => {
  const PASSWORD = 'S3cret-pa55';
  let f: DriverFixture;
  beforeEach(async () => {
    f = await driverFixture(cifsProtocol({}, async () => undefined));
  });
  afterEach(async () => {
    await f.cleanup();
  });

  it('passes the password through a 0600 file that is gone after the mount', async () => {
    await f.driver.create('docs', { share: 'fileserver/docs', username: 'alice', password: PASSWORD });
    let seen: { mode: number; text: string } | undefined;
    f.runner.next.push((command) => {
      const options = command.args[command.args.indexOf('-o') + 1] ?? '';
      const file = /credentials=([^,]+)/.exec(options)?.[1] ?? '';
      // Read inside the fake: the file must exist while mount runs.
      seen = { mode: statSync(file).mode & 0o777, text: readFileSync(file, 'utf8') };
      const target = command.args[command.args.length - 1] ?? '';
      f.table.add(target, 'cifs');
      return { stdout: '', stderr: '' };
    });
    await f.driver.mount('docs', ID_A);
    expect(seen).toEqual({ mode: 0o600, text: `username=alice\npassword=${PASSWORD}\n` });
    const argv = JSON.stringify(f.runner.calls);
    expect(argv).not.toContain(PASSWORD);
    expect(f.lines.join('')).not.toContain(PASSWORD);
    expect(JSON.stringify(f.driver.get('docs'))).not.toContain(PASSWORD);
    expect(f.driver.get('docs').Status['options']).toEqual({ share: 'fileserver/docs', username: 'alice', password: '********' });
  });

  it('keeps the password out of error messages', async () => {
    await f.driver.create('docs', { share: 'fileserver/docs', username: 'alice', password: PASSWORD });
    f.runner.failNext(`mount error(13): Permission denied for ${PASSWORD}`);
    const error = (await f.driver.mount('docs', ID_A).catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('Permission denied');
    expect(error.message).not.toContain(PASSWORD);
  });
});

describe('mount IDs across a dockerd restart', () => {
  let f: DriverFixture;
  beforeEach(async () => {
    f = await driverFixture();
    await f.driver.activated();
    await f.driver.create('pg', SHARE);
  });
  afterEach(async () => {
    await f.cleanup();
  });

  it('does not count twice an ID re-mounted after dockerd activated the plugin again', async () => {
    await f.driver.mount('pg', ID_A);
    // dockerd crashed: no Unmount came; the new dockerd activates the plugin and restarts
    // the container with its old mount ID.
    await f.driver.activated();
    await f.driver.mount('pg', ID_A);
    expect(f.state.volumes['pg']?.mountIds).toEqual([ID_A]);
    await f.driver.unmount('pg', ID_A);
    expect(f.state.volumes['pg']?.mountIds).toEqual([]);
    expect(f.runner.umounts()).toHaveLength(1);
  });

  it('still nests the same ID within one dockerd run (docker cp)', async () => {
    await f.driver.mount('pg', ID_A);
    await f.driver.mount('pg', ID_A);
    await f.driver.activated();
    await f.driver.mount('pg', ID_A);
    expect(f.state.volumes['pg']?.mountIds).toEqual([ID_A, ID_A]);
  });

  it('persists the activation count', async () => {
    await f.driver.activated();
    await vi.waitFor(() => expect(f.store.last()?.activations).toBe(2));
  });
});
