import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { EFS_MOUNT_OPTIONS, efsMountPlan, efsProtocol, parseEfsShare, type EfsDaemonOptions } from '../../src/protocols/efs.js';
import { mountArgv } from '../../src/protocols/mount-plan.js';

const TARGET = '/var/lib/docker-volumes/netshare/efs/data';
const AWS_OPTIONS = 'nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport';
const RESOLVE: EfsDaemonOptions = { region: 'us-east-1', noResolve: false };
const NO_RESOLVE: EfsDaemonOptions = { noResolve: true };
const DNS = 'fs-12345678.efs.us-east-1.amazonaws.com';
const INVALID_SERVER = 'use a host name, an IPv4 address or a bracketed IPv6 address like [fd00::1]';

type Options = Record<string, string>;

function notAnId(share: string): string {
  return `share '${share}' is not an EFS file system id like fs-12345678 (start the daemon with --noresolve to give a server address instead)`;
}

describe('EFS mount argv', () => {
  it.each<[string, EfsDaemonOptions, string, Options, string]>([
    ['share = fs id', RESOLVE, 'data', { share: 'fs-12345678' }, `${DNS}:/`],
    ['share = fs id/sub/dir', RESOLVE, 'data', { share: 'fs-12345678/sub/dir' }, `${DNS}:/sub/dir`],
    ['share = fs id:/sub/dir', RESOLVE, 'data', { share: 'fs-12345678:/sub/dir' }, `${DNS}:/sub/dir`],
    ['share with doubled and trailing slashes', RESOLVE, 'data', { share: 'fs-12345678//sub//dir/' }, `${DNS}:/sub/dir`],
    ['long fs id', RESOLVE, 'data', { share: 'fs-0123456789abcdef0' }, 'fs-0123456789abcdef0.efs.us-east-1.amazonaws.com:/'],
    ['other region', { region: 'eu-west-1', noResolve: false }, 'data', { share: 'fs-12345678' },
      'fs-12345678.efs.eu-west-1.amazonaws.com:/'],
    ['bare fs id as volume name', RESOLVE, 'fs-12345678', {}, `${DNS}:/`],
    ['ad-hoc fs id/sub name', RESOLVE, 'fs-12345678/sub/dir', {}, `${DNS}:/sub/dir`],
    ['ad-hoc fs id#sub mounts the root', RESOLVE, 'fs-12345678#sub', {}, `${DNS}:/`],
    ['--noresolve with an IP', NO_RESOLVE, 'data', { share: '10.0.1.20' }, '10.0.1.20:/'],
    ['--noresolve with an IP and a path', NO_RESOLVE, 'data', { share: '10.0.1.20:/sub' }, '10.0.1.20:/sub'],
    ['--noresolve with an IP as the volume name', NO_RESOLVE, '10.0.1.20', {}, '10.0.1.20:/'],
    ['--noresolve with a DNS name', NO_RESOLVE, 'data', { share: `${DNS}/sub` }, `${DNS}:/sub`],
    ['R6: --noresolve with a bracketed IPv6 server and a path', NO_RESOLVE, 'data', { share: '[fd00::1]:/data' }, '[fd00::1]:/data'],
    ['R6: --noresolve with a bracketed IPv6 server/path', NO_RESOLVE, 'data', { share: '[fd00::1]/data/sub' }, '[fd00::1]:/data/sub'],
    ['R6: --noresolve with a bracketed IPv6 server alone', NO_RESOLVE, 'data', { share: '[fd00::1]' }, '[fd00::1]:/'],
    ['R6: --noresolve with a bracketed IPv6 ad-hoc name', NO_RESOLVE, '[fd00::1]/data', {}, '[fd00::1]:/data'],
    ['R6: --noresolve with an IPv6 scope id', NO_RESOLVE, 'data', { share: '[fe80::1%eth0.100]:/data' }, '[fe80::1%eth0.100]:/data'],
  ])('%s', async (_title, daemon, name, options, source) => {
    const plan = await efsProtocol(daemon).plan({ name, options });
    expect(mountArgv(plan, TARGET)).toEqual(['-t', 'nfs4', '-o', AWS_OPTIONS, '--', source, TARGET]);
  });

  it('uses the AWS recommended NFS client options', () => {
    expect(EFS_MOUNT_OPTIONS).toEqual(AWS_OPTIONS.split(','));
  });

  it('names the resolved server in the plan', () => {
    expect(efsMountPlan({ target: 'fs-12345678', path: '/a' }, RESOLVE)).toEqual({
      fsType: 'nfs4',
      source: `${DNS}:/a`,
      options: EFS_MOUNT_OPTIONS,
      server: DNS,
    });
  });
});

