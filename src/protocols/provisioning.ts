import { z } from 'zod';
import { ValidationError } from '../errors.js';

/** What `docker volume rm` does to the directory netvol made for a volume. */
export const ON_DELETE = ['retain', 'delete', 'archive'] as const;
export type OnDelete = (typeof ON_DELETE)[number];

const ID = /^\d{1,10}$/;
const MODE = /^0?[0-7]{3,4}$/;

/** Volume option keys every protocol accepts for a directory netvol makes on the share. */
export const provisioningOptions = {
  uid: z.string().regex(ID, { message: 'uid must be a numeric user id like 1000' }).optional(),
  gid: z.string().regex(ID, { message: 'gid must be a numeric group id like 1000' }).optional(),
  mode: z.string().regex(MODE, { message: 'mode must be an octal mode like 0750' }).optional(),
  onDelete: z.enum(ON_DELETE, { message: `onDelete must be one of ${ON_DELETE.join(', ')}` }).optional(),
};

export interface DirectoryOwnership {
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
  readonly mode?: number | undefined;
}

export interface Provisioning {
  readonly owner: DirectoryOwnership;
  readonly onDelete?: OnDelete | undefined;
}

/** Pure: the typed provisioning keys of a volume's validated options. */
export function provisioningOf(options: { uid?: string | undefined; gid?: string | undefined; mode?: string | undefined; onDelete?: OnDelete | undefined }): Provisioning {
  return {
    owner: {
      ...(options.uid !== undefined ? { uid: Number(options.uid) } : {}),
      ...(options.gid !== undefined ? { gid: Number(options.gid) } : {}),
      ...(options.mode !== undefined ? { mode: Number.parseInt(options.mode, 8) } : {}),
    },
    ...(options.onDelete !== undefined ? { onDelete: options.onDelete } : {}),
  };
}

/**
 * uid/gid/mode describe a directory netvol makes, and delete/archive act on it: without one
 * (the share itself is the volume) they could only ever change or remove someone's export.
 */
export function checkProvisioningNeedsDirectory(provisioning: Provisioning, subdirectory: string | undefined, ownerAppliesToMount = false): void {
  if (subdirectory !== undefined) return;
  const keys = [
    ...(ownerAppliesToMount ? [] : (['uid', 'gid', 'mode'] as const).filter((key) => provisioning.owner[key] !== undefined)),
    ...(provisioning.onDelete !== undefined && provisioning.onDelete !== 'retain' ? [`onDelete=${provisioning.onDelete}`] : []),
  ];
  if (keys.length > 0) {
    throw new ValidationError(
      `${keys.join(', ')} apply to a directory netvol makes for the volume, and this volume is the share itself: add -o create=true (a directory named after the volume), use a share#subdirectory name, or start the daemon with --share`,
    );
  }
}

/** `{ provisioning }` when the volume asked for any, nothing otherwise: most volumes ask for none. */
export function provisioningField(provisioning: Provisioning): { provisioning?: Provisioning } {
  return Object.keys(provisioning.owner).length > 0 || provisioning.onDelete !== undefined ? { provisioning } : {};
}
