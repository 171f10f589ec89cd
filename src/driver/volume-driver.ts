import { mkdir, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { ConflictError, InUseError, MountError, NotFoundError, errorMessage } from '../errors.js';
import type { ProtocolHandler } from '../protocols/protocol.js';
import type { StateFile, VolumeRecord } from '../state/state-schema.js';
import type { Mounter } from '../system/mounter.js';
import { findMount, mountsBelow, type MountTable } from '../system/mount-table.js';
import { maskSecretOptions } from '../protocols/secret-options.js';
import { KeyedMutex } from './keyed-mutex.js';
import { MountpointIndex } from './mountpoint-index.js';
import { checkVolumeName, mountpointFor } from './volume-name.js';

export interface VolumeSummary {
  readonly Name: string;
  readonly Mountpoint?: string;
}

export interface VolumeDetail extends VolumeSummary {
  readonly CreatedAt: string;
  readonly Status: Record<string, unknown>;
}

export interface StaleRelease {
  readonly volume: string;
  readonly ids: string[];
  readonly action: 'released' | 'would release' | 'kept';
  readonly reason: string;
}

export interface DriverDeps {
  readonly protocol: ProtocolHandler;
  readonly mounter: Mounter;
  readonly mountTable: MountTable;
  /** `<basedir>/<protocol>`: every mountpoint lies strictly inside it. */
  readonly root: string;
  /** The live state; the driver mutates it and then calls commit(). */
  readonly state: StateFile;
  /** Persists the named volumes' records (and the state's own fields). */
  readonly commit: (volumes: readonly string[]) => Promise<void>;
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

  constructor(private readonly deps: DriverDeps) {}

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
      const checked = protocol.check({ name, options });
      const mountpoint = mountpointFor(this.deps.root, name);
      const other = this.index().overlapping(mountpoint);
      if (other !== undefined) {
        throw new ConflictError(
          `volume '${name}' would be mounted at ${mountpoint}, which overlaps volume '${other}' at ${mountpointFor(this.deps.root, other)}; use a named volume with -o share=${checked.share}`,
        );
      }
      const record: VolumeRecord = {
        name,
        protocol: protocol.protocol,
        options: { ...options },
        share: checked.share,
        ...(checked.subdirectory !== undefined ? { subdirectory: checked.subdirectory } : {}),
        createdAt: this.deps.clock().toISOString(),
        mountIds: [],
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

  async mount(name: string, id: string): Promise<string> {
    const { state, logger, mountTable, mounter, protocol } = this.deps;
    return this.locks.run(name, async () => {
      const record = this.require(name);
      this.cancelLinger(name);
      const mountpoint = this.mountpoint(record);
      const path = this.path(record);
      const entries = await mountTable.list();
      let mountedNow = false;
      if (!findMount(entries, mountpoint)) {
        if (record.mountIds.length > 0) {
          logger.warn({ volume: name, mountpoint }, 'Volume was unmounted behind netvol; mounting it again');
        }
        this.checkNoNestedMounts(entries, mountpoint);
        await mkdir(mountpoint, { recursive: true, mode: 0o755 });
        try {
          await mounter.mount(await protocol.plan(record), mountpoint);
        } catch (error) {
          await this.removeEmptyDirectories(mountpoint);
          record.lastError = errorMessage(error);
          throw error;
        }
        mountedNow = true;
      }
      try {
        if (record.subdirectory !== undefined) await makeSubdirectory(path, name);
        const epoch = state.activations;
        const previousEpoch = record.mountEpochs && Object.hasOwn(record.mountEpochs, id) ? record.mountEpochs[id] : undefined;
        // dockerd restarted (it activated us again) and a container it had running starts
        // again with its old mount ID: that is the same reference, not a nested mount.
        const reclaimed = record.mountIds.includes(id) && previousEpoch !== undefined && previousEpoch < epoch;
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
          await mounter.unmount(mountpoint).catch(() => undefined);
          await this.removeEmptyDirectories(mountpoint);
        }
        record.lastError = errorMessage(error);
        throw error;
      }
      logger.info({ volume: name, id, mounts: record.mountIds.length, outcome: mountedNow ? 'mounted' : 'reused' }, 'Volume mount');
      return path;
    });
  }

  /** dockerd called Plugin.Activate: it has (re)started. */
  async activated(): Promise<void> {
    this.deps.state.activations += 1;
    await this.commit();
    this.deps.logger.info({ activations: this.deps.state.activations }, 'Activated by dockerd');
  }

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
        const epochs = record.mountEpochs;
        record.mountIds.splice(index, 1);
        forgetEpochIfLast(record, id);
        await this.commit(name).catch((error: unknown) => {
          record.mountIds.splice(index, 0, id);
          record.mountEpochs = epochs;
          throw error;
        });
        logger.info({ volume: name, id, mounts: record.mountIds.length, outcome: 'released' }, 'Volume unmount');
        return;
      }
      const delayMs = this.deps.unmountDelayMs ?? 0;
      if (delayMs > 0) {
        // The reference is gone now (state says unmounted); only the kernel mount waits.
        const before = { mountIds: record.mountIds, mountedAt: record.mountedAt, mountEpochs: record.mountEpochs };
        record.mountIds = [];
        delete record.mountedAt;
        delete record.mountEpochs;
        await this.commit(name).catch((error: unknown) => {
          Object.assign(record, before);
          throw error;
        });
        this.linger(name, delayMs);
        logger.info({ volume: name, id, mounts: 0, outcome: 'released', unmountInMs: delayMs }, 'Volume unmount');
        return;
      }
      await this.unmountAndForget(record);
      // The kernel mount is gone whatever happens next; a failed save is repaired at the
      // next start, when the mount table shows the volume unmounted.
      await this.commit(name);
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
        await this.unmountAndForget(record);
        await this.commit(name);
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
    const results: StaleRelease[] = [];
    for (const record of this.records()) {
      if (record.mountIds.length === 0 || inUse.has(record.name)) continue;
      const outcome = await this.locks.run(record.name, async (): Promise<StaleRelease> => {
        const ids = [...record.mountIds];
        const base = { volume: record.name, ids };
        if (ids.length === 0) return { ...base, action: 'kept', reason: 'released meanwhile' };
        const lastMount = Date.parse(record.lastMountAt ?? record.mountedAt ?? '');
        if (Number.isFinite(lastMount) && lastMount > askedAt.getTime() - graceMs) {
          return { ...base, action: 'kept', reason: `mounted ${Math.round((askedAt.getTime() - lastMount) / 1000)} s ago; a container may be starting` };
        }
        if (dryRun) return { ...base, action: 'would release', reason: 'no running container uses it' };
        await this.unmountAndForget(record);
        await this.commit(record.name);
        this.deps.logger.info({ volume: record.name, ids, outcome: 'released-stale' }, 'Released stale mount IDs: no running container uses the volume');
        return { ...base, action: 'released', reason: 'no running container uses it' };
      });
      results.push(outcome);
    }
    return results;
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
      ...(record.subdirectory !== undefined ? { subdirectory: record.subdirectory } : {}),
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

  private path(record: VolumeRecord): string {
    const mountpoint = this.mountpoint(record);
    return record.subdirectory !== undefined ? join(mountpoint, record.subdirectory) : mountpoint;
  }

  /**
   * The last reference is gone: unmount if the kernel still has it, remove the empty
   * mountpoint, and drop every mount ID. A failed umount changes nothing but lastError.
   */
  private async unmountAndForget(record: VolumeRecord): Promise<void> {
    const mountpoint = this.mountpoint(record);
    if (findMount(await this.deps.mountTable.list(), mountpoint)) {
      try {
        await this.deps.mounter.unmount(mountpoint);
      } catch (error) {
        record.lastError = errorMessage(error);
        throw error;
      }
    }
    await this.removeEmptyDirectories(mountpoint);
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

async function makeSubdirectory(path: string, name: string): Promise<void> {
  try {
    await mkdir(path, { mode: 0o777 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw new MountError(`volume '${name}': cannot create ${path} on the share (create=true): ${errorMessage(error)}`);
  }
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
