import { describe, expect, it } from 'vitest';
import { CommandFailedError, type Command, type CommandResult, type CommandRunner, type RunOptions } from '../../src/system/command-runner.js';
import { notifySystemdReady } from '../../src/system/systemd-notify.js';
import { memoryLogger } from '../support/fakes.js';

/** Records each command and its timeout; fails every call when given an error. */
class RecordingRunner implements CommandRunner {
  readonly calls: Array<{ command: Command; options: RunOptions }> = [];
  constructor(private readonly failure?: (command: Command) => Error) {}

  async run(command: Command, options: RunOptions): Promise<CommandResult> {
    this.calls.push({ command, options });
    if (this.failure) throw this.failure(command);
    return { stdout: '', stderr: '' };
  }
}

const records = (lines: string[]) => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

describe('notifySystemdReady', () => {
  it('runs systemd-notify --ready for our pid, with NOTIFY_SOCKET and without a shell, and says so', async () => {
    const runner = new RecordingRunner();
    const { logger, lines } = memoryLogger();
    const notified = await notifySystemdReady({ notifySocket: '/run/systemd/notify', pid: 4242 }, runner, logger);
    expect(notified).toBe(true);
    expect(runner.calls).toEqual([
      {
        command: { file: 'env', args: ['NOTIFY_SOCKET=/run/systemd/notify', 'systemd-notify', '--ready', '--pid=4242'] },
        options: { timeoutMs: 10_000 },
      },
    ]);
    expect(records(lines)).toEqual([expect.objectContaining({ level: 30, msg: 'Notified systemd: ready', pid: 4242 })]);
  });

  it('does nothing outside systemd', async () => {
    const runner = new RecordingRunner();
    const { logger, lines } = memoryLogger();
    expect(await notifySystemdReady({ notifySocket: undefined, pid: 1 }, runner, logger)).toBe(false);
    expect(await notifySystemdReady({ notifySocket: '', pid: 1 }, runner, logger)).toBe(false);
    expect(runner.calls).toEqual([]);
    expect(lines).toEqual([]);
  });

  it('logs why it could not notify, and does not throw', async () => {
    const missing = (command: Command) => new CommandFailedError(command, 127, "env: 'systemd-notify': No such file or directory\n", '');
    const runner = new RecordingRunner(missing);
    const { logger, lines } = memoryLogger();
    const notified = await notifySystemdReady({ notifySocket: '@/org/freedesktop/systemd1/notify', pid: 7, timeoutMs: 500 }, runner, logger);
    expect(notified).toBe(false);
    expect(runner.calls[0]?.options).toEqual({ timeoutMs: 500 });
    expect(records(lines)).toEqual([
      expect.objectContaining({
        level: 40,
        msg: expect.stringMatching(/^Could not notify systemd that netvol is ready/),
        err: "env exited with status 127: env: 'systemd-notify': No such file or directory",
      }),
    ]);
  });
});
