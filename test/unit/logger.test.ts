import { memoryLogger } from '../support/fakes.js';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger, prettyLine, REDACT_PATHS } from '../../src/logger.js';

const SECRET = 'hunter2-Secret';
const MASK = '********';
const NOW = Date.UTC(2026, 10, 28, 17, 54, 18, 123);

/** A logger writing to memory, in the given format. */
function capture(format: 'json' | 'pretty', verbose = true) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { logger: createLogger({ verbose, format, destination }), lines };
}

describe('createLogger redaction', () => {
  it.each<[string, Record<string, unknown>, Record<string, unknown>]>([
    ['password', { password: SECRET }, { password: MASK }],
    ['opts.password', { opts: { share: 'fs/public', password: SECRET } }, { opts: { share: 'fs/public', password: MASK } }],
    ['options.password', { options: { username: 'alice', password: SECRET } }, { options: { username: 'alice', password: MASK } }],
    ['body.Opts.password', { body: { Name: 'v', Opts: { password: SECRET } } }, { body: { Name: 'v', Opts: { password: MASK } } }],
    ['any.password', { volume: { password: SECRET } }, { volume: { password: MASK } }],
    ['credentials', { credentials: { username: 'alice', password: SECRET } }, { credentials: MASK }],
    ['plan.credentials', { plan: { source: '//fs/public', credentials: { password: SECRET } } },
      { plan: { source: '//fs/public', credentials: MASK } }],
  ])('masks %s in JSON records', (_title, fields, want) => {
    const { logger, lines } = capture('json');
    logger.info(fields, 'Call');
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain(SECRET);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ level: 30, msg: 'Call', pid: process.pid, ...want });
  });

  it('masks in the pretty format too', () => {
    const { logger, lines } = capture('pretty');
    logger.info({ body: { Opts: { password: SECRET } } }, 'Call');
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO  Call body=\{"Opts":\{"password":"\*{8}"\}\}\n$/);
  });

  it('does not change the logged object', () => {
    const { logger } = capture('json');
    const opts = { password: SECRET };
    logger.info({ opts }, 'Call');
    expect(opts.password).toBe(SECRET);
  });

  it('covers every documented path', () => {
    expect(REDACT_PATHS).toEqual([
      'password', '*.password', 'opts.password', 'options.password', 'body.Opts.password',
      '*.*.password', '*.*.*.password', 'credentials', '*.credentials',
    ]);
  });

  it('masks a password nested two and three levels down', () => {
    const { logger, lines } = memoryLogger();
    logger.info({ volume: { options: { password: 'S3cret' } }, a: { b: { c: { password: 'S3cret' } } } }, 'nested');
    expect(lines.join('')).not.toContain('S3cret');
  });
});

describe('createLogger levels', () => {
  it.each<[boolean, string[]]>([
    [true, ['debug line', 'info line']],
    [false, ['info line']],
  ])('verbose=%s', (verbose, want) => {
    const { logger, lines } = capture('json', verbose);
    logger.debug('debug line');
    logger.info('info line');
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(want);
  });

  it('keeps no hostname in records', () => {
    const { logger, lines } = capture('json');
    logger.info('x');
    expect(Object.keys(JSON.parse(lines[0] ?? '{}') as object)).toEqual(['level', 'time', 'pid', 'msg']);
  });
});

describe('prettyLine', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['message and fields', { level: 30, time: NOW, pid: 7, hostname: 'h', msg: 'Mounted', volume: 'pg', ms: 12 },
      '17:54:18.123 INFO  Mounted volume=pg ms=12\n'],
    ['no fields', { level: 40, time: NOW, msg: 'umount timed out' }, '17:54:18.123 WARN  umount timed out\n'],
    ['trace', { level: 10, time: NOW, msg: 't' }, '17:54:18.123 TRACE t\n'],
    ['debug', { level: 20, time: NOW, msg: 'd' }, '17:54:18.123 DEBUG d\n'],
    ['error', { level: 50, time: NOW, msg: 'e' }, '17:54:18.123 ERROR e\n'],
    ['fatal', { level: 60, time: NOW, msg: 'f' }, '17:54:18.123 FATAL f\n'],
    ['unknown level number', { level: 35, time: NOW, msg: 'x' }, '17:54:18.123 35    x\n'],
    ['objects and lists as JSON', { level: 30, time: NOW, msg: 'Mounting', options: ['nfsvers=3', 'nolock'], body: { Name: 'v' } },
      '17:54:18.123 INFO  Mounting options=["nfsvers=3","nolock"] body={"Name":"v"}\n'],
    ['strings as they are', { level: 30, time: NOW, msg: 'Mount failed', err: 'mount.nfs: access denied' },
      '17:54:18.123 INFO  Mount failed err=mount.nfs: access denied\n'],
    ['numbers, booleans and null', { level: 30, time: NOW, msg: 'm', n: 0, ok: false, none: null }, '17:54:18.123 INFO  m n=0 ok=false none=null\n'],
    ['no message', { level: 30, time: NOW }, '17:54:18.123 INFO  \n'],
    ['no time: now', { level: 30, msg: 'now' }, '17:54:18.123 INFO  now\n'],
  ])('%s', (_title, record, want) => {
    expect(prettyLine(record)).toBe(want);
  });

  it('is what the pretty logger writes', () => {
    const { logger, lines } = capture('pretty');
    logger.info({ volume: 'pg', outcome: 'mounted' }, 'Volume mount');
    expect(lines).toEqual(['17:54:18.123 INFO  Volume mount volume=pg outcome=mounted\n']);
  });
});
