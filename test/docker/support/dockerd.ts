import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { tail } from './files.js';
import { isAlive, stopByPid } from './processes.js';
import { findDockerCli, findDockerd } from './tools.js';
import { waitFor } from './wait.js';

/** Everything one private dockerd owns, all under one temp dir. */
export interface DockerdDirs {
  dataRoot: string;
  execRoot: string;
  pidfile: string;
  socket: string;
  log: string;
  /** DOCKER_CONFIG for the CLI, so ~/.docker (contexts, auth) never applies. */
  cliConfig: string;
}

export interface Dockerd {
  readonly dirs: DockerdDirs;
  /** containerd namespace, unique so a shared system containerd keeps our containers apart. */
  readonly namespace: string;
  readonly pid: number;
}

export interface DockerResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export function dockerdDirs(root: string): DockerdDirs {
  return {
    dataRoot: join(root, 'data'),
    execRoot: join(root, 'exec'),
    pidfile: join(root, 'dockerd.pid'),
    socket: join(root, 'docker.sock'),
    log: join(root, 'dockerd.log'),
    cliConfig: join(root, 'cli-config'),
  };
}

/**
 * Flags that keep this dockerd off everything another dockerd may own: its own data, exec
 * root, pidfile and socket; no docker0 bridge and no iptables rules; its own containerd
 * namespaces in case dockerd attaches to a system containerd.
 */
function dockerdArgs(dirs: DockerdDirs, namespace: string): string[] {
  return [
    `--data-root=${dirs.dataRoot}`,
    `--exec-root=${dirs.execRoot}`,
    `--pidfile=${dirs.pidfile}`,
    `--host=unix://${dirs.socket}`,
    `--containerd-namespace=${namespace}`,
    `--containerd-plugins-namespace=${namespace}-plugins`,
    '--bridge=none',
    '--iptables=false',
    '--ip6tables=false',
    '--ip-masq=false',
    '--userland-proxy=false',
    '--log-level=info',
  ];
}

/** Starts dockerd on `dirs` (reusing what a previous start left there) and waits until it answers. */
export async function startDockerd(dirs: DockerdDirs, namespace: string): Promise<Dockerd> {
  const binary = findDockerd();
  if (!binary) throw new Error('dockerd not found (install the Debian package docker.io)');
  await mkdir(dirs.dataRoot, { recursive: true, mode: 0o700 });
  await mkdir(dirs.execRoot, { recursive: true, mode: 0o700 });
  await mkdir(dirs.cliConfig, { recursive: true, mode: 0o700 });
  const logFd = openSync(dirs.log, 'a');
  const child = spawn(binary, dockerdArgs(dirs, namespace), { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ${binary}: ${await tail(dirs.log)}`);
  const dockerd: Dockerd = { dirs, namespace, pid };
  try {
    await waitFor(
      async () => {
        if (!isAlive(pid)) throw new Error('dockerd exited');
        return (await docker(dockerd, ['version', '--format', '{{.Server.Version}}'])).exitCode === 0;
      },
      { what: `dockerd (pid ${pid}) to answer on ${dirs.socket}`, timeoutMs: 60_000, intervalMs: 250, detail: () => tail(dirs.log) },
    );
  } catch (error) {
    await stopDockerd(dockerd);
    throw error;
  }
  return dockerd;
}

/**
 * Stops this dockerd by its PID and waits for it to exit; dockerd stops its containers and its
 * supervised containerd itself. A containerd still alive afterwards (dockerd killed) is
 * stopped by the PID it wrote under our exec root.
 */
export async function stopDockerd(dockerd: Dockerd): Promise<void> {
  await stopByPid(dockerd.pid, 'SIGTERM', 30_000);
  const containerdPidfile = join(dockerd.dirs.execRoot, 'containerd', 'containerd.pid');
  if (existsSync(containerdPidfile)) {
    const pid = Number.parseInt(readFileSync(containerdPidfile, 'utf8').trim(), 10);
    if (Number.isInteger(pid) && pid > 1) await stopByPid(pid, 'SIGTERM', 10_000);
  }
}

/** The PIDs of this dockerd's containers' init processes and their containerd shims. */
function containerProcesses(dockerd: Dockerd): number[] {
  const tasks = join(dockerd.dirs.execRoot, 'containerd', 'daemon', 'io.containerd.runtime.v2.task', dockerd.namespace);
  if (!existsSync(tasks)) return [];
  const pids: number[] = [];
  for (const task of readdirSync(tasks)) {
    const initPidfile = join(tasks, task, 'init.pid');
    if (!existsSync(initPidfile)) continue;
    const init = Number.parseInt(readFileSync(initPidfile, 'utf8').trim(), 10);
    if (!Number.isInteger(init) || init <= 1) continue;
    pids.push(init);
    try {
      // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
      const ppid = Number.parseInt(readFileSync(`/proc/${init}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] ?? '', 10);
      if (Number.isInteger(ppid) && ppid > 1) pids.push(ppid);
    } catch {
      // already gone
    }
  }
  return pids;
}

/**
 * Crashes this docker stack as a power cut that spares the kernel would: SIGKILL to dockerd,
 * its containerd, every container shim and container init, by their PIDs. Nothing is told;
 * mounts stay where they were. Start it again with `startDockerd` on the same dirs.
 */
export async function crashDockerd(dockerd: Dockerd): Promise<void> {
  const containers = containerProcesses(dockerd);
  const containerdPidfile = join(dockerd.dirs.execRoot, 'containerd', 'containerd.pid');
  const containerd = existsSync(containerdPidfile) ? Number.parseInt(readFileSync(containerdPidfile, 'utf8').trim(), 10) : NaN;
  for (const pid of [dockerd.pid, ...(Number.isInteger(containerd) && containerd > 1 ? [containerd] : []), ...containers]) {
    await stopByPid(pid, 'SIGKILL', 5_000);
  }
}

/** Environment for the docker CLI: this dockerd only, no user config, no inherited TLS/context. */
function cliEnv(dockerd: Dockerd): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('DOCKER_')) env[key] = value;
  }
  env['DOCKER_HOST'] = `unix://${dockerd.dirs.socket}`;
  env['DOCKER_CONFIG'] = dockerd.dirs.cliConfig;
  return env;
}

/** Runs the docker CLI against this dockerd; never throws for a non-zero exit. */
export async function docker(dockerd: Dockerd, args: string[], timeoutMs = 120_000): Promise<DockerResult> {
  const cli = findDockerCli();
  if (!cli) throw new Error('docker CLI not found (install the Debian package docker.io)');
  const result = await execa(cli, args, {
    env: cliEnv(dockerd),
    extendEnv: false,
    reject: false,
    timeout: timeoutMs,
    stdin: 'ignore',
  });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Like `docker`, but a non-zero exit is an error carrying the CLI's stderr. */
export async function dockerOk(dockerd: Dockerd, args: string[], timeoutMs?: number): Promise<string> {
  const result = await docker(dockerd, args, timeoutMs);
  if (result.exitCode !== 0) {
    throw new Error(`docker ${args.join(' ')} exited ${result.exitCode}: ${result.stderr || result.stdout}`);
  }
  return result.stdout;
}
