import { chmod, mkdir, open, readFile, rename, truncate } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { StateError } from '../errors.js';
import { STATE_VERSION, stateFile, volumeRecord, volumeTable, type StateFile } from './state-schema.js';

export interface StateStore {
  /** The saved state, or undefined on first start. Throws StateError if it cannot be trusted. */
  load(): Promise<StateFile | undefined>;
  /** Writes the whole state (a snapshot); the journal, if any, starts afresh. */
  save(state: StateFile): Promise<void>;
  /**
   * Records the current records of `volumes` (deleted ones as such) and the state's own
   * fields, without rewriting everything. Optional: stores without it get save().
   */
  append?(state: StateFile, volumes: readonly string[]): Promise<void>;
  /** Changes journaled since the last snapshot. */
  readonly journalLength?: number;
  readonly path: string;
}

/** One line of the journal: a volume's record (or its deletion) and the state's own fields. */
interface JournalLine {
  readonly seq: number;
  readonly v?: string;
  readonly r?: unknown;
  readonly d?: true;
  readonly m?: { bootId: string; activations: number };
}

/**
 * State on disk as a snapshot plus a journal.
 *
 * The snapshot (state.json) is replaced atomically: temp file, fsync, rename, fsync of the
 * directory; a crash leaves the old or the new file, never a torn one. Each later change
 * appends one line per changed volume to state.journal and fsyncs it before the call is
 * answered, so a change costs the size of one record, not of every volume. Lines carry a
 * sequence number and whole records, so replaying them is idempotent and lines already in
 * the snapshot are skipped. A torn last line can only be a change that was never
 * acknowledged; it is dropped. Mode 0600 in a 0700 directory: CIFS passwords are in it.
 */
export class JsonStateStore implements StateStore {
  readonly path: string;
  readonly journalPath: string;
  private saves = 0;
  /** Sequence number of the last change written (snapshot or journal). */
  private seq = 0;
  private lines = 0;
  private journalExists = false;

  constructor(dir: string) {
    this.path = join(dir, 'state.json');
    this.journalPath = join(dir, 'state.journal');
  }

  get journalLength(): number {
    return this.lines;
  }

  async load(): Promise<StateFile | undefined> {
    const text = await readOptional(this.path);
    const journal = await readOptional(this.journalPath);
    if (text === undefined && journal === undefined) return undefined;
    let state: StateFile | undefined;
    if (text !== undefined) {
      const snapshot = this.parseSnapshot(text);
      state = snapshot.state;
      this.seq = snapshot.seq;
    }
    this.journalExists = journal !== undefined;
    if (journal !== undefined) state = this.replay(state, journal, this.seq);
    return state;
  }

