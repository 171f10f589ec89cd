import type { Server } from 'node:http';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/frontends/legacy/app.js';
import { routeTable } from '../../src/frontends/legacy/routes.js';
import { closeServer, listenOnSocket } from '../../src/frontends/legacy/server.js';
import { callFilesIn, UnansweredCalls } from '../../src/frontends/legacy/unanswered-calls.js';
import { driverFixture, memoryLogger, tempDir, type DriverFixture } from '../support/fakes.js';
import { connect, post, replies } from './support/raw-socket.js';

const ID = 'b'.repeat(64);

/**
 * dockerd repeats a call whose connection broke with an empty body (moby/moby#39331). These
 * tests play the process that died by leaving its kept bodies in the directory, as a SIGKILL
 * between receiving a call and answering it does.
 */
describe('empty repeats of calls a killed netvol left unanswered', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let socketPath: string;
  let keptDir: string;
  let fixture: DriverFixture;
  let server: Server | undefined;
  let now = Date.now();

  beforeEach(async () => {
    dir = await tempDir();
    socketPath = join(dir.path, 'plugin.sock');
    keptDir = join(dir.path, 'unanswered');
    fixture = await driverFixture();
    await fixture.driver.create('pg', { share: '10.0.0.5:/exports/pg' });
    now = Date.now();
  });
  afterEach(async () => {
    if (server?.listening) await closeServer(server, socketPath, { graceMs: 0 });
    server = undefined;
    await fixture.cleanup();
    await dir.cleanup();
  });

  /** What a process killed while answering these calls leaves behind. */
  async function killedWhileAnswering(calls: { path: string; body: object }[]) {
    const previous = await UnansweredCalls.open(callFilesIn(keptDir), () => now, now, () => undefined);
    for (const { path, body } of calls) await previous.begin(path, JSON.stringify(body));
  }

  /** The next process; `startedMs`: when it began, `servedMs`: when it served the socket. */
  async function serve(times: { startedMs?: number; servedMs?: number } = {}) {
    const { logger, lines } = memoryLogger();
    const unanswered = await UnansweredCalls.open(callFilesIn(keptDir), () => now, times.startedMs ?? now, () => undefined);
    const app = createApp({ routes: routeTable(fixture.driver), logger, secretKeys: [], unanswered });
    server = await listenOnSocket(app, { path: socketPath });
    const reading = now;
    now = times.servedMs ?? now;
    unanswered.serving();
    now = reading;
    return { app, lines, unanswered };
  }

  async function call(path: string, raw: string): Promise<{ status: number; body: { Err?: string; Mountpoint?: string } }> {
    const client = await connect(socketPath);
    client.socket.write(
      `POST ${path} HTTP/1.1\r\nHost: plugin\r\nContent-Length: ${Buffer.byteLength(raw)}\r\n\r\n${raw}`,
    );
    const [reply = ''] = await replies(client, 1);
    client.socket.destroy();
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(reply)?.[1]);
    return { status, body: JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as { Err?: string; Mountpoint?: string } };
  }

  it('answers an empty Mount with the one the killed process received', async () => {
    await killedWhileAnswering([{ path: '/VolumeDriver.Mount', body: { Name: 'pg', ID } }]);
    const { lines, unanswered } = await serve();
    expect(unanswered.leftByPath).toEqual({ '/VolumeDriver.Mount': 1 });
    const reply = await call('/VolumeDriver.Mount', '');
    expect(reply.status).toBe(200);
    expect(reply.body.Mountpoint).toBe(join(fixture.root, 'pg'));
    expect(fixture.state.volumes['pg']?.mountIds).toEqual([ID]);
    expect(lines.some((line) => line.includes('dockerd repeated VolumeDriver.Mount with an empty body'))).toBe(true);
    // Taken: a second empty repeat has nothing to stand for.
    const again = await call('/VolumeDriver.Mount', '');
    expect(again.status).toBe(400);
    expect(again.body.Err).toMatch(/left no VolumeDriver\.Mount call unanswered\. Run the docker command again$/);
  });

  it('does not count the mount ID twice when the killed process had finished the Mount', async () => {
    // It mounted and saved its state, then died before the answer left.
    await fixture.driver.mount('pg', ID);
    await killedWhileAnswering([{ path: '/VolumeDriver.Mount', body: { Name: 'pg', ID } }]);
    await serve();
    expect((await call('/VolumeDriver.Mount', '')).status).toBe(200);
    expect(fixture.state.volumes['pg']?.mountIds).toEqual([ID]);
    // One Unmount, as dockerd sends when the container stops, releases it.
    expect((await call('/VolumeDriver.Unmount', JSON.stringify({ Name: 'pg', ID }))).status).toBe(200);
    expect(fixture.state.volumes['pg']?.mountIds).toEqual([]);
  });

  it('refuses an ambiguous repeat, and says why and what to do', async () => {
    await killedWhileAnswering([
      { path: '/VolumeDriver.Mount', body: { Name: 'pg', ID } },
      { path: '/VolumeDriver.Mount', body: { Name: 'web', ID } },
    ]);
    await serve();
    const reply = await call('/VolumeDriver.Mount', '');
    expect(reply.status).toBe(400);
    expect(reply.body.Err).toBe(
      "dockerd sent VolumeDriver.Mount with an empty body: it does that when it repeats a call whose first try broke off (moby/moby#39331), as when netvol restarted while answering it; netvol's previous process left 2 VolumeDriver.Mount calls unanswered, and the repeat does not say which one it is. Run the docker command again",
    );
    expect(fixture.state.volumes['pg']?.mountIds).toEqual([]);
  });

  it('answers an empty Mount that waited in the socket backlog through a long restart', async () => {
    // Seen under systemd: the repeat waits in the socket while the next process starts (44 s
    // under emulation), longer than dockerd repeats a call counted from when it is read.
    await killedWhileAnswering([{ path: '/VolumeDriver.Mount', body: { Name: 'pg', ID } }]);
    const received = now;
    now = received + 44_000;
    await serve({ startedMs: received + 9_000, servedMs: received + 43_500 });
    const reply = await call('/VolumeDriver.Mount', '');
    expect(reply.status).toBe(200);
    expect(reply.body.Mountpoint).toBe(join(fixture.root, 'pg'));
  });

  it('explains an empty Get, which is not kept', async () => {
    const { lines } = await serve();
    const reply = await call('/VolumeDriver.Get', '');
    expect(reply.status).toBe(400);
    expect(reply.body.Err).toMatch(/dockerd sent VolumeDriver\.Get with an empty body: .*netvol keeps no VolumeDriver\.Get calls to answer a repeat with\. Run the docker command again$/);
    // Logged as well, since the docker CLI can turn this failure into another message.
    expect(lines.some((line) => line.includes('dockerd sent VolumeDriver.Get with an empty body'))).toBe(true);
  });

  it('explains an empty Create, which is never kept (its options may hold a password)', async () => {
    await serve();
    const reply = await call('/VolumeDriver.Create', '');
    expect(reply.status).toBe(400);
    expect(reply.body.Err).toMatch(/netvol keeps no VolumeDriver\.Create calls to answer a repeat with\. Run the docker command again$/);
  });

  it('a sent {} is bad input, not a repeat', async () => {
    await killedWhileAnswering([{ path: '/VolumeDriver.Mount', body: { Name: 'pg', ID } }]);
    await serve();
    const reply = await call('/VolumeDriver.Mount', '{}');
    expect(reply.status).toBe(400);
    expect(reply.body.Err).toBe('bad VolumeDriver.Mount request: Name: Name is required');
  });

  it('keeps a body only while its call is under way', async () => {
    const { app } = await serve();
    expect((await call('/VolumeDriver.Mount', JSON.stringify({ Name: 'pg', ID }))).status).toBe(200);
    await app.settled();
    expect(await readdir(keptDir)).toEqual([]);
  });
});
