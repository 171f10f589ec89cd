import { mkdir, open, readFile, rename, chmod } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { StateError } from '../errors.js';
import { STATE_VERSION, stateFile, type StateFile } from './state-schema.js';

export interface StateStore {
  /** The saved state, or undefined on first start. Throws StateError if it cannot be trusted. */
  load(): Promise<StateFile | undefined>;
  save(state: StateFile): Promise<void>;
  readonly path: string;
}

/**
 * One JSON file, replaced atomically: write a temp file, fsync it, rename over the old one,
 * fsync the directory. A crash at any point leaves either the old or the new file, never a
 * torn one. Mode 0600 in a 0700 directory: CIFS passwords are in it.
 */
export class JsonStateStore implements StateStore {
  readonly path: string;
  private saves = 0;

  constructor(dir: string) {
    this.path = join(dir, 'state.json');
  }

  async load(): Promise<StateFile | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StateError(`cannot read state file ${this.path}: ${(error as Error).message}`, { cause: error });
    }
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
    return parsed.data;
  }

  async save(state: StateFile): Promise<void> {
    // Serialised before the first await: the file holds exactly the state of this moment.
    const text = `${JSON.stringify(state)}\n`;
    const dir = dirname(this.path);
    const temp = `${this.path}.tmp-${process.pid}-${++this.saves}`;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const handle = await open(temp, 'w', 0o600);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await chmod(temp, 0o600);
      await rename(temp, this.path);
      const dirHandle = await open(dir, 'r');
      try {
        await dirHandle.sync();
      } finally {
        await dirHandle.close();
      }
    } catch (error) {
      throw new StateError(`cannot save state to ${this.path}: ${(error as Error).message}`, { cause: error });
    }
  }
}

/**
 * Group commit: many concurrent changes share one write. Each caller waits until a write
 * that started after its change has finished, so an acknowledged change is always on disk,
 * yet 64 concurrent Creates cost two fsyncs, not 64.
 */
export class GroupCommitter {
  private writing: Promise<void> | undefined;
  private pending: Promise<void> | undefined;

  constructor(
    private readonly store: StateStore,
    private readonly snapshot: () => StateFile,
  ) {}

  commit(): Promise<void> {
    if (this.pending) return this.pending;
    const previous = this.writing ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => {
        // From here on, later changes need a later write.
        this.pending = undefined;
        this.writing = next;
        return this.store.save(this.snapshot());
      })
      .finally(() => {
        if (this.writing === next) this.writing = undefined;
      });
    this.pending = next;
    return next;
  }
}
