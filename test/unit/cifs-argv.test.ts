import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import {
  checkCifsDaemonOptions,
  cifsMountPlan,
  cifsProtocol,
  parseCifsShare,
  resolveCifsCredentials,
  type CifsDaemonOptions,
  type CifsShare,
  type CifsVolumeOptions,
} from '../../src/protocols/cifs.js';
import { mountArgv, type Credentials } from '../../src/protocols/mount-plan.js';
import type { NetrcEntry } from '../../src/protocols/netrc.js';

const TARGET = '/var/lib/docker-volumes/netshare/cifs/fs/public';
const CREDS_FILE = '/run/netvol/secrets/cred-1';
const SHARE: CifsShare = { host: 'fs', path: 'public' };
const ALICE: Credentials = { username: 'alice', password: 'pa55,word=x', domain: undefined };
const INVALID_SERVER = 'use a host name, an IPv4 address or a bracketed IPv6 address like [fd00::1]';
const DAEMON = "the daemon's -o";
const CREDENTIALS = 'use the username and password options (kept out of the command line)';
const CONNECTION =
  'it would make mount.cifs connect to another server or share than the share option names, presenting the credentials chosen for that server; name the server and share in the share option instead, like -o share=//fileserver/docs';
const DOMAIN =
  "set the domain with netvol's domain option instead (docker volume create -o domain=..., or the daemon's --domain): it goes into the credentials file with the username and password";
const NOFAIL =
  'with nofail, mount.cifs exits 0 when it cannot reach the server, before anything is mounted, so netvol would hand out an empty local directory; remove it';

type Options = Record<string, string>;

function expectValidation(run: () => unknown, message: string): void {
  expect(run).toThrow(ValidationError);
  expect(run).toThrow(message);
}

describe('parseCifsShare', () => {
  it.each<[string, CifsShare]>([
    ['fs/public', { host: 'fs', path: 'public' }],
    ['fs/public/', { host: 'fs', path: 'public' }],
    ['fs/public/sub/dir', { host: 'fs', path: 'public/sub/dir' }],
    ['//fs/public', { host: 'fs', path: 'public' }],
    ['//fs//public/./sub', { host: 'fs', path: 'public/sub' }],
    ['fs:/public', { host: 'fs', path: 'public' }],
    ['fs:public', { host: 'fs', path: 'public' }],
    ['\\\\fs\\public\\sub', { host: 'fs', path: 'public/sub' }],
    ['  10.0.0.7/data  ', { host: '10.0.0.7', path: 'data' }],
    ['files.example.com/Team Share', { host: 'files.example.com', path: 'Team Share' }],
  ])('%j', (share, want) => {
    expect(parseCifsShare(share)).toEqual(want);
  });

  it.each<[string, string]>([
    ['fs', "share 'fs' must name a server and a share, like fileserver/public"],
    ['//fs/', "share '//fs/' must name a server and a share, like fileserver/public"],
    ['', "share '' must name a server and a share, like fileserver/public"],
    ['fs/pub\nlic', "share 'fs/pub\nlic' contains a control character"],
    ['-oguest/public', `share '-oguest/public' has an invalid server '-oguest': ${INVALID_SERVER}`],
    ['a,ip=1.2.3.4/public', `share 'a,ip=1.2.3.4/public' has an invalid server 'a,ip=1.2.3.4': ${INVALID_SERVER}`],
  ])('rejects %j', (share, message) => {
    expectValidation(() => parseCifsShare(share), message);
  });

  // The host:/share rewrite must not cut an IPv6 server at its first colon.
  it.each<[string, CifsShare]>([
    ['[fd00::1]/public', { host: 'fd00::1', path: 'public' }],
    ['//[fd00::1]/public', { host: 'fd00::1', path: 'public' }],
    ['[fd00::1]:/public/sub', { host: 'fd00::1', path: 'public/sub' }],
    ['//fd00::1/public', { host: 'fd00::1', path: 'public' }],
    ['\\\\fd00::1\\public', { host: 'fd00::1', path: 'public' }],
    ['//fe80::1%lo/public', { host: 'fe80::1%lo', path: 'public' }],
    ['[fe80::1%eth0.100]/public', { host: 'fe80::1%eth0.100', path: 'public' }],
  ])('R6: takes the IPv6 server in %j without brackets, as mount.cifs resolves it', (share, want) => {
    expect(parseCifsShare(share)).toEqual(want);
  });

  it.each<[string, string]>([
    ['fd00::1/public', "share 'fd00::1/public': write an IPv6 server in brackets or as a UNC path, like [fd00::1]/public or //fd00::1/public"],
    ['fd00::1:/public', "share 'fd00::1:/public': write an IPv6 server in brackets or as a UNC path, like [fd00::1]/public or //fd00::1/public"],
    ['//fd00::zz/public', `share '//fd00::zz/public' has an invalid server '[fd00::zz]': ${INVALID_SERVER}`],
    ['[fd00::1]x/public', `share '[fd00::1]x/public' has an invalid server '[fd00::1]x': ${INVALID_SERVER}`],
  ])('R6: rejects the IPv6 form %j', (share, message) => {
    expectValidation(() => parseCifsShare(share), message);
  });
});

