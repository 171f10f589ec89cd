
/** One process to start: never a shell string, always a file and its argv. */
export interface Command {
  readonly file: string;
  readonly args: readonly string[];
}

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Killed with SIGKILL past this; a hung NFS server must not hold a request forever. */
  readonly timeoutMs: number;
}

export interface CommandRunner {
  run(command: Command, options: RunOptions): Promise<CommandResult>;
  /** Loads what the first run would, once the daemon is ready, so the first mount does not pay. */
  warmUp?(): void;
}

/** The command ran and exited non-zero: `stderr` is the tool's own explanation. */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
  constructor(
    readonly command: Command,
    readonly exitCode: number | undefined,
    readonly stderr: string,
    readonly stdout: string,
  ) {
    super(`${command.file} exited with status ${exitCode ?? 'unknown'}: ${firstLines(stderr || stdout)}`);
  }
}

export class CommandTimeoutError extends Error {
  override name = 'CommandTimeoutError';
  constructor(
    readonly command: Command,
    readonly timeoutMs: number,
    /** It outlived SIGKILL (stuck in the kernel, or a child that left its process group). */
    readonly abandoned = false,
  ) {
    super(
      `${command.file} did not finish within ${timeoutMs / 1000} s and was killed` +
        (abandoned ? ' (it did not exit after SIGKILL; netvol stopped waiting for it)' : ''),
    );
  }
}

export class CommandNotFoundError extends Error {
  override name = 'CommandNotFoundError';
  constructor(readonly command: Command) {
    super(`${command.file} is not installed or not on PATH`);
  }
}

function firstLines(text: string): string {
  return text.trim().split('\n').slice(0, 5).join(' ').trim() || '(no output)';
}

/**
 * Runs commands with execa. execa's own error message contains the whole command line and
 * output, so it is never forwarded: callers get one of the three errors above, built from
 * the tool's stderr only.
 */
export class ExecaCommandRunner implements CommandRunner {
  /** How long to wait for a killed command to exit before giving up on it. */
  constructor(private readonly killGraceMs = 5000) {}

  warmUp(): void {
    // execa takes ~150 ms to load here (seconds in an emulated guest): the first docker run
    // after a start would wait for it inside its Mount.
    setImmediate(() => void import('execa').catch(() => undefined));
  }

  async run(command: Command, options: RunOptions): Promise<CommandResult> {
    // mount(8) forks mount.nfs/mount.cifs, which would survive a kill of mount alone and keep
    // the output pipes open: each command gets its own process group, killed as a whole.
    // Loaded after the socket is up (warmUp) or here: start-up, which dockerd waits for, does not pay for it.
    const { execa } = await import('execa');
    const subprocess = execa(command.file, [...command.args], {
      detached: true,
      reject: false,
      stdin: 'ignore',
      shell: false,
      // LC_ALL=C: messages are matched ("not mounted") and shown to users in one language.
      env: { LC_ALL: 'C', PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      extendEnv: false,
    });
    let timedOut = false;
    let graceTimer: NodeJS.Timeout | undefined;
    // A process in an uninterruptible NFS wait, or a helper that escaped the process group
    // and holds the output pipes, would keep `await subprocess` pending for ever and with it
    // the volume's lock and dockerd's request: past the grace, stop waiting.
    const abandoned = new Promise<'abandoned'>((resolve) => {
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(subprocess.pid);
        graceTimer = setTimeout(() => resolve('abandoned'), this.killGraceMs);
      }, options.timeoutMs);
      void subprocess.finally(() => {
        clearTimeout(timer);
        clearTimeout(graceTimer);
      });
    });
    const result = await Promise.race([subprocess, abandoned]);
    if (result === 'abandoned') throw new CommandTimeoutError(command, options.timeoutMs, true);
    if (timedOut) throw new CommandTimeoutError(command, options.timeoutMs);
    if (result.failed) {
      const code = (result as { code?: string }).code;
      if (code === 'ENOENT' && result.exitCode === undefined) throw new CommandNotFoundError(command);
      throw new CommandFailedError(command, result.exitCode, String(result.stderr ?? ''), String(result.stdout ?? ''));
    }
    return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
  }
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
