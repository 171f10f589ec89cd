import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MountError } from '../errors.js';
import { mountArgv, type Credentials, type MountPlan } from '../protocols/mount-plan.js';
import {
  CommandFailedError,
  CommandNotFoundError,
  CommandTimeoutError,
  type CommandRunner,
} from './command-runner.js';
import { findMount, type MountTable } from './mount-table.js';

export interface Mounter {
  mount(plan: MountPlan, target: string): Promise<void>;
  /**
   * Succeeds when `target` is no longer mounted afterwards, whatever umount said. A umount
   * that times out becomes a lazy detach; with `detachIfBusy` so does one refused as busy
   * (for private mounts nobody may keep using, like a staging mount).
   */
  unmount(target: string, options?: { detachIfBusy?: boolean }): Promise<void>;
}

export interface CommandMounterOptions {
  readonly timeoutMs: number;
  /** 0700 directory for short-lived CIFS credentials files. */
  readonly secretsDir: string;
  readonly mountCommand?: string;
  readonly umountCommand?: string;
  /**
   * Whether the mount table must show the plan's filesystem type (nfs/nfs4, cifs/smb3).
   * Only a stand-in mount command (tests, benchmarks) mounts something else.
   */
  readonly checkFsType?: boolean;
}

/** Types the kernel may report for a plan's -t: mount.nfs turns nfs with vers=4 into nfs4. */
const FS_TYPE_FAMILIES: Record<string, readonly string[]> = {
  nfs: ['nfs', 'nfs4'],
  nfs4: ['nfs4', 'nfs'],
  cifs: ['cifs', 'smb3'],
  smb3: ['smb3', 'cifs'],
};

export function fsTypeMatches(planned: string, mounted: string): boolean {
  return (FS_TYPE_FAMILIES[planned] ?? [planned]).includes(mounted);
}

/**
 * mount(8)/umount(8) through the command runner. CIFS passwords go to a 0600 credentials
 * file that exists only while mount.cifs runs; the kernel keeps what it needs for reconnects.
 */
export class CommandMounter implements Mounter {
  private readonly mountCommand: string;
  private readonly umountCommand: string;

  constructor(
    private readonly runner: CommandRunner,
    private readonly mountTable: MountTable,
    private readonly options: CommandMounterOptions,
    private readonly logger: Logger,
  ) {
    this.mountCommand = options.mountCommand ?? 'mount';
    this.umountCommand = options.umountCommand ?? 'umount';
  }

  async mount(plan: MountPlan, target: string): Promise<void> {
    const credentialsFile = plan.credentials ? await this.writeCredentials(plan.credentials) : undefined;
    const args = mountArgv(plan, target, credentialsFile);
    const started = Date.now();
    this.logger.info({ source: plan.source, target, fsType: plan.fsType, options: plan.options }, 'Mounting');
    try {
      await this.runner.run({ file: this.mountCommand, args }, { timeoutMs: this.options.timeoutMs });
    } catch (error) {
      const message = redact(describeMountFailure(error, plan, target, this.options.timeoutMs), plan.credentials);
      this.logger.warn({ source: plan.source, target, ms: Date.now() - started, err: message }, 'Mount failed');
      throw new MountError(message, { cause: error });
    } finally {
      if (credentialsFile) await rm(credentialsFile, { force: true });
    }
    await this.checkMounted(plan, target);
    this.logger.info({ source: plan.source, target, ms: Date.now() - started }, 'Mounted');
  }

  /**
   * mount(8) exiting 0 is not proof: with `bg` mount.nfs daemonises and exits 0 before
   * anything is mounted, and handing out the bare directory would put container data on
   * the host's disk. The mount table decides.
   */
  private async checkMounted(plan: MountPlan, target: string): Promise<void> {
    const entry = findMount(await this.mountTable.list(), target);
    if (!entry) {
      const message = `mounting ${plan.source} (${plan.fsType}) on ${target}: the mount command reported success but nothing is mounted there; netvol does not hand out a directory that is not the share (check the mount options: bg or nofail make mount return before mounting)`;
      this.logger.warn({ source: plan.source, target }, 'Mount reported success but the mount table does not show it');
      throw new MountError(message);
    }
    if (this.options.checkFsType !== false && !fsTypeMatches(plan.fsType, entry.fsType)) {
      this.logger.warn({ source: plan.source, target, fsType: entry.fsType }, 'Mounted with an unexpected filesystem type; unmounting');
      await this.unmount(target).catch(() => undefined);
      throw new MountError(`mounting ${plan.source} on ${target}: the mount table shows a ${entry.fsType} filesystem there, not ${plan.fsType}; it was unmounted again`);
    }
  }

