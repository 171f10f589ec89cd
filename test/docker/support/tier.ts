import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeBindMountCommand } from './bind-mount-command.js';
import { importBusyboxImage } from './busybox-image.js';
import { crashDockerd, docker, dockerOk, dockerdDirs, startDockerd, stopDockerd, type Dockerd, type DockerResult } from './dockerd.js';
import { makeTempDir, mountsUnder, removeTempDir, unmountAll } from './files.js';
import { netvolConfig, startNetvol, stopNetvol, type Netvol, type NetvolConfig } from './netvol.js';

/**
 * One test file's world: a private dockerd, a netvol daemon under a unique driver name that
 * dockerd discovers through /run/docker/plugins, and a busybox image. Everything lives in one
 * temp dir; processes are stopped by PID.
 */
export class Tier {
  /** Unique per run: dockerd's plugin discovery path is machine-wide. */
  readonly driver: string;
  readonly netvolConfig: NetvolConfig;
  image = '';
  private engine: Dockerd | undefined;
  private daemon: Netvol | undefined;

  private constructor(
    readonly root: string,
    readonly id: string,
  ) {
    this.driver = `netvoltest${id}`;
    this.netvolConfig = { ...netvolConfig(root, this.driver), dockerSocket: dockerdDirs(root).socket };
  }

  /** Directory the bind-mount stand-in serves shares from (`host:/srv/x` is `<exports>/srv/x`). */
  get exportsRoot(): string {
    return join(this.root, 'exports');
  }

  /**
   * `bindMounts`: the daemon mounts through a bind-mount stand-in for mount(8) instead of
   * failing, so containers really get the (local) share.
   */
  static async start(label: string, { bindMounts = false, activate = true }: { bindMounts?: boolean; activate?: boolean } = {}): Promise<Tier> {
    const tier = new Tier(await makeTempDir(`netvol-${label}`), randomBytes(3).toString('hex'));
    try {
      // netvol starts before dockerd and keeps asking it to activate the driver until it can.
      if (!activate) tier.netvolConfig.extraArgs.push('--no-activate');
      if (bindMounts) {
        await mkdir(tier.exportsRoot, { recursive: true });
        const command = await writeBindMountCommand(join(tier.root, 'bin'), tier.exportsRoot);
        tier.netvolConfig.extraArgs.push('--mount-command', command);
      }
      await tier.startNetvol();
      await tier.startDockerd();
      tier.image = await importBusyboxImage(tier.dockerd, tier.root);
    } catch (error) {
      await tier.stop();
      throw error;
    }
    return tier;
  }

  get dockerd(): Dockerd {
    if (!this.engine) throw new Error('dockerd is not running');
    return this.engine;
  }

  get netvol(): Netvol {
    if (!this.daemon) throw new Error('netvol is not running');
    return this.daemon;
  }

  async startDockerd(): Promise<void> {
    this.engine = await startDockerd(dockerdDirs(this.root), `netvoltest-${this.id}`);
  }

  /** SIGKILL to dockerd, containerd, shims and containers: Docker learns nothing. */
  async crashDockerd(): Promise<void> {
    if (this.engine) await crashDockerd(this.engine);
    this.engine = undefined;
  }

  async stopDockerd(): Promise<void> {
    if (this.engine) await stopDockerd(this.engine);
    this.engine = undefined;
  }

  async startNetvol(): Promise<void> {
    this.daemon = await startNetvol(this.netvolConfig);
  }

  /** SIGTERM for an orderly stop, SIGKILL for a crash. */
  async stopNetvol(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.daemon) await stopNetvol(this.daemon, signal);
    this.daemon = undefined;
  }

  docker(args: string[], timeoutMs?: number): Promise<DockerResult> {
    return docker(this.dockerd, args, timeoutMs);
  }

  dockerOk(args: string[], timeoutMs?: number): Promise<string> {
    return dockerOk(this.dockerd, args, timeoutMs);
  }

  /**
   * Stops dockerd first (it may still Unmount through netvol), then netvol; detaches bind
   * mounts a failed test or a crashed dockerd left in the temp dir (all ours); removes it.
   */
  async stop(): Promise<void> {
    const errors: unknown[] = [];
    const steps = [
      () => this.stopDockerd(),
      () => this.stopNetvol(),
      () => unmountAll(mountsUnder(this.root)),
      () => removeTempDir(this.root),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `docker tier teardown failed in ${this.root}`);
  }
}
