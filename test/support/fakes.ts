import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { VolumeDriver, type DriverDeps } from '../../src/core/volume-driver.js';
import { ShareProvisioner } from '../../src/core/share-provisioner.js';
import { createLogger } from '../../src/logger.js';
import { nfsProtocol } from '../../src/protocols/nfs.js';
import type { ProtocolHandler } from '../../src/protocols/protocol.js';
import { GroupCommitter, type StateStore } from '../../src/state/state-store.js';
import { emptyState, type StateFile } from '../../src/state/state-schema.js';
import {
  CommandFailedError,
  CommandTimeoutError,
  type Command,
  type CommandResult,
  type CommandRunner,
  type RunOptions,
} from '../../src/system/command-runner.js';
import type { MountInfoEntry } from '../../src/system/mountinfo.js';
import type { MountTable } from '../../src/system/mount-table.js';
import { CommandMounter } from '../../src/system/mounter.js';

/** A kernel mount table in memory. */
export class FakeMountTable implements MountTable {
  entries: MountInfoEntry[] = [];
  private nextId = 100;

  add(mountPoint: string, fsType = 'nfs', source = 'server:/export'): void {
    this.entries.push({
      mountId: this.nextId++,
      parentId: 1,
      root: '/',
      mountPoint,
      mountOptions: 'rw',
      fsType,
      source,
      superOptions: 'rw',
    });
  }

  remove(mountPoint: string): void {
    const index = this.entries.map((e) => e.mountPoint).lastIndexOf(mountPoint);
    if (index >= 0) this.entries.splice(index, 1);
  }

  async list(): Promise<MountInfoEntry[]> {
    return [...this.entries];
  }
}

type Behaviour = (command: Command) => CommandResult | Error | 'hang';

/**
 * Stands in for mount/umount: records every argv, updates the fake mount table, and can
 * be told to fail or hang per call.
 */
export class FakeRunner implements CommandRunner {
  readonly calls: Command[] = [];
  next: Behaviour[] = [];
  /** Mount sources whose mount hangs until the timeout, whatever the call order. */
  readonly hangingSources = new Set<string>();
  /** This many next mounts exit 0 without mounting anything. */
  phantomMounts = 0;
  /** The filesystem type the fake kernel reports, whatever -t said. */
  mountedFsType: string | undefined;

  constructor(private readonly table: FakeMountTable) {}

  async run(command: Command, options: RunOptions): Promise<CommandResult> {
    this.calls.push({ file: command.file, args: [...command.args] });
    const hangs = command.args.some((arg) => this.hangingSources.has(arg));
    const behaviour = hangs ? () => 'hang' as const : this.next.shift();
    const outcome = behaviour ? behaviour(command) : undefined;
    if (outcome === 'hang') {
      await new Promise((resolve) => setTimeout(resolve, options.timeoutMs));
      throw new CommandTimeoutError(command, options.timeoutMs);
    }
    if (outcome instanceof Error) throw outcome;
    const target = command.args[command.args.length - 1] ?? '';
    if (command.file === 'mount') {
      if (this.phantomMounts > 0) {
        // Like mount.nfs with bg: exit 0, nothing mounted.
        this.phantomMounts--;
        return outcome ?? { stdout: '', stderr: '' };
      }
      const type = this.mountedFsType ?? command.args[command.args.indexOf('-t') + 1] ?? 'nfs';
      this.table.add(target, type, command.args[command.args.length - 2]);
    }
    if (command.file === 'umount') this.table.remove(target);
    return outcome ?? { stdout: '', stderr: '' };
  }

  failNext(stderr: string, exitCode = 32): void {
    this.next.push((command) => new CommandFailedError(command, exitCode, stderr, ''));
  }

  hangNext(): void {
    this.next.push(() => 'hang');
  }

  mounts(): Command[] {
    return this.calls.filter((call) => call.file === 'mount');
  }

  umounts(): Command[] {
    return this.calls.filter((call) => call.file === 'umount');
  }
}

/** A state store in memory that keeps every saved snapshot and can be told to fail. */
export class MemoryStore implements StateStore {
  readonly path = '/memory/state.json';
  saved: string[] = [];
  failNextSave = false;
  constructor(private initial?: StateFile) {}

  async load(): Promise<StateFile | undefined> {
    return this.initial ? (JSON.parse(JSON.stringify(this.initial)) as StateFile) : undefined;
  }

  async save(state: StateFile): Promise<void> {
    if (this.failNextSave) {
      this.failNextSave = false;
      throw new Error('disk full');
    }
    this.saved.push(JSON.stringify(state));
  }

  last(): StateFile | undefined {
    const text = this.saved[this.saved.length - 1];
    return text ? (JSON.parse(text) as StateFile) : undefined;
  }
}

/** Collects log lines so tests can check what was (and was not) logged. */
export function memoryLogger(verbose = true): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { logger: createLogger({ verbose, format: 'json', destination }), lines };
}

export async function tempDir(prefix = 'netvol-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

export interface DriverFixture {
  driver: VolumeDriver;
  runner: FakeRunner;
  table: FakeMountTable;
  store: MemoryStore;
  state: StateFile;
  root: string;
  /** Where the provisioner mounts a share's root while it makes a directory. */
  stagingDir: string;
  lines: string[];
  cleanup: () => Promise<void>;
}

/** A VolumeDriver wired to fakes, with a real temporary base directory. */
export async function driverFixture(
  protocol: ProtocolHandler = nfsProtocol({ version: '4' }),
  timeoutMs = 200,
  unmountDelayMs = 0,
  extra: Partial<DriverDeps> = {},
): Promise<DriverFixture> {
  const dir = await tempDir();
  const table = new FakeMountTable();
  const runner = new FakeRunner(table);
  const store = new MemoryStore();
  const state = emptyState('boot-1');
  const { logger, lines } = memoryLogger();
  const root = join(dir.path, 'base', protocol.protocol);
  const mounter = new CommandMounter(runner, table, { timeoutMs, secretsDir: join(dir.path, 'secrets') }, logger);
  const committer = new GroupCommitter(store, () => state);
  const provisioner = new ShareProvisioner({ runner, mounter, stagingDir: join(dir.path, 'staging'), timeoutMs, logger });
  const driver = new VolumeDriver({
    protocol,
    mounter,
    mountTable: table,
    root,
    provisioner,
    state,
    commit: () => committer.commit(),
    clock: () => new Date('2026-01-02T03:04:05.000Z'),
    logger,
    unmountDelayMs,
    ...extra,
  });
  return { driver, runner, table, store, state, root, stagingDir: join(dir.path, 'staging'), lines, cleanup: dir.cleanup };
}
