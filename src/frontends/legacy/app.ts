import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Express } from 'express';
import type { Logger } from 'pino';
import { ValidationError } from '../../errors.js';
import type { Metrics } from '../../observability/metrics.js';
import { BodyError, errorReply } from './error-reply.js';
import { PLUGIN_CONTENT_TYPE } from './protocol.js';
import { PreSerialized, type Route } from './routes.js';
import { maskSecretOptions } from '../../protocols/secret-options.js';
import type { UnansweredCalls } from './unanswered-calls.js';

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
  /** Keeps the bodies of kept routes' calls while under way, and answers dockerd's empty repeats of them. */
  readonly unanswered?: UnansweredCalls;
}

/** The request listener, and a way to wait for the calls it is still working on. */
export type PluginApp = RequestListener & {
  /**
   * Resolves once every call received so far has answered (or found its caller gone) and
   * every abandoned call has been undone. Await it after closing the server and before
   * flushing state: a Mount cut off at shutdown completes, and is undone, after that.
   */
  settled(): Promise<void>;
};

type Reply = { status: number; body: object | PreSerialized };

/**
 * The request listener for the plugin socket. Plugin calls (POST to a path of the route
 * table) take a lean path on node:http: dockerd calls Get for every volume at its start and
 * before every Mount and Unmount, and the full express stack cost three times the bare
 * transport per call in the benchmark. Everything else goes to an express app.
 *
 * dockerd sends no Content-Type and sometimes no body at all, so every body is parsed as
 * JSON whatever its type, and an empty one is {}.
 */
export function createApp(options: AppOptions): PluginApp {
  const { routes, logger, secretKeys, metrics, unanswered } = options;
  let admin: Promise<RequestListener> | undefined;
  const adminApp = () =>
    (admin ??= import('./admin-app.js').then(({ createAdminApp }) => createAdminApp(logger, options.extraRoutes)));
  const pending = new Set<Promise<void>>();
  // Calls under way per path and body. dockerd's client repeats a call whose connection
  // broke; the repeat queues behind the first on the volume lock and answers for the same
  // mount ID, so undoing the first would take the repeat's reference away.
  const underWay = new Map<string, number>();

  const serve = async (route: Route, path: string, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    let call: { body: unknown; key: string } | undefined;
    let result: object | PreSerialized | undefined;
    let reply: Reply;
    let drop: (() => Promise<void>) | undefined;
    try {
      const { body, repeated } = await parseBody(route, path, req, logger, secretKeys, unanswered);
      if (route.abandoned) {
        call = { body, key: `${path}\n${JSON.stringify(body)}` };
        underWay.set(call.key, (underWay.get(call.key) ?? 0) + 1);
      }
      if (route.kept && unanswered) drop = await unanswered.begin(path, JSON.stringify(body));
      result = await route.handle(body, { repeated });
      reply = { status: 200, body: result };
    } catch (error) {
      const failure = errorReply(error, path, logger);
      logger.debug({ call: path, status: failure.status, err: failure.body.Err }, 'Call failed');
      reply = failure;
    }
    metrics?.observeCall(path, reply.status === 200, Number(process.hrtime.bigint() - started) / 1e9);
    try {
      const delivered = await deliver(req, res, reply);
      if (delivered || !call || result === undefined || !route.abandoned) return;
      const what = path.slice(path.lastIndexOf('.') + 1);
      if ((underWay.get(call.key) ?? 0) > 1) {
        logger.info({ call: path }, `${what} answered after the caller hung up; left as it is: the same call came again`);
        return;
      }
      try {
        const undone = await route.abandoned(call.body, result);
        logger.warn({ call: path }, `${what} answered after the caller hung up; ${undone}`);
      } catch (error) {
        logger.error({ call: path, err: error }, `${what} answered after the caller hung up, and undoing it failed`);
      }
    } finally {
      await drop?.();
      if (call) {
        const left = (underWay.get(call.key) ?? 1) - 1;
        if (left > 0) underWay.set(call.key, left);
        else underWay.delete(call.key);
      }
    }
  };

  const listener: RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = req.method === 'POST' ? routes[path] : undefined;
    if (!route) {
      adminApp().then(
        (app) => app(req, res),
        (error: unknown) => void deliver(req, res, errorReply(error, path, logger)),
      );
      return;
    }
    const call = serve(route, path, req, res).catch((error: unknown) =>
      logger.error({ call: path, err: error }, 'Unexpected error after the call'),
    );
    pending.add(call);
    void call.finally(() => pending.delete(call));
  };
  return Object.assign(listener, {
    async settled() {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  });
}

