import { CommandFailedError, CommandNotFoundError, CommandTimeoutError, type CommandRunner } from './command-runner.js';

/** healthy: answers; stale: the server no longer knows the mount (needs a remount); unreachable: no answer in time. */
export type MountHealthState = 'healthy' | 'stale' | 'unreachable';

export interface MountHealth {
  readonly state: MountHealthState;
  /** What the check saw, in the kernel's words (e.g. "Stale file handle"). */
  readonly detail?: string;
}

export interface MountProbe {
  probe(mountpoint: string): Promise<MountHealth>;
}

/**
 * The kernel's messages (LC_ALL=C) that mean the mount itself is broken: the server restarted
 * without its state, the export was re-created (new file system id), or the connection is gone.
 * A permission error is an answer from a live server (root_squash), hence healthy.
 */
const STALE = [
  /stale file handle/i, // ESTALE
  /transport endpoint is not connected/i, // ENOTCONN
  /input\/output error/i, // EIO
  /host is down/i, // EHOSTDOWN
];

/** Pure: what a failed probe's stderr means. */
export function classifyProbeFailure(stderr: string): MountHealth {
  const detail = stderr.trim().split('\n').find((line) => line.trim() !== '')?.replace(/^find: /, '') ?? '';
  if (STALE.some((pattern) => pattern.test(stderr))) return { state: 'stale', detail };
  if (/permission denied/i.test(stderr)) return { state: 'healthy', detail };
  return { state: 'unreachable', detail: detail || 'the check failed without a message' };
}

/**
 * A stat of the mountpoint and a one-entry read of its directory, in a child process with a
 * hard time bound: on a dead `hard` NFS server both block in the kernel, and in the daemon
 * they would hold a libuv pool thread (and the volume's lock) for ever. `find` does exactly
 * those two calls and is on every system netvol runs on.
 */
export class FindMountProbe implements MountProbe {
  constructor(
    private readonly runner: CommandRunner,
    private readonly timeoutMs: number,
    private readonly findCommand = 'find',
  ) {}

  async probe(mountpoint: string): Promise<MountHealth> {
    try {
      // The mountpoint is an absolute path netvol made: it can never read as a find option.
      await this.runner.run({ file: this.findCommand, args: [mountpoint, '-mindepth', '1', '-maxdepth', '1', '-print', '-quit'] }, { timeoutMs: this.timeoutMs });
      return { state: 'healthy' };
    } catch (error) {
      if (error instanceof CommandTimeoutError) return { state: 'unreachable', detail: `no answer within ${this.timeoutMs / 1000} s` };
      if (error instanceof CommandFailedError) return classifyProbeFailure(error.stderr);
      if (error instanceof CommandNotFoundError) return { state: 'healthy', detail: `${this.findCommand} is not installed: not checked` };
      return { state: 'unreachable', detail: (error as Error).message };
    }
  }
}
