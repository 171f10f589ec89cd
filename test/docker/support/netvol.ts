import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { tail } from './files.js';
import { isAlive, stopByPid } from './processes.js';
import { netvolCli, repoRoot } from './tools.js';
import { waitFor } from './wait.js';

/** Where dockerd looks for v1 plugins; fixed, hence the unique driver name. */
export const PLUGIN_DIR = '/run/docker/plugins';

export interface NetvolConfig {
  protocol: 'nfs' | 'cifs' | 'efs';
  /** Driver name dockerd knows it by: the socket's file name. */
  driver: string;
  socket: string;
  stateDir: string;
  basedir: string;
  /** Directory for the daemon's stdout logs, one file per start. */
  logDir: string;
  /**
   * The private dockerd's API socket, passed as --docker-socket (unless extraArgs names one)
   * so the daemon's calls back into Docker never reach another dockerd.
   */
  dockerSocket?: string;
  extraArgs: string[];
}

export interface Netvol {
  readonly config: NetvolConfig;
  readonly pid: number;
  /** This start's log file (JSON lines on stdout, stderr mixed in). */
  readonly logPath: string;
}

/** One line of the daemon's log; `call` is set on the debug line of every Docker call. */
export interface LogEntry {
  level?: number;
  call?: string;
  msg?: string;
  [key: string]: unknown;
}

export function netvolConfig(root: string, driver: string, protocol: NetvolConfig['protocol'] = 'nfs'): NetvolConfig {
  return {
    protocol,
    driver,
    socket: join(PLUGIN_DIR, `${driver}.sock`),
    stateDir: join(root, 'netvol-state'),
    basedir: join(root, 'netvol-mounts'),
    logDir: root,
    extraArgs: [],
  };
}

function nextLogPath(logDir: string): string {
  for (let n = 1; ; n++) {
    const path = join(logDir, `netvol-${n}.log`);
    if (!existsSync(path)) return path;
  }
}

