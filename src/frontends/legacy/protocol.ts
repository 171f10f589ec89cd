import { z } from 'zod';

/**
 * Request bodies as dockerd sends them (moby pkg/plugins, daemon/volume/drivers/proxy.go).
 * Unknown fields are ignored so a newer dockerd keeps working; the fields we use are strict.
 */
const name = z.string({ required_error: 'Name is required', invalid_type_error: 'Name must be a string' });
const mountId = z
  .string({ required_error: 'ID is required', invalid_type_error: 'ID must be a string' })
  .min(1, 'ID is empty')
  .max(256, 'ID is longer than 256 characters')
  // eslint-disable-next-line no-control-regex
  .regex(/^[^\x00-\x1f\x7f]*$/, 'ID contains a control character');

export const createRequest = z.object({
  Name: name,
  Opts: z
    .record(z.string({ invalid_type_error: 'every option value must be a string' }))
    .nullish()
    .transform((opts) => opts ?? {}),
});
export const nameRequest = z.object({ Name: name });
export const mountRequest = z.object({ Name: name, ID: mountId });
export const emptyRequest = z.unknown();

export type CreateRequest = z.infer<typeof createRequest>;
export type NameRequest = z.infer<typeof nameRequest>;
export type MountRequest = z.infer<typeof mountRequest>;

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1+json';
