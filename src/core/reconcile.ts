import { volumeTable, type StateFile } from '../state/state-schema.js';
import type { MountInfoEntry } from '../system/mountinfo.js';
import { findMount, mountsBelow } from '../system/mount-table.js';
import { mountpointFor } from './volume-name.js';

export interface ReconcileResult {
  readonly state: StateFile;
  /** Kernel mounts this daemon made and no volume holds any more: to be unmounted. */
  readonly orphans: string[];
  /** Mounts under root that are no volume's of this daemon: never touched, only reported. */
  readonly foreign: string[];
  /**
   * Volumes with a subdirectory whose adopted mount is of the share's root (netvol before
   * it mounted subdirectories directly): served as before until their last container goes.
   */
  readonly rootMountedSubdirectories: string[];
  /** One line per change, for the log. */
  readonly notes: Array<{ volume?: string; note: string }>;
}

/**
 * Start-up reconciliation; pure. The mount table wins over the file:
 * - new boot id: the kernel mounts are gone, so every mount ID is stale and dropped;
 * - same boot (daemon-only restart): mounts still present are adopted with their IDs;
 *   a volume with IDs but no mount lost it behind our back: its IDs are dropped;
 * - a mount at the mountpoint of a volume with no IDs (a crash between mount and save, or a
 *   share left in its unmount delay), or on a staging directory, is an orphan: this daemon
 *   made it and dockerd uses none of it. Anything else under root was not made by this
 *   daemon (the mount root is locked to one daemon) and is left alone.
 */
export function reconcile(
  state: StateFile,
  bootId: string,
  entries: readonly MountInfoEntry[],
  root: string,
  stagingDir?: string,
): ReconcileResult {
  const notes: ReconcileResult['notes'] = [];
  const rebooted = state.bootId !== bootId;
  const held = new Set<string>();
  const released = new Set<string>();
  const rootMountedSubdirectories: string[] = [];
  const volumes = volumeTable();
  for (const [name, record] of Object.entries(state.volumes)) {
    const mountpoint = mountpointFor(root, name);
    const entry = findMount(entries, mountpoint);
    let mountIds = record.mountIds;
    if (mountIds.length > 0 && rebooted) {
      notes.push({ volume: name, note: `dropped ${mountIds.length} mount ID(s) from before the reboot` });
      mountIds = [];
    } else if (mountIds.length > 0 && !entry) {
      notes.push({ volume: name, note: `dropped ${mountIds.length} mount ID(s): ${mountpoint} is no longer mounted` });
      mountIds = [];
    } else if (mountIds.length > 0) {
      notes.push({ volume: name, note: `adopted the existing mount with ${mountIds.length} mount ID(s)` });
      if (record.subdirectory !== undefined && entry && !entry.source.endsWith(`/${record.subdirectory}`)) {
        rootMountedSubdirectories.push(name);
      }
    }
    if (mountIds.length > 0) held.add(mountpoint);
    else released.add(mountpoint);
    const { mountedAt, mountEpochs, ...rest } = record;
    volumes[name] = {
      ...rest,
      mountIds,
      ...(mountIds.length > 0 && mountedAt ? { mountedAt } : {}),
      ...(mountIds.length > 0 && mountEpochs ? { mountEpochs } : {}),
    };
  }
  const orphans: string[] = [];
  const foreign: string[] = [];
  const inside = (mountPoint: string, dirs: Iterable<string>) => [...dirs].some((dir) => mountPoint.startsWith(`${dir}/`));
  for (const { mountPoint } of mountsBelow(entries, root)) {
    // Mounts inside a held volume (NFSv4 submounts of crossing exports) belong to it.
    if (held.has(mountPoint) || inside(mountPoint, held)) continue;
    if (released.has(mountPoint) || inside(mountPoint, released)) orphans.push(mountPoint);
    else foreign.push(mountPoint);
  }
  if (stagingDir !== undefined) orphans.push(...mountsBelow(entries, stagingDir).map((entry) => entry.mountPoint));
  // Deepest first, so nested leftovers come off before their parents.
  orphans.sort((a, b) => b.length - a.length);
  // One entry per kernel mount: stacked mounts at one path each need their own umount.
  for (const orphan of new Set(orphans)) notes.push({ note: `${orphan} is mounted but no volume holds it: unmounting` });
  for (const path of new Set(foreign)) notes.push({ note: `${path} is mounted under the mount root but is no volume of this driver: left alone` });
  return { state: { ...state, bootId, volumes }, orphans, foreign, rootMountedSubdirectories, notes };
}
