import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SocketTimeoutError, socketRequest } from '../../src/system/socket-request.js';

const dirs: string[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'netvol-sockreq-'));
  dirs.push(dir);
  const socket = join(dir, 's.sock');
  const server = createServer(handler);
  servers.push(server);
  return new Promise((resolve) => server.listen(socket, () => resolve(socket)));
}

describe('socketRequest', () => {
  it('sends the method and body and returns status and text', async () => {
    const socket = await listen((req, res) => {
      let body = '';
      req.on('data', (c) => (body += String(c)));
      req.on('end', () => {
        res.statusCode = 201;
        res.end(`${req.method} ${req.url} ${body}`);
      });
    });
    await expect(socketRequest(socket, '/x', { method: 'POST', body: '{"a":1}', timeoutMs: 2000 })).resolves.toEqual({
      status: 201,
      text: 'POST /x {"a":1}',
    });
  });

  it('rejects with the socket error code when nothing listens', async () => {
    await expect(socketRequest('/nonexistent/netvol.sock', '/', { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('gives up with a SocketTimeoutError when the server never answers', async () => {
    const socket = await listen(() => {
      // Never answers: a hung daemon.
    });
    const error = await socketRequest(socket, '/', { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SocketTimeoutError);
    expect((error as Error).message).toBe('no answer within 0.2 s');
  });
});
