import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { booleanString, parseVolumeOptions } from './options.js';
import type { MountPlan } from './mount-plan.js';
import { checkHost, normaliseRemotePath, splitHostPath } from './share.js';
import { shareSource } from './ad-hoc-name.js';
import type { ProtocolHandler, VolumeSpec } from './protocol.js';
import { checkProvisioningNeedsDirectory, provisioningField, provisioningOf, provisioningOptions } from './provisioning.js';

export const efsVolumeOptions = z.object({
  share: z.string().optional(),
  create: booleanString.optional(),
  ...provisioningOptions,
});

/** AWS's recommended NFS client options for EFS. */
export const EFS_MOUNT_OPTIONS = ['nfsvers=4.1', 'rsize=1048576', 'wsize=1048576', 'hard', 'timeo=600', 'retrans=2', 'noresvport'];

const FILE_SYSTEM_ID = /^fs-[0-9a-f]{8,40}$/;

export interface EfsDaemonOptions {
  readonly region?: string | undefined;
  /** The share names the server (an IP or a host name) instead of a file system id. */
  readonly noResolve: boolean;
}

export interface EfsShare {
  readonly target: string;
  readonly path: string;
}

/**
 * `fs-12345678`, `fs-12345678/sub/dir` or `fs-12345678:/sub/dir`; with --noresolve the server
 * instead, `[fd00::1]:/sub` included.
 */
export function parseEfsShare(share: string, daemon: EfsDaemonOptions): EfsShare {
  if (daemon.noResolve) {
    const { host, path } = splitHostPath(share);
    return { target: checkHost(host, share), path: normaliseRemotePath(path ?? '/', share) };
  }
  const trimmed = share.trim();
  const cut = trimmed.search(/[:/]/);
  const head = cut < 0 ? trimmed : trimmed.slice(0, cut);
  const path = normaliseRemotePath(cut < 0 ? '/' : trimmed.slice(cut + 1), share);
  if (!FILE_SYSTEM_ID.test(head)) {
    throw new ValidationError(
      `share '${share}' is not an EFS file system id like fs-12345678 (start the daemon with --noresolve to give a server address instead)`,
    );
  }
  return { target: head, path };
}

export function efsMountPlan(share: EfsShare, daemon: EfsDaemonOptions): MountPlan {
  const server = daemon.noResolve ? share.target : `${share.target}.efs.${daemon.region}.amazonaws.com`;
  return { fsType: 'nfs4', source: `${server}:${share.path}`, options: EFS_MOUNT_OPTIONS, server };
}

export function efsProtocol(daemon: EfsDaemonOptions): ProtocolHandler {
  const check = (volume: VolumeSpec) => {
    const options = parseVolumeOptions(efsVolumeOptions, volume.options, 'efs');
    const source = shareSource(volume.name, volume.options, (name) => FILE_SYSTEM_ID.test(name) || daemon.noResolve, volume.defaultShare);
    const share = parseEfsShare(source.share, daemon);
    const provisioning = provisioningOf(options);
    checkProvisioningNeedsDirectory(provisioning, source.subdirectory);
    return { share, checked: { share: `${share.target}:${share.path}`, subdirectory: source.subdirectory, ...provisioningField(provisioning) } };
  };
  return {
    protocol: 'efs',
    optionKeys: Object.keys(efsVolumeOptions.shape),
    secretKeys: [],
    check: (volume) => check(volume).checked,
    plan: async (volume) => efsMountPlan(check(volume).share, daemon),
  };
}
