import { z } from 'zod';
import { ValidationError } from '../errors.js';

/**
 * Mount option strings users may pass through (nfsopts, cifsopts, daemon -o). They go to
 * `mount -o` as one argv element, so there is no shell to escape; the allow-list keeps out
 * whitespace and control characters that would corrupt the option list or the logs.
 */
export const MOUNT_OPTIONS = /^[A-Za-z0-9_.,=:/+@%-]*$/;

export const mountOptionsString = (key: string) =>
  z.string().regex(MOUNT_OPTIONS, {
    message: `${key} may only contain letters, digits and _ . , = : / + @ % -`,
  });

/** Names the daemon-wide option list in messages, as opposed to a volume's nfsopts/cifsopts. */
export const DAEMON_OPTIONS = "the daemon's -o";

/** Mount option keys netvol will not pass on, and a reason that says what to do instead. */
export interface RefusedOptions {
  readonly keys: readonly string[];
  readonly reason: string;
}

/**
 * Throws for the first option whose key is refused. Keys match exactly, as mount.nfs,
 * mount.cifs and the kernel match them: `IP=` is not `ip=` to any of them.
 */
export function refuseOptions(options: readonly string[], refused: readonly RefusedOptions[], source: string): void {
  for (const option of options) {
    const key = option.split('=')[0] ?? '';
    const rule = refused.find((candidate) => candidate.keys.includes(key));
    if (rule) throw new ValidationError(`${source} may not set '${key}': ${rule.reason}`);
  }
}

export const booleanString = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no', ''])])
  .transform((value) => value === true || value === 'true' || value === '1' || value === 'yes');

/**
 * Validates raw `-o` options against a strict schema. Unknown keys get one message naming
 * every accepted key, so a typo is fixed on the first try.
 */
export function parseVolumeOptions<T extends z.ZodRawShape>(
  schema: z.ZodObject<T>,
  raw: Record<string, string>,
  protocol: string,
  aliases: readonly string[] = [],
): z.infer<z.ZodObject<T>> {
  const known = [...Object.keys(schema.shape), ...aliases];
  const unknown = Object.keys(raw).filter((key) => !known.includes(key));
  if (unknown.length > 0) {
    throw new ValidationError(
      `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} for ${protocol} volumes; accepted options: ${known.join(', ')}`,
    );
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const key = issue?.path.join('.') ?? '';
    throw new ValidationError(`invalid option ${key ? `'${key}'` : ''}: ${issue?.message ?? 'invalid value'}`);
  }
  return result.data;
}
