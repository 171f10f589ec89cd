import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../..');
export const CLI = join(REPO, 'dist/cli.js');
export const FAKE_MOUNT = join(REPO, 'test/support/fake-mount.sh');

export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly socket: string;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** Starts `node dist/cli.js ARGS` and collects its output. */
export function spawnDaemon(args: string[], env: NodeJS.ProcessEnv = {}): DaemonProcess {
  const socketIndex = args.indexOf('--socket');
  const socket = socketIndex >= 0 ? (args[socketIndex + 1] ?? '') : '';
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout?.on('data', (chunk) => (text += String(chunk)));
  child.stderr?.on('data', (chunk) => (text += String(chunk)));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { child, socket, output: () => text, exited };
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function waitForReady(daemon: DaemonProcess): Promise<void> {
  await waitFor(() => daemon.output().includes('"msg":"Ready') && existsSync(daemon.socket), 15_000, `daemon ready\n${daemon.output()}`);
}

export async function stopDaemon(daemon: DaemonProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill(signal);
  await daemon.exited;
}

/** One plugin call over the Unix socket, shaped like dockerd's. */
export function pluginCall(socket: string, path: string, body: unknown = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath: socket, path, method: 'POST', headers: { Accept: 'application/vnd.docker.plugins.v1.2+json' } }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += String(chunk)));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(`${JSON.stringify(body)}\n`);
  });
}
