import { createHash } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { errorMessage, StateError } from '../errors.js';
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
  /** What the last load() passed over or cleaned up, for the daemon to log. */
  readonly loadReport?: LoadReport;
  readonly path: string;
}

export interface SkippedLine {
  /** 1-based line number in the journal file. */
  readonly line: number;
  readonly reason: string;
}

export interface LoadReport {
  /** Journal lines not applied because they were torn, damaged or invalid. */
  readonly skippedLines: readonly SkippedLine[];
  /** Temporary snapshots of interrupted saves that load() deleted (full paths). */
  readonly removedTempFiles: readonly string[];
}

export interface JsonStateStoreOptions {
  /**
   * Problems that lost no change, such as a journal that could not be emptied after a
   * durable snapshot. The operation they came from still succeeded.
   */
  readonly onWarning?: (message: string) => void;
}

/** One line of the journal: a volume's record (or its deletion) and the state's own fields. */
interface JournalLine {
  readonly seq: number;
  readonly v?: string;
  readonly r?: unknown;
  readonly d?: true;
  readonly m?: { bootId: string; activations: number };
}

const stateFields = z.object({ bootId: z.string(), activations: z.number().int().nonnegative() });

const TORN = 'incomplete: the write was cut short (a crash or a full disk), so the change was never acknowledged';

/**
 * State on disk as a snapshot plus a journal.
 *
 * The snapshot (state.json) is replaced atomically: temp file, fsync, rename, fsync of the
 * directory; a crash leaves the old or the new file, never a torn one. Each later change
 * appends one line per changed volume to state.journal and fsyncs it before the call is
 * answered, so a change costs the size of one record, not of every volume. Lines carry a
 * sequence number and whole records, so replaying them is idempotent and lines already in
 * the snapshot are skipped. Mode 0600 in a 0700 directory: CIFS passwords are in it.
 *
 * A full or failing disk must cost at most the change being written, never the journal:
 * an append that fails is cut back to the old length, and every line carries a checksum,
 * so a line that is torn or damaged anyway is skipped (and reported) while the lines
 * after it still apply. Once a snapshot is durable, failing to empty the journal is only a
 * warning: its lines are older than the snapshot by seq, and replay skips them.
 */
export class JsonStateStore implements StateStore {
  readonly path: string;
  readonly journalPath: string;
  private readonly onWarning: (message: string) => void;
  private saves = 0;
  /** Sequence number of the last change written (snapshot or journal). */
  private seq = 0;
  private lines = 0;
  private journalExists = false;
  /** An append failed and could not be cut back: its bytes may still form a whole line. */
  private snapshotNeeded = false;
  /** The journal holds only lines the snapshot already has, because emptying it failed. */
  private journalStale = false;
  private report: LoadReport = { skippedLines: [], removedTempFiles: [] };

  constructor(dir: string, options: JsonStateStoreOptions = {}) {
    this.path = join(dir, 'state.json');
    this.journalPath = join(dir, 'state.journal');
    this.onWarning = options.onWarning ?? (() => undefined);
  }

  get journalLength(): number {
    return this.lines;
  }

  get loadReport(): LoadReport {
    return this.report;
  }

  async load(): Promise<StateFile | undefined> {
    const skippedLines: SkippedLine[] = [];
    this.report = { skippedLines, removedTempFiles: await this.removeTempFiles() };
    this.lines = 0;
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
    if (journal !== undefined) state = this.replay(state, journal, this.seq, skippedLines);
    return state;
  }

  /** Temp files of saves cut short by a crash hold secrets and take the space that may have been short. */
  private async removeTempFiles(): Promise<string[]> {
    const dir = dirname(this.path);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      // No directory yet, or one that cannot be read: reading the state says which, right after.
      return [];
    }
    const prefix = `${basename(this.path)}.tmp-`;
    const removed: string[] = [];
    for (const name of names.filter((entry) => entry.startsWith(prefix))) {
      const path = join(dir, name);
      if (!leftBehind(name.slice(prefix.length), path)) continue;
      try {
        await unlink(path);
        removed.push(path);
      } catch (error) {
        this.onWarning(`cannot delete ${path}, a temporary copy of the state left by an interrupted save (${errorMessage(error)}); it may hold CIFS passwords, so delete it by hand`);
      }
    }
    return removed;
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

