import type { Logger } from 'pino';
import type { CommandRunner } from './command-runner.js';

export interface ReadyNotice {
  /** $NOTIFY_SOCKET as systemd set it for a Type=notify unit; undefined outside systemd. */
  readonly notifySocket: string | undefined;
  readonly pid: number;
  readonly timeoutMs?: number;
}

/**
 * Tells systemd the daemon is ready, so a Type=notify unit (and docker.service ordered after
 * it) counts as started only once the socket exists. Node has no Unix datagram sockets, so
 * systemd-notify sends the message; the unit needs NotifyAccess=all to accept it from a child.
 * A failure is logged, never thrown: the daemon already serves, and systemd's start timeout
 * is what reports a unit that never became ready.
 */
export async function notifySystemdReady(notice: ReadyNotice, runner: CommandRunner, logger: Logger): Promise<boolean> {
  const { notifySocket, pid } = notice;
  if (!notifySocket) return false;
  // The runner gives commands only PATH and LC_ALL; env(1) adds the one variable
  // systemd-notify needs without a shell.
  const command = { file: 'env', args: [`NOTIFY_SOCKET=${notifySocket}`, 'systemd-notify', '--ready', `--pid=${pid}`] };
  try {
    await runner.run(command, { timeoutMs: notice.timeoutMs ?? 10_000 });
    logger.info({ pid, notifySocket }, 'Notified systemd: ready');
    return true;
  } catch (error) {
    logger.warn(
      { pid, notifySocket, err: (error as Error).message },
      'Could not notify systemd that netvol is ready; the daemon keeps serving, but a Type=notify unit will time out (is systemd-notify installed?)',
    );
    return false;
  }
}
