import { mkdir, rmdir, stat } from 'node:fs/promises';
import { sep } from 'node:path';
import type { Logger } from 'pino';
import { status } from '@grpc/grpc-js';
import { ConflictError, InUseError, MountError, ValidationError, errorMessage } from '../../errors.js';
import { KeyedMutex } from '../../core/keyed-mutex.js';
import type { VolumeDriver } from '../../core/volume-driver.js';
import type { VolumeRecord } from '../../state/state-schema.js';
import { CommandFailedError, CommandTimeoutError, type CommandRunner } from '../../system/command-runner.js';
import type { Mounter } from '../../system/mounter.js';
import { findMount, type MountTable } from '../../system/mount-table.js';
import type { MountInfoEntry } from '../../system/mountinfo.js';
import { CsiStatusError } from './error-status.js';
import type { NodePublishVolumeRequest, NodeUnpublishVolumeRequest } from './csi-messages.js';
import type { CsiProtocolHandler } from './protocol-dispatch.js';
import { checkNodePublish, checkNodeUnpublish } from './requests.js';
import { nodeRecordName, recordOptions } from './volume-spec.js';

export interface NodeDeps {
  readonly driver: VolumeDriver;
  readonly protocol: CsiProtocolHandler;
  readonly mounter: Mounter;
  readonly mountTable: MountTable;
  readonly runner: CommandRunner;
  /** The core's mount root: one kernel mount per volume lives there. */
  readonly root: string;
  readonly nodeId: string;
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** mount(8) for the bind mounts onto targets; a stand-in mount command for shares never does these. */
  readonly bindCommand?: string;
}

/**
 * The CSI Node service over the core. A volume's share is mounted once per node by the
 * VolumeDriver (under its mount root, its reference count the set of target paths), and
 * each target gets a bind mount of it: several tasks of one volume on one node share one
 * kernel mount, unmounted with the last. A record lives while some target holds it.
 */
export class CsiNode {
  /** Per target path: a publish and an unpublish of one target never interleave. */
  private readonly targets = new KeyedMutex();
  /** Per record: a record is never removed between a publish's create and its mount. */
  private readonly records = new KeyedMutex();

  constructor(private readonly deps: NodeDeps) {}

  info() {
    return { node_id: this.deps.nodeId, max_volumes_per_node: 0 };
  }

  capabilities() {
    // No STAGE_UNSTAGE_VOLUME: the per-node mount it would stage is what the core's shared,
    // reference-counted mount already is, and swarmkit almost never sends NodeUnstageVolume.
    return { capabilities: [] };
  }

  async publish(request: NodePublishVolumeRequest): Promise<Record<string, never>> {
    const command = checkNodePublish(request);
    const { targetPath, spec, volumeId } = command;
    this.checkOutsideRoot(targetPath);
    const name = nodeRecordName(volumeId, spec);
    await this.targets.run(targetPath, async () => {
      const holder = this.holderOf(targetPath);
      if (holder && holder.name !== name) {
        throw new ConflictError(
          `target_path ${targetPath} is already published for another volume (${holder.options['share'] ?? ''} ${holder.options['subdir'] ?? ''}); unpublish it first or use another target`,
        );
      }
      const source = await this.records.run(name, async () => {
        await this.deps.driver.create(name, recordOptions(spec));
        this.deps.protocol.useCredentials(name, command.credentials);
        return this.shareFor(name, targetPath, holder !== undefined);
      });
      try {
        await this.bind(source, targetPath, command.readonly);
      } catch (error) {
        if (!holder) await this.release(name, targetPath).catch(() => undefined);
        throw error;
      }
      this.deps.logger.info({ volumeId, target: targetPath, readonly: command.readonly }, 'Volume published');
    });
    return {};
  }

  async unpublish(request: NodeUnpublishVolumeRequest): Promise<Record<string, never>> {
    const { targetPath, volumeId } = checkNodeUnpublish(request);
    await this.targets.run(targetPath, async () => {
      // Whatever is mounted on the target goes, ours or left from before a restart: the CO
      // handed this path to this volume only.
      for (let i = 0; i < 8 && findMount(await this.deps.mountTable.list(), targetPath); i++) await this.deps.mounter.unmount(targetPath);
      const holder = this.holderOf(targetPath);
      if (holder) await this.release(holder.name, targetPath);
      await rmdir(targetPath).catch(() => undefined);
      this.deps.logger.info({ volumeId, target: targetPath, known: holder !== undefined }, 'Volume unpublished');
    });
    return {};
  }

  /** Records no target holds (dropped by reconcile after a reboot): removed, so the state holds live volumes only. */
  async pruneUnused(): Promise<void> {
    for (const record of this.deps.driver.records().filter((candidate) => candidate.mountIds.length === 0)) {
      await this.records
        .run(record.name, async () => {
          if ((this.deps.driver.records().find((current) => current.name === record.name)?.mountIds.length ?? 1) > 0) return;
          await this.deps.driver.remove(record.name);
          this.deps.protocol.forget(record.name);
        })
        .catch((error: unknown) => this.deps.logger.warn({ volume: record.name, err: errorMessage(error) }, 'Could not remove a volume record no target uses; the next start tries again'));
    }
  }

