import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Express } from 'express';
import type { Logger } from 'pino';
import { ValidationError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { BodyError, errorReply } from './error-reply.js';
import { PLUGIN_CONTENT_TYPE } from './protocol.js';
import { PreSerialized, type Route } from './routes.js';
import { maskSecretOptions } from '../protocols/secret-options.js';

export const BODY_LIMIT = '64kb';
export const BODY_LIMIT_BYTES = 64 * 1024;

export interface AppOptions {
  readonly routes: Record<string, Route>;
  readonly logger: Logger;
  /** Keys whose values are masked in debug logs of request bodies. */
  readonly secretKeys: readonly string[];
  /** Times every plugin call when given. */
  readonly metrics?: Metrics;
  /** Adds non-protocol routes (status, health) to the express app that serves them. */
  readonly extraRoutes?: (app: Express) => void;
}

/**
 * The request listener for the plugin socket. Plugin calls (POST to a path of the route
 * table) take a lean path on node:http: dockerd calls Get for every volume at its start and
 * before every Mount and Unmount, and the full express stack cost three times the bare
 * transport per call in the benchmark. Everything else goes to an express app.
 *
 * dockerd sends no Content-Type and sometimes no body at all, so every body is parsed as
 * JSON whatever its type, and an empty one is {}.
 */
export function createApp(options: AppOptions): RequestListener {
  const { routes, logger, secretKeys, metrics } = options;
  let admin: Promise<RequestListener> | undefined;
  const adminApp = () =>
    (admin ??= import('./admin-app.js').then(({ createAdminApp }) => createAdminApp(logger, options.extraRoutes)));

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = req.method === 'POST' ? routes[path] : undefined;
    if (!route) {
      adminApp().then(
        (app) => app(req, res),
        (error: unknown) => send(res, errorReply(error, path, logger)),
      );
      return;
    }
    const started = process.hrtime.bigint();
    void handle(route, path, req, logger, secretKeys).then((reply) => {
      send(res, reply);
      metrics?.observeCall(path, reply.status === 200, Number(process.hrtime.bigint() - started) / 1e9);
    });
  };
}

async function handle(
  route: Route,
  path: string,
  req: IncomingMessage,
  logger: Logger,
  secretKeys: readonly string[],
): Promise<{ status: number; body: object | PreSerialized }> {
  try {
    const raw = await readJsonBody(req);
    if (logger.isLevelEnabled('debug')) logger.debug({ call: path, body: maskSecrets(raw, secretKeys) }, 'Call');
    const parsed = route.schema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const detail = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : 'the body must be a JSON object';
      throw new ValidationError(`bad ${path.slice(1)} request: ${detail}`);
    }
    return { status: 200, body: await route.handle(parsed.data) };
  } catch (error) {
    const reply = errorReply(error, path, logger);
    logger.debug({ call: path, status: reply.status, err: reply.body.Err }, 'Call failed');
    return reply;
  }
}

function readJsonBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= BODY_LIMIT_BYTES) chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > BODY_LIMIT_BYTES) return reject(new BodyError(413, `request body is larger than ${BODY_LIMIT_BYTES} bytes`));
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch (error) {
        reject(new BodyError(400, `request body is not valid JSON: ${(error as Error).message}`));
      }
    });
  });
}

function send(res: ServerResponse, reply: { status: number; body: object | PreSerialized }): void {
  const bytes = reply.body instanceof PreSerialized ? reply.body.bytes : Buffer.from(JSON.stringify(reply.body));
  res.writeHead(reply.status, { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': bytes.length });
  res.end(bytes);
}

/** Copies a request body with secret option values replaced, for logging. */
export function maskSecrets(body: unknown, secretKeys: readonly string[]): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const opts = (body as { Opts?: unknown }).Opts;
  if (typeof opts !== 'object' || opts === null) return body;
  return { ...body, Opts: maskSecretOptions(opts as Record<string, unknown>, secretKeys) };
}