  private parseSnapshot(text: string): { state: StateFile; seq: number } {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new StateError(
        `state file ${this.path} is not valid JSON (${(error as Error).message}); move it aside to start with no volumes, or restore it from a backup`,
        { cause: error },
      );
    }
    const version = (json as { version?: unknown } | null)?.version;
    if (version !== STATE_VERSION) {
      throw new StateError(
        `state file ${this.path} has version ${JSON.stringify(version)}, this netvol reads version ${STATE_VERSION}; run the netvol that wrote it, or move the file aside`,
      );
    }
    const parsed = stateFile.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new StateError(
        `state file ${this.path} is damaged at ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? ''}; move it aside to start with no volumes, or fix it`,
      );
    }
    const seq = (json as { seq?: unknown }).seq;
    return { state: { ...parsed.data, volumes: volumeTable(parsed.data.volumes) }, seq: typeof seq === 'number' ? seq : 0 };
  }

  private replay(initial: StateFile | undefined, journal: string, snapshotSeq: number): StateFile {
    const state: StateFile = initial ?? { version: STATE_VERSION, bootId: '', volumes: volumeTable(), activations: 0 };
    const lines = journal.split('\n').filter((line) => line.trim() !== '');
    lines.forEach((text, index) => {
      // Counted even when torn, so the next start-up snapshot folds it away.
      this.lines++;
      let line: JournalLine;
      try {
        line = JSON.parse(text) as JournalLine;
      } catch {
        if (index === lines.length - 1) return; // torn by a crash mid-write: never acknowledged
        throw new StateError(
          `state journal ${this.journalPath} is damaged at line ${index + 1}; move it aside to fall back to ${this.path}`,
        );
      }
      if (typeof line.seq !== 'number' || line.seq <= snapshotSeq) return;
      if (line.seq > this.seq) this.seq = line.seq;
      if (line.m) {
        state.bootId = line.m.bootId;
        state.activations = line.m.activations;
      }
      if (line.v !== undefined && line.d) delete state.volumes[line.v];
      if (line.v !== undefined && line.r !== undefined) {
        const record = volumeRecord.safeParse(line.r);
        if (!record.success) {
          throw new StateError(`state journal ${this.journalPath} has a damaged record at line ${index + 1}; move it aside to fall back to ${this.path}`);
        }
        state.volumes[line.v] = record.data;
      }
    });
    return state;
  }

  async save(state: StateFile): Promise<void> {
    // Serialised before the first await: the file holds exactly the state of this moment.
    const text = `${JSON.stringify({ ...state, seq: this.seq })}\n`;
    const dir = dirname(this.path);
    const temp = `${this.path}.tmp-${process.pid}-${++this.saves}`;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeSynced(temp, text, 'w');
      await chmod(temp, 0o600);
      await rename(temp, this.path);
      await syncDirectory(dir);
      // The snapshot holds everything journaled so far (by seq): the journal can go.
      if (this.journalExists) await truncate(this.journalPath, 0);
      this.lines = 0;
    } catch (error) {
      throw new StateError(`cannot save state to ${this.path}: ${(error as Error).message}`, { cause: error });
    }
  }

  async append(state: StateFile, volumes: readonly string[]): Promise<void> {
    const seq = ++this.seq;
    const lines: JournalLine[] = volumes.map((v) => {
      const record = state.volumes[v];
      return record ? { seq, v, r: record } : { seq, v, d: true };
    });
    lines.push({ seq, m: { bootId: state.bootId, activations: state.activations } });
    const text = `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`;
    const dir = dirname(this.path);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeSynced(this.journalPath, text, 'a');
      if (!this.journalExists) await syncDirectory(dir);
      this.journalExists = true;
      this.lines += lines.length;
    } catch (error) {
      throw new StateError(`cannot save state to ${this.journalPath}: ${(error as Error).message}`, { cause: error });
    }
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateError(`cannot read state file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

async function writeSynced(path: string, text: string, flags: 'w' | 'a'): Promise<void> {
  const handle = await open(path, flags, 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Group commit: many concurrent changes share one write. Each caller waits until a write
 * that started after its change has finished, so an acknowledged change is always on disk,
 * yet 64 concurrent Creates cost two fsyncs, not 64. Changes naming their volumes are
 * journaled; a change that names none, or a journal grown past `compactAfter` lines and past
 * one line per volume, writes a full snapshot. The second bound keeps a snapshot's cost
 * proportional to the changes it folds away: with 10,000 volumes each snapshot is ~2 MB of
 * JSON, and one every 2,000 lines made a burst of Creates grow the daemon by ~15 MB.
 */
export class GroupCommitter {
  private writing: Promise<void> | undefined;
  private pending: Promise<void> | undefined;
  private dirty = new Set<string>();
  private everything = false;
  /** Journal lines allowed before a snapshot; raised to the volume count when that is larger. */
  private limit: number;

  constructor(
    private readonly store: StateStore,
    private readonly snapshot: () => StateFile,
    private readonly compactAfter = 2000,
  ) {
    this.limit = compactAfter;
  }

  commit(volumes?: readonly string[]): Promise<void> {
    if (volumes === undefined) this.everything = true;
    else for (const volume of volumes) this.dirty.add(volume);
    if (this.pending) return this.pending;
    const previous = this.writing ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => {
        // From here on, later changes need a later write.
        this.pending = undefined;
        this.writing = next;
        const dirty = [...this.dirty];
        const everything = this.everything;
        this.dirty = new Set();
        this.everything = false;
        const state = this.snapshot();
        return this.store.append && !everything && this.withinLimit(state, dirty.length + 1)
          ? this.store.append(state, dirty)
          : this.store.save(state);
      })
      .finally(() => {
        if (this.writing === next) this.writing = undefined;
      });
    this.pending = next;
    return next;
  }

  /**
   * `adding` lines: one per volume and one for the state's own fields. Counts the volumes only
   * when the journal reaches the limit, not on every change.
   */
  private withinLimit(state: StateFile, adding: number): boolean {
    const lines = (this.store.journalLength ?? 0) + adding;
    if (lines < this.limit) return true;
    this.limit = Math.max(this.compactAfter, Object.keys(state.volumes).length);
    return lines < this.limit;
  }
}
