import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { StateError, errorMessage } from '../../errors.js';

export interface LedgerEntry {
  /** The answer given the first time, given again to every repeat. */
  readonly volumeId: string;
  readonly context: Readonly<Record<string, string>>;
  /** Normalised CreateVolume parameters: no secrets (they are refused as parameters). */
  readonly parameters: Readonly<Record<string, string>>;
  readonly createdAt: string;
}

interface LedgerFile {
  readonly version: 1;
  readonly volumes: Record<string, LedgerEntry>;
}

/**
 * The names this controller has created volumes under and what it answered, so that a
 * repeat of CreateVolume gets the same answer, and one with other parameters is refused
 * (ALREADY_EXISTS) instead of making a second volume. Nothing else depends on it: volume_ids
 * describe their volumes, and a node never reads it.
 * Best effort by nature: a controller on another manager, or `docker volume rm -f` (which
 * skips the plugin), leaves entries this one cannot know are stale. One small JSON file,
 * replaced atomically (temp file, fsync, rename), 0600.
 */
export class VolumeLedger {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly volumes: Record<string, LedgerEntry>,
  ) {}

  static async open(path: string, logger: Logger): Promise<VolumeLedger> {
    const volumes = Object.create(null) as Record<string, LedgerEntry>;
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateError(`cannot read ${path}: ${errorMessage(error)}`, { cause: error });
    }
    if (text !== undefined) {
      try {
        const file = JSON.parse(text) as LedgerFile;
        for (const [name, entry] of Object.entries(file.volumes ?? {})) {
          if (typeof entry?.volumeId === 'string' && typeof entry.parameters === 'object' && typeof entry.context === 'object') volumes[name] = entry;
        }
      } catch (error) {
        // Losing the list only weakens the name check; refusing to start would stop every CreateVolume.
        logger.warn({ file: path, err: errorMessage(error) }, 'The list of created volume names is damaged and was started afresh; repeats of old names are no longer checked');
      }
    }
    return new VolumeLedger(path, volumes);
  }

  get(name: string): LedgerEntry | undefined {
    return Object.hasOwn(this.volumes, name) ? this.volumes[name] : undefined;
  }

  async put(name: string, entry: LedgerEntry): Promise<void> {
    this.volumes[name] = entry;
    await this.save();
  }

  /** Drops every name whose volume this is; resolves to the names dropped. */
  async forgetVolume(volumeId: string): Promise<string[]> {
    const names = Object.keys(this.volumes).filter((name) => this.volumes[name]?.volumeId === volumeId);
    if (names.length === 0) return [];
    for (const name of names) delete this.volumes[name];
    await this.save();
    return names;
  }

  private save(): Promise<void> {
    const next = this.writing.catch(() => undefined).then(() => this.write());
    this.writing = next;
    return next;
  }

  private async write(): Promise<void> {
    const text = `${JSON.stringify({ version: 1, volumes: { ...this.volumes } } satisfies LedgerFile)}\n`;
    const temp = `${this.path}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
      const dir = await open(dirname(this.path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw new StateError(`cannot save the list of created volumes to ${this.path}: ${errorMessage(error)}`, { cause: error });
    }
  }
}
