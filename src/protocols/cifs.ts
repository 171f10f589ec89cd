import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { booleanString, DAEMON_OPTIONS, mountOptionsString, parseVolumeOptions, refuseOptions, type RefusedOptions } from './options.js';
import { joinOptions, type Credentials, type MountPlan } from './mount-plan.js';
import { checkHost, looksLikeBareIpv6 } from './share.js';
import { shareSource } from './ad-hoc-name.js';
import type { NetrcEntry } from './netrc.js';
import type { CheckedVolume, ProtocolHandler, VolumeSpec } from './protocol.js';
import { checkProvisioningNeedsDirectory, provisioningField, provisioningOf, provisioningOptions, type Provisioning } from './provisioning.js';
import { foldLocalDriverOptions } from './local-driver-options.js';

// Credentials go to a line-based file: a newline would let a value add its own lines.
const credentialText = (key: string) =>
  // eslint-disable-next-line no-control-regex
  z.string().regex(/^[^\x00-\x1f\x7f]*$/, { message: `${key} may not contain control characters or newlines` });

const FILE_MODE = /^0?[0-7]{3,4}$/;

export const cifsVolumeOptions = z.object({
  share: z.string().optional(),
  create: booleanString.optional(),
  cifsopts: mountOptionsString('cifsopts').optional(),
  username: credentialText('username').optional(),
  password: credentialText('password').optional(),
  domain: credentialText('domain').optional(),
  security: z.string().regex(/^[a-z0-9]+i?$/, { message: 'security must be a cifs sec= value like ntlmssp or krb5' }).optional(),
  fileMode: z.string().regex(FILE_MODE, { message: 'fileMode must be an octal mode like 0644' }).optional(),
  dirMode: z.string().regex(FILE_MODE, { message: 'dirMode must be an octal mode like 0755' }).optional(),
  ...provisioningOptions,
});
/** Docker's local driver's names for the same things: folded into the keys above. */
export const CIFS_LOCAL_DRIVER_KEYS = ['type', 'o', 'device'] as const;
export type CifsVolumeOptions = z.infer<typeof cifsVolumeOptions>;

export interface CifsDaemonOptions {
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly domain?: string | undefined;
  readonly security?: string | undefined;
  readonly fileMode?: string | undefined;
  readonly dirMode?: string | undefined;
  readonly options?: string | undefined;
  /** Directory holding .netrc (netshare's --netrc, default $HOME). */
  readonly netrcDir?: string | undefined;
}

export interface CifsShare {
  readonly host: string;
  /** `share[/sub/dir]`, without leading slash. */
  readonly path: string;
}

/**
 * `host/share[/sub]`, `//host/share`, `host:/share` or `\\host\share`; an IPv6 server as
 * `[fd00::1]/share` or `//fd00::1/share`.
 */
