import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { mountArgv } from '../../src/protocols/mount-plan.js';
import { checkNfsDaemonOptions, nfsMountPlan, nfsProtocol, type NfsDaemonOptions } from '../../src/protocols/nfs.js';

const TARGET = '/var/lib/docker-volumes/netshare/nfs/v';
const V3: NfsDaemonOptions = { version: '3' };
const V4: NfsDaemonOptions = { version: '4' };
const ACCEPTED = 'accepted options: share, create, nfsopts, version, uid, gid, mode, onDelete, type, o, device';
const INVALID_SERVER = 'use a host name, an IPv4 address or a bracketed IPv6 address like [fd00::1]';
const FOREGROUND =
  'netvol always mounts in the foreground (with bg, mount.nfs exits 0 before anything is mounted, so netvol would hand out an empty local directory); remove it';

type Options = Record<string, string>;

async function argv(daemon: NfsDaemonOptions, name: string, options: Options = {}): Promise<string[]> {
  return mountArgv(await nfsProtocol(daemon).plan({ name, options }), TARGET);
}

/** The argv netvol passes to mount(8) for an NFS source with the given -o list. */
function expected(fsType: 'nfs' | 'nfs4', source: string, options?: string): string[] {
  return ['-t', fsType, ...(options === undefined ? [] : ['-o', options]), '--', source, TARGET];
}

