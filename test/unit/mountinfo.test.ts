import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseMountInfo, parseMountInfoLine, unescapeMountPath, type MountInfoEntry } from '../../src/system/mountinfo.js';
import { findMount, mountsBelow, ProcMountTable } from '../../src/system/mount-table.js';
import { tempDir } from '../support/fakes.js';

const ROOT = '/var/lib/docker-volumes/netshare';

/** Verbatim from /proc/self/mountinfo of the build machine (no optional fields; two overmounts). */
const BUILD_MACHINE = `22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334524k,nr_inodes=3083631,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684096k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684096k
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
`;

/** A Debian 12 guest with netshare-layout mounts: NFS v4.2, NFS v3, CIFS, and escaped names. */
const DEBIAN_GUEST = [
  '29 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro',
  `123 29 0:52 / ${ROOT}/nfs/v1 rw,relatime shared:80 - nfs4 10.0.0.5:/exports/a rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.10,local_lock=none,addr=10.0.0.5`,
  `124 29 0:53 / ${ROOT}/nfs/10.0.0.5/exports/b rw,relatime shared:81 - nfs 10.0.0.5:/exports/b rw,vers=3,rsize=1048576,wsize=1048576,namlen=255,hard,nolock,proto=tcp,port=2049,timeo=600,retrans=2,sec=sys,mountaddr=10.0.0.5,mountvers=3,mountport=2049,mountproto=tcp,local_lock=all,addr=10.0.0.5`,
  `125 29 0:54 / ${ROOT}/cifs/fs/public rw,relatime shared:82 - cifs //fs/public rw,vers=3.1.1,cache=strict,username=alice,uid=0,noforceuid,gid=0,noforcegid,addr=10.0.0.7,file_mode=0755,dir_mode=0755,soft,nounix,serverino,mapposix,rsize=4194304,wsize=4194304,bsize=1048576,echo_interval=60,actimeo=1,closetimeo=1`,
  `126 29 0:55 /sub ${ROOT}/nfs/my\\040vol rw,relatime shared:83 master:12 propagate_from:2 - nfs4 [fd00::5]:/exports/my\\040share rw,vers=4.1,addr=fd00::5`,
  `127 29 0:56 / ${ROOT}/nfs/tab\\011and\\134slash rw,nosuid - nfs4 nas:/x rw`,
  `128 123 0:57 / ${ROOT}/nfs/v1 ro,relatime shared:84 - nfs4 10.0.0.6:/exports/over ro,vers=4.2`,
].join('\n');

function entry(line: string): MountInfoEntry | undefined {
  return parseMountInfoLine(line);
}

describe('parseMountInfoLine', () => {
  it.each<[string, string, Partial<MountInfoEntry>]>([
    ['no optional fields (build machine)', '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534',
      { mountId: 27, parentId: 1, root: '/', mountPoint: '/', mountOptions: 'rw,relatime', fsType: 'ext4', source: '/dev/vda',
        superOptions: 'rw,discard,resv_strict,resuid=65534,resgid=65534' }],
    ['one optional field, NFS v4', DEBIAN_GUEST.split('\n')[1] ?? '',
      { mountId: 123, parentId: 29, mountPoint: `${ROOT}/nfs/v1`, fsType: 'nfs4', source: '10.0.0.5:/exports/a' }],
    ['NFS v3', DEBIAN_GUEST.split('\n')[2] ?? '',
      { mountPoint: `${ROOT}/nfs/10.0.0.5/exports/b`, fsType: 'nfs', source: '10.0.0.5:/exports/b' }],
    ['CIFS', DEBIAN_GUEST.split('\n')[3] ?? '', { mountPoint: `${ROOT}/cifs/fs/public`, fsType: 'cifs', source: '//fs/public' }],
    ['three optional fields, spaces escaped', DEBIAN_GUEST.split('\n')[4] ?? '',
      { root: '/sub', mountPoint: `${ROOT}/nfs/my vol`, fsType: 'nfs4', source: '[fd00::5]:/exports/my share', superOptions: 'rw,vers=4.1,addr=fd00::5' }],
    ['tab and backslash escaped', DEBIAN_GUEST.split('\n')[5] ?? '', { mountPoint: `${ROOT}/nfs/tab\tand\\slash`, mountOptions: 'rw,nosuid' }],
    ['newline escaped', '1 2 0:1 / /mnt/a\\012b rw - tmpfs t rw', { mountPoint: '/mnt/a\nb' }],
    ['a directory named -', '1 2 0:1 / /mnt/- rw shared:1 - tmpfs none rw', { mountPoint: '/mnt/-', fsType: 'tmpfs', source: 'none' }],
    ['trailing carriage return and spaces', '1 2 0:1 / /mnt rw - tmpfs none rw \r', { mountPoint: '/mnt', superOptions: 'rw' }],
  ])('%s', (_title, line, want) => {
    expect(entry(line)).toMatchObject(want);
  });

  it.each<[string, string]>([
    ['empty', ''],
    ['too few fields', '22 27 0:21 / /proc rw,relatime - proc'],
    ['no separator', '22 27 0:21 / /proc rw,relatime shared:1 proc proc rw extra'],
    ['separator without fs type and source', '22 27 0:21 / /proc rw,relatime a b c - proc'],
    ['free text', 'this is not a mountinfo line at all, no'],
  ])('returns undefined for %s', (_title, line) => {
    expect(entry(line)).toBeUndefined();
  });
});

