import { request } from 'node:http';

export interface DockerApiOptions {
  readonly socket: string;
  readonly apiVersion?: string | undefined;
  readonly timeoutMs?: number;
}

export class DockerApiError extends Error {
  override name = 'DockerApiError';
}

/** GET a Docker Engine API path over its Unix socket; JSON in, JSON out. */
export function dockerGet(options: DockerApiOptions, path: string): Promise<unknown> {
  const prefix = options.apiVersion ? `/v${options.apiVersion.replace(/^v/, '')}` : '';
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: options.socket, path: `${prefix}${path}`, method: 'GET', timeout: options.timeoutMs ?? 10_000 },
      (res) => {
        let body = '';
        res.on('data', (chunk) => (body += String(chunk)));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new DockerApiError(`dockerd answered HTTP ${res.statusCode}: ${body.trim().slice(0, 200)}`));
          try {
            resolve(JSON.parse(body));
          } catch {
            reject(new DockerApiError('dockerd answered with something that is not JSON'));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new DockerApiError(`dockerd did not answer within ${(options.timeoutMs ?? 10_000) / 1000} s`)));
    req.on('error', (error) => reject(error instanceof DockerApiError ? error : new DockerApiError(`cannot reach dockerd at ${options.socket}: ${error.message}`)));
    req.end();
  });
}

interface ContainerSummary {
  State?: string;
  Mounts?: Array<{ Type?: string; Name?: string; Driver?: string }>;
}

/** States in which a container may be using its volumes. */
const USING_STATES = new Set(['running', 'paused', 'restarting', 'removing']);

/**
 * Names of this driver's volumes that some live container uses, according to dockerd.
 * Containers in "created" or "exited" hold no mounts.
 */
export async function volumesInUse(options: DockerApiOptions, driver: string): Promise<Set<string>> {
  const containers = (await dockerGet(options, '/containers/json?all=1')) as ContainerSummary[];
  const names = new Set<string>();
  for (const container of containers) {
    if (!USING_STATES.has(container.State ?? 'running')) continue;
    for (const mount of container.Mounts ?? []) {
      if (mount.Type === 'volume' && mount.Driver === driver && mount.Name) names.add(mount.Name);
    }
  }
  return names;
}
