import type { Server } from 'node:http';
import { mkdir, realpath, writeFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { driverStateDir, type DaemonConfig } from './config.js';
import { StartupError } from './errors.js';
import { reconcile } from './core/reconcile.js';
import { VolumeDriver } from './core/volume-driver.js';
import { ShareProvisioner } from './core/share-provisioner.js';
import { lockMountRoot } from './system/mount-root-lock.js';
import { FindMountProbe } from './system/mount-health.js';
import { createApp } from './frontends/legacy/app.js';
import { callFilesIn, UnansweredCalls } from './frontends/legacy/unanswered-calls.js';
import { routeTable } from './frontends/legacy/routes.js';
import { closeServer, listenOnInheritedSocket, listenOnSocket, listenOnTcp } from './frontends/legacy/server.js';
import { cifsProtocol } from './protocols/cifs.js';
import { efsProtocol } from './protocols/efs.js';
import { lookupNetrc } from './protocols/netrc.js';
import { nfsProtocol } from './protocols/nfs.js';
import type { ProtocolHandler } from './protocols/protocol.js';
import { GroupCommitter, JsonStateStore, type StateStore } from './state/state-store.js';
import { emptyState } from './state/state-schema.js';
import { readBootId } from './system/boot-id.js';
import { ExecaCommandRunner, type CommandRunner } from './system/command-runner.js';
import { ProcMountTable, type MountTable } from './system/mount-table.js';
import { CommandMounter } from './system/mounter.js';
import { activateInDocker } from './system/docker-activation.js';
import { notifySystemdReady } from './system/systemd-notify.js';
import { volumesInUse } from './system/docker-api.js';
import { addAdminRoutes } from './frontends/legacy/admin-routes.js';
import { createServer } from 'node:http';

export interface DaemonDeps {
  readonly logger: Logger;
  readonly runner?: CommandRunner;
  readonly mountTable?: MountTable;
  readonly store?: StateStore;
  readonly bootId?: () => Promise<string>;
  readonly clock?: () => Date;
  /** $NOTIFY_SOCKET when started by systemd (Type=notify): told once everything listens. */
  readonly notifySocket?: string | undefined;
  /** A listening socket passed by systemd (netvol@.socket), served instead of making one. */
  readonly listenFd?: number | undefined;
}

export interface RunningDaemon {
  readonly driver: VolumeDriver;
  readonly server: Server;
  readonly metricsServer?: Server | undefined;
  close(): Promise<void>;
}

export function protocolHandler(config: DaemonConfig): ProtocolHandler {
  switch (config.protocol) {
    case 'nfs':
      return nfsProtocol(config.nfs);
    case 'cifs':
      return cifsProtocol(config.cifs, lookupNetrc);
    case 'efs':
      return efsProtocol({ region: config.efs.region, noResolve: config.efs.noResolve });
  }
}

/**
 * Composition root. Order matters: state is loaded and reconciled with the mount table
 * before the socket exists, because dockerd Gets every volume the moment it can connect
 * and forgets the ones whose Get fails.
 */
export async function startDaemon(config: DaemonConfig, deps: DaemonDeps): Promise<RunningDaemon> {
  const { logger } = deps;
  const started = Date.now();
  const stateDir = driverStateDir(config);
  const store = deps.store ?? new JsonStateStore(stateDir, { onWarning: (message) => logger.warn(message) });
  const mountTable = deps.mountTable ?? new ProcMountTable();
  const runner = deps.runner ?? new ExecaCommandRunner();
  const bootId = await (deps.bootId ?? (() => readBootId()))();
  // The kernel reports real paths: a symlinked --basedir (or /var/lib moved to another disk)
  // compared as given would never match a mount, and every Mount would stack another.
  const root = await realDirectory(mountRoot(config));
  const stagingDir = await realDirectory(join(stateDir, 'staging'), 0o700);
  const lock = await lockMountRoot(root, config.name, bootId);

  try {
    return await startLocked();
  } catch (error) {
    await lock.release();
    throw error;
  }

  async function startLocked(): Promise<RunningDaemon> {
    const loaded = await store.load();
    for (const { line, reason } of store.loadReport?.skippedLines ?? []) {
      logger.warn({ journal: line, reason }, `State journal line ${line} skipped: ${reason}; every other change was loaded`);
    }
    for (const file of store.loadReport?.removedTempFiles ?? []) logger.info({ file }, 'Removed a temporary state file left by an interrupted save');
    const { state, orphans, rootMountedSubdirectories, notes } = reconcile(loaded ?? emptyState(bootId), bootId, await mountTable.list(), root, stagingDir);
    for (const { volume, note } of notes) logger.info({ volume }, `Reconcile: ${note}`);
    // A fresh snapshot folds the journal in (and drops a line torn by a crash); with nothing
    // to fold and nothing changed, the 10,000-volume rewrite is skipped.
    if (!loaded || loaded.bootId !== bootId || notes.length > 0 || (store.journalLength ?? 0) > 0) await store.save(state);

    const clock = deps.clock ?? (() => new Date());
    // prom-client is loaded only when metrics are served: memory and start-up stay lean otherwise.
    const metrics = config.metrics ? new (await import('./observability/metrics.js')).Metrics(state, clock) : undefined;
    const commandMounter = new CommandMounter(
      runner,
      mountTable,
      {
        timeoutMs: config.mountTimeoutSeconds * 1000,
        secretsDir: join(stateDir, 'secrets'),
        ...(config.mountCommand ? { mountCommand: config.mountCommand, checkFsType: false } : {}),
        ...(config.umountCommand ? { umountCommand: config.umountCommand } : {}),
      },
      logger.child({ component: 'mounter' }),
    );
    const leftoverSecrets = await commandMounter.removeLeftoverSecrets();
    if (leftoverSecrets > 0) logger.warn({ files: leftoverSecrets }, 'Removed CIFS credentials files left by a daemon that was killed during a mount');
    const mounter = metrics ? metrics.instrument(commandMounter, config.protocol) : commandMounter;
    const provisioner = new ShareProvisioner({
      runner,
      mounter,
      stagingDir,
      timeoutMs: config.mountTimeoutSeconds * 1000,
      logger: logger.child({ component: 'provisioner' }),
    });

    const protocol = protocolHandler(config);
    if (config.defaultShare !== undefined) {
      try {
        protocol.check({ name: 'probe', options: {}, defaultShare: config.defaultShare });
      } catch (error) {
        throw new StartupError(`--share ${config.defaultShare}: ${(error as Error).message}`, { cause: error });
      }
    }
    const committer = new GroupCommitter(store, () => state, undefined, {
      onError: (error, retryInMs) =>
        logger.warn({ err: (error as Error).message, retryInMs }, 'Could not save state; changes are kept in memory and saving is retried (netvol status shows it)'),
      onRecovered: () => logger.info('State saved again after earlier failures'),
    });
    const driver = new VolumeDriver({
      protocol,
      mounter,
      mountTable,
      root,
      provisioner,
      state,
      commit: (volumes) => committer.commit(volumes),
      commitLater: (volumes) => committer.commitLater(volumes),
      lockWaitMs: config.mountTimeoutSeconds * 1000,
      defaultShare: config.defaultShare,
      defaultOnDelete: config.onDelete,
      // A dead server's check gives up long before dockerd's 30 s.
      probe: new FindMountProbe(runner, Math.min(config.mountTimeoutSeconds, 5) * 1000),
      rootMountedSubdirectories,
      clock,
      logger: logger.child({ component: 'driver' }),
      unmountDelayMs: config.unmountDelaySeconds * 1000,
    });
    const info = {
      driver: config.name,
      protocol: config.protocol,
      version: config.version,
      socket: config.tcp ? `tcp://${config.tcp.host}:${config.tcp.port}` : config.socket,
      stateFile: store.path,
      basedir: config.basedir,
      startedAt: new Date(started).toISOString(),
      pid: process.pid,
      persistence: () => committer.persistence(),
    };
    metrics?.trackHealth(() => Object.keys(state.volumes), (name) => driver.healthOf(name));
    const docker = { socket: config.dockerSocket, apiVersion: config.dockerApiVersion };
    const releaseStale = async (dryRun: boolean) => {
      const askedAt = clock();
      const inUse = await volumesInUse(docker, (mount) => {
        // dockerd names a managed plugin's driver `name:tag`; the Source path is unambiguous.
        const byPath = mount.Source ? driver.volumeAtPath(mount.Source) : undefined;
        if (byPath !== undefined) return byPath;
        return mount.Driver !== undefined && sameDriver(mount.Driver, config.name) ? mount.Name : undefined;
      });
      return driver.releaseStale(inUse, askedAt, config.staleGraceSeconds * 1000, dryRun);
    };
    const processStartedMs = clock().getTime() - process.uptime() * 1000;
    const unanswered = await UnansweredCalls.open(callFilesIn(join(stateDir, 'unanswered')), () => clock().getTime(), processStartedMs, (error) =>
      logger.warn({ err: error }, 'Could not keep a call\'s body while it is under way; if netvol is killed during one, dockerd\'s repeat of it fails'),
    );
    const left = unanswered.leftByPath;
    if (Object.keys(left).length > 0) {
      logger.info({ calls: left }, 'The previous process stopped while answering these calls; dockerd repeats them with an empty body, and they are answered from what it kept');
    }
    const app = createApp({
      routes: routeTable(driver),
      unanswered,
      logger,
      secretKeys: protocol.secretKeys,
      ...(metrics ? { metrics } : {}),
      extraRoutes: (express) => addAdminRoutes(express, driver, info, clock, releaseStale),
    });

    let server: Server;
    let specFile: string | undefined;
    if (config.tcp) {
      server = await listenOnTcp(app, config.tcp);
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : config.tcp.port;
      const host = config.tcp.host.includes(':') ? `[${config.tcp.host}]` : config.tcp.host;
      await mkdir(config.tcp.specDir, { recursive: true });
      const { tls } = config.tcp;
      if (tls) {
        // dockerd reads TLS settings only from a .json spec.
        specFile = join(config.tcp.specDir, `${config.name}.json`);
        const spec = {
          Name: config.name,
          Addr: `https://${host}:${port}`,
          TLSConfig: { InsecureSkipVerify: false, CAFile: tls.ca, CertFile: tls.clientCert ?? '', KeyFile: tls.clientKey ?? '' },
        };
        await writeFile(specFile, `${JSON.stringify(spec, null, 2)}\n`, { mode: 0o644 });
      } else {
        specFile = join(config.tcp.specDir, `${config.name}.spec`);
        await writeFile(specFile, `tcp://${host}:${port}\n`);
      }
      logger.info({ address: `${host}:${port}`, tls: Boolean(tls), spec: specFile }, 'Listening on TCP');
    } else if (deps.listenFd !== undefined) {
      server = await listenOnInheritedSocket(app, deps.listenFd);
      logger.info({ fd: deps.listenFd }, 'Serving the socket systemd passed (socket activation): calls made while netvol restarts wait for it');
    } else {
      server = await listenOnSocket(app, { path: config.socket, gid: config.socketGroup });
    }
    unanswered.serving();
    logger.info(
      {
        driver: config.name,
        socket: config.tcp ? undefined : config.socket,
        stateFile: store.path,
        volumes: Object.keys(state.volumes).length,
        ms: Date.now() - started,
      },
      `Ready: docker can use -d ${config.name}`,
    );
    runner.warmUp?.();
    // After the socket is up and in parallel: each leftover of a dead server can cost two mount
    // timeouts, and systemd and dockerd wait for readiness.
    const orphanCleanUp = orphans.length === 0
      ? Promise.resolve()
      : driver.cleanUpOrphans(orphans).then(() => logger.info({ mounts: orphans.length, ms: Date.now() - started }, 'Leftover mounts unmounted'));

    let metricsServer: Server | undefined;
    if (config.metrics && metrics) {
      metricsServer = createServer((req, res) => {
        if (req.url !== '/metrics') {
          res.writeHead(404).end('see /metrics\n');
          return;
        }
        metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
          (error: unknown) => res.writeHead(500).end(String(error)),
        );
      });
      const { host, port } = config.metrics;
      await new Promise<void>((resolve, reject) => {
        metricsServer?.once('error', reject);
        metricsServer?.listen(port, host, () => resolve());
      });
      logger.info({ address: metricsServer.address() }, 'Serving Prometheus metrics on /metrics');
    }
    await notifySystemdReady({ notifySocket: deps.notifySocket, pid: process.pid }, runner, logger);
    const activation = config.activate
      ? activateInDocker({ dockerSocket: config.dockerSocket, driver: config.name, apiVersion: config.dockerApiVersion }, logger)
      : undefined;

    const staleTimer =
      config.releaseStaleIntervalSeconds > 0
        ? setInterval(() => {
            releaseStale(false).catch((error: unknown) =>
              logger.warn({ err: (error as Error).message }, 'Periodic stale-reference release skipped: dockerd did not answer'),
            );
          }, config.releaseStaleIntervalSeconds * 1000)
        : undefined;
    staleTimer?.unref();
    const healthTimer =
      config.healthIntervalSeconds > 0
        ? setInterval(() => {
            driver.checkHealth().catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'Health check pass failed'));
          }, config.healthIntervalSeconds * 1000)
        : undefined;
    healthTimer?.unref();

    return {
      driver,
      server,
      metricsServer,
      async close() {
        if (staleTimer) clearInterval(staleTimer);
        if (healthTimer) clearInterval(healthTimer);
        activation?.stop();
        if (metricsServer) await closeServer(metricsServer);
        // An inherited socket stays with systemd: it queues calls for the next start.
        await closeServer(server, config.tcp || deps.listenFd !== undefined ? undefined : config.socket);
        // A Mount cut off by the shutdown is undone once it completes: before the final save.
        await app.settled();
        // No call can come any more: shares kept for the unmount delay go now.
        await driver.unmountLingering();
        if (specFile) await unlink(specFile).catch(() => undefined);
        await orphanCleanUp;
        await committer.commit().catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'Could not save state while stopping; the next start reconciles with the mount table'));
        committer.stop();
        await lock.release();
      },
    };
  }
}

/**
 * `<basedir>/<driver name>`: the default names are the protocols, so a lone daemon keeps
 * netshare's `<basedir>/nfs` layout, and two daemons of one protocol under other names
 * never share a directory (each would take the other's mounts for its own leftovers).
 */
export function mountRoot(config: Pick<DaemonConfig, 'basedir' | 'name'>): string {
  return join(config.basedir, config.name);
}

async function realDirectory(path: string, mode = 0o755): Promise<string> {
  await mkdir(path, { recursive: true, mode });
  return realpath(path);
}

/** `netvol`, `netvol:latest` and `netvol:latest` with a registry prefix name one plugin. */
export function sameDriver(reported: string, name: string): boolean {
  const bare = (driver: string) => driver.replace(/:latest$/, '');
  return bare(reported) === bare(name) || bare(reported).split('/').pop() === bare(name);
}