describe('NFS mount argv', () => {
  it.each<[string, NfsDaemonOptions, string, Options, string[]]>([
    ['v3 adds nfsvers=3 to the netshare defaults', V3, 'pg', { share: '10.0.0.5:/exports/pg' },
      expected('nfs', '10.0.0.5:/exports/pg', 'nfsvers=3,port=2049,nolock,proto=tcp')],
    ['v3 nfsopts replace the defaults, nfsvers=3 still first', V3, 'pg', { share: '10.0.0.5:/exports/pg', nfsopts: 'soft,timeo=30' },
      expected('nfs', '10.0.0.5:/exports/pg', 'nfsvers=3,soft,timeo=30')],
    ['v3 nfsopts that already say vers= are kept as given', V3, 'pg', { share: 'nas:/x', nfsopts: 'vers=3,hard' },
      expected('nfs', 'nas:/x', 'vers=3,hard')],
    ['v3 nfsopts that already say nfsvers= are kept as given', V3, 'pg', { share: 'nas:/x', nfsopts: 'nolock,nfsvers=3' },
      expected('nfs', 'nas:/x', 'nolock,nfsvers=3')],
    ['v4 without options has no -o at all', V4, 'pg', { share: '10.0.0.5:/exports/pg' },
      expected('nfs4', '10.0.0.5:/exports/pg')],
    ['v4 with nfsopts', V4, 'pg', { share: 'nas:/x', nfsopts: 'hard,timeo=600' },
      expected('nfs4', 'nas:/x', 'hard,timeo=600')],
    ['volume version 4.0', V4, 'pg', { share: 'nas:/x', version: '4.0' }, expected('nfs4', 'nas:/x', 'vers=4.0')],
    ['volume version 4.1', V4, 'pg', { share: 'nas:/x', version: '4.1' }, expected('nfs4', 'nas:/x', 'vers=4.1')],
    ['volume version 4.2 before nfsopts', V4, 'pg', { share: 'nas:/x', version: '4.2', nfsopts: 'soft' },
      expected('nfs4', 'nas:/x', 'vers=4.2,soft')],
    ['volume version 4.1 with nfsopts that say vers=4.2', V4, 'pg', { share: 'nas:/x', version: '4.1', nfsopts: 'vers=4.2' },
      expected('nfs4', 'nas:/x', 'vers=4.2')],
    ['volume version 3 overrides daemon 4', V4, 'pg', { share: 'nas:/x', version: '3' },
      expected('nfs', 'nas:/x', 'nfsvers=3,port=2049,nolock,proto=tcp')],
    ['volume version 4 overrides daemon 3', V3, 'pg', { share: 'nas:/x', version: '4' }, expected('nfs4', 'nas:/x')],
    ['volume version 4.1 overrides daemon 3', V3, 'pg', { share: 'nas:/x', version: '4.1' }, expected('nfs4', 'nas:/x', 'vers=4.1')],
    ['daemon -o is used for v4 volumes without nfsopts', { version: '4', options: 'hard,intr' }, 'pg', { share: 'nas:/x' },
      expected('nfs4', 'nas:/x', 'hard,intr')],
    ['daemon -o is replaced by volume nfsopts (v4)', { version: '4', options: 'hard,intr' }, 'pg', { share: 'nas:/x', nfsopts: 'soft' },
      expected('nfs4', 'nas:/x', 'soft')],
    ['daemon -o replaces the v3 netshare defaults', { version: '3', options: 'hard' }, 'pg', { share: 'nas:/x' },
      expected('nfs', 'nas:/x', 'nfsvers=3,hard')],
    ['daemon -o is replaced by volume nfsopts (v3)', { version: '3', options: 'hard' }, 'pg', { share: 'nas:/x', nfsopts: 'soft' },
      expected('nfs', 'nas:/x', 'nfsvers=3,soft')],
    ['empty items in nfsopts are dropped', V4, 'pg', { share: 'nas:/x', nfsopts: ',hard,,soft,' }, expected('nfs4', 'nas:/x', 'hard,soft')],
    ['ad-hoc name host/path', V4, '10.0.0.5/exports/pg', {}, expected('nfs4', '10.0.0.5:/exports/pg')],
    ['ad-hoc name with trailing slash', V4, '10.0.0.5/exports/pg/', {}, expected('nfs4', '10.0.0.5:/exports/pg')],
    ['ad-hoc name with #sub mounts the share', V4, 'nas/exports#sub', {}, expected('nfs4', 'nas:/exports')],
    ['ad-hoc bracketed IPv6 name', V4, '[fd00::5]/exports/a', {}, expected('nfs4', '[fd00::5]:/exports/a')],
    ['bracketed IPv6 share', V4, 'pg', { share: '[fd00::5]:/exports/a' }, expected('nfs4', '[fd00::5]:/exports/a')],
    ['bracketed IPv6 share with a zone', V4, 'pg', { share: '[fe80::1%eth0]:/x' }, expected('nfs4', '[fe80::1%eth0]:/x')],
    ['host:/path with doubled slashes is normalised', V4, 'pg', { share: 'nas://exports//pg/' }, expected('nfs4', 'nas:/exports/pg')],
    ['host:path without a leading slash', V4, 'pg', { share: 'nas:exports/pg' }, expected('nfs4', 'nas:/exports/pg')],
    ['host:/path with ./ segments', V4, 'pg', { share: 'nas:/./exports/./pg' }, expected('nfs4', 'nas:/exports/pg')],
    ['share in ad-hoc form host/path', V4, 'pg', { share: 'nas/exports/pg' }, expected('nfs4', 'nas:/exports/pg')],
    ['share with surrounding spaces', V4, 'pg', { share: '  nas:/x  ' }, expected('nfs4', 'nas:/x')],
    ['share root of the server', V4, 'pg', { share: 'nas:/' }, expected('nfs4', 'nas:/')],
    ['an empty share option falls back to the ad-hoc name', V4, 'nas/exports', { share: '' }, expected('nfs4', 'nas:/exports')],
    ['R6: an IPv6 scope id with a dash (mount.nfs takes %br-lan)', V4, 'pg', { share: '[fe80::1%br-lan]:/x' },
      expected('nfs4', '[fe80::1%br-lan]:/x')],
    ['R6: an IPv6 scope id with a dot (mount.nfs takes %eth0.100)', V4, 'pg', { share: '[fe80::1%eth0.100]:/x' },
      expected('nfs4', '[fe80::1%eth0.100]:/x')],
    ['§6: nfsopts v4 on a v3 daemon is the version: no nfsvers=3 beside it', V3, 'pg', { share: 'nas:/x', nfsopts: 'v4' },
      expected('nfs', 'nas:/x', 'v4')],
    ['§6: nfsopts v3 on a v3 daemon is the version', V3, 'pg', { share: 'nas:/x', nfsopts: 'v3,nolock' },
      expected('nfs', 'nas:/x', 'v3,nolock')],
    ['§6: daemon -o v3 on a v3 daemon is the version', { version: '3', options: 'v3,hard' }, 'pg', { share: 'nas:/x' },
      expected('nfs', 'nas:/x', 'v3,hard')],
    ['§6: nfsopts v4.2 beside volume version 4.1 is the version: no vers=4.1 beside it', V4, 'pg',
      { share: 'nas:/x', version: '4.1', nfsopts: 'v4.2' }, expected('nfs4', 'nas:/x', 'v4.2')],
    ['§6: nfsopts v4 beside volume version 4.2 is the version', V4, 'pg', { share: 'nas:/x', version: '4.2', nfsopts: 'hard,v4' },
      expected('nfs4', 'nas:/x', 'hard,v4')],
  ])('%s', async (_title, daemon, name, options, want) => {
    expect(await argv(daemon, name, options)).toEqual(want);
  });

  it('puts -- right before the source so no share can be read as a flag', async () => {
    const args = await argv(V4, 'pg', { share: 'nas:/-o' });
    expect(args.slice(-3)).toEqual(['--', 'nas:/-o', TARGET]);
  });
});