async function parseBody(
  route: Route,
  path: string,
  req: IncomingMessage,
  logger: Logger,
  secretKeys: readonly string[],
  unanswered: UnansweredCalls | undefined,
): Promise<{ body: unknown; repeated: boolean }> {
  let raw = await readJsonBody(req);
  if (logger.isLevelEnabled('debug')) logger.debug({ call: path, body: maskSecrets(raw, secretKeys) }, 'Call');
  let parsed = route.schema.safeParse(raw);
  let repeated = false;
  if (!parsed.success && raw === EMPTY_BODY) {
    // dockerd's repeat of a call whose first try broke off (see unanswered-calls.ts).
    const what = path.slice(1);
    const pick = route.kept && unanswered ? unanswered.takeRepeat(path) : { found: false as const, why: `netvol keeps no ${what} calls to answer a repeat with` };
    if (!pick.found) {
      const message = `dockerd sent ${what} with an empty body: it does that when it repeats a call whose first try broke off (moby/moby#39331), as when netvol restarted while answering it; ${pick.why}. Run the docker command again`;
      // In the log too: the docker CLI may show another error for it (a failed Get under
      // docker run reads "Unable to find image"), and this line says what happened.
      logger.warn({ call: path }, message);
      throw new ValidationError(message);
    }
    raw = JSON.parse(pick.body) as unknown;
    parsed = route.schema.safeParse(raw);
    repeated = true;
    logger.warn(
      { call: path, body: maskSecrets(raw, secretKeys) },
      `dockerd repeated ${what} with an empty body (moby/moby#39331): answered with the body netvol's previous process received before it stopped`,
    );
  }
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const detail = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : 'the body must be a JSON object';
    throw new ValidationError(`bad ${path.slice(1)} request: ${detail}`);
  }
  return { body: parsed.data as unknown, repeated };
}

/** What an empty body parses to: one object, so that parseBody can tell it from a sent `{}`. */
const EMPTY_BODY: Readonly<Record<string, never>> = Object.freeze({});

function readJsonBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new BodyError(413, `request body is larger than ${BODY_LIMIT_BYTES} bytes`);
    if (Number(req.headers['content-length'] ?? 0) > BODY_LIMIT_BYTES) return reject(tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= BODY_LIMIT_BYTES) return void chunks.push(chunk);
      // Reading on would let a body that never ends hold the connection until Node's
      // request timeout; the reply goes out now and the connection is closed after it.
      req.off('data', onData);
      req.pause();
      reject(tooLarge());
    };
    req.on('data', onData);
    req.on('error', () => reject(new BodyError(400, 'the request was cut off before its body ended')));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve(EMPTY_BODY);
      try {
        resolve(JSON.parse(text));
      } catch (error) {
        reject(new BodyError(400, `request body is not valid JSON: ${(error as Error).message}`));
      }
    });
  });
}

/**
 * Sends the reply unless the caller is already gone. Resolves to true once it has left in
 * full, false if the connection closed first.
 */
function deliver(req: IncomingMessage, res: ServerResponse, reply: Reply): Promise<boolean> {
  const socket = req.socket;
  if (res.destroyed || socket.destroyed || !socket.writable) return Promise.resolve(false);
  const delivered = new Promise<boolean>((resolve) => {
    const settle = () => {
      res.off('close', settle);
      socket.off('close', settle);
      resolve(res.writableFinished);
    };
    res.once('close', settle);
    socket.once('close', settle);
  });
  const bytes = reply.body instanceof PreSerialized ? reply.body.bytes : Buffer.from(JSON.stringify(reply.body));
  const headers: Record<string, string | number> = { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': bytes.length };
  if (!req.complete) {
    // Answered before the body ended (too large): the rest of it is never read.
    headers['Connection'] = 'close';
    res.once('finish', () => req.destroy());
  }
  res.writeHead(reply.status, headers);
  res.end(bytes);
  return delivered;
}

/** Copies a request body with secret option values replaced, for logging. */
export function maskSecrets(body: unknown, secretKeys: readonly string[]): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const opts = (body as { Opts?: unknown }).Opts;
  if (typeof opts !== 'object' || opts === null) return body;
  return { ...body, Opts: maskSecretOptions(opts as Record<string, unknown>, secretKeys) };
}
