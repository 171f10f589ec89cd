import { readFile } from 'node:fs/promises';

/** Changes on every boot: after a reboot no kernel mount (and so no mount ID) survives. */
export async function readBootId(path = '/proc/sys/kernel/random/boot_id'): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}
