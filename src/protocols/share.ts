import { ValidationError } from '../errors.js';

/**
 * A server address as it may appear in a mount source. It must never look like an option
 * ("-o..."), contain a comma (it may end up inside -o addr=) or whitespace.
 */
const HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const IPV6 = /^\[[0-9A-Fa-f:.]+(?:%[A-Za-z0-9]+)?\]$/;
const BARE_IPV6 = /^[0-9A-Fa-f]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;

export function checkHost(host: string, share: string): string {
  if (IPV6.test(host) || HOST_NAME.test(host)) return host;
  throw new ValidationError(
    `share '${share}' has an invalid server '${host}': use a host name, an IPv4 address or a bracketed IPv6 address like [fd00::1]`,
  );
}

/** Server-side path: absolute, normalised, free of control characters. */
export function normaliseRemotePath(path: string, share: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(path)) throw new ValidationError(`share '${share}' contains a control character`);
  const segments = path.split('/').filter((segment) => segment !== '' && segment !== '.');
  return `/${segments.join('/')}`;
}

export interface HostPath {
  readonly host: string;
  readonly path: string;
}

/**
 * Parses the NFS forms users type: `host:/path`, `host/path` (netshare's ad-hoc form, where
 * the first segment is the host), `[fd00::1]:/path`.
 */
export function parseHostPath(share: string): HostPath {
  const trimmed = share.trim();
  if (trimmed === '') throw new ValidationError('share is empty: give it as host:/path');
  let host: string;
  let path: string;
  if (trimmed.startsWith('[')) {
    const close = trimmed.indexOf(']');
    if (close < 0) throw new ValidationError(`share '${share}' has an unclosed '[' in its IPv6 address`);
    host = trimmed.slice(0, close + 1);
    path = trimmed.slice(close + 1).replace(/^:/, '');
  } else if (BARE_IPV6.test(trimmed.split('/')[0] ?? '')) {
    throw new ValidationError(`share '${share}': write IPv6 servers in brackets, like [fd00::1]:/export`);
  } else {
    const colon = trimmed.indexOf(':');
    const slash = trimmed.indexOf('/');
    const cut = colon >= 0 && (slash < 0 || colon < slash) ? colon : slash;
    if (cut <= 0) throw new ValidationError(`share '${share}' has no path: give it as host:/path`);
    host = trimmed.slice(0, cut);
    path = trimmed.slice(cut + (trimmed[cut] === ':' ? 1 : 0));
  }
  return { host: checkHost(host, share), path: normaliseRemotePath(path, share) };
}
