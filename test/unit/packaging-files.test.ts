import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
    const nfs = run({ PROTOCOL: 'nfs', NFS_VERSION: '3', MOUNT_OPTIONS: 'nolock', VERBOSE: 'true', EARLY_SOCKET: 'false' });
    expect(nfs.stdout.trim()).toBe(
      '--max-semi-space-size=1 --optimize-for-size /opt/netvol/dist/cli.js nfs --socket /run/docker/plugins/netvol.sock --state-dir /var/lib/netvol --basedir /var/lib/docker-volumes/netshare --mount-timeout 20 --no-activate -v 3 -o nolock --verbose',
    );
    // EARLY_SOCKET (the default, as dockerd sets it from the config): the relay holds dockerd's
    // socket, netvol serves one of the same name beside it.
    expect(config.Env).toContainEqual(expect.objectContaining({ Name: 'EARLY_SOCKET', Value: 'true' }));
    const early = run({ EARLY_SOCKET: 'true' });
    expect(run({}).stdout).toContain('--import /opt/netvol/socket-early.mjs');
    expect(early.stdout.trim()).toBe(
      '--max-semi-space-size=1 --optimize-for-size --import /opt/netvol/socket-early.mjs /opt/netvol/dist/cli.js nfs --socket /run/netvol.sock --state-dir /var/lib/netvol --basedir /var/lib/docker-volumes/netshare --mount-timeout 20 --no-activate -v 4',
    );
    const efs = run({ PROTOCOL: 'efs', EFS_REGION: 'eu-west-1', EARLY_SOCKET: 'false' });
    expect(efs.stdout).toContain('efs --socket /run/docker/plugins/netvol.sock');
    expect(efs.stdout).toContain('--region eu-west-1');
  });

  it('reaps orphaned mount helpers as the plugin PID 1, and passes on the stop signal', (context) => {
    const dir = mkdtempSync(join(tmpdir(), 'netvol-pid1-'));
    // Stands in for node, which like it never waits for processes it did not start: it leaves
    // an orphan that exits (as a forked mount helper does), then counts the zombies in its
    // PID namespace, and exits on SIGTERM.
    const fakeNode = join(dir, 'node');
    writeFileSync(
      fakeNode,
      [
        '#!/usr/bin/env python3',
        'import os, signal, sys, time',
        `out = ${JSON.stringify(dir)}`,
        'def stop(*_):',
        '    open(out + "/signal", "w").write("stopped")',
        '    sys.exit(0)',
        'signal.signal(signal.SIGTERM, stop)',
        'pid = os.fork()',
        'if pid == 0:',
        '    if os.fork() == 0:',
        '        time.sleep(0.2)',
        '    os._exit(0)',
        'os.waitpid(pid, 0)',
        'time.sleep(1)',
        'states = []',
        'for p in os.listdir("/proc"):',
        '    if p.isdigit():',
        '        try: states.append(open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[0])',
        '        except OSError: pass',
        'open(out + "/zombies", "w").write(str(states.count("Z")))',
        'os.kill(1, signal.SIGTERM)',
        'time.sleep(5)',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const script = join(REPO, 'packaging/plugin/netvol-plugin');
    const run = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'sh', script], {
      env: { PATH: process.env['PATH'] ?? '', NODE: fakeNode },
      encoding: 'utf8',
      timeout: 20_000,
    });
    if (run.error || /unshare failed|Operation not permitted/.test(run.stderr)) {
      rmSync(dir, { recursive: true, force: true });
      context.skip();
    }
    expect(readFileSync(join(dir, 'zombies'), 'utf8').trim()).toBe('0');
    expect(readFileSync(join(dir, 'signal'), 'utf8').trim()).toBe('stopped');
    expect(run.status).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  });
});
