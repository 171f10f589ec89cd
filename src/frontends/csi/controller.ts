import type { Logger } from 'pino';
import { status } from '@grpc/grpc-js';
import { ConflictError } from '../../errors.js';
import { KeyedMutex } from '../../core/keyed-mutex.js';
import type { ShareProvisioner } from '../../core/share-provisioner.js';
import type { Credentials } from '../../protocols/mount-plan.js';
import { sameOptions } from '../../core/volume-driver.js';
import { CsiStatusError } from './error-status.js';
import type { CreateVolumeRequest, DeleteVolumeRequest, ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse, Volume } from './csi-messages.js';
import { shareMountPlan } from './protocol-dispatch.js';
import { checkCreateVolume, checkDeleteVolume, checkValidateVolumeCapabilities } from './requests.js';
import { createAction, deleteAction, effectiveVolume, type CsiVolumeSpec, type ShareAction, type SpecDefaults } from './volume-spec.js';
import type { VolumeLedger } from './volume-ledger.js';

export interface ControllerDeps {
  readonly provisioner: ShareProvisioner;
  readonly ledger: VolumeLedger;
  readonly clock: () => Date;
  readonly logger: Logger;
  readonly defaults?: SpecDefaults;
}

/**
 * The CSI Controller service: CreateVolume makes the volume's directory on its share,
 * DeleteVolume retains, deletes or archives it. Both mount the share only for the length of
 * one helper run (ShareProvisioner) and never on a path handed to anyone. Calls for one
 * volume run one after another; calls for others do not wait for them.
 */
export class CsiController {
  private readonly locks = new KeyedMutex();

  constructor(private readonly deps: ControllerDeps) {}

  capabilities() {
    // No PUBLISH_UNPUBLISH_VOLUME: a share needs no attach step, and swarmkit then counts
    // the volume as published with an empty publish_context. No LIST_VOLUMES: see listVolumes.
    return { capabilities: [{ rpc: { type: 'CREATE_DELETE_VOLUME' } }] };
  }

  async createVolume(request: CreateVolumeRequest): Promise<{ volume: Volume }> {
    const command = checkCreateVolume(request, this.deps.defaults);
    const { name, spec, parameters } = command;
    return this.locks.run(`name:${name}`, async () => {
      const earlier = this.deps.ledger.get(name);
      if (earlier && !sameOptions(earlier.parameters as Record<string, string>, parameters)) {
        throw new ConflictError(
          `volume '${name}' was created earlier with other parameters (${differences(earlier.parameters, parameters)}); remove it first (docker volume rm ${name}) or use another name. ` +
            `If no volume of that name exists any more (removed through another manager, or with docker volume rm -f, which skips the plugin), delete its entry from ${this.deps.ledger.path} on this manager`,
        );
      }
      if (earlier) {
        // The same answer as the first time, at once: the ledger entry is written only after
        // the directory was made, and swarmkit repeats CreateVolume on every retry, each
        // within its 15 s deadline, which a second mount of a slow share would overrun.
        this.deps.logger.info({ volume: name, volumeId: earlier.volumeId, outcome: 'repeat' }, 'Volume created (a repeat)');
        return { volume: { capacity_bytes: 0, volume_id: earlier.volumeId, volume_context: { ...earlier.context } } };
      }
      const action = createAction(spec);
      const { made, outcome } = await this.locks.run(directoryKey(spec), () => this.apply(action, spec, command.credentials));
      const effective = effectiveVolume(spec, made);
      if (effective.spec.onDelete !== spec.onDelete) {
        this.deps.logger.warn(
          { volume: name, subdir: spec.subdir, share: spec.share, asked: spec.onDelete },
          `onDelete=${spec.onDelete} was asked, but ${spec.subdir} existed on the share before: netvol deletes or archives only directories it made, so this one is retained`,
        );
      }
      await this.deps.ledger.put(name, { volumeId: effective.volumeId, context: effective.context, parameters, createdAt: this.deps.clock().toISOString() });
      this.deps.logger.info({ volume: name, volumeId: effective.volumeId, outcome }, 'Volume created');
      return { volume: { capacity_bytes: 0, volume_id: effective.volumeId, volume_context: effective.context } };
    });
  }

  async deleteVolume(request: DeleteVolumeRequest): Promise<Record<string, never>> {
    const command = checkDeleteVolume(request);
    const { volumeId, spec } = command;
    if (!spec) {
      this.deps.logger.warn({ volumeId, reason: command.problem }, 'DeleteVolume of a volume_id netvol did not make: nothing to delete');
      return {};
    }
    const { outcome } = await this.locks.run(directoryKey(spec), () => this.apply(deleteAction(spec, this.deps.clock()), spec, command.credentials));
    const names = await this.deps.ledger.forgetVolume(volumeId);
    this.deps.logger.info({ volumeId, volumes: names, onDelete: spec.onDelete, outcome }, 'Volume deleted');
    return {};
  }

  async validateVolumeCapabilities(request: ValidateVolumeCapabilitiesRequest): Promise<ValidateVolumeCapabilitiesResponse> {
    const command = checkValidateVolumeCapabilities(request);
    if (command.unsupported !== undefined) return { message: command.unsupported };
    return {
      confirmed: { volume_context: command.context ?? {}, volume_capabilities: request.volume_capabilities ?? [], parameters: {} },
      message: '',
    };
  }

  async listVolumes(): Promise<never> {
    throw new CsiStatusError(
      status.UNIMPLEMENTED,
      'ListVolumes is not implemented: netvol keeps no list of volumes (each volume_id describes its own volume, and any manager may have created it); the orchestrator has the list',
    );
  }

  /** Runs one share action; resolves to what it did. Idempotent: a repeat finds the work done. */
  private async apply(action: ShareAction, spec: CsiVolumeSpec, credentials: Credentials | undefined): Promise<{ made?: boolean; outcome: string }> {
    const { provisioner } = this.deps;
    switch (action.kind) {
      case 'none':
        return { outcome: `share untouched: ${action.reason}` };
      case 'make': {
        const { made } = await provisioner.makeDirectory(await shareMountPlan(spec, credentials), action.subdir, action.owner);
        return { made, outcome: made ? `made ${action.subdir} on ${spec.share}` : `${action.subdir} exists on ${spec.share}` };
      }
      case 'remove': {
        const { removed } = await provisioner.removeDirectory(await shareMountPlan(spec, credentials), action.subdir);
        return { outcome: removed ? `deleted ${action.subdir} on ${spec.share}` : `${action.subdir} was already gone from ${spec.share}` };
      }
      case 'rename': {
        const { renamed } = await provisioner.renameDirectory(await shareMountPlan(spec, credentials), action.subdir, action.to);
        return { outcome: renamed ? `renamed ${action.subdir} to ${action.to} on ${spec.share}` : `${action.subdir} was already gone from ${spec.share}` };
      }
    }
  }
}

/** Calls that touch one directory on one share run one after another. */
function directoryKey(spec: CsiVolumeSpec): string {
  return JSON.stringify([spec.protocol, spec.share, spec.subdir]);
}

function differences(before: Readonly<Record<string, string>>, now: Readonly<Record<string, string>>): string {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(now)])].filter((key) => before[key] !== now[key]).sort();
  const show = (value: string | undefined) => (value === undefined ? 'unset' : `'${value}'`);
  return keys.map((key) => `${key} ${show(before[key])} then, ${show(now[key])} now`).join('; ');
}
