/** The first socket systemd passed, when it passed some to this very process (sd_listen_fds). */
export function inheritedSocketFd(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const count = Number(env['LISTEN_FDS'] ?? '0');
  return env['LISTEN_PID'] === String(pid) && Number.isInteger(count) && count >= 1 ? 3 : undefined;
}
