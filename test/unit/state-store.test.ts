import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateError } from '../../src/errors.js';
import { emptyState, type StateFile, type VolumeRecord } from '../../src/state/state-schema.js';
import { GroupCommitter, JsonStateStore, type StateStore } from '../../src/state/state-store.js';
import { tempDir } from '../support/fakes.js';

function record(name: string, extra: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    name,
    protocol: 'cifs',
    options: { share: 'fs/public', password: 's3cret' },
    share: '//fs/public',
    createdAt: '2026-11-28T17:00:00.000Z',
    mountIds: [],
    ...extra,
  };
}

function sampleState(): StateFile {
  const state = emptyState('boot-1');
  state.volumes['pg'] = record('pg', { mountIds: ['a', 'a', 'b'], mountedAt: '2026-11-28T17:01:00.000Z', subdirectory: 'pg' });
  state.volumes['nas/exports/'] = record('nas/exports/', { protocol: 'nfs', options: {}, share: 'nas:/exports', lastError: 'x' });
  return state;
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe('JsonStateStore', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let stateDir: string;
  let store: JsonStateStore;
  beforeEach(async () => {
    dir = await tempDir('netvol-state-');
    stateDir = join(dir.path, 'lib', 'netvol');
    store = new JsonStateStore(stateDir);
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  /** Writes raw text where the store expects its file. */
  async function plant(text: string): Promise<void> {
    await mkdir(stateDir, { recursive: true });
    await writeFile(store.path, text);
  }

  /** load() must fail with a StateError carrying exactly this message. */
  async function expectLoadError(message: string): Promise<void> {
    const error = await store.load().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StateError);
    expect((error as StateError).code).toBe('ESTATE');
    expect((error as StateError).message).toBe(message);
  }

  it('keeps its file at DIR/state.json', () => {
    expect(store.path).toBe(join(stateDir, 'state.json'));
  });

  it('returns undefined when there is no file yet', async () => {
    expect(await store.load()).toBeUndefined();
  });

  it('loads exactly what it saved', async () => {
    await store.save(sampleState());
    expect(await store.load()).toEqual(sampleState());
  });

  it('replaces the previous state', async () => {
    await store.save(sampleState());
    await store.save(emptyState('boot-2'));
    expect(await store.load()).toEqual(emptyState('boot-2'));
  });

  it('writes the file 0600 in a 0700 directory it creates', async () => {
    await store.save(sampleState());
    expect([await mode(store.path), await mode(stateDir)]).toEqual([0o600, 0o700]);
  });

  it('replaces a 0644 file with a 0600 one', async () => {
    await plant('{}');
    await writeFile(store.path, '{}', { mode: 0o644 });
    await store.save(sampleState());
    expect(await mode(store.path)).toBe(0o600);
  });

  it('leaves no temporary file behind', async () => {
    await store.save(sampleState());
    await store.save(sampleState());
    expect(await readdir(stateDir)).toEqual(['state.json']);
  });

  it('writes one JSON document ending in a newline', async () => {
    await store.save(emptyState('b'));
    expect(await readFile(store.path, 'utf8')).toBe('{"version":1,"bootId":"b","volumes":{},"activations":0,"seq":0}\n');
  });

  it.each<[string]>([['{"version":1,'], ['not json'], ['']])('refuses corrupt JSON %j and says to move it aside', async (text) => {
    await plant(text);
    let parseMessage = '';
    try {
      JSON.parse(text);
    } catch (error) {
      parseMessage = (error as Error).message;
    }
    await expectLoadError(
      `state file ${store.path} is not valid JSON (${parseMessage}); move it aside to start with no volumes, or restore it from a backup`,
    );
  });

  it.each<[string, string]>([
    ['{"version":2,"bootId":"b","volumes":{}}', '2'],
    ['{"version":"1","bootId":"b","volumes":{}}', '"1"'],
    ['{"bootId":"b","volumes":{}}', 'undefined'],
    ['null', 'undefined'],
    ['[1]', 'undefined'],
  ])('refuses %s with a clear version message', async (text, shown) => {
    await plant(text);
    await expectLoadError(
      `state file ${store.path} has version ${shown}, this netvol reads version 1; run the netvol that wrote it, or move the file aside`,
    );
  });

  it.each<[string, unknown, string]>([
    ['a bad protocol', { pg: { ...record('pg'), protocol: 'smb' } },
      "volumes.pg.protocol: Invalid enum value. Expected 'nfs' | 'cifs' | 'efs', received 'smb'"],
    ['a missing share', { pg: { ...record('pg'), share: undefined } }, 'volumes.pg.share: Required'],
    ['mount IDs that are not strings', { pg: { ...record('pg'), mountIds: [1] } }, 'volumes.pg.mountIds.0: Expected string, received number'],
    ['volumes as a list', [], 'volumes: Expected object, received array'],
  ])('refuses %s naming the path', async (_title, volumes, where) => {
    await plant(JSON.stringify({ version: 1, bootId: 'b', volumes }));
    await expectLoadError(`state file ${store.path} is damaged at ${where}; move it aside to start with no volumes, or fix it`);
  });

  it('reports a state file it cannot read', async () => {
    await mkdir(store.path, { recursive: true });
    await expectLoadError(`cannot read state file ${store.path}: EISDIR: illegal operation on a directory, read`);
  });

  it('reports a state directory it cannot create', async () => {
    await writeFile(join(dir.path, 'lib'), 'a file where the directory should be');
    await expect(store.save(sampleState())).rejects.toThrow(StateError);
    await expect(store.save(sampleState())).rejects.toThrow(`cannot save state to ${store.path}: ENOTDIR: not a directory, mkdir '${stateDir}'`);
  });
});

/** A store that records a copy of every state it is given, and can be held or made to fail. */
class RecordingStore implements StateStore {
  readonly path = '/fake/state.json';
  readonly saved: StateFile[] = [];
  started = 0;
  failures = 0;
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.gate = undefined;
    this.open?.();
  }

  async load(): Promise<StateFile | undefined> {
    return undefined;
  }

  async save(state: StateFile): Promise<void> {
    const copy = structuredClone(state);
    this.started++;
    if (this.gate) await this.gate;
    if (this.failures > 0) {
      this.failures--;
      throw new Error('disk full');
    }
    this.saved.push(copy);
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('GroupCommitter', () => {
  let store: RecordingStore;
  let state: StateFile;
  let committer: GroupCommitter;
  beforeEach(() => {
    store = new RecordingStore();
    state = emptyState('boot-1');
    committer = new GroupCommitter(store, () => state);
  });

  /**
   * Adds volume `name` and commits; resolves to whether, at the moment the commit resolved,
   * the last finished save already held that volume.
   */
  function change(name: string): Promise<boolean> {
    state.volumes[name] = record(name);
    return committer.commit().then(() => store.saved.at(-1)?.volumes[name] !== undefined);
  }

  const changes = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => change(`${prefix}${i}`));

  it('50 concurrent commits share one save that holds every change', async () => {
    const results = await Promise.all(changes('v', 50));
    expect(results).toEqual(Array(50).fill(true));
    expect(store.saved.length).toBe(1);
    expect(Object.keys(store.saved[0]?.volumes ?? {}).length).toBe(50);
  });

  it('commits made during a save wait for the next save: two saves for 50 callers', async () => {
    store.hold();
    let settled = 0;
    const first = changes('a', 25).map((p) => p.finally(() => settled++));
    await tick();
    expect(store.started).toBe(1);
    const second = changes('b', 25).map((p) => p.finally(() => settled++));
    await tick();
    expect([settled, store.started]).toEqual([0, 1]);
    store.release();
    expect(await Promise.all([...first, ...second])).toEqual(Array(50).fill(true));
    expect(store.saved.map((s) => Object.keys(s.volumes).length)).toEqual([25, 50]);
  });

  it('callers of the first save do not wait for the second', async () => {
    store.hold();
    const first = change('a');
    await tick();
    const second = change('b');
    store.release();
    expect(await first).toBe(true);
    expect(store.saved.length).toBe(1);
    expect(await second).toBe(true);
    expect(store.saved.length).toBe(2);
  });

  it('sequential commits each save', async () => {
    for (const name of ['a', 'b', 'c']) expect(await change(name)).toBe(true);
    expect(store.saved.length).toBe(3);
  });

  it('a failed save rejects all its waiters, and the next commit works', async () => {
    store.failures = 1;
    const results = await Promise.allSettled(changes('v', 10));
    expect(results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : r.status))).toEqual(Array(10).fill('disk full'));
    expect(store.saved.length).toBe(0);
    expect(await change('after')).toBe(true);
    expect(Object.keys(store.saved[0]?.volumes ?? {}).length).toBe(11);
  });

  it('commits queued behind a failing save get their own save', async () => {
    store.failures = 1;
    store.hold();
    const failing = change('a');
    await tick();
    const queued = change('b');
    store.release();
    await expect(failing).rejects.toThrow('disk full');
    expect(await queued).toBe(true);
    expect(store.saved.length).toBe(1);
  });
});
