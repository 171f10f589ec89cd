#!/usr/bin/env node
/**
 * The floor for the host benchmark: the least a Node HTTP server on a Unix socket can do
 * for a plugin call. It reads the request body, ignores it, and answers a canned JSON reply
 * per path with the plugin content type. No parsing, no validation, no state, no disk.
 *
 * Usage: node floor-server.mjs SOCKET
 * POST /__bench/canned with {"/VolumeDriver.List": "<reply text>", ...} replaces replies,
 * so the floor sends byte-for-byte what the daemon sent for the same call shape.
 * Prints "ready" on stdout once listening; exits on SIGTERM.
 */
import { createServer } from 'node:http';
import { unlinkSync } from 'node:fs';

const socket = process.argv[2];
if (!socket) {
  process.stderr.write('usage: floor-server.mjs SOCKET\n');
  process.exit(2);
}

const CONTENT_TYPE = 'application/vnd.docker.plugins.v1+json';
const DEFAULT_REPLY = Buffer.from('{"Err":""}');
const canned = new Map();

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    if (req.url === '/__bench/canned') {
      for (const [path, reply] of Object.entries(JSON.parse(Buffer.concat(chunks).toString('utf8')))) {
        canned.set(path, Buffer.from(String(reply)));
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      return;
    }
    const body = canned.get(req.url) ?? DEFAULT_REPLY;
    res.writeHead(200, { 'Content-Type': CONTENT_TYPE, 'Content-Length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;

try {
  unlinkSync(socket);
} catch {
  // No stale socket.
}
server.listen(socket, () => process.stdout.write('ready\n'));

process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
