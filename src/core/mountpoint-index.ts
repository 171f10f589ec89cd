import { dirname, sep } from 'node:path';

/**
 * Which volume's mountpoint a path would collide with (the same path, one inside the other),
 * in time proportional to the path's depth rather than to the number of volumes: Create must
 * stay cheap at 10,000 volumes.
 */
export class MountpointIndex {
  private readonly owners = new Map<string, string>();
  /** Every proper ancestor directory of an indexed mountpoint → the volumes below it. */
  private readonly below = new Map<string, Set<string>>();

  constructor(private readonly root: string) {}

  add(mountpoint: string, volume: string): void {
    this.owners.set(mountpoint, volume);
    for (const dir of this.ancestors(mountpoint)) {
      const volumes = this.below.get(dir);
      if (volumes) volumes.add(volume);
      else this.below.set(dir, new Set([volume]));
    }
  }

  remove(mountpoint: string): void {
    const volume = this.owners.get(mountpoint);
    if (volume === undefined) return;
    this.owners.delete(mountpoint);
    for (const dir of this.ancestors(mountpoint)) {
      const volumes = this.below.get(dir);
      volumes?.delete(volume);
      if (volumes?.size === 0) this.below.delete(dir);
    }
  }

  /** The volume whose mountpoint equals, contains or lies inside `mountpoint`, if any. */
  overlapping(mountpoint: string): string | undefined {
    const same = this.owners.get(mountpoint) ?? this.below.get(mountpoint)?.values().next().value;
    if (same !== undefined) return same;
    for (const dir of this.ancestors(mountpoint)) {
      const owner = this.owners.get(dir);
      if (owner !== undefined) return owner;
    }
    return undefined;
  }

  private *ancestors(mountpoint: string): Generator<string> {
    for (let dir = dirname(mountpoint); dir.startsWith(this.root + sep); dir = dirname(dir)) yield dir;
  }
}
