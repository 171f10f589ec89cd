import { SocketTimeoutError, socketRequest, type SocketReply } from './socket-request.js';

export interface DockerApiOptions {
  readonly socket: string;
  readonly apiVersion?: string | undefined;
  readonly timeoutMs?: number;
}

export class DockerApiError extends Error {
  override name = 'DockerApiError';
}

/** GET a Docker Engine API path over its Unix socket; JSON in, JSON out. */
export async function dockerGet(options: DockerApiOptions, path: string): Promise<unknown> {
  const prefix = options.apiVersion ? `/v${options.apiVersion.replace(/^v/, '')}` : '';
  const timeoutMs = options.timeoutMs ?? 10_000;
  let reply: SocketReply;
  try {
    reply = await socketRequest(options.socket, `${prefix}${path}`, { timeoutMs });
  } catch (error) {
    throw new DockerApiError(
      error instanceof SocketTimeoutError
        ? `dockerd did not answer within ${timeoutMs / 1000} s`
        : `cannot reach dockerd at ${options.socket}: ${(error as Error).message}`,
    );
  }
  if (reply.status !== 200) throw new DockerApiError(`dockerd answered HTTP ${reply.status}: ${reply.text.trim().slice(0, 200)}`);
  try {
    return JSON.parse(reply.text);
  } catch {
    throw new DockerApiError('dockerd answered with something that is not JSON');
  }
}

export interface ContainerMount {
  readonly Type?: string;
  readonly Name?: string;
  readonly Driver?: string;
  /** The Mountpoint the driver handed out: unambiguous, whatever dockerd calls the driver. */
  readonly Source?: string;
}

interface ContainerSummary {
  State?: string;
  Mounts?: ContainerMount[];
}

/** States in which a container may be using its volumes. */
const USING_STATES = new Set(['running', 'paused', 'restarting', 'removing']);

/**
 * Names of this driver's volumes that some live container uses, according to dockerd;
 * `volumeOf` says which of this driver's volumes a container mount is, if any.
 * Containers in "created" or "exited" hold no mounts.
 */
export async function volumesInUse(options: DockerApiOptions, volumeOf: (mount: ContainerMount) => string | undefined): Promise<Set<string>> {
  const containers = (await dockerGet(options, '/containers/json?all=1')) as ContainerSummary[];
  const names = new Set<string>();
  for (const container of containers) {
    if (!USING_STATES.has(container.State ?? 'running')) continue;
    for (const mount of container.Mounts ?? []) {
      if (mount.Type !== 'volume') continue;
      const name = volumeOf(mount);
      if (name !== undefined) names.add(name);
    }
  }
  return names;
}