describe('cifsMountPlan', () => {
  it.each<[string, CifsVolumeOptions, CifsDaemonOptions, Credentials | undefined, string[]]>([
    ['guest without credentials', {}, {}, undefined, ['guest']],
    ['no guest with credentials', {}, {}, ALICE, []],
    ['security → sec=', { security: 'ntlmssp' }, {}, ALICE, ['sec=ntlmssp']],
    ['fileMode and dirMode', { fileMode: '0644', dirMode: '0755' }, {}, ALICE, ['file_mode=0644', 'dir_mode=0755']],
    ['cifsopts last', { cifsopts: 'vers=3.0,rw', security: 'krb5' }, {}, undefined, ['guest', 'sec=krb5', 'vers=3.0', 'rw']],
    ['daemon defaults', {}, { security: 'ntlmv2', fileMode: '0600', dirMode: '0700', options: 'vers=2.1' }, ALICE,
      ['sec=ntlmv2', 'file_mode=0600', 'dir_mode=0700', 'vers=2.1']],
    ['volume options replace daemon defaults', { security: 'ntlmssp', fileMode: '0644', cifsopts: 'ro' },
      { security: 'ntlmv2', fileMode: '0600', options: 'vers=2.1' }, ALICE, ['sec=ntlmssp', 'file_mode=0644', 'ro']],
  ])('%s', (_title, volume, daemon, credentials, options) => {
    const plan = cifsMountPlan(SHARE, volume, daemon, credentials);
    expect(plan).toEqual({ fsType: 'cifs', source: '//fs/public', options, server: 'fs', ...(credentials ? { credentials } : {}) });
  });

  it.each<[string, string, string, string]>([
    ['rejects cifsopts password=', 'password=hunter2', 'password', CREDENTIALS],
    ['rejects cifsopts username=', 'rw,username=bob', 'username', CREDENTIALS],
    ['rejects cifsopts user=', 'user=bob', 'user', CREDENTIALS],
    ['rejects cifsopts pass=', 'pass=x', 'pass', CREDENTIALS],
    ['rejects cifsopts password2=', 'password2=x', 'password2', CREDENTIALS],
    ['rejects cifsopts credentials=', 'credentials=/etc/other', 'credentials', CREDENTIALS],
    ['rejects cifsopts cred=', 'cred=/etc/other', 'cred', CREDENTIALS],
    ['R5: cifsopts ip= is refused', 'vers=3.0,ip=10.6.6.6', 'ip', CONNECTION],
    ['R5: cifsopts addr= is refused', 'addr=10.6.6.6', 'addr', CONNECTION],
    ['R5: cifsopts source= is refused (the kernel re-reads the UNC and server name from it)', 'source=//evil/share', 'source', CONNECTION],
    ['R5: cifsopts unc= is refused (reaches the kernel after mount.cifs own unc=)', 'unc=//evil/share', 'unc', CONNECTION],
    ['R5: cifsopts target= is refused', 'target=//evil/share', 'target', CONNECTION],
    ['R5: cifsopts path= is refused', 'path=//evil/share', 'path', CONNECTION],
    ['R5: cifsopts domain= is refused', 'domain=OTHER', 'domain', DOMAIN],
    ['R5: cifsopts dom= is refused', 'rw,dom=OTHER', 'dom', DOMAIN],
    ['R5: cifsopts workgroup= is refused', 'workgroup=OTHER', 'workgroup', DOMAIN],
    ['R17: cifsopts nofail is refused', 'vers=3.0,nofail', 'nofail', NOFAIL],
  ])('%s', (_title, options, key, reason) => {
    expectValidation(() => cifsMountPlan(SHARE, { cifsopts: options }, {}, undefined), `cifsopts may not set '${key}': ${reason}`);
    // The daemon's -o is what the error names when a volume gives no cifsopts of its own.
    expectValidation(() => cifsMountPlan(SHARE, {}, { options }, ALICE), `${DAEMON} may not set '${key}': ${reason}`);
  });
});

