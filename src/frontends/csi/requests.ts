import { NotFoundError, ValidationError } from '../../errors.js';
import type { Credentials } from '../../protocols/mount-plan.js';
import type { Protocol } from '../../protocols/protocol.js';
import {
  ACCESS_MODES,
  type CreateVolumeRequest,
  type DeleteVolumeRequest,
  type NodePublishVolumeRequest,
  type NodeUnpublishVolumeRequest,
  type ValidateVolumeCapabilitiesRequest,
  type VolumeCapability,
} from './csi-messages.js';
import {
  CSI_MAX_ID_BYTES,
  decodeVolumeId,
  encodeVolumeId,
  normalisedParameters,
  parseSecrets,
  parseVolumeParameters,
  volumeContext,
  type CsiVolumeSpec,
  type SpecDefaults,
} from './volume-spec.js';

/**
 * One pure check per RPC: every field a request must have, every value netvol cannot serve,
 * refused up front with a message naming the field. The adapter calls these before touching
 * anything, as the HTTP edge does with its zod schemas.
 */

export interface CreateVolumeCommand {
  readonly name: string;
  readonly spec: CsiVolumeSpec;
  readonly volumeId: string;
  readonly context: Record<string, string>;
  /** What makes a repeat with the same name the same volume. */
  readonly parameters: Record<string, string>;
  readonly credentials: Credentials | undefined;
}

export function checkCreateVolume(request: CreateVolumeRequest, defaults: SpecDefaults = {}): CreateVolumeCommand {
  const name = request.name ?? '';
  if (name === '') throw new ValidationError('name is required: the orchestrator names the volume');
  if (Buffer.byteLength(name) > CSI_MAX_ID_BYTES) throw new ValidationError(`name is ${Buffer.byteLength(name)} bytes long; CSI allows ${CSI_MAX_ID_BYTES}`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/.test(name)) throw new ValidationError(`name ${JSON.stringify(name)} contains a control character, which CSI does not allow`);
  const capabilities = request.volume_capabilities ?? [];
  if (capabilities.length === 0) throw new ValidationError('volume_capabilities is required: give at least one (access type mount and an access mode)');
  if (request.volume_content_source) {
    throw new ValidationError('volume_content_source is not supported: netvol cannot fill a volume from a snapshot or another volume; create it empty');
  }
  const spec = parseVolumeParameters(name, request.parameters ?? {}, defaults);
  capabilities.forEach((capability, index) => {
    const problem = capabilityProblem(capability, `volume_capabilities[${index}]`, spec.protocol);
    if (problem) throw new ValidationError(problem.message);
  });
  const credentials = parseSecrets(spec.protocol, request.secrets ?? {});
  return { name, spec, volumeId: encodeVolumeId(spec), context: volumeContext(spec), parameters: normalisedParameters(spec), credentials };
}

export interface DeleteVolumeCommand {
  readonly volumeId: string;
  /** Undefined for an id netvol never made: there is nothing of it to delete. */
  readonly spec: CsiVolumeSpec | undefined;
  readonly problem?: string;
  readonly credentials: Credentials | undefined;
}

export function checkDeleteVolume(request: DeleteVolumeRequest): DeleteVolumeCommand {
  const volumeId = requireString(request.volume_id, 'volume_id');
  let spec: CsiVolumeSpec;
  try {
    spec = specFromVolumeId(volumeId);
  } catch (error) {
    // The spec: a volume that does not exist is deleted already.
    return { volumeId, spec: undefined, problem: (error as Error).message, credentials: undefined };
  }
  return { volumeId, spec, credentials: parseSecrets(spec.protocol, request.secrets ?? {}) };
}

export interface ValidateCommand {
  readonly volumeId: string;
  readonly spec: CsiVolumeSpec;
  /** Why the capabilities cannot all be served; undefined when they can. */
  readonly unsupported: string | undefined;
  /** The request's volume_context, when it is this volume's. */
  readonly context: Record<string, string> | undefined;
}

export function checkValidateVolumeCapabilities(request: ValidateVolumeCapabilitiesRequest): ValidateCommand {
  const volumeId = requireString(request.volume_id, 'volume_id');
  const capabilities = request.volume_capabilities ?? [];
  if (capabilities.length === 0) throw new ValidationError('volume_capabilities is required: give at least one (access type mount and an access mode)');
  let spec: CsiVolumeSpec;
  try {
    spec = specFromVolumeId(volumeId);
  } catch (error) {
    throw new NotFoundError(`no such volume: ${(error as Error).message}`);
  }
  let unsupported: string | undefined;
  capabilities.forEach((capability, index) => {
    const problem = capabilityProblem(capability, `volume_capabilities[${index}]`, spec.protocol);
    if (problem?.kind === 'invalid') throw new ValidationError(problem.message);
    unsupported ??= problem?.message;
  });
  const given = request.volume_context ?? {};
  let context: Record<string, string> | undefined;
  try {
    if (describedId(parseVolumeParameters('', { ...decodeVolumeId(volumeId), ...given })) === volumeId) context = { ...given };
  } catch {
    context = undefined;
  }
  return { volumeId, spec, unsupported, context };
}

export interface PublishCommand {
  readonly volumeId: string;
  readonly spec: CsiVolumeSpec;
  readonly targetPath: string;
  readonly readonly: boolean;
  readonly credentials: Credentials | undefined;
}

/**
 * The volume_context CreateVolume returned is what the node mounts by; without one (a
 * pre-provisioned volume) the volume_id says enough. Either way it must describe the
 * volume_id's volume: a context of another volume would mount the wrong directory.
 */
