import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JsonStateStore } from '../../src/state/state-store.js';
import { parseMountInfo, type MountInfoEntry } from '../../src/system/mountinfo.js';
import { CLI, FAKE_MOUNT, REPO, spawnDaemon, stopDaemon, waitFor, waitForReady, type DaemonProcess } from '../support/daemon-process.js';
import { tempDir } from '../support/fakes.js';

// The csi.v1 gRPC tier: the real `netvol csi` process on a Unix socket, driven by a grpc-js
// client in the order swarmkit calls it, with real mounts. This kernel has no NFS client:
// the share's root is a bind mount of a real directory standing in for the server's export
// (so provisioning is checked on disk), and the volume's own mount is a tmpfs named after
// the share's subdirectory (test/support/fake-mount.sh).

const PROTO = join(REPO, 'src/frontends/csi/proto/csi.proto');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const SHARE = 'fileserver:/export';
const MULTI = { mount: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } };
const BLOCK = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const SECRET = 'S3cret-pw-4711';

type Reply = Record<string, unknown>;
interface Failure {
  code: grpc.status;
  details: string;
}

const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const csi = (grpc.loadPackageDefinition(definition) as unknown as { csi: { v1: Record<'Identity' | 'Controller' | 'Node', grpc.ServiceClientConstructor> } }).csi.v1;

class CsiClient {
  private readonly clients: Record<'Identity' | 'Controller' | 'Node', grpc.Client>;
  private readonly raw: grpc.Client;

  constructor(socket: string) {
    const address = `unix://${socket}`;
    const insecure = grpc.credentials.createInsecure();
    this.clients = { Identity: new csi.Identity(address, insecure), Controller: new csi.Controller(address, insecure), Node: new csi.Node(address, insecure) };
    this.raw = new grpc.Client(address, insecure);
  }

  call(service: 'Identity' | 'Controller' | 'Node', method: string, request: object = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const client = this.clients[service] as unknown as Record<string, (request: object, options: object, done: (error: grpc.ServiceError | null, reply: Reply) => void) => void>;
      client[method]?.call(this.clients[service], request, { deadline: Date.now() + 15_000 }, (error, reply) => (error ? reject(error) : resolve(reply)));
    });
  }

  async fails(service: 'Identity' | 'Controller' | 'Node', method: string, request: object = {}): Promise<Failure> {
    try {
      await this.call(service, method, request);
    } catch (error) {
      const { code, details } = error as grpc.ServiceError;
      return { code, details };
    }
    throw new Error(`${method} succeeded`);
  }

  /** A method the .proto leaves out, as a CO that knows it would send it. */
  unknownMethod(path: string): Promise<Failure> {
    return new Promise((resolve) => {
      this.raw.makeUnaryRequest(path, () => Buffer.alloc(0), (buffer: Buffer) => buffer, {}, (error) => resolve({ code: error?.code ?? grpc.status.OK, details: error?.details ?? '' }));
    });
  }

  close(): void {
    for (const client of Object.values(this.clients)) client.close();
    this.raw.close();
  }
}

const mounts = (): MountInfoEntry[] => parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
const mountedAt = (path: string) => mounts().filter((entry) => entry.mountPoint === path);
const mountedUnder = (dir: string) => mounts().filter((entry) => entry.mountPoint.startsWith(`${dir}/`));