describe('checkCifsDaemonOptions', () => {
  it.each<[string, string, string]>([
    ['R17: refuses nofail in the daemon -o', 'vers=3.0,nofail', `${DAEMON} may not set 'nofail': ${NOFAIL}`],
    ['R5: refuses ip= in the daemon -o', 'ip=10.6.6.6', `${DAEMON} may not set 'ip': ${CONNECTION}`],
    ['R5: refuses domain= in the daemon -o', 'domain=OTHER', `${DAEMON} may not set 'domain': ${DOMAIN}`],
    ['R5: refuses credentials in the daemon -o', 'pass=x', `${DAEMON} may not set 'pass': ${CREDENTIALS}`],
  ])('%s', (_title, options, message) => {
    expectValidation(() => checkCifsDaemonOptions({ options }), message);
  });

  it('R17: accepts a daemon -o without refused options, and none at all', () => {
    expect(() => checkCifsDaemonOptions({ options: 'vers=3.0,uid=1000,seal' })).not.toThrow();
    expect(() => checkCifsDaemonOptions({})).not.toThrow();
  });
});

describe('CIFS mount argv', () => {
  it.each<[string, CifsVolumeOptions, Credentials | undefined, string | undefined, string[]]>([
    ['guest', {}, undefined, undefined, ['-t', 'cifs', '-o', 'guest', '--', '//fs/public', TARGET]],
    ['credentials file only', {}, ALICE, CREDS_FILE, ['-t', 'cifs', '-o', `credentials=${CREDS_FILE}`, '--', '//fs/public', TARGET]],
    ['credentials file first, then the rest', { security: 'ntlmssp', fileMode: '0644', dirMode: '0755', cifsopts: 'vers=3.0' },
      ALICE, CREDS_FILE,
      ['-t', 'cifs', '-o', `credentials=${CREDS_FILE},sec=ntlmssp,file_mode=0644,dir_mode=0755,vers=3.0`, '--', '//fs/public', TARGET]],
  ])('%s', (_title, volume, credentials, file, want) => {
    const argv = mountArgv(cifsMountPlan(SHARE, volume, {}, credentials), TARGET, file);
    expect(argv).toEqual(want);
    expect(argv.join(' ')).not.toContain('pa55');
    expect(argv.join(' ')).not.toContain('alice');
  });

  // mount.cifs 7.0 -f -v: //[fd00::1]/share fails with "could not resolve address for [fd00::1]",
  // //fd00::1/share gives "ip=fd00::1,unc=\\fd00::1\share".
  it.each<[string, string, string]>([
    ['R6: a bracketed IPv6 share is mounted as a bare-address UNC', '[fd00::1]/public', '//fd00::1/public'],
    ['R6: a bracketed IPv6 UNC is mounted without its brackets', '//[fd00::1]/public/sub', '//fd00::1/public/sub'],
    ['R6: a bare-address UNC is mounted as given', '//fd00::1/public', '//fd00::1/public'],
    ['R6: a link-local IPv6 UNC keeps its scope id', '//fe80::1%lo/public', '//fe80::1%lo/public'],
  ])('%s', async (_title, share, source) => {
    const plan = await cifsProtocol({}, async () => undefined).plan({ name: 'v', options: { share } });
    expect(mountArgv(plan, TARGET)).toEqual(['-t', 'cifs', '-o', 'guest', '--', source, TARGET]);
  });
});

