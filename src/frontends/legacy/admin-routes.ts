import express, { type Express } from 'express';
import type { StaleRelease, VolumeDriver } from '../../core/volume-driver.js';

/** What `netvol status` shows; served on the plugin socket under /netvol/. */
export interface DaemonInfo {
  readonly driver: string;
  readonly protocol: string;
  readonly version: string;
  readonly socket: string;
  readonly stateFile: string;
  readonly basedir: string;
  readonly startedAt: string;
  readonly pid: number;
  readonly persistence?: () => NonNullable<StatusReport['persistence']>;
}

export interface StatusReport extends Omit<DaemonInfo, 'persistence'> {
  readonly uptimeSeconds: number;
  /** Whether state writes succeed; when they fail, changes wait in memory and are retried. */
  readonly persistence?: { ok: boolean; lastError?: string; failingSince?: string; pendingVolumes: number };
  readonly volumes: Array<{
    name: string;
    share: string;
    mounted: boolean;
    mounts: number;
    mountedSince?: string;
    mountpoint?: string;
    health?: { state: string; checkedAt: string; detail?: string };
    lastError?: string;
  }>;
}

/**
 * GET /netvol/health (ready once the socket answers: state is loaded and the mount table
 * read before it exists) and GET /netvol/status. dockerd only POSTs /Plugin.* and
 * /VolumeDriver.*, so these never collide with the plugin protocol.
 */
export type ReleaseStale = (dryRun: boolean) => Promise<StaleRelease[]>;

export function addAdminRoutes(
  app: Express,
  driver: VolumeDriver,
  info: DaemonInfo,
  now: () => Date = () => new Date(),
  releaseStale?: ReleaseStale,
): void {
  app.post('/netvol/release-stale', express.json({ type: () => true, strict: false }), async (req, res) => {
    const dryRun = Boolean((req.body as { dryRun?: unknown } | undefined)?.dryRun);
    if (!releaseStale) {
      res.status(501).json({ Err: 'stale-reference release is not available in this mode' });
      return;
    }
    try {
      res.json({ results: await releaseStale(dryRun) });
    } catch (error) {
      res.status(503).json({ Err: `${(error as Error).message}; nothing was released` });
    }
  });
  app.get('/netvol/health', (_req, res) => {
    res.json({ ready: true, driver: info.driver, volumes: driver.list().length });
  });
  app.get('/netvol/status', (_req, res) => {
    res.json(statusReport(driver, info, now()));
  });
}

export function statusReport(driver: VolumeDriver, info: DaemonInfo, now: Date): StatusReport {
  const { persistence, ...fields } = info;
  return {
    ...fields,
    ...(persistence ? { persistence: persistence() } : {}),
    uptimeSeconds: Math.round((now.getTime() - Date.parse(info.startedAt)) / 1000),
    volumes: driver.records().map((record) => ({
      name: record.name,
      share: record.share,
      mounted: record.mountIds.length > 0,
      mounts: record.mountIds.length,
      ...(record.mountedAt ? { mountedSince: record.mountedAt } : {}),
      ...(record.mountIds.length > 0 ? { mountpoint: driver.mountpoint(record) } : {}),
      ...(driver.healthOf(record.name) ? { health: driver.healthOf(record.name) } : {}),
      ...(record.lastError ? { lastError: record.lastError } : {}),
    })),
  };
}
