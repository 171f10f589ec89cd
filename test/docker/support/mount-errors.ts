/**
 * Phrases that mount(8), mount.nfs or mount.cifs print when a share cannot be mounted. This
 * machine's kernel has no NFS/CIFS client, so every mount fails here; users must see the
 * tool's own words, not only an exit status like netshare's `exit status 32`.
 */
export const MOUNT_TOOL_MESSAGE =
  /unknown filesystem type|wrong fs type|bad option|mount\.(nfs4?|cifs):|mount error\(\d+\)|Connection refused|access denied|No such device|Operation not permitted|Permission denied|timed out/i;

/** An error that is nothing but an exit status at its end. */
export const BARE_EXIT_STATUS = /exit (status|code) \d+\W*$/;
