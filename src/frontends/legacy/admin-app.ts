import express, { type Express } from 'express';
import type { Logger } from 'pino';
import { errorHandler } from './error-handler.js';
import { PLUGIN_CONTENT_TYPE } from './protocol.js';

/**
 * Express serves everything that is not a plugin call: status and health, and the polite
 * 404/405 answers. Loaded on first use, so a daemon that only talks to dockerd never pays
 * for it at start-up.
 */
export function createAdminApp(logger: Logger, extraRoutes?: (app: Express) => void): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  extraRoutes?.(app);
  app.post('*', (req, res) => {
    res.status(404).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify({ Err: `netvol does not implement ${req.path}` }));
  });
  app.all('*', (req, res) => {
    res.status(405).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify({ Err: `use POST for ${req.path}` }));
  });
  app.use(errorHandler(logger));
  return app;
}
