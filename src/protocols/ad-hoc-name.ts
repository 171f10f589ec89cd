import { ValidationError } from '../errors.js';
import { booleanString } from './options.js';

/**
 * Netshare's ad-hoc names: the volume name is the share (`host/path`, `host/path/`), and
 * `host/path#sub` means "subdirectory `sub` of that share, created if missing".
 */
export interface ShareSource {
  readonly share: string;
  readonly subdirectory?: string | undefined;
}

export function shareSource(
  name: string,
  options: Readonly<Record<string, string>>,
  acceptsBareName: (name: string) => boolean = () => false,
  defaultShare?: string,
): ShareSource {
  const create = options['create'] !== undefined && booleanString.parse(options['create']);
  const hash = name.indexOf('#');
  if (options['share'] !== undefined && options['share'] !== '') {
    return { share: options['share'], subdirectory: create ? subdirectoryName(name.slice(hash + 1)) : undefined };
  }
  const base = hash >= 0 ? name.slice(0, hash) : name;
  // A plain name under a daemon with --share is the directory of that name under it.
  if (defaultShare !== undefined && defaultShare !== '' && !base.includes('/') && hash < 0) {
    return { share: defaultShare, subdirectory: subdirectoryName(name.endsWith('/') ? name.slice(0, -1) : name) };
  }
  if (!base.includes('/') && !acceptsBareName(base)) {
    throw new ValidationError(
      `volume '${name}' has no share: create it with -o share=<server>:/<path>, or use the share as the volume name, like 192.168.1.10/exports/data`,
    );
  }
  if (hash >= 0) return { share: base, subdirectory: subdirectoryName(name.slice(hash + 1)) };
  return { share: base, subdirectory: create ? subdirectoryName(base.split('/').filter(Boolean).pop() ?? '') : undefined };
}

function subdirectoryName(candidate: string): string {
  const name = candidate.includes('/') ? candidate.split('/').filter(Boolean).pop() ?? '' : candidate;
  if (name === '' || name === '.' || name === '..' || name.includes('#')) {
    throw new ValidationError(`'${candidate}' cannot be used as the subdirectory made by create=true`);
  }
  return name;
}
