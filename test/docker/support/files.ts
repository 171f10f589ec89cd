import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { execa } from 'execa';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh private directory under the system temp dir (short: unix socket paths live in it). */
export function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `${prefix}-`));
}

/** Mount points at or below `dir`, read from this process's mount table. */
export function mountsUnder(dir: string): string[] {
  const table = readFileSync('/proc/self/mountinfo', 'utf8');
  return table
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((target): target is string => target !== undefined)
    .map((target) => target.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((target) => target === dir || target.startsWith(`${dir}/`));
}

/**
 * Deletes a temp dir unless something is still mounted inside it (a container rootfs left by
 * a dockerd that did not stop cleanly): a recursive delete would then reach into the mount.
 */
export async function removeTempDir(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const mounts = mountsUnder(dir);
  if (mounts.length > 0) {
    console.warn(`[docker tier] keeping ${dir}: still mounted inside it: ${mounts.join(', ')}`);
    return;
  }
  await rm(dir, { recursive: true, force: true });
}

/** Lazily detaches mounts this tier made (deepest first); tests assert on mounts before this runs. */
export async function unmountAll(targets: string[]): Promise<void> {
  for (const target of [...targets].sort((a, b) => b.length - a.length)) {
    console.warn(`[docker tier] detaching leftover mount ${target}`);
    await execa('umount', ['-l', '--', target], { reject: false });
  }
}

/** The last `lines` lines of a log file, for failure messages. */
export async function tail(path: string, lines = 40): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch (error) {
    return `(cannot read ${path}: ${(error as Error).message})`;
  }
}