export function checkNodePublish(request: NodePublishVolumeRequest): PublishCommand {
  const volumeId = requireString(request.volume_id, 'volume_id');
  const targetPath = checkTargetPath(request.target_path);
  const capability = request.volume_capability;
  if (!capability) throw new ValidationError('volume_capability is required (access type mount and an access mode)');
  const fromId = decodeVolumeId(volumeId);
  const context = Object.fromEntries(Object.entries(request.volume_context ?? {}).filter(([key]) => !key.includes('/')));
  let spec: CsiVolumeSpec;
  if (Object.keys(context).length === 0) {
    spec = parseVolumeParameters('', fromId);
  } else {
    // A pre-provisioned volume's context may hold only some keys: the id fills in the rest.
    spec = parseVolumeParameters('', { ...fromId, ...context });
    const described = describedId(spec);
    if (described !== volumeId) {
      throw new ValidationError(
        `volume_context describes another volume than volume_id '${volumeId}'${described ? ` (it describes '${described}')` : ''}; pass the volume_context CreateVolume returned with this volume_id`,
      );
    }
  }
  const problem = capabilityProblem(capability, 'volume_capability', spec.protocol);
  if (problem) throw new ValidationError(problem.message);
  const mode = capability.access_mode?.mode;
  const readerOnly = mode === 'SINGLE_NODE_READER_ONLY' || mode === 'MULTI_NODE_READER_ONLY';
  return { volumeId, spec, targetPath, readonly: request.readonly === true || readerOnly, credentials: parseSecrets(spec.protocol, request.secrets ?? {}) };
}

export interface UnpublishCommand {
  readonly volumeId: string;
  readonly targetPath: string;
}

export function checkNodeUnpublish(request: NodeUnpublishVolumeRequest): UnpublishCommand {
  return { volumeId: requireString(request.volume_id, 'volume_id'), targetPath: checkTargetPath(request.target_path) };
}

function describedId(spec: CsiVolumeSpec): string | undefined {
  try {
    return encodeVolumeId(spec);
  } catch {
    return undefined;
  }
}

export function specFromVolumeId(volumeId: string): CsiVolumeSpec {
  return parseVolumeParameters('', decodeVolumeId(volumeId));
}

function requireString(value: string | undefined, field: string): string {
  if (value === undefined || value === '') throw new ValidationError(`${field} is required`);
  return value;
}

function checkTargetPath(value: string | undefined): string {
  const path = requireString(value, 'target_path');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) throw new ValidationError(`target_path ${JSON.stringify(path)} contains a control character`);
  if (!path.startsWith('/')) throw new ValidationError(`target_path '${path}' is not an absolute path`);
  const segments = path.split('/');
  if (segments.some((segment) => segment === '..' || segment === '.')) throw new ValidationError(`target_path '${path}' has a '.' or '..' segment; give the path itself`);
  // One spelling per path: the target is the mount ID and is compared with the mount table.
  const normal = `/${segments.filter((segment) => segment !== '').join('/')}`;
  if (normal === '/') throw new ValidationError("target_path '/' cannot be a volume's target");
  return normal;
}

const FS_TYPES: Record<Protocol, readonly string[]> = { nfs: ['nfs', 'nfs4'], cifs: ['cifs', 'smb3'], efs: ['nfs4', 'nfs'] };
const OPTIONS_PARAMETER: Record<Protocol, string> = {
  nfs: "put mount options in the volume's nfsopts parameter",
  cifs: "put mount options in the volume's cifsopts parameter",
  efs: "EFS volumes are mounted with AWS's recommended options",
};

export interface CapabilityProblem {
  /** invalid: the request is malformed; unsupported: well formed, but netvol cannot serve it. */
  readonly kind: 'invalid' | 'unsupported';
  readonly message: string;
}

/** netvol serves every access mode (a share has no single-attach limit) on mounted directories only. */
export function capabilityProblem(capability: VolumeCapability, field: string, protocol: Protocol): CapabilityProblem | undefined {
  if (capability.access_type === 'block' || capability.block) {
    return { kind: 'unsupported', message: `${field}: block access is not supported: netvol serves shares as mounted directories; create the volume with --type mount` };
  }
  if (!capability.mount) return { kind: 'invalid', message: `${field} needs an access type: mount (block is not supported)` };
  const mode = capability.access_mode?.mode;
  if (!capability.access_mode || mode === undefined) return { kind: 'invalid', message: `${field}.access_mode is required` };
  if (mode === 'UNKNOWN' || mode === 0) {
    return { kind: 'invalid', message: `${field}.access_mode.mode is UNKNOWN: with --scope multi, also pass --sharing all, onewriter or readonly` };
  }
  if (typeof mode === 'number' || !(ACCESS_MODES as readonly string[]).includes(mode)) {
    return { kind: 'unsupported', message: `${field}.access_mode.mode ${String(mode)} is not an access mode netvol knows` };
  }
  const fsType = capability.mount.fs_type ?? '';
  if (fsType !== '' && !FS_TYPES[protocol].includes(fsType)) {
    return { kind: 'unsupported', message: `${field}.mount.fs_type is '${fsType}': ${protocol} volumes are ${FS_TYPES[protocol].join(' or ')}; leave fs_type empty` };
  }
  if ((capability.mount.mount_flags ?? []).length > 0) {
    return { kind: 'unsupported', message: `${field}.mount.mount_flags are not supported: ${OPTIONS_PARAMETER[protocol]}` };
  }
  return undefined;
}

