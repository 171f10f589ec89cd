import type { z } from 'zod';
import type { VolumeDriver } from '../driver/volume-driver.js';
import { createRequest, emptyRequest, mountRequest, nameRequest } from './protocol.js';

/** A reply already serialised and encoded (List of many volumes is cached as bytes). */
export class PreSerialized {
  constructor(readonly bytes: Buffer) {}
}

export interface Route<S extends z.ZodTypeAny = z.ZodTypeAny> {
  readonly schema: S;
  readonly handle: (body: z.infer<S>) => Promise<object | PreSerialized> | object | PreSerialized;
}

const route = <S extends z.ZodTypeAny>(
  schema: S,
  handle: (body: z.infer<S>) => Promise<object | PreSerialized> | object | PreSerialized,
): Route =>
  ({ schema, handle }) as Route;

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
    '/VolumeDriver.Remove': route(nameRequest, async (body) => {
      await driver.remove(body.Name);
      return { Err: '' };
    }),
    '/VolumeDriver.Mount': route(mountRequest, async (body) => ({
      Mountpoint: await driver.mount(body.Name, body.ID),
      Err: '',
    })),
    '/VolumeDriver.Unmount': route(mountRequest, async (body) => {
      await driver.unmount(body.Name, body.ID);
      return { Err: '' };
    }),
    '/VolumeDriver.Path': route(nameRequest, (body) => ({ Mountpoint: driver.pathOf(body.Name), Err: '' })),
    '/VolumeDriver.Get': route(nameRequest, (body) => ({ Volume: driver.get(body.Name), Err: '' })),
    '/VolumeDriver.List': route(emptyRequest, () => new PreSerialized(driver.listReply())),
  };
}
