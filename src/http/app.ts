import express, { type Express } from 'express';
import type { Logger } from 'pino';
import { ValidationError } from '../errors.js';
import { errorHandler } from './error-handler.js';
import { PLUGIN_CONTENT_TYPE } from './protocol.js';
import type { Route } from './routes.js';
import type { Metrics } from '../observability/metrics.js';

export const BODY_LIMIT = '64kb';

export interface AppOptions {
  readonly routes: Record<string, Route>;
  readonly logger: Logger;
  /** Keys whose values are masked in debug logs of request bodies. */
  readonly secretKeys: readonly string[];
  /** Times every plugin call when given. */
  readonly metrics?: Metrics;
  /** Adds non-protocol routes (status, health) before the catch-all. */
  readonly extraRoutes?: (app: Express) => void;
}

/**
 * Express app for the plugin protocol. dockerd sends no Content-Type and sometimes no body
 * at all, so every body is parsed as JSON whatever its type, and an empty one is {}.
 */
export function createApp({ routes, logger, secretKeys, metrics, extraRoutes }: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  extraRoutes?.(app);
  app.use(express.json({ type: () => true, limit: BODY_LIMIT, strict: false }));
  app.post('*', async (req, res, next) => {
    const route = routes[req.path];
    const started = process.hrtime.bigint();
    if (metrics && route) {
      res.once('finish', () => metrics.observeCall(req.path, res.statusCode === 200, Number(process.hrtime.bigint() - started) / 1e9));
    }
    try {
      if (!route) {
        res.status(404).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify({ Err: `netvol does not implement ${req.path}` }));
        return;
      }
      const raw: unknown = req.body === undefined || isEmptyObjectLike(req.body) ? {} : req.body;
      logger.debug({ call: req.path, body: maskSecrets(raw, secretKeys) }, 'Call');
      const parsed = route.schema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const detail =
          issue && issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : 'the body must be a JSON object';
        throw new ValidationError(`bad ${req.path.slice(1)} request: ${detail}`);
      }
      const reply = await route.handle(parsed.data);
      res.status(200).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify(reply));
    } catch (error) {
      next(error);
    }
  });
  app.all('*', (req, res) => {
    res.status(405).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify({ Err: `use POST for ${req.path}` }));
  });
  app.use(errorHandler(logger));
  return app;
}

function isEmptyObjectLike(body: unknown): boolean {
  return typeof body === 'object' && body !== null && !Array.isArray(body) && Object.keys(body).length === 0;
}

/** Copies a request body with secret option values replaced, for logging. */
export function maskSecrets(body: unknown, secretKeys: readonly string[]): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const opts = (body as { Opts?: unknown }).Opts;
  if (typeof opts !== 'object' || opts === null) return body;
  const masked = Object.fromEntries(
    Object.entries(opts).map(([key, value]) => [key, secretKeys.includes(key) ? '********' : value]),
  );
  return { ...body, Opts: masked };
}
