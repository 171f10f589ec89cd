import { hostname } from 'node:os';
import type { Argv } from 'yargs';
import { z } from 'zod';
import { StartupError } from '../../errors.js';

export const DEFAULT_CSI_STATE_DIR = '/var/lib/netvol/csi';
export const DEFAULT_CSI_BASEDIR = '/var/lib/docker-volumes/netvol-csi';
/** Below swarmkit's 15 s deadline per CSI call, so the CO sees netvol's message, not its own timeout. */
export const DEFAULT_CSI_MOUNT_TIMEOUT_SECONDS = 10;
export const CSI_PLUGIN_NAME = 'netvol.csi';

export const csiConfig = z.object({
  socket: z.string().min(1, 'the socket path is empty').startsWith('/', 'the socket must be an absolute path (or unix:///path)'),
  nodeId: z
    .string()
    .min(1, 'the node id is empty')
    .max(128, 'the node id may be at most 128 bytes (CSI limit)')
    // eslint-disable-next-line no-control-regex
    .regex(/^[^\x00-\x1f\x7f]+$/, 'the node id may not contain control characters'),
  /** Which CSI services this process serves: swarmkit wants both in one managed plugin. */
  services: z.enum(['all', 'controller', 'node']),
  stateDir: z.string().min(1),
  basedir: z.string().min(1),
  mountTimeoutSeconds: z.number().positive().max(3600),
  verbose: z.boolean(),
  logFormat: z.enum(['json', 'pretty']),
  version: z.string(),
  /** Region for EFS volumes that do not name one. */
  efsRegion: z.string().optional(),
  /** Replaces mount/umount for shares (tests on kernels without NFS). Not for users. */
  mountCommand: z.string().optional(),
  umountCommand: z.string().optional(),
});
export type CsiConfig = z.infer<typeof csiConfig>;

/** The `netvol csi` flags. */
export function csiCommandOptions<T>(y: Argv<T>) {
  return y
    .option('socket', {
      type: 'string',
      demandOption: true,
      describe: 'Unix socket to serve csi.v1 on (a path or unix:///path); inside a managed plugin /run/docker/plugins/<interface.socket>',
    })
    .option('node-id', { type: 'string', describe: 'This node\'s CSI node id [default: the host name]' })
    .option('controller-only', { type: 'boolean', default: false, describe: 'Serve Identity and Controller only (CreateVolume, DeleteVolume)' })
    .option('node-only', { type: 'boolean', default: false, describe: 'Serve Identity and Node only (NodePublishVolume, NodeUnpublishVolume); no CONTROLLER_SERVICE' })
    .option('state-dir', {
      type: 'string',
      default: DEFAULT_CSI_STATE_DIR,
      describe: 'Node state (state.json, 0600), the names the controller created, staging mounts',
    })
    .option('basedir', {
      type: 'string',
      default: DEFAULT_CSI_BASEDIR,
      describe: 'One kernel mount per volume goes under <basedir>/<volume>; targets are bind mounts of it (in the managed plugin: a directory under /data)',
    })
    .option('mount-timeout', {
      type: 'number',
      default: DEFAULT_CSI_MOUNT_TIMEOUT_SECONDS,
      describe: 'Seconds a mount, umount or share directory operation may take before it is killed and the call fails (swarmkit gives each call 15 s)',
    })
    .option('verbose', { type: 'boolean', default: false, describe: 'Log every CSI call (debug level)' })
    .option('log-format', { choices: ['json', 'pretty'] as const, default: 'json' as const, describe: 'JSON lines or one readable line per event' })
    .option('mount-command', { type: 'string', hidden: true })
    .option('umount-command', { type: 'string', hidden: true })
    .example('netvol csi --socket /run/docker/plugins/netvol-csi.sock', 'controller and node in one process (what a Swarm managed plugin runs)')
    .example(
      'docker volume create -d netvol-csi:latest --type mount --scope multi --sharing all --opt share=10.0.0.5:/exports pgdata',
      'a cluster volume: the directory pgdata is made under the share',
    );
}

export interface CsiArgv {
  readonly socket: string;
  readonly 'node-id'?: string | undefined;
  readonly 'controller-only': boolean;
  readonly 'node-only': boolean;
  readonly 'state-dir': string;
  readonly basedir: string;
  readonly 'mount-timeout': number;
  readonly verbose: boolean;
  readonly 'log-format': 'json' | 'pretty';
  readonly 'mount-command'?: string | undefined;
  readonly 'umount-command'?: string | undefined;
}

export function csiConfigFromArgv(argv: CsiArgv, version: string, env: NodeJS.ProcessEnv = {}): CsiConfig {
  if (argv['controller-only'] && argv['node-only']) throw new StartupError('pass at most one of --controller-only and --node-only (neither serves both)');
  const parsed = csiConfig.safeParse({
    socket: argv.socket.replace(/^unix:\/\//, ''),
    nodeId: argv['node-id'] ?? hostname(),
    services: argv['controller-only'] ? 'controller' : argv['node-only'] ? 'node' : 'all',
    stateDir: argv['state-dir'],
    basedir: argv.basedir,
    mountTimeoutSeconds: argv['mount-timeout'],
    verbose: argv.verbose,
    logFormat: argv['log-format'],
    version,
    efsRegion: env['AWS_REGION'] || undefined,
    mountCommand: argv['mount-command'],
    umountCommand: argv['umount-command'],
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StartupError(`invalid setting ${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''}`);
  }
  return parsed.data;
}
