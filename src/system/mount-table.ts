import { readFile } from 'node:fs/promises';
import { parseMountInfo, type MountInfoEntry } from './mountinfo.js';

/** What the kernel says is mounted. The only source of truth for "is it mounted?". */
export interface MountTable {
  list(): Promise<MountInfoEntry[]>;
}

export class ProcMountTable implements MountTable {
  constructor(private readonly path = '/proc/self/mountinfo') {}

  async list(): Promise<MountInfoEntry[]> {
    return parseMountInfo(await readFile(this.path, 'utf8'));
  }
}

/** The entry mounted last at exactly `target` (the visible one), if any. */
export function findMount(entries: readonly MountInfoEntry[], target: string): MountInfoEntry | undefined {
  let found: MountInfoEntry | undefined;
  for (const entry of entries) if (entry.mountPoint === target) found = entry;
  return found;
}

/** Mounts strictly below `dir` (not `dir` itself). */
export function mountsBelow(entries: readonly MountInfoEntry[], dir: string): MountInfoEntry[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return entries.filter((entry) => entry.mountPoint.startsWith(prefix));
}
