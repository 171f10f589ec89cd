/**
 * Typed errors with stable codes. Messages are written for the person running `docker`:
 * they say what failed and what to do next, and are built already free of secrets, so any
 * layer may show them. The HTTP layer maps them to {"Err": message} in one place.
 */
export class NetvolError extends Error {
  override name = 'NetvolError';
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A request, option or name that can never work as given. */
export class ValidationError extends NetvolError {
  override name = 'ValidationError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('EINVAL', message, options);
  }
}

export class NotFoundError extends NetvolError {
  override name = 'NotFoundError';
  constructor(message: string) {
    super('ENOENT', message);
  }
}

/** Create of an existing name with different options. */
export class ConflictError extends NetvolError {
  override name = 'ConflictError';
  constructor(message: string) {
    super('EEXIST', message);
  }
}

/** Remove of a volume that containers still use. */
export class InUseError extends NetvolError {
  override name = 'InUseError';
  constructor(message: string) {
    super('EBUSY', message);
  }
}

/** mount/umount failed or timed out; the message carries the tool's own words. */
export class MountError extends NetvolError {
  override name = 'MountError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('EMOUNT', message, options);
  }
}

/** The state file could not be read or written. */
export class StateError extends NetvolError {
  override name = 'StateError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ESTATE', message, options);
  }
}

/** The daemon cannot start as configured (bad flags, socket in use...). */
export class StartupError extends NetvolError {
  override name = 'StartupError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ESTARTUP', message, options);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A call waited too long for an earlier call on the same volume (a hung server behind it). */
export class BusyError extends NetvolError {
  override name = 'BusyError';
  constructor(message: string) {
    super('EBUSYLOCK', message);
  }
}
