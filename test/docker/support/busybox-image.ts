import { copyFile, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { dockerOk, type Dockerd } from './dockerd.js';
import { findStaticBusybox } from './tools.js';

const APPLETS = ['sh', 'true', 'false', 'sleep', 'cat', 'ls', 'echo', 'mount'];

/**
 * Builds a tiny image without any registry: a tarball holding a static busybox and a few
 * applet symlinks, loaded with `docker import`. Returns the image reference.
 */
export async function importBusyboxImage(dockerd: Dockerd, workDir: string, ref = 'netvoltest-busybox:latest'): Promise<string> {
  const busybox = findStaticBusybox();
  if (!busybox) throw new Error('no static busybox (install the Debian package busybox-static)');
  const rootfs = join(workDir, 'busybox-rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await copyFile(busybox, join(rootfs, 'bin', 'busybox'));
  await Promise.all(APPLETS.map((applet) => symlink('busybox', join(rootfs, 'bin', applet))));
  const tarball = join(workDir, 'busybox-rootfs.tar');
  await execa('tar', ['-C', rootfs, '-cf', tarball, '.']);
  await dockerOk(dockerd, ['import', '--change', 'ENV PATH=/bin', tarball, ref]);
  return ref;
}
