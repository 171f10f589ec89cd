import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { archiveName } from '../../src/core/volume-driver.js';
import { cifsProtocol } from '../../src/protocols/cifs.js';
import { efsProtocol } from '../../src/protocols/efs.js';
import { foldLocalDriverOptions } from '../../src/protocols/local-driver-options.js';
import { nfsProtocol } from '../../src/protocols/nfs.js';
import { CommandFailedError } from '../../src/system/command-runner.js';
import { driverFixture, type DriverFixture } from '../support/fakes.js';

const nfs = nfsProtocol({ version: '4' });
const cifs = cifsProtocol({}, async () => undefined);
const ID_A = 'a'.repeat(64);

describe("the local driver's option names", () => {
  it.each<[string, 'nfs' | 'cifs', Record<string, string>, Record<string, string>]>([
    ['nfs: addr folded into the share, the rest into nfsopts', 'nfs', { type: 'nfs', o: 'addr=10.0.0.5,rw,nfsvers=4', device: ':/exports/pg' },
      { share: '10.0.0.5:/exports/pg', nfsopts: 'rw,nfsvers=4' }],
    ['nfs: the server in device', 'nfs', { type: 'nfs', device: '10.0.0.5:/exports/pg' }, { share: '10.0.0.5:/exports/pg' }],
    ['nfs: type=nfs4 means version 4', 'nfs', { type: 'nfs4', o: 'addr=10.0.0.5', device: ':/x' }, { share: '10.0.0.5:/x', version: '4' }],
    ['nfs: an IPv6 addr is bracketed', 'nfs', { type: 'nfs', o: 'addr=fd00::5', device: ':/x' }, { share: '[fd00::5]:/x' }],
    ['nfs: other keys are kept', 'nfs', { type: 'nfs', o: 'addr=h', device: ':/x', uid: '1000' }, { share: 'h:/x', uid: '1000' }],
    ['cifs: credentials in o become netvol options', 'cifs', { type: 'cifs', o: 'addr=10.0.0.7,username=alice,password=pw,vers=3.0', device: '//fs/docs' },
      { share: '//10.0.0.7/docs', username: 'alice', password: 'pw', cifsopts: 'vers=3.0' }],
    ['cifs: a backslashed device', 'cifs', { type: 'cifs', device: '\\\\fs\\docs\\sub' }, { share: '//fs/docs/sub' }],
    ['without the local names nothing changes', 'nfs', { share: 'h:/x' }, { share: 'h:/x' }],
  ])('%s', (_title, protocol, options, want) => {
    expect(foldLocalDriverOptions(protocol, options)).toEqual(want);
  });

  it.each<[string, 'nfs' | 'cifs', Record<string, string>, string]>([
    ['share given twice', 'nfs', { share: 'h:/x', device: ':/y', o: 'addr=h' }, "option 'share' and the local driver's device/o=addr= both name the share; give it one way only"],
    ['nfsopts given twice', 'nfs', { o: 'addr=h,rw', device: ':/y', nfsopts: 'ro' }, "option 'nfsopts' and the local driver's o both set nfsopts; give it one way only"],
    ['version given twice', 'nfs', { type: 'nfs4', device: 'h:/y', version: '3' }, "option 'version' and the local driver's type=nfs4 both set version; give it one way only"],
    ['a cifs type on the nfs driver', 'nfs', { type: 'cifs', device: '//h/s' }, 'type=cifs is a cifs share and this is the nfs driver: create it with -d cifs (the netvol cifs daemon)'],
    ['an unknown type', 'nfs', { type: 'ext4', device: '/dev/sda' }, 'type=ext4 is not a share type netvol mounts; use type=nfs or nfs4'],
    ['a device without a server', 'nfs', { type: 'nfs', device: ':/y' }, "device ':/y' names no server: add o=addr=<server> or write device=<server>:/path"],
    ['two servers', 'nfs', { device: 'a:/y', o: 'addr=b' }, "device 'a:/y' names server a but o=addr= says b; give the server once"],
    ['a cifs device that is no share', 'cifs', { type: 'cifs', device: 'fs/docs' }, "device 'fs/docs' is not a CIFS share like //fileserver/docs"],
    ['a password given twice', 'cifs', { device: '//fs/d', o: 'password=a', password: 'b' }, "option 'password' and the local driver's o=password= both set password; give it one way only"],
  ])('refuses %s', (_title, protocol, options, message) => {
    expect(() => foldLocalDriverOptions(protocol, options)).toThrow(message);
  });

  it('a local-driver style Create checks out like netvol names, and unknown keys still name the accepted ones', () => {
    expect(nfs.check({ name: 'pg', options: { type: 'nfs', o: 'addr=10.0.0.5,rw,nfsvers=4', device: ':/exports/pg' } })).toMatchObject({ share: '10.0.0.5:/exports/pg' });
    expect(() => nfs.check({ name: 'pg', options: { share: 'h:/x', typo: '1' } })).toThrow(
      "unknown option 'typo' for nfs volumes; accepted options: share, create, nfsopts, version, uid, gid, mode, onDelete, type, o, device",
    );
  });
});

