import { describe, expect, it } from 'vitest';
import { reconcile } from '../../src/core/reconcile.js';
import type { StateFile, VolumeRecord } from '../../src/state/state-schema.js';
import type { MountInfoEntry } from '../../src/system/mountinfo.js';

const ROOT = '/var/lib/docker-volumes/netshare/nfs';
const MOUNTED_AT = '2026-11-28T17:00:00.000Z';

function volume(name: string, mountIds: string[]): VolumeRecord {
  return {
    name,
    protocol: 'nfs',
    options: { share: `nas:/exports/${name}` },
    share: `nas:/exports/${name}`,
    createdAt: '2026-11-28T16:00:00.000Z',
    mountIds,
    ...(mountIds.length > 0 ? { mountedAt: MOUNTED_AT } : {}),
  };
}

/** State with the given volumes (name → mount IDs), saved under boot id `bootId`. */
function stateOf(bootId: string, volumes: Record<string, string[]>): StateFile {
  return {
    version: 1,
    bootId,
    volumes: Object.fromEntries(Object.entries(volumes).map(([name, ids]) => [name, volume(name, ids)])),
  };
}

/** Mount table entries for mountpoints, in the order the kernel mounted them. */
function table(...mountPoints: string[]): MountInfoEntry[] {
  return mountPoints.map((mountPoint, i) => ({
    mountId: 100 + i,
    parentId: 1,
    root: '/',
    mountPoint,
    mountOptions: 'rw,relatime',
    fsType: 'nfs4',
    source: 'nas:/exports',
    superOptions: 'rw,vers=4.2',
  }));
}

const at = (name: string) => `${ROOT}/${name}`;

describe('reconcile: mount IDs', () => {
  it.each<[string, string, Record<string, string[]>, MountInfoEntry[], Record<string, string[]>, Array<{ volume?: string; note: string }>]>([
    ['reboot drops every mount ID, mounted or not', 'boot-0', { pg: ['a', 'b'], web: ['c'], idle: [] }, table(at('pg')),
      { pg: [], web: [], idle: [] },
      [{ volume: 'pg', note: 'dropped 2 mount ID(s) from before the reboot' },
        { volume: 'web', note: 'dropped 1 mount ID(s) from before the reboot' },
        { note: `${at('pg')} is mounted but no volume holds it: unmounting` }]],
    ['same boot, mount present: adopted', 'boot-1', { pg: ['a', 'a', 'b'] }, table(at('pg')),
      { pg: ['a', 'a', 'b'] }, [{ volume: 'pg', note: 'adopted the existing mount with 3 mount ID(s)' }]],
    ['same boot, mount gone: dropped', 'boot-1', { pg: ['a'] }, table(),
      { pg: [] }, [{ volume: 'pg', note: `dropped 1 mount ID(s): ${at('pg')} is no longer mounted` }]],
    ['same boot, only a mount below the mountpoint: dropped', 'boot-1', { pg: ['a'] }, table(at('pg/sub')),
      { pg: [] },
      [{ volume: 'pg', note: `dropped 1 mount ID(s): ${at('pg')} is no longer mounted` },
        { note: `${at('pg/sub')} is mounted but no volume holds it: unmounting` }]],
    ['ad-hoc names with a trailing slash are found', 'boot-1', { 'nas/exports/pg/': ['a'] }, table(at('nas/exports/pg')),
      { 'nas/exports/pg/': ['a'] }, [{ volume: 'nas/exports/pg/', note: 'adopted the existing mount with 1 mount ID(s)' }]],
    ['volumes without IDs get no note', 'boot-1', { idle: [] }, table(), { idle: [] }, []],
  ])('%s', (_title, savedBoot, volumes, entries, wantIds, wantNotes) => {
    const result = reconcile(stateOf(savedBoot, volumes), 'boot-1', entries, ROOT);
    const ids = Object.fromEntries(Object.entries(result.state.volumes).map(([name, r]) => [name, r.mountIds]));
    expect(ids).toEqual(wantIds);
    expect(result.notes).toEqual(wantNotes);
  });

  it.each<[string, string, MountInfoEntry[], string | undefined]>([
    ['kept when adopted', 'boot-1', table(at('pg')), MOUNTED_AT],
    ['removed when dropped after a reboot', 'boot-0', table(at('pg')), undefined],
    ['removed when the mount is gone', 'boot-1', table(), undefined],
  ])('mountedAt is %s', (_title, savedBoot, entries, want) => {
    const result = reconcile(stateOf(savedBoot, { pg: ['a'] }), 'boot-1', entries, ROOT);
    expect(result.state.volumes['pg']?.mountedAt).toBe(want);
  });

  it.each<[string]>([['boot-0'], ['boot-1']])('records the current boot id (saved under %s)', (savedBoot) => {
    const result = reconcile(stateOf(savedBoot, {}), 'boot-1', [], ROOT);
    expect(result.state).toEqual({ version: 1, bootId: 'boot-1', volumes: {} });
  });

  it('keeps everything else about a volume', () => {
    const saved = stateOf('boot-0', { pg: ['a'] });
    const result = reconcile(saved, 'boot-1', [], ROOT);
    const { mountIds: _ids, mountedAt: _at, ...rest } = saved.volumes['pg'] ?? volume('x', []);
    expect(result.state.volumes['pg']).toEqual({ ...rest, mountIds: [] });
  });

  it('does not modify the state it is given', () => {
    const saved = stateOf('boot-0', { pg: ['a'] });
    const copy = structuredClone(saved);
    reconcile(saved, 'boot-1', table(at('pg')), ROOT);
    expect(saved).toEqual(copy);
  });
});

