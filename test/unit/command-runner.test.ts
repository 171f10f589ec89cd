import { describe, expect, it } from 'vitest';
import { CommandFailedError, CommandNotFoundError, CommandTimeoutError, ExecaCommandRunner } from '../../src/system/command-runner.js';

// The real runner against real processes: what a hung mount helper does to it.
describe('ExecaCommandRunner', () => {
  const runner = new ExecaCommandRunner(300);

  it('passes arguments as argv, never through a shell', async () => {
    const result = await runner.run({ file: 'echo', args: ['a;b', '$(id)', '`x`'] }, { timeoutMs: 5000 });
    expect(result.stdout).toBe('a;b $(id) `x`');
  });

  it('reports a failure with the tool’s own stderr', async () => {
    const error = await runner.run({ file: 'sh', args: ['-c', 'echo "mount.nfs: access denied" >&2; exit 32'] }, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandFailedError);
    expect((error as CommandFailedError).exitCode).toBe(32);
    expect((error as Error).message).toBe('sh exited with status 32: mount.nfs: access denied');
  });

  it('says when the tool is not installed', async () => {
    await expect(runner.run({ file: 'no-such-mount-helper', args: [] }, { timeoutMs: 5000 })).rejects.toBeInstanceOf(CommandNotFoundError);
  });

  it('kills the whole process group at the timeout', async () => {
    const started = Date.now();
    const error = await runner.run({ file: 'sh', args: ['-c', 'sleep 30 & sleep 30'] }, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandTimeoutError);
    expect((error as CommandTimeoutError).abandoned).toBe(false);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('stops waiting for a command that outlives SIGKILL (a child that left the group holds the pipes)', async () => {
    const started = Date.now();
    const error = await runner
      .run({ file: 'sh', args: ['-c', 'setsid sleep 20 & sleep 30'] }, { timeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandTimeoutError);
    expect((error as CommandTimeoutError).abandoned).toBe(true);
    expect((error as Error).message).toContain('did not exit after SIGKILL');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
