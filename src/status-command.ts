import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { StatusReport } from './frontends/legacy/admin-routes.js';
import { SocketTimeoutError, socketRequest, type SocketReply } from './system/socket-request.js';

export type StatusAnswer = { socket: string; report: StatusReport } | { socket: string; error: string };

/** What a failed connection to a daemon's socket means for the person asking. */
function connectionProblem(error: unknown): string {
  if (error instanceof SocketTimeoutError) return `${error.message} (is the daemon hung?)`;
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such socket (is the daemon running?)';
    case 'ECONNREFUSED':
      return 'connection refused (stale socket: the daemon died)';
    case 'EACCES':
      return 'permission denied (run as root or as the socket group)';
    default:
      return (error as Error).message;
  }
}

/** GET /netvol/status over one socket; errors are returned, not thrown. */
export async function fetchStatus(socket: string, timeoutMs = 3000): Promise<StatusAnswer> {
  let reply: SocketReply;
  try {
    reply = await socketRequest(socket, '/netvol/status', { timeoutMs });
  } catch (error) {
    return { socket, error: connectionProblem(error) };
  }
  try {
    const report = JSON.parse(reply.text) as StatusReport;
    if (reply.status === 200 && typeof report.driver === 'string') return { socket, report };
  } catch {
    // Not JSON: another kind of plugin.
  }
  return { socket, error: `not a netvol daemon (HTTP ${reply.status})` };
}

/** Every *.sock in the plugin directory: netvol daemons answer /netvol/status, others do not. */
export async function findSockets(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => name.endsWith('.sock')).sort().map((name) => join(dir, name));
  } catch {
    return [];
  }
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return d > 0 ? `${d}d${h}h` : h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()).join('\n');
}

/** Human-readable status of one daemon; pure, for tests. */
export function formatStatus(report: StatusReport, now: Date): string {
  const header = [
    `driver     ${report.driver} (${report.protocol}), netvol ${report.version}, pid ${report.pid}`,
    `socket     ${report.socket}`,
    `uptime     ${duration(report.uptimeSeconds)} (since ${report.startedAt})`,
    `state      ${report.stateFile}`,
    `volumes    ${report.volumes.length}, mounted ${report.volumes.filter((v) => v.mounted).length}`,
    ...(report.persistence && !report.persistence.ok
      ? [`SAVING     FAILING since ${report.persistence.failingSince ?? '?'}: ${report.persistence.lastError ?? ''} (${report.persistence.pendingVolumes} volume(s) kept in memory, retrying)`]
      : []),
  ];
  if (report.volumes.length === 0) return `${header.join('\n')}\n`;
  const rows = [
    ['VOLUME', 'SHARE', 'MOUNTED', 'IDS', 'SINCE', 'HEALTH', 'LAST ERROR'],
    ...report.volumes.map((v) => [
      v.name,
      v.share,
      v.mounted ? 'yes' : 'no',
      String(v.mounts),
      v.mountedSince ? duration(Math.max(0, Math.round((now.getTime() - Date.parse(v.mountedSince)) / 1000))) : '-',
      v.health ? `${v.health.state} (${duration(Math.max(0, Math.round((now.getTime() - Date.parse(v.health.checkedAt)) / 1000)))} ago)` : '-',
      v.lastError ?? '-',
    ]),
  ];
  return `${header.join('\n')}\n\n${table(rows)}\n`;
}

export interface StatusOutcome {
  readonly output: string;
  readonly exitCode: number;
}

/** `netvol status`: asks each daemon and prints a table (or JSON). Exit 1 when none answers. */
export async function statusCommand(options: { sockets: string[]; json: boolean; explicit: boolean; now?: Date }): Promise<StatusOutcome> {
  const answers = await Promise.all(options.sockets.map((socket) => fetchStatus(socket)));
  const reports = answers.filter((a): a is { socket: string; report: StatusReport } => 'report' in a);
  const failures = answers.filter((a): a is { socket: string; error: string } => 'error' in a);
  // When scanning, sockets of other plugins are not failures.
  const relevantFailures = options.explicit ? failures : failures.filter((f) => !f.error.startsWith('not a netvol daemon'));
  if (options.json) {
    return {
      output: `${JSON.stringify({ daemons: reports.map((r) => r.report), errors: relevantFailures }, null, 2)}\n`,
      exitCode: reports.length > 0 && (!options.explicit || relevantFailures.length === 0) ? 0 : 1,
    };
  }
  const parts = reports.map((r) => formatStatus(r.report, options.now ?? new Date()));
  for (const failure of relevantFailures) parts.push(`${failure.socket}: ${failure.error}\n`);
  if (reports.length === 0) {
    const where = options.sockets.length > 0 ? options.sockets.join(', ') : 'the plugin directory (no sockets there)';
    parts.push(
      `no netvol daemon answered at ${where}.\nCheck that it runs (systemctl status 'netvol@*', or start it: netvol nfs), that you are root, and the --socket path.\n`,
    );
  }
  return { output: parts.join('\n'), exitCode: reports.length > 0 && (!options.explicit || relevantFailures.length === 0) ? 0 : 1 };
}

/** `netvol release-stale`: POST /netvol/release-stale and print one line per volume. */
export async function releaseStaleCommand(socket: string, dryRun: boolean): Promise<StatusOutcome> {
  let reply: SocketReply;
  try {
    reply = await socketRequest(socket, '/netvol/release-stale', { method: 'POST', body: JSON.stringify({ dryRun }), timeoutMs: 120_000 });
  } catch (error) {
    return { output: `${socket}: ${connectionProblem(error)}\n`, exitCode: 1 };
  }
  let parsed: { results?: Array<{ volume: string; ids: string[]; action: string; reason: string }>; Err?: string };
  try {
    parsed = JSON.parse(reply.text) as typeof parsed;
  } catch {
    return { output: `${socket}: not a netvol daemon (HTTP ${reply.status})\n`, exitCode: 1 };
  }
  if (parsed.Err !== undefined || !parsed.results) return { output: `netvol: ${parsed.Err ?? 'no results'}\n`, exitCode: 1 };
  const lines = parsed.results.map((r) => `${r.volume}: ${r.action} ${r.ids.length} mount ID(s) (${r.reason})`);
  return { output: `${lines.length > 0 ? lines.join('\n') : 'no volume holds a mount ID that no running container uses'}\n`, exitCode: 0 };
}
