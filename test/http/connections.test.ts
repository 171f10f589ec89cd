import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request, type Server } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { createConnection, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { VolumeDriver } from '../../src/core/volume-driver.js';
import { createApp } from '../../src/frontends/legacy/app.js';
import { routeTable } from '../../src/frontends/legacy/routes.js';
import { closeServer, listenOnSocket, listenOnTcp, type SocketServerOptions } from '../../src/frontends/legacy/server.js';
import { memoryLogger, tempDir } from '../support/fakes.js';
import { connect, post, replies, sleep } from './support/raw-socket.js';

const ID = 'f'.repeat(64);
const IDLE_MS = 200;

/** A driver whose Mount takes `mountMs`: the socket carries no bytes meanwhile. */
function slowDriver(mountMs: number) {
  return {
    mount: vi.fn(async (name: string) => {
      await sleep(mountMs);
      return `/mnt/${name}`;
    }),
    unmount: vi.fn(async () => undefined),
  };
}

describe('plugin socket connections', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let path: string;
  let server: Server | undefined;

  beforeEach(async () => {
    dir = await tempDir();
    path = join(dir.path, 'plugin.sock');
  });
  afterEach(async () => {
    if (server?.listening) await closeServer(server, path, { graceMs: 0 });
    server = undefined;
    await dir.cleanup();
  });

  async function serve(mountMs: number, options: Partial<SocketServerOptions> = {}) {
    const driver = slowDriver(mountMs);
    const app = createApp({ routes: routeTable(driver as unknown as VolumeDriver), logger: memoryLogger().logger, secretKeys: [] });
    server = await listenOnSocket(app, { path, idleTimeoutMs: IDLE_MS, ...options });
    return { driver, app, server };
  }

  it('H1: closes a connection that never sends a request after the idle time', async () => {
    await serve(0);
    const client = await connect(path);
    const openMs = await Promise.race([client.closed, sleep(3000).then(() => Infinity)]);
    expect(openMs).toBeGreaterThanOrEqual(IDLE_MS - 20);
    expect(openMs).toBeLessThan(2000);
  });

  it('H1: closes a keep-alive connection left idle after its last reply', async () => {
    await serve(0);
    const client = await connect(path);
    client.socket.write(post('/VolumeDriver.Capabilities', {}));
    const [reply] = await replies(client, 1);
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    // Node adds one second to the advertised keep-alive time before it closes.
    const openMs = await Promise.race([client.closed, sleep(4000).then(() => Infinity)]);
    expect(openMs).toBeLessThan(3000);
  });

  it('H1: never cuts a connection while its call runs, however long past the idle time', async () => {
    const { driver } = await serve(IDLE_MS * 4);
    const client = await connect(path);
    const sent = Date.now();
    client.socket.write(post('/VolumeDriver.Mount', { Name: 'v1', ID }));
    const [reply] = await replies(client, 1);
    expect(Date.now() - sent).toBeGreaterThanOrEqual(IDLE_MS * 4 - 20);
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(reply).toContain('{"Mountpoint":"/mnt/v1","Err":""}');
    expect(driver.unmount).not.toHaveBeenCalled();
    // The idle clock starts again once the reply is out.
    await expect(Promise.race([client.closed, sleep(4000).then(() => Infinity)])).resolves.toBeLessThan(4000);
  });

  it('H1: closes a connection whose request body stops arriving', async () => {
    await serve(0);
    const client = await connect(path);
    client.socket.write('POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin\r\nContent-Length: 100\r\n\r\n{"Name":');
    const openMs = await Promise.race([client.closed, sleep(3000).then(() => Infinity)]);
    expect(openMs).toBeLessThan(2000);
  });

  it('H1: refuses connections beyond maxConnections and serves the others', async () => {
    await serve(0, { maxConnections: 2, idleTimeoutMs: 10_000 });
    const first = await connect(path);
    const second = await connect(path);
    await sleep(50);
    const third = await connect(path);
    await expect(Promise.race([third.closed, sleep(2000).then(() => Infinity)])).resolves.toBeLessThan(2000);
    expect(third.received()).toBe('');
    first.socket.write(post('/VolumeDriver.Capabilities', {}));
    second.socket.write(post('/VolumeDriver.Capabilities', {}));
    expect((await replies(first, 1))[0]).toMatch(/^HTTP\/1\.1 200 /);
    expect((await replies(second, 1))[0]).toMatch(/^HTTP\/1\.1 200 /);
    first.socket.destroy();
    second.socket.destroy();
  });

  it('H1: limits connections and idle time by default', async () => {
    const app = createApp({ routes: {}, logger: memoryLogger().logger, secretKeys: [] });
    server = await listenOnSocket(app, { path });
    expect(server.maxConnections).toBe(512);
    expect(server.timeout).toBe(60_000);
    expect(server.keepAliveTimeout).toBe(60_000);
  });

  it('§7: answers 413 to a chunked body that never ends, and closes the connection', async () => {
    await serve(0, { idleTimeoutMs: 10_000 });
    const started = Date.now();
    const outcome = await new Promise<{ status?: number; body: string; closedMs: number }>((resolve) => {
      let status: number | undefined;
      let body = '';
      const call = request({ socketPath: path, method: 'POST', path: '/VolumeDriver.Create', headers: { 'Transfer-Encoding': 'chunked' } }, (res) => {
        status = res.statusCode;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
      });
      // Writes racing the close are expected; what counts is the reply and the close.
      call.on('error', () => undefined);
      call.on('socket', (socket) => socket.once('close', () => resolve({ status, body, closedMs: Date.now() - started })));
      const chunk = Buffer.alloc(16 * 1024, 'x');
      const feed = () => {
        while (!call.destroyed && call.write(chunk));
        if (!call.destroyed) call.once('drain', feed);
      };
      feed();
      setTimeout(() => call.destroy(), 5000).unref();
    });
    expect(outcome.closedMs).toBeLessThan(3000);
    expect(outcome.status).toBe(413);
    expect(outcome.body).toBe('{"Err":"request body is larger than 65536 bytes"}');
  });

  it('§7: refuses a declared Content-Length over the limit before the body arrives', async () => {
    await serve(0, { idleTimeoutMs: 10_000 });
    const client = await connect(path);
    client.socket.write('POST /VolumeDriver.Create HTTP/1.1\r\nHost: plugin\r\nContent-Length: 10000000\r\n\r\n{"Name":"v"');
    const openMs = await Promise.race([client.closed, sleep(3000).then(() => Infinity)]);
    expect(openMs).toBeLessThan(2000);
    expect(client.received()).toMatch(/^HTTP\/1\.1 413 /);
  });

  it('R13: shutdown closes idle connections at once and lets a call in flight answer', async () => {
    const { app } = await serve(300, { idleTimeoutMs: 10_000 });
    const idle = await connect(path);
    idle.socket.write(post('/VolumeDriver.Capabilities', {}));
    await replies(idle, 1);
    const fresh = await connect(path);
    const busy = await connect(path);
    busy.socket.write(post('/VolumeDriver.Mount', { Name: 'v1', ID }));
    await sleep(50);
    const started = Date.now();
    const closing = closeServer(server!, path, { graceMs: 3000 });
    await expect(Promise.race([idle.closed, sleep(1000).then(() => Infinity)])).resolves.toBeLessThan(Infinity);
    await expect(Promise.race([fresh.closed, sleep(1000).then(() => Infinity)])).resolves.toBeLessThan(Infinity);
    const [reply] = await replies(busy, 1);
    expect(reply).toContain('{"Mountpoint":"/mnt/v1","Err":""}');
    await closing;
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(Promise.race([busy.closed, sleep(1000).then(() => Infinity)])).resolves.toBeLessThan(Infinity);
    await app.settled();
  });

  it('R13: shutdown cuts calls still running after the grace time', async () => {
    const { app, driver } = await serve(1000, { idleTimeoutMs: 10_000 });
    const busy = await connect(path);
    busy.socket.write(post('/VolumeDriver.Mount', { Name: 'v1', ID }));
    await vi.waitFor(() => expect(driver.mount).toHaveBeenCalled());
    const started = Date.now();
    await closeServer(server!, path, { graceMs: 200 });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(180);
    expect(took).toBeLessThan(900);
    await busy.closed;
    expect(busy.received()).toBe('');
    await app.settled();
    expect(driver.unmount).toHaveBeenCalledWith('v1', ID);
  });
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
function makeCertificates(dir: string): void {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=netvol-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
  for (const [name, extra] of [['server', 'subjectAltName=IP:127.0.0.1'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    writeFileSync(join(dir, `${name}.ext`), `${extra}\n`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  }
}

describe('TCP connections with mutual TLS', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const file = (name: string) => join(dir.path, name);
  beforeAll(async () => {
    dir = await tempDir();
    makeCertificates(dir.path);
  });
  afterAll(async () => {
    await dir.cleanup();
  });

  async function serveTls(mountMs: number, idleTimeoutMs: number) {
    const driver = slowDriver(mountMs);
    const app = createApp({ routes: routeTable(driver as unknown as VolumeDriver), logger: memoryLogger().logger, secretKeys: [] });
    const server = await listenOnTcp(app, {
      host: '127.0.0.1',
      port: 0,
      tls: { cert: file('server.pem'), key: file('server.key'), ca: file('ca.pem') },
      idleTimeoutMs,
    });
    return { server, port: (server.address() as AddressInfo).port };
  }

  it('H1: a call running past the idle time still answers, and an idle connection is closed', async () => {
    const { server, port } = await serveTls(IDLE_MS * 4, IDLE_MS);
    const tls = { ca: readFileSync(file('ca.pem')), cert: readFileSync(file('client.pem')), key: readFileSync(file('client.key')) };
    const agent = new Agent({ keepAlive: true, ...tls });
    try {
      let socket: Socket | undefined;
      const reply = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
        const call = httpsRequest({ host: '127.0.0.1', port, method: 'POST', path: '/VolumeDriver.Mount', agent }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode, body }));
        });
        call.on('socket', (opened) => (socket = opened));
        call.on('error', reject);
        call.end(JSON.stringify({ Name: 'v1', ID }));
      });
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('{"Mountpoint":"/mnt/v1","Err":""}');
      // Kept alive by the agent, then closed by the server once idle.
      const closed = new Promise<void>((resolve) => (socket?.destroyed ? resolve() : socket?.once('close', () => resolve())));
      await expect(Promise.race([closed.then(() => 'closed'), sleep(4000).then(() => 'open')])).resolves.toBe('closed');
    } finally {
      agent.destroy();
      await closeServer(server, undefined, { graceMs: 0 });
    }
  });

  it('H1: shutdown also cuts a connection that never finished its TLS handshake', async () => {
    const { server, port } = await serveTls(0, 10_000);
    const raw = createConnection({ host: '127.0.0.1', port });
    raw.on('error', () => undefined);
    await new Promise((resolve) => raw.once('connect', resolve));
    const started = Date.now();
    await Promise.race([closeServer(server, undefined, { graceMs: 200 }), sleep(3000)]);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(server.listening).toBe(false);
    raw.destroy();
  });
});
