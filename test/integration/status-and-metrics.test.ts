import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, FAKE_MOUNT, pluginCall, spawnDaemon, stopDaemon, waitFor, waitForReady, type DaemonProcess } from '../support/daemon-process.js';
import { tempDir } from '../support/fakes.js';

const ID = 'c'.repeat(64);

describe('status and metrics of a live daemon', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let daemon: DaemonProcess;
  let socket: string;
  let metricsUrl: string;

  beforeAll(async () => {
    dir = await tempDir('netvol-status-');
    socket = join(dir.path, 'nfs.sock');
    daemon = spawnDaemon([
      'nfs', '--socket', socket, '--state-dir', join(dir.path, 'state'), '--basedir', join(dir.path, 'base'),
      '--mount-command', FAKE_MOUNT, '--metrics', '127.0.0.1:0', '--no-activate',
    ]);
    await waitForReady(daemon);
    await waitFor(() => /Serving Prometheus metrics/.test(daemon.output()), 5000, 'metrics server');
    const port = /"port":(\d+)/.exec(daemon.output().split('\n').find((l) => l.includes('Serving Prometheus')) ?? '')?.[1];
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    await pluginCall(socket, '/VolumeDriver.Create', { Name: 'pgdata', Opts: { share: '10.0.0.5:/exports/pg' } });
    await pluginCall(socket, '/VolumeDriver.Create', { Name: 'broken', Opts: { share: 'refused.example:/x' } });
    await pluginCall(socket, '/VolumeDriver.Mount', { Name: 'pgdata', ID });
    await pluginCall(socket, '/VolumeDriver.Mount', { Name: 'broken', ID });
  });

  afterAll(async () => {
    await pluginCall(socket, '/VolumeDriver.Unmount', { Name: 'pgdata', ID });
    await stopDaemon(daemon);
    await dir.cleanup();
  });

  it('netvol status prints each volume with mount state and last error', () => {
    const result = spawnSync(process.execPath, [CLI, 'status', '--socket', socket], { encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^driver {5}nfs \(nfs\), netvol \d+\.\d+\.\d+, pid \d+$/m);
    expect(result.stdout).toMatch(/^pgdata +10\.0\.0\.5:\/exports\/pg +yes +1 /m);
    expect(result.stdout).toMatch(/^broken +refused\.example:\/x +no +0 +- +- +mounting refused\.example:\/x .*Connection refused/m);
  });

  it('netvol status --json gives the same as data', () => {
    const result = spawnSync(process.execPath, [CLI, 'status', '--socket', socket, '--json'], { encoding: 'utf8' });
    const parsed = JSON.parse(result.stdout) as { daemons: Array<{ volumes: Array<{ name: string; mounts: number }> }> };
    expect(parsed.daemons[0]?.volumes.map((v) => [v.name, v.mounts])).toEqual([['pgdata', 1], ['broken', 0]]);
  });

  it('netvol status exits 1 and says what to check when the daemon is not there', () => {
    const result = spawnSync(process.execPath, [CLI, 'status', '--socket', join(dir.path, 'none.sock')], { encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain('no such socket (is the daemon running?)');
  });

  it('serves Prometheus metrics for calls, mounts and volumes', async () => {
    const text = await (await fetch(metricsUrl)).text();
    expect(text).toContain('netvol_calls_total{endpoint="/VolumeDriver.Create",outcome="ok"} 2');
    expect(text).toContain('netvol_calls_total{endpoint="/VolumeDriver.Mount",outcome="error"} 1');
    expect(text).toContain('netvol_mounts_total{protocol="nfs",outcome="ok"} 1');
    expect(text).toContain('netvol_mounts_total{protocol="nfs",outcome="error"} 1');
    expect(text).toMatch(/^netvol_volumes 2$/m);
    expect(text).toMatch(/^netvol_volumes_mounted 1$/m);
    expect(text).toMatch(/^netvol_call_duration_seconds_bucket\{le="0.005",endpoint="\/VolumeDriver.Mount"\}/m);
  });

  it('answers health on the plugin socket', async () => {
    const { request } = await import('node:http');
    const body = await new Promise<string>((resolve, reject) => {
      request({ socketPath: socket, path: '/netvol/health' }, (res) => {
        let text = '';
        res.on('data', (c) => (text += String(c)));
        res.on('end', () => resolve(text));
      }).on('error', reject).end();
    });
    expect(JSON.parse(body)).toEqual({ ready: true, driver: 'nfs', volumes: 2 });
  });
});
