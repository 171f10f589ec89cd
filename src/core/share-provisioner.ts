import { randomBytes } from 'node:crypto';
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { MountError, ValidationError } from '../errors.js';
import type { MountPlan } from '../protocols/mount-plan.js';
import { CommandFailedError, CommandTimeoutError, type CommandRunner } from '../system/command-runner.js';
import type { Mounter } from '../system/mounter.js';

const HELPER = fileURLToPath(new URL('../system/share-directory-helper.js', import.meta.url));

/** The same share, one directory down: mounting it directly keeps path lookups on the server. */
export function subdirectoryPlan(plan: MountPlan, subdirectory: string): MountPlan {
  if (subdirectory === '' || subdirectory.includes('/') || subdirectory === '.' || subdirectory === '..') {
    throw new ValidationError(`'${subdirectory}' is not a single directory name`);
  }
  const source = plan.source.endsWith('/') ? `${plan.source}${subdirectory}` : `${plan.source}/${subdirectory}`;
  return { ...plan, source };
}

export interface DirectoryOwner {
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
  /** e.g. 0o750; 0o777 when not given (the share's own permissions decide). */
  readonly mode?: number | undefined;
}

export interface ShareProvisionerOptions {
  readonly runner: CommandRunner;
  readonly mounter: Mounter;
  /** Private mountpoints for a share's root while a directory is made, removed or renamed. */
  readonly stagingDir: string;
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** The node binary that runs the helper; the daemon's own by default. */
  readonly nodePath?: string;
}

/**
 * Makes, removes and renames a volume's directory on its share. The share's root is mounted
 * on a private staging directory (never handed to dockerd) for the length of one helper run;
 * the helper is a child process under the mount timeout, so a dead server costs that call
 * its timeout and nothing else, and it never follows a link placed on the share.
 */
export class ShareProvisioner {
  constructor(private readonly options: ShareProvisionerOptions) {}

  async makeDirectory(plan: MountPlan, name: string, owner: DirectoryOwner = {}): Promise<{ made: boolean }> {
    const mode = owner.mode !== undefined ? owner.mode.toString(8) : '-';
    const reply = await this.onShareRoot(plan, (root) =>
      this.helper(['make', root, name, mode, owner.uid?.toString() ?? '-', owner.gid?.toString() ?? '-'], plan, `creating ${name}`),
    );
    return { made: Boolean((reply as { made?: boolean }).made) };
  }

  async removeDirectory(plan: MountPlan, name: string): Promise<{ removed: boolean }> {
    const reply = await this.onShareRoot(plan, (root) => this.helper(['remove', root, name], plan, `deleting ${name}`));
    return { removed: Boolean((reply as { removed?: boolean }).removed) };
  }

  async renameDirectory(plan: MountPlan, name: string, newName: string): Promise<{ renamed: boolean }> {
    const reply = await this.onShareRoot(plan, (root) => this.helper(['rename', root, name, newName], plan, `renaming ${name} to ${newName}`));
    return { renamed: Boolean((reply as { renamed?: boolean }).renamed) };
  }

  private async onShareRoot<T>(plan: MountPlan, task: (root: string) => Promise<T>): Promise<T> {
    const root = join(this.options.stagingDir, randomBytes(6).toString('hex'));
    await mkdir(root, { recursive: true, mode: 0o700 });
    try {
      await this.options.mounter.mount(plan, root);
    } catch (error) {
      await rmdir(root).catch(() => undefined);
      throw error;
    }
    try {
      return await task(root);
    } finally {
      // A failed unmount leaves a staging mount that the next start removes (it is ours by place).
      await this.options.mounter.unmount(root, { detachIfBusy: true }).then(
        () => rmdir(root).catch(() => undefined),
        (error: unknown) => this.options.logger.warn({ mountpoint: root, err: (error as Error).message }, 'Could not unmount a staging mount; the next start removes it'),
      );
    }
  }

  private async helper(args: string[], plan: MountPlan, what: string): Promise<object> {
    const file = this.options.nodePath ?? process.execPath;
    try {
      const { stdout } = await this.options.runner.run({ file, args: [HELPER, ...args] }, { timeoutMs: this.options.timeoutMs });
      return (JSON.parse(stdout.trim().split('\n').pop() || '{}') as object) ?? {};
    } catch (error) {
      const place = `${plan.source}`;
      if (error instanceof CommandTimeoutError) {
        throw new MountError(`${what} on ${place} timed out after ${this.options.timeoutMs / 1000} s: server ${plan.server} stopped answering`, { cause: error });
      }
      if (error instanceof CommandFailedError) {
        const said = error.stderr.trim() || error.stdout.trim() || `exit status ${error.exitCode}`;
        throw new MountError(`${what} on ${place} failed: ${said}`, { cause: error });
      }
      throw new MountError(`${what} on ${place} failed: ${(error as Error).message}`, { cause: error });
    }
  }
}
