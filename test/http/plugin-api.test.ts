import request from 'supertest';
import type { RequestListener } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../../src/frontends/legacy/app.js';
import { routeTable } from '../../src/frontends/legacy/routes.js';
import { cifsProtocol } from '../../src/protocols/cifs.js';
import { driverFixture, type DriverFixture } from '../support/fakes.js';

const ACCEPT = 'application/vnd.docker.plugins.v1.2+json';
const ID = 'f'.repeat(64);

/** POST exactly as dockerd does: JSON plus newline, Accept set, no Content-Type. */
function dockerPost(app: RequestListener, path: string, body?: unknown) {
  const call = request(app).post(path).set('Accept', ACCEPT);
  return body === undefined ? call : call.send(Buffer.from(`${JSON.stringify(body)}\n`));
}

function rawPost(app: RequestListener, path: string, text: string) {
  return request(app).post(path).set('Accept', ACCEPT).send(Buffer.from(text));
}

describe('plugin HTTP API', () => {
  let f: DriverFixture;
  let app: RequestListener;
  beforeEach(async () => {
    f = await driverFixture();
    app = createApp({ routes: routeTable(f.driver), logger: f.driver['deps'].logger, secretKeys: [] });
  });
  afterEach(async () => {
    await f.cleanup();
  });

  it('answers Activate sent with an empty body', async () => {
    const reply = await dockerPost(app, '/Plugin.Activate');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toMatch(/^application\/vnd\.docker\.plugins\.v1\+json/);
    expect(reply.body).toEqual({ Implements: ['VolumeDriver'] });
  });

  it('answers Capabilities with local scope', async () => {
    expect((await dockerPost(app, '/VolumeDriver.Capabilities', {})).body).toEqual({ Capabilities: { Scope: 'local' } });
  });

  it.each([
    ['with options', { Name: 'v1', Opts: { share: '10.0.0.5:/x' } }],
    ['with Opts null (ad-hoc name)', { Name: '10.0.0.5/x', Opts: null }],
    ['without Opts (ad-hoc name)', { Name: '10.0.0.5/y' }],
  ])('creates %s', async (_label, body) => {
    const reply = await dockerPost(app, '/VolumeDriver.Create', body);
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ Err: '' });
    expect(f.state.volumes[body.Name]).toBeDefined();
  });

  it('runs the whole life of a volume', async () => {
    await dockerPost(app, '/VolumeDriver.Create', { Name: 'v1', Opts: { share: '10.0.0.5:/x' } });
    const mounted = await dockerPost(app, '/VolumeDriver.Mount', { Name: 'v1', ID });
    expect(mounted.body).toEqual({ Mountpoint: `${f.root}/v1`, Err: '' });
    expect((await dockerPost(app, '/VolumeDriver.Path', { Name: 'v1' })).body).toEqual({ Mountpoint: `${f.root}/v1`, Err: '' });
    expect((await dockerPost(app, '/VolumeDriver.List', {})).body).toEqual({
      Volumes: [{ Name: 'v1', Mountpoint: `${f.root}/v1` }],
      Err: '',
    });
    const got = await dockerPost(app, '/VolumeDriver.Get', { Name: 'v1' });
    expect(got.body.Volume).toMatchObject({ Name: 'v1', Mountpoint: `${f.root}/v1`, Status: { mounted: true, mounts: 1 } });
    const busy = await dockerPost(app, '/VolumeDriver.Remove', { Name: 'v1' });
    expect(busy.body.Err).toMatch(/still mounted for 1 container mount/);
    expect((await dockerPost(app, '/VolumeDriver.Unmount', { Name: 'v1', ID })).body).toEqual({ Err: '' });
    expect((await dockerPost(app, '/VolumeDriver.Remove', { Name: 'v1' })).body).toEqual({ Err: '' });
    expect((await dockerPost(app, '/VolumeDriver.List', {})).body).toEqual({ Volumes: [], Err: '' });
  });

  it.each([
    ['/VolumeDriver.Get', { Name: 'nope' }, 404, "no volume named 'nope' in the nfs driver"],
    ['/VolumeDriver.Create', {}, 400, 'bad VolumeDriver.Create request: Name: Name is required'],
    ['/VolumeDriver.Create', { Name: 7 }, 400, 'bad VolumeDriver.Create request: Name: Name must be a string'],
    ['/VolumeDriver.Create', { Name: 'v', Opts: { share: 1 } }, 400, 'bad VolumeDriver.Create request: Opts.share: every option value must be a string'],
    ['/VolumeDriver.Create', { Name: 'v', Opts: { sharee: 'x' } }, 400, "unknown option 'sharee' for nfs volumes; accepted options: share, create, nfsopts, version, uid, gid, mode, onDelete, type, o, device"],
    ['/VolumeDriver.Create', { Name: '../../etc', Opts: { share: 'h:/x' } }, 400, "volume name '../../etc' has an empty, '.' or '..' path segment"],
    ['/VolumeDriver.Mount', { Name: 'v' }, 400, 'bad VolumeDriver.Mount request: ID: ID is required'],
    ['/VolumeDriver.Mount', { Name: 'v', ID: '' }, 400, 'bad VolumeDriver.Mount request: ID: ID is empty'],
    ['/VolumeDriver.Path', [], 400, 'bad VolumeDriver.Path request: the body must be a JSON object'],
    ['/VolumeDriver.Get', 'v1', 400, 'bad VolumeDriver.Get request: the body must be a JSON object'],
    ['/VolumeDriver.Nope', {}, 404, 'netvol does not implement /VolumeDriver.Nope'],
  ])('answers %s %j with a clear Err', async (path, body, status, message) => {
    const reply = await dockerPost(app, path, body);
    expect(reply.status).toBe(status);
    expect(reply.body).toEqual({ Err: message });
  });

  it('answers malformed JSON with an Err', async () => {
    const reply = await rawPost(app, '/VolumeDriver.Create', '{"Name": ');
    expect(reply.status).toBe(400);
    expect(reply.body.Err).toMatch(/^request body is not valid JSON/);
  });

  it('refuses bodies over the size limit', async () => {
    const reply = await rawPost(app, '/VolumeDriver.Create', JSON.stringify({ Name: 'v', Opts: { share: 'x'.repeat(100_000) } }));
    expect(reply.status).toBe(413);
    expect(reply.body).toEqual({ Err: 'request body is larger than 65536 bytes' });
  });

  it('only speaks POST', async () => {
    const reply = await request(app).get('/VolumeDriver.List');
    expect(reply.status).toBe(405);
    expect(reply.body).toEqual({ Err: 'use POST for /VolumeDriver.List' });
  });
});