describe('resolveCifsCredentials', () => {
  const daemon: CifsDaemonOptions = { username: 'daemon-user', password: 'daemon-pw', domain: 'DAEMONDOM' };
  const netrc: NetrcEntry = { login: 'netrc-user', password: 'netrc-pw', account: 'NETRCDOM' };

  it.each<[string, CifsVolumeOptions, NetrcEntry | undefined, CifsDaemonOptions, Credentials | undefined]>([
    ['volume wins over netrc and daemon', { username: 'vol', password: 'vol-pw', domain: 'VOLDOM' }, netrc, daemon,
      { username: 'vol', password: 'vol-pw', domain: 'VOLDOM' }],
    ['volume without domain takes the daemon domain', { username: 'vol', password: 'vol-pw' }, netrc, daemon,
      { username: 'vol', password: 'vol-pw', domain: 'DAEMONDOM' }],
    ['volume password alone', { password: 'vol-pw' }, netrc, {}, { username: '', password: 'vol-pw', domain: undefined }],
    ['netrc wins over daemon, account as domain', {}, netrc, daemon,
      { username: 'netrc-user', password: 'netrc-pw', domain: 'NETRCDOM' }],
    ['netrc with the volume domain', { domain: 'VOLDOM' }, netrc, daemon,
      { username: 'netrc-user', password: 'netrc-pw', domain: 'VOLDOM' }],
    ['netrc without account takes the daemon domain', {}, { login: 'n', password: 'p' }, daemon,
      { username: 'n', password: 'p', domain: 'DAEMONDOM' }],
    ['netrc login without password', {}, { login: 'n' }, {}, { username: 'n', password: '', domain: undefined }],
    ['netrc without login falls back to the daemon', {}, { password: 'p' }, daemon,
      { username: 'daemon-user', password: 'daemon-pw', domain: 'DAEMONDOM' }],
    ['daemon flags last', {}, undefined, daemon, { username: 'daemon-user', password: 'daemon-pw', domain: 'DAEMONDOM' }],
    ['daemon flags with the volume domain', { domain: 'VOLDOM' }, undefined, daemon,
      { username: 'daemon-user', password: 'daemon-pw', domain: 'VOLDOM' }],
    ['nothing anywhere: guest', {}, undefined, {}, undefined],
    ['a domain alone is not credentials', { domain: 'VOLDOM' }, undefined, { domain: 'D' }, undefined],
  ])('%s', (_title, volume, entry, daemonOptions, want) => {
    expect(resolveCifsCredentials(volume, entry, daemonOptions)).toEqual(want);
  });
});