  /**
   * Credentials files live only while mount.cifs runs; one left behind was written by a
   * daemon killed during a mount, and still holds a password.
   */
  async removeLeftoverSecrets(): Promise<number> {
    const names = await readdir(this.options.secretsDir).catch(() => [] as string[]);
    const leftovers = names.filter((name) => name.startsWith('cifs-'));
    await Promise.all(leftovers.map((name) => rm(join(this.options.secretsDir, name), { force: true })));
    return leftovers.length;
  }

  async unmount(target: string, options: { detachIfBusy?: boolean } = {}): Promise<void> {
    const started = Date.now();
    this.logger.info({ target }, 'Unmounting');
    try {
      await this.runner.run({ file: this.umountCommand, args: ['--', target] }, { timeoutMs: this.options.timeoutMs });
    } catch (error) {
      if (!(await this.isMounted(target))) {
        this.logger.info({ target, ms: Date.now() - started }, 'Unmounted (was already gone)');
        return;
      }
      if (error instanceof CommandTimeoutError || (options.detachIfBusy && error instanceof CommandFailedError)) {
        // The server is gone and umount blocks: detach lazily so the daemon and the
        // mountpoint are free; the kernel finishes once nothing uses the mount.
        this.logger.warn({ target }, error instanceof CommandTimeoutError ? 'umount timed out; detaching lazily (umount -l)' : 'umount refused; detaching lazily (umount -l)');
        await this.runner
          .run({ file: this.umountCommand, args: ['-l', '--', target] }, { timeoutMs: this.options.timeoutMs })
          .catch(() => undefined);
        if (!(await this.isMounted(target))) {
          this.logger.info({ target, ms: Date.now() - started }, 'Unmounted (lazily)');
          return;
        }
      }
      const reason = error instanceof CommandFailedError ? error.stderr.trim() || error.message : (error as Error).message;
      throw new MountError(`unmounting ${target} failed: ${reason}`, { cause: error });
    }
    this.logger.info({ target, ms: Date.now() - started }, 'Unmounted');
  }

  private async isMounted(target: string): Promise<boolean> {
    return findMount(await this.mountTable.list(), target) !== undefined;
  }

  private async writeCredentials(credentials: Credentials): Promise<string> {
    await mkdir(this.options.secretsDir, { recursive: true, mode: 0o700 });
    const file = join(this.options.secretsDir, `cifs-${randomBytes(8).toString('hex')}`);
    const lines = [`username=${credentials.username}`, `password=${credentials.password}`];
    if (credentials.domain) lines.push(`domain=${credentials.domain}`);
    await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
    return file;
  }
}

/** The mount tool's own words, plus what to check next. */
export function describeMountFailure(error: unknown, plan: MountPlan, target: string, timeoutMs: number): string {
  const what = `mounting ${plan.source} (${plan.fsType}) on ${target}`;
  if (error instanceof CommandTimeoutError) {
    const probe = plan.fsType.startsWith('nfs') ? `showmount -e ${plan.server}` : `smbclient -L //${plan.server} -N`;
    return `${what} timed out after ${timeoutMs / 1000} s: server ${plan.server} did not answer; check that it is up and reachable from this host (e.g. ${probe}, or a firewall)`;
  }
  if (error instanceof CommandNotFoundError) {
    return `${what} failed: ${error.message}; install ${plan.fsType.startsWith('nfs') ? 'nfs-common' : 'cifs-utils'}`;
  }
  if (error instanceof CommandFailedError) {
    const said = error.stderr.trim() || error.stdout.trim() || `exit status ${error.exitCode}`;
    return `${what} failed: ${said.replace(/\s+/g, ' ')}${hint(said, plan)}`;
  }
  return `${what} failed: ${(error as Error).message}`;
}

function hint(said: string, plan: MountPlan): string {
  if (/unknown filesystem type|wrong fs type|bad option/i.test(said)) {
    return ` (is the ${plan.fsType.startsWith('nfs') ? 'NFS' : 'CIFS'} client installed: ${plan.fsType.startsWith('nfs') ? 'nfs-common' : 'cifs-utils'}? does this kernel support ${plan.fsType}?)`;
  }
  if (/access denied|permission denied/i.test(said)) return ` (check that ${plan.server} exports this path to this host, and the credentials)`;
  if (/no such file or directory/i.test(said)) return ` (check the path exists on ${plan.server})`;
  if (/connection refused|timed out|no route|network is unreachable/i.test(said)) {
    return ` (check that ${plan.server} is up and reachable from this host)`;
  }
  return '';
}

function redact(text: string, credentials: Credentials | undefined): string {
  if (!credentials?.password) return text;
  return text.split(credentials.password).join('********');
}
