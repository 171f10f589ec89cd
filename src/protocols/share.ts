import { isIPv6 } from 'node:net';
import { ValidationError } from '../errors.js';

/**
 * A server address as it may appear in a mount source. It must never look like an option
 * ("-o..."), contain a comma (it may end up inside -o addr=) or whitespace.
 */
const HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
// Scope ids are interface names (br-lan, eth0.100). mount.nfs copies them into addr=, so
// the characters that could end or extend that option (',', '=') stay out.
const IPV6 = /^\[([0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)\]$/;
const BARE_IPV6 = /^[0-9A-Fa-f]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[^/]*)?$/;

/** An IPv6 address typed without brackets, like `fd00::1` or `fe80::1%eth0`: two colons or more. */
export function looksLikeBareIpv6(text: string): boolean {
  return !text.startsWith('[') && /:.*:/.test(text);
}

export function checkHost(host: string, share: string): string {
  const inner = IPV6.exec(host)?.[1];
  if ((inner !== undefined && isIPv6(inner)) || HOST_NAME.test(host)) return host;
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
 * Splits `host:path`, `host/path`, `[v6]:path`, `[v6]/path` or a lone server (path undefined).
 * The host is not checked yet.
 */
export function splitHostPath(share: string): { host: string; path: string | undefined } {
  const trimmed = share.trim();
  if (trimmed.startsWith('[')) {
    const close = trimmed.indexOf(']');
    if (close < 0) throw new ValidationError(`share '${share}' has an unclosed '[' in its IPv6 address`);
    const host = trimmed.slice(0, close + 1);
    const rest = trimmed.slice(close + 1);
    if (rest === '') return { host, path: undefined };
    if (rest.startsWith(':')) return { host, path: rest.slice(1) };
    if (rest.startsWith('/')) return { host, path: rest };
    // mount.nfs refuses `[fd00::1]x/y` ("not in 'host:dir' format"); guessing a path would hide the typo.
    throw new ValidationError(
      `share '${share}' has '${rest}' right after the bracketed IPv6 address: write the path after a colon, like [fd00::1]:/export`,
    );
  }
  if (BARE_IPV6.test(trimmed.split('/')[0] ?? '')) {
    throw new ValidationError(`share '${share}': write IPv6 servers in brackets, like [fd00::1]:/export`);
  }
  const colon = trimmed.indexOf(':');
  const slash = trimmed.indexOf('/');
  const cut = colon >= 0 && (slash < 0 || colon < slash) ? colon : slash;
  if (cut < 0) return { host: trimmed, path: undefined };
  return { host: trimmed.slice(0, cut), path: trimmed.slice(cut + (trimmed[cut] === ':' ? 1 : 0)) };
}

/**
 * Parses the NFS forms users type: `host:/path`, `host/path` (netshare's ad-hoc form, where
 * the first segment is the host), `[fd00::1]:/path`.
 */
export function parseHostPath(share: string): HostPath {
  if (share.trim() === '') throw new ValidationError('share is empty: give it as host:/path');
  const { host, path } = splitHostPath(share);
  if (host === '' || path === undefined) throw new ValidationError(`share '${share}' has no path: give it as host:/path`);
  return { host: checkHost(host, share), path: normaliseRemotePath(path, share) };
}
