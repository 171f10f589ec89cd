import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import { errorReply } from './error-reply.js';
import { PLUGIN_CONTENT_TYPE } from './protocol.js';

/** Express's side of errorReply, for the admin routes. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const { status, body } = errorReply(error, req.path, logger);
    res.status(status).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify(body));
  };
}
