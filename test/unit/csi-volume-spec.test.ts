import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import {
  createAction,
  decodeVolumeId,
  deleteAction,
  effectiveVolume,
  encodeVolumeId,
  nodeRecordName,
  normalisedParameters,
  parseSecrets,
  parseVolumeParameters,
  recordOptions,
  specFromRecordOptions,
  volumeContext,
  type CsiVolumeSpec,
} from '../../src/frontends/csi/volume-spec.js';
import { checkVolumeName } from '../../src/core/volume-name.js';

// CreateVolume's parameters are `docker volume create --opt` maps; these are the checks and
// the provisioning plans netvol derives from them, without a socket or a share.

type Params = Record<string, string>;
const SHARE = '10.0.0.5:/exports';
const NOW = new Date('2026-01-02T03:04:05.678Z');

function invalid(name: string, parameters: Params): string {
  try {
    parseVolumeParameters(name, parameters);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as Error).message;
  }
  throw new Error('expected a ValidationError');
}

describe('CSI parameters', () => {
  it.each<[string, string, Params, Partial<CsiVolumeSpec>]>([
    ['nfs by default, the volume name as its directory, retained', 'pg', { share: SHARE },
      { protocol: 'nfs', share: SHARE, subdir: 'pg', onDelete: 'retain', owner: {}, mountOptions: {} }],
    ['the share in its canonical form', 'pg', { share: '10.0.0.5/exports/' }, { share: SHARE }],
    ['subdir= is the share itself', 'pg', { share: SHARE, subdir: '' }, { subdir: '' }],
    ['an explicit subdir', 'pg', { share: SHARE, subdir: 'postgres-16' }, { subdir: 'postgres-16' }],
    ['owner and octal mode of the directory it makes', 'pg', { share: SHARE, uid: '999', gid: '998', mode: '0750' },
      { owner: { uid: 999, gid: 998, mode: 0o750 } }],
    ['each onDelete policy', 'pg', { share: SHARE, onDelete: 'archive' }, { onDelete: 'archive' }],
    ['nfs version and options', 'pg', { share: SHARE, version: '3', nfsopts: 'soft,timeo=30' },
      { mountOptions: { version: '3', nfsopts: 'soft,timeo=30' } }],
    ['cifs share, dialect and modes', 'docs', { protocol: 'cifs', share: 'fileserver/docs', cifsopts: 'vers=3.0', security: 'ntlmssp', fileMode: '0640', dirMode: '0750' },
      { protocol: 'cifs', share: '//fileserver/docs', mountOptions: { cifsopts: 'vers=3.0', security: 'ntlmssp', fileMode: '0640', dirMode: '0750' } }],
    ['efs with its region', 'data', { protocol: 'efs', share: 'fs-12345678:/apps', region: 'eu-west-1' },
      { protocol: 'efs', share: 'fs-12345678:/apps', mountOptions: { region: 'eu-west-1' } }],
    ['CO metadata keys are ignored', 'pg', { share: SHARE, 'csi.storage.k8s.io/pvc/name': 'claim' }, { subdir: 'pg', mountOptions: {} }],
  ])('%s', (_title, name, parameters, expected) => {
    expect(parseVolumeParameters(name, parameters)).toMatchObject(expected);
  });

  it("takes the controller's AWS_REGION for efs volumes that name none, and keeps it with the volume", () => {
    const spec = parseVolumeParameters('data', { protocol: 'efs', share: 'fs-12345678' }, { efsRegion: 'us-east-2' });
    expect(spec.mountOptions).toEqual({ region: 'us-east-2' });
    expect(volumeContext(spec)).toMatchObject({ region: 'us-east-2' });
  });

  it.each<[string, string, Params, string]>([
    ['no share', 'pg', {}, "parameter 'share' is required: docker volume create --opt share=<server>:/<path>"],
    ['an empty share', 'pg', { share: ' ', protocol: 'cifs' }, "parameter 'share' is required: docker volume create --opt share=//<server>/<share>"],
    ['an unknown protocol', 'pg', { share: SHARE, protocol: 'smb' }, "parameter 'protocol' is 'smb': use nfs, cifs or efs"],
    ['unknown keys, naming every accepted one', 'pg', { share: SHARE, foo: '1', bar: '2' },
      "unknown parameters 'foo', 'bar' for nfs volumes; accepted parameters: protocol, share, subdir, uid, gid, mode, onDelete, version, nfsopts"],
    ["another protocol's option", 'pg', { protocol: 'efs', share: 'fs-12345678', region: 'eu-west-1', nfsopts: 'soft' },
      "unknown parameter 'nfsopts' for efs volumes; accepted parameters: protocol, share, subdir, uid, gid, mode, onDelete, region"],
    ['a password as a parameter (docker volume inspect shows parameters)', 'docs', { protocol: 'cifs', share: 'fs/docs', password: 'S3cret-pw' },
      "parameter 'password' is not accepted: pass CIFS credentials as secrets (docker volume create --secret username=<secret> --secret password=<secret>): parameters are shown by docker volume inspect"],
    ['a username as a parameter', 'docs', { protocol: 'cifs', share: 'fs/docs', username: 'alice' },
      "parameter 'username' is not accepted: pass CIFS credentials as secrets (docker volume create --secret username=<secret> --secret password=<secret>): parameters are shown by docker volume inspect"],
    ['a domain as a parameter', 'docs', { protocol: 'cifs', share: 'fs/docs', domain: 'CORP' },
      "parameter 'domain' is not accepted: pass the CIFS domain as a secret (docker volume create --secret domain=<secret>), beside username and password"],
    ["the classic driver's create", 'pg', { share: SHARE, create: 'true' },
      "parameter 'create' is not accepted: netvol csi always makes the directory named by subdir (default: the volume name) on the share; subdir= (empty) uses the share itself"],
    ['a subdir that climbs out of the share', 'pg', { share: SHARE, subdir: '..' },
      "parameter 'subdir' is '..': it may only contain letters, digits, '_', '.' and '-', and may not start with '.' or '-' (it is one directory on the share); subdir= (empty) uses the share itself"],
    ['a subdir of two segments', 'pg', { share: SHARE, subdir: 'a/b' },
      "parameter 'subdir' is 'a/b': it may only contain letters, digits, '_', '.' and '-', and may not start with '.' or '-' (it is one directory on the share); subdir= (empty) uses the share itself"],
    ['a hidden subdir', 'pg', { share: SHARE, subdir: '.ssh' },
      "parameter 'subdir' is '.ssh': it may only contain letters, digits, '_', '.' and '-', and may not start with '.' or '-' (it is one directory on the share); subdir= (empty) uses the share itself"],
    ['an over-long subdir', 'pg', { share: SHARE, subdir: 'x'.repeat(201) },
      `parameter 'subdir' is '${'x'.repeat(201)}': it is longer than 200 bytes; subdir= (empty) uses the share itself`],
    ['a volume name that cannot be a directory', 'my vol', { share: SHARE },
      "the volume name 'my vol' cannot be its directory on the share: a subdir may only contain letters, digits, '_', '.' and '-', and may not start with '.' or '-' (it is one directory on the share); pass --opt subdir=<directory>, or --opt subdir= for the share itself"],
    ['a uid that is not a number', 'pg', { share: SHARE, uid: 'root' }, "invalid parameter 'uid': uid must be a numeric user id like 1000"],
    ['a gid that is not a number', 'pg', { share: SHARE, gid: '-1' }, "invalid parameter 'gid': gid must be a numeric group id like 1000"],
    ['a mode that is not octal', 'pg', { share: SHARE, mode: '999' }, "invalid parameter 'mode': mode must be an octal mode like 0750"],
    ['an unknown onDelete', 'pg', { share: SHARE, onDelete: 'purge' }, "invalid parameter 'onDelete': onDelete must be one of retain, delete, archive"],
    ['delete of the share itself', 'pg', { share: SHARE, subdir: '', onDelete: 'delete' },
      "parameter 'onDelete' is 'delete' but subdir is empty: the volume is the share itself, which netvol never deletes or renames; give a subdir, or use onDelete=retain"],
    ['an owner for the share itself', 'pg', { share: SHARE, subdir: '', mode: '0700' },
      "parameter 'mode' applies to the directory netvol makes, but subdir is empty (the share itself): give a subdir, or leave out uid, gid and mode"],
    ["a bad share, in the nfs handler's words", 'pg', { share: 'bad host:/x' },
      "share 'bad host:/x' has an invalid server 'bad host': use a host name, an IPv4 address or a bracketed IPv6 address like [fd00::1]"],
    ["a bad nfs version, in the nfs handler's words", 'pg', { share: SHARE, version: '5' }, "invalid option 'version': version must be one of 3, 4, 4.0, 4.1, 4.2"],
    ["a refused nfs option, in the nfs handler's words", 'pg', { share: SHARE, nfsopts: 'bg' },
      "nfsopts may not set 'bg': netvol always mounts in the foreground (with bg, mount.nfs exits 0 before anything is mounted, so netvol would hand out an empty local directory); remove it"],
    ["a refused cifs option, in the cifs handler's words", 'docs', { protocol: 'cifs', share: 'fs/docs', cifsopts: 'password=x' },
      "cifsopts may not set 'password': use the username and password options (kept out of the command line)"],
    ['efs without a region', 'data', { protocol: 'efs', share: 'fs-12345678' },
      'efs volumes need an AWS region: docker volume create --opt region=eu-west-1 (or start netvol csi with AWS_REGION set)'],
    ['efs with a malformed region', 'data', { protocol: 'efs', share: 'fs-12345678', region: 'Europe' }, "parameter 'region' is 'Europe': give an AWS region like eu-west-1"],
  ])('refuses %s', (_title, name, parameters, message) => {
    expect(invalid(name, parameters)).toBe(message);
  });

  it('never repeats a secret-looking value in a message', () => {
    expect(invalid('docs', { protocol: 'cifs', share: 'fs/docs', password: 'S3cret-pw' })).not.toContain('S3cret-pw');
  });
});

