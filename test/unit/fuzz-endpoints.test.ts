import { createServer, request, Agent, type Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT, createApp } from '../../src/frontends/legacy/app.js';
import { routeTable } from '../../src/frontends/legacy/routes.js';
import { cifsProtocol } from '../../src/protocols/cifs.js';
import { nfsProtocol } from '../../src/protocols/nfs.js';
import type { ProtocolHandler } from '../../src/protocols/protocol.js';
import { driverFixture, type DriverFixture } from '../support/fakes.js';
import { Prng } from '../support/robustness-prng.js';

/*
 * Seeded fuzz of every plugin endpoint against the in-process express app (fake mount
 * runner, real temporary base directory), over a Unix socket with a keep-alive agent.
 * Every reply must be the endpoint's success shape or {"Err": "<non-empty>"}, never an
 * unexpected exception; every command is mount/umount with an argv array whose operands
 * after `--` cannot be read as flags and whose target lies strictly inside the root; and
 * nothing is created outside the fixture's temporary directory.
 */

const SEED = 0x5eed_f00d;
const CASES_PER_PROTOCOL = 5_200;
const LIMIT_BYTES = 64 * 1024;
const ENDPOINTS = [
  '/Plugin.Activate',
  '/VolumeDriver.Create',
  '/VolumeDriver.Remove',
  '/VolumeDriver.Mount',
  '/VolumeDriver.Unmount',
  '/VolumeDriver.Path',
  '/VolumeDriver.Get',
  '/VolumeDriver.List',
  '/VolumeDriver.Capabilities',
] as const;
type Endpoint = (typeof ENDPOINTS)[number];

/** Names that plain JavaScript objects answer to by inheritance: volumes like any other. */
const PROTOTYPE_KEYS = Object.getOwnPropertyNames(Object.prototype);

// ---------------------------------------------------------------- input generators

const VALID_NAMES = ['v1', 'data', 'pg', 'web-01', 'a.b_c', '10.0.0.5/exports/a', 'host/path/', 'srv/share#sub', 'fs-12345678'];
const NASTY_PIECES = [
  '..', '.', '/', '//', '/etc', '../', '../../', '..%2f', '\0', '\n', '\r\n', '\t', '\x7f', ' ', '  ',
  ';', '|', '&', '$', '(', ')', '`', '<', '>', '*', '?', '$(reboot)', '`id`', '; rm -rf /', '&& touch /tmp/pwned',
  '-o', '--', '-rf', '-oremount', ',', '=', 'exec,suid', ' -o exec', '\\', '\\\\srv\\share', '#', '#..', '#/',
  'é', '日本語', '\u202e', '\ufeff', '\u0000x', '🦀', '\ud800', 'Ω/Ω', ':', '@', '%', '"', "'", '{}', '[]',
];
const OPTION_KEYS: Record<string, readonly string[]> = {
  nfs: ['share', 'create', 'nfsopts', 'version'],
  cifs: ['share', 'create', 'cifsopts', 'username', 'password', 'domain', 'security', 'fileMode', 'dirMode'],
};
const UNKNOWN_KEYS = ['o', 'type', 'device', '-o', 'share ', 'Share', '', 'nfsopts;', 'credentials', 'mountpoint', '\n', 'a'.repeat(300)];
const VALID_VALUES: Record<string, readonly string[]> = {
  share: ['10.0.0.5:/exports/x', 'host/share', '//srv/share', '[fd00::1]:/x', 'srv:/a/b/c', 'fileserver/public/sub', 'fs-12345678'],
  create: ['true', 'false', '1', '0', 'yes', 'no', ''],
  nfsopts: ['hard,timeo=600', 'nolock', 'vers=4.1,rsize=1048576', ''],
  cifsopts: ['vers=3.0', 'uid=1000,gid=1000', 'seal', ''],
  version: ['3', '4', '4.0', '4.1', '4.2'],
  username: ['alice', 'bob@corp', ''],
  password: ['S3cr3t-pw-1', 'S3cr3t-pw-2'],
  domain: ['CORP', 'corp.example'],
  security: ['ntlmssp', 'krb5', 'ntlmsspi'],
  fileMode: ['0644', '644', '0600'],
  dirMode: ['0755', '755'],
};
const SMUGGLE_VALUES = [
  '10.0.0.5:/x,rw', '10.0.0.5:/x -o exec', '-oremount', '--bind', 'ro,exec,suid', 'nolock,sec=none', 'a=b=c', '-o',
  '127.0.0.1:/x;rm -rf /', 'h:/x`id`', 'h:/x$(id)', 'h:/x\nusername=root', 'h:/x\0', 'user=root', 'password=x',
  'credentials=/etc/shadow', 'cred=/root/x', 'pass=x,guest', 'hard timeo=600', '/etc/passwd', '-host:/x', '-h/x',
  '//-o/share', '\\\\-srv\\share', 'h:/../../etc', 'h/..', 'x\u202e', 'fs-12345678/../../x', 'nfsvers=2,addr=1.2.3.4',
  '0644,uid=0', 'krb5;id', ' ', 'true ', 'TRUE', '4.3', '3,nolock', 'S3cr3t-pw-3\nusername=root',
];

