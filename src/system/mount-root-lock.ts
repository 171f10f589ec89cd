import { randomBytes } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { StartupError } from '../errors.js';

export interface MountRootLock {
  readonly path: string;
  release(): Promise<void>;
}

interface Holder {
  readonly pid: number;
  /** /proc/<pid>/stat field 22: a reused PID (or a new PID 1 in a restarted plugin) has another. */
  readonly startTime: string;
  readonly bootId: string;
  readonly driver: string;
}

async function startTimeOf(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

async function readHolder(path: string): Promise<Holder | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as Holder;
  } catch {
    return undefined;
  }
}

async function isAlive(holder: Holder, bootId: string): Promise<boolean> {
  if (holder.bootId !== bootId) return false;
  return (await startTimeOf(holder.pid)) === holder.startTime;
}

/**
 * One daemon per mount root. Two daemons on one root would each take the other's mounts for
 * leftovers and unmount them, or hand out the other's share for a volume of the same name.
 * Node has no flock(2), so the lock is a file naming its holder by PID, start time and boot
 * id; a holder that is gone (crash, SIGKILL, reboot) no longer holds it.
 */
export async function lockMountRoot(root: string, driver: string, bootId: string): Promise<MountRootLock> {
  const path = `${root}.lock`;
  const me: Holder = { pid: process.pid, startTime: (await startTimeOf(process.pid)) ?? '', bootId, driver };
  const text = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(path, text, { flag: 'wx', mode: 0o644 });
      return handle(path, me);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StartupError(`cannot create the lock file ${path}: ${(error as Error).message}`, { cause: error });
      }
    }
    const holder = await readHolder(path);
    if (holder && holder.pid !== process.pid && (await isAlive(holder, bootId))) {
      throw new StartupError(
        `mount root ${root} is in use by another netvol (driver '${holder.driver}', pid ${holder.pid}); two daemons must not share one: stop that one, or give this one another driver name (NETSHARE_SOCKET_NAME) or --basedir`,
      );
    }
    // Left by a daemon that is gone: replace it atomically, then check that this one won.
    const temp = `${path}.${randomBytes(4).toString('hex')}`;
    await writeFile(temp, text, { mode: 0o644 });
    await rename(temp, path);
    const now = await readHolder(path);
    if (now?.pid === me.pid && now.startTime === me.startTime) return handle(path, me);
  }
  throw new StartupError(`could not take the lock ${path}: another netvol is starting on the same mount root`);
}

function handle(path: string, me: Holder): MountRootLock {
  return {
    path,
    async release() {
      const holder = await readHolder(path);
      if (holder?.pid === me.pid && holder.startTime === me.startTime) await unlink(path).catch(() => undefined);
    },
  };
}