describe('NFS check (Create)', () => {
  it.each<[string, Options, { share: string; subdirectory?: string | undefined }]>([
    ['10.0.0.5/exports/pg', {}, { share: '10.0.0.5:/exports/pg', subdirectory: undefined }],
    ['10.0.0.5/exports/pg/', {}, { share: '10.0.0.5:/exports/pg', subdirectory: undefined }],
    ['host/exports#sub', {}, { share: 'host:/exports', subdirectory: 'sub' }],
    ['10.0.0.5/exports/pg', { create: 'true' }, { share: '10.0.0.5:/exports/pg', subdirectory: 'pg' }],
    ['pg', { share: 'nas:/exports', create: 'true' }, { share: 'nas:/exports', subdirectory: 'pg' }],
    ['pg', { share: 'nas:/exports', create: 'false' }, { share: 'nas:/exports', subdirectory: undefined }],
    ['pg', { share: 'nas:/exports' }, { share: 'nas:/exports', subdirectory: undefined }],
  ])('%s %j', (name, options, want) => {
    expect(nfsProtocol(V4).check({ name, options })).toEqual(want);
  });
});

describe('NFS rejections', () => {
  it.each<[string, string, Options, string]>([
    ['unknown option', 'pg', { share: 'nas:/x', nfsopt: 'soft' },
      `unknown option 'nfsopt' for nfs volumes; ${ACCEPTED}`],
    ['two unknown options', 'pg', { share: 'nas:/x', vers: '4', opts: 'soft' },
      `unknown options 'vers', 'opts' for nfs volumes; ${ACCEPTED}`],
    ['bad version', 'pg', { share: 'nas:/x', version: '5' },
      "invalid option 'version': version must be one of 3, 4, 4.0, 4.1, 4.2"],
    ['version with a v', 'pg', { share: 'nas:/x', version: 'v4' },
      "invalid option 'version': version must be one of 3, 4, 4.0, 4.1, 4.2"],
    ['nfsopts with a space', 'pg', { share: 'nas:/x', nfsopts: 'hard, soft' },
      "invalid option 'nfsopts': nfsopts may only contain letters, digits and _ . , = : / + @ % -"],
    ['nfsopts with a newline', 'pg', { share: 'nas:/x', nfsopts: 'hard\nsoft' },
      "invalid option 'nfsopts': nfsopts may only contain letters, digits and _ . , = : / + @ % -"],
    ['nfsopts with a semicolon', 'pg', { share: 'nas:/x', nfsopts: 'hard;reboot' },
      "invalid option 'nfsopts': nfsopts may only contain letters, digits and _ . , = : / + @ % -"],
    ['bad create value', 'pg', { share: 'nas:/x', create: 'maybe' },
      "invalid option 'create': Invalid input"],
    ['server starting with -', 'pg', { share: '-oremount:/x' },
      "share '-oremount:/x' has an invalid server '-oremount': use a host name, an IPv4 address or a bracketed IPv6 address like [fd00::1]"],
    ['ad-hoc name whose server starts with -', '-o/x', {},
      "share '-o/x' has an invalid server '-o': use a host name, an IPv4 address or a bracketed IPv6 address like [fd00::1]"],
    ['server with a comma', 'pg', { share: 'a,addr=1.2.3.4:/x' },
      "share 'a,addr=1.2.3.4:/x' has an invalid server 'a,addr=1.2.3.4': use a host name, an IPv4 address or a bracketed IPv6 address like [fd00::1]"],
    ['bare IPv6 server', 'pg', { share: 'fd00::5:/exports' },
      "share 'fd00::5:/exports': write IPv6 servers in brackets, like [fd00::1]:/export"],
    ['bare IPv6 ad-hoc name', 'fd00::5/exports', {},
      "share 'fd00::5/exports': write IPv6 servers in brackets, like [fd00::1]:/export"],
    ['unclosed IPv6 bracket', 'pg', { share: '[fd00::5:/exports' },
      "share '[fd00::5:/exports' has an unclosed '[' in its IPv6 address"],
    ['share without a path', 'pg', { share: 'nas' }, "share 'nas' has no path: give it as host:/path"],
    ['share without a host', 'pg', { share: ':/exports' }, "share ':/exports' has no path: give it as host:/path"],
    ['blank share', 'pg', { share: '  ' }, 'share is empty: give it as host:/path'],
    ['control character in the path', 'pg', { share: 'nas:/x\ty' }, "share 'nas:/x\ty' contains a control character"],
    ['plain name without a share', 'pg', {},
      "volume 'pg' has no share: create it with -o share=<server>:/<path>, or use the share as the volume name, like 192.168.1.10/exports/data"],
    ['plain name with #sub but no share', 'pg#sub', {},
      "volume 'pg#sub' has no share: create it with -o share=<server>:/<path>, or use the share as the volume name, like 192.168.1.10/exports/data"],
    ['empty #sub', 'nas/exports#', {}, "'' cannot be used as the subdirectory made by create=true"],
    ['#.. as subdirectory', 'nas/exports#..', {}, "'..' cannot be used as the subdirectory made by create=true"],
    ['R6: text glued to a bracketed IPv6 server', 'pg', { share: '[fd00::1]garbage/x' },
      "share '[fd00::1]garbage/x' has 'garbage/x' right after the bracketed IPv6 address: write the path after a colon, like [fd00::1]:/export"],
    ['R6: text glued to a bracketed IPv6 ad-hoc name', '[fd00::1]x/exports', {},
      "share '[fd00::1]x/exports' has 'x/exports' right after the bracketed IPv6 address: write the path after a colon, like [fd00::1]:/export"],
    ['R6: a bracketed IPv6 server without a path', 'pg', { share: '[fd00::1]' }, "share '[fd00::1]' has no path: give it as host:/path"],
    ['R6: brackets around something that is not an IPv6 address', 'pg', { share: '[fd00]:/x' },
      `share '[fd00]:/x' has an invalid server '[fd00]': ${INVALID_SERVER}`],
    ['R6: a scope id with a comma (it would reach addr=)', 'pg', { share: '[fe80::1%eth0,vers=2]:/x' },
      `share '[fe80::1%eth0,vers=2]:/x' has an invalid server '[fe80::1%eth0,vers=2]': ${INVALID_SERVER}`],
    ['R6: a bare IPv6 server with a scope id', 'pg', { share: 'fe80::1%eth0:/x' },
      "share 'fe80::1%eth0:/x': write IPv6 servers in brackets, like [fd00::1]:/export"],
  ])('%s', (_title, name, options, message) => {
    const check = () => nfsProtocol(V4).check({ name, options });
    expect(check).toThrow(ValidationError);
    expect(check).toThrow(message);
  });

  it('plan rejects what check rejects', async () => {
    await expect(nfsProtocol(V3).plan({ name: 'pg', options: { nfsopts: 'a b', share: 'nas:/x' } })).rejects.toThrow(
      "invalid option 'nfsopts': nfsopts may only contain letters, digits and _ . , = : / + @ % -",
    );
  });
});

