import { createConnection } from 'node:net';
import { chmod, chown, lstat, mkdir, readFile, unlink } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server } from 'node:http';
import { dirname } from 'node:path';
import type { RequestListener } from 'node:http';
import { StartupError } from '../../errors.js';
import {
  closeAllConnections,
  closeIdleConnections,
  DEFAULT_IDLE_TIMEOUT_MS,
  limitConnections,
  type ConnectionLimits,
} from './connection-limits.js';

export interface SocketServerOptions extends ConnectionLimits {
  readonly path: string;
  /** 0660 by default: root and, if set, one group may talk to the plugin. */
  readonly mode?: number;
  readonly gid?: number | undefined;
}

/** True when something accepts connections on the Unix socket at `path`. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => done(true));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Listens on a Unix socket. A socket file left by a dead daemon is replaced; one that still
 * answers belongs to a live daemon and is never stolen.
 */
/**
 * Serves a listening socket inherited from systemd (socket activation, `netvol@.socket`):
 * systemd keeps it open while netvol restarts, so dockerd's calls queue instead of meeting a
 * refused connection. The socket file, its mode and group are the socket unit's.
 */
export async function listenOnInheritedSocket(handler: RequestListener, fd: number, options: ConnectionLimits = {}): Promise<Server> {
  const server = createServer(handler);
  limitConnections(server, options);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new StartupError(`cannot serve the socket systemd passed (fd ${fd}): ${error.message}`, { cause: error })));
    server.listen({ fd }, () => resolve());
  });
  return server;
}

export async function listenOnSocket(handler: RequestListener, options: SocketServerOptions): Promise<Server> {
  const { path } = options;
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const existing = await lstat(path).catch(() => undefined);
  if (existing) {
    if (!existing.isSocket()) {
      throw new StartupError(`${path} exists and is not a socket; remove it or choose another --socket`);
    }
    if (await socketAnswers(path)) {
      throw new StartupError(
        `another process is already serving ${path}; stop it first (netvol status), or use another --socket or NETSHARE_SOCKET_NAME`,
      );
    }
    await unlink(path);
  }
  const server = createServer(handler);
  limitConnections(server, options);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new StartupError(`cannot listen on ${path}: ${error.message}`, { cause: error })));
    server.listen(path, () => resolve());
  });
  await chmod(path, options.mode ?? 0o660);
  if (options.gid !== undefined) await chown(path, 0, options.gid);
  return server;
}

export interface TcpServerOptions extends ConnectionLimits {
  readonly host: string;
  readonly port: number;
  readonly tls?: { cert: string; key: string; ca: string } | undefined;
}

/** TCP, plain on loopback or with mutual TLS: a client without a certificate from `ca` is refused. */
export async function listenOnTcp(handler: RequestListener, options: TcpServerOptions): Promise<Server> {
  const server = options.tls
    ? createHttpsServer(
        {
          cert: await readFile(options.tls.cert),
          key: await readFile(options.tls.key),
          ca: await readFile(options.tls.ca),
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
          // The idle limit starts only after the handshake; a client that never finishes
          // one would otherwise hold its connection for Node's 120 s.
          handshakeTimeout: Math.min(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, 120_000),
        },
        handler,
      )
    : createServer(handler);
  limitConnections(server, options);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(new StartupError(`cannot listen on ${options.host}:${options.port}: ${error.message}`, { cause: error })),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  return server;
}

export const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;

export interface CloseOptions {
  /** How long calls in progress may take to answer before their connections are cut: 5 s. */
  readonly graceMs?: number | undefined;
}

/**
 * Stops accepting, closes idle connections, lets calls in progress answer for up to
 * `graceMs`, then cuts what is left. A cut Mount is undone by the app once it completes
 * (Route.abandoned): dockerd saw it fail and will never unmount it.
 */
export async function closeServer(server: Server, socketPath?: string, options: CloseOptions = {}): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  closeIdleConnections(server);
  // A keep-alive connection becomes idle once its call answers; close it then instead of
  // waiting for its idle timeout.
  const sweep = setInterval(() => closeIdleConnections(server), 20);
  const cut = setTimeout(() => closeAllConnections(server), options.graceMs ?? DEFAULT_SHUTDOWN_GRACE_MS);
  try {
    await closed;
  } finally {
    clearInterval(sweep);
    clearTimeout(cut);
  }
  if (socketPath) await unlink(socketPath).catch(() => undefined);
}
