import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MountPlan } from '../protocols/mount-plan.js';
import type { StateFile } from '../state/state-schema.js';
import type { Mounter } from '../system/mounter.js';

const SECONDS = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Prometheus metrics, kept in a private registry (no process-wide singleton). Collected
 * always — it costs a few counters — and served only when --metrics is given.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly calls = new Counter({
    name: 'netvol_calls_total',
    help: 'Plugin API calls by endpoint and outcome',
    labelNames: ['endpoint', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly callSeconds = new Histogram({
    name: 'netvol_call_duration_seconds',
    help: 'Plugin API call latency',
    labelNames: ['endpoint'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });
  private readonly mounts = new Counter({
    name: 'netvol_mounts_total',
    help: 'Kernel mounts attempted, by protocol and outcome',
    labelNames: ['protocol', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly unmounts = new Counter({
    name: 'netvol_unmounts_total',
    help: 'Kernel unmounts attempted, by protocol and outcome',
    labelNames: ['protocol', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly mountSeconds = new Histogram({
    name: 'netvol_mount_duration_seconds',
    help: 'Time taken by mount/umount, by operation and protocol',
    labelNames: ['operation', 'protocol'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });

  constructor(state: StateFile, now: () => Date = () => new Date()) {
    const volumes = () => Object.values(state.volumes);
    new Gauge({
      name: 'netvol_volumes',
      help: 'Volumes known to this driver',
      registers: [this.registry],
      collect() {
        this.set(volumes().length);
      },
    });
    new Gauge({
      name: 'netvol_volumes_mounted',
      help: 'Volumes currently mounted',
      registers: [this.registry],
      collect() {
        this.set(volumes().filter((v) => v.mountIds.length > 0).length);
      },
    });
    new Gauge({
      name: 'netvol_mount_ids',
      help: 'Outstanding mount IDs (the sum of all reference counts)',
      registers: [this.registry],
      collect() {
        this.set(volumes().reduce((sum, v) => sum + v.mountIds.length, 0));
      },
    });
    new Gauge({
      name: 'netvol_oldest_mount_age_seconds',
      help: 'Age of the oldest mount still held by a mount ID (a large value may be a stale reference)',
      registers: [this.registry],
      collect() {
        const times = volumes()
          .filter((v) => v.mountIds.length > 0 && v.mountedAt)
          .map((v) => Date.parse(v.mountedAt ?? ''));
        this.set(times.length > 0 ? (now().getTime() - Math.min(...times)) / 1000 : 0);
      },
    });
  }

  /** Per mounted volume, its last health check: 1 on the series of its state. */
  trackHealth(names: () => readonly string[], healthOf: (name: string) => { state: string } | undefined): void {
    new Gauge({
      name: 'netvol_volume_health',
      help: 'Last health check of each mounted volume: 1 for its state (healthy, stale, unreachable)',
      labelNames: ['volume', 'state'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const name of names()) {
          const health = healthOf(name);
          if (health) this.set({ volume: name, state: health.state }, 1);
        }
      },
    });
  }

  observeCall(endpoint: string, ok: boolean, seconds: number): void {
    this.calls.inc({ endpoint, outcome: ok ? 'ok' : 'error' });
    this.callSeconds.observe({ endpoint }, seconds);
  }

  /** Wraps a mounter so each mount/umount is counted and timed. */
  instrument(mounter: Mounter, protocol: string): Mounter {
    const time = async (operation: 'mount' | 'unmount', task: () => Promise<void>) => {
      const end = this.mountSeconds.startTimer({ operation, protocol });
      const counter = operation === 'mount' ? this.mounts : this.unmounts;
      try {
        await task();
        counter.inc({ protocol, outcome: 'ok' });
      } catch (error) {
        counter.inc({ protocol, outcome: 'error' });
        throw error;
      } finally {
        end();
      }
    };
    return {
      mount: (plan: MountPlan, target: string) => time('mount', () => mounter.mount(plan, target)),
      unmount: (target: string, options?: { detachIfBusy?: boolean }) => time('unmount', () => mounter.unmount(target, options)),
    };
  }
}
