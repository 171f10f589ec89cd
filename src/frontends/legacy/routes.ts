import type { z } from 'zod';
import type { VolumeDriver } from '../../core/volume-driver.js';
import { createRequest, emptyRequest, mountRequest, nameRequest } from './protocol.js';

/** A reply already serialised and encoded (List of many volumes is cached as bytes). */
export class PreSerialized {
  constructor(readonly bytes: Buffer) {}
}

type Reply = object | PreSerialized;

/** How the call came: `repeated` when it is dockerd's empty repeat of a call a killed process left unanswered. */
export interface CallContext {
  readonly repeated: boolean;
}

export interface Route<S extends z.ZodTypeAny = z.ZodTypeAny> {
  readonly schema: S;
  readonly handle: (body: z.infer<S>, context: CallContext) => Promise<Reply> | Reply;
  /**
   * Its body is kept on disk while it is under way, so that dockerd's empty repeat of it after
   * a kill can be answered (unanswered-calls.ts). For the calls that change something and take
   * long enough to be caught by a kill; not Create, whose options may hold a password. Not Get or
   * Path: they answer from memory at once, a file per call doubled Get's latency (npm run bench),
   * and the kill has to land in the moment that file itself takes.
   */
  readonly kept?: boolean;
  /**
   * Undoes a call that succeeded after its caller hung up: the caller counts it as failed
   * and will never send the call that would undo it. Resolves to what was undone, for the
   * log. Only for calls whose effect outlives them: Create and Remove need none, they are
   * idempotent, and a caller that saw them fail makes them again.
   */
  readonly abandoned?: (body: z.infer<S>, result: Reply) => Promise<string>;
}

const route = <S extends z.ZodTypeAny>(
  schema: S,
  handle: Route<S>['handle'],
  abandoned?: Route<S>['abandoned'],
): Route => ({ schema, handle, ...(abandoned ? { abandoned } : {}) }) as Route;
const kept = (r: Route): Route => ({ ...r, kept: true });

/** The whole plugin protocol on one screen: path → body schema → driver call → reply. */
export function routeTable(driver: VolumeDriver): Record<string, Route> {
  return {
    '/Plugin.Activate': route(emptyRequest, async () => {
      await driver.activated();
      return { Implements: ['VolumeDriver'] };
    }),
    '/VolumeDriver.Capabilities': route(emptyRequest, () => ({ Capabilities: { Scope: 'local' } })),
    '/VolumeDriver.Create': route(createRequest, async (body) => {
      await driver.create(body.Name, body.Opts);
      return { Err: '' };
    }),
    // Remove and Unmount are idempotent: a repeat of one the killed process finished does nothing.
    '/VolumeDriver.Remove': kept(
      route(nameRequest, async (body) => {
        await driver.remove(body.Name);
        return { Err: '' };
      }),
    ),
    // dockerd never unmounts a Mount it saw fail, so an unanswered one would hold its share for good.
    '/VolumeDriver.Mount': kept(
      route(
        mountRequest,
        async (body, { repeated }) => ({ Mountpoint: await driver.mount(body.Name, body.ID, { repeated }), Err: '' }),
        async (body) => {
          await driver.unmount(body.Name, body.ID);
          return `released mount ID ${body.ID} of volume '${body.Name}' again`;
        },
      ),
    ),
    '/VolumeDriver.Unmount': kept(
      route(mountRequest, async (body) => {
        await driver.unmount(body.Name, body.ID);
        return { Err: '' };
      }),
    ),
    '/VolumeDriver.Path': route(nameRequest, (body) => ({ Mountpoint: driver.pathOf(body.Name), Err: '' })),
    '/VolumeDriver.Get': route(nameRequest, (body) => ({ Volume: driver.get(body.Name), Err: '' })),
    '/VolumeDriver.List': route(emptyRequest, () => new PreSerialized(driver.listReply())),
  };
}