export function parseCifsShare(share: string): CifsShare {
  const slashed = share.trim().replace(/\\/g, '/');
  const unc = slashed.startsWith('//');
  let body = slashed.replace(/^\/\//, '');
  const first = body.split('/')[0] ?? '';
  if (looksLikeBareIpv6(first)) {
    // Outside a UNC, `fd00::1/x` reads as host:share cut at any of its colons.
    if (!unc) {
      throw new ValidationError(
        `share '${share}': write an IPv6 server in brackets or as a UNC path, like [fd00::1]/public or //fd00::1/public`,
      );
    }
    body = `[${first}]${body.slice(first.length)}`;
  }
  // host:/share becomes host/share; a bracketed IPv6 server keeps its colons.
  const cleaned = body.replace(/^(\[[^\]]*\]|[^/:[]+):\/?/, '$1/');
  const segments = cleaned.split('/').filter((segment) => segment !== '' && segment !== '.');
  const [host, ...rest] = segments;
  if (!host || rest.length === 0) {
    throw new ValidationError(`share '${share}' must name a server and a share, like fileserver/public`);
  }
  // eslint-disable-next-line no-control-regex
  if (rest.some((segment) => /[\x00-\x1f\x7f]/.test(segment))) {
    throw new ValidationError(`share '${share}' contains a control character`);
  }
  const checked = checkHost(host, share);
  // A UNC names an IPv6 server without brackets: mount.cifs hands `[fd00::1]` to getaddrinfo,
  // which cannot resolve it, while `fd00::1` (and `fe80::1%eth0`) resolve as they are.
  return { host: checked.startsWith('[') ? checked.slice(1, -1) : checked, path: rest.join('/') };
}

// The credentials file comes first in -o, so a later key overrides what it says. mount.cifs
// passes unc=/target=/path=/source= on to the kernel after its own unc=; the kernel reads the
// share, and the server name a reconnect resolves again, from the last of them (source= with
// the fs_context parser, unc=/target=/path= with the older one).
const REFUSED: readonly RefusedOptions[] = [
  {
    keys: ['username', 'user', 'password', 'pass', 'password2', 'credentials', 'cred'],
    reason: 'use the username and password options (kept out of the command line)',
  },
  {
    keys: ['ip', 'addr', 'unc', 'target', 'path', 'source'],
    reason:
      'it would make mount.cifs connect to another server or share than the share option names, presenting the credentials chosen for that server; name the server and share in the share option instead, like -o share=//fileserver/docs',
  },
  {
    keys: ['dom', 'domain', 'workgroup'],
    reason:
      "set the domain with netvol's domain option instead (docker volume create -o domain=..., or the daemon's --domain): it goes into the credentials file with the username and password",
  },
  {
    // cifs-utils mount_retry: once every address refused or was unreachable, `nofail ? 0 : EX_FAIL`.
    keys: ['nofail'],
    reason:
      'with nofail, mount.cifs exits 0 when it cannot reach the server, before anything is mounted, so netvol would hand out an empty local directory; remove it',
  },
];

/** The daemon's -o, checked once at start so that no volume inherits options that cannot work. */
export function checkCifsDaemonOptions(daemon: CifsDaemonOptions): void {
  refuseOptions(joinOptions(daemon.options), REFUSED, DAEMON_OPTIONS);
}

/** Volume options win, then the .netrc entry for the server, then the daemon's flags. */
export function resolveCifsCredentials(
  volume: CifsVolumeOptions,
  netrc: NetrcEntry | undefined,
  daemon: CifsDaemonOptions,
): Credentials | undefined {
  const source =
    volume.username !== undefined || volume.password !== undefined
      ? { username: volume.username, password: volume.password, domain: volume.domain }
      : netrc?.login !== undefined
        ? { username: netrc.login, password: netrc.password, domain: volume.domain ?? netrc.account }
        : { username: daemon.username, password: daemon.password, domain: volume.domain ?? daemon.domain };
  if (source.username === undefined && source.password === undefined) return undefined;
  return { username: source.username ?? '', password: source.password ?? '', domain: source.domain ?? daemon.domain };
}

export function cifsMountPlan(
  share: CifsShare,
  volume: CifsVolumeOptions,
  daemon: CifsDaemonOptions,
  credentials: Credentials | undefined,
): MountPlan {
  const extra = joinOptions(volume.cifsopts ?? daemon.options);
  refuseOptions(extra, REFUSED, volume.cifsopts !== undefined ? 'cifsopts' : DAEMON_OPTIONS);
  const security = volume.security ?? daemon.security;
  const fileMode = volume.fileMode ?? daemon.fileMode;
  // Without Unix extensions the client decides who owns what it shows: the volume's
  // uid/gid/mode then mean the mount's uid=/gid=/dir_mode=.
  const dirMode = volume.dirMode ?? (volume.mode !== undefined ? `0${volume.mode.replace(/^0/, '')}` : undefined) ?? daemon.dirMode;
  const owner = [...(volume.uid !== undefined ? [`uid=${volume.uid}`] : []), ...(volume.gid !== undefined ? [`gid=${volume.gid}`] : [])];
  for (const option of owner) {
    const key = option.split('=')[0] ?? '';
    if (extra.some((given) => given.split('=')[0] === key)) {
      throw new ValidationError(`${key} is given both as the volume option ${key} and in ${volume.cifsopts !== undefined ? 'cifsopts' : DAEMON_OPTIONS}; give it once`);
    }
  }
  if (volume.mode !== undefined && volume.dirMode !== undefined) {
    throw new ValidationError('mode and dirMode both set the mount\'s dir_mode; give one of them');
  }
  const options = [
    ...(credentials ? [] : ['guest']),
    ...(security ? [`sec=${security}`] : []),
    ...(fileMode ? [`file_mode=${fileMode}`] : []),
    ...(dirMode ? [`dir_mode=${dirMode}`] : []),
    ...owner,
    ...extra,
  ];
  return {
    fsType: 'cifs',
    source: `//${share.host}/${share.path}`,
    options,
    server: share.host,
    ...(credentials ? { credentials } : {}),
  };
}

export function cifsProtocol(
  daemon: CifsDaemonOptions,
  netrc: (dir: string, host: string) => Promise<NetrcEntry | undefined>,
): ProtocolHandler {
  const check = (volume: VolumeSpec) => {
    const raw = foldLocalDriverOptions('cifs', volume.options);
    const options = parseVolumeOptions(cifsVolumeOptions, raw, 'cifs', CIFS_LOCAL_DRIVER_KEYS);
    const source = shareSource(volume.name, raw, undefined, volume.defaultShare);
    const share = parseCifsShare(source.share);
    // Validate the option mix now, so Create fails rather than the first Mount.
    cifsMountPlan(share, options, daemon, undefined);
    const provisioning: Provisioning = provisioningOf(options);
    checkProvisioningNeedsDirectory(provisioning, source.subdirectory, true);
    const checked: CheckedVolume = { share: `//${share.host}/${share.path}`, subdirectory: source.subdirectory, ...provisioningField(provisioning) };
    return { checked, share, options };
  };
  return {
    protocol: 'cifs',
    optionKeys: [...Object.keys(cifsVolumeOptions.shape), ...CIFS_LOCAL_DRIVER_KEYS],
    // The local driver's o= may carry password= too.
    secretKeys: ['password', 'o'],
    check: (volume) => check(volume).checked,
    plan: async (volume) => {
      const { share, options } = check(volume);
      const needsNetrc = options.username === undefined && options.password === undefined && daemon.netrcDir;
      const entry = needsNetrc && daemon.netrcDir ? await netrc(daemon.netrcDir, share.host) : undefined;
      return cifsMountPlan(share, options, daemon, resolveCifsCredentials(options, entry, daemon));
    },
  };
}
