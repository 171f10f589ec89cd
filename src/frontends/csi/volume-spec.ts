import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ValidationError } from '../../errors.js';
import type { Credentials } from '../../protocols/mount-plan.js';
import { cifsProtocol } from '../../protocols/cifs.js';
import { efsProtocol } from '../../protocols/efs.js';
import { nfsProtocol } from '../../protocols/nfs.js';
import { PROTOCOLS, type Protocol, type ProtocolHandler } from '../../protocols/protocol.js';
import { ON_DELETE, provisioningOf, provisioningOptions, type DirectoryOwnership, type OnDelete } from '../../protocols/provisioning.js';
import { archiveName } from '../../core/volume-driver.js';
import type { StringMap } from './csi-messages.js';

/**
 * A cluster volume as netvol's CSI front end sees it: which share, which directory on it,
 * what happens to that directory on DeleteVolume, and the mount options. Built from
 * CreateVolume's parameters (the `docker volume create --opt` map), from a volume_context,
 * or from a volume_id, always through parseVolumeParameters, so all three are checked alike.
 */
export interface CsiVolumeSpec {
  readonly protocol: Protocol;
  /** Canonical form from the protocol's own check (host:/path, //host/share, fs-id:/path). */
  readonly share: string;
  /** One path segment under the share; '' is the share itself. */
  readonly subdir: string;
  readonly onDelete: OnDelete;
  /** Owner and mode of a directory CreateVolume makes (controller only; never in the context). */
  readonly owner: DirectoryOwnership;
  /** The protocol's mount options, as given (version, nfsopts, cifsopts, security, ...). */
  readonly mountOptions: Readonly<Record<string, string>>;
}

/** CSI's limit for identifiers and names (and for each string in a map). */
export const CSI_MAX_ID_BYTES = 128;

export { ON_DELETE, type OnDelete };

const COMMON_KEYS = ['protocol', 'share', 'subdir', 'uid', 'gid', 'mode', 'onDelete'] as const;

/** Per protocol: the mount options a volume may set, the part of them DeleteVolume needs to mount the share. */
const PROTOCOL_KEYS: Record<Protocol, { readonly mount: readonly string[]; readonly inId: readonly string[] }> = {
  nfs: { mount: ['version', 'nfsopts'], inId: ['version', 'nfsopts'] },
  cifs: { mount: ['cifsopts', 'security', 'fileMode', 'dirMode'], inId: ['cifsopts', 'security'] },
  efs: { mount: ['region'], inId: ['region'] },
};

const REFUSED_KEYS: Record<string, string> = {
  username: 'pass CIFS credentials as secrets (docker volume create --secret username=<secret> --secret password=<secret>): parameters are shown by docker volume inspect',
  password: 'pass CIFS credentials as secrets (docker volume create --secret username=<secret> --secret password=<secret>): parameters are shown by docker volume inspect',
  domain: 'pass the CIFS domain as a secret (docker volume create --secret domain=<secret>), beside username and password',
  create: 'netvol csi always makes the directory named by subdir (default: the volume name) on the share; subdir= (empty) uses the share itself',
};

/** A directory name on the share: one segment, nothing hidden, nothing a shell or a mount option list could misread. */
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const MAX_SUBDIR_BYTES = 200;
const EFS_REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

export interface SpecDefaults {
  /** Region for EFS volumes that do not name one: the controller's AWS_REGION. */
  readonly efsRegion?: string | undefined;
}

/**
 * Checks a parameter map (CreateVolume parameters, a volume_context, a decoded volume_id) and
 * returns the volume it describes. Keys with a '/' are CO metadata
 * (csi.storage.k8s.io/pvc/name...) and are ignored. `name` is the volume's name, the default
 * subdir. Pure: throws ValidationError naming the parameter and what to do.
 */
