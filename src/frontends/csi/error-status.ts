import { status } from '@grpc/grpc-js';
import {
  BusyError,
  ConflictError,
  InUseError,
  MountError,
  NetvolError,
  NotFoundError,
  StateError,
  ValidationError,
  errorMessage,
} from '../../errors.js';
import { CommandTimeoutError } from '../../system/command-runner.js';

/** An answer the CSI adapter decides itself (UNIMPLEMENTED, FAILED_PRECONDITION on a target...). */
export class CsiStatusError extends NetvolError {
  override name = 'CsiStatusError';
  constructor(
    readonly grpcCode: status,
    message: string,
  ) {
    super('ECSI', message);
  }
}

export interface CsiStatus {
  readonly code: status;
  readonly details: string;
}

/**
 * The one place a core error becomes a gRPC status, as the CSI spec's error tables
 * prescribe. Messages are passed on as they are: the core builds them free of secrets.
 */
export function csiStatus(error: unknown): CsiStatus {
  const details = errorMessage(error);
  if (error instanceof CsiStatusError) return { code: error.grpcCode, details };
  if (error instanceof ValidationError) return { code: status.INVALID_ARGUMENT, details };
  if (error instanceof NotFoundError) return { code: status.NOT_FOUND, details };
  if (error instanceof ConflictError) return { code: status.ALREADY_EXISTS, details };
  if (error instanceof InUseError) return { code: status.FAILED_PRECONDITION, details };
  // The spec's "operation pending for volume": the CO retries with backoff.
  if (error instanceof BusyError) return { code: status.ABORTED, details };
  if (error instanceof MountError) return { code: timedOut(error) ? status.DEADLINE_EXCEEDED : status.INTERNAL, details };
  // The state could not be written: nothing changed, and a retry may find the disk back.
  if (error instanceof StateError) return { code: status.UNAVAILABLE, details };
  return { code: status.INTERNAL, details };
}

function timedOut(error: Error): boolean {
  for (let cause: unknown = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof CommandTimeoutError) return true;
    // The mounter reports a timeout in its message only (it keeps no cause).
    if (/ timed out after \d/.test(cause.message)) return true;
  }
  return false;
}