describe('unescapeMountPath', () => {
  it.each<[string, string]>([
    ['/plain', '/plain'],
    ['/a\\040b', '/a b'],
    ['/a\\011b', '/a\tb'],
    ['/a\\012b', '/a\nb'],
    ['/a\\134b', '/a\\b'],
    ['/a\\134040', '/a\\040'],
    ['/a\\04', '/a\\04'],
    ['/a\\999', '/a\\999'],
  ])('%j → %j', (field, want) => {
    expect(unescapeMountPath(field)).toBe(want);
  });
});

describe('parseMountInfo', () => {
  it('parses every line of the build machine sample', () => {
    const entries = parseMountInfo(BUILD_MACHINE);
    expect(entries.map((e) => [e.mountId, e.mountPoint, e.fsType])).toEqual([
      [22, '/proc', 'proc'],
      [23, '/sys', 'sysfs'],
      [24, '/dev', 'devtmpfs'],
      [25, '/dev/shm', 'tmpfs'],
      [26, '/dev/pts', 'devpts'],
      [27, '/', 'ext4'],
      [29, '/dev/pts', 'devpts'],
      [30, '/dev/shm', 'tmpfs'],
      [40, '/sys/fs/cgroup/systemd', 'cgroup'],
    ]);
  });

  it('skips malformed and blank lines, keeping the rest', () => {
    const text = ['', 'garbage', '22 27 0:21 / /proc rw,relatime - proc proc rw', '   ', '1 2 3', '23 27 0:22 / /sys rw - sysfs sysfs rw', ''].join('\n');
    expect(parseMountInfo(text).map((e) => e.mountPoint)).toEqual(['/proc', '/sys']);
  });
});

describe('findMount', () => {
  const entries = parseMountInfo(`${BUILD_MACHINE}${DEBIAN_GUEST}`);

  it.each<[string, number | undefined]>([
    ['/dev/pts', 29],
    ['/dev/shm', 30],
    ['/', 29],
    [`${ROOT}/nfs/v1`, 128],
    [`${ROOT}/nfs/my vol`, 126],
    [`${ROOT}/nfs/my\\040vol`, undefined],
    [`${ROOT}/nfs/tab\tand\\slash`, 127],
    [`${ROOT}/nfs/v1/`, undefined],
    [`${ROOT}/nfs`, undefined],
    ['/dev/pt', undefined],
  ])('%j → mount id %s (the last, visible one)', (target, mountId) => {
    expect(findMount(entries, target)?.mountId).toBe(mountId);
  });
});

describe('mountsBelow', () => {
  const entries = parseMountInfo(`${BUILD_MACHINE}${DEBIAN_GUEST}`);

  it.each<[string, string[]]>([
    [`${ROOT}/cifs`, [`${ROOT}/cifs/fs/public`]],
    [`${ROOT}/cifs/`, [`${ROOT}/cifs/fs/public`]],
    [`${ROOT}/nfs`, [`${ROOT}/nfs/v1`, `${ROOT}/nfs/10.0.0.5/exports/b`, `${ROOT}/nfs/my vol`, `${ROOT}/nfs/tab\tand\\slash`, `${ROOT}/nfs/v1`]],
    [`${ROOT}/nfs/v1`, []],
    [`${ROOT}/nf`, []],
    ['/dev', ['/dev/shm', '/dev/pts', '/dev/pts', '/dev/shm']],
    ['/nowhere', []],
  ])('%j', (dir, want) => {
    expect(mountsBelow(entries, dir).map((e) => e.mountPoint)).toEqual(want);
  });
});

describe('ProcMountTable', () => {
  it('reads and parses the file it is given', async () => {
    const dir = await tempDir('netvol-mountinfo-');
    onTestFinished(dir.cleanup);
    const path = join(dir.path, 'mountinfo');
    await writeFile(path, DEBIAN_GUEST);
    const entries = await new ProcMountTable(path).list();
    expect(entries.map((e) => e.mountId)).toEqual([29, 123, 124, 125, 126, 127, 128]);
  });

  it('reads this machine, where / is mounted', async () => {
    expect(findMount(await new ProcMountTable().list(), '/')).toBeDefined();
  });
});
