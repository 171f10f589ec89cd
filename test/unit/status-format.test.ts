import { describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/frontends/legacy/admin-routes.js';
import { formatStatus, statusCommand } from '../../src/status-command.js';

const NOW = new Date('2026-11-28T12:00:00.000Z');

const report: StatusReport = {
  driver: 'nfs',
  protocol: 'nfs',
  version: '0.1.0',
  socket: '/run/docker/plugins/nfs.sock',
  stateFile: '/var/lib/netvol/nfs/state.json',
  basedir: '/var/lib/docker-volumes/netshare',
  startedAt: '2026-11-28T10:30:00.000Z',
  pid: 4242,
  uptimeSeconds: 5400,
  persistence: { ok: false, lastError: 'cannot save state to /var/lib/netvol/nfs/state.journal: ENOSPC: no space left on device', failingSince: '2026-11-28T11:59:00.000Z', pendingVolumes: 1 },
  volumes: [
    {
      name: 'pgdata',
      share: '10.0.0.5:/exports/pg',
      mounted: true,
      mounts: 2,
      mountedSince: '2026-11-28T11:58:30.000Z',
      mountpoint: '/x/pgdata',
      health: { state: 'healthy', checkedAt: '2026-11-28T11:59:50.000Z' },
    },
    { name: 'broken', share: '10.0.0.9:/gone', mounted: false, mounts: 0, lastError: 'mounting 10.0.0.9:/gone (nfs4) on /x/broken timed out after 20 s' },
  ],
};

describe('netvol status output', () => {
  it('prints the daemon and a table of volumes', () => {
    expect(formatStatus(report, NOW)).toBe(
      [
        'driver     nfs (nfs), netvol 0.1.0, pid 4242',
        'socket     /run/docker/plugins/nfs.sock',
        'uptime     1h30m (since 2026-11-28T10:30:00.000Z)',
        'state      /var/lib/netvol/nfs/state.json',
        'volumes    2, mounted 1',
        'SAVING     FAILING since 2026-11-28T11:59:00.000Z: cannot save state to /var/lib/netvol/nfs/state.journal: ENOSPC: no space left on device (1 volume(s) kept in memory, retrying)',
        '',
        'VOLUME  SHARE                 MOUNTED  IDS  SINCE  HEALTH             LAST ERROR',
        'pgdata  10.0.0.5:/exports/pg  yes      2    1m30s  healthy (10s ago)  -',
        'broken  10.0.0.9:/gone        no       0    -      -                  mounting 10.0.0.9:/gone (nfs4) on /x/broken timed out after 20 s',
        '',
      ].join('\n'),
    );
  });

  it('exits 1 with what to check when no daemon answers', async () => {
    const outcome = await statusCommand({ sockets: ['/nonexistent/netvol.sock'], json: false, explicit: true, now: NOW });
    expect(outcome.exitCode).toBe(1);
    expect(outcome.output).toBe(
      '/nonexistent/netvol.sock: no such socket (is the daemon running?)\n\nno netvol daemon answered at /nonexistent/netvol.sock.\nCheck that it runs (systemctl status \'netvol@*\', or start it: netvol nfs), that you are root, and the --socket path.\n',
    );
  });
});
