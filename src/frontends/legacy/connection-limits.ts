import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';

export interface ConnectionLimits {
  /**
   * A connection with no call waiting for its reply is closed after this long without a byte:
   * one that never sends a request, sits between requests, or stops sending its body.
   * 60 s by default.
   */
  readonly idleTimeoutMs?: number | undefined;
  /** Connections past this many are refused: 512 by default, far below the fd limit. */
  readonly maxConnections?: number | undefined;
}

export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_CONNECTIONS = 512;

interface Tracked {
  closeIdle(): void;
  closeAll(): void;
}
const tracked = new WeakMap<Server, Tracked>();

/**
 * Node's own timeouts leave a connection that never sends a request open for ever, and each
 * one holds a file descriptor the state store needs. A call in progress, though, must never
 * be cut: a Mount can take 20 s and more without a byte on the wire, and dockerd would
 * report a failure for a mount that then happens anyway.
 */
export function limitConnections(server: Server, limits: ConnectionLimits = {}): void {
  const idleMs = limits.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  server.maxConnections = limits.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  // server.timeout arms the socket timer from the first byte on; the keep-alive value is
  // also what Node advertises, so a client that honours it gives up first.
  server.timeout = idleMs;
  server.keepAliveTimeout = idleMs;

  const accepted = new Set<Socket>();
  const calls = new Map<Socket, Set<IncomingMessage>>();
  const waitingForReply = (socket: Socket) => [...(calls.get(socket) ?? [])].some((req) => req.complete);
  server.on('connection', (socket: Socket) => {
    accepted.add(socket);
    socket.once('close', () => accepted.delete(socket));
  });
  // Over TLS, requests and timeouts name the TLS socket, not the TCP one under it.
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) => {
    calls.set(socket, new Set());
    socket.once('close', () => calls.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res) => {
    const open = calls.get(req.socket);
    if (!open) return;
    open.add(req);
    res.once('close', () => open.delete(req));
  });
  // With a listener here Node no longer destroys timed-out sockets itself: this decides.
  server.on('timeout', (socket: Socket) => {
    if (!waitingForReply(socket)) socket.destroy();
  });
  tracked.set(server, {
    // Node's closeIdleConnections() skips connections that never sent a request.
    closeIdle: () => {
      for (const socket of calls.keys()) if (!waitingForReply(socket)) socket.destroy();
    },
    // Node's closeAllConnections() skips TLS connections still in their handshake.
    closeAll: () => {
      for (const socket of accepted) socket.destroy();
    },
  });
}

/** Closes every connection that has no call waiting for its reply. */
export function closeIdleConnections(server: Server): void {
  server.closeIdleConnections();
  tracked.get(server)?.closeIdle();
}

/** Closes every connection, calls in progress or not. */
export function closeAllConnections(server: Server): void {
  server.closeAllConnections();
  tracked.get(server)?.closeAll();
}
