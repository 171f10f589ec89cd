import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');
const PACKAGING = join(REPO, 'packaging/boot2docker');
const SEP = '\x1f';

/**
 * docker-machine as a test double: records each call (arguments joined by \x1f, one call a
 * line); `ls -q` lists the node directories; `scp` copies into a node's home; `ssh` runs the
 * command with sh in the node's home, the way the node's shell would parse it, with a sudo
 * that just runs its arguments and NETVOL_NODE_ROOT pointing at the node's directory. A node
 * with a file named `stopped` refuses like a stopped machine.
 */
const FAKE_DOCKER_MACHINE = `#!/bin/sh
{ for a in "$@"; do printf '%s\\037' "$a"; done; printf '\\n'; } >>"$FAKE_DM_LOG"
down() { [ ! -d "$FAKE_NODES/$1" ] || [ -e "$FAKE_NODES/$1/stopped" ]; }
case $1 in
  ls) ls "$FAKE_NODES" ;;
  scp)
    node=\${3%%:*}
    if down "$node"; then echo "Error: Host is not running" >&2; exit 1; fi
    cp "$2" "$FAKE_NODES/$node/home/\${3#*:}" ;;
  ssh)
    if down "$2"; then echo "Error: Host is not running" >&2; exit 1; fi
    cd "$FAKE_NODES/$2/home" && NETVOL_NODE_ROOT="$FAKE_NODES/$2" PATH="$FAKE_SUDO_DIR:$PATH" sh -c "$3"
    rc=$?
    [ "$rc" -eq 0 ] || echo "exit status $rc" >&2
    exit "$rc" ;;
esac
`;

/**
 * netvol as a test double, shipped in the tarball as bin/netvol: records its arguments;
 * `status --socket P` answers when P exists; a daemon creates its socket (under the node's
 * root) and runs until SIGTERM, or fails at start on a node with a file named `fail-start`.
 */
const FAKE_NETVOL = `#!/bin/sh
root=\${NETVOL_NODE_ROOT:?}
# One write per call: the daemon and the readiness polls append at the same time.
us=$(printf '\\037'); line=''; for a in "$@"; do line="$line$a$us"; done
printf '%s\\n' "$line" >>"$root/netvol-calls.log"
if [ "$1" = status ]; then
  [ -e "$3" ] && exit 0
  echo "$3: no such socket (is the daemon running?)"
  exit 1
fi
if [ -e "$root/fail-start" ]; then
  echo "netvol: cannot listen on $3: permission denied" >&2
  exit 1
fi
mkdir -p "$root/run/docker/plugins"
: >"$root$3"
sleep 60 &
trap 'kill $!; rm -f "$root$3"; exit 0' TERM
wait
`;

function partition<T>(items: T[], test: (item: T) => boolean): [T[], T[]] {
  return [items.filter(test), items.filter((item) => !test(item))];
}

/** A flag word that would run `touch PWNED` and glob if any shell on the way evaluated it. */
const NASTY = "x';touch${IFS}PWNED;'*";
const FLAGS = `-v 3 -o ${NASTY}`;
const START_LINE =
  "/var/lib/boot2docker/netvol/bin/netvol-start 'nfs' 'nfs' '-v' '3' '-o' 'x'\\'';touch${IFS}PWNED;'\\''*' # netvol:nfs";