describe('netvol csi over gRPC (real process, real mounts)', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let share: string;
  let base: string;
  let stateDir: string;
  let socket: string;
  const running: DaemonProcess[] = [];
  const clients: CsiClient[] = [];

  beforeAll(() => {
    if (!existsSync(CLI) || !existsSync(join(REPO, 'dist/frontends/csi/proto/csi.proto'))) {
      throw new Error('dist/ has no csi build: run npm run build first (npm run test:integration does)');
    }
  });

  beforeEach(async () => {
    dir = await tempDir('netvol-csi-');
    share = join(dir.path, 'export');
    base = join(dir.path, 'base');
    stateDir = join(dir.path, 'state');
    socket = join(dir.path, 'run', 'csi.sock');
    await mkdir(share);
    // The share's root is a real directory; a CIFS share's credentials file is kept as
    // mount.cifs would read it, to show the password gets there and nowhere else.
    await writeFile(
      join(dir.path, 'mount-share.sh'),
      `#!/bin/sh
for arg; do source_arg=$target_arg; target_arg=$arg; done
echo "$*" >> "${dir.path}/mount.log"
case "$*" in *credentials=*) file=\${*#*credentials=}; file=\${file%%[, ]*}; cat "$file" >> "${dir.path}/credentials.log" ;; esac
case "$source_arg" in
  ${SHARE}|//fileserver/docs) exec mount --bind "${share}" "$target_arg" ;;
esac
exec "${FAKE_MOUNT}" "$@"
`,
    );
    await chmod(join(dir.path, 'mount-share.sh'), 0o755);
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const daemon of running.splice(0)) await stopDaemon(daemon, 'SIGKILL');
    for (const entry of mountedUnder(dir.path).reverse()) spawnSync('umount', ['-l', entry.mountPoint]);
    await dir.cleanup();
  });

  const args = (extra: string[] = []) => [
    'csi',
    '--socket',
    socket,
    '--state-dir',
    stateDir,
    '--basedir',
    base,
    '--node-id',
    'node-1',
    '--mount-timeout',
    '5',
    '--mount-command',
    join(dir.path, 'mount-share.sh'),
    ...extra,
  ];

  const start = async (extra: string[] = []): Promise<{ daemon: DaemonProcess; client: CsiClient }> => {
    const daemon = spawnDaemon(args(extra));
    running.push(daemon);
    await Promise.race([
      waitForReady(daemon),
      daemon.exited.then((code) => {
        throw new Error(`netvol csi exited with ${code}:\n${daemon.output()}`);
      }),
    ]);
    const client = new CsiClient(socket);
    clients.push(client);
    return { daemon, client };
  };

  const kill = async (daemon: DaemonProcess) => {
    await stopDaemon(daemon, 'SIGKILL');
    running.splice(running.indexOf(daemon), 1);
    for (const client of clients.splice(0)) client.close();
  };

  const target = (name: string) => join(dir.path, 'published', name);
  const records = async () => Object.values((await new JsonStateStore(stateDir).load())?.volumes ?? {});

  it('answers Identity correctly from the first connection: swarmkit keeps the first answers', async () => {
    const daemon = spawnDaemon(args());
    running.push(daemon);
    await waitFor(() => existsSync(socket), 15_000, `the socket\n${daemon.output()}`);
    const client = new CsiClient(socket);
    clients.push(client);
    expect(await client.call('Identity', 'Probe')).toEqual({ ready: { value: true } });
    expect(await client.call('Identity', 'GetPluginInfo')).toEqual({ name: 'netvol.csi', vendor_version: VERSION });
    expect(await client.call('Identity', 'GetPluginCapabilities')).toEqual({ capabilities: [{ service: { type: 'CONTROLLER_SERVICE' }, type: 'service' }] });
    expect((await stat(socket)).mode & 0o777).toBe(0o660);
  });

  it("swarmkit's order: provisions the directory, publishes two targets on one kernel mount, unpublishes with the last, archives", async () => {
    const { client } = await start();
    expect(await client.call('Identity', 'Probe')).toEqual({ ready: { value: true } });
    expect(await client.call('Identity', 'GetPluginCapabilities')).toEqual({ capabilities: [{ service: { type: 'CONTROLLER_SERVICE' }, type: 'service' }] });
    expect(await client.call('Controller', 'ControllerGetCapabilities')).toEqual({ capabilities: [{ rpc: { type: 'CREATE_DELETE_VOLUME' }, type: 'rpc' }] });

    const created = await client.call('Controller', 'CreateVolume', {
      name: 'pg',
      volume_capabilities: [MULTI],
      parameters: { share: SHARE, uid: '999', gid: '998', mode: '0750', onDelete: 'archive' },
    });
    const volume = { volume_id: 'nfs;archive;pg;fileserver:/export', volume_context: { protocol: 'nfs', share: SHARE, subdir: 'pg', onDelete: 'archive' } };
    expect(created).toEqual({ volume: { capacity_bytes: '0', ...volume } });
    const made = await stat(join(share, 'pg'));
    expect([made.isDirectory(), made.uid, made.gid, made.mode & 0o7777]).toEqual([true, 999, 998, 0o750]);
    expect(mountedUnder(dir.path)).toEqual([]);
    expect(await client.call('Controller', 'CreateVolume', { name: 'pg', volume_capabilities: [MULTI], parameters: { share: SHARE, uid: '999', gid: '998', mode: '0750', onDelete: 'archive' } })).toEqual(created);

    expect(await client.call('Node', 'NodeGetCapabilities')).toEqual({ capabilities: [] });
    expect(await client.call('Node', 'NodeGetInfo')).toEqual({ node_id: 'node-1', max_volumes_per_node: '0' });

    const mountLog = async () => (await readFile(join(dir.path, 'mount.log'), 'utf8')).split('\n').filter((line) => line.includes('fileserver:'));
    const beforePublish = (await mountLog()).length;
    const publish = (name: string) => client.call('Node', 'NodePublishVolume', { ...volume, target_path: target(name), volume_capability: MULTI });
    expect(await publish('t1')).toEqual({});
    expect(await publish('t2')).toEqual({});
    expect(await publish('t1')).toEqual({});
    // The node trusts the controller's directory: one mount of the subdirectory itself, and no
    // mount of the share's root to look at it first.
    expect((await mountLog()).slice(beforePublish).map((line) => line.split(' ').filter((arg) => arg.startsWith('fileserver:')))).toEqual([['fileserver:/export/pg']]);
    const kernel = mountedUnder(realpathSync(base));
    expect(kernel.map((entry) => [entry.source, entry.fsType])).toEqual([['fileserver:/export/pg', 'tmpfs']]);
    for (const name of ['t1', 't2']) expect(mountedAt(target(name)).map((entry) => [entry.source, entry.fsType, entry.mountOptions.split(',')[0]])).toEqual([['fileserver:/export/pg', 'tmpfs', 'rw']]);
    await writeFile(join(target('t1'), 'written-by-t1'), 'x');
    expect(await readdir(target('t2'))).toEqual(['written-by-t1']);
    expect((await records()).map((record) => [record.options, record.mountIds])).toEqual([
      [{ protocol: 'nfs', share: SHARE, subdir: 'pg' }, [target('t1'), target('t2')]],
    ]);

    expect(await client.call('Node', 'NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: target('t1') })).toEqual({});
    expect(mountedAt(target('t1'))).toEqual([]);
    expect(existsSync(target('t1'))).toBe(false);
    expect(mountedUnder(realpathSync(base))).toHaveLength(1);
    expect(await client.call('Node', 'NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: target('t2') })).toEqual({});
    expect(await client.call('Node', 'NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: target('t2') })).toEqual({});
    expect(mountedUnder(dir.path)).toEqual([]);
    expect(await records()).toEqual([]);

    expect(await client.call('Controller', 'DeleteVolume', { volume_id: volume.volume_id })).toEqual({});
    expect(await client.call('Controller', 'DeleteVolume', { volume_id: volume.volume_id })).toEqual({});
    const left = await readdir(share);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^archived-pg-\d{8}T\d{6}Z$/);
    expect(mountedUnder(dir.path)).toEqual([]);
  });

  it('onDelete=delete removes the directory on the share; retain (the default) keeps it; the share itself is never touched', async () => {
    const { client } = await start();
    const create = (name: string, parameters: Record<string, string>) => client.call('Controller', 'CreateVolume', { name, volume_capabilities: [MULTI], parameters: { share: SHARE, ...parameters } });
    const gone = (await create('scratch', { onDelete: 'delete' })) as { volume: { volume_id: string } };
    const kept = (await create('keep', {})) as { volume: { volume_id: string } };
    const whole = (await create('whole', { subdir: '' })) as { volume: { volume_id: string } };
    expect(whole.volume.volume_id).toBe('nfs;retain;;fileserver:/export');
    await writeFile(join(share, 'scratch', 'data'), 'x');
    expect((await readdir(share)).sort()).toEqual(['keep', 'scratch']);
    for (const { volume } of [gone, kept, whole]) await client.call('Controller', 'DeleteVolume', { volume_id: volume.volume_id });
    expect(await readdir(share)).toEqual(['keep']);
  });

  it('a reader-only access mode publishes read-only', async () => {
    const { client } = await start();
    const { volume } = (await client.call('Controller', 'CreateVolume', { name: 'ro', volume_capabilities: [MULTI], parameters: { share: SHARE } })) as { volume: Reply };
    await client.call('Node', 'NodePublishVolume', { ...volume, target_path: target('r'), volume_capability: { mount: {}, access_mode: { mode: 'MULTI_NODE_READER_ONLY' } } });
    expect(mountedAt(target('r')).map((entry) => entry.mountOptions.split(',')[0])).toEqual(['ro']);
    expect(await client.fails('Node', 'NodePublishVolume', { ...volume, target_path: target('r'), volume_capability: MULTI })).toEqual({
      code: grpc.status.ALREADY_EXISTS,
      details: `target_path ${target('r')} is already published read-only, and this call asks for read-write; unpublish it first`,
    });
    await client.call('Node', 'NodeUnpublishVolume', { volume_id: volume['volume_id'], target_path: target('r') });
    expect(mountedUnder(dir.path)).toEqual([]);
  });

  it('CIFS credentials come from secrets and reach mount.cifs only through its credentials file', async () => {
    const { daemon, client } = await start(['--verbose']);
    const secrets = { username: 'alice', password: SECRET, domain: 'CORP' };
    const { volume } = (await client.call('Controller', 'CreateVolume', {
      name: 'docs',
      volume_capabilities: [MULTI],
      parameters: { protocol: 'cifs', share: '//fileserver/docs', cifsopts: 'vers=3.0' },
      secrets,
    })) as { volume: Reply };
    await client.call('Node', 'NodePublishVolume', { ...volume, target_path: target('c'), volume_capability: MULTI, secrets });
    expect(mountedAt(target('c'))).toHaveLength(1);
    const credentials = await readFile(join(dir.path, 'credentials.log'), 'utf8');
    expect(credentials.split('\n').filter(Boolean)).toContain(`password=${SECRET}`);
    const everywhere = [
      await readFile(join(dir.path, 'mount.log'), 'utf8'),
      daemon.output(),
      JSON.stringify(volume),
      ...(await Promise.all(['state.json', 'state.journal', 'controller-volumes.json'].map((file) => readFile(join(stateDir, file), 'utf8').catch(() => '')))),
    ];
    for (const text of everywhere) expect(text).not.toContain(SECRET);
    expect(await readdir(join(stateDir, 'secrets'))).toEqual([]);
    await client.call('Node', 'NodeUnpublishVolume', { volume_id: volume['volume_id'], target_path: target('c') });
  });

  it('refuses bad input for every field with the status code and message the spec prescribes', async () => {
    const { client } = await start();
    const { volume } = (await client.call('Controller', 'CreateVolume', { name: 'pg', volume_capabilities: [MULTI], parameters: { share: SHARE } })) as { volume: Reply };
    const publish = { ...volume, target_path: target('p'), volume_capability: MULTI };
    const root = realpathSync(base);
    const { INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS } = grpc.status;
    const cases: Array<[string, 'Controller' | 'Node', string, object, grpc.status, string]> = [
      ['CreateVolume without name', 'Controller', 'CreateVolume', { volume_capabilities: [MULTI], parameters: { share: SHARE } }, INVALID_ARGUMENT, 'name is required: the orchestrator names the volume'],
      ['CreateVolume without capabilities', 'Controller', 'CreateVolume', { name: 'x', parameters: { share: SHARE } }, INVALID_ARGUMENT,
        'volume_capabilities is required: give at least one (access type mount and an access mode)'],
      ['CreateVolume for block access', 'Controller', 'CreateVolume', { name: 'x', volume_capabilities: [BLOCK], parameters: { share: SHARE } }, INVALID_ARGUMENT,
        'volume_capabilities[0]: block access is not supported: netvol serves shares as mounted directories; create the volume with --type mount'],
      ['CreateVolume without an access mode', 'Controller', 'CreateVolume', { name: 'x', volume_capabilities: [{ mount: {} }], parameters: { share: SHARE } }, INVALID_ARGUMENT,
        'volume_capabilities[0].access_mode is required'],
      ['CreateVolume with mode UNKNOWN', 'Controller', 'CreateVolume', { name: 'x', volume_capabilities: [{ mount: {}, access_mode: { mode: 'UNKNOWN' } }], parameters: { share: SHARE } }, INVALID_ARGUMENT,
        'volume_capabilities[0].access_mode.mode is UNKNOWN: with --scope multi, also pass --sharing all, onewriter or readonly'],
      ['CreateVolume with mount flags', 'Controller', 'CreateVolume', { name: 'x', volume_capabilities: [{ mount: { mount_flags: ['soft'] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } }], parameters: { share: SHARE } },
        INVALID_ARGUMENT, "volume_capabilities[0].mount.mount_flags are not supported: put mount options in the volume's nfsopts parameter"],
      ['CreateVolume from a snapshot', 'Controller', 'CreateVolume', { name: 'x', volume_capabilities: [MULTI], parameters: { share: SHARE }, volume_content_source: { snapshot: { snapshot_id: 's' } } },
        INVALID_ARGUMENT, 'volume_content_source is not supported: netvol cannot fill a volume from a snapshot or another volume; create it empty'],
      ['CreateVolume without a share', 'Controller', 'CreateVolume', { name: 'x', volume_capabilities: [MULTI] }, INVALID_ARGUMENT,
        "parameter 'share' is required: docker volume create --opt share=<server>:/<path>"],
      ['CreateVolume with an unknown parameter', 'Controller', 'CreateVolume', { name: 'x', volume_capabilities: [MULTI], parameters: { share: SHARE, sharing: 'all' } }, INVALID_ARGUMENT,
        "unknown parameter 'sharing' for nfs volumes; accepted parameters: protocol, share, subdir, uid, gid, mode, onDelete, version, nfsopts"],
      ['CreateVolume with a subdir outside the share', 'Controller', 'CreateVolume', { name: 'x', volume_capabilities: [MULTI], parameters: { share: SHARE, subdir: '../etc' } }, INVALID_ARGUMENT,
        "parameter 'subdir' is '../etc': it may only contain letters, digits, '_', '.' and '-', and may not start with '.' or '-' (it is one directory on the share); subdir= (empty) uses the share itself"],
      ['CreateVolume with a password parameter', 'Controller', 'CreateVolume', { name: 'x', volume_capabilities: [MULTI], parameters: { protocol: 'cifs', share: '//fileserver/docs', password: SECRET } },
        INVALID_ARGUMENT, "parameter 'password' is not accepted: pass CIFS credentials as secrets (docker volume create --secret username=<secret> --secret password=<secret>): parameters are shown by docker volume inspect"],
      ['CreateVolume whose id would pass 128 bytes', 'Controller', 'CreateVolume', { name: 'n'.repeat(100), volume_capabilities: [MULTI], parameters: { share: SHARE } }, INVALID_ARGUMENT,
        "the volume_id for this volume would be 130 bytes, over CSI's 128-byte limit: shorten share (18 bytes) or subdir (100 bytes) by 2 bytes"],
      ['CreateVolume of a name taken with other parameters', 'Controller', 'CreateVolume', { name: 'pg', volume_capabilities: [MULTI], parameters: { share: SHARE, nfsopts: 'soft' } }, ALREADY_EXISTS,
        `volume 'pg' was created earlier with other parameters (nfsopts unset then, 'soft' now); remove it first (docker volume rm pg) or use another name. If no volume of that name exists any more (removed through another manager, or with docker volume rm -f, which skips the plugin), delete its entry from ${realpathSync(stateDir)}/controller-volumes.json on this manager`],
      ['DeleteVolume without volume_id', 'Controller', 'DeleteVolume', {}, INVALID_ARGUMENT, 'volume_id is required'],
      ['ValidateVolumeCapabilities without volume_id', 'Controller', 'ValidateVolumeCapabilities', { volume_capabilities: [MULTI] }, INVALID_ARGUMENT, 'volume_id is required'],
      ['ValidateVolumeCapabilities without capabilities', 'Controller', 'ValidateVolumeCapabilities', { volume_id: volume['volume_id'] }, INVALID_ARGUMENT,
        'volume_capabilities is required: give at least one (access type mount and an access mode)'],
      ['ValidateVolumeCapabilities of an unknown volume', 'Controller', 'ValidateVolumeCapabilities', { volume_id: 'vol-1', volume_capabilities: [MULTI] }, NOT_FOUND,
        "no such volume: volume_id 'vol-1' is not a netvol volume id (like nfs;retain;pg;10.0.0.5:/exports); use the volume_id CreateVolume returned"],
      ['NodePublishVolume without volume_id', 'Node', 'NodePublishVolume', { ...publish, volume_id: '' }, INVALID_ARGUMENT, 'volume_id is required'],
      ['NodePublishVolume without target_path', 'Node', 'NodePublishVolume', { ...publish, target_path: '' }, INVALID_ARGUMENT, 'target_path is required'],
      ['NodePublishVolume with a relative target_path', 'Node', 'NodePublishVolume', { ...publish, target_path: 'published/p' }, INVALID_ARGUMENT, "target_path 'published/p' is not an absolute path"],
      ['NodePublishVolume into the mount root', 'Node', 'NodePublishVolume', { ...publish, target_path: join(root, 'x') }, INVALID_ARGUMENT,
        `target_path ${join(root, 'x')} overlaps netvol's mount root ${root}; use a target outside it`],
      ['NodePublishVolume without volume_capability', 'Node', 'NodePublishVolume', { ...publish, volume_capability: null }, INVALID_ARGUMENT,
        'volume_capability is required (access type mount and an access mode)'],
      ['NodePublishVolume for block access', 'Node', 'NodePublishVolume', { ...publish, volume_capability: BLOCK }, INVALID_ARGUMENT,
        'volume_capability: block access is not supported: netvol serves shares as mounted directories; create the volume with --type mount'],
      ['NodePublishVolume of an id netvol never made', 'Node', 'NodePublishVolume', { ...publish, volume_id: 'vol-1', volume_context: {} }, INVALID_ARGUMENT,
        "volume_id 'vol-1' is not a netvol volume id (like nfs;retain;pg;10.0.0.5:/exports); use the volume_id CreateVolume returned"],
      ['NodePublishVolume with the context of another volume', 'Node', 'NodePublishVolume', { ...publish, volume_context: { protocol: 'nfs', share: SHARE, subdir: 'other', onDelete: 'retain' } },
        INVALID_ARGUMENT, "volume_context describes another volume than volume_id 'nfs;retain;pg;fileserver:/export' (it describes 'nfs;retain;other;fileserver:/export'); pass the volume_context CreateVolume returned with this volume_id"],
      ['NodeUnpublishVolume without volume_id', 'Node', 'NodeUnpublishVolume', { target_path: target('p') }, INVALID_ARGUMENT, 'volume_id is required'],
      ['NodeUnpublishVolume without target_path', 'Node', 'NodeUnpublishVolume', { volume_id: volume['volume_id'] }, INVALID_ARGUMENT, 'target_path is required'],
    ];
    const answers = [];
    for (const [title, service, method, request] of cases) answers.push([title, await client.fails(service, method, request)]);
    expect(answers).toEqual(cases.map(([title, , , , code, details]) => [title, { code, details }]));
    // Nothing was made, mounted or left behind by any of them.
    expect(await readdir(share)).toEqual(['pg']);
    expect(mountedUnder(dir.path)).toEqual([]);
    expect(existsSync(target('p'))).toBe(false);
  });

  it('ValidateVolumeCapabilities confirms mounted access and explains what it cannot confirm', async () => {
    const { client } = await start();
    const { volume } = (await client.call('Controller', 'CreateVolume', { name: 'pg', volume_capabilities: [MULTI], parameters: { share: SHARE } })) as { volume: Reply };
    expect(await client.call('Controller', 'ValidateVolumeCapabilities', { ...volume, volume_capabilities: [MULTI] })).toEqual({
      confirmed: { volume_context: volume['volume_context'], volume_capabilities: [{ mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' }, access_type: 'mount' }], parameters: {} },
      message: '',
    });
    expect(await client.call('Controller', 'ValidateVolumeCapabilities', { ...volume, volume_capabilities: [BLOCK] })).toEqual({
      confirmed: null,
      message: 'volume_capabilities[0]: block access is not supported: netvol serves shares as mounted directories; create the volume with --type mount',
    });
  });

  it('answers UNIMPLEMENTED for the RPCs netvol does not serve', async () => {
    const { client } = await start();
    expect(await client.fails('Controller', 'ListVolumes')).toEqual({
      code: grpc.status.UNIMPLEMENTED,
      details: 'ListVolumes is not implemented: netvol keeps no list of volumes (each volume_id describes its own volume, and any manager may have created it); the orchestrator has the list',
    });
    for (const path of ['/csi.v1.Controller/ControllerPublishVolume', '/csi.v1.Node/NodeStageVolume', '/csi.v1.Node/NodeGetVolumeStats']) {
      expect((await client.unknownMethod(path)).code).toBe(grpc.status.UNIMPLEMENTED);
    }
  });

  it('--node-only serves no controller and says so; --controller-only serves no node', async () => {
    const node = await start(['--node-only']);
    expect(await node.client.call('Identity', 'GetPluginCapabilities')).toEqual({ capabilities: [] });
    expect((await node.client.fails('Controller', 'CreateVolume', { name: 'x', volume_capabilities: [MULTI], parameters: { share: SHARE } })).code).toBe(grpc.status.UNIMPLEMENTED);
    expect(await node.client.call('Node', 'NodeGetInfo')).toEqual({ node_id: 'node-1', max_volumes_per_node: '0' });
    await kill(node.daemon);
    const controller = await start(['--controller-only']);
    expect(await controller.client.call('Identity', 'GetPluginCapabilities')).toEqual({ capabilities: [{ service: { type: 'CONTROLLER_SERVICE' }, type: 'service' }] });
    expect((await controller.client.fails('Node', 'NodeGetInfo')).code).toBe(grpc.status.UNIMPLEMENTED);
    const both = spawnDaemon(args(['--node-only', '--controller-only']));
    running.push(both);
    expect(await both.exited).toBe(1);
    expect(both.output()).toContain('netvol: pass at most one of --controller-only and --node-only (neither serves both)');
  });

  it('a target already mounted by something else is refused; NodeUnpublish of an unknown target succeeds and removes it', async () => {
    const { client } = await start();
    const { volume } = (await client.call('Controller', 'CreateVolume', { name: 'pg', volume_capabilities: [MULTI], parameters: { share: SHARE } })) as { volume: Reply };
    await mkdir(target('busy'), { recursive: true });
    spawnSync(FAKE_MOUNT, ['-t', 'tmpfs', '--', 'someone-else', target('busy')]);
    expect(await client.fails('Node', 'NodePublishVolume', { ...volume, target_path: target('busy'), volume_capability: MULTI })).toEqual({
      code: grpc.status.FAILED_PRECONDITION,
      details: `target_path ${target('busy')} is already a mountpoint of someone-else (tmpfs), not of this volume; unmount it or use another target`,
    });
    // The share mounted for the refused publish came off again.
    expect(mountedUnder(realpathSync(base))).toEqual([]);
    await mkdir(target('never'), { recursive: true });
    expect(await client.call('Node', 'NodeUnpublishVolume', { volume_id: volume['volume_id'], target_path: target('never') })).toEqual({});
    expect(existsSync(target('never'))).toBe(false);
  });

  it("Kubernetes' order, with the metadata kubelet and the provisioner add to parameters and context", async () => {
    const { client } = await start();
    expect(await client.call('Identity', 'GetPluginInfo')).toEqual({ name: 'netvol.csi', vendor_version: VERSION });
    expect(await client.call('Node', 'NodeGetInfo')).toEqual({ node_id: 'node-1', max_volumes_per_node: '0' });
    await client.call('Identity', 'GetPluginCapabilities');
    await client.call('Controller', 'ControllerGetCapabilities');
    const { volume } = (await client.call('Controller', 'CreateVolume', {
      name: 'pvc-5f0c3c1e-8f39-4c1e-9d3b-0a8c7c2f1b2a',
      volume_capabilities: [{ mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
      parameters: { share: SHARE, 'csi.storage.k8s.io/pvc/name': 'data', 'csi.storage.k8s.io/pvc/namespace': 'default' },
    })) as { volume: { volume_id: string; volume_context: Record<string, string> } };
    expect(volume.volume_id).toBe('nfs;retain;pvc-5f0c3c1e-8f39-4c1e-9d3b-0a8c7c2f1b2a;fileserver:/export');
    expect(await client.call('Node', 'NodeGetCapabilities')).toEqual({ capabilities: [] });
    const pod = { 'csi.storage.k8s.io/pod.name': 'web-0', 'csi.storage.k8s.io/pod.namespace': 'default', 'csi.storage.k8s.io/ephemeral': 'false' };
    const publish = { volume_id: volume.volume_id, volume_context: { ...volume.volume_context, ...pod }, target_path: target('pods/uid/volumes/kubernetes.io~csi/data/mount'), volume_capability: { mount: { fs_type: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' } }, readonly: false };
    expect(await client.call('Node', 'NodePublishVolume', publish)).toEqual({});
    expect(mountedAt(publish.target_path)).toHaveLength(1);
    expect(await client.call('Node', 'NodeUnpublishVolume', { volume_id: volume.volume_id, target_path: publish.target_path })).toEqual({});
    expect(await client.call('Controller', 'DeleteVolume', { volume_id: volume.volume_id })).toEqual({});
    expect(mountedUnder(dir.path)).toEqual([]);
    expect(await readdir(share)).toEqual(['pvc-5f0c3c1e-8f39-4c1e-9d3b-0a8c7c2f1b2a']);
  });

  it("a restart that lost the share's mount but kept the targets' (a plugin's mount namespace gone): publish and unpublish still end with nothing mounted", async () => {
    let { daemon, client } = await start();
    const { volume } = (await client.call('Controller', 'CreateVolume', { name: 'pg', volume_capabilities: [MULTI], parameters: { share: SHARE } })) as { volume: Reply };
    for (const name of ['t1', 't2']) await client.call('Node', 'NodePublishVolume', { ...volume, target_path: target(name), volume_capability: MULTI });
    await kill(daemon);
    for (const entry of mountedUnder(realpathSync(base))) spawnSync('umount', ['-l', entry.mountPoint]);
    ({ daemon, client } = await start());
    expect(daemon.output()).toContain('is no longer mounted');
    await waitFor(async () => (await records()).length === 0, 5000, 'the record no target holds to be pruned');
    // The task on t1 is started again; the one on t2 went while the plugin was away.
    expect(await client.call('Node', 'NodePublishVolume', { ...volume, target_path: target('t1'), volume_capability: MULTI })).toEqual({});
    expect(mountedUnder(realpathSync(base))).toHaveLength(1);
    expect(await client.call('Node', 'NodeUnpublishVolume', { volume_id: volume['volume_id'], target_path: target('t2') })).toEqual({});
    expect(await client.call('Node', 'NodeUnpublishVolume', { volume_id: volume['volume_id'], target_path: target('t1') })).toEqual({});
    expect(mountedUnder(dir.path)).toEqual([]);
    expect(await records()).toEqual([]);
  });

  describe('SIGKILL between any two calls, then a restart: the CO repeats the last call and the rest succeeds', () => {
    const steps: Array<[string, (client: CsiClient) => Promise<unknown>]> = [
      ['Probe', (c) => c.call('Identity', 'Probe')],
      ['GetPluginCapabilities', (c) => c.call('Identity', 'GetPluginCapabilities')],
      ['ControllerGetCapabilities', (c) => c.call('Controller', 'ControllerGetCapabilities')],
      ['CreateVolume', (c) => c.call('Controller', 'CreateVolume', { name: 'pg', volume_capabilities: [MULTI], parameters: { share: SHARE, onDelete: 'archive', mode: '0750' } })],
      ['NodeGetCapabilities', (c) => c.call('Node', 'NodeGetCapabilities')],
      ['NodeGetInfo', (c) => c.call('Node', 'NodeGetInfo')],
      ['NodePublishVolume t1', (c) => c.call('Node', 'NodePublishVolume', { ...VOLUME, target_path: target('t1'), volume_capability: MULTI })],
      ['NodePublishVolume t2', (c) => c.call('Node', 'NodePublishVolume', { ...VOLUME, target_path: target('t2'), volume_capability: MULTI })],
      ['NodeUnpublishVolume t1', (c) => c.call('Node', 'NodeUnpublishVolume', { volume_id: VOLUME.volume_id, target_path: target('t1') })],
      ['NodeUnpublishVolume t2', (c) => c.call('Node', 'NodeUnpublishVolume', { volume_id: VOLUME.volume_id, target_path: target('t2') })],
      ['DeleteVolume', (c) => c.call('Controller', 'DeleteVolume', { volume_id: VOLUME.volume_id })],
    ];

    it.each(steps.slice(0, -1).map(([name], index) => [name, steps[index + 1]?.[0] ?? '', index]))('killed after %s, before %s', async (_after, _before, index) => {
      let { daemon, client } = await start();
      const answers: unknown[] = [];
      for (const [position, [, step]] of steps.entries()) {
        answers.push(await step(client));
        if (position !== index) continue;
        await kill(daemon);
        ({ daemon, client } = await start());
        // A CO that saw no answer sends the call again: it gets the same answer.
        expect(await step(client)).toEqual(answers[position]);
        if (steps[position]?.[0].startsWith('NodePublishVolume')) expect(mountedUnder(realpathSync(base))).toHaveLength(1);
      }
      expect(answers[3]).toEqual({ volume: { capacity_bytes: '0', ...VOLUME } });
      expect(mountedUnder(dir.path)).toEqual([]);
      expect(existsSync(target('t1')) || existsSync(target('t2'))).toBe(false);
      expect(await records()).toEqual([]);
      const left = await readdir(share);
      expect(left).toHaveLength(1);
      expect(left[0]).toMatch(/^archived-pg-\d{8}T\d{6}Z$/);
      expect((await stat(join(share, left[0] ?? ''))).mode & 0o777).toBe(0o750);
    });
  });
});

const VOLUME = { volume_id: 'nfs;archive;pg;fileserver:/export', volume_context: { protocol: 'nfs', share: SHARE, subdir: 'pg', onDelete: 'archive' } };
