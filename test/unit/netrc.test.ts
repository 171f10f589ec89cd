import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { findNetrcEntry, lookupNetrc, type NetrcEntry } from '../../src/protocols/netrc.js';
import { tempDir } from '../support/fakes.js';

const TWO_MACHINES = `machine fs login alice password one account CORP
machine nas login bob password two
`;

const WITH_DEFAULT = `machine fs login alice password one
default login guest password anon
`;

const WITH_MACDEF = `machine fs login alice password one
macdef init
  machine nas login mallory password evil
  password stolen

machine nas login bob password two
`;

function entry(login?: string, password?: string, account?: string): NetrcEntry {
  return { login, password, account };
}

describe('findNetrcEntry', () => {
  it.each<[string, string, string, NetrcEntry | undefined]>([
    ['machine with login, password and account', TWO_MACHINES, 'fs', entry('alice', 'one', 'CORP')],
    ['second machine', TWO_MACHINES, 'nas', entry('bob', 'two')],
    ['unknown machine, no default', TWO_MACHINES, 'other', undefined],
    ['host names are compared exactly', TWO_MACHINES, 'FS', undefined],
    ['default as fallback', WITH_DEFAULT, 'other', entry('guest', 'anon')],
    ['machine before default', WITH_DEFAULT, 'fs', entry('alice', 'one')],
    ['default before the machine still loses to the machine', 'default login g password p\nmachine fs login a password b', 'fs', entry('a', 'b')],
    ['macdef body skipped up to the blank line', WITH_MACDEF, 'nas', entry('bob', 'two')],
    ['macdef body does not change the entry before it', WITH_MACDEF, 'fs', entry('alice', 'one')],
    ['several machines on one line', 'machine a login la password pa machine b login lb password pb', 'b', entry('lb', 'pb')],
    ['tokens spread over lines and tabs', 'machine fs\n\tlogin alice\n\tpassword one\n', 'fs', entry('alice', 'one')],
    ['CRLF line ends', 'machine fs login alice password one\r\nmachine nas login bob password two\r\n', 'nas', entry('bob', 'two')],
    ['password only', 'machine fs password one', 'fs', entry(undefined, 'one')],
    ['token without a value at the end', 'machine fs login', 'fs', entry('')],
    ['comment line with a space after #', 'machine fs login alice password one\n# login bob password two\n', 'fs', entry('alice', 'one')],
    ['tokens before any machine are ignored', 'login stray password stray\nmachine fs login alice', 'fs', entry('alice')],
    ['empty file', '', 'fs', undefined],
  ])('%s', (_title, text, host, want) => {
    expect(findNetrcEntry(text, host)).toEqual(want);
  });

  // Otherwise "password two" of the comment would override alice's password.
  it('ignores a whole comment line written without a space after #', () => {
    const text = 'machine fs login alice password one\n#login bob password two\n';
    expect(findNetrcEntry(text, 'fs')).toEqual(entry('alice', 'one'));
  });
});

/** A temporary directory removed when the test ends. */
async function freshDir(): Promise<{ path: string }> {
  const dir = await tempDir('netvol-netrc-');
  onTestFinished(dir.cleanup);
  return dir;
}

describe('lookupNetrc', () => {

  it('reads DIR/.netrc', async () => {
    const dir = await freshDir();
    await writeFile(join(dir.path, '.netrc'), TWO_MACHINES, { mode: 0o600 });
    expect(await lookupNetrc(dir.path, 'nas')).toEqual(entry('bob', 'two'));
  });

  it('reads the file afresh on every call', async () => {
    const dir = await freshDir();
    const path = join(dir.path, '.netrc');
    await writeFile(path, TWO_MACHINES);
    await lookupNetrc(dir.path, 'fs');
    await writeFile(path, 'machine fs login carol password three');
    expect(await lookupNetrc(dir.path, 'fs')).toEqual(entry('carol', 'three'));
  });

  it.each<[string, string]>([
    ['a missing file', '.'],
    ['a missing directory', 'nope'],
  ])('returns undefined for %s', async (_title, sub) => {
    const dir = await freshDir();
    expect(await lookupNetrc(join(dir.path, sub), 'fs')).toBeUndefined();
  });

  it('reports other read errors (a directory named .netrc)', async () => {
    const dir = await freshDir();
    await mkdir(join(dir.path, '.netrc'));
    await expect(lookupNetrc(dir.path, 'fs')).rejects.toThrow('EISDIR');
  });

  it.skipIf(process.getuid?.() === 0)('reports an unreadable file', async () => {
    const dir = await freshDir();
    const path = join(dir.path, '.netrc');
    await writeFile(path, TWO_MACHINES);
    await chmod(path, 0o000);
    await expect(lookupNetrc(dir.path, 'fs')).rejects.toThrow('EACCES');
  });
});
