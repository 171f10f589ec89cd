import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { BusyError, ConflictError, InUseError, MountError, NotFoundError, StartupError, StateError, ValidationError } from '../../src/errors.js';
import { CsiStatusError, csiStatus } from '../../src/frontends/csi/error-status.js';
import { CommandTimeoutError } from '../../src/system/command-runner.js';

// A core error has one meaning; the CSI adapter maps it to one gRPC status, here and only here.

describe('core errors as gRPC status codes', () => {
  it.each<[string, Error, status]>([
    ['a bad field or option', new ValidationError('share is empty'), status.INVALID_ARGUMENT],
    ['an unknown volume', new NotFoundError('no such volume'), status.NOT_FOUND],
    ['a name taken with other parameters', new ConflictError('volume pg exists'), status.ALREADY_EXISTS],
    ['a volume still in use', new InUseError('still mounted'), status.FAILED_PRECONDITION],
    ['an earlier call on the volume still running', new BusyError('volume pg is busy'), status.ABORTED],
    ['a mount that failed', new MountError('mounting x failed: access denied'), status.INTERNAL],
    ["a mount that timed out (the mounter's message)", new MountError('mounting x (nfs4) on /y timed out after 10 s: server x did not answer'), status.DEADLINE_EXCEEDED],
    ['a helper that timed out (its cause)', new MountError('creating pg failed', { cause: new CommandTimeoutError({ file: 'node', args: [] }, 10_000) }), status.DEADLINE_EXCEEDED],
    ['state that could not be saved', new StateError('disk full'), status.UNAVAILABLE],
    ['anything else', new StartupError('odd'), status.INTERNAL],
    ['a plain error', new Error('EACCES: permission denied'), status.INTERNAL],
    ['an answer the adapter chose', new CsiStatusError(status.UNIMPLEMENTED, 'ListVolumes is not implemented'), status.UNIMPLEMENTED],
  ])('%s', (_title, error, code) => {
    expect(csiStatus(error)).toEqual({ code, details: error.message });
  });
});
