import { resolve, sep } from 'node:path';
import { ValidationError } from '../errors.js';

export const MAX_NAME_LENGTH = 1024;
const MAX_SEGMENT_LENGTH = 255;

/**
 * Volume names become directories under the base directory, so anything that could leave
 * it, or confuse the mount table or the logs, is refused: absolute names, `.`/`..` or empty
 * segments, control characters (NUL, newline...), over-long names.
 * A single trailing slash is allowed: netshare users write `host/path/`.
 */
export function checkVolumeName(name: string): void {
  if (name === '') throw new ValidationError('volume name is empty');
  if (name.length > MAX_NAME_LENGTH) {
    throw new ValidationError(`volume name is ${name.length} characters long; the limit is ${MAX_NAME_LENGTH}`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) {
    throw new ValidationError(`volume name ${JSON.stringify(name)} contains a control character (NUL, newline, tab...)`);
  }
  if (!(name as string & { isWellFormed(): boolean }).isWellFormed()) {
    // A lone surrogate reaches the filesystem and the mount table as U+FFFD: two names, one path.
    throw new ValidationError(`volume name ${JSON.stringify(name)} is not well-formed Unicode`);
  }
  if (name === '__proto__') throw new ValidationError("volume name '__proto__' is reserved");
  if (name.startsWith('/')) {
    throw new ValidationError(`volume name '${name}' is absolute: write a share as host/path, without a leading '/'`);
  }
  const segments = (name.endsWith('/') ? name.slice(0, -1) : name).split('/');
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new ValidationError(`volume name '${name}' has an empty, '.' or '..' path segment`);
    }
    if (Buffer.byteLength(segment) > MAX_SEGMENT_LENGTH) {
      throw new ValidationError(`volume name '${name}' has a path segment longer than ${MAX_SEGMENT_LENGTH} bytes`);
    }
  }
}

/**
 * Where a volume is mounted: `<root>/<name>` (netshare's layout, nested for names with
 * `/`), checked to lie strictly inside root whatever the name.
 */
export function mountpointFor(root: string, name: string): string {
  checkVolumeName(name);
  const base = resolve(root);
  const target = resolve(base, name.endsWith('/') ? name.slice(0, -1) : name);
  if (!target.startsWith(base + sep)) {
    throw new ValidationError(`volume name '${name}' would be mounted outside ${base}`);
  }
  return target;
}