describe('volume_id', () => {
  const spec = (parameters: Params, name = 'pg') => parseVolumeParameters(name, parameters);

  it.each<[string, Params, string]>([
    ['retain: protocol, policy, directory and share', { share: SHARE }, 'nfs;retain;pg;10.0.0.5:/exports'],
    ['retain leaves out the mount options: deleting needs no mount', { share: SHARE, version: '3' }, 'nfs;retain;pg;10.0.0.5:/exports'],
    ['delete keeps what mounting the share takes', { share: SHARE, onDelete: 'delete', version: '3', nfsopts: 'nolock' }, 'nfs;delete;pg;10.0.0.5:/exports;version=3;nfsopts=nolock'],
    ['the share itself', { share: SHARE, subdir: '' }, 'nfs;retain;;10.0.0.5:/exports'],
    ['cifs archive keeps dialect and sec=, not file modes', { protocol: 'cifs', share: '//fs/docs', onDelete: 'archive', cifsopts: 'vers=3.0', fileMode: '0640' }, 'cifs;archive;pg;//fs/docs;cifsopts=vers=3.0'],
    ['efs keeps its region', { protocol: 'efs', share: 'fs-12345678:/apps', region: 'eu-west-1', onDelete: 'delete' }, 'efs;delete;pg;fs-12345678:/apps;region=eu-west-1'],
    ["';' and '%' in a share are escaped", { share: '10.0.0.5:/a;b%c' }, 'nfs;retain;pg;10.0.0.5:/a%3Bb%25c'],
  ])('%s', (_title, parameters, id) => {
    const volume = spec(parameters);
    expect(encodeVolumeId(volume)).toBe(id);
    const decoded = parseVolumeParameters('', decodeVolumeId(id));
    expect(encodeVolumeId(decoded)).toBe(id);
    expect({ ...decoded, owner: {} }).toEqual({
      ...volume,
      owner: {},
      mountOptions: volume.onDelete === 'retain' ? {} : Object.fromEntries(Object.entries(volume.mountOptions).filter(([key]) => key !== 'fileMode')),
    });
  });

  it("refuses an id over CSI's 128 bytes, saying what to shorten and by how much", () => {
    const volume = spec({ share: `10.0.0.5:/${'e'.repeat(60)}`, onDelete: 'delete', nfsopts: 'soft,timeo=30' }, 'p'.repeat(60));
    expect(() => encodeVolumeId(volume)).toThrow(
      "the volume_id for this volume would be 164 bytes, over CSI's 128-byte limit: shorten share (70 bytes), subdir (60 bytes) or nfsopts (13 bytes) by 36 bytes, or use onDelete=retain (its id leaves out the mount options)",
    );
    expect(encodeVolumeId(spec({ share: `10.0.0.5:/${'e'.repeat(60)}` }, 'p'.repeat(46)))).toHaveLength(128);
    expect(() => encodeVolumeId(spec({ share: `10.0.0.5:/${'e'.repeat(60)}` }, 'p'.repeat(47)))).toThrow(
      "the volume_id for this volume would be 129 bytes, over CSI's 128-byte limit: shorten share (70 bytes) or subdir (47 bytes) by 1 byte",
    );
  });

  it.each<[string, string]>([
    ['garbage', "volume_id 'garbage' is not a netvol volume id (like nfs;retain;pg;10.0.0.5:/exports); use the volume_id CreateVolume returned"],
    ['smb;retain;pg;x:/y', "volume_id 'smb;retain;pg;x:/y' is not a netvol volume id (like nfs;retain;pg;10.0.0.5:/exports); use the volume_id CreateVolume returned"],
    ['nfs;purge;pg;x:/y', "volume_id 'nfs;purge;pg;x:/y' is not a netvol volume id (like nfs;retain;pg;10.0.0.5:/exports); use the volume_id CreateVolume returned"],
    ['nfs;retain;pg;x:/y%41', "volume_id 'nfs;retain;pg;x:/y%41' is not a netvol volume id (like nfs;retain;pg;10.0.0.5:/exports); use the volume_id CreateVolume returned"],
    ['nfs;delete;pg;x:/y;nolock', "volume_id 'nfs;delete;pg;x:/y;nolock' is not a netvol volume id: 'nolock' is not a key=value option; use the volume_id CreateVolume returned"],
    ['nfs;delete;pg;x:/y;share=z:/w', "volume_id 'nfs;delete;pg;x:/y;share=z:/w' is not a netvol volume id: 'share=z:/w' is not a key=value option; use the volume_id CreateVolume returned"],
  ])('refuses the id %s', (id, message) => {
    expect(() => decodeVolumeId(id)).toThrow(message);
  });

  it('a decoded id is checked like any parameters: its directory never leaves the share', () => {
    expect(() => parseVolumeParameters('', decodeVolumeId('nfs;delete;..;10.0.0.5:/exports'))).toThrow("parameter 'subdir' is '..'");
  });
});

