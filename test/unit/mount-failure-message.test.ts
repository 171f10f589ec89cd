import { describe, expect, it } from 'vitest';
import type { MountPlan } from '../../src/protocols/mount-plan.js';
import { CommandTimeoutError } from '../../src/system/command-runner.js';
import { describeMountFailure } from '../../src/system/mounter.js';

describe('the message of a mount that timed out', () => {
  const timedOut = new CommandTimeoutError({ file: 'mount', args: [] }, 10_000);
  it.each<[string, MountPlan, string]>([
    ['nfs', { fsType: 'nfs4', source: '10.0.0.5:/exports/pg', options: [], server: '10.0.0.5' }, 'showmount -e 10.0.0.5'],
    ['nfs v3', { fsType: 'nfs', source: '10.0.0.5:/exports/pg', options: [], server: '10.0.0.5' }, 'showmount -e 10.0.0.5'],
    ['cifs', { fsType: 'cifs', source: '//files/docs', options: [], server: 'files' }, 'smbclient -L //files -N'],
  ])('%s: names the server and a command that checks it for that protocol', (_name, plan, probe) => {
    const message = describeMountFailure(timedOut, plan, '/mnt/x', 10_000);
    expect(message).toBe(`mounting ${plan.source} (${plan.fsType}) on /mnt/x timed out after 10 s: server ${plan.server} did not answer; check that it is up and reachable from this host (e.g. ${probe}, or a firewall)`);
  });
});
