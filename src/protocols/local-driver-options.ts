import { ValidationError } from '../errors.js';
import { joinOptions } from './mount-plan.js';

/**
 * Docker's own `local` driver takes an NFS or CIFS mount as `type`, `o` and `device`
 * (`-o type=nfs -o o=addr=10.0.0.5,rw,nfsvers=4 -o device=:/exports/pg`). Users moving from
 * it keep their commands: this folds those keys into netvol's own (share, nfsopts/cifsopts,
 * version, username, password, domain). Pure; a key given both ways is an error naming both.
 */
export function foldLocalDriverOptions(protocol: 'nfs' | 'cifs', options: Readonly<Record<string, string>>): Record<string, string> {
  const { type, o, device, ...rest } = options;
  if (type === undefined && o === undefined && device === undefined) return { ...options };
  const folded: Record<string, string> = { ...rest };
  const set = (key: string, value: string, from: string) => {
    if (folded[key] !== undefined && folded[key] !== value) {
      throw new ValidationError(`option '${key}' and the local driver's ${from} both set ${key === 'share' ? 'the share' : key}; give it one way only`);
    }
    folded[key] = value;
  };
  if (type !== undefined) checkType(protocol, type, set);
  const mountOptions = joinOptions(o);
  const addr = mountOptions.find((option) => option.startsWith('addr='))?.slice('addr='.length);
  const others = mountOptions.filter((option) => !option.startsWith('addr='));
  if (device !== undefined || addr !== undefined) {
    if (rest['share'] !== undefined) {
      throw new ValidationError("option 'share' and the local driver's device/o=addr= both name the share; give it one way only");
    }
    folded['share'] = protocol === 'nfs' ? nfsShare(device, addr) : cifsShare(device, addr);
  }
  if (protocol === 'cifs') {
    const kept: string[] = [];
    for (const option of others) {
      const [key = '', ...value] = option.split('=');
      const credential = { username: 'username', user: 'username', password: 'password', pass: 'password', domain: 'domain', dom: 'domain', workgroup: 'domain' }[key];
      if (credential !== undefined) set(credential, value.join('='), `o=${key}=`);
      else kept.push(option);
    }
    if (kept.length > 0) set('cifsopts', kept.join(','), 'o');
  } else if (others.length > 0) {
    set('nfsopts', others.join(','), 'o');
  }
  return folded;
}

function checkType(protocol: 'nfs' | 'cifs', type: string, set: (key: string, value: string, from: string) => void): void {
  const nfs = ['nfs', 'nfs4'];
  const cifs = ['cifs', 'smb3'];
  if (protocol === 'nfs' && nfs.includes(type)) {
    if (type === 'nfs4') set('version', '4', 'type=nfs4');
    return;
  }
  if (protocol === 'cifs' && cifs.includes(type)) return;
  const other = nfs.includes(type) ? 'nfs' : cifs.includes(type) ? 'cifs' : undefined;
  throw new ValidationError(
    other !== undefined
      ? `type=${type} is a ${other} share and this is the ${protocol} driver: create it with -d ${other} (the netvol ${other} daemon)`
      : `type=${type} is not a share type netvol mounts; use type=${protocol === 'nfs' ? 'nfs or nfs4' : 'cifs'}`,
  );
}

/** device `:/path` or `host:/path`, the host possibly from o=addr=. */
function nfsShare(device: string | undefined, addr: string | undefined): string {
  if (device === undefined) throw new ValidationError("the local driver's o=addr= needs device=:/path (the exported path) too");
  const colon = device.lastIndexOf(':/');
  const hostInDevice = colon > 0 ? device.slice(0, colon) : '';
  const path = colon >= 0 ? device.slice(colon + 1) : device;
  if (!path.startsWith('/')) throw new ValidationError(`device '${device}' is not an NFS export like :/exports/pg or 10.0.0.5:/exports/pg`);
  const host = addr ?? hostInDevice;
  if (host === '') throw new ValidationError(`device '${device}' names no server: add o=addr=<server> or write device=<server>:/path`);
  if (addr !== undefined && hostInDevice !== '' && hostInDevice !== addr) {
    throw new ValidationError(`device '${device}' names server ${hostInDevice} but o=addr= says ${addr}; give the server once`);
  }
  return `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${path}`;
}

/** device `//host/share[/sub]`; o=addr= replaces the host (it is the address mount.cifs would use). */
function cifsShare(device: string | undefined, addr: string | undefined): string {
  if (device === undefined) throw new ValidationError("the local driver's o=addr= needs device=//server/share too");
  const match = /^(?:\/\/|\\\\)([^/\\]+)[/\\](.+)$/.exec(device);
  if (!match) throw new ValidationError(`device '${device}' is not a CIFS share like //fileserver/docs`);
  const host = addr ?? match[1] ?? '';
  return `//${host}/${(match[2] ?? '').replace(/\\/g, '/')}`;
}
