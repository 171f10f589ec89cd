import { request } from 'node:http';
import type { Logger } from 'pino';

/**
 * dockerd activates a socket-discovered ("v1") plugin only when something first uses it, and
 * Swarm schedules tasks only onto nodes where the service's volume driver is active: a task
 * would stay Pending with "missing plugin". Listing volumes of our driver through the Docker
 * API makes dockerd load and activate us, so no one has to run `docker volume ls` per node.
 */
export async function askDockerToActivate(options: {
  dockerSocket: string;
  driver: string;
  apiVersion?: string | undefined;
  timeoutMs?: number;
}): Promise<{ ok: boolean; detail: string }> {
  const filters = encodeURIComponent(JSON.stringify({ driver: [options.driver] }));
  const prefix = options.apiVersion ? `/v${options.apiVersion.replace(/^v/, '')}` : '';
  return new Promise((resolve) => {
    const req = request(
      { socketPath: options.dockerSocket, path: `${prefix}/volumes?filters=${filters}`, method: 'GET', timeout: options.timeoutMs ?? 10_000 },
      (res) => {
        let body = '';
        res.on('data', (chunk) => (body += String(chunk)));
        res.on('end', () => resolve({ ok: res.statusCode === 200, detail: res.statusCode === 200 ? 'ok' : `HTTP ${res.statusCode}: ${body.trim().slice(0, 200)}` }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('dockerd did not answer in time')));
    req.on('error', (error) => resolve({ ok: false, detail: error.message }));
    req.end();
  });
}

/** Tries now, then every `intervalMs` until dockerd answers once (it may start after us). */
export function activateInDocker(
  options: { dockerSocket: string; driver: string; apiVersion?: string | undefined; intervalMs?: number; attempts?: number },
  logger: Logger,
): { stop: () => void; done: Promise<boolean> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const interval = options.intervalMs ?? 10_000;
  const attempts = options.attempts ?? 60;
  const done = new Promise<boolean>((resolve) => {
    const attempt = async (n: number) => {
      if (stopped) return resolve(false);
      const result = await askDockerToActivate(options);
      if (result.ok) {
        logger.info({ dockerSocket: options.dockerSocket }, `Activated in dockerd: Swarm can now place tasks using -d ${options.driver} on this node`);
        return resolve(true);
      }
      if (n === 1) logger.info({ dockerSocket: options.dockerSocket, reason: result.detail }, 'dockerd not reachable yet; will ask it to activate this plugin when it is');
      if (n >= attempts || stopped) {
        logger.warn({ reason: result.detail }, 'Gave up asking dockerd to activate this plugin; it activates on first use');
        return resolve(false);
      }
      timer = setTimeout(() => void attempt(n + 1), interval);
      timer.unref();
    };
    void attempt(1);
  });
  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
    done,
  };
}