describe('plugin HTTP API logging', () => {
  it('masks passwords in the debug log of Create', async () => {
    const f = await driverFixture(cifsProtocol({}, async () => undefined));
    const app = createApp({ routes: routeTable(f.driver), logger: f.driver['deps'].logger, secretKeys: ['password'] });
    const reply = await dockerPost(app, '/VolumeDriver.Create', {
      Name: 'docs',
      Opts: { share: 'fs/docs', username: 'alice', password: 'S3cret-pa55' },
    });
    expect(reply.body).toEqual({ Err: '' });
    const log = f.lines.join('');
    expect(log).toContain('/VolumeDriver.Create');
    expect(log).not.toContain('S3cret-pa55');
    await f.cleanup();
  });
});

describe('admin routes', () => {
  it('answers health and status without touching the plugin protocol', async () => {
    const { addAdminRoutes } = await import('../../src/frontends/legacy/admin-routes.js');
    const f = await driverFixture();
    const info = {
      driver: 'nfs', protocol: 'nfs', version: '0.1.0', socket: '/s.sock', stateFile: '/state.json',
      basedir: '/base', startedAt: '2026-01-02T03:00:00.000Z', pid: 1,
    };
    const app = createApp({
      routes: routeTable(f.driver),
      logger: f.driver['deps'].logger,
      secretKeys: [],
      extraRoutes: (express) => addAdminRoutes(express, f.driver, info, () => new Date('2026-01-02T03:04:05.000Z')),
    });
    await dockerPost(app, '/VolumeDriver.Create', { Name: 'v1', Opts: { share: '10.0.0.5:/x' } });
    await dockerPost(app, '/VolumeDriver.Mount', { Name: 'v1', ID });
    expect((await request(app).get('/netvol/health')).body).toEqual({ ready: true, driver: 'nfs', volumes: 1 });
    const status = await request(app).get('/netvol/status');
    expect(status.body).toEqual({
      ...info,
      uptimeSeconds: 245,
      volumes: [{ name: 'v1', share: '10.0.0.5:/x', mounted: true, mounts: 1, mountedSince: '2026-01-02T03:04:05.000Z', mountpoint: `${f.root}/v1` }],
    });
    await f.cleanup();
  });
});
