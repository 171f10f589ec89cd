import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (test/docker/support/ is three levels down). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The built daemon, produced by `npm run build` (NETVOL_TEST_CLI runs the tier against another one). */
export const netvolCli = process.env['NETVOL_TEST_CLI'] ?? join(repoRoot, 'dist', 'cli.js');

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** First executable `name` in PATH or in `extraDirs` (sbin dirs are often missing from PATH). */
export function findExecutable(name: string, extraDirs: string[] = ['/usr/local/sbin', '/usr/sbin', '/sbin']): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean), ...extraDirs];
  return dirs.map((dir) => join(dir, name)).find(isExecutable);
}

/**
 * The docker CLI: Debian's /usr/bin/docker (docker.io, the same release as its dockerd) when
 * present, else whatever `docker` is on PATH (API version negotiation bridges the gap).
 */
export function findDockerCli(): string | undefined {
  return isExecutable('/usr/bin/docker') ? '/usr/bin/docker' : findExecutable('docker');
}

export function findDockerd(): string | undefined {
  return findExecutable('dockerd');
}

/** A busybox that needs no shared libraries, so it runs alone in an imported image. */
export function findStaticBusybox(): string | undefined {
  return ['/bin/busybox', '/usr/bin/busybox'].find((path) => existsSync(path) && isStaticElf(path));
}

/** True for an ELF executable without a PT_INTERP program header (no dynamic loader). */
export function isStaticElf(path: string): boolean {
  const elf = readFileSync(path);
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) return false;
  const is64 = elf[4] === 2;
  const little = elf[5] === 1;
  const u16 = (at: number) => (little ? elf.readUInt16LE(at) : elf.readUInt16BE(at));
  const u32 = (at: number) => (little ? elf.readUInt32LE(at) : elf.readUInt32BE(at));
  const phoff = is64 ? Number(little ? elf.readBigUInt64LE(32) : elf.readBigUInt64BE(32)) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  const PT_INTERP = 3;
  for (let i = 0; i < phnum; i++) {
    if (u32(phoff + i * phentsize) === PT_INTERP) return false;
  }
  return true;
}
