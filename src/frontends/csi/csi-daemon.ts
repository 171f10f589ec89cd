import { mkdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { errorMessage } from '../../errors.js';
import { createLogger } from '../../logger.js';
import { reconcile } from '../../core/reconcile.js';
import { ShareProvisioner } from '../../core/share-provisioner.js';
import { VolumeDriver } from '../../core/volume-driver.js';
import { emptyState } from '../../state/state-schema.js';
import { GroupCommitter, JsonStateStore } from '../../state/state-store.js';
import { readBootId } from '../../system/boot-id.js';
import { ExecaCommandRunner, type CommandRunner } from '../../system/command-runner.js';
import { lockMountRoot, type MountRootLock } from '../../system/mount-root-lock.js';
import { mountsBelow, ProcMountTable, type MountTable } from '../../system/mount-table.js';
import { CommandMounter } from '../../system/mounter.js';
import { CSI_PLUGIN_NAME, type CsiConfig } from './csi-config.js';
import { CsiController } from './controller.js';
import { serveCsi, type Handlers } from './grpc-server.js';
import { CsiNode } from './node.js';
import { CsiProtocolHandler } from './protocol-dispatch.js';
import { VolumeLedger } from './volume-ledger.js';

export interface CsiDaemonDeps {
  readonly logger?: Logger;
  readonly runner?: CommandRunner;
  readonly mountTable?: MountTable;
  readonly bootId?: () => Promise<string>;
  readonly clock?: () => Date;
}

export interface RunningCsiDaemon {
  readonly socket: string;
  close(): Promise<void>;
}

/** The mount root's lock names its holder by this; one CSI daemon per mount root. */
const LOCK_NAME = 'netvol-csi';

/**
 * Composition root of `netvol csi`, the second front end over the same core as the
 * VolumeDriver daemon (src/main.ts): protocols, mounter, mount table, per-volume locks,
 * reference counts and the state store. Order matters as there: node state is loaded and
 * reconciled with the mount table before the socket exists, so a NodePublishVolume repeated
 * after a restart finds its volume, and the first Probe is answered by a ready plugin.
 */
export async function startCsiDaemon(config: CsiConfig, deps: CsiDaemonDeps = {}): Promise<RunningCsiDaemon> {
  const logger = deps.logger ?? createLogger({ verbose: config.verbose, format: config.logFormat });
  const started = Date.now();
  logger.info({ version: config.version, services: config.services, nodeId: config.nodeId }, 'netvol csi starting');
  const clock = deps.clock ?? (() => new Date());
  const timeoutMs = config.mountTimeoutSeconds * 1000;
  const stateDir = await realDirectory(config.stateDir, 0o700);
  const stagingDir = await realDirectory(join(stateDir, 'staging'), 0o700);
  const mountTable = deps.mountTable ?? new ProcMountTable();
  const runner = deps.runner ?? new ExecaCommandRunner();
  const mounter = new CommandMounter(
    runner,
    mountTable,
    {
      timeoutMs,
      secretsDir: join(stateDir, 'secrets'),
      ...(config.mountCommand ? { mountCommand: config.mountCommand, checkFsType: false } : {}),
      ...(config.umountCommand ? { umountCommand: config.umountCommand } : {}),
    },
    logger.child({ component: 'mounter' }),
  );
  const leftoverSecrets = await mounter.removeLeftoverSecrets();
  if (leftoverSecrets > 0) logger.warn({ files: leftoverSecrets }, 'Removed CIFS credentials files left by a daemon that was killed during a mount');
  const provisioner = new ShareProvisioner({ runner, mounter, stagingDir, timeoutMs, logger: logger.child({ component: 'provisioner' }) });

  const controller =
    config.services === 'node'
      ? undefined
      : new CsiController({
          provisioner,
          ledger: await VolumeLedger.open(join(stateDir, 'controller-volumes.json'), logger),
          clock,
          logger: logger.child({ component: 'controller' }),
          defaults: { efsRegion: config.efsRegion },
        });

  let lock: MountRootLock | undefined;
  let committer: GroupCommitter | undefined;
  try {
    const node = config.services === 'controller' ? undefined : await startNode();
    const identity: Handlers = {
      GetPluginInfo: () => ({ name: CSI_PLUGIN_NAME, vendor_version: config.version }),
      GetPluginCapabilities: () => ({ capabilities: controller ? [{ service: { type: 'CONTROLLER_SERVICE' } }] : [] }),
      // Everything is built before the socket exists, so ready is true from the first call.
      Probe: () => ({ ready: { value: true } }),
    };
    const server = await serveCsi(
      config.socket,
      {
        identity,
        controller: controller && {
          CreateVolume: (request) => controller.createVolume(request),
          DeleteVolume: (request) => controller.deleteVolume(request),
          ValidateVolumeCapabilities: (request) => controller.validateVolumeCapabilities(request),
          ListVolumes: () => controller.listVolumes(),
          ControllerGetCapabilities: () => controller.capabilities(),
        },
        node: node && {
          NodePublishVolume: (request) => node.csi.publish(request),
          NodeUnpublishVolume: (request) => node.csi.unpublish(request),
          NodeGetCapabilities: () => node.csi.capabilities(),
          NodeGetInfo: () => node.csi.info(),
        },
      },
      logger.child({ component: 'grpc' }),
    );
    logger.info({ socket: config.socket, services: config.services, volumes: node?.driver.records().length, ms: Date.now() - started }, `Ready: serving csi.v1 (${CSI_PLUGIN_NAME}) on ${config.socket}`);
    runner.warmUp?.();
    // After the socket is up: each leftover of a dead server can cost two mount timeouts.
    const cleanUp = (node ? node.cleanUp() : unmountStaging()).catch((error: unknown) =>
      logger.warn({ err: errorMessage(error) }, 'Clean-up of leftovers from an earlier run failed; the next start tries again'),
    );
    return {
      socket: config.socket,
      async close() {
        await server.close();
        await cleanUp;
        if (committer) {
          await committer.commit().catch((error: unknown) => logger.warn({ err: errorMessage(error) }, 'Could not save state while stopping; the next start reconciles with the mount table'));
          committer.stop();
        }
        await lock?.release();
      },
    };
  } catch (error) {
    committer?.stop();
    await lock?.release();
    throw error;
  }

  async function startNode() {
    const bootId = await (deps.bootId ?? (() => readBootId()))();
    // The kernel reports real paths: a symlinked --basedir compared as given would never match.
    const root = await realDirectory(config.basedir);
    lock = await lockMountRoot(root, LOCK_NAME, bootId);
    const store = new JsonStateStore(stateDir, { onWarning: (message) => logger.warn(message) });
    const loaded = await store.load();
    for (const { line, reason } of store.loadReport?.skippedLines ?? []) logger.warn({ journal: line, reason }, `State journal line ${line} skipped: ${reason}; every other change was loaded`);
    const { state, orphans, rootMountedSubdirectories, notes } = reconcile(loaded ?? emptyState(bootId), bootId, await mountTable.list(), root, stagingDir);
    for (const { volume, note } of notes) logger.info({ volume }, `Reconcile: ${note}`);
    if (!loaded || loaded.bootId !== bootId || notes.length > 0 || (store.journalLength ?? 0) > 0) await store.save(state);
    const stateCommitter = new GroupCommitter(store, () => state, undefined, {
      onError: (error, retryInMs) => logger.warn({ err: errorMessage(error), retryInMs }, 'Could not save state; changes are kept in memory and saving is retried'),
      onRecovered: () => logger.info('State saved again after earlier failures'),
    });
    committer = stateCommitter;
    const protocol = new CsiProtocolHandler();
    const driver = new VolumeDriver({
      protocol,
      mounter,
      mountTable,
      root,
      provisioner,
      // The controller made or checked the directory at CreateVolume; looking again on every
      // node's first publish cost a mount of the share's root, a helper and an unmount (about
      // 30 s on a slow node, past swarmkit's 15 s per call).
      subdirectoriesProvisioned: true,
      state,
      commit: (volumes) => stateCommitter.commit(volumes),
      commitLater: (volumes) => stateCommitter.commitLater(volumes),
      lockWaitMs: timeoutMs,
      rootMountedSubdirectories,
      clock,
      logger: logger.child({ component: 'driver' }),
      // A target is bound to the share right after its mount; no second mount to spare.
      unmountDelayMs: 0,
    });
    const csi = new CsiNode({ driver, protocol, mounter, mountTable, runner, root, nodeId: config.nodeId, timeoutMs, logger: logger.child({ component: 'node' }) });
    return {
      csi,
      driver,
      async cleanUp() {
        if (orphans.length > 0) await driver.cleanUpOrphans(orphans);
        await csi.pruneUnused();
      },
    };
  }

  /** Staging mounts a killed controller left (the node's reconcile finds them itself). */
  async function unmountStaging(): Promise<void> {
    const leftovers = mountsBelow(await mountTable.list(), stagingDir).map((entry) => entry.mountPoint).sort((a, b) => b.length - a.length);
    for (const path of leftovers) {
      await mounter.unmount(path, { detachIfBusy: true }).catch((error: unknown) => logger.warn({ mountpoint: path, err: errorMessage(error) }, 'Could not unmount a staging mount left by an earlier run'));
    }
  }
}

async function realDirectory(path: string, mode = 0o755): Promise<string> {
  await mkdir(path, { recursive: true, mode });
  return realpath(path);
}
