import { join } from 'node:path';
import { z } from 'zod';
import { PROTOCOLS } from './protocols/protocol.js';
import { ON_DELETE } from './protocols/provisioning.js';

export const DEFAULT_BASEDIR = '/var/lib/docker-volumes/netshare';
export const DEFAULT_STATE_DIR = '/var/lib/netvol';
export const DEFAULT_PLUGIN_DIR = '/run/docker/plugins';
/** Below the 30 s HTTP timeout dockerd gives managed plugins, so users see our message. */
export const DEFAULT_MOUNT_TIMEOUT_SECONDS = 20;

/** The daemon's settings, from flags and NETSHARE_* variables; validated once at start. */
export const daemonConfig = z.object({
  protocol: z.enum(PROTOCOLS),
  /** Driver name: what users pass to -d / --volume-driver. */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'the driver name may only contain letters, digits, _ . -'),
  socket: z.string().min(1),
  basedir: z.string().min(1),
  stateDir: z.string().min(1),
  /** --share: volumes without a share of their own are directories under it. */
  defaultShare: z.string().min(1).optional(),
  /** --on-delete: the remove policy of volumes that do not set onDelete. */
  onDelete: z.enum(ON_DELETE).default('retain'),
  mountTimeoutSeconds: z.number().positive().max(3600),
  /** How long a share stays mounted after its last Unmount, in case a Mount follows at once. */
  unmountDelaySeconds: z.number().min(0).max(3600).default(3),
  verbose: z.boolean(),
  logFormat: z.enum(['json', 'pretty']),
  socketGroup: z.number().int().nonnegative().optional(),
  tcp: z
    .object({
      host: z.string(),
      port: z.number().int().min(0).max(65535),
      /** Where dockerd looks for plugin specs (/etc/docker/plugins). */
      specDir: z.string(),
      /** Mutual TLS: the server's cert/key, and the CA client certificates must be signed by. */
      tls: z
        .object({
          cert: z.string(),
          key: z.string(),
          ca: z.string(),
          /** The certificate and key dockerd presents, written into the .json spec. */
          clientCert: z.string().optional(),
          clientKey: z.string().optional(),
        })
        .optional(),
    })
    .optional(),
  dockerApiVersion: z.string().optional(),
  dockerSocket: z.string(),
  /** Ask dockerd to activate the plugin at start (Swarm needs it active to place tasks). */
  activate: z.boolean(),
  /** Prometheus endpoint (loopback unless --insecure); off when absent. */
  metrics: z.object({ host: z.string(), port: z.number().int().min(0).max(65535) }).optional(),
  version: z.string(),
  /** 0: off. Otherwise, every N s, release mount IDs of volumes no running container uses. */
  releaseStaleIntervalSeconds: z.number().nonnegative(),
  /** A volume mounted more recently than this is never released as stale. */
  staleGraceSeconds: z.number().nonnegative(),
  /** 0: off. Otherwise, every N s, check each mounted share and report its health (never unmounts). */
  healthIntervalSeconds: z.number().nonnegative().default(0),
  nfs: z.object({ version: z.enum(['3', '4']), options: z.string().optional() }),
  cifs: z.object({
    username: z.string().optional(),
    password: z.string().optional(),
    domain: z.string().optional(),
    security: z.string().optional(),
    fileMode: z.string().optional(),
    dirMode: z.string().optional(),
    options: z.string().optional(),
    netrcDir: z.string().optional(),
  }),
  efs: z.object({
    region: z.string().optional(),
    noResolve: z.boolean(),
    availabilityZone: z.string().optional(),
    nameserver: z.string().optional(),
  }),
  /** Replaces mount/umount (tests and benchmarks on kernels without NFS). Not for users. */
  mountCommand: z.string().optional(),
  umountCommand: z.string().optional(),
});
export type DaemonConfig = z.infer<typeof daemonConfig>;

/** Where this driver keeps its state: one directory per driver name, so nfs and cifs daemons never share a file. */
export function driverStateDir(config: Pick<DaemonConfig, 'stateDir' | 'name'>): string {
  return join(config.stateDir, config.name);
}
