import { createConnection } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { StartupError } from '../../errors.js';
import { csiStatus } from './error-status.js';

export const CSI_PROTO = fileURLToPath(new URL('./proto/csi.proto', import.meta.url));

/** keepCase: handlers and clients see the spec's own field names (volume_id, target_path). */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

interface CsiPackage {
  readonly Identity: grpc.ServiceClientConstructor;
  readonly Controller: grpc.ServiceClientConstructor;
  readonly Node: grpc.ServiceClientConstructor;
}

export async function loadCsiPackage(): Promise<CsiPackage> {
  const definition = await protoLoader.load(CSI_PROTO, PROTO_LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { csi: { v1: CsiPackage } };
  return loaded.csi.v1;
}

/** One service's RPCs: each takes the decoded request and resolves to the response object. */
export type Handlers = Record<string, (request: never) => Promise<object> | object>;

export interface CsiServices {
  readonly identity: Handlers;
  readonly controller?: Handlers | undefined;
  readonly node?: Handlers | undefined;
}

export interface CsiServer {
  close(): Promise<void>;
}

/** What a log line may show of a request: identifiers only, never parameters' values or secrets. */
function requestFields(request: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const key of ['name', 'volume_id', 'target_path']) if (typeof request[key] === 'string' && request[key] !== '') fields[key] = request[key];
  if (request['parameters'] && typeof request['parameters'] === 'object') fields['parameterKeys'] = Object.keys(request['parameters']);
  return fields;
}

function implementation(method: string, handlers: Handlers, logger: Logger): grpc.UntypedServiceImplementation {
  const service: grpc.UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(handlers)) {
    service[name] = ((call: grpc.ServerUnaryCall<Record<string, unknown>, object>, callback: grpc.sendUnaryData<object>) => {
      const started = Date.now();
      const fields = { rpc: `${method}.${name}`, ...requestFields(call.request ?? {}) };
      Promise.resolve()
        .then(() => handler(call.request as never))
        .then(
          (response) => {
            logger.debug({ ...fields, ms: Date.now() - started }, 'CSI call answered');
            callback(null, response);
          },
          (error: unknown) => {
            const { code, details } = csiStatus(error);
            logger.warn({ ...fields, code: grpc.status[code], err: details, ms: Date.now() - started }, 'CSI call failed');
            callback({ code, details });
          },
        );
    }) as grpc.UntypedHandleCall;
  }
  return service;
}

/**
 * Serves csi.v1 on a Unix socket. The socket appears only once the services are built,
 * because swarmkit keeps the first Probe and GetPluginCapabilities answers until dockerd
 * restarts. A socket file left by a dead server is replaced; one that answers is never stolen.
 */
export async function serveCsi(socketPath: string, services: CsiServices, logger: Logger): Promise<CsiServer> {
  const csi = await loadCsiPackage();
  const server = new grpc.Server();
  server.addService(csi.Identity.service, implementation('Identity', services.identity, logger));
  if (services.controller) server.addService(csi.Controller.service, implementation('Controller', services.controller, logger));
  if (services.node) server.addService(csi.Node.service, implementation('Node', services.node, logger));
  await removeStaleSocket(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (error) => {
      if (error) reject(new StartupError(`cannot listen on ${socketPath}: ${error.message}`, { cause: error }));
      else resolve();
    });
  });
  await chmod(socketPath, 0o660);
  return {
    async close() {
      await new Promise<void>((resolve) => {
        // Calls under way may finish for a moment; then the rest are cut (the CO retries them).
        const cut = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 5000);
        server.tryShutdown(() => {
          clearTimeout(cut);
          resolve();
        });
      });
      await unlink(socketPath).catch(() => undefined);
    },
  };
}

async function removeStaleSocket(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const existing = await lstat(path).catch(() => undefined);
  if (!existing) return;
  if (!existing.isSocket()) throw new StartupError(`${path} exists and is not a socket; remove it or choose another --socket`);
  if (await socketAnswers(path)) throw new StartupError(`another process is already serving ${path}; stop it first, or use another --socket`);
  await unlink(path);
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1000, () => done(true));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
