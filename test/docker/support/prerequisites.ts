import { existsSync } from 'node:fs';
import { describe, it } from 'vitest';
import { findDockerCli, findDockerd, findStaticBusybox, netvolCli } from './tools.js';

/** Why this machine cannot run the docker tier; empty when it can. */
export function missingPrerequisites(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('must run as root (it starts its own dockerd)');
  if (!findDockerd()) missing.push('no dockerd binary (Debian package docker.io)');
  if (!findDockerCli()) missing.push('no docker CLI (Debian package docker.io)');
  if (!findStaticBusybox()) missing.push('no static busybox for the test image (Debian package busybox-static)');
  return missing;
}

/** Environment problems that are always an error, never a reason to skip. */
function brokenSetup(): string[] {
  return existsSync(netvolCli) ? [] : [`${netvolCli} is missing: run \`npm run build\` first`];
}

const isCi = Boolean(process.env['CI']) && process.env['CI'] !== 'false' && process.env['CI'] !== '0';

/**
 * `describe` for a docker-tier suite. When the machine lacks what the tier needs, the suite
 * fails under CI (CI=1) and is skipped with the reason in its name elsewhere.
 */
export function describeDocker(name: string, body: () => void): void {
  const broken = brokenSetup();
  const missing = missingPrerequisites();
  if (broken.length > 0 || (missing.length > 0 && isCi)) {
    const problems = [...broken, ...missing];
    describe(name, () => {
      it('has what the docker tier needs', () => {
        throw new Error(`docker tier cannot run: ${problems.join('; ')}`);
      });
    });
    return;
  }
  if (missing.length > 0) {
    const reason = missing.join('; ');
    console.warn(`[docker tier] skipping "${name}": ${reason} (set CI=1 to make this an error)`);
    describe.skip(`${name} [skipped: ${reason}]`, body);
    return;
  }
  describe(name, body);
}
