import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import { NetvolError } from '../errors.js';
import { PLUGIN_CONTENT_TYPE } from './protocol.js';

/** HTTP status per error code; dockerd shows the Err text either way and never retries. */
const STATUS: Record<string, number> = { EINVAL: 400, ENOENT: 404, EEXIST: 409, EBUSY: 409 };

/** The one place where errors become {"Err": "..."}. Unknown errors are logged, not shown raw. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    let status = 500;
    let message: string;
    if (error instanceof NetvolError) {
      status = STATUS[error.code] ?? 500;
      message = error.message;
    } else if (isBodyParserError(error)) {
      status = error.status;
      message =
        error.type === 'entity.too.large'
          ? `request body is larger than ${error.limit} bytes`
          : `request body is not valid JSON: ${error.message}`;
    } else {
      logger.error({ err: error, call: req.path }, 'Unexpected error');
      message = `internal error in netvol: ${error instanceof Error ? error.message : String(error)}; see the daemon log`;
    }
    logger.debug({ call: req.path, status, err: message }, 'Call failed');
    res.status(status).type(PLUGIN_CONTENT_TYPE).send(JSON.stringify({ Err: message }));
  };
}

function isBodyParserError(error: unknown): error is { status: number; type: string; message: string; limit?: number } {
  return typeof error === 'object' && error !== null && 'type' in error && 'status' in error && typeof (error as { status: unknown }).status === 'number';
}
