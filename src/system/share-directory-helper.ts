/**
 * Runs as its own process (through the command runner, with its timeout and kill), never
 * inside the daemon: every call here touches a network share, and on a dead `hard` NFS
 * server a mkdir blocks in the kernel for ever. In the daemon that would hold one of libuv's
 * four pool threads; four of them and no volume could be mounted any more.
 *
 *   share-directory-helper make   PARENT NAME MODE UID GID   (MODE octal or -, UID/GID or -)
 *   share-directory-helper remove PARENT NAME
 *   share-directory-helper rename PARENT NAME NEWNAME
 *
 * PARENT is a directory netvol mounted itself; NAME is one path segment. Nothing follows a
 * symbolic link: the parent is opened with O_NOFOLLOW and NAME is reached through
 * /proc/self/fd/N, so whoever can write to the share cannot make netvol create, chown,
 * delete or hand out a path outside it (kubelet's subPath CVE-2017-1002101 is this class).
 * Exit status: 0 done (stdout: one JSON line), 3 refused (NAME is not a real directory),
 * 1 any other failure; stderr says why.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';

const NO_FOLLOW_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

class Refused extends Error {}

function checkSegment(name: string | undefined, what: string): string {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Refused(`${what} '${name ?? ''}' is not a single path segment`);
  }
  return name;
}

async function openParent(parent: string | undefined): Promise<FileHandle> {
  if (!parent) throw new Refused('no parent directory given');
  return open(parent, NO_FOLLOW_DIR);
}

/** Opens PARENT/NAME only if it is a real directory (not a link, file, socket...). */
async function openChild(parentFd: number, name: string): Promise<FileHandle> {
  try {
    return await open(`/proc/self/fd/${parentFd}/${name}`, NO_FOLLOW_DIR);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // With O_DIRECTORY the kernel answers ENOTDIR for a link as for a file: lstat tells them apart.
    const link = code === 'ELOOP' || (code === 'ENOTDIR' && (await lstat(`/proc/self/fd/${parentFd}/${name}`).then((s) => s.isSymbolicLink(), () => false)));
    if (link) throw new Refused(`'${name}' on the share is a symbolic link, not a directory; netvol never follows links on a share: remove it on the server`);
    if (code === 'ENOTDIR') throw new Refused(`'${name}' on the share is not a directory; remove or rename it on the server`);
    throw error;
  }
}

async function make(args: string[]): Promise<object> {
  const [parent, rawName, mode, uid, gid] = args;
  const name = checkSegment(rawName, 'directory');
  const parentHandle = await openParent(parent);
  try {
    let made = true;
    try {
      await mkdir(`/proc/self/fd/${parentHandle.fd}/${name}`, { mode: 0o777 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      made = false;
    }
    const child = await openChild(parentHandle.fd, name);
    try {
      // Owner and mode are applied once, to a directory made now: data that exists is never changed.
      if (made) {
        if (uid !== undefined && uid !== '-') await child.chown(Number(uid), gid !== undefined && gid !== '-' ? Number(gid) : -1);
        else if (gid !== undefined && gid !== '-') await child.chown(-1, Number(gid));
        // Without a mode the umask decides, as for any directory made by root.
        if (mode !== undefined && mode !== '-') await child.chmod(Number.parseInt(mode, 8));
      }
      const stat = await child.stat();
      return { made, uid: stat.uid, gid: stat.gid, mode: (stat.mode & 0o7777).toString(8) };
    } finally {
      await child.close();
    }
  } finally {
    await parentHandle.close();
  }
}

async function remove(args: string[]): Promise<object> {
  const [parent, rawName] = args;
  const name = checkSegment(rawName, 'directory');
  const parentHandle = await openParent(parent);
  try {
    const exists = await lstat(`/proc/self/fd/${parentHandle.fd}/${name}`).then(() => true, () => false);
    if (!exists) return { removed: false };
    (await openChild(parentHandle.fd, name)).close().catch(() => undefined);
    // rm never follows links inside the tree: a link is unlinked, not its target.
    await rm(`/proc/self/fd/${parentHandle.fd}/${name}`, { recursive: true, force: true });
    return { removed: true };
  } finally {
    await parentHandle.close();
  }
}

async function renameDirectory(args: string[]): Promise<object> {
  const [parent, rawName, rawNewName] = args;
  const name = checkSegment(rawName, 'directory');
  const newName = checkSegment(rawNewName, 'new name');
  const parentHandle = await openParent(parent);
  try {
    const base = `/proc/self/fd/${parentHandle.fd}`;
    const exists = await lstat(`${base}/${name}`).then(() => true, () => false);
    if (!exists) return { renamed: false };
    (await openChild(parentHandle.fd, name)).close().catch(() => undefined);
    if (await lstat(`${base}/${newName}`).then(() => true, () => false)) {
      throw new Refused(`'${newName}' already exists on the share; nothing was renamed`);
    }
    await rename(`${base}/${name}`, `${base}/${newName}`);
    return { renamed: true };
  } finally {
    await parentHandle.close();
  }
}

const commands: Record<string, (args: string[]) => Promise<object>> = { make, remove, rename: renameDirectory };

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  const run = command !== undefined ? commands[command] : undefined;
  if (!run) {
    process.stderr.write(`usage: share-directory-helper make|remove|rename PARENT NAME ...\n`);
    process.exitCode = 1;
    return;
  }
  try {
    process.stdout.write(`${JSON.stringify(await run(args))}\n`);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exitCode = error instanceof Refused ? 3 : 1;
  }
}

await main();
