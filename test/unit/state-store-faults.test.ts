import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { emptyState, type StateFile, type VolumeRecord } from '../../src/state/state-schema.js';
import { GroupCommitter, JsonStateStore } from '../../src/state/state-store.js';
import { tempDir } from '../support/fakes.js';

/*
 * The store under real failures: ENOSPC from a 64 KiB tmpfs, EPERM from an append-only
 * (chattr +a) journal. Both need root; without it the tests are skipped, saying why.
 */

const record = (name: string, options: Record<string, string> = { share: `h:/${name}` }): VolumeRecord => ({
  name,
  protocol: 'nfs',
  options,
  share: `h:/${name}`,
  createdAt: '2026-01-01T00:00:00.000Z',
  mountIds: [],
});

/** A record too large for whatever is left of a full 64 KiB tmpfs. */
const bigRecord = (name: string) => record(name, { share: `h:/${name}`, nfsopts: 'x'.repeat(20_000) });

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function errorText(error: unknown): string {
  const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
  return stderr || (error as Error).message;
}

/** A 64 KiB tmpfs that can be filled to ENOSPC and freed again; skips the test if it cannot be mounted. */
async function smallDisk(ctx: TestContext): Promise<{ dir: string; fill: () => Promise<void>; free: () => Promise<void> }> {
  const mountpoint = await mkdtemp(join(tmpdir(), 'netvol-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mountpoint], { stdio: 'pipe' });
  } catch (error) {
    await rm(mountpoint, { recursive: true, force: true });
    ctx.skip(`needs a 64 KiB tmpfs to get a real ENOSPC, and mount -t tmpfs failed (it needs root with CAP_SYS_ADMIN): ${errorText(error)}`);
  }
  cleanups.push(async () => {
    execFileSync('umount', [mountpoint]);
    await rm(mountpoint, { recursive: true, force: true });
  });
  const dir = join(mountpoint, 'state');
  await mkdir(dir, { mode: 0o700 });
  const filler = join(mountpoint, 'filler');
  return {
    dir,
    fill: async () => {
      // Takes every free page; what is left is the unused tail of pages files already have.
      await writeFile(filler, Buffer.alloc(256 * 1024)).then(
        () => {
          throw new Error('a 64 KiB tmpfs took 256 KiB');
        },
        (error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
        },
      );
    },
    free: () => unlink(filler),
  };
}

/** chattr +a on `path` (appends still work; truncation fails with EPERM); skips the test if unsupported. */
function appendOnly(ctx: TestContext, path: string): { lift: () => void } {
  try {
    execFileSync('chattr', ['+a', path], { stdio: 'pipe' });
  } catch (error) {
    ctx.skip(`needs chattr +a (root, and a file system with inode flags) to make truncation fail: ${errorText(error)}`);
  }
  let lifted = false;
  const lift = () => {
    if (lifted) return;
    lifted = true;
    execFileSync('chattr', ['-a', path]);
  };
  // Before the unmount or rm of its directory, which an append-only file would block.
  cleanups.push(async () => lift());
  return { lift };
}

const fresh = async (dir: string) => {
  const store = new JsonStateStore(dir);
  return { store, loaded: await store.load() };
};

const names = (state: StateFile | undefined) => Object.keys(state?.volumes ?? {}).sort();

describe('JsonStateStore on a full disk', () => {
  it('R8: an append cut short by ENOSPC leaves the journal as it was, and later changes still load', async (ctx) => {
    const disk = await smallDisk(ctx);
    const store = new JsonStateStore(disk.dir);
    const state = emptyState('boot-1');
    state.volumes['a'] = record('a');
    await store.append(state, ['a']);
    state.volumes['b'] = record('b');
    await store.append(state, ['b']);
    const before = await readFile(store.journalPath, 'utf8');
    // The journal's page has room left, so the write below starts and is cut short.
    expect(before.length % 4096).not.toBe(0);

    await disk.fill();
    state.volumes['big'] = bigRecord('big');
    await expect(store.append(state, ['big'])).rejects.toThrow(`cannot save state to ${store.journalPath}: ENOSPC: no space left on device, write`);
    delete state.volumes['big'];
    expect(await readFile(store.journalPath, 'utf8')).toBe(before);

    await disk.free();
    state.volumes['c'] = record('c');
    await store.append(state, ['c']);

    const { store: restarted, loaded } = await fresh(disk.dir);
    expect(names(loaded)).toEqual(['a', 'b', 'c']);
    expect(loaded).toEqual(state);
    expect(restarted.loadReport.skippedLines).toEqual([]);
  });

  it('R8: when the journal cannot be cut back either, the next change is a snapshot that supersedes it', async (ctx) => {
    const disk = await smallDisk(ctx);
    const warnings: string[] = [];
    const store = new JsonStateStore(disk.dir, { onWarning: (message) => warnings.push(message) });
    const state = emptyState('boot-1');
    state.volumes['a'] = record('a');
    await store.append(state, ['a']);
    state.volumes['b'] = record('b');
    await store.append(state, ['b']);
    appendOnly(ctx, store.journalPath);

    await disk.fill();
    state.volumes['big'] = bigRecord('big');
    await expect(store.append(state, ['big'])).rejects.toThrow(`cannot save state to ${store.journalPath}: ENOSPC: no space left on device, write`);
    delete state.volumes['big'];
    const torn = await readFile(store.journalPath, 'utf8');
    expect(torn.endsWith('\n')).toBe(false);

    await disk.free();
    state.volumes['c'] = record('c');
    await store.append(state, ['c']);
    // Written as a snapshot: the torn journal cannot be appended to safely.
    const snapshot = JSON.parse(await readFile(store.path, 'utf8')) as StateFile;
    expect(names(snapshot)).toEqual(['a', 'b', 'c']);
    expect(await readFile(store.journalPath, 'utf8')).toBe(torn);

    state.volumes['d'] = record('d');
    await store.append(state, ['d']);

    const { store: restarted, loaded } = await fresh(disk.dir);
    expect(loaded).toEqual(state);
    expect(restarted.loadReport.skippedLines).toEqual([
      { line: 5, reason: 'not valid JSON' },
    ]);
    // The snapshot's and the next append's failed attempts to empty the journal (R9).
    expect(warnings).toHaveLength(2);
  });

  it('R8b: a snapshot that fails with ENOSPC leaves no temporary file behind', async (ctx) => {
    const disk = await smallDisk(ctx);
    const store = new JsonStateStore(disk.dir);
    const state = emptyState('boot-1');
    state.volumes['a'] = record('a');
    await store.save(state);
    await disk.fill();
    state.volumes['big'] = bigRecord('big');
    await expect(store.save(state)).rejects.toThrow(`cannot save state to ${store.path}: ENOSPC: no space left on device, write`);
    expect(await readdir(disk.dir)).toEqual(['state.json']);
    await disk.free();
    expect(names((await fresh(disk.dir)).loaded)).toEqual(['a']);
  });
});

describe('JsonStateStore journal lines', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  afterEach(async () => {
    await dir.cleanup();
  });

  async function threeVolumes(): Promise<{ store: JsonStateStore; state: StateFile }> {
    dir = await tempDir('netvol-faults-');
    const store = new JsonStateStore(dir.path);
    const state = emptyState('boot-1');
    for (const name of ['a', 'b', 'c']) {
      state.volumes[name] = record(name);
      await store.append(state, [name]);
    }
    return { store, state };
  }

  it('R8: a line whose checksum does not match is skipped and reported; later lines still apply', async () => {
    const { store, state } = await threeVolumes();
    const lines = (await readFile(store.journalPath, 'utf8')).split('\n');
    // Still valid JSON, but not what was written: only the checksum can tell.
    lines[2] = (lines[2] ?? '').replace('"h:/b"', '"h:/x"');
    await writeFile(store.journalPath, lines.join('\n'));
    const { store: restarted, loaded } = await fresh(dir.path);
    delete state.volumes['b'];
    expect(loaded).toEqual(state);
    expect(restarted.loadReport.skippedLines).toEqual([{ line: 3, reason: 'checksum does not match the line' }]);
  });

  it('R8: every journal line carries a checksum of the rest of the line', async () => {
    const { store } = await threeVolumes();
    const lines = (await readFile(store.journalPath, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(6);
    for (const line of lines) expect(line).toMatch(/^\{"c":"[0-9a-f]{8}","seq":\d+,/);
  });

  it('R8: a line that is not JSON is skipped and reported instead of refusing to start', async () => {
    const { store, state } = await threeVolumes();
    const lines = (await readFile(store.journalPath, 'utf8')).split('\n');
    lines.splice(2, 0, 'garbage{"seq":');
    await writeFile(store.journalPath, lines.join('\n'));
    const { store: restarted, loaded } = await fresh(dir.path);
    expect(loaded).toEqual(state);
    expect(restarted.loadReport.skippedLines).toEqual([{ line: 3, reason: 'not valid JSON' }]);
    expect(restarted.journalLength).toBe(7);
  });

  it('R8: a line whose record does not match the schema is skipped and reported', async () => {
    dir = await tempDir('netvol-faults-');
    await writeFile(
      join(dir.path, 'state.journal'),
      [
        `{"seq":1,"v":"a","r":${JSON.stringify(record('a'))}}`,
        `{"seq":2,"v":"b","r":${JSON.stringify({ ...record('b'), protocol: 'smb' })}}`,
        '{"seq":2,"m":{"bootId":"boot-1","activations":0}}',
        '',
      ].join('\n'),
    );
    const { store, loaded } = await fresh(dir.path);
    expect(names(loaded)).toEqual(['a']);
    expect(store.loadReport.skippedLines).toEqual([
      { line: 2, reason: "record does not match the schema at protocol: Invalid enum value. Expected 'nfs' | 'cifs' | 'efs', received 'smb'" },
    ]);
  });

  it('R8: journal lines written before checksums (no "c" field) still load', async () => {
    dir = await tempDir('netvol-faults-');
    await writeFile(
      join(dir.path, 'state.journal'),
      [
        `{"seq":1,"v":"a","r":${JSON.stringify(record('a'))}}`,
        '{"seq":1,"m":{"bootId":"boot-1","activations":2}}',
        '{"seq":2,"v":"a","d":true}',
        `{"seq":2,"v":"b","r":${JSON.stringify(record('b'))}}`,
        '{"seq":2,"m":{"bootId":"boot-1","activations":3}}',
        '',
      ].join('\n'),
    );
    const { store, loaded } = await fresh(dir.path);
    expect(loaded).toEqual({ ...emptyState('boot-1'), activations: 3, volumes: { b: record('b') } });
    expect(store.loadReport.skippedLines).toEqual([]);
  });

  it('R8: a torn last line is reported as such', async () => {
    const { store, state } = await threeVolumes();
    await writeFile(store.journalPath, `${await readFile(store.journalPath, 'utf8')}{"c":"0000`);
    const { store: restarted, loaded } = await fresh(dir.path);
    expect(loaded).toEqual(state);
    expect(restarted.loadReport.skippedLines).toEqual([
      { line: 7, reason: 'incomplete: the write was cut short (a crash or a full disk), so the change was never acknowledged' },
    ]);
  });

  it('R8: an append after a torn last line starts a line of its own', async () => {
    const { store, state } = await threeVolumes();
    await writeFile(store.journalPath, `${await readFile(store.journalPath, 'utf8')}{"c":"0000`);
    const { store: restarted, loaded } = await fresh(dir.path);
    loaded!.volumes['d'] = record('d');
    await restarted.append(loaded!, ['d']);
    state.volumes['d'] = record('d');
    const again = await fresh(dir.path);
    expect(again.loaded).toEqual(state);
    expect(again.store.loadReport.skippedLines).toEqual([{ line: 7, reason: 'not valid JSON' }]);
  });

  it('R8b: load() deletes temporary snapshots left by saves that a crash interrupted', async () => {
    const { store, state } = await threeVolumes();
    await store.save(state);
    // One from an earlier run of this very PID (PID 1 in a container, every time), one whose
    // writer is gone (above any pid_max).
    const leftovers = [`state.json.tmp-${process.pid}-2`, 'state.json.tmp-99999999-1'];
    for (const name of leftovers) await writeFile(join(dir.path, name), '{"version":1,"bootId":"b","volumes":{"pg":{"password":"s3cret"}');
    await writeFile(join(dir.path, 'state.json.bak'), 'kept: not ours to delete');
    const { store: restarted, loaded } = await fresh(dir.path);
    expect(loaded).toEqual(state);
    expect((await readdir(dir.path)).sort()).toEqual(['state.journal', 'state.json', 'state.json.bak']);
    expect([...restarted.loadReport.removedTempFiles].sort()).toEqual(leftovers.map((name) => join(dir.path, name)).sort());
  });

  it('R8b: load() leaves alone the temporary snapshot of a save under way in another live process', async () => {
    const { store, state } = await threeVolumes();
    await store.save(state);
    const live = join(dir.path, `state.json.tmp-${process.ppid}-7`);
    await writeFile(live, '{"version":1,');
    const { store: restarted } = await fresh(dir.path);
    expect(restarted.loadReport.removedTempFiles).toEqual([]);
    expect((await readdir(dir.path)).sort()).toEqual(['state.journal', 'state.json', basename(live)]);
  });
});

describe('JsonStateStore when the journal cannot be emptied', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await dir.cleanup();
  });

  async function journaled(ctx: TestContext) {
    dir = await tempDir('netvol-faults-');
    const warnings: string[] = [];
    const store = new JsonStateStore(dir.path, { onWarning: (message) => warnings.push(message) });
    const state = emptyState('boot-1');
    state.volumes['a'] = record('a');
    await store.append(state, ['a']);
    const attribute = appendOnly(ctx, store.journalPath);
    return { store, state, warnings, attribute };
  }

  const notEmptied = (store: JsonStateStore) =>
    `saved the state to ${store.path}, but could not empty the journal ${store.journalPath} (EPERM: operation not permitted, open '${store.journalPath}'); ` +
    'its lines are all in the snapshot and are skipped at start-up, and netvol tries again before the next change. If this repeats, check the disk and the file\'s attributes (lsattr)';

  it('R9: a snapshot that is durable resolves even though emptying the journal failed, with a warning', async (ctx) => {
    const { store, state, warnings } = await journaled(ctx);
    state.volumes['b'] = record('b');
    await store.save(state);
    expect(warnings).toEqual([notEmptied(store)]);
    expect(store.journalLength).toBe(0);
    const { loaded } = await fresh(dir.path);
    expect(loaded).toEqual(state);
  });

  it('R9: the journal is emptied before the next append once that works again', async (ctx) => {
    const { store, state, warnings, attribute } = await journaled(ctx);
    state.volumes['b'] = record('b');
    await store.save(state);
    attribute.lift();
    state.volumes['c'] = record('c');
    await store.append(state, ['c']);
    expect(warnings).toHaveLength(1);
    const lines = (await readFile(store.journalPath, 'utf8')).trim().split('\n');
    expect(lines.map((line) => (JSON.parse(line) as { v?: string }).v)).toEqual(['c', undefined]);
    expect((await fresh(dir.path)).loaded).toEqual(state);
  });

  it('R9: while the journal cannot be emptied, commits keep working and every change loads', async (ctx) => {
    const { store, state, warnings } = await journaled(ctx);
    const committer = new GroupCommitter(store, () => state, 3);
    for (const name of ['b', 'c', 'd', 'e', 'f']) {
      state.volumes[name] = record(name);
      await committer.commit([name]);
    }
    expect(warnings.length).toBeGreaterThan(0);
    expect((await stat(store.journalPath)).size).toBeGreaterThan(0);
    expect((await fresh(dir.path)).loaded).toEqual(state);
  });
});
