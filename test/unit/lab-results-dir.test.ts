import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
// The lab runner is plain JavaScript, run by node without a build.
import { freshResults } from '../../scripts/lab/run-lab.mjs';

// The fault lab's writers append to acks/<name>.log and the cluster lab waits for report.json:
// a rerun into the same directory must not find the last run's files.
describe('lab results directory', () => {
  const roots: string[] = [];
  const root = () => {
    const d = mkdtempSync(join(tmpdir(), 'netvol-results-test-'));
    roots.push(d);
    return d;
  };
  afterEach(() => { for (const d of roots.splice(0)) rmSync(d, { recursive: true, force: true }); });

  it('makes a missing directory and marks it', () => {
    const dir = join(root(), 'new');
    expect(freshResults(dir)).toBe(dir);
    expect(readdirSync(dir)).toEqual(['.netvol-lab-results']);
  });

  it('empties a directory an earlier lab run made', () => {
    const dir = join(root(), 'rerun');
    freshResults(dir);
    mkdirSync(join(dir, 'share', 'acks'), { recursive: true });
    writeFileSync(join(dir, 'share', 'acks', 'stop.log'), 'A 57 1 2\n');
    writeFileSync(join(dir, 'share', 'report.json'), '{}');
    freshResults(dir);
    expect(readdirSync(dir)).toEqual(['.netvol-lab-results']);
  });

  it('takes an empty directory as it is', () => {
    const dir = root();
    freshResults(dir);
    expect(readdirSync(dir)).toEqual(['.netvol-lab-results']);
  });

  it('refuses a directory with files no lab made, and leaves them', () => {
    const dir = root();
    writeFileSync(join(dir, 'thesis.tex'), 'mine');
    expect(() => freshResults(dir)).toThrow(/not empty and no netvol lab made it: name a new or empty one with --results/);
    expect(existsSync(join(dir, 'thesis.tex'))).toBe(true);
  });
});