  /**
   * The share's mountpoint with `target` counted once. A target counted before (a publish
   * repeated, or after a restart) is not counted again: the core counts a repeated mount ID
   * twice, and the last unpublish would then leave the share mounted.
   */
  private async shareFor(name: string, target: string, counted: boolean): Promise<string> {
    const { driver, mountTable } = this.deps;
    if (counted) {
      const record = this.record(name);
      if (record && findMount(await mountTable.list(), driver.mountpoint(record))) return driver.pathOf(name);
      // Unmounted behind netvol's back: count the target afresh, which mounts the share again.
      await driver.unmount(name, target);
    }
    return driver.mount(name, target);
  }

  private async release(name: string, target: string): Promise<void> {
    await this.records.run(name, async () => {
      await this.deps.driver.unmount(name, target);
      if ((this.record(name)?.mountIds.length ?? 1) > 0) return;
      try {
        await this.deps.driver.remove(name);
        this.deps.protocol.forget(name);
      } catch (error) {
        if (!(error instanceof InUseError)) throw error;
      }
    });
  }

  private async bind(source: string, target: string, readonly: boolean): Promise<void> {
    await this.makeTarget(target);
    const entries = await this.deps.mountTable.list();
    const existing = findMount(entries, target);
    if (existing) {
      const share = findMount(entries, source);
      if (share && sameFilesystem(existing, share)) {
        if (isReadOnly(existing) !== readonly) {
          throw new ConflictError(
            `target_path ${target} is already published ${isReadOnly(existing) ? 'read-only' : 'read-write'}, and this call asks for ${readonly ? 'read-only' : 'read-write'}; unpublish it first`,
          );
        }
        return;
      }
      throw new CsiStatusError(
        status.FAILED_PRECONDITION,
        `target_path ${target} is already a mountpoint of ${existing.source} (${existing.fsType}), not of this volume; unmount it or use another target`,
      );
    }
    await this.runMount(['--bind', '--', source, target], target);
    if (readonly) {
      try {
        await this.runMount(['-o', 'remount,bind,ro', '--', target], target);
      } catch (error) {
        // Never leave a writable target behind a read-only publish that failed.
        await this.deps.mounter.unmount(target).catch(() => undefined);
        throw error;
      }
    }
    if (!findMount(await this.deps.mountTable.list(), target)) {
      throw new MountError(`bind-mounting ${source} on ${target}: mount reported success but the mount table does not show it`);
    }
  }

  private async runMount(args: string[], target: string): Promise<void> {
    const file = this.deps.bindCommand ?? 'mount';
    try {
      await this.deps.runner.run({ file, args }, { timeoutMs: this.deps.timeoutMs });
    } catch (error) {
      if (error instanceof CommandTimeoutError) {
        throw new MountError(`bind-mounting onto ${target} timed out after ${this.deps.timeoutMs / 1000} s: the share stopped answering; try again once its server is reachable`, { cause: error });
      }
      const said = error instanceof CommandFailedError ? error.stderr.trim() || `exit status ${error.exitCode}` : errorMessage(error);
      throw new MountError(`bind-mounting onto ${target} failed: ${said}`, { cause: error });
    }
  }

  private async makeTarget(target: string): Promise<void> {
    // Nobody else makes it: swarmkit hands out /data/published/<id> and expects the plugin to.
    try {
      await mkdir(target, { recursive: true, mode: 0o750 });
    } catch (error) {
      throw new CsiStatusError(status.FAILED_PRECONDITION, `cannot make target_path ${target}: ${errorMessage(error)}`);
    }
    const info = await stat(target);
    if (!info.isDirectory()) throw new CsiStatusError(status.FAILED_PRECONDITION, `target_path ${target} exists and is not a directory; remove it or use another target`);
  }

  private checkOutsideRoot(target: string): void {
    const { root } = this.deps;
    if (target === root || target.startsWith(root + sep) || root.startsWith(target + sep)) {
      throw new ValidationError(`target_path ${target} overlaps netvol's mount root ${root}; use a target outside it`);
    }
  }

  private holderOf(target: string): VolumeRecord | undefined {
    return this.deps.driver.records().find((record) => record.mountIds.includes(target));
  }

  private record(name: string): VolumeRecord | undefined {
    return this.deps.driver.records().find((record) => record.name === name);
  }
}

/** A bind of the share's mount shows the same filesystem and root as the mount itself. */
function sameFilesystem(a: MountInfoEntry, b: MountInfoEntry): boolean {
  return a.source === b.source && a.fsType === b.fsType && a.root === b.root;
}

function isReadOnly(entry: MountInfoEntry): boolean {
  return entry.mountOptions.split(',').includes('ro');
}