describe('provisioning options', () => {
  it.each<[string, Record<string, string>, string]>([
    ['uid', { uid: 'alice' }, "invalid option 'uid': uid must be a numeric user id like 1000"],
    ['gid', { gid: '-1' }, "invalid option 'gid': gid must be a numeric group id like 1000"],
    ['mode', { mode: '0999' }, "invalid option 'mode': mode must be an octal mode like 0750"],
    ['onDelete', { onDelete: 'shred' }, "invalid option 'onDelete': onDelete must be one of retain, delete, archive"],
  ])('refuses a bad %s', (_key, extra, message) => {
    expect(() => nfs.check({ name: 'pg', options: { share: 'h:/x', create: 'true', ...extra } })).toThrow(message);
  });

  it('refuses owner, mode and delete/archive for a volume that is the share itself', () => {
    expect(() => nfs.check({ name: 'pg', options: { share: 'h:/x', uid: '1000', onDelete: 'delete' } })).toThrow(
      'uid, onDelete=delete apply to a directory netvol makes for the volume, and this volume is the share itself: add -o create=true (a directory named after the volume), use a share#subdirectory name, or start the daemon with --share',
    );
    expect(nfs.check({ name: 'pg', options: { share: 'h:/x', onDelete: 'retain' } }).subdirectory).toBeUndefined();
  });

  it('a plain name under a default share is the directory of that name; a share of its own and ad-hoc names win', () => {
    expect(nfs.check({ name: 'pgdata', options: {}, defaultShare: '10.0.0.5:/exports' })).toMatchObject({ share: '10.0.0.5:/exports', subdirectory: 'pgdata' });
    expect(nfs.check({ name: 'pgdata', options: { share: 'h:/own' }, defaultShare: '10.0.0.5:/exports' })).toMatchObject({ share: 'h:/own', subdirectory: undefined });
    expect(nfs.check({ name: '10.0.0.6/x', options: {}, defaultShare: '10.0.0.5:/exports' })).toMatchObject({ share: '10.0.0.6:/x' });
    expect(efsProtocol({ region: 'eu-west-1', noResolve: false }).check({ name: 'data', options: {}, defaultShare: 'fs-12345678' })).toMatchObject({
      share: 'fs-12345678:/',
      subdirectory: 'data',
    });
  });

  it("CIFS: uid, gid and mode are also the mount's uid=, gid= and dir_mode=", async () => {
    const plan = await cifs.plan({ name: 'docs', options: { share: '//fs/docs', uid: '1000', gid: '1001', mode: '750' } });
    expect(plan.options).toEqual(['guest', 'dir_mode=0750', 'uid=1000', 'gid=1001']);
    expect(() => cifs.check({ name: 'docs', options: { share: '//fs/docs', uid: '1000', cifsopts: 'uid=0' } })).toThrow(
      'uid is given both as the volume option uid and in cifsopts; give it once',
    );
  });

  it('archive names sort by time and stay one path segment', () => {
    expect(archiveName('pg', new Date('2026-12-02T05:15:00.123Z'))).toBe('archived-pg-20261202T051500Z');
  });
});

