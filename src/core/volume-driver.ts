import { mkdir, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { BusyError, ConflictError, InUseError, MountError, NotFoundError, errorMessage } from '../errors.js';
import type { MountPlan } from '../protocols/mount-plan.js';
import type { OnDelete } from '../protocols/provisioning.js';
import type { ProtocolHandler } from '../protocols/protocol.js';
import type { StateFile, VolumeRecord } from '../state/state-schema.js';
import type { Mounter } from '../system/mounter.js';
import type { MountHealthState, MountProbe } from '../system/mount-health.js';
import { findMount, mountsBelow, type MountTable } from '../system/mount-table.js';
import { maskSecretOptions } from '../protocols/secret-options.js';
import { KeyedMutex } from './keyed-mutex.js';
import { MountpointIndex } from './mountpoint-index.js';
import { subdirectoryPlan, type ShareProvisioner } from './share-provisioner.js';
import { checkVolumeName, mountpointFor } from './volume-name.js';

export interface VolumeSummary {
  readonly Name: string;
  readonly Mountpoint?: string;
}

export interface VolumeDetail extends VolumeSummary {
  readonly CreatedAt: string;
  readonly Status: Record<string, unknown>;
}

export interface VolumeHealth {
  readonly state: MountHealthState;
  readonly checkedAt: string;
  readonly detail?: string;
}

export interface StaleRelease {
  readonly volume: string;
  readonly ids: string[];
  readonly action: 'released' | 'would release' | 'kept' | 'failed';
  readonly reason: string;
}

export interface DriverDeps {
  readonly protocol: ProtocolHandler;
  readonly mounter: Mounter;
  readonly mountTable: MountTable;
  /** The mount root (realpath), locked to this daemon: every mountpoint lies strictly inside it. */
  readonly root: string;
  /** Makes a volume's subdirectory on its share, outside the request's own mount. */
  readonly provisioner: ShareProvisioner;
  /**
   * Subdirectories were made and checked elsewhere (the CSI controller, at CreateVolume): mount
   * them without first mounting the share's root to look. A missing one fails the mount.
   */
  readonly subdirectoriesProvisioned?: boolean;
  /** The live state; the driver mutates it and then calls commit(). */
  readonly state: StateFile;
  /** Persists the named volumes' records (and the state's own fields); rejects when not durable. */
  readonly commit: (volumes: readonly string[]) => Promise<void>;
  /**
   * Persists without making the caller wait or fail: for changes the kernel side has already
   * made (a container stopped, dockerd activated us), where failing the call helps nobody.
   * Retried until it succeeds.
   */
  readonly commitLater?: (volumes: readonly string[]) => void;
  /** How long a Mount may wait behind an earlier call on the same volume; unbounded if absent. */
  readonly lockWaitMs?: number;
  /** --share: a volume created without a share is the directory of its name under this one. */
  readonly defaultShare?: string | undefined;
  /** --on-delete: the remove policy of volumes that do not choose one. */
  readonly defaultOnDelete?: OnDelete | undefined;
  /**
   * Checks a mounted share before Mount hands it out again; a stale one is mounted afresh.
   * Absent: shares are reused unchecked.
   */
  readonly probe?: MountProbe;
  /** Volumes adopted at start whose kernel mount is of the share's root (see reconcile). */
  readonly rootMountedSubdirectories?: Iterable<string>;
  readonly clock: () => Date;
  readonly logger: Logger;
  /**
   * The last Unmount leaves the share mounted this long (0: unmounts at once). dockerd mounts
   * a new volume, copies the image's files into it, unmounts it and mounts it again for the
   * container: the delay turns that second mount into a reuse.
   */
  readonly unmountDelayMs?: number;
}

/**
 * The eight VolumeDriver operations. Every change runs under its volume's lock, reaches the
 * kernel first and the state file second, and is undone in memory if either fails, so a
 * failed call leaves things as they were. The reference count is the list of mount IDs.
 */
export class VolumeDriver {
  private readonly locks = new KeyedMutex();
  /**
   * List's reply, encoded: dockerd lists often, 10,000 volumes take milliseconds to serialise,
   * and one shared buffer spares each concurrent reply its own 200 KB copy.
   */
  private listCache: Buffer | undefined;
  private mountpoints: MountpointIndex | undefined;
  /** Volumes whose last Unmount came; their share stays mounted until the timer fires. */
  private readonly lingering = new Map<string, NodeJS.Timeout>();
  private readonly rootMounted: Set<string>;
  /** The last health check of each mounted volume (in memory: a restart checks again). */
  private readonly health = new Map<string, VolumeHealth>();
  /** Volumes whose background check is running. */
  private readonly checking = new Set<string>();
  /** performance.now() of each volume's last healthy check. */
  private readonly healthyAt = new Map<string, number>();

  constructor(private readonly deps: DriverDeps) {
    this.rootMounted = new Set(deps.rootMountedSubdirectories ?? []);
  }

  /** Built on first Create, so start-up does not pay for it. */
  private index(): MountpointIndex {
    if (!this.mountpoints) {
      this.mountpoints = new MountpointIndex(this.deps.root);
      for (const record of Object.values(this.deps.state.volumes)) this.mountpoints.add(this.mountpoint(record), record.name);
    }
    return this.mountpoints;
  }

  /** Every change goes through here, so the cached List reply can never be stale. */
  private async commit(volume?: string): Promise<void> {
    this.listCache = undefined;
    try {
      await this.deps.commit(volume === undefined ? [] : [volume]);
    } finally {
      this.listCache = undefined;
    }
  }

  /**
   * For changes the kernel side has already made (a container stopped, dockerd activated us):
   * waits for the write like any change, but a failed write does not fail the call. Failing
   * would leave dockerd holding an ID it never sends again, or unable to use the driver at
   * all; the change is kept and its save retried until it succeeds (status shows it).
   */
  private async commitOrKeep(volume?: string): Promise<void> {
    try {
      await this.commit(volume);
    } catch (error) {
      this.deps.logger.warn({ volume, err: errorMessage(error) }, 'Could not save state; the change is kept and saving is retried');
      const volumes = volume === undefined ? [] : [volume];
      if (this.deps.commitLater) this.deps.commitLater(volumes);
    }
  }

  async create(name: string, options: Record<string, string>): Promise<void> {
    checkVolumeName(name);
    const { protocol, state, logger } = this.deps;
    await this.locks.run(name, async () => {
      const existing = state.volumes[name];
      if (existing) {
        // dockerd and swarm tasks repeat Create; same options (or none) is the same volume.
        if (Object.keys(options).length === 0 || sameOptions(existing.options, options)) return;
        throw new ConflictError(
          `volume '${name}' already exists with other options (share ${existing.share}); remove it first (docker volume rm ${name}) or choose another name`,
        );
      }
      const defaultShare = options['share'] === undefined || options['share'] === '' ? this.deps.defaultShare : undefined;
      const checked = protocol.check({ name, options, defaultShare });
      const mountpoint = mountpointFor(this.deps.root, name);
      const other = this.index().overlapping(mountpoint);
      if (other !== undefined) {
        throw new ConflictError(
          `volume '${name}' would be mounted at ${mountpoint}, which overlaps volume '${other}' at ${mountpointFor(this.deps.root, other)}; use a named volume with -o share=${checked.share}`,
        );
      }
      const record: VolumeRecord = {
        name,
        protocol: checked.protocol ?? protocol.protocol,
        options: { ...options },
        share: checked.share,
        ...(checked.subdirectory !== undefined ? { subdirectory: checked.subdirectory } : {}),
        createdAt: this.deps.clock().toISOString(),
        mountIds: [],
        ...(defaultShare !== undefined && checked.subdirectory !== undefined ? { defaultShare } : {}),
        ...(checked.subdirectory !== undefined ? { onDelete: checked.provisioning?.onDelete ?? this.deps.defaultOnDelete ?? 'retain' } : {}),
      };
      state.volumes[name] = record;
      this.index().add(mountpoint, name);
      try {
        await this.commit(name);
      } catch (error) {
        delete state.volumes[name];
        this.index().remove(mountpoint);
        throw error;
      }
      logger.info({ volume: name, share: checked.share, outcome: 'created' }, 'Volume created');
    });
  }

  async remove(name: string): Promise<void> {
    const { state, logger } = this.deps;
    await this.locks.run(name, async () => {
      const record = state.volumes[name];
      if (!record) return;
      if (record.mountIds.length > 0) {
        const n = record.mountIds.length;
        throw new InUseError(
          `volume '${name}' is still mounted for ${n} container mount${n === 1 ? '' : 's'}; stop the container${n === 1 ? '' : 's'} using it first`,
        );
      }
      // No IDs, but the share may still be mounted: waiting out the unmount delay, or its timer
      // fired and the unmount is queued behind this call (it then finds no volume).
      this.cancelLinger(name);
      await this.unmountAndForget(record);
      // Before the record goes: a failure here leaves the volume as it was, to be removed again.
      await this.applyRemovePolicy(record);
      delete state.volumes[name];
      this.index().remove(this.mountpoint(record));
      try {
        await this.commit(name);
      } catch (error) {
        state.volumes[name] = record;
        this.index().add(this.mountpoint(record), name);
        throw error;
      }
      await this.removeEmptyDirectories(this.mountpoint(record));
      logger.info({ volume: name, outcome: 'removed' }, 'Volume removed');
    });
  }

  /**
   * `repeated`: this is dockerd repeating a Mount that a killed netvol may have finished
   * (its state saved, its answer never sent), so an ID already held is that same reference.
   */
  async mount(name: string, id: string, options: { repeated?: boolean } = {}): Promise<string> {
    const { state, logger, mountTable } = this.deps;
    const waitMs = this.deps.lockWaitMs;
    return this.locks.run(
      name,
      async () => {
        const record = this.require(name);
        this.cancelLinger(name);
        const mountpoint = this.mountpoint(record);
        const entries = await mountTable.list();
        let mountedNow = false;
        if (!findMount(entries, mountpoint)) {
          if (record.mountIds.length > 0) {
            logger.warn({ volume: name, mountpoint }, 'Volume was unmounted behind netvol; mounting it again');
          }
          this.rootMounted.delete(name);
          this.checkNoNestedMounts(entries, mountpoint);
          await mkdir(mountpoint, { recursive: true, mode: 0o755 });
          try {
            await this.mountShare(record, mountpoint);
          } catch (error) {
            await this.removeEmptyDirectories(mountpoint);
            record.lastError = errorMessage(error);
            throw error;
          }
          mountedNow = true;
        } else if (await this.remountIfStale(record, mountpoint)) {
          mountedNow = true;
        }
        const path = this.path(record);
        try {
          const epoch = state.activations;
          const previousEpoch = record.mountEpochs && Object.hasOwn(record.mountEpochs, id) ? record.mountEpochs[id] : undefined;
          // dockerd restarted (it activated us again) and a container it had running starts
          // again with its old mount ID: that is the same reference, not a nested mount.
          const reclaimed =
            record.mountIds.includes(id) && ((previousEpoch !== undefined && previousEpoch < epoch) || options.repeated === true);
          const before = { mountEpochs: record.mountEpochs, mountedAt: record.mountedAt, lastMountAt: record.lastMountAt };
          if (!reclaimed) record.mountIds.push(id);
          record.mountEpochs = { ...record.mountEpochs, [id]: epoch };
          record.mountedAt ??= this.deps.clock().toISOString();
          record.lastMountAt = this.deps.clock().toISOString();
          delete record.lastError;
          await this.commit(name).catch((error: unknown) => {
            if (!reclaimed) record.mountIds.pop();
            Object.assign(record, before);
            if (record.mountIds.length === 0) delete record.mountedAt;
            throw error;
          });
        } catch (error) {
          if (mountedNow) {
            await this.deps.mounter.unmount(mountpoint).catch(() => undefined);
            await this.removeEmptyDirectories(mountpoint);
          } else if (record.mountIds.length === 0) {
            // A share reused from its unmount delay: without a timer again it would stay mounted for good.
            this.linger(name, this.deps.unmountDelayMs ?? 0);
          }
          record.lastError = errorMessage(error);
          throw error;
        }
        logger.info({ volume: name, id, mounts: record.mountIds.length, outcome: mountedNow ? 'mounted' : 'reused' }, 'Volume mount');
        return path;
      },
      {
        maxWaitMs: waitMs,
        onTimeout: () =>
          new BusyError(
            `volume '${name}' is busy: an earlier call for it has not finished after ${Math.round((waitMs ?? 0) / 1000)} s (is its server ${this.deps.state.volumes[name]?.share ?? ''} reachable?); nothing was mounted, try again`,
          ),
      },
    );
  }

  /**
   * The share is mounted already: check it before handing it out again. A stale one (server
   * restarted without its state, export re-created) would fail every container started on it,
   * so it is unmounted and mounted afresh; containers already running on it keep the old,
   * stale mount (their bind mount points at it) until they restart: no plugin can heal those.
   * An unreachable one is handed out as before: unmounting a hard mount under running
   * containers could lose their writes, and the server may come back.
   */
  private async remountIfStale(record: VolumeRecord, mountpoint: string): Promise<boolean> {
    if (!this.deps.probe) return false;
    // A burst of container starts on one volume pays for one check, not one each.
    const healthyAt = this.healthyAt.get(record.name);
    if (healthyAt !== undefined && performance.now() - healthyAt < FRESH_HEALTH_MS) return false;
    const { logger, mounter } = this.deps;
    const health = await this.checkHealthOf(record.name, mountpoint);
    if (health.state === 'unreachable') {
      logger.warn({ volume: record.name, mountpoint, detail: health.detail }, 'Mounted share did not answer its health check; handing it out as it is');
      return false;
    }
    if (health.state !== 'stale') return false;
    logger.warn(
      { volume: record.name, mountpoint, detail: health.detail, mounts: record.mountIds.length },
      'Mounted share is stale: unmounting and mounting it again; containers already running on it keep the stale mount until they restart',
    );
    try {
      await mounter.unmount(mountpoint, { detachIfBusy: true });
    } catch (error) {
      throw new MountError(
        `volume '${record.name}': the mounted share at ${mountpoint} is stale (${health.detail ?? ''}) and could not be unmounted: ${errorMessage(error)}; nothing was mounted: unmount it by hand (umount -l ${mountpoint}) and try again`,
        { cause: error },
      );
    }
    this.rootMounted.delete(record.name);
    await mkdir(mountpoint, { recursive: true, mode: 0o755 });
    try {
      await this.mountShare(record, mountpoint);
    } catch (error) {
      await this.removeEmptyDirectories(mountpoint);
      throw error;
    }
    this.health.set(record.name, { state: 'healthy', checkedAt: this.deps.clock().toISOString(), detail: 'mounted again after it was stale' });
    logger.info({ volume: record.name, mountpoint }, 'Stale share mounted again');
    return true;
  }

  private async checkHealthOf(name: string, mountpoint: string): Promise<VolumeHealth> {
    const result = await (this.deps.probe ? this.deps.probe.probe(mountpoint) : Promise.resolve({ state: 'healthy' as const }));
    const health: VolumeHealth = { ...result, checkedAt: this.deps.clock().toISOString() };
    this.health.set(name, health);
    if (health.state === 'healthy') this.healthyAt.set(name, performance.now());
    else this.healthyAt.delete(name);
    return health;
  }

  /**
   * The background probe (--health-interval): checks every mounted volume and records what
   * it saw. It only reports: unmounting under running containers is never its call.
   */
  async checkHealth(): Promise<void> {
    const entries = await this.deps.mountTable.list();
    // Only shares containers use, one check each at a time: on a dead server a check blocks
    // until its time bound, and a check of a share waiting out its unmount delay would make
    // that unmount find the mount busy.
    const mounted = this.records().filter(
      (record) => record.mountIds.length > 0 && !this.checking.has(record.name) && findMount(entries, this.mountpoint(record)) !== undefined,
    );
    await Promise.all(
      mounted.map(async (record) => {
        const before = this.health.get(record.name)?.state;
        this.checking.add(record.name);
        const health = await this.checkHealthOf(record.name, this.mountpoint(record)).finally(() => this.checking.delete(record.name));
        if (health.state !== before && health.state !== 'healthy') {
          this.deps.logger.warn({ volume: record.name, health: health.state, detail: health.detail }, 'Health check: the mounted share is not healthy; the next Mount of it acts on that');
        }
      }),
    );
  }

  healthOf(name: string): VolumeHealth | undefined {
    return this.health.get(name);
  }

  /**
   * A volume with a subdirectory gets that subdirectory mounted directly (`host:/export/sub`),
   * as csi-driver-nfs does: path lookups then happen on the server, inside its export, never
   * on this host, so nothing placed on the share can make the directory handed to dockerd
   * resolve to a host path. Before that first mount the directory is made or checked, once,
   * by the provisioner, which never follows links: a link (or a file) where the directory
   * should be is refused with a clear error rather than followed on the server.
   */
  private async mountShare(record: VolumeRecord, mountpoint: string): Promise<void> {
    const { mounter, protocol } = this.deps;
    const plan = await protocol.plan(record);
    if (record.subdirectory === undefined) {
      await mounter.mount(plan, mountpoint);
      return;
    }
    if (!this.deps.subdirectoriesProvisioned) await this.makeSubdirectory(plan, record);
    await mounter.mount(subdirectoryPlan(plan, record.subdirectory), mountpoint);
  }

  private async makeSubdirectory(plan: MountPlan, record: VolumeRecord): Promise<void> {
    const subdirectory = record.subdirectory ?? '';
    const owner = this.deps.protocol.check(record).provisioning?.owner ?? {};
    try {
      const { made } = await this.deps.provisioner.makeDirectory(plan, subdirectory, owner);
      // Kept with the volume, so that only a directory netvol made is ever deleted for it.
      if (made) record.directoryMade = true;
      this.deps.logger.info({ volume: record.name, subdirectory, made, ...owner }, made ? 'Made the subdirectory on the share' : 'Subdirectory exists on the share');
    } catch (error) {
      throw new MountError(`volume '${record.name}': cannot make the subdirectory ${subdirectory} on ${record.share}: ${errorMessage(error)}`, { cause: error });
    }
  }

  /**
   * onDelete=delete removes, and archive renames to `archived-<name>-<UTC time>`, the
   * subdirectory netvol made; never the share itself, never a directory that was there before.
   */
  private async applyRemovePolicy(record: VolumeRecord): Promise<void> {
    const policy = record.onDelete ?? 'retain';
    const subdirectory = record.subdirectory;
    if (policy === 'retain' || subdirectory === undefined) return;
    const { logger, provisioner, protocol } = this.deps;
    if (!record.directoryMade) {
      logger.info({ volume: record.name, subdirectory, onDelete: policy }, 'Subdirectory retained: it existed before netvol used it, so only its owner may delete it');
      return;
    }
    const plan = await protocol.plan(record);
    try {
      if (policy === 'delete') {
        await provisioner.removeDirectory(plan, subdirectory);
        logger.info({ volume: record.name, subdirectory, outcome: 'deleted' }, 'Deleted the volume\'s subdirectory on the share (onDelete=delete)');
      } else {
        const archived = archiveName(subdirectory, this.deps.clock());
        await provisioner.renameDirectory(plan, subdirectory, archived);
        logger.info({ volume: record.name, subdirectory, archived, outcome: 'archived' }, 'Archived the volume\'s subdirectory on the share (onDelete=archive)');
      }
    } catch (error) {
      record.lastError = errorMessage(error);
      throw new MountError(
        `volume '${record.name}' was not removed: onDelete=${policy} of ${subdirectory} on ${record.share} failed: ${errorMessage(error)}; the volume and its data are as they were, fix the cause and remove it again`,
        { cause: error },
      );
    }
  }

  /** dockerd called Plugin.Activate: it has (re)started. Never fails: dockerd could not use the driver at all. */
  async activated(): Promise<void> {
    this.deps.state.activations += 1;
    await this.commitOrKeep();
    this.deps.logger.info({ activations: this.deps.state.activations }, 'Activated by dockerd');
  }

  /**
   * A container let go. The reference goes whatever the disk says: a failed save is retried
   * in the background (and shown in status), because failing the call would leave dockerd
   * holding an ID it never sends again and the share mounted for good.
   */
  async unmount(name: string, id: string): Promise<void> {
    const { state, logger } = this.deps;
    await this.locks.run(name, async () => {
      const record = state.volumes[name];
      const index = record ? record.mountIds.lastIndexOf(id) : -1;
      if (!record || index < 0) {
        logger.debug({ volume: name, id }, 'Unmount of an unknown mount ID: nothing to do');
        return;
      }
      if (record.mountIds.length > 1) {
        record.mountIds.splice(index, 1);
        forgetEpochIfLast(record, id);
        await this.commitOrKeep(name);
        logger.info({ volume: name, id, mounts: record.mountIds.length, outcome: 'released' }, 'Volume unmount');
        return;
      }
      const delayMs = this.deps.unmountDelayMs ?? 0;
      if (delayMs > 0) {
        // The reference is gone now (state says unmounted); only the kernel mount waits.
        record.mountIds = [];
        delete record.mountedAt;
        delete record.mountEpochs;
        await this.commitOrKeep(name);
        this.linger(name, delayMs);
        logger.info({ volume: name, id, mounts: 0, outcome: 'released', unmountInMs: delayMs }, 'Volume unmount');
        return;
      }
      // No container holds it any more: a busy umount (a health check stuck on a dead server)
      // becomes a lazy detach rather than a share left mounted with no user.
      await this.unmountAndForget(record, { detachIfBusy: true });
      await this.commitOrKeep(name);
      logger.info({ volume: name, id, mounts: 0, outcome: 'unmounted' }, 'Volume unmount');
    });
  }

  /** Unmounts every share still waiting out its unmount delay (the daemon is stopping). */
  async unmountLingering(): Promise<void> {
    const names = [...this.lingering.keys()];
    for (const name of names) clearTimeout(this.lingering.get(name));
    this.lingering.clear();
    await Promise.all(names.map((name) => this.finishLinger(name)));
  }

  private linger(name: string, delayMs: number): void {
    this.cancelLinger(name);
    const timer = setTimeout(() => {
      this.lingering.delete(name);
      void this.finishLinger(name);
    }, delayMs);
    timer.unref();
    this.lingering.set(name, timer);
  }

  private cancelLinger(name: string): void {
    clearTimeout(this.lingering.get(name));
    this.lingering.delete(name);
  }

  private async finishLinger(name: string): Promise<void> {
    await this.locks
      .run(name, async () => {
        const record = this.deps.state.volumes[name];
        // Mounted again meanwhile, or removed (Remove unmounts it itself).
        if (!record || record.mountIds.length > 0) return;
        await this.unmountAndForget(record, { detachIfBusy: true });
        await this.commitOrKeep(name);
        this.deps.logger.info({ volume: name, mounts: 0, outcome: 'unmounted' }, 'Volume unmount (after the unmount delay)');
      })
      .catch((error: unknown) => {
        this.deps.logger.warn({ volume: name, err: errorMessage(error) }, 'Unmount after the unmount delay failed; the next Mount reuses the share, Remove retries');
      });
  }

  /** Mountpoint while mounted, '' otherwise (allowed by the protocol). */
  pathOf(name: string): string {
    const record = this.require(name);
    return record.mountIds.length > 0 ? this.path(record) : '';
  }

  get(name: string): VolumeDetail {
    const record = this.require(name);
    return {
      Name: record.name,
      ...(record.mountIds.length > 0 ? { Mountpoint: this.path(record) } : {}),
      CreatedAt: record.createdAt,
      Status: this.status(record),
    };
  }

  /** `{"Volumes":[...],"Err":""}`, serialised once per change. */
  listReply(): Buffer {
    this.listCache ??= Buffer.from(JSON.stringify({ Volumes: this.list(), Err: '' }));
    return this.listCache;
  }

  list(): VolumeSummary[] {
    return Object.values(this.deps.state.volumes).map((record) => ({
      Name: record.name,
      ...(record.mountIds.length > 0 ? { Mountpoint: this.path(record) } : {}),
    }));
  }

  /**
   * Drops the mount IDs of volumes that no live container uses (after a dockerd crash the
   * Unmount for them never comes) and unmounts them. `inUse` comes from dockerd, asked at
   * `askedAt`; a volume mounted within `graceMs` of that is left alone, since a container
   * may be starting on it right now.
   */
  async releaseStale(inUse: ReadonlySet<string>, askedAt: Date, graceMs: number, dryRun: boolean): Promise<StaleRelease[]> {
    // Each volume under its own lock and independently: one hung or failing volume neither
    // stalls the others nor hides what was done to them.
    const candidates = this.records().filter((record) => record.mountIds.length > 0 && !inUse.has(record.name));
    return Promise.all(
      candidates.map((record) =>
        this.locks
          .run(record.name, async (): Promise<StaleRelease> => {
            const ids = [...record.mountIds];
            const base = { volume: record.name, ids };
            if (ids.length === 0) return { ...base, action: 'kept', reason: 'released meanwhile' };
            const lastMount = Date.parse(record.lastMountAt ?? record.mountedAt ?? '');
            if (Number.isFinite(lastMount) && lastMount > askedAt.getTime() - graceMs) {
              return { ...base, action: 'kept', reason: `mounted ${Math.round((askedAt.getTime() - lastMount) / 1000)} s ago; a container may be starting` };
            }
            if (dryRun) return { ...base, action: 'would release', reason: 'no running container uses it' };
            await this.unmountAndForget(record);
            await this.commitOrKeep(record.name);
            this.deps.logger.info({ volume: record.name, ids, outcome: 'released-stale' }, 'Released stale mount IDs: no running container uses the volume');
            return { ...base, action: 'released', reason: 'no running container uses it' };
          })
          .catch((error: unknown): StaleRelease => {
            this.deps.logger.warn({ volume: record.name, err: errorMessage(error) }, 'Stale-reference release failed for this volume; its mount IDs are kept');
            return { volume: record.name, ids: [...record.mountIds], action: 'failed', reason: errorMessage(error) };
          }),
      ),
    );
  }

  /** The volume whose Mountpoint (as handed to dockerd) is `path`, if any. */
  volumeAtPath(path: string): string | undefined {
    for (const record of this.records()) if (this.path(record) === path) return record.name;
    return undefined;
  }

  /**
   * Unmounts the orphans reconcile found, in parallel, after the socket is up: each can cost
   * a dead server's mount timeout twice, and start-up must not wait for that. A volume's
   * orphan is unmounted under its lock and only while no Mount has claimed it meanwhile.
   */
  async cleanUpOrphans(orphans: readonly string[]): Promise<void> {
    const byMountpoint = new Map(this.records().map((record) => [this.mountpoint(record), record.name]));
    const owner = (path: string) => {
      for (let dir = path; dir.startsWith(`${this.deps.root}/`); dir = dirname(dir)) {
        const name = byMountpoint.get(dir);
        if (name !== undefined) return name;
      }
      return undefined;
    };
    const unmount = async (path: string) => {
      try {
        await this.deps.mounter.unmount(path);
        await this.removeEmptyDirectories(path);
      } catch (error) {
        this.deps.logger.warn({ mountpoint: path, err: errorMessage(error) }, 'Could not unmount an orphan mount');
      }
    };
    // Stacked and nested orphans of one volume go one after another, deepest first.
    const groups = new Map<string, { name: string | undefined; paths: string[] }>();
    for (const path of orphans) {
      const name = owner(path);
      const key = name ?? path;
      const group = groups.get(key) ?? { name, paths: [] };
      group.paths.push(path);
      groups.set(key, group);
    }
    await Promise.all(
      [...groups.values()].map(async ({ name, paths }) => {
        const run = async () => {
          if (name !== undefined && (this.deps.state.volumes[name]?.mountIds.length ?? 0) > 0) return;
          for (const path of paths) await unmount(path);
        };
        if (name === undefined) await run();
        else await this.locks.run(name, run);
      }),
    );
  }

  records(): VolumeRecord[] {
    return Object.values(this.deps.state.volumes);
  }

  /** What `docker volume inspect` shows under Status: secrets masked. */
  status(record: VolumeRecord): Record<string, unknown> {
    const options = maskSecretOptions(record.options, this.deps.protocol.secretKeys);
    return {
      protocol: record.protocol,
      share: record.share,
      ...(record.subdirectory !== undefined ? { subdirectory: record.subdirectory, onDelete: record.onDelete ?? 'retain' } : {}),
      mounted: record.mountIds.length > 0,
      mounts: record.mountIds.length,
      ...(record.mountedAt ? { mountedSince: record.mountedAt } : {}),
      options,
      ...(record.lastError ? { lastError: record.lastError } : {}),
    };
  }

  private require(name: string): VolumeRecord {
    const record = this.deps.state.volumes[name];
    if (!record) throw new NotFoundError(`no volume named '${name}' in the ${this.deps.protocol.protocol} driver`);
    return record;
  }

  mountpoint(record: VolumeRecord): string {
    return mountpointFor(this.deps.root, record.name);
  }

  /** The subdirectory is mounted itself, so the mountpoint is the path, but for a root mount adopted from before. */
  private path(record: VolumeRecord): string {
    const mountpoint = this.mountpoint(record);
    return record.subdirectory !== undefined && this.rootMounted.has(record.name) ? join(mountpoint, record.subdirectory) : mountpoint;
  }

  /**
   * The last reference is gone: unmount if the kernel still has it, remove the empty
   * mountpoint, and drop every mount ID. A failed umount changes nothing but lastError.
   */
  private async unmountAndForget(record: VolumeRecord, options: { detachIfBusy?: boolean } = {}): Promise<void> {
    const mountpoint = this.mountpoint(record);
    if (findMount(await this.deps.mountTable.list(), mountpoint)) {
      try {
        await this.deps.mounter.unmount(mountpoint, options);
      } catch (error) {
        record.lastError = errorMessage(error);
        throw error;
      }
    }
    await this.removeEmptyDirectories(mountpoint);
    this.rootMounted.delete(record.name);
    this.health.delete(record.name);
    this.healthyAt.delete(record.name);
    record.mountIds = [];
    delete record.mountedAt;
    delete record.mountEpochs;
  }

  /** A mount inside another mount would create directories on that server (and hide it). */
  private checkNoNestedMounts(entries: Parameters<typeof mountsBelow>[0], mountpoint: string): void {
    const below = mountsBelow(entries, mountpoint);
    if (below.length > 0) {
      throw new MountError(`cannot mount on ${mountpoint}: ${below[0]?.mountPoint} is mounted inside it`);
    }
    for (let dir = dirname(mountpoint); dir.startsWith(`${this.deps.root}/`); dir = dirname(dir)) {
      if (findMount(entries, dir)) throw new MountError(`cannot mount on ${mountpoint}: ${dir} is a mountpoint above it`);
    }
  }

  /** rmdir upwards while empty, never past root, never recursive: server data is never at risk. */
  private async removeEmptyDirectories(mountpoint: string): Promise<void> {
    for (let dir = mountpoint; dir.startsWith(`${this.deps.root}/`); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        return;
      }
    }
  }
}

/** `archived-pg-20261202T051500Z`: sorts by time, one segment, never a name a volume could have made. */
/** How long a healthy check stands for the next Mounts of the same share. */
const FRESH_HEALTH_MS = 1000;

export function archiveName(subdirectory: string, now: Date): string {
  return `archived-${subdirectory}-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

function forgetEpochIfLast(record: VolumeRecord, id: string): void {
  if (record.mountIds.includes(id) || !record.mountEpochs) return;
  const { [id]: _gone, ...rest } = record.mountEpochs;
  record.mountEpochs = rest;
}

export function sameOptions(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key]);
}
