/**
 * Test helper: consumes a RegistryAdapter's change stream and keeps the shard's current content, so tests can
 * wait for a condition (`until`) instead of sleeping.
 */
import type { RegistryAdapter, RegistryChange, ServiceEntry, ShardStatus, WorkloadEntry } from '@trellis/model';
import { serviceKey, workloadKey } from '@trellis/model';

export class ShardView {
  readonly services = new Map<string, ServiceEntry>();
  readonly workloads = new Map<string, WorkloadEntry>();
  readonly changes: RegistryChange[] = [];
  status: ShardStatus | undefined;
  error: unknown;
  private readonly controller = new AbortController();
  private listeners = new Set<() => void>();
  private readonly done: Promise<void>;

  constructor(adapter: RegistryAdapter) {
    this.done = this.consume(adapter);
  }

  private async consume(adapter: RegistryAdapter): Promise<void> {
    try {
      for await (const change of adapter.watch(this.controller.signal)) {
        this.changes.push(change);
        this.status = change.status;
        if (change.type === 'snapshot') {
          this.services.clear();
          this.workloads.clear();
          for (const s of change.services) this.services.set(serviceKey(s), s);
          for (const w of change.workloads) this.workloads.set(workloadKey(w), w);
        } else if (change.type === 'update') {
          for (const k of change.remove.services) this.services.delete(k);
          for (const k of change.remove.workloads) this.workloads.delete(k);
          for (const s of change.upsert.services) this.services.set(serviceKey(s), s);
          for (const w of change.upsert.workloads) this.workloads.set(workloadKey(w), w);
        }
        for (const l of [...this.listeners]) l();
      }
    } catch (err) {
      this.error = err;
      for (const l of [...this.listeners]) l();
    }
  }

  /** Workloads (sorted by key) whose `services` include `hostname`. */
  endpointsOf(hostname: string): WorkloadEntry[] {
    return [...this.workloads.values()].filter((w) => w.services.includes(hostname)).sort((a, b) => workloadKey(a).localeCompare(workloadKey(b)));
  }

  /** Resolves when `predicate` holds after some change; rejects after `timeoutMs` with the last state. */
  until(predicate: (view: this) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (predicate(this)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.error) finish(this.error as Error);
        else if (predicate(this)) finish();
      };
      const timer = setTimeout(
        () => finish(new Error(`timed out waiting for ${what}; status ${JSON.stringify(this.status)}; ${this.changes.length} changes; workloads ${[...this.workloads.keys()].join(',')}`)),
        timeoutMs,
      );
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (err) reject(err);
        else resolve();
      };
      this.listeners.add(check);
    });
  }

  async close(): Promise<void> {
    this.controller.abort();
    await this.done;
  }
}
