import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface NetrcEntry {
  readonly login?: string | undefined;
  readonly password?: string | undefined;
  readonly account?: string | undefined;
}

/**
 * Finds the entry for `host` in .netrc text (machine/login/password/account tokens, a
 * `default` entry as fallback, `macdef` bodies skipped up to the next blank line).
 */
export function findNetrcEntry(text: string, host: string): NetrcEntry | undefined {
  const lines = text.split('\n');
  const tokens: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words[0] === 'macdef') {
      while (i + 1 < lines.length && (lines[i + 1] ?? '').trim() !== '') i++;
      continue;
    }
    // A line starting with '#' is a comment, with or without a space after it.
    if (words[0]?.startsWith('#')) continue;
    tokens.push(...words);
  }
  let current: { machine?: string; entry: Record<string, string> } | undefined;
  const entries: Array<{ machine?: string; entry: Record<string, string> }> = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === 'machine') {
      current = { machine: tokens[++i] ?? '', entry: {} };
      entries.push(current);
    } else if (token === 'default') {
      current = { entry: {} };
      entries.push(current);
    } else if (current && (token === 'login' || token === 'password' || token === 'account')) {
      current.entry[token] = tokens[++i] ?? '';
    }
  }
  const match = entries.find((e) => e.machine === host) ?? entries.find((e) => e.machine === undefined);
  if (!match) return undefined;
  return { login: match.entry['login'], password: match.entry['password'], account: match.entry['account'] };
}

/** Reads DIR/.netrc afresh on every mount, so edits apply without a restart. Missing: none. */
export async function lookupNetrc(dir: string, host: string): Promise<NetrcEntry | undefined> {
  try {
    return findNetrcEntry(await readFile(join(dir, '.netrc'), 'utf8'), host);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
