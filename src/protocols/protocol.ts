import type { MountPlan } from './mount-plan.js';
import type { Provisioning } from './provisioning.js';

export const PROTOCOLS = ['nfs', 'cifs', 'efs'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** A volume as the protocols see it: its name and the raw options it was created with. */
export interface VolumeSpec {
  readonly name: string;
  readonly options: Readonly<Record<string, string>>;
  /**
   * The daemon's --share when the volume was created: a volume without a share of its own is
   * the directory named after it under this one. Kept with the volume, so a later change of
   * the flag never moves an existing volume.
   */
  readonly defaultShare?: string | undefined;
}

/** What Create learns from validating a volume: enough to show and to mount it later. */
export interface CheckedVolume {
  /** The share in a canonical display form (host:/path, //host/share, fs-id:/path). */
  readonly share: string;
  /** create=true, share#sub or a default share: the subdirectory made on the server and mounted. */
  readonly subdirectory?: string | undefined;
  /** The volume's protocol, when one handler serves several (the CSI node's); else the handler's. */
  readonly protocol?: Protocol | undefined;
  /** Owner and mode of that subdirectory when netvol makes it, and what Remove does to it. */
  readonly provisioning?: Provisioning | undefined;
}

/** One per protocol: validates options up front and plans mounts. */
export interface ProtocolHandler {
  readonly protocol: Protocol;
  readonly optionKeys: readonly string[];
  /** Option keys whose values never leave the daemon (logs, Status, errors). */
  readonly secretKeys: readonly string[];
  /** Throws ValidationError; pure. */
  check(volume: VolumeSpec): CheckedVolume;
  /** May read files (.netrc) or resolve names; never mounts. */
  plan(volume: VolumeSpec): Promise<MountPlan>;
}