describe('EFS check (Create)', () => {
  it.each<[EfsDaemonOptions, string, Options, { share: string; subdirectory?: string | undefined }]>([
    [RESOLVE, 'fs-12345678', {}, { share: 'fs-12345678:/', subdirectory: undefined }],
    [RESOLVE, 'fs-12345678#team', {}, { share: 'fs-12345678:/', subdirectory: 'team' }],
    [RESOLVE, 'data', { share: 'fs-12345678/sub', create: 'true' }, { share: 'fs-12345678:/sub', subdirectory: 'data' }],
    [NO_RESOLVE, 'data', { share: '10.0.1.20:/x' }, { share: '10.0.1.20:/x', subdirectory: undefined }],
  ])('%j %s %j', (daemon, name, options, want) => {
    expect(efsProtocol(daemon).check({ name, options })).toEqual(want);
  });
});

describe('EFS rejections', () => {
  it.each<[string, EfsDaemonOptions, string, Options, string]>([
    ['upper-case fs id', RESOLVE, 'data', { share: 'fs-ABCDEF12' }, notAnId('fs-ABCDEF12')],
    ['too short fs id', RESOLVE, 'data', { share: 'fs-1234567' }, notAnId('fs-1234567')],
    ['an IP without --noresolve', RESOLVE, 'data', { share: '10.0.1.20:/x' }, notAnId('10.0.1.20:/x')],
    ['a host/path name without --noresolve', RESOLVE, '10.0.1.20/x', {}, notAnId('10.0.1.20/x')],
    ['plain name without a share', RESOLVE, 'data', {},
      "volume 'data' has no share: create it with -o share=<server>:/<path>, or use the share as the volume name, like 192.168.1.10/exports/data"],
    ['server starting with - under --noresolve', NO_RESOLVE, 'data', { share: '-oremount:/x' },
      `share '-oremount:/x' has an invalid server '-oremount': ${INVALID_SERVER}`],
    ['control character in the path', RESOLVE, 'data', { share: 'fs-12345678/a\nb' }, "share 'fs-12345678/a\nb' contains a control character"],
    ['nfsopts are not an EFS option', RESOLVE, 'data', { share: 'fs-12345678', nfsopts: 'soft' },
      "unknown option 'nfsopts' for efs volumes; accepted options: share, create"],
    ['R6: text glued to a bracketed IPv6 server under --noresolve', NO_RESOLVE, 'data', { share: '[fd00::1]garbage/x' },
      "share '[fd00::1]garbage/x' has 'garbage/x' right after the bracketed IPv6 address: write the path after a colon, like [fd00::1]:/export"],
    ['R6: a bare IPv6 server under --noresolve', NO_RESOLVE, 'data', { share: 'fd00::1:/data' },
      "share 'fd00::1:/data': write IPv6 servers in brackets, like [fd00::1]:/export"],
    ['R6: an unclosed IPv6 bracket under --noresolve', NO_RESOLVE, 'data', { share: '[fd00::1:/data' },
      "share '[fd00::1:/data' has an unclosed '[' in its IPv6 address"],
    ['R6: a bracketed IPv6 server without --noresolve', RESOLVE, 'data', { share: '[fd00::1]:/data' }, notAnId('[fd00::1]:/data')],
  ])('%s', (_title, daemon, name, options, message) => {
    const check = () => efsProtocol(daemon).check({ name, options });
    expect(check).toThrow(ValidationError);
    expect(check).toThrow(message);
  });

  it('parseEfsShare refuses a non-id without --noresolve', () => {
    expect(() => parseEfsShare('nas', RESOLVE)).toThrow(notAnId('nas'));
  });
});