describe('NFS options netvol refuses', () => {
  function expectValidation(run: () => unknown, message: string): void {
    expect(run).toThrow(ValidationError);
    expect(run).toThrow(message);
  }

  it.each<[string, string, string]>([
    ['R17: nfsopts bg is refused', 'bg', `nfsopts may not set 'bg': ${FOREGROUND}`],
    ['R17: nfsopts bg among other options is refused', 'hard,bg,timeo=600', `nfsopts may not set 'bg': ${FOREGROUND}`],
    ['R17: nfsopts fg is refused', 'fg', `nfsopts may not set 'fg': ${FOREGROUND}`],
  ])('%s', async (_title, nfsopts, message) => {
    for (const daemon of [V3, V4]) {
      const volume = { name: 'pg', options: { share: 'nas:/x', nfsopts } };
      expectValidation(() => nfsProtocol(daemon).check(volume), message);
      await expect(nfsProtocol(daemon).plan(volume)).rejects.toThrow(message);
    }
  });

  it.each<[string, NfsDaemonOptions, string]>([
    ['R17: a daemon -o with bg is refused at Create (v4)', { version: '4', options: 'bg' }, `the daemon's -o may not set 'bg': ${FOREGROUND}`],
    ['R17: a daemon -o with fg is refused at Create (v3)', { version: '3', options: 'hard,fg' }, `the daemon's -o may not set 'fg': ${FOREGROUND}`],
  ])('%s', (_title, daemon, message) => {
    expectValidation(() => nfsProtocol(daemon).check({ name: 'nas/x', options: {} }), message);
  });

  it('R17: checkNfsDaemonOptions refuses bg and fg in the daemon -o and accepts the rest', () => {
    expectValidation(() => checkNfsDaemonOptions({ version: '4', options: 'hard,bg' }), `the daemon's -o may not set 'bg': ${FOREGROUND}`);
    expectValidation(() => checkNfsDaemonOptions({ version: '3', options: 'fg' }), `the daemon's -o may not set 'fg': ${FOREGROUND}`);
    expect(() => checkNfsDaemonOptions({ version: '3', options: 'hard,intr,nolock' })).not.toThrow();
    expect(() => checkNfsDaemonOptions({ version: '4' })).not.toThrow();
  });
});