function randomUnicode(rng: Prng, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) {
    const roll = rng.next();
    if (roll < 0.5) text += String.fromCharCode(rng.range(0x21, 0x7e));
    else if (roll < 0.6) text += String.fromCharCode(rng.range(0, 0x20));
    else if (roll < 0.9) text += String.fromCodePoint(rng.range(0xa0, 0x2fff));
    else text += String.fromCodePoint(rng.range(0x1f300, 0x1f6ff));
  }
  return text;
}

function genName(rng: Prng): string {
  if (rng.chance(0.03)) return rng.pick(PROTOTYPE_KEYS);
  const roll = rng.next();
  if (roll < 0.35) return rng.pick(VALID_NAMES);
  if (roll < 0.45) return `${rng.pick(VALID_NAMES)}${rng.pick(NASTY_PIECES)}`;
  if (roll < 0.55) return `${rng.pick(NASTY_PIECES)}${rng.pick(VALID_NAMES)}`;
  if (roll < 0.7) {
    const parts: string[] = [];
    for (let n = rng.range(1, 5); n > 0; n--) parts.push(rng.chance(0.5) ? rng.pick(NASTY_PIECES) : rng.pick(VALID_NAMES));
    return parts.join(rng.pick(['', '/', '/', '#']));
  }
  if (roll < 0.78) return randomUnicode(rng, rng.range(1, 40));
  if (roll < 0.84) return `seg/${'x'.repeat(rng.pick([254, 255, 256, 300]))}`;
  if (roll < 0.88) return 'n'.repeat(rng.pick([1023, 1024, 1025, 5000]));
  if (roll < 0.92) return Array.from({ length: rng.range(2, 60) }, () => rng.pick(['a', 'bb', '..', '.', 'é'])).join('/');
  if (roll < 0.96) return rng.pick(['', ' ', '/', '//', '.', '..', '#', '/#', 'a/', 'a//b', './a', 'a/.', 'a/..']);
  return `${rng.pick(['10.0.0.5', 'host', '[fd00::1]', '-o', '-h', 'h;id'])}/${rng.pick(NASTY_PIECES)}${rng.chance(0.5) ? `#${rng.pick(NASTY_PIECES)}` : ''}`;
}

function genValue(rng: Prng, key: string): string {
  const roll = rng.next();
  const valid = VALID_VALUES[key];
  if (valid && roll < 0.55) return rng.pick(valid);
  if (roll < 0.8) return rng.pick(SMUGGLE_VALUES);
  if (roll < 0.9) return randomUnicode(rng, rng.range(0, 30));
  return `${rng.pick(VALID_VALUES['share'] ?? [''])}${'y'.repeat(rng.pick([100, 4000, 20_000]))}`;
}

