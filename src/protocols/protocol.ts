import type { MountPlan } from './mount-plan.js';

export const PROTOCOLS = ['nfs', 'cifs', 'efs'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** A volume as the protocols see it: its name and the raw options it was created with. */
export interface VolumeSpec {
  readonly name: string;
  readonly options: Readonly<Record<string, string>>;
}

/** What Create learns from validating a volume: enough to show and to mount it later. */
export interface CheckedVolume {
  /** The share in a canonical display form (host:/path, //host/share, fs-id:/path). */
  readonly share: string;
  /** create=true: the subdirectory made on the server and handed to containers. */
  readonly subdirectory?: string | undefined;
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
