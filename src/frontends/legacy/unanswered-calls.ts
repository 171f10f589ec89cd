import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * dockerd's plugin client repeats a call whose connection broke, but with an empty body: its
 * retry loop builds each try from the same buffer, which the first try drained (moby/moby
 * pkg/plugins/client.go callWithRetry; moby/moby#39331 and #35459, open). When netvol is killed
 * while it answers a call (SIGKILL, the OOM killer, a crash), the repeat reaches the next process
 * (through systemd's socket, or once it listens again) as `{}`, fails ("Name is required"), and
 * the `docker run` or `docker volume rm` behind it fails with it.
 *
 * So while a call that changes something is under way its body is kept in a file. A process that
 * dies leaves the files of the calls it never answered; the next one reads them at start, and an
 * empty repeat of one of them is answered with its body. The files need no fsync: they only have
 * to outlive the process, not the machine (a reboot restarts dockerd too, and nothing repeats).
 */

/** dockerd gives up repeating a call 30 s after its first try; a little slack for clock reads. */
export const REPEAT_WINDOW_MS = 35_000;

/**
 * A repeat sent while no process served the socket waits in its backlog (systemd's socket, or
 * the managed plugin's early socket) and is read as soon as the next process serves it, however
 * long its start took. One read this soon after that may have been sent as early as the process
 * began, so the window is counted from then.
 */
export const BACKLOG_READ_MS = 10_000;

/** When this process began and when it began to serve the socket (epoch ms). */
export interface ProcessTimes {
  readonly startedMs: number;
  readonly servingSinceMs: number;
}

export interface UnansweredCall {
  readonly path: string;
  readonly body: string;
  /** When the process that died received it (the file's mtime). */
  readonly receivedMs: number;
}

export type RepeatPick = { readonly found: true; readonly body: string } | { readonly found: false; readonly why: string };

/**
 * Which body an empty repeat of `path` stands for. Only an unambiguous one: the repeat carries
 * nothing to tell two calls of the same kind apart, and answering the wrong one would hand a
 * container another volume's mountpoint.
 */
export function pickRepeat(left: readonly UnansweredCall[], path: string, nowMs: number, times?: ProcessTimes): RepeatPick {
  const what = path.slice(1);
  // When the repeat may have been sent.
  const sentBy = times && nowMs - times.servingSinceMs <= BACKLOG_READ_MS ? Math.min(nowMs, times.startedMs) : nowMs;
  const sameKind = left.filter((call) => call.path === path);
  const recent = sameKind.filter((call) => sentBy - call.receivedMs <= REPEAT_WINDOW_MS);
  const [only] = recent;
  if (recent.length === 1 && only) return { found: true, body: only.body };
  if (recent.length > 1) {
    return { found: false, why: `netvol's previous process left ${recent.length} ${what} calls unanswered, and the repeat does not say which one it is` };
  }
  if (sameKind.length > 0) {
    return { found: false, why: `the ${what} call netvol's previous process left unanswered was received more than ${REPEAT_WINDOW_MS / 1000} s before this repeat was sent, longer than dockerd repeats a call` };
  }
  return { found: false, why: `netvol's previous process left no ${what} call unanswered` };
}

/** The directory the bodies are kept in, behind the three operations the front end needs. */
export interface CallFiles {
  write(name: string, text: string): Promise<void>;
  remove(name: string): Promise<void>;
  /** Every file left there, each removed once read. */
  takeAll(): Promise<{ text: string; mtimeMs: number }[]>;
}

export function callFilesIn(dir: string): CallFiles {
  return {
    async write(name, text) {
      await writeFile(join(dir, name), text, { mode: 0o600 });
    },
    async remove(name) {
      await rm(join(dir, name), { force: true });
    },
    async takeAll() {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const taken: { text: string; mtimeMs: number }[] = [];
      for (const name of await readdir(dir)) {
        const file = join(dir, name);
        try {
          const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
          taken.push({ text, mtimeMs: info.mtimeMs });
        } catch {
          // Gone or unreadable: it can answer nothing.
        }
        await rm(file, { force: true });
      }
      return taken;
    },
  };
}

export class UnansweredCalls {
  private next = 0;
  private warnedWrite = false;
  private times: ProcessTimes | undefined;

  private constructor(
    private readonly files: CallFiles,
    private left: UnansweredCall[],
    private readonly now: () => number,
    private readonly startedMs: number,
    private readonly onWriteError: (error: unknown) => void,
  ) {}

  /** Reads (and clears) what the previous process left; `startedMs`: when this process began. */
  static async open(files: CallFiles, now: () => number, startedMs: number, onWriteError: (error: unknown) => void): Promise<UnansweredCalls> {
    const left: UnansweredCall[] = [];
    for (const { text, mtimeMs } of await files.takeAll()) {
      try {
        const { path, body } = JSON.parse(text) as { path?: unknown; body?: unknown };
        if (typeof path === 'string' && typeof body === 'string') left.push({ path, body, receivedMs: mtimeMs });
      } catch {
        // A file cut short by a full disk: nothing to answer with.
      }
    }
    return new UnansweredCalls(files, left, now, startedMs, onWriteError);
  }

  /** The calls the previous process left, for the start-up log. */
  get leftByPath(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const { path } of this.left) counts[path] = (counts[path] ?? 0) + 1;
    return counts;
  }

  /** Keeps the body while the call is under way; the returned function drops it. */
  async begin(path: string, body: string): Promise<() => Promise<void>> {
    const name = `${process.pid}-${++this.next}.json`;
    try {
      await this.files.write(name, JSON.stringify({ path, body }));
    } catch (error) {
      // The call goes on: keeping its body only matters if this process dies under it.
      if (!this.warnedWrite) this.onWriteError(error);
      this.warnedWrite = true;
      return async () => undefined;
    }
    return () => this.files.remove(name).catch(() => undefined);
  }

  /** The socket is served from now on: repeats that waited in its backlog are read now. */
  serving(): void {
    this.times = { startedMs: this.startedMs, servingSinceMs: this.now() };
  }

  /** The body an empty repeat of `path` stands for, taken so that no second repeat gets it. */
  takeRepeat(path: string): RepeatPick {
    const pick = pickRepeat(this.left, path, this.now(), this.times);
    if (pick.found) this.left = this.left.filter((call) => call.path !== path);
    return pick;
  }
}