describe('packaging/boot2docker/install-netvol.sh', () => {
  let dir: string;
  let nodes: string;
  let tarball: string;
  let dmLog: string;
  const env = () => ({
    PATH: `${join(dir, 'bin')}:${process.env['PATH'] ?? ''}`,
    FAKE_DM_LOG: dmLog,
    FAKE_NODES: nodes,
    FAKE_SUDO_DIR: join(dir, 'sudo'),
  });
  const install = (args: string[]) =>
    spawnSync('sh', [join(PACKAGING, 'install-netvol.sh'), ...args], { env: env(), encoding: 'utf8', timeout: 60_000 });
  const calls = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(SEP).slice(0, -1));
  const node = (name: string, ...path: string[]) => join(nodes, name, ...path);
  const pidOf = (name: string) => Number(readFileSync(node(name, 'var/run/netvol-nfs.pid'), 'utf8'));
  const running = (pid: number) => {
    try {
      return !readFileSync(`/proc/${pid}/status`, 'utf8').match(/^State:\s*Z/m);
    } catch {
      return false;
    }
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'netvol-b2d-'));
    nodes = join(dir, 'nodes');
    dmLog = join(dir, 'docker-machine.log');
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'sudo'));
    writeFileSync(join(dir, 'bin/docker-machine'), FAKE_DOCKER_MACHINE, { mode: 0o755 });
    writeFileSync(join(dir, 'sudo/sudo'), '#!/bin/sh\nexec "$@"\n', { mode: 0o755 });

    // The tarball make-tarball.sh would build, with the fake netvol and the real netvol-start.
    const stage = join(dir, 'stage');
    mkdirSync(join(stage, 'bin'), { recursive: true });
    mkdirSync(join(stage, 'dist'));
    writeFileSync(join(stage, 'bin/netvol'), FAKE_NETVOL, { mode: 0o755 });
    writeFileSync(join(stage, 'bin/node'), '#!/bin/sh\n', { mode: 0o755 });
    copyFileSync(join(PACKAGING, 'bin/netvol-start'), join(stage, 'bin/netvol-start'));
    writeFileSync(join(stage, 'dist/cli.js'), '');
    writeFileSync(join(stage, 'package.json'), '{"name":"netvol","version":"0.0.0-test"}\n');
    tarball = join(dir, 'netvol-test.tgz');
    expect(spawnSync('tar', ['-czf', tarball, '-C', stage, '.']).status).toBe(0);

    // mg0 works (and still has netshare in its profile), mg1's daemon fails at start, wk0 is stopped.
    for (const name of ['mg0', 'mg1', 'wk0']) mkdirSync(node(name, 'home'), { recursive: true });
    for (const name of ['mg0', 'mg1']) mkdirSync(node(name, 'var/lib/boot2docker'), { recursive: true });
    writeFileSync(node('mg0', 'var/lib/boot2docker/bootlocal.sh'), "#!/bin/sh\necho mine\n/var/lib/boot2docker/netvol/bin/netvol-start 'nfs' 'nfs' # netvol:nfs\n");
    writeFileSync(node('mg0', 'var/lib/boot2docker/bootsync.sh'), '#!/bin/sh\necho sync\n');
    writeFileSync(node('mg0', 'var/lib/boot2docker/profile'), 'sudo nohup /home/docker/docker-volume-netshare nfs -v 3 &\n');
    writeFileSync(node('mg1', 'fail-start'), '');
    writeFileSync(node('wk0', 'stopped'), '');
  });

  afterAll(() => {
    // Stop the fake daemons this test started, by PID.
    for (const name of ['mg0', 'mg1']) {
      try {
        process.kill(pidOf(name), 'SIGTERM');
      } catch {
        // Not started, or already gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs on every docker-machine node and reports one line per node', () => {
    const run = install(['--tarball', tarball, '--args', FLAGS]);
    expect(run.stdout.split('\n')).toEqual([
      'mg0: ok (socket answered)',
      'mg1: FAILED: netvol exited at start: netvol: cannot listen on /run/docker/plugins/nfs.sock: permission denied',
      'wk0: FAILED: copy failed: Error: Host is not running',
      '',
    ]);
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(
      'mg0: warning: /var/lib/boot2docker/profile still starts docker-volume-netshare: remove that line, or it and netvol will claim the same socket at boot',
    );

    const setup = join(PACKAGING, 'node-setup.sh');
    const ssh = "sudo sh netvol-node-setup.sh netvol-install.tgz 'nfs' 'nfs' '-v' '3' '-o' 'x'\\'';touch${IFS}PWNED;'\\''*'";
    expect(calls(dmLog)).toEqual([
      ['ls', '-q'],
      ['scp', tarball, 'mg0:netvol-install.tgz'],
      ['scp', setup, 'mg0:netvol-node-setup.sh'],
      ['ssh', 'mg0', ssh],
      ['scp', tarball, 'mg1:netvol-install.tgz'],
      ['scp', setup, 'mg1:netvol-node-setup.sh'],
      ['ssh', 'mg1', ssh],
      ['scp', tarball, 'wk0:netvol-install.tgz'],
    ]);
  });

  it('keeps netvol where a reboot does not erase it, and cleans up the copies', () => {
    const app = node('mg0', 'var/lib/boot2docker/netvol');
    expect(readdirSync(app).sort()).toEqual(['bin', 'dist', 'package.json']);
    expect(readdirSync(join(app, 'bin')).sort()).toEqual(['netvol', 'netvol-start', 'node']);
    expect(readFileSync(join(app, 'package.json'), 'utf8')).toContain('0.0.0-test');
    expect(readdirSync(node('mg0', 'home'))).toEqual([]);
  });

  it('starts the daemon now, detached, logging to /var/log/netvol.log, with the flags intact', () => {
    // The state on the persistent disk: boot2docker's root is in RAM.
    const daemon = ['nfs', '--socket', '/run/docker/plugins/nfs.sock', '--state-dir', '/var/lib/boot2docker/netvol-state', '-v', '3', '-o', NASTY];
    // The readiness polls and the daemon's own start may interleave in the log.
    const [statuses, starts] = partition(calls(node('mg0', 'netvol-calls.log')), (call) => call[0] === 'status');
    expect(starts).toEqual([daemon]);
    expect(new Set(statuses.map((call) => call.join(' ')))).toEqual(new Set([`status --socket ${node('mg0', 'run/docker/plugins/nfs.sock')}`]));
    expect(running(pidOf('mg0'))).toBe(true);
    expect(readFileSync(node('mg0', 'var/log/netvol.log'), 'utf8')).toMatch(/netvol-start: nfs \(nfs\)\n$/);
    expect(calls(node('mg1', 'netvol-calls.log')).filter((call) => call[0] !== 'status')).toEqual([daemon]);
    // No shell on the way ran the flag: nothing was touched, nothing globbed.
    expect(spawnSync('find', [dir, '-name', 'PWNED']).stdout.toString()).toBe('');
  });

  it('adds one start line to bootsync.sh (before dockerd starts), which a shell parses back into the same flags', () => {
    expect(readFileSync(node('mg0', 'var/lib/boot2docker/bootsync.sh'), 'utf8')).toBe(`#!/bin/sh\necho sync\n${START_LINE}\n`);
    expect(readFileSync(node('mg1', 'var/lib/boot2docker/bootsync.sh'), 'utf8')).toBe(`#!/bin/sh\n${START_LINE}\n`);
    // An earlier install's line in bootlocal.sh is gone; the user's own lines stay.
    expect(readFileSync(node('mg0', 'var/lib/boot2docker/bootlocal.sh'), 'utf8')).toBe('#!/bin/sh\necho mine\n');
    expect(existsSync(node('mg1', 'var/lib/boot2docker/bootlocal.sh'))).toBe(false);
    const echoed = spawnSync('sh', ['-c', START_LINE.replace(/^\S+/, "printf '%s\\n'")], { cwd: dir, encoding: 'utf8' });
    expect(echoed.stdout.split('\n').slice(0, -1)).toEqual(['nfs', 'nfs', '-v', '3', '-o', NASTY]);
  });

  it('run again on named nodes: restarts the daemon and still has exactly one start line', () => {
    const first = pidOf('mg0');
    const logLength = calls(dmLog).length;
    const run = install(['--tarball', tarball, '--args', FLAGS, 'mg0']);
    expect(run.stdout).toBe('mg0: ok (socket answered)\n');
    expect(run.status).toBe(0);
    // Nodes given as arguments: docker-machine ls is not asked.
    expect(calls(dmLog).slice(logLength).map((call) => call.slice(0, 2))).toEqual([
      ['scp', tarball],
      ['scp', join(PACKAGING, 'node-setup.sh')],
      ['ssh', 'mg0'],
    ]);
    expect(running(first)).toBe(false);
    expect(running(pidOf('mg0'))).toBe(true);
    expect(readFileSync(node('mg0', 'var/lib/boot2docker/bootsync.sh'), 'utf8')).toBe(`#!/bin/sh\necho sync\n${START_LINE}\n`);
    expect(calls(node('mg0', 'netvol-calls.log')).filter((call) => call[0] === 'nfs')).toHaveLength(2);
  });

  it('replaces the start line when the flags change', () => {
    const run = install(['--tarball', tarball, '--args', '-v 4', 'mg0']);
    expect(run.status).toBe(0);
    expect(readFileSync(node('mg0', 'var/lib/boot2docker/bootsync.sh'), 'utf8')).toBe(
      "#!/bin/sh\necho sync\n/var/lib/boot2docker/netvol/bin/netvol-start 'nfs' 'nfs' '-v' '4' # netvol:nfs\n",
    );
  });

  it('refuses bad input before reaching any node', () => {
    const logLength = calls(dmLog).length;
    expect(install(['--tarball', tarball, '--protocol', 'ceph']).stderr).toBe("install-netvol.sh: unknown protocol 'ceph' (nfs, cifs or efs)\n");
    expect(install(['--tarball', join(dir, 'missing.tgz')]).status).toBe(2);
    expect(install(['mg0']).stderr).toMatch(/^install-netvol.sh: no tarball: pass --tarball FILE or set NETVOL_TARBALL/);
    expect(install(['--tarball', tarball, '--name', 'a b']).status).toBe(2);
    expect(calls(dmLog)).toHaveLength(logLength);
    expect(existsSync(node('mg0', 'home/netvol-install.tgz'))).toBe(false);
  });
});
