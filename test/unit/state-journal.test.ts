import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { emptyState, type StateFile, type VolumeRecord } from '../../src/state/state-schema.js';
import { GroupCommitter, JsonStateStore } from '../../src/state/state-store.js';
import { tempDir } from '../support/fakes.js';

const record = (name: string, mountIds: string[] = []): VolumeRecord => ({
  name,
  protocol: 'nfs',
  options: { share: `h:/${name}` },
  share: `h:/${name}`,
  createdAt: '2026-01-01T00:00:00.000Z',
  mountIds,
});

describe('the state journal', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let store: JsonStateStore;
  let state: StateFile;
  beforeEach(async () => {
    dir = await tempDir('netvol-journal-');
    store = new JsonStateStore(dir.path);
    state = emptyState('boot-1');
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  const reload = async () => {
    const fresh = new JsonStateStore(dir.path);
    return { fresh, loaded: await fresh.load() };
  };

  it('replays appended changes over the snapshot: upserts, deletions and the state fields', async () => {
    state.volumes['a'] = record('a');
    state.volumes['b'] = record('b');
    await store.save(state);
    state.volumes['a'] = record('a', ['id1']);
    delete state.volumes['b'];
    state.volumes['c'] = record('c');
    state.activations = 3;
    await store.append(state, ['a', 'b']);
    await store.append(state, ['c']);
    const { fresh, loaded } = await reload();
    expect(loaded).toEqual(state);
    expect(fresh.journalLength).toBe(5);
  });

  it('changes only a line per volume, not the snapshot', async () => {
    await store.save(state);
    const before = await readFile(store.path, 'utf8');
    state.volumes['a'] = record('a');
    await store.append(state, ['a']);
    expect(await readFile(store.path, 'utf8')).toBe(before);
    expect((await readFile(store.journalPath, 'utf8')).trim().split('\n')).toHaveLength(2);
  });

  it('drops a last line torn by a crash, and counts it so the next snapshot folds it away', async () => {
    state.volumes['a'] = record('a');
    await store.append(state, ['a']);
    await appendFile(store.journalPath, '{"seq":2,"v":"b","r":{"na');
    const { fresh, loaded } = await reload();
    expect(Object.keys(loaded?.volumes ?? {})).toEqual(['a']);
    expect(fresh.journalLength).toBe(3);
    await fresh.save(loaded!);
    expect(await readFile(store.journalPath, 'utf8')).toBe('');
  });

  it('R8: skips a damaged line in the middle and reports it, instead of refusing to start', async () => {
    await writeFile(store.journalPath, 'garbage\n{"seq":1,"m":{"bootId":"b","activations":4}}\n');
    const { fresh, loaded } = await reload();
    expect(loaded).toEqual({ ...emptyState('b'), activations: 4 });
    expect(fresh.loadReport.skippedLines).toEqual([{ line: 1, reason: 'not valid JSON' }]);
  });

  it('skips journal lines already in the snapshot (a crash between snapshot and truncation)', async () => {
    state.volumes['a'] = record('a', ['id1']);
    await store.append(state, ['a']);
    const journal = await readFile(store.journalPath, 'utf8');
    delete state.volumes['a'];
    state.activations = 7;
    await store.save(state);
    await writeFile(store.journalPath, journal);
    const { loaded } = await reload();
    expect(loaded).toEqual(state);
  });

  it('keeps counting sequence numbers across restarts', async () => {
    state.volumes['a'] = record('a');
    await store.append(state, ['a']);
    const { fresh, loaded } = await reload();
    loaded!.volumes['b'] = record('b');
    await fresh.append(loaded!, ['b']);
    const again = await reload();
    expect(Object.keys(again.loaded?.volumes ?? {})).toEqual(['a', 'b']);
  });

  it('is used by the group committer for named changes, with a snapshot past the limit', async () => {
    const committer = new GroupCommitter(store, () => state, 3);
    state.volumes['a'] = record('a');
    await committer.commit(['a']);
    expect(store.journalLength).toBe(2);
    state.volumes['b'] = record('b');
    await committer.commit(['b']);
    expect(store.journalLength).toBe(0);
    await committer.commit();
    expect(store.journalLength).toBe(0);
    expect((await reload()).loaded).toEqual(state);
  });

  it('lets the journal grow to one line per volume before a snapshot, whatever the limit', async () => {
    const committer = new GroupCommitter(store, () => state, 3);
    for (let i = 0; i < 10; i++) state.volumes[`v${i}`] = record(`v${i}`);
    const lengths: number[] = [];
    for (let i = 0; i < 5; i++) {
      await committer.commit([`v${i}`]);
      lengths.push(store.journalLength);
    }
    // two lines per change (the record and the state's own fields); the fifth reaches 10
    expect(lengths).toEqual([2, 4, 6, 8, 0]);
    expect((await reload()).loaded).toEqual(state);
  });

  it('gives volume names no prototype to trip over', async () => {
    state.volumes['constructor'] = record('constructor');
    await store.append(state, ['constructor', 'toString']);
    const { loaded } = await reload();
    expect(Object.keys(loaded!.volumes)).toEqual(['constructor']);
    expect(loaded!.volumes['toString']).toBeUndefined();
  });
});
