import type { Credentials, MountPlan } from '../../protocols/mount-plan.js';
import type { CheckedVolume, Protocol, ProtocolHandler, VolumeSpec } from '../../protocols/protocol.js';
import { handlerOptions, protocolHandler, specFromRecordOptions, type CsiVolumeSpec } from './volume-spec.js';

/** The mount of a volume's share (its root: the core adds the subdirectory), from the classic protocol handlers. */
export async function shareMountPlan(spec: CsiVolumeSpec, credentials?: Credentials): Promise<MountPlan> {
  return protocolHandler(spec.protocol, spec.mountOptions).plan({ name: 'volume', options: handlerOptions(spec, credentials) });
}

/**
 * The node's protocol handler for the core VolumeDriver: one driver serves volumes of every
 * protocol, so this dispatches on each record's `protocol` option to the nfs, cifs and efs
 * handlers. CIFS credentials arrive with every NodePublishVolume and live here, in memory
 * only: a record's options (and so the state file) never hold them, and the only mounts that
 * need them are the ones a NodePublishVolume makes.
 */
export class CsiProtocolHandler implements ProtocolHandler {
  readonly optionKeys = ['protocol', 'share', 'subdir', 'version', 'nfsopts', 'cifsopts', 'security', 'fileMode', 'dirMode', 'region'];
  readonly secretKeys = ['password'];
  private readonly credentials = new Map<string, Credentials>();
  /** Each record's own protocol comes with its check(); this one only names the handler. */
  readonly protocol: Protocol = 'nfs';

  /** Replaces (or, with undefined, drops) the credentials the next mount of `record` uses. */
  useCredentials(record: string, credentials: Credentials | undefined): void {
    if (credentials) this.credentials.set(record, credentials);
    else this.credentials.delete(record);
  }

  forget(record: string): void {
    this.credentials.delete(record);
  }

  /**
   * Never returns provisioning: a node record must keep onDelete=retain, or the core would
   * delete or archive the volume's directory when the last target on one node goes. Only
   * DeleteVolume, on the controller, decides that.
   */
  check(volume: VolumeSpec): CheckedVolume {
    const spec = specFromRecordOptions(volume.options);
    return { share: spec.share, subdirectory: spec.subdir === '' ? undefined : spec.subdir, protocol: spec.protocol };
  }

  async plan(volume: VolumeSpec): Promise<MountPlan> {
    return shareMountPlan(specFromRecordOptions(volume.options), this.credentials.get(volume.name));
  }
}
