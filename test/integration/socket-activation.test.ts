import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLI, FAKE_MOUNT, pluginCall, spawnDaemon, waitFor, waitForReady } from '../support/daemon-process.js';
import { tempDir } from '../support/fakes.js';

// What systemd does for netvol@.socket, in a few lines: hold the listening socket, start the
// daemon with it as fd 3 (LISTEN_FDS=1, LISTEN_PID=its pid), and start it again when it dies.
const SUPERVISOR = `
import os, socket, sys, time
path, log = sys.argv[1], sys.argv[2]
argv = sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path); s.listen(512)
with open(log, 'a') as out:
    while True:
        pid = os.fork()
        if pid == 0:
            if s.fileno() != 3:
                os.dup2(s.fileno(), 3)
            os.set_inheritable(3, True)
            os.environ['LISTEN_FDS'] = '1'
            os.environ['LISTEN_PID'] = str(os.getpid())
            fd = os.open(log, os.O_WRONLY | os.O_APPEND)
            os.dup2(fd, 1); os.dup2(fd, 2)
            os.execv(argv[0], argv)
        out.write('supervisor: started %d\\n' % pid); out.flush()
        os.waitpid(pid, 0)
        time.sleep(0.5)
`;

function freshCall(socket: string, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'POST', agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += String(chunk)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('socket activation (netvol@.socket)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let supervisor: ChildProcess | undefined;

  beforeEach(async () => {
    dir = await tempDir('netvol-activation-');
  });
  afterEach(async () => {
    supervisor?.kill('SIGKILL');
    spawnSync('pkill', ['-KILL', '-f', dir.path], { stdio: 'ignore' });
    await dir.cleanup();
  });

  it('without it, a call right after a SIGKILL is refused (the control)', async () => {
    const socket = join(dir.path, 'plain.sock');
    const daemon = spawnDaemon(['nfs', '--socket', socket, '--state-dir', join(dir.path, 'state'), '--basedir', join(dir.path, 'base'), '--mount-command', FAKE_MOUNT, '--no-activate']);
    await waitForReady(daemon);
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    await expect(freshCall(socket, '/VolumeDriver.List', {})).rejects.toThrow(/ECONNREFUSED/);
  });

  it('calls made while netvol restarts after SIGKILL wait for it instead of being refused', async () => {
    const socket = join(dir.path, 'nfsact.sock');
    const log = join(dir.path, 'daemon.log');
    const script = join(dir.path, 'supervisor.py');
    await writeFile(script, SUPERVISOR);
    await writeFile(log, '');
    const args = [process.execPath, CLI, 'nfs', '--socket', socket, '--state-dir', join(dir.path, 'state'), '--basedir', join(dir.path, 'base'), '--mount-command', FAKE_MOUNT, '--no-activate'];
    supervisor = spawn('python3', [script, socket, log, ...args], { stdio: 'ignore' });
    const { readFileSync } = await import('node:fs');
    const output = () => readFileSync(log, 'utf8');
    await waitFor(() => output().includes('"msg":"Ready'), 15_000, `ready\n${output()}`);
    expect(output()).toContain('Serving the socket systemd passed (socket activation)');
    await pluginCall(socket, '/VolumeDriver.Create', { Name: 'pg', Opts: { share: '10.0.0.5:/exports/pg' } });

    const pid = Number(/supervisor: started (\d+)/.exec(output())?.[1]);
    process.kill(pid, 'SIGKILL');
    // Right after the kill, before the new daemon is up: without the held socket these are
    // "connect: connection refused" (the old socket file answers nobody).
    const started = Date.now();
    // New connections, as dockerd opens after a broken one (a kept-alive one died with the daemon).
    const replies = await Promise.all([1, 2, 3].map(() => freshCall(socket, '/VolumeDriver.Get', { Name: 'pg' })));
    const waitedMs = Date.now() - started;
    for (const reply of replies) expect(reply.body['Volume']).toMatchObject({ Name: 'pg' });
    expect(output().match(/supervisor: started/g)?.length).toBe(2);
    console.log(`socket activation: 3 calls made during a restart after SIGKILL all answered, after ${waitedMs} ms`);
  });
});