describe('cifsProtocol', () => {
  /** A .netrc lookup that records what it was asked. */
  function fakeNetrc(entries: Record<string, NetrcEntry>) {
    const calls: Array<[string, string]> = [];
    const lookup = async (dir: string, host: string) => {
      calls.push([dir, host]);
      return entries[host];
    };
    return { calls, lookup };
  }

  it.each<[string, CifsDaemonOptions, string, Options, Array<[string, string]>, Credentials | undefined, string[]]>([
    ['netrc entry for the server', { netrcDir: '/root' }, 'fs/public', {}, [['/root', 'fs']],
      { username: 'n', password: 'np', domain: undefined }, []],
    ['no netrc entry for the server: guest', { netrcDir: '/root' }, 'other/public', {}, [['/root', 'other']], undefined, ['guest']],
    ['volume credentials skip the netrc', { netrcDir: '/root' }, 'fs/public', { username: 'v', password: 'vp' }, [],
      { username: 'v', password: 'vp', domain: undefined }, []],
    ['no netrc directory: daemon flags', { username: 'd', password: 'dp' }, 'fs/public', {}, [],
      { username: 'd', password: 'dp', domain: undefined }, []],
    ['share option with security', { netrcDir: '/home/u' }, 'data', { share: '//fs/public', security: 'ntlmssp' }, [['/home/u', 'fs']],
      { username: 'n', password: 'np', domain: undefined }, ['sec=ntlmssp']],
    ['R6: the .netrc entry of an IPv6 server is the address without brackets', { netrcDir: '/root' }, 'data',
      { share: '[fd00::1]/public' }, [['/root', 'fd00::1']], undefined, ['guest']],
  ])('%s', async (_title, daemon, name, options, calls, credentials, planOptions) => {
    const netrc = fakeNetrc({ fs: { login: 'n', password: 'np' } });
    const plan = await cifsProtocol(daemon, netrc.lookup).plan({ name, options });
    expect(netrc.calls).toEqual(calls);
    expect(plan.credentials).toEqual(credentials);
    expect(plan.options).toEqual(planOptions);
  });

  it.each<[string, string, Options, { share: string; subdirectory?: string | undefined }]>([
    ['ad-hoc name', 'fs/public', {}, { share: '//fs/public', subdirectory: undefined }],
    ['ad-hoc name with #sub', 'fs/public#team', {}, { share: '//fs/public', subdirectory: 'team' }],
    ['share option with create', 'team', { share: '\\\\fs\\public', create: 'yes' }, { share: '//fs/public', subdirectory: 'team' }],
    ['R6: a bracketed IPv6 share is shown as the UNC that is mounted', 'team', { share: '[fd00::1]/public' },
      { share: '//fd00::1/public', subdirectory: undefined }],
  ])('check: %s', (_title, name, options, want) => {
    expect(cifsProtocol({}, fakeNetrc({}).lookup).check({ name, options })).toEqual(want);
  });

  it.each<[string, Options, string]>([
    ['R5: cifsopts ip= is refused', { share: 'fs/public', cifsopts: 'rw,ip=10.6.6.6' }, `cifsopts may not set 'ip': ${CONNECTION}`],
    ['R5: cifsopts workgroup= is refused', { share: 'fs/public', cifsopts: 'workgroup=OTHER' }, `cifsopts may not set 'workgroup': ${DOMAIN}`],
    ['R17: cifsopts nofail is refused', { share: 'fs/public', cifsopts: 'nofail' }, `cifsopts may not set 'nofail': ${NOFAIL}`],
    ['cifsopts smuggling password=', { share: 'fs/public', cifsopts: 'rw,password=x' },
      "cifsopts may not set 'password': use the username and password options (kept out of the command line)"],
    ['cifsopts smuggling username=', { share: 'fs/public', cifsopts: 'username=x' },
      "cifsopts may not set 'username': use the username and password options (kept out of the command line)"],
    ['cifsopts smuggling credentials=', { share: 'fs/public', cifsopts: 'credentials=/etc/x' },
      "cifsopts may not set 'credentials': use the username and password options (kept out of the command line)"],
    ['username with a newline', { share: 'fs/public', username: 'bob\npassword=x' },
      "invalid option 'username': username may not contain control characters or newlines"],
    ['password with a newline', { share: 'fs/public', password: 'pw\nusername=root' },
      "invalid option 'password': password may not contain control characters or newlines"],
    ['domain with a carriage return', { share: 'fs/public', domain: 'D\r' },
      "invalid option 'domain': domain may not contain control characters or newlines"],
    ['cifsopts with a space', { share: 'fs/public', cifsopts: 'rw, ro' },
      "invalid option 'cifsopts': cifsopts may only contain letters, digits and _ . , = : / + @ % -"],
    ['bad fileMode', { share: 'fs/public', fileMode: '644x' }, "invalid option 'fileMode': fileMode must be an octal mode like 0644"],
    ['bad dirMode', { share: 'fs/public', dirMode: '0999' }, "invalid option 'dirMode': dirMode must be an octal mode like 0755"],
    ['bad security', { share: 'fs/public', security: 'ntlm,guest' },
      "invalid option 'security': security must be a cifs sec= value like ntlmssp or krb5"],
    ['unknown option', { share: 'fs/public', user: 'bob' },
      "unknown option 'user' for cifs volumes; accepted options: share, create, cifsopts, username, password, domain, security, fileMode, dirMode"],
  ])('check rejects %s', (_title, options, message) => {
    expectValidation(() => cifsProtocol({}, fakeNetrc({}).lookup).check({ name: 'v', options }), message);
  });

  it('rejects a daemon -o that smuggles a password at Create', () => {
    const handler = cifsProtocol({ options: 'pass=x' }, fakeNetrc({}).lookup);
    expectValidation(() => handler.check({ name: 'fs/public', options: {} }), `${DAEMON} may not set 'pass': ${CREDENTIALS}`);
  });

  it.each<[string, string, string]>([
    ['R17: a daemon -o with nofail is refused at Create', 'nofail', `${DAEMON} may not set 'nofail': ${NOFAIL}`],
    ['R5: a daemon -o with addr= is refused at Create', 'addr=10.6.6.6', `${DAEMON} may not set 'addr': ${CONNECTION}`],
  ])('%s', (_title, options, message) => {
    const handler = cifsProtocol({ options }, fakeNetrc({}).lookup);
    expectValidation(() => handler.check({ name: 'fs/public', options: {} }), message);
  });

  it("marks password, and the local driver's o (it may carry password=), as secret keys", () => {
    const handler = cifsProtocol({}, fakeNetrc({}).lookup);
    expect([handler.protocol, handler.secretKeys]).toEqual(['cifs', ['password', 'o']]);
  });
});
