import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A stand-in for mount(8) for kernels without an NFS client, given to the daemon through its
 * hidden `--mount-command`. It receives netvol's argv (`-t TYPE [-o OPTS] -- SERVER:/PATH
 * TARGET`) and bind-mounts `<exportsRoot>/PATH` on TARGET, so dockerd, the daemon's mount-ID
 * accounting and real umount(8) all run for real; only the network is missing.
 */
export async function writeBindMountCommand(dir: string, exportsRoot: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'bind-mount');
  const script = `#!/bin/sh
set -eu
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
[ "$#" -eq 3 ] || { echo "bind-mount: expected -- SOURCE TARGET" >&2; exit 2; }
source=$2
target=$3
exec mount --bind -- '${exportsRoot}'/"\${source#*:}" "$target"
`;
  await writeFile(path, script, { mode: 0o755 });
  await chmod(path, 0o755);
  return path;
}
