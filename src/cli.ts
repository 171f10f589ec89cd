#!/usr/bin/env -S node --max-semi-space-size=1 --optimize-for-size
/**
 * (The shebang's V8 flags trade a little allocation speed for memory, which is what a daemon
 * that idles between control calls should do. With V8's default 16 MB young generation the
 * short-lived garbage of requests kept it at ~110 MB resident with 10,000 volumes; 1 MB
 * semi-spaces alone still left 100-120 MB after a burst of Creates (old space grown by
 * promoted garbage, never given back); --optimize-for-size grows the heap less eagerly:
 * ~80 MB, Get and List unchanged, Create/Remove at concurrency 64 ~1.5x slower (they wait
 * for fsync anyway). See `npm run bench`.)
 *
 * Command line, netshare-compatible: `netvol nfs -v 3`, `netvol cifs --netrc /root`,
 * `netvol efs --region eu-west-1`. The only module that reads process.argv, exits, or
 * handles signals.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { basename, join } from 'node:path';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import {
  DEFAULT_BASEDIR,
  DEFAULT_MOUNT_TIMEOUT_SECONDS,
  DEFAULT_PLUGIN_DIR,
  DEFAULT_STATE_DIR,
  daemonConfig,
  type DaemonConfig,
} from './config.js';
import { NetvolError, StartupError } from './errors.js';
import { createLogger } from './logger.js';
import { inheritedSocketFd } from './system/socket-activation.js';
import { checkCifsDaemonOptions } from './protocols/cifs.js';
import { checkNfsDaemonOptions } from './protocols/nfs.js';
import type { Protocol } from './protocols/protocol.js';
import { regionFromInstanceMetadata } from './system/aws-region.js';
import { findSockets, releaseStaleCommand, statusCommand } from './status-command.js';
import { csiCommandOptions, csiConfigFromArgv } from './frontends/csi/csi-config.js';

const env = process.env;
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function commonOptions(y: Argv) {
  return y
    .option('basedir', {
      type: 'string',
      default: DEFAULT_BASEDIR,
      describe: 'Mounts go under <basedir>/<driver name>/<volume name> (the driver name is the protocol unless NETSHARE_SOCKET_NAME or --socket says otherwise)',
    })
    .option('socket', {
      type: 'string',
      describe: 'Unix socket dockerd finds the plugin by [default: /run/docker/plugins/<name>.sock, name = $NETSHARE_SOCKET_NAME or the protocol]',
    })
    .option('state-dir', {
      type: 'string',
      default: DEFAULT_STATE_DIR,
      describe: 'Volumes and mount IDs are kept in <state-dir>/<name>/state.json (0600) and survive restarts',
    })
    .option('mount-timeout', {
      type: 'number',
      default: DEFAULT_MOUNT_TIMEOUT_SECONDS,
      describe: 'Seconds a mount/umount may take before it is killed and the call fails (keep it under 30: dockerd gives up on plugins after that)',
    })
    .option('unmount-delay', {
      type: 'number',
      default: 3,
      describe:
        'Seconds a share stays mounted after the last container lets go, reused if a container mounts it meanwhile (docker run mounts a new volume twice: to copy the image data, then for the container); 0 unmounts at once',
    })
    .option('verbose', { type: 'boolean', default: false, describe: 'Log every Docker call (debug level)' })
    .option('log-format', { choices: ['json', 'pretty'] as const, default: 'json' as const, describe: 'JSON lines (for journald/collectors) or one readable line per event' })
    .option('socket-group', { type: 'number', describe: 'Numeric group that may also use the socket (mode 0660)' })
    .option('tcp', {
      type: 'boolean',
      default: env['NETSHARE_TCP_ENABLED'] === 'true',
      describe: 'Serve on TCP instead of the Unix socket and write /etc/docker/plugins/<name>.spec [env NETSHARE_TCP_ENABLED]',
    })
    .option('port', {
      type: 'string',
      default: env['NETSHARE_TCP_ADDR'] ?? ':8877',
      describe: 'TCP address for --tcp; a bare :PORT binds 127.0.0.1 [env NETSHARE_TCP_ADDR]',
    })
    .option('insecure', { type: 'boolean', default: false, describe: 'Allow --tcp on a non-loopback address without TLS (no authentication!)' })
    .option('tls-cert', { type: 'string', describe: 'With --tcp: serve HTTPS with this certificate (PEM) and require client certificates' })
    .option('tls-key', { type: 'string', describe: 'With --tcp: the key of --tls-cert' })
    .option('tls-ca', { type: 'string', describe: 'With --tcp: CA that signs client certificates (also how dockerd verifies us)' })
    .option('tls-client-cert', { type: 'string', describe: 'Certificate dockerd presents; written to /etc/docker/plugins/<name>.json' })
    .option('tls-client-key', { type: 'string', describe: 'Key of --tls-client-cert' })
    .option('spec-dir', { type: 'string', default: '/etc/docker/plugins', describe: 'Where --tcp writes the plugin spec dockerd reads' })
    .option('dockerapiversion', { alias: 'a', type: 'string', describe: 'Docker API version for calls back into dockerd' })
    .option('docker-socket', { type: 'string', default: '/var/run/docker.sock', describe: 'dockerd API socket, used to have dockerd activate the plugin at start' })
    .option('activate', {
      type: 'boolean',
      default: true,
      describe: 'Ask dockerd to activate the plugin at start, so Swarm can place tasks on this node (--no-activate to skip)',
    })
    .option('release-stale-interval', {
      type: 'number',
      default: 0,
      describe: 'Every N seconds, release mount IDs of volumes that no running container uses (after a dockerd crash the Unmount never comes); 0 = off. Needs the Docker API',
    })
    .option('health-interval', {
      type: 'number',
      default: 0,
      describe:
        'Every N seconds, check each mounted share (a bounded stat and directory read) and show its health in netvol status and metrics; it never unmounts. 0 = off (a Mount always checks a share it reuses)',
    })
    .option('stale-grace', { type: 'number', default: 120, describe: 'Never release a volume mounted less than this many seconds ago' })
    .option('share', {
      type: 'string',
      default: env['NETVOL_SHARE'],
      describe:
        'Default share: a volume created without -o share is the directory named after it under this share, made on first use (e.g. 10.0.0.5:/exports, //fileserver/docker, fs-12345678) [env NETVOL_SHARE]',
    })
    .option('on-delete', {
      choices: ['retain', 'delete', 'archive'] as const,
      default: (env['NETVOL_ON_DELETE'] ?? 'retain') as 'retain' | 'delete' | 'archive',
      describe:
        'What docker volume rm does to a directory netvol made for a volume, unless the volume sets -o onDelete: retain it, delete it, or archive it (renamed archived-<name>-<time>) [env NETVOL_ON_DELETE]',
    })
    .option('metrics', { type: 'string', describe: 'Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (off by default)' })
    .option('mount-command', { type: 'string', hidden: true })
    .option('umount-command', { type: 'string', hidden: true });
}

type Common = Awaited<ReturnType<ReturnType<typeof commonOptions>['parseAsync']>>;

function parseTcpAddress(value: string, insecure: boolean, flag = '--port'): { host: string; port: number } {
  const match = /^(?:\[?([^\]]*)\]?)?:(\d+)$/.exec(value);
  if (!match) throw new StartupError(`${flag} '${value}' is not an address like :8877 or 127.0.0.1:8877`);
  const host = match[1] || '127.0.0.1';
  const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
  if (!loopback && !insecure) {
    throw new StartupError(
      `refusing to serve ${flag === '--port' ? 'the plugin API' : 'metrics'} without authentication on ${host}: bind a loopback address (e.g. ${flag} 127.0.0.1:${match[2]})${flag === '--port' ? ', use TLS (--tls-cert, --tls-key, --tls-ca)' : ''} or pass --insecure`,
    );
  }
  return { host, port: Number(match[2]) };
}

function tcpConfig(argv: Common): NonNullable<DaemonConfig['tcp']> {
  const tlsFlags = [argv['tls-cert'], argv['tls-key'], argv['tls-ca']];
  if (tlsFlags.some(Boolean) && !tlsFlags.every(Boolean)) {
    throw new StartupError('TLS needs all three of --tls-cert, --tls-key and --tls-ca');
  }
  const tls = argv['tls-cert'] && argv['tls-key'] && argv['tls-ca']
    ? { cert: argv['tls-cert'], key: argv['tls-key'], ca: argv['tls-ca'], clientCert: argv['tls-client-cert'], clientKey: argv['tls-client-key'] }
    : undefined;
  return { ...parseTcpAddress(argv.port, argv.insecure || Boolean(tls)), specDir: argv['spec-dir'], tls };
}

function baseConfig(protocol: Protocol, argv: Common): Omit<DaemonConfig, 'nfs' | 'cifs' | 'efs'> {
  // dockerd knows a plugin by its socket's file name, so an explicit --socket names the driver.
  const name = env['NETSHARE_SOCKET_NAME'] || (argv.socket ? basename(argv.socket).replace(/\.sock$/, '') : protocol);
  return {
    protocol,
    name,
    socket: argv.socket ?? join(DEFAULT_PLUGIN_DIR, `${name}.sock`),
    basedir: argv.basedir,
    stateDir: argv['state-dir'],
    healthIntervalSeconds: argv['health-interval'],
    ...(argv.share ? { defaultShare: argv.share } : {}),
    onDelete: argv['on-delete'],
    mountTimeoutSeconds: argv['mount-timeout'],
    unmountDelaySeconds: argv['unmount-delay'],
    verbose: argv.verbose,
    logFormat: argv['log-format'],
    socketGroup: argv['socket-group'],
    tcp: argv.tcp ? tcpConfig(argv) : undefined,
    dockerApiVersion: argv.dockerapiversion,
    dockerSocket: argv['docker-socket'],
    activate: argv.activate,
    metrics: argv.metrics ? parseTcpAddress(argv.metrics, argv.insecure, '--metrics') : undefined,
    version: VERSION,
    releaseStaleIntervalSeconds: argv['release-stale-interval'],
    staleGraceSeconds: argv['stale-grace'],
    mountCommand: argv['mount-command'],
    umountCommand: argv['umount-command'],
  };
}

const noProtocol = { nfs: { version: '4' as const }, cifs: {}, efs: { noResolve: false } };

async function run(partial: Omit<DaemonConfig, 'nfs' | 'cifs' | 'efs'> & Partial<DaemonConfig>): Promise<void> {
  const parsed = daemonConfig.safeParse({ ...noProtocol, ...partial });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new StartupError(`invalid setting ${issue?.path.join('.') ?? ''}: ${issue?.message ?? ''}`);
  }
  const config = parsed.data;
  // A bad default -o would otherwise surface only at the first Mount, in a container's error.
  if (config.protocol === 'nfs') checkNfsDaemonOptions(config.nfs);
  if (config.protocol === 'cifs') checkCifsDaemonOptions(config.cifs);
  const logger = createLogger({ verbose: config.verbose, format: config.logFormat });
  logger.info({ version: VERSION, protocol: config.protocol, driver: config.name }, 'netvol starting');
  const listenFd = config.tcp ? undefined : inheritedSocketFd(env, process.pid);
  // Loaded here, not at the top: `netvol csi`, status and --help never pay for the classic daemon.
  const { startDaemon } = await import('./main.js');
  const daemon = await startDaemon(config, { logger, notifySocket: env['NOTIFY_SOCKET'], listenFd });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'Stopping; mounts stay in place for running containers');
    daemon.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function buildCli(argv: string[]) {
  return yargs(argv)
    .scriptName('netvol')
    .usage(
      'netvol: Docker volume plugin for NFS, CIFS/SMB and AWS EFS shares (a drop-in replacement for docker-volume-netshare)\n\nUsage: netvol <protocol> [options]   (run as root)',
    )
    .version(false)
    .command(
      'nfs',
      'Serve NFS volumes (v3 or v4)',
      (y) =>
        commonOptions(y)
          .option('version', {
            alias: 'v',
            type: 'string',
            choices: ['3', '4'],
            default: env['NETSHARE_NFS_VERSION'] ?? '4',
            describe: 'NFS version when a volume does not set -o version=... [env NETSHARE_NFS_VERSION]',
          })
          .option('options', { alias: 'o', type: 'string', describe: 'Default mount options (a volume\'s nfsopts replaces them)' })
          .example('netvol nfs -v 3', 'NFSv3 (boot2docker has no v4 client)')
          .example('docker volume create -d nfs --name pg -o share=10.0.0.5:/exports/pg', 'a named volume')
          .example('docker run --volume-driver=nfs -v 10.0.0.5/exports/pg:/data busybox', 'the share as the volume name'),
      async (argv) => {
        await run({ ...baseConfig('nfs', argv), nfs: { version: String(argv.version) as '3' | '4', options: argv.options } });
      },
    )
    .command(
      'cifs',
      'Serve CIFS/SMB volumes',
      (y) =>
        commonOptions(y)
          .option('username', { alias: 'u', type: 'string', default: env['NETSHARE_CIFS_USERNAME'], describe: 'Default user [env NETSHARE_CIFS_USERNAME]' })
          .option('password', {
            alias: 'p',
            type: 'string',
            // Not a yargs default: --help would print it.
            describe: 'Default password; prefer env NETSHARE_CIFS_PASSWORD or .netrc: a flag is visible in ps',
          })
          .option('domain', { alias: 'd', type: 'string', default: env['NETSHARE_CIFS_DOMAIN'], describe: 'Default domain [env NETSHARE_CIFS_DOMAIN]' })
          .option('security', { alias: 's', type: 'string', default: env['NETSHARE_CIFS_SECURITY'], describe: 'Default sec= mode, e.g. ntlmssp [env NETSHARE_CIFS_SECURITY]' })
          .option('fileMode', { alias: 'f', type: 'string', default: env['NETSHARE_CIFS_FILEMODE'], describe: 'Default file_mode, e.g. 0644 [env NETSHARE_CIFS_FILEMODE]' })
          .option('dirMode', { alias: 'z', type: 'string', default: env['NETSHARE_CIFS_DIRMODE'], describe: 'Default dir_mode, e.g. 0755 [env NETSHARE_CIFS_DIRMODE]' })
          .option('options', { alias: 'o', type: 'string', describe: 'Default mount options (a volume\'s cifsopts replaces them)' })
          .option('netrc', { type: 'string', default: env['HOME'], describe: 'Directory whose .netrc gives credentials per server ("machine HOST login USER password PASS")' })
          .example('netvol cifs --netrc /root', 'credentials from /root/.netrc')
          .example('docker volume create -d cifs --name docs -o share=fileserver/docs -o username=alice -o password=...', 'credentials per volume (kept in a 0600 file, never on a command line)'),
      async (argv) => {
        if (process.argv.some((arg) => arg === '-p' || arg.startsWith('--password'))) {
          process.stderr.write('netvol: warning: --password is visible to every user in ps; prefer NETSHARE_CIFS_PASSWORD or --netrc\n');
        }
        await run({
          ...baseConfig('cifs', argv),
          cifs: {
            username: argv.username,
            password: argv.password ?? env['NETSHARE_CIFS_PASSWORD'],
            domain: argv.domain,
            security: argv.security,
            fileMode: argv.fileMode,
            dirMode: argv.dirMode,
            options: argv.options,
            netrcDir: argv.netrc,
          },
        });
      },
    )
    .command(
      'efs',
      'Serve AWS EFS volumes (NFS 4.1)',
      (y) =>
        commonOptions(y)
          .option('region', { type: 'string', describe: 'AWS region [default: $AWS_REGION, else asked from the instance metadata service]' })
          .option('az', { type: 'string', describe: 'Availability zone (accepted for netshare compatibility; not needed)' })
          .option('nameserver', { type: 'string', describe: 'Accepted for netshare compatibility; the system resolver is used' })
          .option('noresolve', { type: 'boolean', default: false, describe: 'Shares name the server (an IP) instead of a file system id' })
          .example('netvol efs --region eu-west-1', 'then: docker volume create -d efs --name data -o share=fs-12345678/data'),
      async (argv) => {
        const region =
          argv.region ??
          env['AWS_REGION'] ??
          (argv.noresolve ? undefined : await regionFromInstanceMetadata(env['NETVOL_IMDS_ENDPOINT']));
        if (!region && !argv.noresolve) {
          throw new StartupError(
            'EFS needs an AWS region to build <fs-id>.efs.<region>.amazonaws.com: pass --region eu-west-1 or set AWS_REGION (the instance metadata service did not answer), or use --noresolve with server addresses',
          );
        }
        await run({
          ...baseConfig('efs', argv),
          efs: { region, noResolve: argv.noresolve, availabilityZone: argv.az, nameserver: argv.nameserver },
        });
      },
    )
    .command(
      'csi',
      'Serve the CSI API (csi.v1, gRPC) for Swarm cluster volumes: controller and node, NFS, CIFS and EFS',
      (y) => csiCommandOptions(y),
      async (argv) => {
        // gRPC is loaded only here: the VolumeDriver daemons never pay for it.
        const { startCsiDaemon } = await import('./frontends/csi/csi-daemon.js');
        const daemon = await startCsiDaemon(csiConfigFromArgv(argv, VERSION, env));
        const stop = () => void daemon.close().then(() => process.exit(0), () => process.exit(1));
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      },
    )
    .command(
      'status',
      'Show whether the daemon(s) answer, and each volume: share, mounted, mount IDs, last error',
      (y) =>
        y
          .option('socket', { type: 'string', describe: 'Ask the daemon on this socket only' })
          .option('all', { type: 'boolean', default: false, describe: `Ask every netvol socket under ${DEFAULT_PLUGIN_DIR} (the default without --socket)` })
          .option('json', { type: 'boolean', default: false, describe: 'Machine-readable output' })
          .example('netvol status', 'every netvol daemon on this host')
          .example('netvol status --socket /run/docker/plugins/nfs.sock --json', 'one daemon, as JSON'),
      async (argv) => {
        const named = env['NETSHARE_SOCKET_NAME'];
        const sockets = argv.socket
          ? [argv.socket]
          : named && !argv.all
            ? [join(DEFAULT_PLUGIN_DIR, `${named}.sock`)]
            : await findSockets(DEFAULT_PLUGIN_DIR);
        const outcome = await statusCommand({ sockets, json: argv.json, explicit: Boolean(argv.socket) || (Boolean(named) && !argv.all) });
        process.stdout.write(outcome.output);
        process.exitCode = outcome.exitCode;
      },
    )
    .command(
      'release-stale',
      'Release mount IDs of volumes that no running container uses (asks dockerd; never touches a volume in use)',
      (y) =>
        y
          .option('socket', { type: 'string', describe: `The daemon's socket [default: ${DEFAULT_PLUGIN_DIR}/<$NETSHARE_SOCKET_NAME or nfs>.sock]` })
          .option('dry-run', { type: 'boolean', default: false, describe: 'Only show what would be released' })
          .example('netvol release-stale --dry-run', 'list stale references of the nfs daemon'),
      async (argv) => {
        const socket = argv.socket ?? join(DEFAULT_PLUGIN_DIR, `${env['NETSHARE_SOCKET_NAME'] || 'nfs'}.sock`);
        const outcome = await releaseStaleCommand(socket, argv['dry-run']);
        process.stdout.write(outcome.output);
        process.exitCode = outcome.exitCode;
      },
    )
    .command('version', 'Print the version', {}, () => {
      process.stdout.write(`netvol ${VERSION}\n`);
    })
    .demandCommand(1, 'Name a protocol (nfs, cifs or efs) or a command (status, version); see --help')
    .strict()
    .help()
    .alias('help', 'h')
    .wrap(Math.min(120, process.stdout.columns || 120))
    .epilogue('Docs: README.md. Each daemon serves one protocol; run several with NETSHARE_SOCKET_NAME for different names (each gets its own mount root and state).')
    .fail((message, error) => {
      if (error) throw error;
      process.stderr.write(`netvol: ${message}\nRun 'netvol --help' for usage.\n`);
      process.exit(2);
    });
}

buildCli(hideBin(process.argv))
  .parseAsync()
  .catch((error: unknown) => {
    const message = error instanceof NetvolError ? error.message : (error as Error).stack ?? String(error);
    process.stderr.write(`netvol: ${message}\n`);
    process.exit(1);
  });