describe('provisioning plans', () => {
  const spec = (parameters: Params) => parseVolumeParameters('pg', { share: SHARE, ...parameters });

  it('CreateVolume makes the directory with the owner and mode asked for; the share itself is left alone', () => {
    expect(createAction(spec({ uid: '999', gid: '998', mode: '750' }))).toEqual({ kind: 'make', subdir: 'pg', owner: { uid: 999, gid: 998, mode: 0o750 } });
    expect(createAction(spec({ subdir: '' }))).toEqual({ kind: 'none', reason: 'the volume is the share itself' });
  });

  it('DeleteVolume retains, deletes or archives to archived-<subdir>-<UTC time>', () => {
    expect(deleteAction(spec({}), NOW)).toEqual({ kind: 'none', reason: 'onDelete=retain' });
    expect(deleteAction(spec({ onDelete: 'delete' }), NOW)).toEqual({ kind: 'remove', subdir: 'pg' });
    expect(deleteAction(spec({ onDelete: 'archive' }), NOW)).toEqual({ kind: 'rename', subdir: 'pg', to: 'archived-pg-20260102T030405Z' });
    expect(deleteAction(spec({ subdir: '' }), NOW)).toEqual({ kind: 'none', reason: 'the volume is the share itself' });
  });

  it('delete and archive apply only to a directory CreateVolume made: one that was there is retained', () => {
    const asked = spec({ onDelete: 'delete', version: '3' });
    expect(effectiveVolume(asked, true)).toMatchObject({ volumeId: 'nfs;delete;pg;10.0.0.5:/exports;version=3', context: { onDelete: 'delete' } });
    expect(effectiveVolume(asked, false)).toMatchObject({ volumeId: 'nfs;retain;pg;10.0.0.5:/exports', context: { onDelete: 'retain' } });
    expect(effectiveVolume(spec({}), false).volumeId).toBe('nfs;retain;pg;10.0.0.5:/exports');
  });

  it('the volume_context says what a node mounts, never the owner; the normalised parameters say both', () => {
    const volume = spec({ uid: '999', mode: '750', nfsopts: 'soft' });
    expect(volumeContext(volume)).toEqual({ protocol: 'nfs', share: SHARE, subdir: 'pg', onDelete: 'retain', nfsopts: 'soft' });
    expect(normalisedParameters(volume)).toEqual({ protocol: 'nfs', share: SHARE, subdir: 'pg', onDelete: 'retain', nfsopts: 'soft', uid: '999', mode: '0750' });
  });
});

