import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/errors.js';
import { CsiController } from '../../src/frontends/csi/controller.js';
import { VolumeLedger } from '../../src/frontends/csi/volume-ledger.js';
import { ShareProvisioner } from '../../src/core/share-provisioner.js';
import type { Command, CommandResult, RunOptions } from '../../src/system/command-runner.js';
import { CommandMounter } from '../../src/system/mounter.js';
import { FakeMountTable, FakeRunner, memoryLogger, tempDir } from '../support/fakes.js';

// The controller's provisioning against fakes: which share is mounted where, which helper
// commands run with which arguments, and what CreateVolume and DeleteVolume answer.

const CAPABILITY = { mount: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' as const }, access_type: 'mount' as const };
const NOW = new Date('2026-01-02T03:04:05.000Z');

/** Answers the share-directory helper as if the directories in `existing` were on the share. */
class HelperRunner extends FakeRunner {
  readonly existing = new Set<string>();
  readonly credentialFiles: string[] = [];

  override async run(command: Command, options: RunOptions): Promise<CommandResult> {
    const credentials = command.args.find((arg) => arg.includes('credentials='));
    const file = credentials?.match(/credentials=([^,]+)/)?.[1];
    if (file) this.credentialFiles.push(await readFile(file, 'utf8'));
    if (command.file !== process.execPath) return super.run(command, options);
    this.calls.push({ file: command.file, args: [...command.args] });
    const [, verb, , name, newName] = command.args;
    const exists = this.existing.has(name ?? '');
    if (verb === 'make') {
      this.existing.add(name ?? '');
      return { stdout: `${JSON.stringify({ made: !exists })}\n`, stderr: '' };
    }
    if (verb === 'remove') {
      this.existing.delete(name ?? '');
      return { stdout: `${JSON.stringify({ removed: exists })}\n`, stderr: '' };
    }
    if (exists) {
      this.existing.delete(name ?? '');
      this.existing.add(newName ?? '');
    }
    return { stdout: `${JSON.stringify({ renamed: exists })}\n`, stderr: '' };
  }

  /** The helper's argv after the script path: verb, mountpoint, name, ... */
  helperCalls(): string[][] {
    return this.calls.filter((call) => call.file === process.execPath).map((call) => call.args.slice(1));
  }
}

describe('CSI controller provisioning', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let runner: HelperRunner;
  let table: FakeMountTable;
  let lines: string[];
  let controller: CsiController;
  const ledgerPath = () => join(dir.path, 'controller-volumes.json');

  const build = async () => {
    const logged = memoryLogger();
    lines = logged.lines;
    const mounter = new CommandMounter(runner, table, { timeoutMs: 1000, secretsDir: join(dir.path, 'secrets') }, logged.logger);
    const provisioner = new ShareProvisioner({ runner, mounter, stagingDir: join(dir.path, 'staging'), timeoutMs: 1000, logger: logged.logger });
    return new CsiController({ provisioner, ledger: await VolumeLedger.open(ledgerPath(), logged.logger), clock: () => NOW, logger: logged.logger });
  };

  beforeEach(async () => {
    dir = await tempDir('netvol-csi-controller-');
    table = new FakeMountTable();
    runner = new HelperRunner(table);
    controller = await build();
  });
  afterEach(async () => dir.cleanup());

  const create = (name: string, parameters: Record<string, string>, secrets: Record<string, string> = {}) =>
    controller.createVolume({ name, volume_capabilities: [CAPABILITY], parameters, secrets });

  it('makes the directory with owner and mode on the share mounted briefly at a private staging path', async () => {
    const reply = await create('pg', { share: '10.0.0.5:/exports', uid: '999', gid: '998', mode: '0750', onDelete: 'archive' });
    expect(reply).toEqual({
      volume: {
        capacity_bytes: 0,
        volume_id: 'nfs;archive;pg;10.0.0.5:/exports',
        volume_context: { protocol: 'nfs', share: '10.0.0.5:/exports', subdir: 'pg', onDelete: 'archive' },
      },
    });
    const [mount] = runner.mounts();
    expect(mount?.args.slice(0, 4)).toEqual(['-t', 'nfs4', '--', '10.0.0.5:/exports']);
    const staging = mount?.args[4] ?? '';
    expect(staging.startsWith(join(dir.path, 'staging'))).toBe(true);
    expect(runner.helperCalls()).toEqual([['make', staging, 'pg', '750', '999', '998']]);
    expect(runner.umounts().map((call) => call.args)).toEqual([['--', staging]]);
    expect(table.entries).toEqual([]);
  });

  it('answers a repeat as the first time, even though the directory exists by then', async () => {
    const first = await create('pg', { share: '10.0.0.5:/exports', onDelete: 'delete' });
    const commands = runner.calls.length;
    const again = await create('pg', { share: '10.0.0.5:/exports', onDelete: 'delete' });
    expect(again).toEqual(first);
    // Answered from the ledger: no second mount of the share within swarmkit's 15 s deadline.
    expect(runner.calls.length).toBe(commands);
    expect(first.volume.volume_id).toBe('nfs;delete;pg;10.0.0.5:/exports');
    // Across a restart too: the answer is on disk.
    controller = await build();
    expect(await create('pg', { share: '10.0.0.5:/exports', onDelete: 'delete' })).toEqual(first);
  });

  it('refuses the same name with other parameters (ALREADY_EXISTS), saying what differs', async () => {
    await create('pg', { share: '10.0.0.5:/exports' });
    const refused = create('pg', { share: '10.0.0.6:/exports', mode: '0700' });
    await expect(refused).rejects.toThrow(ConflictError);
    await expect(refused).rejects.toThrow(
      `volume 'pg' was created earlier with other parameters (mode unset then, '0700' now; share '10.0.0.5:/exports' then, '10.0.0.6:/exports' now); remove it first (docker volume rm pg) or use another name. If no volume of that name exists any more (removed through another manager, or with docker volume rm -f, which skips the plugin), delete its entry from ${ledgerPath()} on this manager`,
    );
  });

  it('retains a directory that was on the share before, whatever onDelete says', async () => {
    runner.existing.add('pg');
    const reply = await create('pg', { share: '10.0.0.5:/exports', onDelete: 'delete' });
    expect(reply.volume.volume_id).toBe('nfs;retain;pg;10.0.0.5:/exports');
    expect(reply.volume.volume_context['onDelete']).toBe('retain');
    expect(lines.join('')).toContain('onDelete=delete was asked, but pg existed on the share before: netvol deletes or archives only directories it made, so this one is retained');
    await controller.deleteVolume({ volume_id: reply.volume.volume_id });
    expect(runner.existing.has('pg')).toBe(true);
  });

  it('leaves the share alone for subdir= (the share itself)', async () => {
    const reply = await create('whole', { share: '10.0.0.5:/exports', subdir: '' });
    expect(reply.volume.volume_id).toBe('nfs;retain;;10.0.0.5:/exports');
    expect(runner.calls).toEqual([]);
  });

  it('DeleteVolume deletes, archives or retains, from the volume_id alone, and a repeat finds it done', async () => {
    const deleted = await create('a', { share: '10.0.0.5:/exports', onDelete: 'delete', version: '3' });
    const archived = await create('b', { share: '10.0.0.5:/exports', onDelete: 'archive' });
    const retained = await create('c', { share: '10.0.0.5:/exports' });
    runner.calls.length = 0;
    await controller.deleteVolume({ volume_id: deleted.volume.volume_id });
    await controller.deleteVolume({ volume_id: archived.volume.volume_id });
    await controller.deleteVolume({ volume_id: retained.volume.volume_id });
    const helper = runner.helperCalls().map(([verb, , ...rest]) => [verb, ...rest]);
    expect(helper).toEqual([['remove', 'a'], ['rename', 'b', 'archived-b-20260102T030405Z']]);
    // The v3-only server is mounted as v3 for the delete too: the id carries the version.
    expect(runner.mounts()[0]?.args.slice(0, 4)).toEqual(['-t', 'nfs', '-o', 'nfsvers=3,port=2049,nolock,proto=tcp']);
    expect([...runner.existing].sort()).toEqual(['archived-b-20260102T030405Z', 'c']);
    await controller.deleteVolume({ volume_id: deleted.volume.volume_id });
    await controller.deleteVolume({ volume_id: archived.volume.volume_id });
    expect([...runner.existing].sort()).toEqual(['archived-b-20260102T030405Z', 'c']);
    // The names are free again, with any parameters.
    expect(JSON.parse(await readFile(ledgerPath(), 'utf8'))).toEqual({ version: 1, volumes: {} });
    await create('a', { share: '10.0.0.9:/other' });
  });

  it('DeleteVolume of an id netvol never made succeeds and touches nothing', async () => {
    expect(await controller.deleteVolume({ volume_id: 'vol-0123' })).toEqual({});
    expect(runner.calls).toEqual([]);
  });

  it('hands CIFS credentials to mount.cifs in a credentials file only', async () => {
    await create('docs', { protocol: 'cifs', share: '//fs/docs', onDelete: 'delete' }, { username: 'alice', password: 'S3cret-pw', domain: 'CORP' });
    expect(runner.credentialFiles).toEqual(['username=alice\npassword=S3cret-pw\ndomain=CORP\n']);
    expect(JSON.stringify(runner.calls)).not.toContain('S3cret-pw');
    expect(lines.join('')).not.toContain('S3cret-pw');
    expect(await readFile(ledgerPath(), 'utf8')).not.toContain('S3cret-pw');
  });

  it('advertises CREATE_DELETE_VOLUME only, and answers ListVolumes UNIMPLEMENTED', async () => {
    expect(controller.capabilities()).toEqual({ capabilities: [{ rpc: { type: 'CREATE_DELETE_VOLUME' } }] });
    await expect(controller.listVolumes()).rejects.toMatchObject({ grpcCode: 12 });
  });
});