describe('provisioning in the driver', () => {
  let f: DriverFixture | undefined;
  afterEach(async () => {
    await f?.cleanup();
    f = undefined;
  });
  const helperCalls = (fixture: DriverFixture) =>
    fixture.runner.calls.filter((call) => call.file === process.execPath).map((call) => [call.args[1], ...call.args.slice(3)]);

  it('a volume with no options under --share is made with the owner and mode asked for, once, on first use', async () => {
    f = await driverFixture(nfs, 200, 0, { defaultShare: '10.0.0.5:/exports' });
    await f.driver.create('pgdata', {});
    await f.driver.create('app', { uid: '999', gid: '998', mode: '0750' });
    expect(f.state.volumes['pgdata']).toMatchObject({ share: '10.0.0.5:/exports', subdirectory: 'pgdata', defaultShare: '10.0.0.5:/exports', onDelete: 'retain' });
    f.runner.next.push(
      () => ({ stdout: '', stderr: '' }),
      () => ({ stdout: '{"made":true,"uid":999,"gid":998,"mode":"750"}\n', stderr: '' }),
    );
    expect(await f.driver.mount('app', ID_A)).toBe(join(f.root, 'app'));
    expect(helperCalls(f)).toEqual([['make', 'app', '750', '999', '998']]);
    expect(f.state.volumes['app']?.directoryMade).toBe(true);
    expect(f.runner.mounts().at(-1)?.args.at(-2)).toBe('10.0.0.5:/exports/app');
  });

  it.each<['delete' | 'archive', string]>([
    ['delete', 'remove app'],
    ['archive', 'rename app archived-app-20260102T030405Z'],
  ])('onDelete=%s acts on the directory netvol made, then the volume goes', async (policy, want) => {
    f = await driverFixture(nfs, 200, 0, { defaultShare: '10.0.0.5:/exports' });
    await f.driver.create('app', { onDelete: policy });
    f.runner.next.push(() => ({ stdout: '', stderr: '' }), () => ({ stdout: '{"made":true}\n', stderr: '' }));
    await f.driver.mount('app', ID_A);
    await f.driver.unmount('app', ID_A);
    await f.driver.remove('app');
    expect(helperCalls(f).map((call) => call.join(' '))).toEqual(['make app - - -', want]);
    expect(f.state.volumes['app']).toBeUndefined();
    expect(f.table.entries).toEqual([]);
  });

  it('the daemon-wide --on-delete applies to volumes that do not choose; retain touches nothing', async () => {
    f = await driverFixture(nfs, 200, 0, { defaultShare: '10.0.0.5:/exports', defaultOnDelete: 'delete' });
    await f.driver.create('a', {});
    await f.driver.create('b', { onDelete: 'retain' });
    expect([f.state.volumes['a']?.onDelete, f.state.volumes['b']?.onDelete]).toEqual(['delete', 'retain']);
  });

  it('a directory that existed before netvol used it is retained whatever the policy', async () => {
    f = await driverFixture(nfs, 200, 0, { defaultShare: '10.0.0.5:/exports' });
    await f.driver.create('app', { onDelete: 'delete' });
    f.runner.next.push(() => ({ stdout: '', stderr: '' }), () => ({ stdout: '{"made":false}\n', stderr: '' }));
    await f.driver.mount('app', ID_A);
    await f.driver.unmount('app', ID_A);
    await f.driver.remove('app');
    expect(helperCalls(f).map((call) => call[0])).toEqual(['make']);
    expect(f.lines.join('')).toContain('Subdirectory retained: it existed before netvol used it');
  });

  it('a failed delete leaves the volume in place with an error that says what to do', async () => {
    f = await driverFixture(nfs, 200, 0, { defaultShare: '10.0.0.5:/exports' });
    await f.driver.create('app', { onDelete: 'delete' });
    f.runner.next.push(() => ({ stdout: '', stderr: '' }), () => ({ stdout: '{"made":true}\n', stderr: '' }));
    await f.driver.mount('app', ID_A);
    await f.driver.unmount('app', ID_A);
    f.runner.next.push(() => ({ stdout: '', stderr: '' }), (command) => new CommandFailedError(command, 1, 'EACCES: permission denied, rmdir', ''));
    await expect(f.driver.remove('app')).rejects.toThrow(
      "volume 'app' was not removed: onDelete=delete of app on 10.0.0.5:/exports failed: deleting app on 10.0.0.5:/exports failed: EACCES: permission denied, rmdir; the volume and its data are as they were, fix the cause and remove it again",
    );
    expect(f.state.volumes['app']).toBeDefined();
    expect(f.table.entries).toEqual([]);
  });
});