describe('node records', () => {
  const spec = (parameters: Params) => parseVolumeParameters('pg', { share: SHARE, ...parameters });

  it('are named readably and uniquely per volume_id and mount options, and are valid core volume names', () => {
    const plain = spec({});
    const name = nodeRecordName(encodeVolumeId(plain), plain);
    expect(name).toMatch(/^pg-[0-9a-f]{16}$/);
    expect(() => checkVolumeName(name)).not.toThrow();
    expect(nodeRecordName(encodeVolumeId(plain), plain)).toBe(name);
    const soft = spec({ nfsopts: 'soft' });
    expect(nodeRecordName(encodeVolumeId(soft), soft)).not.toBe(name);
    const root = spec({ subdir: '' });
    expect(nodeRecordName(encodeVolumeId(root), root)).toMatch(/^exports-[0-9a-f]{16}$/);
  });

  it('keep what a restart needs to mount again, and nothing secret', () => {
    const volume = parseVolumeParameters('docs', { protocol: 'cifs', share: 'fs/docs', cifsopts: 'vers=3.0' });
    const options = recordOptions(volume);
    expect(options).toEqual({ protocol: 'cifs', share: '//fs/docs', subdir: 'docs', cifsopts: 'vers=3.0' });
    expect(specFromRecordOptions(options)).toMatchObject({ protocol: 'cifs', share: '//fs/docs', subdir: 'docs', mountOptions: { cifsopts: 'vers=3.0' } });
  });
});

