import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { emptyState, type StateFile, type VolumeRecord } from '../../src/state/state-schema.js';
import { GroupCommitter, type StateStore } from '../../src/state/state-store.js';

const record = (name: string): VolumeRecord => ({
  name,
  protocol: 'nfs',
  options: { share: `h:/${name}` },
  share: `h:/${name}`,
  createdAt: '2026-01-01T00:00:00.000Z',
  mountIds: [],
});

/** A store whose next `failures` writes fail; it records what each write was asked to carry. */
class FlakyStore implements StateStore {
  readonly path = '/fake/state.json';
  failures = 0;
  /** One entry per write attempt: the volumes of an append, or 'snapshot'. */
  readonly attempts: Array<readonly string[] | 'snapshot'> = [];
  readonly written: StateFile[] = [];
  journalLength = 0;

  async load(): Promise<StateFile | undefined> {
    return undefined;
  }

  async save(state: StateFile): Promise<void> {
    this.attempts.push('snapshot');
    await this.write(state);
    this.journalLength = 0;
  }

  async append(state: StateFile, volumes: readonly string[]): Promise<void> {
    this.attempts.push([...volumes]);
    await this.write(state);
    this.journalLength += volumes.length + 1;
  }

  private async write(state: StateFile): Promise<void> {
    const copy = structuredClone(state);
    await Promise.resolve();
    if (this.failures > 0) {
      this.failures--;
      throw new Error('disk full');
    }
    this.written.push(copy);
  }
}