export function parseVolumeParameters(name: string, raw: StringMap, defaults: SpecDefaults = {}): CsiVolumeSpec {
  const parameters = Object.fromEntries(Object.entries(raw).filter(([key]) => !key.includes('/')));
  const protocol = parameters['protocol'] ?? 'nfs';
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new ValidationError(`parameter 'protocol' is '${protocol}': use nfs, cifs or efs`);
  }
  const proto = protocol as Protocol;
  const known: readonly string[] = [...COMMON_KEYS, ...PROTOCOL_KEYS[proto].mount];
  for (const key of Object.keys(parameters)) {
    const refused = REFUSED_KEYS[key];
    if (refused !== undefined) throw new ValidationError(`parameter '${key}' is not accepted: ${refused}`);
  }
  const unknown = Object.keys(parameters).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw new ValidationError(
      `unknown parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((key) => `'${key}'`).join(', ')} for ${proto} volumes; accepted parameters: ${known.join(', ')}`,
    );
  }
  const share = parameters['share'];
  if (share === undefined || share.trim() === '') {
    throw new ValidationError(`parameter 'share' is required: docker volume create --opt share=${shareExample(proto)}`);
  }
  const subdir = checkSubdir(name, parameters['subdir']);
  // The classic driver's own checks of these keys, so both front ends accept the same values.
  const provisioning = provisioningOf({
    uid: provisioningParameter('uid', parameters['uid']),
    gid: provisioningParameter('gid', parameters['gid']),
    mode: provisioningParameter('mode', parameters['mode']),
    onDelete: provisioningParameter('onDelete', parameters['onDelete']),
  });
  const onDelete = provisioning.onDelete ?? 'retain';
  const owner = provisioning.owner;
  if (subdir === '') {
    if (onDelete !== 'retain') {
      throw new ValidationError(
        `parameter 'onDelete' is '${onDelete}' but subdir is empty: the volume is the share itself, which netvol never deletes or renames; give a subdir, or use onDelete=retain`,
      );
    }
    const set = (['uid', 'gid', 'mode'] as const).filter((key) => parameters[key] !== undefined);
    if (set.length > 0) {
      throw new ValidationError(`parameter '${set[0]}' applies to the directory netvol makes, but subdir is empty (the share itself): give a subdir, or leave out uid, gid and mode`);
    }
  }
  const mountOptions: Record<string, string> = {};
  for (const key of PROTOCOL_KEYS[proto].mount) {
    const value = parameters[key];
    if (value !== undefined) mountOptions[key] = value;
  }
  if (proto === 'efs') {
    const region = mountOptions['region'] ?? defaults.efsRegion;
    if (region === undefined || region === '') {
      throw new ValidationError("efs volumes need an AWS region: docker volume create --opt region=eu-west-1 (or start netvol csi with AWS_REGION set)");
    }
    if (!EFS_REGION.test(region)) throw new ValidationError(`parameter 'region' is '${region}': give an AWS region like eu-west-1`);
    mountOptions['region'] = region;
  }
  const checked = protocolHandler(proto, mountOptions).check({ name: name || 'volume', options: { share, ...classicOptions(proto, mountOptions) } });
  return { protocol: proto, share: checked.share, subdir, onDelete, owner, mountOptions };
}

function shareExample(protocol: Protocol): string {
  return { nfs: '<server>:/<path>', cifs: '//<server>/<share>', efs: 'fs-12345678:/<path>' }[protocol];
}

function checkSubdir(name: string, given: string | undefined): string {
  if (given === '') return '';
  const subdir = given ?? name;
  const problem =
    subdir === ''
      ? 'is empty'
      : !SEGMENT.test(subdir)
        ? "may only contain letters, digits, '_', '.' and '-', and may not start with '.' or '-' (it is one directory on the share)"
        : Buffer.byteLength(subdir) > MAX_SUBDIR_BYTES
          ? `is longer than ${MAX_SUBDIR_BYTES} bytes`
          : undefined;
  if (problem === undefined) return subdir;
  if (given === undefined) {
    throw new ValidationError(
      `the volume name '${name}' cannot be its directory on the share: a subdir ${problem}; pass --opt subdir=<directory>, or --opt subdir= for the share itself`,
    );
  }
  throw new ValidationError(`parameter 'subdir' is '${subdir}': it ${problem}; subdir= (empty) uses the share itself`);
}

function provisioningParameter<K extends keyof typeof provisioningOptions>(key: K, value: string | undefined): z.infer<(typeof provisioningOptions)[K]> {
  const parsed = provisioningOptions[key].safeParse(value);
  if (!parsed.success) throw new ValidationError(`invalid parameter '${key}': ${parsed.error.issues[0]?.message ?? 'invalid value'}`);
  return parsed.data as z.infer<(typeof provisioningOptions)[K]>;
}

/** The option names the classic protocol handlers know (region is the CSI front end's own). */
function classicOptions(protocol: Protocol, mountOptions: Readonly<Record<string, string>>): Record<string, string> {
  if (protocol !== 'efs') return { ...mountOptions };
  return {};
}

/** The classic handler for one volume; EFS takes its region per volume here, not per daemon. */
export function protocolHandler(protocol: Protocol, mountOptions: Readonly<Record<string, string>>): ProtocolHandler {
  switch (protocol) {
    case 'nfs':
      return nfsProtocol({ version: '4' });
    case 'cifs':
      // Credentials come from CSI secrets only: no daemon defaults, no .netrc.
      return cifsProtocol({}, async () => undefined);
    case 'efs':
      return efsProtocol({ region: mountOptions['region'], noResolve: false });
  }
}

