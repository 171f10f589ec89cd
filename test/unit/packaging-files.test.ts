import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');

describe('managed plugin config', () => {
  const config = JSON.parse(readFileSync(join(REPO, 'plugin-config.json'), 'utf8'));

  it('declares a volume driver on a socket, with what mount(8) needs', () => {
    expect(config.Interface).toEqual({ Socket: 'netvol.sock', Types: ['docker.volumedriver/1.0'] });
    expect(config.Network).toEqual({ Type: 'host' });
    expect(config.Linux.Capabilities).toContain('CAP_SYS_ADMIN');
    expect(config.PropagatedMount).toBe('/var/lib/docker-volumes/netshare');
  });

  it('keeps state on the host and lets users set the protocol and its defaults', () => {
    expect(config.Mounts).toContainEqual(expect.objectContaining({ Destination: '/var/lib/netvol', Type: 'bind' }));
    const settable = config.Env.filter((e: { Settable?: string[] }) => e.Settable?.includes('value')).map((e: { Name: string }) => e.Name);
    expect(settable).toEqual(expect.arrayContaining(['PROTOCOL', 'NFS_VERSION', 'MOUNT_OPTIONS', 'VERBOSE']));
  });

  it('maps the settings to netvol flags in its entry point', () => {
    const script = join(REPO, 'packaging/plugin/netvol-plugin');
    // Run the entry point with NODE=echo, to read the command it would exec.
    const run = (env: Record<string, string>) =>
      spawnSync('sh', [script], { env: { PATH: process.env['PATH'] ?? '', NODE: 'echo', ...env }, encoding: 'utf8' });
    const nfs = run({ PROTOCOL: 'nfs', NFS_VERSION: '3', MOUNT_OPTIONS: 'nolock', VERBOSE: 'true' });
    expect(nfs.stdout.trim()).toBe(
      '--max-semi-space-size=1 --optimize-for-size /opt/netvol/dist/cli.js nfs --socket /run/docker/plugins/netvol.sock --state-dir /var/lib/netvol --basedir /var/lib/docker-volumes/netshare --mount-timeout 20 --no-activate -v 3 -o nolock --verbose',
    );
    const efs = run({ PROTOCOL: 'efs', EFS_REGION: 'eu-west-1' });
    expect(efs.stdout).toContain('efs --socket /run/docker/plugins/netvol.sock');
    expect(efs.stdout).toContain('--region eu-west-1');
  });
});
