import { z } from 'zod';
import { PROTOCOLS } from '../protocols/protocol.js';
import { ON_DELETE } from '../protocols/provisioning.js';

export const STATE_VERSION = 1;

export const volumeRecord = z.object({
  name: z.string(),
  protocol: z.enum(PROTOCOLS),
  /** The options as given to Create (validated); secrets included, hence the 0600 file. */
  options: z.record(z.string()),
  share: z.string(),
  subdirectory: z.string().optional(),
  createdAt: z.string(),
  /** One entry per outstanding Mount; an ID mounted twice (docker cp) appears twice. */
  mountIds: z.array(z.string()),
  mountedAt: z.string().optional(),
  /**
   * Per mount ID, the dockerd activation count when it was last mounted. A Mount of an ID
   * from an earlier activation is a container restarted after a dockerd crash re-using its
   * ID, not a nested mount: it must not count twice.
   */
  mountEpochs: z.record(z.number()).optional(),
  /** Time of the latest Mount: a stale-reference release never touches a volume mounted just now. */
  lastMountAt: z.string().optional(),
  lastError: z.string().optional(),
  /** The daemon's --share when the volume was created without a share of its own. */
  defaultShare: z.string().optional(),
  /** What Remove does to the subdirectory netvol made (fixed at Create). */
  onDelete: z.enum(ON_DELETE).optional(),
  /** netvol made the subdirectory itself (it existed before otherwise): only then may Remove delete it. */
  directoryMade: z.boolean().optional(),
});
export type VolumeRecord = z.infer<typeof volumeRecord>;

export const stateFile = z.object({
  version: z.literal(STATE_VERSION),
  /** Kernel boot id when last saved: a different one means every mount ID is stale. */
  bootId: z.string(),
  volumes: z.record(volumeRecord),
  /** How many times dockerd has called Plugin.Activate: once per dockerd start. */
  activations: z.number().int().nonnegative().default(0),
});
export type StateFile = z.infer<typeof stateFile>;

/**
 * The volumes by name, in an object without a prototype: volume names are user data, and
 * "constructor" or "toString" must not find Object.prototype's members.
 */
export function volumeTable(entries: StateFile['volumes'] = {}): StateFile['volumes'] {
  return Object.assign(Object.create(null) as StateFile['volumes'], entries);
}

export function emptyState(bootId: string): StateFile {
  return { version: STATE_VERSION, bootId, volumes: volumeTable(), activations: 0 };
}
