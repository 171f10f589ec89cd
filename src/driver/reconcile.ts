import { volumeTable, type StateFile } from '../state/state-schema.js';
import type { MountInfoEntry } from '../system/mountinfo.js';
import { findMount, mountsBelow } from '../system/mount-table.js';
import { mountpointFor } from './volume-name.js';

export interface ReconcileResult {
  readonly state: StateFile;
  /** Kernel mounts under root that no volume holds: to be unmounted. */
  readonly orphans: string[];
  /** One line per change, for the log. */
  readonly notes: Array<{ volume?: string; note: string }>;
}

/**
 * Start-up reconciliation; pure. The mount table wins over the file:
 * - new boot id: the kernel mounts are gone, so every mount ID is stale and dropped;
 * - same boot (daemon-only restart): mounts still present are adopted with their IDs;
 *   a volume with IDs but no mount lost it behind our back: its IDs are dropped;
 * - a mount under root that no volume with IDs holds (a crash between mount and save, or a
 *   leftover) is an orphan; dockerd saw that Mount fail, so nobody uses it.
 */
export function reconcile(state: StateFile, bootId: string, entries: readonly MountInfoEntry[], root: string): ReconcileResult {
  const notes: ReconcileResult['notes'] = [];
  const rebooted = state.bootId !== bootId;
  const held = new Set<string>();
  const volumes = volumeTable();
  for (const [name, record] of Object.entries(state.volumes)) {
    const mountpoint = mountpointFor(root, name);
    const mounted = findMount(entries, mountpoint) !== undefined;
    let mountIds = record.mountIds;
    if (mountIds.length > 0 && rebooted) {
      notes.push({ volume: name, note: `dropped ${mountIds.length} mount ID(s) from before the reboot` });
      mountIds = [];
    } else if (mountIds.length > 0 && !mounted) {
      notes.push({ volume: name, note: `dropped ${mountIds.length} mount ID(s): ${mountpoint} is no longer mounted` });
      mountIds = [];
    } else if (mountIds.length > 0) {
      notes.push({ volume: name, note: `adopted the existing mount with ${mountIds.length} mount ID(s)` });
    }
    if (mountIds.length > 0) held.add(mountpoint);
    const { mountedAt, mountEpochs, ...rest } = record;
    volumes[name] = {
      ...rest,
      mountIds,
      ...(mountIds.length > 0 && mountedAt ? { mountedAt } : {}),
      ...(mountIds.length > 0 && mountEpochs ? { mountEpochs } : {}),
    };
  }
  const heldDirs = [...held];
  const orphans = mountsBelow(entries, root)
    .map((entry) => entry.mountPoint)
    // Mounts inside a held volume (NFSv4 submounts of crossing exports) belong to it.
    .filter((mountPoint) => !held.has(mountPoint) && !heldDirs.some((dir) => mountPoint.startsWith(`${dir}/`)))
    // Deepest first, so nested leftovers come off before their parents.
    .sort((a, b) => b.length - a.length);
  // One entry per kernel mount: stacked mounts at one path each need their own umount.
  for (const orphan of new Set(orphans)) notes.push({ note: `${orphan} is mounted but no volume holds it: unmounting` });
  return { state: { ...state, bootId, volumes }, orphans, notes };
}