/** The classic option map a handler plans a mount from, credentials included (never stored). */
export function handlerOptions(spec: Pick<CsiVolumeSpec, 'protocol' | 'share' | 'mountOptions'>, credentials?: Credentials): Record<string, string> {
  const options: Record<string, string> = { share: spec.share, ...classicOptions(spec.protocol, spec.mountOptions) };
  if (credentials && spec.protocol === 'cifs') {
    options['username'] = credentials.username;
    options['password'] = credentials.password;
    if (credentials.domain !== undefined) options['domain'] = credentials.domain;
  }
  return options;
}

/** What the node needs, handed back by the CO on every publish: never a secret, never the owner. */
export function volumeContext(spec: CsiVolumeSpec): Record<string, string> {
  return { protocol: spec.protocol, share: spec.share, subdir: spec.subdir, onDelete: spec.onDelete, ...spec.mountOptions };
}

/** The parameters, normalised: what makes two CreateVolume calls of one name the same volume. */
export function normalisedParameters(spec: CsiVolumeSpec): Record<string, string> {
  const { uid, gid, mode } = spec.owner;
  return {
    ...volumeContext(spec),
    ...(uid !== undefined ? { uid: String(uid) } : {}),
    ...(gid !== undefined ? { gid: String(gid) } : {}),
    ...(mode !== undefined ? { mode: `0${mode.toString(8)}` } : {}),
  };
}

/**
 * `<protocol>;<onDelete>;<subdir>;<share>[;<key>=<value>...]`, each field with '%' and ';'
 * percent-encoded. DeleteVolume gets nothing but this (and secrets), so it says everything
 * deleting needs: the share, the directory, the policy and, when the policy has to mount the
 * share, the mount options that reach it (an NFSv3-only server, a CIFS dialect).
 */
export function encodeVolumeId(spec: CsiVolumeSpec): string {
  const options = spec.onDelete === 'retain' ? [] : PROTOCOL_KEYS[spec.protocol].inId.filter((key) => spec.mountOptions[key] !== undefined);
  const fields = [spec.protocol, spec.onDelete, spec.subdir, spec.share, ...options.map((key) => `${key}=${spec.mountOptions[key] ?? ''}`)];
  const id = fields.map(escapeField).join(';');
  const bytes = Buffer.byteLength(id);
  if (bytes > CSI_MAX_ID_BYTES) {
    const parts = [
      `share (${Buffer.byteLength(spec.share)} bytes)`,
      ...(spec.subdir !== '' ? [`subdir (${Buffer.byteLength(spec.subdir)} bytes)`] : []),
      ...options.map((key) => `${key} (${Buffer.byteLength(spec.mountOptions[key] ?? '')} bytes)`),
    ];
    throw new ValidationError(
      `the volume_id for this volume would be ${bytes} bytes, over CSI's ${CSI_MAX_ID_BYTES}-byte limit: shorten ${orList(parts)} by ${bytes - CSI_MAX_ID_BYTES} byte${bytes - CSI_MAX_ID_BYTES === 1 ? '' : 's'}${options.length > 0 ? ', or use onDelete=retain (its id leaves out the mount options)' : ''}`,
    );
  }
  return id;
}

/** The parameter map a volume_id stands for; parseVolumeParameters checks it like any other. Throws ValidationError. */
export function decodeVolumeId(id: string): Record<string, string> {
  const fields = id.split(';').map(unescapeField);
  const [protocol, onDelete, subdir, share, ...options] = fields;
  if (
    fields.some((field) => field === undefined) ||
    share === undefined ||
    subdir === undefined ||
    !(PROTOCOLS as readonly string[]).includes(protocol ?? '') ||
    !(ON_DELETE as readonly string[]).includes(onDelete ?? '')
  ) {
    throw new ValidationError(`volume_id '${id}' is not a netvol volume id (like nfs;retain;pg;10.0.0.5:/exports); use the volume_id CreateVolume returned`);
  }
  const parameters: Record<string, string> = { protocol: protocol ?? 'nfs', onDelete: onDelete ?? 'retain', subdir, share };
  for (const option of options) {
    const cut = (option ?? '').indexOf('=');
    const key = cut > 0 ? (option ?? '').slice(0, cut) : '';
    if (key === '' || Object.hasOwn(parameters, key)) {
      throw new ValidationError(`volume_id '${id}' is not a netvol volume id: '${option ?? ''}' is not a key=value option; use the volume_id CreateVolume returned`);
    }
    parameters[key] = (option ?? '').slice(cut + 1);
  }
  return parameters;
}

function escapeField(field: string): string {
  return field.replace(/%/g, '%25').replace(/;/g, '%3B');
}

function unescapeField(field: string): string | undefined {
  if (/%(?!25|3B)/i.test(field)) return undefined;
  return field.replace(/%3B/gi, ';').replace(/%25/g, '%');
}