function genOpts(rng: Prng, protocol: string): unknown {
  const roll = rng.next();
  if (roll < 0.1) return null;
  if (roll < 0.15) return undefined;
  const opts: Record<string, unknown> = {};
  const keys = OPTION_KEYS[protocol] ?? [];
  for (let n = rng.range(0, 4); n > 0; n--) {
    const key = rng.chance(0.85) ? rng.pick(keys) : rng.pick(UNKNOWN_KEYS);
    opts[key] = rng.chance(0.92) ? genValue(rng, key) : wrongType(rng);
  }
  if (rng.chance(0.6)) opts['share'] ??= rng.pick(VALID_VALUES['share'] ?? ['h:/x']);
  return opts;
}

/** Valid calls on a few valid volumes, weighted so that volumes really get mounted and unmounted. */
const LIFECYCLE: readonly Endpoint[] = [
  '/VolumeDriver.Create', '/VolumeDriver.Create', '/VolumeDriver.Mount', '/VolumeDriver.Mount', '/VolumeDriver.Mount',
  '/VolumeDriver.Unmount', '/VolumeDriver.Unmount', '/VolumeDriver.Unmount', '/VolumeDriver.Remove', '/VolumeDriver.Get', '/VolumeDriver.Path',
];
const LIFECYCLE_NAMES = ['life1', 'life2', '10.0.0.9/exports/life', 'srv9/share#life'];
const ID_POOL = ['a'.repeat(64), 'b'.repeat(64), 'c'.repeat(64)];
function genId(rng: Prng): unknown {
  const roll = rng.next();
  if (roll < 0.6) return rng.pick(ID_POOL);
  if (roll < 0.7) return rng.hex(64);
  if (roll < 0.8) return rng.pick(['', '-o', '--', '../x', 'id\n', 'id\0', 'x'.repeat(256), 'x'.repeat(257), '$(id)', '__proto__', 'é']);
  if (roll < 0.9) return randomUnicode(rng, rng.range(1, 80));
  return wrongType(rng);
}

function deep(levels: number, open: string, close: string, inner = '1'): string {
  return `${open.repeat(levels)}${inner}${close.repeat(levels)}`;
}

function wrongType(rng: Prng): unknown {
  return rng.pick<() => unknown>([
    () => 42,
    () => -1.5e308,
    () => true,
    () => null,
    () => [],
    () => ['v1'],
    () => ({}),
    () => ({ Name: 'v1' }),
    () => '',
    () => 0,
  ])();
}

interface FuzzCase {
  readonly endpoint: Endpoint;
  readonly kind: string;
  readonly body: Buffer | undefined;
  readonly contentType?: string;
}

/** Placeholder replaced by a deep nest after JSON.stringify (stringify itself would overflow). */
const DEEP = '"__DEEP_NEST__"';