  /**
   * A line that cannot be trusted is skipped, not fatal: refusing to start would lose every
   * volume to dockerd, while a skipped line costs at most that one change, and the lines
   * after it are independent whole records.
   */
  private replay(initial: StateFile | undefined, journal: string, snapshotSeq: number, skipped: SkippedLine[]): StateFile {
    const state: StateFile = initial ?? { version: STATE_VERSION, bootId: '', volumes: volumeTable(), activations: 0 };
    const texts = journal.split('\n');
    texts.forEach((text, index) => {
      if (text.trim() === '') return;
      // Counted even when skipped, so the next start-up snapshot folds it away.
      this.lines++;
      // Only a last line without its newline can be a write still under way at a crash.
      const torn = index === texts.length - 1;
      const skip = (reason: string): void => {
        skipped.push({ line: index + 1, reason });
      };
      const read = readJournalLine(text);
      if (typeof read === 'string') return skip(torn && read === 'not valid JSON' ? TORN : read);
      const line = read;
      if (line.seq <= snapshotSeq) return;
      let fields: JournalLine['m'];
      if (line.m !== undefined) {
        const parsed = stateFields.safeParse(line.m);
        if (!parsed.success) return skip(`state fields do not match the schema: ${parsed.error.issues[0]?.message ?? ''}`);
        fields = parsed.data;
      }
      let record: StateFile['volumes'][string] | undefined;
      if (line.v !== undefined && line.r !== undefined) {
        const parsed = volumeRecord.safeParse(line.r);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          return skip(`record does not match the schema at ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? ''}`);
        }
        record = parsed.data;
      }
      if (line.seq > this.seq) this.seq = line.seq;
      if (fields) {
        state.bootId = fields.bootId;
        state.activations = fields.activations;
      }
      if (line.v !== undefined && line.d) delete state.volumes[line.v];
      if (line.v !== undefined && record) state.volumes[line.v] = record;
    });
    return state;
  }

  async save(state: StateFile): Promise<void> {
    // Serialised before the first await: the file holds exactly the state of this moment.
    const text = `${JSON.stringify({ ...state, seq: this.seq })}\n`;
    const dir = dirname(this.path);
    const temp = `${this.path}.tmp-${process.pid}-${++this.saves}`;
    let renamed = false;
    savesUnderWay.add(temp);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeSynced(temp, text);
      await chmod(temp, 0o600);
      await rename(temp, this.path);
      renamed = true;
      await syncDirectory(dir);
    } catch (error) {
      // It holds secrets, and the space it takes may be what ran out.
      if (!renamed) await unlink(temp).catch(() => undefined);
      throw new StateError(`cannot save state to ${this.path}: ${(error as Error).message}`, { cause: error });
    } finally {
      savesUnderWay.delete(temp);
    }
    // Durable from here on, and it holds everything journaled so far (by seq).
    this.snapshotNeeded = false;
    this.lines = 0;
    const failure = this.journalExists ? await this.emptyJournal() : undefined;
    if (failure !== undefined) {
      this.onWarning(
        `saved the state to ${this.path}, but could not empty the journal ${this.journalPath} (${failure}); ` +
          "its lines are all in the snapshot and are skipped at start-up, and netvol tries again before the next change. If this repeats, check the disk and the file's attributes (lsattr)",
      );
    }
  }

  async append(state: StateFile, volumes: readonly string[]): Promise<void> {
    // A failed append that could not be cut back may have left a whole line the caller was
    // told failed; only a snapshot, newer by seq, makes sure it is never replayed.
    if (this.snapshotNeeded) return this.save(state);
    const seq = ++this.seq;
    const lines: JournalLine[] = volumes.map((v) => {
      const record = state.volumes[v];
      return record ? { seq, v, r: record } : { seq, v, d: true };
    });
    lines.push({ seq, m: { bootId: state.bootId, activations: state.activations } });
    const text = `${lines.map(sealLine).join('\n')}\n`;
    const dir = dirname(this.path);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const failure = this.journalStale ? await this.emptyJournal() : undefined;
      if (failure !== undefined) {
        this.onWarning(
          `could not empty the journal ${this.journalPath} before appending to it (${failure}); appending after its old lines, which are all in the snapshot ${this.path} and skipped at start-up. ` +
            "The next snapshot tries again; if this repeats, check the disk and the file's attributes (lsattr)",
        );
      }
      await this.appendOrCutBack(text, dir);
      this.journalExists = true;
      this.journalStale = false;
      this.lines += lines.length;
    } catch (error) {
      throw new StateError(`cannot save state to ${this.journalPath}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Empties the journal; resolves to why it could not, or to undefined. */
  private async emptyJournal(): Promise<string | undefined> {
    try {
      await truncate(this.journalPath, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.journalStale = true;
        return errorMessage(error);
      }
      this.journalExists = false;
    }
    this.journalStale = false;
    return undefined;
  }

  /** Appends `text`, fsynced; on any failure the journal is cut back to its length before. */
  private async appendOrCutBack(text: string, dir: string): Promise<void> {
    const handle = await open(this.journalPath, 'a+', 0o600);
    let size: number | undefined;
    try {
      size = (await handle.stat()).size;
      // After a torn line (a crash, or a cut-back that failed), start afresh: glued to it,
      // this change would be part of the garbage.
      const separator = size > 0 && !(await endsWithNewline(handle, size)) ? '\n' : '';
      await handle.writeFile(separator + text);
      await handle.sync();
      if (!this.journalExists) await syncDirectory(dir);
    } catch (error) {
      if (size !== undefined) {
        await handle.truncate(size).catch(() => {
          this.snapshotNeeded = true;
        });
      }
      throw error;
    } finally {
      // Written and fsynced (or cut back) by now: close has nothing left to lose.
      await handle.close().catch(() => undefined);
    }
  }
}

/**
 * Temp snapshots being written by this process. Their names carry the writer's PID, and a
 * load() (netvol status, a test) may run beside a live daemon: only files whose writer is
 * gone, or is this process but not writing them, are leftovers.
 */
const savesUnderWay = new Set<string>();

/** `suffix` is what follows "state.json.tmp-": "<pid>-<n>". */
function leftBehind(suffix: string, path: string): boolean {
  const pid = Number(/^(\d+)-/.exec(suffix)?.[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return true;
  if (pid === process.pid) return !savesUnderWay.has(path);
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    // EPERM: alive, under another user.
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * `{"c":"<checksum>",` followed by the rest of the line, the checksum taken over that rest
 * with `{` in front: a torn or altered line fails it, even when it still parses as JSON.
 */
function sealLine(line: JournalLine): string {
  const body = JSON.stringify(line);
  return `{"c":"${checksum(body)}",${body.slice(1)}`;
}

const SEAL = /^\{"c":"([0-9a-f]{8})",/;

function checksum(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/** The line, or why it cannot be used. Lines from before checksums (no "c") are taken as they are. */
function readJournalLine(text: string): JournalLine | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return 'not a JSON object';
  if ('c' in json) {
    const seal = SEAL.exec(text);
    if (!seal || checksum(`{${text.slice(seal[0].length)}`) !== seal[1]) return 'checksum does not match the line';
  }
  const line = json as JournalLine;
  if (typeof line.seq !== 'number') return 'no sequence number';
  return line;
}

async function endsWithNewline(handle: FileHandle, size: number): Promise<boolean> {
  const { bytesRead, buffer } = await handle.read(Buffer.alloc(1), 0, 1, size - 1);
  return bytesRead === 1 && buffer[0] === 0x0a;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateError(`cannot read state file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

async function writeSynced(path: string, text: string): Promise<void> {
  const handle = await open(path, 'w', 0o600);
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

export interface GroupCommitterOptions {
  /**
   * A write started by commitLater() (or its retry) failed; the next try is in `retryInMs`.
   * commit() failures reach only their callers.
   */
  readonly onError?: (error: unknown, retryInMs: number) => void;
  /** A write succeeded after onError had been called. */
  readonly onRecovered?: () => void;
  /** First retry delay after a failed background write; doubles up to `maxRetryMs`. */
  readonly retryMs?: number;
  readonly maxRetryMs?: number;
}

export interface Persistence {
  /** Whether the last write succeeded. */
  readonly ok: boolean;
  readonly lastError?: string;
  /** ISO time of the first failure since the last successful write. */
  readonly failingSince?: string;
  /** Volumes whose latest change is in memory only, waiting for the next write. */
  readonly pendingVolumes: number;
}

/**
 * Group commit: many concurrent changes share one write. Each caller waits until a write
 * that started after its change has finished, so an acknowledged change is always on disk,
 * yet 64 concurrent Creates cost two fsyncs, not 64. Changes naming their volumes are
 * journaled; a change that names none, or a journal grown past `compactAfter` lines and past
 * one line per volume, writes a full snapshot. The second bound keeps a snapshot's cost
 * proportional to the changes it folds away: with 10,000 volumes each snapshot is ~2 MB of
 * JSON, and one every 2,000 lines made a burst of Creates grow the daemon by ~15 MB.
 *
 * A failed write puts its volumes back among the dirty ones, so whatever write comes next
 * carries them. Some changes must not fail their call because the disk did (dockerd cannot
 * activate the plugin, or keeps a stopped container's mount forever): commitLater() keeps
 * them in memory and retries with backoff until a write succeeds.
 */
export class GroupCommitter {
  private writing: Promise<void> | undefined;
  private pending: Promise<void> | undefined;
  private dirty = new Set<string>();
  private everything = false;
  /** Journal lines allowed before a snapshot; raised to the volume count when that is larger. */
  private limit: number;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private nextRetryMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  /** The write whose failure schedules a retry, so that several commitLater() calls sharing it schedule one. */
  private watched: Promise<void> | undefined;
  /** Set by a failed write, cleared by the next one that succeeds. */
  private failure: { error: string; since: string } | undefined;
  /** onError was called and no write has succeeded since. */
  private reported = false;
  private stopped = false;

  constructor(
    private readonly store: StateStore,
    private readonly snapshot: () => StateFile,
    private readonly compactAfter = 2000,
    private readonly options: GroupCommitterOptions = {},
  ) {
    this.limit = compactAfter;
    this.retryMs = options.retryMs ?? 1000;
    this.maxRetryMs = Math.max(options.maxRetryMs ?? 30_000, this.retryMs);
    this.nextRetryMs = this.retryMs;
  }

  /** Resolves once a write holding this change is durable; rejects if that write failed. */
  commit(volumes?: readonly string[]): Promise<void> {
    this.markDirty(volumes);
    return this.write();
  }

  /** Persists this change as soon as the disk lets it, retrying in the background; never fails. */
  commitLater(volumes?: readonly string[]): void {
    this.markDirty(volumes);
    // A waiting retry carries this change too; writing at once would defeat the backoff.
    if (this.retryTimer) return;
    this.writeInBackground();
  }

  persistence(): Persistence {
    const pendingVolumes = this.everything ? Object.keys(this.snapshot().volumes).length : this.dirty.size;
    if (!this.failure) return { ok: true, pendingVolumes };
    return { ok: false, lastError: this.failure.error, failingSince: this.failure.since, pendingVolumes };
  }

  /** No more retries: on shutdown, after the final commit(). */
  stop(): void {
    this.stopped = true;
    this.cancelRetry();
  }

  private markDirty(volumes: readonly string[] | undefined): void {
    if (volumes === undefined) this.everything = true;
    else for (const volume of volumes) this.dirty.add(volume);
  }

  private write(): Promise<void> {
    if (this.pending) return this.pending;
    const previous = this.writing ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        // From here on, later changes need a later write.
        this.pending = undefined;
        this.writing = next;
        const dirty = [...this.dirty];
        const everything = this.everything;
        this.dirty = new Set();
        this.everything = false;
        try {
          const state = this.snapshot();
          await (this.store.append && !everything && this.withinLimit(state, dirty.length + 1)
            ? this.store.append(state, dirty)
            : this.store.save(state));
        } catch (error) {
          // These changes are in memory only now: the next write, whoever starts it, carries them.
          for (const volume of dirty) this.dirty.add(volume);
          if (everything) this.everything = true;
          this.failure = { error: errorMessage(error), since: this.failure?.since ?? new Date().toISOString() };
          throw error;
        }
        this.succeeded();
      })
      .finally(() => {
        if (this.writing === next) this.writing = undefined;
      });
    this.pending = next;
    return next;
  }

  private succeeded(): void {
    this.failure = undefined;
    this.nextRetryMs = this.retryMs;
    // Safe: this write held every change put back by earlier failures, and changes made
    // since have a write of their own queued.
    this.cancelRetry();
    if (this.reported) {
      this.reported = false;
      this.options.onRecovered?.();
    }
  }

  private writeInBackground(): void {
    const write = this.write();
    if (write === this.watched) return;
    this.watched = write;
    write.then(
      () => undefined,
      (error: unknown) => this.scheduleRetry(error),
    );
  }

  private scheduleRetry(error: unknown): void {
    if (this.stopped || this.retryTimer) return;
    const delay = this.nextRetryMs;
    this.nextRetryMs = Math.min(delay * 2, this.maxRetryMs);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.writeInBackground();
    }, delay);
    this.retryTimer.unref();
    this.reported = true;
    this.options.onError?.(error, delay);
  }

  private cancelRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
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