describe('reconcile: orphan mounts', () => {
  it.each<[string, Record<string, string[]>, MountInfoEntry[], string[]]>([
    ['a volume with zero IDs that is mounted', { pg: [] }, table(at('pg')), [at('pg')]],
    ['a held volume is not an orphan', { pg: ['a'], other: [] }, table(at('pg'), at('other')), [at('other')]],
    ['deepest first', { a: [], 'a/b': [], 'a/b/c': [], x: [] }, table(at('a'), at('a/b/c'), at('x'), at('a/b')), [at('a/b/c'), at('a/b'), at('a'), at('x')]],
    ['longer names before shorter ones, whatever the mount order', { 'n/e/p': [], 'nas/exports/pg/data': [] },
      table(at('n/e/p'), at('nas/exports/pg/data')), [at('nas/exports/pg/data'), at('n/e/p')]],
    ['a leftover mount inside a released volume comes off with it', { pg: [] }, table(at('pg'), at('pg/sub')), [at('pg/sub'), at('pg')]],
    ['mounts outside the root are ignored', {},
      table('/', '/proc', ROOT, `${ROOT}2/x`, '/var/lib/docker-volumes/netshare/cifs/fs/public', '/mnt/nfs'), []],
  ])('%s', (_title, volumes, entries, want) => {
    expect(reconcile(stateOf('boot-1', volumes), 'boot-1', entries, ROOT).orphans).toEqual(want);
  });

  // Two daemons of one protocol under other names once shared a root: each took the other's
  // mounts for leftovers. A mount at a path no volume of this daemon maps to is never touched.
  it('R10: a mount that is no volume of this daemon is left alone and reported', () => {
    const result = reconcile(stateOf('boot-1', { pg: ['a'] }), 'boot-1', table(at('pg'), at('gone')), ROOT);
    expect([result.orphans, result.foreign]).toEqual([[], [at('gone')]]);
    expect(result.notes.map((n) => n.note)).toContain(`${at('gone')} is mounted under the mount root but is no volume of this driver: left alone`);
  });

  it('R10: mounts on the staging directory are this daemon\'s own and come off', () => {
    const result = reconcile(stateOf('boot-1', {}), 'boot-1', table('/state/staging/ab12'), ROOT, '/state/staging');
    expect(result.orphans).toEqual(['/state/staging/ab12']);
  });

  it('after a reboot, a leftover mount of a volume is an orphan', () => {
    const result = reconcile(stateOf('boot-0', { pg: ['a'] }), 'boot-1', table(at('pg')), ROOT);
    expect(result.orphans).toEqual([at('pg')]);
  });

  it('a root given with a trailing slash finds the same orphans', () => {
    const result = reconcile(stateOf('boot-1', { pg: ['a'], gone: [] }), 'boot-1', table(at('pg'), at('gone')), `${ROOT}/`);
    expect([result.orphans, result.state.volumes['pg']?.mountIds]).toEqual([[at('gone')], ['a']]);
  });

  // Stacked kernel mounts at one orphan mountpoint each need an umount; listed once, the lower
  // one would stay and a later Mount would reuse the leftover (maybe another share).
  it('lists a stacked orphan once per kernel mount, so every layer comes off', () => {
    const result = reconcile(stateOf('boot-1', { gone: [] }), 'boot-1', table(at('gone'), at('gone')), ROOT);
    expect(result.orphans).toEqual([at('gone'), at('gone')]);
  });
});

describe('reconcile with submounts', () => {
  it('keeps mounts inside a held volume (NFSv4 submounts), as they belong to it', () => {
    const state = {
      version: 1 as const,
      bootId: 'b',
      volumes: { v: { name: 'v', protocol: 'nfs' as const, options: {}, share: 'h:/x', createdAt: 'c', mountIds: ['i'] } },
    };
    const entries = ['/r/nfs/v', '/r/nfs/v/sub'].map((mountPoint, i) => ({
      mountId: i, parentId: 1, root: '/', mountPoint, mountOptions: 'rw', fsType: 'nfs4', source: 'h:/x', superOptions: 'rw',
    }));
    expect(reconcile(state, 'b', entries, '/r/nfs').orphans).toEqual([]);
  });
});