function genCase(rng: Prng, protocol: string): FuzzCase {
  const endpoint = rng.pick(ENDPOINTS);
  const contentType = rng.pick([undefined, undefined, undefined, 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'application/json; charset=latin1']);
  const roll = rng.next();
  const text = (kind: string, value: string): FuzzCase => ({ endpoint, kind, body: Buffer.from(value), ...(contentType ? { contentType } : {}) });
  if (roll < 0.5) {
    // An object body with fields of the right or wrong type.
    const body: Record<string, unknown> = {};
    if (rng.chance(0.93)) body['Name'] = rng.chance(0.9) ? genName(rng) : wrongType(rng);
    if (endpoint === '/VolumeDriver.Create' || rng.chance(0.1)) {
      const opts = genOpts(rng, protocol);
      if (opts !== undefined) body['Opts'] = opts;
    }
    if (endpoint === '/VolumeDriver.Mount' || endpoint === '/VolumeDriver.Unmount' || rng.chance(0.1)) {
      if (rng.chance(0.95)) body['ID'] = genId(rng);
    }
    if (rng.chance(0.08)) body[rng.pick(['Extra', 'name', 'NAME', '__proto__', 'constructor', 'Opts '])] = wrongType(rng);
    let json = JSON.stringify(body);
    if (rng.chance(0.04)) {
      // Deep nesting inside a field.
      const field = rng.pick(['Name', 'Opts', 'ID']);
      const levels = 10_000;
      const [open, close] = rng.pick([['[', ']'], ['{"a":', '}']] as const);
      json = JSON.stringify({ ...body, [field]: '__DEEP_NEST__' }).replace(DEEP, deep(levels, open, close));
    }
    if (rng.chance(0.1)) json = rng.pick([`${json}\n`, ` \t${json}\r\n`, `\ufeff${json}`]);
    return text('object', json);
  }
  if (roll < 0.6) {
    // Valid JSON that is not an object.
    return text('non-object', rng.pick(['[]', '[{"Name":"v1"}]', '"v1"', '""', '42', '-0', '1e999', 'null', 'true', 'false', '[null]', '{"Name":"v1"}[]']));
  }
  if (roll < 0.75) {
    // Malformed or truncated JSON.
    const valid = JSON.stringify({ Name: genName(rng), Opts: genOpts(rng, protocol) ?? {}, ID: rng.pick(ID_POOL) });
    const choice = rng.int(8);
    if (choice === 0) return text('truncated', valid.slice(0, rng.int(valid.length)));
    if (choice === 1) return text('garbage', randomUnicode(rng, rng.range(1, 200)));
    if (choice === 2) return { endpoint, kind: 'binary', body: Buffer.from(Array.from({ length: rng.range(1, 300) }, () => rng.int(256))) };
    if (choice === 3) return text('trailing', `${valid}${rng.pick(['}', ',', 'x', '{}', ']', '\0'])}`);
    if (choice === 4) return text('single-quotes', valid.replace(/"/g, "'"));
    if (choice === 5) return text('comments', `/* c */${valid}`);
    if (choice === 6) return { endpoint, kind: 'bad-utf8', body: Buffer.concat([Buffer.from('{"Name":"'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('"}')]) };
    return text('dup-keys', `{"Name":"v1","Name":${JSON.stringify(genName(rng))},"Opts":{"share":"h:/x","share":"-o"}}`);
  }
  if (roll < 0.78) {
    // Over the 64 kB limit.
    const size = LIMIT_BYTES + rng.range(1, 200_000);
    const choice = rng.int(3);
    if (choice === 0) return text('huge-name', JSON.stringify({ Name: 'h'.repeat(size) }));
    if (choice === 1) return text('huge-whitespace', `${' '.repeat(size)}{}`);
    return text('huge-opts', JSON.stringify({ Name: 'v1', Opts: { share: `h:/${'p'.repeat(size)}` } }));
  }
  if (roll < 0.82) {
    // Deep nesting as the whole body.
    const levels = rng.pick([100, 1_000, 10_000, 10_000, 30_000]);
    const [open, close] = rng.pick([['[', ']'], ['{"Name":', '}'], ['{"Opts":', '}']] as const);
    return text('deep', deep(levels, open, close, rng.pick(['1', '"v1"', '{}'])));
  }
  if (roll < 0.84) return { endpoint, kind: 'empty', body: rng.chance(0.5) ? undefined : Buffer.alloc(0) };
  // A well-formed lifecycle call on a small set of valid volumes, so mounts and unmounts happen.
  const call = rng.pick(LIFECYCLE);
  const body: Record<string, unknown> = { Name: rng.pick(LIFECYCLE_NAMES) };
  if (call === '/VolumeDriver.Create' && rng.chance(0.7)) body['Opts'] = rng.chance(0.3) ? null : { share: rng.pick(VALID_VALUES['share'] ?? ['h:/x']) };
  if (call === '/VolumeDriver.Mount' || call === '/VolumeDriver.Unmount') body['ID'] = rng.chance(0.8) ? ID_POOL[0] : rng.pick(ID_POOL);
  return { endpoint: call, kind: 'lifecycle', body: Buffer.from(`${JSON.stringify(body)}\n`) };
}

// ---------------------------------------------------------------- transport

interface Reply {
  readonly status: number;
  readonly text: string;
}

function post(socketPath: string, agent: Agent, path: string, body: Buffer | undefined, contentType?: string): Promise<Reply> {
  return new Promise((resolvePromise, reject) => {
    let settled = false;
    const headers: Record<string, string | number> = { Accept: 'application/vnd.docker.plugins.v1.2+json' };
    if (contentType) headers['Content-Type'] = contentType;
    if (body) headers['Content-Length'] = body.length;
    const req = request({ socketPath, agent, path, method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        settled = true;
        resolvePromise({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (error) => !settled && reject(error));
    });
    // The server may answer a too-large body early and close: only an error before any reply counts.
    req.on('error', (error) => !settled && reject(error));
    req.end(body);
  });
}

// ---------------------------------------------------------------- checks

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function insideRoot(root: string, path: unknown): boolean {
  return typeof path === 'string' && resolve(path) === path && path.startsWith(root + sep) && path.length > root.length + 1;
}

/** Problems with one reply, or [] when it is a success shape or a plain {"Err": "..."}. */
function checkReply(endpoint: Endpoint, reply: Reply, root: string): string[] {
  let body: unknown;
  try {
    body = JSON.parse(reply.text);
  } catch {
    return [`reply is not JSON: ${reply.text.slice(0, 200)}`];
  }
  if (!isRecord(body)) return [`reply is not a JSON object: ${reply.text.slice(0, 200)}`];
  const keys = Object.keys(body).sort().join(',');
  if (typeof body['Err'] === 'string' && body['Err'] !== '') {
    const problems: string[] = [];
    if (keys !== 'Err') problems.push(`error reply has extra fields: ${keys}`);
    if (reply.status === 200) problems.push('error reply with status 200');
    if (reply.status >= 500 && /internal error/.test(body['Err'])) problems.push(`unexpected exception: ${body['Err']}`);
    return problems;
  }
  if (reply.status !== 200) return [`status ${reply.status} without a non-empty Err: ${reply.text.slice(0, 200)}`];
  const ok = (() => {
    switch (endpoint) {
      case '/Plugin.Activate':
        return keys === 'Implements' && JSON.stringify(body['Implements']) === '["VolumeDriver"]';
      case '/VolumeDriver.Capabilities':
        return keys === 'Capabilities' && JSON.stringify(body['Capabilities']) === '{"Scope":"local"}';
      case '/VolumeDriver.Create':
      case '/VolumeDriver.Remove':
      case '/VolumeDriver.Unmount':
        return keys === 'Err' && body['Err'] === '';
      case '/VolumeDriver.Mount':
        return keys === 'Err,Mountpoint' && body['Err'] === '' && insideRoot(root, body['Mountpoint']);
      case '/VolumeDriver.Path':
        return keys === 'Err,Mountpoint' && body['Err'] === '' && (body['Mountpoint'] === '' || insideRoot(root, body['Mountpoint']));
      case '/VolumeDriver.Get': {
        const volume = body['Volume'];
        return (
          keys === 'Err,Volume' &&
          body['Err'] === '' &&
          isRecord(volume) &&
          typeof volume['Name'] === 'string' &&
          typeof volume['CreatedAt'] === 'string' &&
          !Number.isNaN(Date.parse(volume['CreatedAt'])) &&
          isRecord(volume['Status']) &&
          (volume['Mountpoint'] === undefined || insideRoot(root, volume['Mountpoint']))
        );
      }
      case '/VolumeDriver.List': {
        const volumes = body['Volumes'];
        return (
          keys === 'Err,Volumes' &&
          body['Err'] === '' &&
          Array.isArray(volumes) &&
          volumes.every((v) => isRecord(v) && typeof v['Name'] === 'string' && (v['Mountpoint'] === undefined || insideRoot(root, v['Mountpoint'])))
        );
      }
    }
  })();
  return ok ? [] : [`not the success shape of ${endpoint}: ${reply.text.slice(0, 300)}`];
}

/** Problems with the commands run so far: argv only, mount/umount only, operands not flags, targets inside root. */
function checkCommands(f: DriverFixture, secrets: readonly string[]): string[] {
  const problems: string[] = [];
  for (const call of f.runner.calls) {
    const shown = JSON.stringify(call).slice(0, 300);
    if (call.file === process.execPath) {
      // The directory helper: its own script, an operation, a staging mount and one path segment.
      const [script, operation, parent, name] = call.args;
      if (!script?.endsWith('/share-directory-helper.js')) problems.push(`node ran something else: ${shown}`);
      if (!['make', 'remove', 'rename'].includes(operation ?? '')) problems.push(`unknown helper operation: ${shown}`);
      if (!insideRoot(f.stagingDir, parent)) problems.push(`helper outside ${f.stagingDir}: ${shown}`);
      if (!name || name.includes('/') || name === '.' || name === '..') problems.push(`helper name is not one segment: ${shown}`);
      continue;
    }
    if (call.file !== 'mount' && call.file !== 'umount') problems.push(`ran ${call.file}: ${shown}`);
    if (!Array.isArray(call.args) || !call.args.every((arg) => typeof arg === 'string')) {
      problems.push(`argv is not an array of strings: ${shown}`);
      continue;
    }
    const dashdash = call.args.indexOf('--');
    if (dashdash < 0) problems.push(`no -- before the operands: ${shown}`);
    const operands = call.args.slice(dashdash + 1);
    if (operands.some((arg) => arg.startsWith('-'))) problems.push(`an operand after -- starts with '-': ${shown}`);
    // eslint-disable-next-line no-control-regex
    if (call.args.some((arg) => /[\x00-\x1f\x7f]/.test(arg))) problems.push(`control character in argv: ${shown}`);
    const target = call.args[call.args.length - 1];
    if (!insideRoot(f.root, target) && !insideRoot(f.stagingDir, target)) problems.push(`target outside ${f.root} and ${f.stagingDir}: ${shown}`);
    if (call.file === 'mount' && operands.length !== 2) problems.push(`mount has ${operands.length} operands: ${shown}`);
    if (call.file === 'umount' && operands.length !== 1) problems.push(`umount has ${operands.length} operands: ${shown}`);
    for (const secret of secrets) if (call.args.some((arg) => arg.includes(secret))) problems.push(`password in argv: ${shown}`);
  }
  return problems;
}

/** Every path below dir (lstat, no following links). */
function walk(dir: string, into: Set<string> = new Set()): Set<string> {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return into;
  }
  for (const entry of entries) {
    const path = join(dir, entry);
    into.add(path);
    if (lstatSync(path).isDirectory()) walk(path, into);
  }
  return into;
}

// ---------------------------------------------------------------- the fuzz

interface Harness {
  f: DriverFixture;
  server: Server;
  socket: string;
  agent: Agent;
  sandbox: string;
}

/** The fixture's temp dir goes inside a private sandbox, so anything created beside it is seen. */
async function startHarness(protocol: ProtocolHandler): Promise<Harness> {
  const sandbox = mkdtempSync(join(tmpdir(), 'netvol-fuzz-'));
  const inner = join(sandbox, 'tmp');
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = inner;
  mkdirSync(inner);
  let f: DriverFixture;
  try {
    f = await driverFixture(protocol);
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
  }
  const app = createApp({ routes: routeTable(f.driver), logger: f.driver['deps'].logger, secretKeys: protocol.secretKeys });
  const server = createServer(app);
  const socket = join(sandbox, 'fuzz.sock');
  await new Promise<void>((done) => server.listen(socket, done));
  return { f, server, socket, agent: new Agent({ keepAlive: true, maxSockets: 1 }), sandbox };
}

async function stopHarness(h: Harness | undefined): Promise<void> {
  if (!h) return;
  h.agent.destroy();
  await new Promise<void>((done) => h.server.close(() => done()));
  await h.f.cleanup();
  rmSync(h.sandbox, { recursive: true, force: true });
}

interface Summary {
  cases: number;
  accepted: number;
  rejected: number;
  byKind: Record<string, { accepted: number; rejected: number }>;
  mounts: number;
  umounts: number;
  failures: string[];
}

async function fuzz(h: Harness, protocol: string, seed: number, cases: number): Promise<Summary> {
  const rng = new Prng(seed);
  const summary: Summary = { cases: 0, accepted: 0, rejected: 0, byKind: {}, mounts: 0, umounts: 0, failures: [] };
  const fixtureDir = resolve(h.f.root, '../..');
  const before = walk(h.sandbox);
  const secrets = ['S3cr3t-pw-1', 'S3cr3t-pw-2', 'S3cr3t-pw-3'];
  // Every place a name could escape to, to check at the end that nothing appeared there.
  const escapeCandidates = new Map<string, boolean>();
  for (let i = 0; i < cases; i++) {
    const testCase = genCase(rng, protocol);
    if (testCase.body) {
      const text = testCase.body.toString('utf8');
      const name = /"Name":("(?:[^"\\]|\\.)*")/.exec(text)?.[1];
      if (name !== undefined) {
        try {
          const parsed = JSON.parse(name) as string;
          const path = resolve(h.f.root, parsed);
          const rootOrAbove = path === h.f.root || h.f.root.startsWith(path + sep);
          if (!parsed.includes('\0') && !path.startsWith(h.f.root + sep) && !rootOrAbove && !escapeCandidates.has(path)) {
            escapeCandidates.set(path, existsSync(path));
          }
        } catch {
          // not a complete string: fine
        }
      }
    }
    summary.cases++;
    const label = `case ${i} (${protocol}, ${testCase.kind}) ${testCase.endpoint} ${testCase.contentType ?? ''} ${testCase.body?.toString('utf8').slice(0, 160) ?? '<no body>'}`;
    let reply: Reply;
    try {
      reply = await post(h.socket, h.agent, testCase.endpoint, testCase.body, testCase.contentType);
    } catch (error) {
      summary.failures.push(`${label}: no reply: ${(error as Error).message}`);
      continue;
    }
    const problems = checkReply(testCase.endpoint, reply, h.f.root);
    const unexpected = h.f.lines.filter((line) => line.includes('Unexpected error'));
    if (unexpected.length > 0) problems.push(`logged: ${unexpected[0]?.slice(0, 300)}`);
    h.f.lines.splice(0);
    for (const problem of problems) summary.failures.push(`${label}: ${problem}`);
    const accepted = reply.status === 200 && !/"Err":"[^"]/.test(reply.text);
    const kind = (summary.byKind[testCase.kind] ??= { accepted: 0, rejected: 0 });
    if (accepted) {
      summary.accepted++;
      kind.accepted++;
    } else {
      summary.rejected++;
      kind.rejected++;
    }
  }
  summary.failures.push(...checkCommands(h.f, secrets));
  summary.mounts = h.f.runner.mounts().length;
  summary.umounts = h.f.runner.umounts().length;
  for (const path of walk(h.sandbox)) {
    if (!before.has(path) && !path.startsWith(fixtureDir + sep)) summary.failures.push(`created outside the fixture dir: ${path}`);
  }
  for (const [path, existed] of escapeCandidates) {
    if (!existed && existsSync(path)) summary.failures.push(`a name escaped the root: ${path} exists`);
  }
  return summary;
}

function report(protocol: string, s: Summary, ms: number): void {
  const kinds = Object.entries(s.byKind)
    .map(([kind, n]) => `${kind} ${n.accepted}/${n.accepted + n.rejected}`)
    .join(', ');
  console.log(
    `fuzz ${protocol}: ${s.cases} cases, ${s.accepted} accepted, ${s.rejected} rejected, ${s.mounts} mount and ${s.umounts} umount commands, ${s.failures.length} failures, ${ms} ms (accepted/total by kind: ${kinds})`,
  );
}

describe('fuzzing every plugin endpoint', () => {
  const protocols: Array<[string, () => ProtocolHandler]> = [
    ['nfs', () => nfsProtocol({ version: '4' })],
    ['cifs', () => cifsProtocol({}, async () => undefined)],
  ];
  let totalCases = 0;

  afterAll(() => {
    console.log(`fuzz total: ${totalCases} cases over ${ENDPOINTS.length} endpoints`);
  });

  it.each(protocols)(
    'answers %s calls with a success shape or {"Err"}, runs only mount/umount argv inside the root',
    async (protocol, make) => {
      let h: Harness | undefined;
      try {
        h = await startHarness(make());
        const started = Date.now();
        const summary = await fuzz(h, protocol, SEED ^ protocol.length, CASES_PER_PROTOCOL);
        report(protocol, summary, Date.now() - started);
        totalCases += summary.cases;
        expect(summary.failures.slice(0, 20)).toEqual([]);
        expect(summary.cases).toBeGreaterThanOrEqual(5_000);
        expect(summary.accepted).toBeGreaterThan(500);
        expect(summary.rejected).toBeGreaterThan(2_000);
        expect(summary.mounts).toBeGreaterThan(10);
        expect(summary.umounts).toBeGreaterThan(10);
      } finally {
        await stopHarness(h);
      }
    },
    120_000,
  );

  // Volume names are user data: Object.prototype's keys (constructor, toString, ...) must be
  // volumes like any other, and '__proto__' a plain refusal, never a crash.
  it('treats volume names that are Object.prototype keys like any other name', async () => {
    let h: Harness | undefined;
    try {
      h = await startHarness(nfsProtocol({ version: '4' }));
      const problems: string[] = [];
      const call = async (path: Endpoint, body: unknown) => {
        const reply = await post(h!.socket, h!.agent, path, Buffer.from(JSON.stringify(body)));
        for (const problem of checkReply(path, reply, h!.f.root)) problems.push(`${path} ${JSON.stringify(body)}: ${problem}`);
        return JSON.parse(reply.text) as Record<string, unknown>;
      };
      for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
        await call('/VolumeDriver.Get', { Name: name });
        await call('/VolumeDriver.Remove', { Name: name });
        const created = await call('/VolumeDriver.Create', { Name: name, Opts: { share: '10.0.0.5:/exports/x' } });
        if (created['Err'] === '') {
          const got = await call('/VolumeDriver.Get', { Name: name });
          if (got['Err'] !== '') problems.push(`Create of '${name}' succeeded but Get fails: ${JSON.stringify(got)}`);
          await call('/VolumeDriver.Mount', { Name: name, ID: ID_POOL[0] });
          await call('/VolumeDriver.Unmount', { Name: name, ID: ID_POOL[0] });
          await call('/VolumeDriver.Remove', { Name: name });
        }
      }
      const unexpected = h.f.lines.filter((line) => line.includes('Unexpected error'));
      expect({ problems, unexpected: unexpected.length }).toEqual({ problems: [], unexpected: 0 });
    } finally {
      await stopHarness(h);
    }
  });

  it('states the body limit it fuzzes against', () => {
    expect(BODY_LIMIT).toBe('64kb');
  });
});