describe('CIFS secrets', () => {
  it('become credentials for cifs volumes; other protocols ignore whatever a CO sends', () => {
    expect(parseSecrets('cifs', { username: 'alice', password: 'S3cret-pw', domain: 'CORP' })).toEqual({ username: 'alice', password: 'S3cret-pw', domain: 'CORP' });
    expect(parseSecrets('cifs', { username: 'alice' })).toEqual({ username: 'alice', password: '' });
    expect(parseSecrets('cifs', {})).toBeUndefined();
    expect(parseSecrets('nfs', { anything: 'x' })).toBeUndefined();
  });

  it.each<[string, Record<string, string>, string]>([
    ['an unknown key', { user: 'alice' }, "unknown secret 'user' for a cifs volume; netvol reads username, password and domain"],
    ['a password without a user', { password: 'S3cret-pw' }, "secret 'password' needs the secret 'username' too: docker volume create --secret username=<secret>"],
    ['a domain alone', { domain: 'CORP' }, "secret 'domain' needs the secrets 'username' and 'password' too"],
    ['a newline (the credentials file is line-based)', { username: 'alice', password: 'S3cret\nusername=root' }, "secret 'password' may not contain control characters or newlines"],
  ])('refuses %s, naming keys only', (_title, secrets, message) => {
    expect(() => parseSecrets('cifs', secrets)).toThrow(message);
    try {
      parseSecrets('cifs', secrets);
    } catch (error) {
      expect((error as Error).message).not.toContain('S3cret');
    }
  });
});
