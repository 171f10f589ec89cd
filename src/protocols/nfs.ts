import { z } from 'zod';
import { booleanString, DAEMON_OPTIONS, mountOptionsString, parseVolumeOptions, refuseOptions, type RefusedOptions } from './options.js';
import { hasOption, joinOptions, type MountPlan } from './mount-plan.js';
import { parseHostPath, type HostPath } from './share.js';
import { shareSource } from './ad-hoc-name.js';
import type { CheckedVolume, ProtocolHandler, VolumeSpec } from './protocol.js';
import { checkProvisioningNeedsDirectory, provisioningField, provisioningOf, provisioningOptions } from './provisioning.js';
import { foldLocalDriverOptions } from './local-driver-options.js';

export const NFS_VERSIONS = ['3', '4', '4.0', '4.1', '4.2'] as const;
export type NfsVersion = (typeof NFS_VERSIONS)[number];

export const nfsVolumeOptions = z.object({
  share: z.string().optional(),
  create: booleanString.optional(),
  nfsopts: mountOptionsString('nfsopts').optional(),
  version: z.enum(NFS_VERSIONS, { message: `version must be one of ${NFS_VERSIONS.join(', ')}` }).optional(),
  ...provisioningOptions,
});
/** Docker's local driver's names for the same things: folded into the keys above. */
export const LOCAL_DRIVER_KEYS = ['type', 'o', 'device'] as const;
export type NfsVolumeOptions = z.infer<typeof nfsVolumeOptions>;

export interface NfsDaemonOptions {
  /** `-v`: 3 or 4 (netshare's default is 4). */
  readonly version: '3' | '4';
  /** `-o`: default mount options, replaced (not merged) by a volume's nfsopts. */
  readonly options?: string | undefined;
}

/** netshare's v3 options: boot2docker has no rpc.statd, hence nolock. */
export const NFS3_DEFAULT_OPTIONS = 'port=2049,nolock,proto=tcp';

// mount.nfs counts v2/v3/v4/v4.x as version options too, and refuses a second one
// ("multiple version options not permitted"), so netvol must not add its own beside them.
const VERSION_KEYS = ['vers', 'nfsvers', 'v2', 'v3', 'v4', 'v4.0', 'v4.1', 'v4.2'];

// bg/fg are netvol's to choose: only in the foreground does mount.nfs's exit status say
// whether the share is mounted.
const REFUSED: readonly RefusedOptions[] = [
  {
    keys: ['bg', 'fg'],
    reason:
      'netvol always mounts in the foreground (with bg, mount.nfs exits 0 before anything is mounted, so netvol would hand out an empty local directory); remove it',
  },
];

/** The daemon's -o, checked once at start so that no volume inherits options that cannot work. */
export function checkNfsDaemonOptions(daemon: NfsDaemonOptions): void {
  refuseOptions(joinOptions(daemon.options), REFUSED, DAEMON_OPTIONS);
}

export function nfsMountPlan(share: HostPath, volume: NfsVolumeOptions, daemon: NfsDaemonOptions): MountPlan {
  const version: NfsVersion = volume.version ?? daemon.version;
  const base = volume.nfsopts ?? daemon.options;
  refuseOptions(joinOptions(base), REFUSED, volume.nfsopts !== undefined ? 'nfsopts' : DAEMON_OPTIONS);
  const source = `${share.host}:${share.path}`;
  if (version === '3') {
    const options = joinOptions(base ?? NFS3_DEFAULT_OPTIONS);
    // Without nfsvers=3, mount.nfs negotiates v4 first: the bug that made netshare's `-v 3` a no-op.
    const versioned = hasOption(options, ...VERSION_KEYS) ? options : ['nfsvers=3', ...options];
    return { fsType: 'nfs', source, options: versioned, server: share.host };
  }
  const options = joinOptions(base);
  const versioned = version !== '4' && !hasOption(options, ...VERSION_KEYS) ? [`vers=${version}`, ...options] : options;
  return { fsType: 'nfs4', source, options: versioned, server: share.host };
}

export function nfsProtocol(daemon: NfsDaemonOptions): ProtocolHandler {
  const check = (volume: VolumeSpec): CheckedVolume & { hostPath: HostPath; options: NfsVolumeOptions } => {
    const raw = foldLocalDriverOptions('nfs', volume.options);
    const options = parseVolumeOptions(nfsVolumeOptions, raw, 'nfs', LOCAL_DRIVER_KEYS);
    const source = shareSource(volume.name, raw, undefined, volume.defaultShare);
    const hostPath = parseHostPath(source.share);
    // Validate the option mix now, so Create fails rather than the first Mount.
    nfsMountPlan(hostPath, options, daemon);
    const provisioning = provisioningOf(options);
    checkProvisioningNeedsDirectory(provisioning, source.subdirectory);
    return { share: `${hostPath.host}:${hostPath.path}`, subdirectory: source.subdirectory, ...provisioningField(provisioning), hostPath, options };
  };
  return {
    protocol: 'nfs',
    optionKeys: [...Object.keys(nfsVolumeOptions.shape), ...LOCAL_DRIVER_KEYS],
    secretKeys: [],
    check: (volume) => {
      const { share, subdirectory, provisioning } = check(volume);
      return { share, subdirectory, ...(provisioning ? { provisioning } : {}) };
    },
    plan: async (volume) => {
      const checked = check(volume);
      return nfsMountPlan(checked.hostPath, checked.options, daemon);
    },
  };
}
