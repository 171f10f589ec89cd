import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');
const UNIT = join(REPO, 'packaging/systemd/netvol@.service');
const INSTALL = join(REPO, 'packaging/systemd/install.sh');

type Ini = Record<string, Record<string, string[]>>;

/** systemd's unit syntax, as much as these files use: sections, repeatable keys, # comments. */
function parseUnit(text: string): Ini {
  const sections: Ini = {};
  let current: Record<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = sections[header[1] ?? ''] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) throw new Error(`not a unit file line: ${line}`);
    (current[line.slice(0, eq).trim()] ??= []).push(line.slice(eq + 1).trim());
  }
  return sections;
}

/** All words of a key, systemd-style: a key may be repeated and hold several space-separated values. */
const words = (values: string[] | undefined) => (values ?? []).flatMap((v) => v.split(/\s+/));

describe('netvol@.socket', () => {
  const socket = parseUnit(readFileSync(join(REPO, 'packaging/systemd/netvol@.socket'), 'utf8'));
  const service = parseUnit(readFileSync(UNIT, 'utf8'));

  it('holds the plugin socket dockerd looks for, before dockerd starts, for the service of its instance', () => {
    expect(socket['Socket']?.['ListenStream']).toEqual(['/run/docker/plugins/%i.sock']);
    expect(socket['Socket']?.['SocketMode']).toEqual(['0660']);
    expect(words(socket['Unit']?.['Before'])).toContain('docker.service');
    expect(socket['Install']).toEqual({ WantedBy: ['sockets.target'] });
    expect(words(service['Unit']?.['Requires'])).toContain('netvol@%i.socket');
    expect(words(service['Unit']?.['After'])).toContain('netvol@%i.socket');
  });
});

describe('netvol@.service', () => {
  const unit = parseUnit(readFileSync(UNIT, 'utf8'));

  it('starts after the network, and before dockerd so it finds the socket when it reloads volumes', () => {
    expect(words(unit['Unit']?.['After'])).toContain('network-online.target');
    expect(words(unit['Unit']?.['Wants'])).toContain('network-online.target');
    expect(words(unit['Unit']?.['Before'])).toContain('docker.service');
  });

  it('counts as started only when netvol says it is ready, and restarts it when it fails', () => {
    const service = unit['Service'] ?? {};
    expect(service['Type']).toEqual(['notify']);
    // systemd-notify is a child of netvol, not its main process.
    expect(service['NotifyAccess']).toEqual(['all']);
    expect(service['Restart']).toEqual(['on-failure']);
  });

  it('runs the instance as the protocol, with optional flags from /etc/default/netvol-<protocol>', () => {
    const service = unit['Service'] ?? {};
    expect(service['ExecStart']).toEqual(['/usr/local/bin/netvol %i $NETVOL_ARGS']);
    expect(service['EnvironmentFile']).toEqual(['-/etc/default/netvol-%i']);
    expect(unit['Install']).toEqual({ WantedBy: ['multi-user.target'], DefaultInstance: ['nfs'] });
  });

  it('keeps the host mount namespace, so dockerd sees the mounts', () => {
    const namespacing = ['PrivateTmp', 'PrivateMounts', 'ProtectSystem', 'ProtectHome', 'MountFlags', 'ReadOnlyPaths', 'InaccessiblePaths', 'TemporaryFileSystem'];
    expect(Object.keys(unit['Service'] ?? {}).filter((key) => namespacing.includes(key))).toEqual([]);
  });
});

describe('packaging/systemd/install.sh', () => {
  let dir: string;
  let root: string;
  let log: string;
  let systemctl: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'netvol-systemd-'));
    root = join(dir, 'root');
    log = join(dir, 'systemctl.log');
    // A fake systemctl that records its arguments, one call a line, and fails on request.
    systemctl = join(dir, 'systemctl');
    writeFileSync(systemctl, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\n[ "$*" != "enable --now $FAIL_UNIT" ]\n`, { mode: 0o755 });
    mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
    writeFileSync(join(root, 'usr/local/bin/netvol'), '#!/bin/sh\n', { mode: 0o755 });
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const install = (args: string[], env: Record<string, string> = {}) =>
    spawnSync('sh', [INSTALL, ...args], {
      env: { PATH: process.env['PATH'] ?? '', DESTDIR: root, SYSTEMCTL: systemctl, FAIL_UNIT: 'none', ...env },
      encoding: 'utf8',
    });
  const calls = () => {
    try {
      return readFileSync(log, 'utf8').trimEnd().split('\n');
    } catch {
      return [];
    }
  };

  it('installs the unit and a 0600 flags file, reloads systemd and enables netvol@nfs by default', () => {
    const run = install([]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(readFileSync(join(root, 'etc/systemd/system/netvol@.service'), 'utf8')).toBe(readFileSync(UNIT, 'utf8'));
    expect(statSync(join(root, 'etc/systemd/system/netvol@.service')).mode & 0o777).toBe(0o644);
    const flags = join(root, 'etc/default/netvol-nfs');
    expect(statSync(flags).mode & 0o777).toBe(0o600);
    expect(readFileSync(flags, 'utf8')).toMatch(/^NETVOL_ARGS=$/m);
    expect(calls()).toEqual(['daemon-reload', 'enable --now netvol@nfs.socket', 'enable --now netvol@nfs.service']);
    expect(run.stdout).toBe('netvol@nfs: started; flags in /etc/default/netvol-nfs\n');
  });

  it('enables one instance per protocol and never replaces flags an admin wrote', () => {
    mkdirSync(join(root, 'etc/default'), { recursive: true });
    writeFileSync(join(root, 'etc/default/netvol-nfs'), 'NETVOL_ARGS=-v 3\n', { mode: 0o640 });
    const run = install(['nfs', 'cifs']);
    expect(run.status).toBe(0);
    expect(readFileSync(join(root, 'etc/default/netvol-nfs'), 'utf8')).toBe('NETVOL_ARGS=-v 3\n');
    expect(readFileSync(join(root, 'etc/default/netvol-cifs'), 'utf8')).toContain('NETSHARE_CIFS_PASSWORD');
    expect(calls()).toEqual([
      'daemon-reload',
      'enable --now netvol@nfs.socket',
      'enable --now netvol@nfs.service',
      'enable --now netvol@cifs.socket',
      'enable --now netvol@cifs.service',
    ]);
  });

  it('reports a unit that did not start and exits non-zero, after trying the others', () => {
    const run = install(['efs', 'nfs'], { FAIL_UNIT: 'netvol@efs.service' });
    expect(run.status).toBe(1);
    expect(run.stderr).toBe('netvol@efs: did not start; see: journalctl -u netvol@efs\n');
    expect(run.stdout).toBe('netvol@nfs: started; flags in /etc/default/netvol-nfs\n');
    expect(calls()).toEqual([
      'daemon-reload',
      'enable --now netvol@efs.socket',
      'enable --now netvol@efs.service',
      'enable --now netvol@nfs.socket',
      'enable --now netvol@nfs.service',
    ]);
  });

  it('refuses an unknown protocol or a missing netvol binary before touching anything', () => {
    const unknown = install(['nfs', 'ceph']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toBe("install.sh: unknown protocol 'ceph' (nfs, cifs or efs)\n");
    chmodSync(join(root, 'usr/local/bin/netvol'), 0o644);
    const missing = install([]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('/usr/local/bin/netvol is missing');
    expect(calls()).toEqual([]);
    expect(() => statSync(join(root, 'etc/systemd/system/netvol@.service'))).toThrow();
  });
});
