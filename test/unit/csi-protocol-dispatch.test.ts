import { describe, expect, it } from 'vitest';
import { CsiProtocolHandler, shareMountPlan } from '../../src/frontends/csi/protocol-dispatch.js';
import { parseVolumeParameters, recordOptions } from '../../src/frontends/csi/volume-spec.js';
import { mountArgv } from '../../src/protocols/mount-plan.js';

// One VolumeDriver serves the node's volumes of every protocol: the handler dispatches on a
// record's protocol, and the mount plans are the classic protocols' own.

const TARGET = '/var/lib/docker-volumes/netvol-csi/v';
const record = (name: string, parameters: Record<string, string>) => ({ name, options: recordOptions(parseVolumeParameters(name, parameters)) });

describe('the CSI protocol handler', () => {
  it('plans each protocol with its own handler, for the share root (the core adds the subdirectory)', async () => {
    const handler = new CsiProtocolHandler();
    const nfs = record('pg', { share: '10.0.0.5:/exports', version: '3' });
    expect(handler.check(nfs)).toEqual({ share: '10.0.0.5:/exports', subdirectory: 'pg', protocol: 'nfs' });
    expect(mountArgv(await handler.plan(nfs), TARGET)).toEqual(['-t', 'nfs', '-o', 'nfsvers=3,port=2049,nolock,proto=tcp', '--', '10.0.0.5:/exports', TARGET]);
    const efs = record('data', { protocol: 'efs', share: 'fs-12345678:/apps', region: 'eu-west-1' });
    expect(handler.check(efs)).toEqual({ share: 'fs-12345678:/apps', subdirectory: 'data', protocol: 'efs' });
    expect((await handler.plan(efs)).source).toBe('fs-12345678.efs.eu-west-1.amazonaws.com:/apps');
    const whole = record('x', { share: '10.0.0.5:/exports', subdir: '' });
    expect(handler.check(whole)).toEqual({ share: '10.0.0.5:/exports', subdirectory: undefined, protocol: 'nfs' });
  });

  it('mounts a CIFS volume with the credentials of its last publish, held in memory only', async () => {
    const handler = new CsiProtocolHandler();
    const docs = record('docs', { protocol: 'cifs', share: '//fs/docs', cifsopts: 'vers=3.0' });
    expect(handler.check(docs)).toEqual({ share: '//fs/docs', subdirectory: 'docs', protocol: 'cifs' });
    expect(await handler.plan(docs)).toMatchObject({ source: '//fs/docs', options: ['guest', 'vers=3.0'] });
    handler.useCredentials('docs', { username: 'alice', password: 'S3cret-pw' });
    const plan = await handler.plan(docs);
    expect(plan).toMatchObject({ options: ['vers=3.0'], credentials: { username: 'alice', password: 'S3cret-pw' } });
    expect(mountArgv(plan, TARGET, '/state/secrets/cifs-1').join(' ')).not.toContain('S3cret-pw');
    expect(JSON.stringify(docs.options)).not.toContain('S3cret-pw');
    handler.forget('docs');
    expect((await handler.plan(docs)).credentials).toBeUndefined();
  });

  it('plans the controller\'s share mount from a volume and the request\'s secrets', async () => {
    const spec = parseVolumeParameters('docs', { protocol: 'cifs', share: '//fs/docs', security: 'ntlmssp' });
    expect(await shareMountPlan(spec, { username: 'alice', password: 'pw', domain: 'CORP' })).toEqual({
      fsType: 'cifs',
      source: '//fs/docs',
      options: ['sec=ntlmssp'],
      server: 'fs',
      credentials: { username: 'alice', password: 'pw', domain: 'CORP' },
    });
  });
});
