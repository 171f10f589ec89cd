import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnDaemon, stopDaemon, waitFor, type DaemonProcess } from '../support/daemon-process.js';
import { tempDir } from '../support/fakes.js';

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
function makeCertificates(dir: string): void {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=netvol-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
  for (const [name, extra] of [['server', 'subjectAltName=IP:127.0.0.1'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    execFileSync('sh', ['-c', `printf '%s\\n' '${extra}' > ${name}.ext`], { cwd: dir });
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  }
}

function httpsList(port: number, dir: string, withClientCert: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/VolumeDriver.List',
        method: 'POST',
        ca: readFileSync(join(dir, 'ca.pem')),
        ...(withClientCert ? { cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) } : {}),
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end('{}\n');
  });
}

const portOf = (daemon: DaemonProcess) => Number(/"address":"[^"]*:(\d+)"/.exec(daemon.output())?.[1]);

describe('TCP mode', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  const started: DaemonProcess[] = [];
  const start = async (extra: string[]) => {
    const daemon = spawnDaemon(['nfs', '--state-dir', join(dir.path, 'state'), '--basedir', join(dir.path, 'base'), '--spec-dir', join(dir.path, 'plugins'), '--no-activate', '--tcp', ...extra], { NETSHARE_SOCKET_NAME: 'tcptest' });
    started.push(daemon);
    await waitFor(() => daemon.output().includes('Listening on TCP'), 15_000, `TCP listener\n${daemon.output()}`);
    return daemon;
  };

  beforeAll(async () => {
    dir = await tempDir('netvol-tcp-');
    makeCertificates(dir.path);
  });
  afterAll(async () => {
    for (const daemon of started) await stopDaemon(daemon);
    await dir.cleanup();
  });

  it('binds loopback for a bare :PORT and writes a .spec file', async () => {
    const daemon = await start(['--port', ':0']);
    expect(readFileSync(join(dir.path, 'plugins', 'tcptest.spec'), 'utf8')).toBe(`tcp://127.0.0.1:${portOf(daemon)}\n`);
    await stopDaemon(daemon);
  });

  it('serves mutual TLS and describes it to dockerd in a .json spec', async () => {
    const p = (name: string) => join(dir.path, name);
    const daemon = await start([
      '--port', '127.0.0.1:0', '--tls-cert', p('server.pem'), '--tls-key', p('server.key'), '--tls-ca', p('ca.pem'),
      '--tls-client-cert', p('client.pem'), '--tls-client-key', p('client.key'),
    ]);
    const port = portOf(daemon);
    expect(JSON.parse(readFileSync(join(dir.path, 'plugins', 'tcptest.json'), 'utf8'))).toEqual({
      Name: 'tcptest',
      Addr: `https://127.0.0.1:${port}`,
      TLSConfig: { InsecureSkipVerify: false, CAFile: p('ca.pem'), CertFile: p('client.pem'), KeyFile: p('client.key') },
    });
    expect(await httpsList(port, dir.path, true)).toBe(200);
    await expect(httpsList(port, dir.path, false)).rejects.toThrow();
    await stopDaemon(daemon);
  });
});