/** Lets every pending promise chain run (setImmediate stays real under the fake timers). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('GroupCommitter when writes fail', () => {
  let store: FlakyStore;
  let state: StateFile;
  let errors: Array<[string, number]>;
  let recovered: number;
  let committer: GroupCommitter;

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-12-02T10:00:00.000Z') });
    store = new FlakyStore();
    state = emptyState('boot-1');
    errors = [];
    recovered = 0;
    committer = new GroupCommitter(store, () => state, 2000, {
      onError: (error, retryInMs) => errors.push([(error as Error).message, retryInMs]),
      onRecovered: () => recovered++,
    });
  });
  afterEach(() => {
    committer.stop();
    vi.useRealTimers();
  });

  const add = (name: string) => {
    state.volumes[name] = record(name);
  };

  it('R2b: a failed commit() puts its volumes back, so the next write carries them', async () => {
    store.failures = 1;
    add('a');
    await expect(committer.commit(['a'])).rejects.toThrow('disk full');
    add('b');
    await committer.commit(['b']);
    expect(store.attempts).toEqual([['a'], ['a', 'b']]);
  });

  it('R2b: a failed commit() of everything makes the next write a snapshot again', async () => {
    store.failures = 1;
    add('a');
    await expect(committer.commit()).rejects.toThrow('disk full');
    add('b');
    await committer.commit(['b']);
    expect(store.attempts).toEqual(['snapshot', 'snapshot']);
  });

  it('R2b: commit() keeps rejecting while the disk fails and does not retry on its own', async () => {
    store.failures = 1;
    add('a');
    await expect(committer.commit(['a'])).rejects.toThrow('disk full');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(store.attempts).toEqual([['a']]);
    expect(errors).toEqual([]);
  });

  it('R2: commitLater() never rejects and retries with doubling backoff until a write succeeds', async () => {
    store.failures = 3;
    add('a');
    expect(committer.commitLater(['a'])).toBeUndefined();
    await settle();
    expect(errors).toEqual([['disk full', 1000]]);
    await vi.advanceTimersByTimeAsync(999);
    expect(store.attempts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(errors).toEqual([['disk full', 1000], ['disk full', 2000]]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(errors.map(([, ms]) => ms)).toEqual([1000, 2000, 4000]);
    expect(recovered).toBe(0);
    await vi.advanceTimersByTimeAsync(4000);
    expect(recovered).toBe(1);
    expect(store.attempts).toEqual([['a'], ['a'], ['a'], ['a']]);
    expect(Object.keys(store.written.at(-1)?.volumes ?? {})).toEqual(['a']);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(store.attempts).toHaveLength(4);
  });

  it('R2: the backoff stops doubling at maxRetryMs and starts again from retryMs after a success', async () => {
    committer = new GroupCommitter(store, () => state, 2000, {
      onError: (error, retryInMs) => errors.push([(error as Error).message, retryInMs]),
      retryMs: 100,
      maxRetryMs: 300,
    });
    store.failures = 5;
    committer.commitLater(['a']);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(errors.map(([, ms]) => ms)).toEqual([100, 200, 300, 300, 300]);
    expect(store.attempts).toHaveLength(6);
    store.failures = 1;
    committer.commitLater(['b']);
    await settle();
    expect(errors.at(-1)).toEqual(['disk full', 100]);
  });

  it('R2: persistence() says since when writes fail, why, and how many volumes wait', async () => {
    expect(committer.persistence()).toEqual({ ok: true, pendingVolumes: 0 });
    store.failures = 2;
    add('a');
    add('b');
    committer.commitLater(['a', 'b']);
    await settle();
    expect(committer.persistence()).toEqual({ ok: false, lastError: 'disk full', failingSince: '2026-12-02T10:00:00.000Z', pendingVolumes: 2 });
    await vi.advanceTimersByTimeAsync(1000);
    // Still failing: the time of the first failure stays.
    expect(committer.persistence()).toEqual({ ok: false, lastError: 'disk full', failingSince: '2026-12-02T10:00:00.000Z', pendingVolumes: 2 });
    await vi.advanceTimersByTimeAsync(2000);
    expect(committer.persistence()).toEqual({ ok: true, pendingVolumes: 0 });
  });

  it('R2: a commit() that succeeds while a retry waits ends the retrying', async () => {
    store.failures = 1;
    add('a');
    committer.commitLater(['a']);
    await settle();
    add('b');
    await committer.commit(['b']);
    expect(recovered).toBe(1);
    expect(committer.persistence()).toEqual({ ok: true, pendingVolumes: 0 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(store.attempts).toEqual([['a'], ['a', 'b']]);
  });

  it('R2: commitLater() while a retry waits joins that retry instead of writing at once', async () => {
    store.failures = 2;
    add('a');
    committer.commitLater(['a']);
    await settle();
    add('b');
    committer.commitLater(['b']);
    await settle();
    expect(store.attempts).toEqual([['a']]);
    await vi.advanceTimersByTimeAsync(1000);
    await vi.advanceTimersByTimeAsync(2000);
    expect(store.attempts).toEqual([['a'], ['a', 'b'], ['a', 'b']]);
    expect(Object.keys(store.written.at(-1)?.volumes ?? {})).toEqual(['a', 'b']);
  });

  it('R2: commitLater() with nothing failing writes at once, sharing the write with commit()', async () => {
    add('a');
    committer.commitLater(['a']);
    add('b');
    await committer.commit(['b']);
    expect(store.attempts).toEqual([['a', 'b']]);
    expect(errors).toEqual([]);
  });

  it('R2: stop() cancels a waiting retry', async () => {
    store.failures = 1;
    committer.commitLater(['a']);
    await settle();
    committer.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(store.attempts).toHaveLength(1);
  });
});

describe('GroupCommitter retry timer', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('R2: the retry timer does not keep the process alive', async () => {
    const store = new FlakyStore();
    store.failures = 1;
    const timers = vi.spyOn(globalThis, 'setTimeout');
    const committer = new GroupCommitter(store, () => emptyState('boot-1'), 2000, { retryMs: 60_000 });
    committer.commitLater(['a']);
    await settle();
    const index = timers.mock.calls.findIndex((call) => call[1] === 60_000);
    const timer = timers.mock.results[index]?.value as NodeJS.Timeout | undefined;
    expect(timer?.hasRef()).toBe(false);
    committer.stop();
  });
});
