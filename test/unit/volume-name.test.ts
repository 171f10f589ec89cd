import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { MountpointIndex } from '../../src/core/mountpoint-index.js';
import { checkVolumeName, MAX_NAME_LENGTH, mountpointFor } from '../../src/core/volume-name.js';

const ROOT = '/var/lib/docker-volumes/netshare/nfs';
const LONG_SEGMENT = 'a'.repeat(256);
const LONG_UTF8_SEGMENT = 'é'.repeat(128); // 128 characters, 256 bytes
const TOO_LONG = `h/${'a'.repeat(200)}/${'b'.repeat(200)}/${'c'.repeat(200)}/${'d'.repeat(200)}/${'e'.repeat(219)}`;

/** Accepted names and where they are mounted below ROOT. */
const ACCEPTED: Array<[string, string]> = [
  ['pg', `${ROOT}/pg`],
  ['my-volume_1', `${ROOT}/my-volume_1`],
  ['10.0.0.5/exports/pg', `${ROOT}/10.0.0.5/exports/pg`],
  ['10.0.0.5/exports/pg/', `${ROOT}/10.0.0.5/exports/pg`],
  ['nas/exports#sub', `${ROOT}/nas/exports#sub`],
  ['a.b', `${ROOT}/a.b`],
  ['..a', `${ROOT}/..a`],
  ['a..', `${ROOT}/a..`],
  ['a/...', `${ROOT}/a/...`],
  ['.hidden', `${ROOT}/.hidden`],
  ['[fd00::5]/exports', `${ROOT}/[fd00::5]/exports`],
  ['with space', `${ROOT}/with space`],
  ['fs-12345678', `${ROOT}/fs-12345678`],
  ['a'.repeat(255), `${ROOT}/${'a'.repeat(255)}`],
  ['é'.repeat(127), `${ROOT}/${'é'.repeat(127)}`],
  [TOO_LONG.slice(0, MAX_NAME_LENGTH), `${ROOT}/${TOO_LONG.slice(0, MAX_NAME_LENGTH)}`],
];

const SEGMENT = (name: string) => `volume name '${name}' has an empty, '.' or '..' path segment`;
const CONTROL = (name: string) => `volume name ${JSON.stringify(name)} contains a control character (NUL, newline, tab...)`;
const ABSOLUTE = (name: string) => `volume name '${name}' is absolute: write a share as host/path, without a leading '/'`;
const LONG_SEG = (name: string) => `volume name '${name}' has a path segment longer than 255 bytes`;

/** Rejected names and the exact message. */
const REJECTED: Array<[string, string]> = [
  ['', 'volume name is empty'],
  ['..', SEGMENT('..')],
  ['.', SEGMENT('.')],
  ['a/../b', SEGMENT('a/../b')],
  ['a/..', SEGMENT('a/..')],
  ['../etc', SEGMENT('../etc')],
  ['a/./b', SEGMENT('a/./b')],
  ['a//b', SEGMENT('a//b')],
  ['a/b//', SEGMENT('a/b//')],
  ['/', ABSOLUTE('/')],
  ['/abs', ABSOLUTE('/abs')],
  ['/../etc', ABSOLUTE('/../etc')],
  ['a\0b', CONTROL('a\0b')],
  ['a\nb', CONTROL('a\nb')],
  ['a\tb', CONTROL('a\tb')],
  ['a\rb', CONTROL('a\rb')],
  ['a\x7fb', CONTROL('a\x7fb')],
  ['../\n', CONTROL('../\n')],
  [TOO_LONG, `volume name is 1025 characters long; the limit is ${MAX_NAME_LENGTH}`],
  [LONG_SEGMENT, LONG_SEG(LONG_SEGMENT)],
  [`host/${LONG_SEGMENT}/x`, LONG_SEG(`host/${LONG_SEGMENT}/x`)],
  [LONG_UTF8_SEGMENT, LONG_SEG(LONG_UTF8_SEGMENT)],
];

describe('checkVolumeName', () => {
  it('the long name fixture is one over the limit', () => {
    expect([TOO_LONG.length, MAX_NAME_LENGTH]).toEqual([1025, 1024]);
  });

  it.each(ACCEPTED)('accepts %j', (name) => {
    expect(() => checkVolumeName(name)).not.toThrow();
  });

  it.each(REJECTED)('rejects %j', (name, message) => {
    expect(() => checkVolumeName(name)).toThrow(ValidationError);
    expect(() => checkVolumeName(name)).toThrow(message);
  });
});

describe('mountpointFor', () => {
  it.each(ACCEPTED)('%j is mounted at %j, strictly inside the root', (name, want) => {
    const mountpoint = mountpointFor(ROOT, name);
    expect(mountpoint).toBe(want);
    expect(mountpoint.startsWith(`${ROOT}/`)).toBe(true);
  });

  it.each(ACCEPTED)('%j: a root with a trailing slash or dot segments gives the same mountpoint', (name, want) => {
    expect(mountpointFor(`${ROOT}/./`, name)).toBe(want);
  });

  it.each(REJECTED)('%j is refused with the same message', (name, message) => {
    expect(() => mountpointFor(ROOT, name)).toThrow(message);
  });
});

describe('mountpoint overlap', () => {
  // A volume whose mountpoint equals, contains or lies inside another's is refused at Create.
  it.each<[string, string, boolean]>([
    ['/r/a', '/r/a', true],
    ['/r/a', '/r/a/b', true],
    ['/r/a/b', '/r/a', true],
    ['/r/a', '/r/ab', false],
    ['/r/ab', '/r/a', false],
    ['/r/a/b', '/r/a/c', false],
    ['/r/a', '/r/b', false],
    [mountpointFor(ROOT, 'nas/exports'), mountpointFor(ROOT, 'nas/exports/pg/'), true],
    [mountpointFor(ROOT, 'nas/exports#sub'), mountpointFor(ROOT, 'nas/exports'), false],
  ])('%j and %j → %s', (a, b, want) => {
    const index = new MountpointIndex(a.startsWith(`${ROOT}/`) ? ROOT : '/r');
    index.add(b, 'other');
    expect(index.overlapping(a)).toBe(want ? 'other' : undefined);
  });
});

describe('MountpointIndex', () => {
  it.each<[string[], string, string | undefined]>([
    [['/r/a/b'], '/r/a/b', '/r/a/b'],
    [['/r/a/b'], '/r/a', '/r/a/b'],
    [['/r/a/b'], '/r/a/b/c', '/r/a/b'],
    [['/r/a/b'], '/r/a/c', undefined],
    [['/r/a/b'], '/r/ab', undefined],
    [['/r/x', '/r/a/b'], '/r/a/b/c/d', '/r/a/b'],
  ])('with %j, %s overlaps %s', (mountpoints, candidate, expected) => {
    const index = new MountpointIndex('/r');
    for (const m of mountpoints) index.add(m, m);
    expect(index.overlapping(candidate)).toBe(expected);
  });

  it('forgets removed mountpoints and their parents', () => {
    const index = new MountpointIndex('/r');
    index.add('/r/a/b', 'v1');
    index.add('/r/a/c', 'v2');
    index.remove('/r/a/b');
    expect(index.overlapping('/r/a')).toBe('v2');
    index.remove('/r/a/c');
    expect(index.overlapping('/r/a')).toBeUndefined();
  });
});
