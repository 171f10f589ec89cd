import type { Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { VolumeDriver } from '../../src/core/volume-driver.js';
import { createApp } from '../../src/frontends/legacy/app.js';
import { routeTable } from '../../src/frontends/legacy/routes.js';
import { closeServer, listenOnSocket } from '../../src/frontends/legacy/server.js';
import type { CommandResult } from '../../src/system/command-runner.js';
import { driverFixture, memoryLogger, tempDir } from '../support/fakes.js';
import { connect, post, replies, sleep, type RawClient } from './support/raw-socket.js';

const ID = 'a'.repeat(64);

/** A Mount that answers when the test says so. */
function gatedDriver() {
  let open!: (outcome: string | Error) => void;
  const gate = new Promise<string | Error>((resolve) => {
    open = resolve;
  });
  const driver = {
    mount: vi.fn(async () => {
      const outcome = await gate;
      if (outcome instanceof Error) throw outcome;
      return outcome;
    }),
    unmount: vi.fn(async (_name: string, _id: string) => undefined),
  };
  return { driver, open };
}

describe('calls whose caller hung up before the reply', () => {
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

  async function serve(driver: object) {
    const { logger, lines } = memoryLogger();
    const app = createApp({ routes: routeTable(driver as VolumeDriver), logger, secretKeys: [] });
    server = await listenOnSocket(app, { path });
    return { app, lines };
  }

  async function mountThenHangUp(how: 'destroy' | 'end', body: object = { Name: 'v1', ID }): Promise<RawClient> {
    const client = await connect(path);
    client.socket.write(post('/VolumeDriver.Mount', body));
    await sleep(50);
    if (how === 'destroy') client.socket.destroy();
    else client.socket.end();
    await client.closed;
    await sleep(50);
    return client;
  }

  it('R13: a Mount answered after its caller hung up releases its mount ID again', async () => {
    const { driver, open } = gatedDriver();
    const { app, lines } = await serve(driver);
    await mountThenHangUp('destroy');
    open('/mnt/v1');
    await vi.waitFor(() => expect(driver.unmount).toHaveBeenCalledWith('v1', ID), { timeout: 1000 });
    await app.settled();
    expect(driver.unmount).toHaveBeenCalledTimes(1);
    const warn = lines.map((line) => JSON.parse(line) as { level: number; msg: string }).find((line) => line.level === 40);
    expect(warn?.msg).toBe(`Mount answered after the caller hung up; released mount ID ${ID} of volume 'v1' again`);
  });

  it('R13: a caller that half-closes its connection counts as gone', async () => {
    const { driver, open } = gatedDriver();
    const { app } = await serve(driver);
    await mountThenHangUp('end');
    open('/mnt/v1');
    await vi.waitFor(() => expect(driver.unmount).toHaveBeenCalledWith('v1', ID), { timeout: 1000 });
    await app.settled();
  });

  it('R13: a Mount whose reply was delivered keeps its mount ID', async () => {
    const { driver, open } = gatedDriver();
    const { app } = await serve(driver);
    const client = await connect(path);
    client.socket.write(post('/VolumeDriver.Mount', { Name: 'v1', ID }));
    await sleep(50);
    open('/mnt/v1');
    const [reply] = await replies(client, 1);
    expect(reply).toContain('{"Mountpoint":"/mnt/v1","Err":""}');
    client.socket.destroy();
    await client.closed;
    await app.settled();
    expect(driver.unmount).not.toHaveBeenCalled();
  });

  it('R13: a Mount that failed after its caller hung up has nothing to release', async () => {
    const { driver, open } = gatedDriver();
    const { app } = await serve(driver);
    await mountThenHangUp('destroy');
    open(new Error('mount failed'));
    await app.settled();
    expect(driver.unmount).not.toHaveBeenCalled();
  });

  it('R13: an abandoned Mount keeps its ID while a repeat of the same call is still in flight', async () => {
    // dockerd's plugin client repeats a call whose connection broke, with the same mount ID:
    // the repeat queues behind the first in the volume lock and answers success for that ID.
    const { driver, open } = gatedDriver();
    const { app } = await serve(driver);
    await mountThenHangUp('destroy');
    const repeat = await connect(path);
    repeat.socket.write(post('/VolumeDriver.Mount', { Name: 'v1', ID }));
    await vi.waitFor(() => expect(driver.mount).toHaveBeenCalledTimes(2));
    open('/mnt/v1');
    const [reply] = await replies(repeat, 1);
    expect(reply).toContain('{"Mountpoint":"/mnt/v1","Err":""}');
    await app.settled();
    expect(driver.unmount).not.toHaveBeenCalled();
    repeat.socket.destroy();
  });

  it('R13: a failing release is logged, never thrown', async () => {
    const { driver, open } = gatedDriver();
    driver.unmount.mockRejectedValueOnce(new Error('disk full'));
    const { app, lines } = await serve(driver);
    await mountThenHangUp('destroy');
    open('/mnt/v1');
    await app.settled();
    expect(driver.unmount).toHaveBeenCalledWith('v1', ID);
    const error = lines.map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } }).find((line) => line.level === 50);
    expect(error?.msg).toBe('Mount answered after the caller hung up, and undoing it failed');
    expect(error?.err?.message).toBe('disk full');
    // The server still answers.
    const client = await connect(path);
    client.socket.write(post('/VolumeDriver.Capabilities', {}));
    expect((await replies(client, 1))[0]).toMatch(/^HTTP\/1\.1 200 /);
    client.socket.destroy();
  });

  it('R13: only Mount declares a compensation', () => {
    const table = routeTable({} as VolumeDriver);
    const compensated = Object.entries(table)
      .filter(([, route]) => route.abandoned)
      .map(([name]) => name);
    expect(compensated).toEqual(['/VolumeDriver.Mount']);
  });

  it('R13: with the real driver, an abandoned Mount leaves no ID and no kernel mount', async () => {
    const f = await driverFixture();
    await f.driver.create('v1', { share: '10.0.0.5:/x' });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const run = f.runner.run.bind(f.runner);
    f.runner.run = async (command, options): Promise<CommandResult> => {
      if (command.file === 'mount') await gate;
      return run(command, options);
    };
    const app = createApp({ routes: routeTable(f.driver), logger: memoryLogger().logger, secretKeys: [] });
    server = await listenOnSocket(app, { path });
    await mountThenHangUp('destroy');
    release();
    await vi.waitFor(() => expect(f.runner.umounts()).toHaveLength(1), { timeout: 2000 });
    await app.settled();
    expect(f.state.volumes['v1']?.mountIds).toEqual([]);
    expect(f.table.entries).toEqual([]);
    await f.cleanup();
  });

  it('R13: a Mount cut off by shutdown releases its ID once it completes', async () => {
    const { driver, open } = gatedDriver();
    const { app } = await serve(driver);
    const client = await connect(path);
    client.socket.write(post('/VolumeDriver.Mount', { Name: 'v1', ID }));
    await vi.waitFor(() => expect(driver.mount).toHaveBeenCalled());
    await closeServer(server!, path, { graceMs: 100 });
    await client.closed;
    expect(client.received()).toBe('');
    open('/mnt/v1');
    await app.settled();
    expect(driver.unmount).toHaveBeenCalledWith('v1', ID);
  });
});
