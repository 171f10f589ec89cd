import { describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '../../src/errors.js';
import type { VolumeCapability } from '../../src/frontends/csi/csi-messages.js';
import {
  capabilityProblem,
  checkCreateVolume,
  checkDeleteVolume,
  checkNodePublish,
  checkNodeUnpublish,
  checkValidateVolumeCapabilities,
} from '../../src/frontends/csi/requests.js';

// Each RPC's request, checked before anything touches a share or a mount: the fields a CO
// must send, and what netvol cannot serve, refused with a message naming the field.

const mount = (mode: string): VolumeCapability => ({ mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: mode as never }, access_type: 'mount' });
const MULTI = mount('MULTI_NODE_MULTI_WRITER');
const PARAMS = { share: '10.0.0.5:/exports' };
const VOLUME_ID = 'nfs;retain;pg;10.0.0.5:/exports';
const CONTEXT = { protocol: 'nfs', share: '10.0.0.5:/exports', subdir: 'pg', onDelete: 'retain' };

function message(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as Error).message;
  }
  throw new Error('expected a ValidationError');
}

describe('access modes and access types', () => {
  it.each(['SINGLE_NODE_WRITER', 'SINGLE_NODE_READER_ONLY', 'MULTI_NODE_READER_ONLY', 'MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER', 'SINGLE_NODE_SINGLE_WRITER', 'SINGLE_NODE_MULTI_WRITER'])(
    'serves %s on a mounted share',
    (mode) => {
      expect(capabilityProblem(mount(mode), 'volume_capabilities[0]', 'nfs')).toBeUndefined();
    },
  );

  it.each<[string, VolumeCapability, 'invalid' | 'unsupported', string]>([
    ['block access', { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' }, 'unsupported',
      'volume_capabilities[0]: block access is not supported: netvol serves shares as mounted directories; create the volume with --type mount'],
    ['no access type', { access_mode: { mode: 'SINGLE_NODE_WRITER' } }, 'invalid', 'volume_capabilities[0] needs an access type: mount (block is not supported)'],
    ['no access mode', { mount: {}, access_type: 'mount' }, 'invalid', 'volume_capabilities[0].access_mode is required'],
    ["UNKNOWN (swarm's --scope multi without --sharing)", mount('UNKNOWN'), 'invalid',
      'volume_capabilities[0].access_mode.mode is UNKNOWN: with --scope multi, also pass --sharing all, onewriter or readonly'],
    ['a mode from a newer spec', { mount: {}, access_mode: { mode: 42 }, access_type: 'mount' }, 'unsupported', 'volume_capabilities[0].access_mode.mode 42 is not an access mode netvol knows'],
    ['a block filesystem', { mount: { fs_type: 'ext4' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }, 'unsupported',
      "volume_capabilities[0].mount.fs_type is 'ext4': nfs volumes are nfs or nfs4; leave fs_type empty"],
    ['mount flags', { mount: { mount_flags: ['ro'] }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }, 'unsupported',
      "volume_capabilities[0].mount.mount_flags are not supported: put mount options in the volume's nfsopts parameter"],
  ])('refuses %s', (_title, capability, kind, text) => {
    expect(capabilityProblem(capability, 'volume_capabilities[0]', 'nfs')).toEqual({ kind, message: text });
  });

  it("accepts the protocol's own filesystem type", () => {
    const cifs: VolumeCapability = { mount: { fs_type: 'cifs' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' };
    expect(capabilityProblem(cifs, 'c', 'cifs')).toBeUndefined();
    expect(capabilityProblem(cifs, 'c', 'nfs')?.message).toBe("c.mount.fs_type is 'cifs': nfs volumes are nfs or nfs4; leave fs_type empty");
  });
});

describe('CreateVolume', () => {
  it('turns a request into the volume, its id and its context', () => {
    const command = checkCreateVolume({ name: 'pg', volume_capabilities: [MULTI, mount('SINGLE_NODE_WRITER')], parameters: { ...PARAMS, uid: '999' }, secrets: {} });
    expect(command).toMatchObject({ name: 'pg', volumeId: VOLUME_ID, context: CONTEXT, parameters: { ...CONTEXT, uid: '999' }, credentials: undefined });
  });

  it('reads CIFS credentials from the secrets, and keeps them out of the id and the context', () => {
    const command = checkCreateVolume({
      name: 'docs',
      volume_capabilities: [MULTI],
      parameters: { protocol: 'cifs', share: '//fs/docs' },
      secrets: { username: 'alice', password: 'S3cret-pw' },
    });
    expect(command.credentials).toEqual({ username: 'alice', password: 'S3cret-pw' });
    expect(JSON.stringify([command.volumeId, command.context, command.parameters])).not.toContain('S3cret');
  });

  it.each<[string, Parameters<typeof checkCreateVolume>[0], string]>([
    ['no name', { volume_capabilities: [MULTI], parameters: PARAMS }, 'name is required: the orchestrator names the volume'],
    ['a name over 128 bytes', { name: 'n'.repeat(129), volume_capabilities: [MULTI], parameters: PARAMS }, 'name is 129 bytes long; CSI allows 128'],
    ['a control character in the name', { name: 'p\u0007g', volume_capabilities: [MULTI], parameters: PARAMS }, 'name "p\\u0007g" contains a control character, which CSI does not allow'],
    ['no capabilities', { name: 'pg', volume_capabilities: [], parameters: PARAMS }, 'volume_capabilities is required: give at least one (access type mount and an access mode)'],
    ['a content source', { name: 'pg', volume_capabilities: [MULTI], parameters: PARAMS, volume_content_source: { type: 'snapshot' } },
      'volume_content_source is not supported: netvol cannot fill a volume from a snapshot or another volume; create it empty'],
    ['block access in any capability', { name: 'pg', volume_capabilities: [MULTI, { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' }], parameters: PARAMS },
      'volume_capabilities[1]: block access is not supported: netvol serves shares as mounted directories; create the volume with --type mount'],
    ['no share', { name: 'pg', volume_capabilities: [MULTI], parameters: {} }, "parameter 'share' is required: docker volume create --opt share=<server>:/<path>"],
    ['a bad secret', { name: 'docs', volume_capabilities: [MULTI], parameters: { protocol: 'cifs', share: '//fs/docs' }, secrets: { pass: 'x' } },
      "unknown secret 'pass' for a cifs volume; netvol reads username, password and domain"],
  ])('refuses %s', (_title, request, text) => {
    expect(message(() => checkCreateVolume(request))).toBe(text);
  });
});

describe('DeleteVolume', () => {
  it('needs only the volume_id', () => {
    expect(checkDeleteVolume({ volume_id: 'nfs;delete;pg;10.0.0.5:/exports;version=3' }).spec).toMatchObject({ onDelete: 'delete', subdir: 'pg', mountOptions: { version: '3' } });
    expect(message(() => checkDeleteVolume({}))).toBe('volume_id is required');
  });

  it('takes an id netvol never made as deleted already (the spec: a volume that does not exist is OK)', () => {
    expect(checkDeleteVolume({ volume_id: 'vol-0123' })).toMatchObject({ volumeId: 'vol-0123', spec: undefined });
  });
});

describe('ValidateVolumeCapabilities', () => {
  it('confirms mounted access, and names what it cannot serve', () => {
    expect(checkValidateVolumeCapabilities({ volume_id: VOLUME_ID, volume_capabilities: [MULTI], volume_context: CONTEXT })).toMatchObject({ unsupported: undefined, context: CONTEXT });
    expect(checkValidateVolumeCapabilities({ volume_id: VOLUME_ID, volume_capabilities: [MULTI, { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' }] }).unsupported).toBe(
      'volume_capabilities[1]: block access is not supported: netvol serves shares as mounted directories; create the volume with --type mount',
    );
  });

  it('answers NOT_FOUND for an id netvol never made, INVALID_ARGUMENT for missing fields', () => {
    expect(() => checkValidateVolumeCapabilities({ volume_id: 'vol-0123', volume_capabilities: [MULTI] })).toThrow(NotFoundError);
    expect(message(() => checkValidateVolumeCapabilities({ volume_capabilities: [MULTI] }))).toBe('volume_id is required');
    expect(message(() => checkValidateVolumeCapabilities({ volume_id: VOLUME_ID, volume_capabilities: [] }))).toBe(
      'volume_capabilities is required: give at least one (access type mount and an access mode)',
    );
    expect(message(() => checkValidateVolumeCapabilities({ volume_id: VOLUME_ID, volume_capabilities: [{ mount: {}, access_type: 'mount' }] }))).toBe(
      'volume_capabilities[0].access_mode is required',
    );
  });
});

describe('NodePublishVolume', () => {
  const base = { volume_id: VOLUME_ID, target_path: '/data/published/abc', volume_capability: MULTI, volume_context: CONTEXT };

  it('mounts by the volume_context, or by the volume_id alone for a pre-provisioned volume', () => {
    expect(checkNodePublish(base)).toMatchObject({ targetPath: '/data/published/abc', readonly: false, spec: { share: '10.0.0.5:/exports', subdir: 'pg' } });
    expect(checkNodePublish({ ...base, volume_context: {} }).spec).toMatchObject({ subdir: 'pg' });
    expect(checkNodePublish({ ...base, volume_context: { nfsopts: 'soft' } }).spec.mountOptions).toEqual({ nfsopts: 'soft' });
  });

  it.each<[string, string, boolean]>([
    ['SINGLE_NODE_WRITER', 'rw', false],
    ['MULTI_NODE_SINGLE_WRITER', 'rw', false],
    ['MULTI_NODE_MULTI_WRITER', 'rw', false],
    ['SINGLE_NODE_READER_ONLY', 'ro', true],
    ['MULTI_NODE_READER_ONLY', 'ro', true],
  ])('%s publishes %s', (mode, _how, readonly) => {
    expect(checkNodePublish({ ...base, volume_capability: mount(mode) }).readonly).toBe(readonly);
  });

  it('publishes read-only when asked, whatever the mode', () => {
    expect(checkNodePublish({ ...base, readonly: true }).readonly).toBe(true);
  });

  it('one spelling per target: the target is the mount ID', () => {
    expect(checkNodePublish({ ...base, target_path: '//data//published/abc/' }).targetPath).toBe('/data/published/abc');
  });

  it.each<[string, Parameters<typeof checkNodePublish>[0], string]>([
    ['no volume_id', { ...base, volume_id: '' }, 'volume_id is required'],
    ['no target_path', { ...base, target_path: undefined }, 'target_path is required'],
    ['a relative target_path', { ...base, target_path: 'data/x' }, "target_path 'data/x' is not an absolute path"],
    ['a target_path with ..', { ...base, target_path: '/data/../etc' }, "target_path '/data/../etc' has a '.' or '..' segment; give the path itself"],
    ['the root as target_path', { ...base, target_path: '/' }, "target_path '/' cannot be a volume's target"],
    ['a newline in target_path', { ...base, target_path: '/data/x\ny' }, 'target_path "/data/x\\ny" contains a control character'],
    ['no volume_capability', { ...base, volume_capability: null }, 'volume_capability is required (access type mount and an access mode)'],
    ['block access', { ...base, volume_capability: { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' } },
      'volume_capability: block access is not supported: netvol serves shares as mounted directories; create the volume with --type mount'],
    ['a volume_id netvol never made', { ...base, volume_id: 'vol-0123' }, "volume_id 'vol-0123' is not a netvol volume id (like nfs;retain;pg;10.0.0.5:/exports); use the volume_id CreateVolume returned"],
    ['a context of another volume', { ...base, volume_context: { ...CONTEXT, subdir: 'other' } },
      "volume_context describes another volume than volume_id 'nfs;retain;pg;10.0.0.5:/exports' (it describes 'nfs;retain;other;10.0.0.5:/exports'); pass the volume_context CreateVolume returned with this volume_id"],
    ['a context with a bad option', { ...base, volume_context: { ...CONTEXT, nfsopts: 'bg' } },
      "nfsopts may not set 'bg': netvol always mounts in the foreground (with bg, mount.nfs exits 0 before anything is mounted, so netvol would hand out an empty local directory); remove it"],
  ])('refuses %s', (_title, request, text) => {
    expect(message(() => checkNodePublish(request))).toBe(text);
  });
});

describe('NodeUnpublishVolume', () => {
  it('needs the volume_id and an absolute target_path', () => {
    expect(checkNodeUnpublish({ volume_id: VOLUME_ID, target_path: '/data/published/abc' })).toEqual({ volumeId: VOLUME_ID, targetPath: '/data/published/abc' });
    expect(message(() => checkNodeUnpublish({ target_path: '/x' }))).toBe('volume_id is required');
    expect(message(() => checkNodeUnpublish({ volume_id: VOLUME_ID }))).toBe('target_path is required');
    expect(message(() => checkNodeUnpublish({ volume_id: VOLUME_ID, target_path: 'x' }))).toBe("target_path 'x' is not an absolute path");
  });
});
