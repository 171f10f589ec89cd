import type { Logger } from 'pino';
import { NetvolError } from '../../errors.js';

/** HTTP status per error code; dockerd shows the Err text either way and never retries. */
const STATUS: Record<string, number> = { EINVAL: 400, ENOENT: 404, EEXIST: 409, EBUSY: 409 };

/** Error from reading a request body: too large, or not JSON. */
export class BodyError extends Error {
  override name = 'BodyError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The one place where errors become {"Err": "..."}. NetvolError messages are written for
 * users and free of secrets; anything else is a bug: logged in full, shown in short.
 */
export function errorReply(error: unknown, path: string, logger: Logger): { status: number; body: { Err: string } } {
  if (error instanceof NetvolError) return { status: STATUS[error.code] ?? 500, body: { Err: error.message } };
  if (error instanceof BodyError) return { status: error.status, body: { Err: error.message } };
  logger.error({ err: error, call: path }, 'Unexpected error');
  return {
    status: 500,
    body: { Err: `internal error in netvol: ${error instanceof Error ? error.message : String(error)}; see the daemon log` },
  };
}
