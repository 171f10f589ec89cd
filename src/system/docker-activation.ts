import type { Logger } from 'pino';
import { dockerGet } from './docker-api.js';

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
}): Promise<{ ok: boolean; detail: string }> {
  const filters = encodeURIComponent(JSON.stringify({ driver: [options.driver] }));
  try {
    await dockerGet({ socket: options.dockerSocket, apiVersion: options.apiVersion }, `/volumes?filters=${filters}`);
    return { ok: true, detail: 'ok' };
  } catch (error) {
    return { ok: false, detail: (error as Error).message };
  }
}

/** Tries now, then every `intervalMs` until dockerd answers once (it may start after us). */
export function activateInDocker(
  options: { dockerSocket: string; driver: string; apiVersion?: string | undefined; intervalMs?: number; attempts?: number },
  logger: Logger,
): { stop: () => void; done: Promise<boolean> } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const interval = options.intervalMs ?? 5_000;
  const attempts = options.attempts ?? 120;
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
