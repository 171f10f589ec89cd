import { afterAll, beforeAll, expect, it } from 'vitest';
import { MOUNT_TOOL_MESSAGE } from './support/mount-errors.js';
import { callName, callOpts, waitForCall } from './support/netvol.js';
import { describeDocker } from './support/prerequisites.js';
import { Tier } from './support/tier.js';
import { waitFor } from './support/wait.js';

describeDocker('a swarm service with a netvol volume', () => {
  let tier: Tier;
  let inSwarm = false;
  let gwbridge = false;
  const service = 's1';

  beforeAll(async () => {
    tier = await Tier.start('swarm');
  });

  afterAll(async () => {
    if (tier) {
      if (inSwarm) {
        await tier.docker(['service', 'rm', service]);
        await tier.docker(['swarm', 'leave', '--force']);
      }
      if (gwbridge) await tier.docker(['network', 'rm', 'docker_gwbridge']);
      await tier.stop();
    }
  });

  it('makes the node call Create with the service’s volume-opt', async () => {
    // Swarm schedules a task only on a node whose engine reports the volume plugin, and the
    // engine reports only plugins it has activated: touch the driver before joining.
    await tier.dockerOk(['volume', 'ls']);
    await tier.dockerOk(['volume', 'create', '-d', tier.driver, '--name', `warmup-${tier.id}`, '-o', 'share=127.0.0.1:/srv/warmup']);
    // Swarm makes a bridge named docker_gwbridge; give it a name of our own so it cannot
    // collide with another dockerd's.
    await tier.dockerOk([
      'network', 'create', '--driver', 'bridge',
      '-o', `com.docker.network.bridge.name=nvtgw${tier.id}`,
      '-o', 'com.docker.network.bridge.enable_icc=false',
      '-o', 'com.docker.network.bridge.enable_ip_masquerade=false',
      'docker_gwbridge',
    ]);
    gwbridge = true;
    await tier.dockerOk(['swarm', 'init', '--advertise-addr', '127.0.0.1']);
    inSwarm = true;

    await tier.dockerOk([
      'service', 'create', '--detach', '--name', service,
      '--mount', `type=volume,src=sv1,dst=/data,volume-driver=${tier.driver},volume-opt=share=127.0.0.1:/srv/svc`,
      tier.image, 'sleep', '1000',
    ]);

    const create = await waitForCall(tier.netvol, 'Create(sv1) from the swarm task', (c) => c.call === '/VolumeDriver.Create' && callName(c) === 'sv1', {
      timeoutMs: 90_000,
    });
    expect(callOpts(create)).toEqual({ share: '127.0.0.1:/srv/svc' });

    // The task then fails to mount (no NFS here); the task error carries the mount tool's words.
    const taskError = await waitFor(
      async () => {
        const errors = await tier.dockerOk(['service', 'ps', service, '--no-trunc', '--format', '{{.Error}}']);
        return errors.split('\n').find((line) => /mount/i.test(line));
      },
      { what: 'a task error about the mount', timeoutMs: 60_000, intervalMs: 1_000 },
    );
    expect(taskError).toMatch(MOUNT_TOOL_MESSAGE);

    await tier.dockerOk(['service', 'rm', service]);
    await tier.dockerOk(['swarm', 'leave', '--force']);
    inSwarm = false;
  });
});