function orList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items[items.length - 1] ?? ''}`;
}

/**
 * The node's name for a volume's record and mountpoint: readable (the directory's name) and
 * unique per volume_id and mount options, so two volumes of one directory with other
 * options get a kernel mount each instead of refusing one another.
 */
export function nodeRecordName(volumeId: string, spec: CsiVolumeSpec): string {
  const options = Object.entries(spec.mountOptions).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const digest = createHash('sha256').update(JSON.stringify([volumeId, options])).digest('hex').slice(0, 16);
  const label = (spec.subdir || spec.share.split(/[/:]/).filter(Boolean).pop() || 'share').replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]+/, '').slice(0, 48);
  return `${label || 'share'}-${digest}`;
}

/** The options a node record keeps: enough to plan its mount again after a restart, no secrets. */
export function recordOptions(spec: CsiVolumeSpec): Record<string, string> {
  return { protocol: spec.protocol, share: spec.share, subdir: spec.subdir, ...spec.mountOptions };
}

/** The record options back to a volume (the inverse of recordOptions), checked again. */
export function specFromRecordOptions(options: Readonly<Record<string, string>>): CsiVolumeSpec {
  return parseVolumeParameters('', { ...options, subdir: options['subdir'] ?? '' });
}

const credentialValue = (key: string) =>
  // eslint-disable-next-line no-control-regex
  z.string().regex(/^[^\x00-\x1f\x7f]*$/, { message: `secret '${key}' may not contain control characters or newlines` });
const SECRET_KEYS = ['username', 'password', 'domain'] as const;
const secretsSchema = z.object({ username: credentialValue('username').optional(), password: credentialValue('password').optional(), domain: credentialValue('domain').optional() });

/**
 * CIFS credentials from CSI secrets (`docker volume create --secret username=<secret>`).
 * Other protocols take none, and whatever a CO sends them is ignored. Messages name keys,
 * never values.
 */
export function parseSecrets(protocol: Protocol, secrets: StringMap): Credentials | undefined {
  if (protocol !== 'cifs') return undefined;
  const unknown = Object.keys(secrets).filter((key) => !(SECRET_KEYS as readonly string[]).includes(key));
  if (unknown.length > 0) {
    throw new ValidationError(`unknown secret${unknown.length > 1 ? 's' : ''} ${unknown.map((key) => `'${key}'`).join(', ')} for a cifs volume; netvol reads username, password and domain`);
  }
  const parsed = secretsSchema.safeParse(secrets);
  if (!parsed.success) throw new ValidationError(parsed.error.issues[0]?.message ?? 'secrets are invalid');
  const { username, password, domain } = parsed.data;
  if (username === undefined && password === undefined) {
    if (domain !== undefined) throw new ValidationError("secret 'domain' needs the secrets 'username' and 'password' too");
    return undefined;
  }
  if (username === undefined || username === '') throw new ValidationError("secret 'password' needs the secret 'username' too: docker volume create --secret username=<secret>");
  return { username, password: password ?? '', ...(domain !== undefined && domain !== '' ? { domain } : {}) };
}

/** What the controller does to the share for a volume: pure, so it is tested on its own. */
export type ShareAction =
  | { readonly kind: 'none'; readonly reason: string }
  | { readonly kind: 'make'; readonly subdir: string; readonly owner: DirectoryOwnership }
  | { readonly kind: 'remove'; readonly subdir: string }
  | { readonly kind: 'rename'; readonly subdir: string; readonly to: string };

export function createAction(spec: CsiVolumeSpec): ShareAction {
  if (spec.subdir === '') return { kind: 'none', reason: 'the volume is the share itself' };
  return { kind: 'make', subdir: spec.subdir, owner: spec.owner };
}

/**
 * The volume CreateVolume answers with, once it knows whether it made the directory: delete
 * and archive act only on a directory netvol made, as in the classic driver, so a directory
 * that was there before (someone's data) is retained whatever onDelete said. The volume_id
 * carries the policy that applies, because DeleteVolume learns nothing else.
 */
export function effectiveVolume(spec: CsiVolumeSpec, made: boolean | undefined): { spec: CsiVolumeSpec; volumeId: string; context: Record<string, string> } {
  const effective: CsiVolumeSpec = spec.onDelete !== 'retain' && made !== true ? { ...spec, onDelete: 'retain' } : spec;
  return { spec: effective, volumeId: encodeVolumeId(effective), context: volumeContext(effective) };
}

export function deleteAction(spec: CsiVolumeSpec, now: Date): ShareAction {
  if (spec.subdir === '' || spec.onDelete === 'retain') return { kind: 'none', reason: spec.subdir === '' ? 'the volume is the share itself' : 'onDelete=retain' };
  if (spec.onDelete === 'delete') return { kind: 'remove', subdir: spec.subdir };
  return { kind: 'rename', subdir: spec.subdir, to: archiveName(spec.subdir, now) };
}