describe('nfsMountPlan', () => {
  it('names the server for error messages', () => {
    expect(nfsMountPlan({ host: '[fd00::5]', path: '/a' }, {}, V3)).toEqual({
      fsType: 'nfs',
      source: '[fd00::5]:/a',
      options: ['nfsvers=3', 'port=2049', 'nolock', 'proto=tcp'],
      server: '[fd00::5]',
    });
  });

  it('advertises its option keys and has no secrets', () => {
    const handler = nfsProtocol(V4);
    expect([handler.protocol, handler.optionKeys, handler.secretKeys]).toEqual(['nfs', ['share', 'create', 'nfsopts', 'version', 'uid', 'gid', 'mode', 'onDelete', 'type', 'o', 'device'], []]);
  });
});

describe('mountArgv', () => {
  const plan = { fsType: 'nfs4', source: 'nas:/x', options: ['hard'], server: 'nas' };

  it.each<[string, string | undefined, string[]]>([
    ['without a credentials file', undefined, ['-t', 'nfs4', '-o', 'hard', '--', 'nas:/x', '/m']],
    ['with a credentials file, which comes first', '/run/c', ['-t', 'nfs4', '-o', 'credentials=/run/c,hard', '--', 'nas:/x', '/m']],
    ['with an empty credentials path (ignored)', '', ['-t', 'nfs4', '-o', 'hard', '--', 'nas:/x', '/m']],
  ])('%s', (_title, file, want) => {
    expect(mountArgv(plan, '/m', file)).toEqual(want);
  });

  it('does not modify the plan options', () => {
    mountArgv(plan, '/m', '/run/c');
    expect(plan.options).toEqual(['hard']);
  });
});
