import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { driverFixture, type DriverFixture } from '../support/fakes.js';

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);
// driverFixture's clock says 2026-01-02T03:04:05Z for every mount.
const MOUNTED = new Date('2026-01-02T03:04:05.000Z');
const LATER = new Date(MOUNTED.getTime() + 600_000);

describe('releasing stale mount IDs', () => {
  let f: DriverFixture;
  beforeEach(async () => {
    f = await driverFixture();
    await f.driver.create('used', { share: '10.0.0.5:/used' });
    await f.driver.create('stale', { share: '10.0.0.5:/stale' });
    await f.driver.mount('used', ID_A);
    await f.driver.mount('stale', ID_A);
    await f.driver.mount('stale', ID_B);
  });
  afterEach(async () => {
    await f.cleanup();
  });

  it('releases and unmounts only volumes no live container uses', async () => {
    const results = await f.driver.releaseStale(new Set(['used']), LATER, 120_000, false);
    expect(results).toEqual([{ volume: 'stale', ids: [ID_A, ID_B], action: 'released', reason: 'no running container uses it' }]);
    expect(f.state.volumes['stale']?.mountIds).toEqual([]);
    expect(f.state.volumes['used']?.mountIds).toEqual([ID_A]);
    expect(f.runner.umounts().map((c) => c.args.at(-1))).toEqual([`${f.root}/stale`]);
    expect(f.store.last()?.volumes['stale']?.mountIds).toEqual([]);
  });

  it('changes nothing in a dry run', async () => {
    const results = await f.driver.releaseStale(new Set(['used']), LATER, 120_000, true);
    expect(results.map((r) => r.action)).toEqual(['would release']);
    expect(f.state.volumes['stale']?.mountIds).toEqual([ID_A, ID_B]);
    expect(f.runner.umounts()).toEqual([]);
  });

  it('leaves a volume mounted within the grace period alone', async () => {
    const results = await f.driver.releaseStale(new Set(), new Date(MOUNTED.getTime() + 30_000), 120_000, false);
    expect(results.map((r) => [r.volume, r.action, r.reason])).toEqual([
      ['used', 'kept', 'mounted 30 s ago; a container may be starting'],
      ['stale', 'kept', 'mounted 30 s ago; a container may be starting'],
    ]);
    expect(f.runner.umounts()).toEqual([]);
  });
});