/** Starts `node dist/cli.js <protocol>` with debug logs and waits until its socket answers. */
export async function startNetvol(config: NetvolConfig): Promise<Netvol> {
  await mkdir(PLUGIN_DIR, { recursive: true });
  const logPath = nextLogPath(config.logDir);
  const args = [
    netvolCli,
    config.protocol,
    '--socket', config.socket,
    '--state-dir', config.stateDir,
    '--basedir', config.basedir,
    '--mount-timeout', '20',
    // Tests look at the mount table right after dockerd's last Unmount.
    ...(config.extraArgs.includes('--unmount-delay') ? [] : ['--unmount-delay', '0']),
    '--verbose',
    '--log-format', 'json',
    ...(config.dockerSocket && !config.extraArgs.includes('--docker-socket') ? ['--docker-socket', config.dockerSocket] : []),
    ...config.extraArgs,
  ];
  const logFd = openSync(logPath, 'a');
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start netvol: ${await tail(logPath)}`);
  const netvol: Netvol = { config, pid, logPath };
  try {
    await waitFor(
      async () => {
        if (!isAlive(pid)) throw new Error('netvol exited');
        if (!existsSync(config.socket)) return false;
        const reply = (await pluginCall(config.socket, 'Plugin.Activate')) as { Implements?: unknown };
        return Array.isArray(reply.Implements) && reply.Implements.includes('VolumeDriver');
      },
      { what: `netvol (pid ${pid}) to answer Plugin.Activate on ${config.socket}`, timeoutMs: 20_000, detail: () => tail(logPath) },
    );
  } catch (error) {
    await stopNetvol(netvol);
    throw error;
  }
  return netvol;
}

/** Stops the daemon by PID (SIGKILL simulates a crash) and removes a socket file it left. */
export async function stopNetvol(netvol: Netvol, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  await stopByPid(netvol.pid, signal, 15_000);
  await rm(netvol.config.socket, { force: true });
}

/** Parsed log lines; lines that are not JSON (a stack trace) are kept as `{ msg: line }`. */
export function readLog(netvol: Netvol): LogEntry[] {
  const text = existsSync(netvol.logPath) ? readFileSync(netvol.logPath, 'utf8') : '';
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        const parsed: unknown = JSON.parse(line);
        return typeof parsed === 'object' && parsed !== null ? (parsed as LogEntry) : { msg: line };
      } catch {
        return { msg: line };
      }
    });
}

/** The request a call log line carries: `body` (Docker's JSON), else the line itself. */
export function callRequest(entry: LogEntry): Record<string, unknown> {
  const body = entry['body'];
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : entry;
}

/** The volume name a call log line is about (`body.Name`, or a top-level `name`/`Name`). */
export function callName(entry: LogEntry): unknown {
  const request = callRequest(entry);
  return request['Name'] ?? request['name'] ?? entry['name'];
}

/** The Create options a call log line carries (`body.Opts`, or a top-level `opts`/`Opts`). */
export function callOpts(entry: LogEntry): Record<string, unknown> | undefined {
  const request = callRequest(entry);
  const opts = request['Opts'] ?? request['opts'] ?? entry['opts'];
  return typeof opts === 'object' && opts !== null ? (opts as Record<string, unknown>) : undefined;
}

/** A line reporting a call's failure (`status`/`err`) rather than the call itself. */
function isOutcome(entry: LogEntry): boolean {
  return 'status' in entry || 'err' in entry;
}

/** Docker calls logged so far, optionally only one method (e.g. 'VolumeDriver.Create'). */
export function calls(netvol: Netvol, method?: string): LogEntry[] {
  return readLog(netvol).filter(
    (entry) =>
      typeof entry.call === 'string' &&
      !isOutcome(entry) &&
      (method === undefined || entry.call === `/${method}` || entry.call === method),
  );
}

/** A compact call trace for failure messages: `Get(v1) Create(v1) ...`. */
export function callTrace(netvol: Netvol): string {
  return calls(netvol)
    .map((entry) => `${String(entry.call).replace(/^\/(VolumeDriver\.)?/, '')}(${String(callName(entry) ?? '')})`)
    .join(' ');
}

/** Waits for a logged call matching `predicate` among the calls after the first `since`. */
export function waitForCall(
  netvol: Netvol,
  what: string,
  predicate: (entry: LogEntry) => boolean,
  { timeoutMs = 60_000, since = 0 }: { timeoutMs?: number; since?: number } = {},
): Promise<LogEntry> {
  return waitFor(() => calls(netvol).slice(since).find(predicate), {
    what: `netvol to log ${what}`,
    timeoutMs,
    intervalMs: 250,
    detail: async () => `calls so far: ${callTrace(netvol)}\nlog tail:\n${await tail(netvol.logPath, 20)}`,
  });
}

/** One plugin-protocol call straight to the daemon's socket, as dockerd would make it. */
export function pluginCall(socket: string, method: string, body?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: socket, path: `/${method}`, method: 'POST', headers: { Accept: 'application/vnd.docker.plugins.v1.2+json' }, timeout: 10_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new Error(`${method}: HTTP ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method}: no answer within 10 s`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : `${JSON.stringify(body)}\n`);
  });
}

export interface StateFileJson {
  volumes?: Record<string, { mountIds?: unknown; options?: unknown }>;
}

/**
 * The daemon's state file (`state.json` in --state-dir or in one directory below it, where
 * the daemon keys it by driver name), undefined if not written yet.
 */
export function readStateFile(config: NetvolConfig): StateFileJson | undefined {
  const candidates = [config.stateDir];
  if (existsSync(config.stateDir)) {
    for (const entry of readdirSync(config.stateDir, { withFileTypes: true })) {
      if (entry.isDirectory()) candidates.push(join(config.stateDir, entry.name));
    }
  }
  const dir = candidates.find((candidate) => existsSync(join(candidate, 'state.json')) || existsSync(join(candidate, 'state.journal')));
  return dir === undefined ? undefined : readSnapshotAndJournal(dir);
}

/** state.json with the journal's later lines (whole records, by sequence number) applied. */
function readSnapshotAndJournal(dir: string): StateFileJson {
  const snapshotPath = join(dir, 'state.json');
  const snapshot = existsSync(snapshotPath)
    ? (JSON.parse(readFileSync(snapshotPath, 'utf8')) as StateFileJson & { seq?: number })
    : { volumes: {} };
  const volumes = { ...snapshot.volumes };
  const journalPath = join(dir, 'state.journal');
  const lines = existsSync(journalPath) ? readFileSync(journalPath, 'utf8').split('\n').filter((l) => l.trim() !== '') : [];
  for (const text of lines) {
    let line: { seq?: number; v?: string; r?: unknown; d?: boolean };
    try {
      line = JSON.parse(text) as typeof line;
    } catch {
      continue; // a torn last line
    }
    if ((line.seq ?? 0) <= (snapshot.seq ?? 0) || line.v === undefined) continue;
    if (line.d) delete volumes[line.v];
    else if (line.r) volumes[line.v] = line.r as NonNullable<StateFileJson['volumes']>[string];
  }
  return { ...snapshot, volumes };
}
