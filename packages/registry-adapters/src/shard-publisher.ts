/**
 * The state of one shard and the stream of `RegistryChange` values that describes it.
 *
 * An adapter's background loops write into groups (a Consul service, a Eureka app, a Kubernetes Service with its
 * endpoints); the consumer pulls `changes()`. Changes are coalesced at pull time: the stream yields the difference
 * between what it last yielded and the current state, so a slow consumer never builds a backlog.
 *
 * Order of items: `status` items (state `syncing`/`stale`) may come first while the source has never been
 * reached; the first item carrying content is always a full `snapshot`, and it is yielded only after a successful
 * full sync (`ready()`), so a failure never produces an empty snapshot. Later content changes are `update`s.
 */
import type { Problem, RegistryChange, Resource, ServiceEntry, ShardStatus, SourceKind, WorkloadEntry } from '@trellis/model';
import { resourceKey, serviceKey, workloadKey } from '@trellis/model';
import { deepFreeze, errorMessage, type Clock } from './runtime.js';

interface Group {
  readonly services: ReadonlyMap<string, { readonly value: ServiceEntry; readonly json: string }>;
  readonly workloads: ReadonlyMap<string, { readonly value: WorkloadEntry; readonly json: string }>;
  readonly configs: ReadonlyMap<string, { readonly value: Resource; readonly json: string }>;
}

const EMPTY: Group = { services: new Map(), workloads: new Map(), configs: new Map() };

export class ShardPublisher {
  private readonly current = new Map<string, Group>();
  private readonly dirty = new Set<string>();
  private state: ShardStatus['state'] = 'syncing';
  private lastError: string | undefined;
  private staleSince: string | undefined;
  private lastChange: string | undefined;
  private problems: readonly Problem[] = [];
  private synced = false;
  private wake: (() => void) | undefined;
  private pending = false;

  constructor(
    readonly kind: SourceKind,
    readonly shard: string,
    private readonly clock: Clock,
  ) {}

  /** Replaces the content of one group. */
  setGroup(group: string, services: readonly ServiceEntry[], workloads: readonly WorkloadEntry[], configs: readonly Resource[] = []): void {
    this.current.set(group, {
      services: new Map(services.map((s) => [serviceKey(s), { value: s, json: JSON.stringify(s) }])),
      workloads: new Map(workloads.map((w) => [workloadKey(w), { value: w, json: JSON.stringify(w) }])),
      configs: new Map(configs.map((c) => [resourceKey(c), { value: c, json: JSON.stringify(c) }])),
    });
    this.dirty.add(group);
    this.signal();
  }

  deleteGroup(group: string): void {
    if (this.current.delete(group)) {
      this.dirty.add(group);
      this.signal();
    }
  }

  /** Deletes every group not in `keep` (after a full re-list). */
  retainGroups(keep: ReadonlySet<string>): void {
    for (const g of [...this.current.keys()]) if (!keep.has(g)) this.deleteGroup(g);
  }

  groupNames(): string[] {
    return [...this.current.keys()];
  }

  /** A full sync succeeded: the shard is `synced`, the last error is cleared. */
  ready(): void {
    this.synced = true;
    if (this.state !== 'synced' || this.lastError !== undefined) {
      this.state = 'synced';
      this.lastError = undefined;
      this.staleSince = undefined;
      this.signal();
    }
  }

  /** The source failed: the shard is `stale` (content kept), with the error. */
  fail(err: unknown): void {
    const message = errorMessage(err);
    if (this.state !== 'stale' || this.lastError !== message) {
      if (this.state !== 'stale') this.staleSince = new Date(this.clock.now()).toISOString();
      this.state = 'stale';
      this.lastError = message;
      this.signal();
    }
  }

  setProblems(problems: readonly Problem[]): void {
    if (JSON.stringify(problems) !== JSON.stringify(this.problems)) {
      this.problems = deepFreeze([...problems]);
      this.signal();
    }
  }

  status(): ShardStatus {
    return deepFreeze({
      shard: this.shard,
      kind: this.kind,
      state: this.state,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.staleSince !== undefined ? { staleSince: this.staleSince } : {}),
      ...(this.lastChange !== undefined ? { lastChange: this.lastChange } : {}),
      problems: this.problems,
    });
  }

  private signal(): void {
    this.pending = true;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private waitForSignal(signal: AbortSignal): Promise<void> {
    if (this.pending || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** The change stream; one consumer. Ends when `signal` aborts. */
  async *changes(signal: AbortSignal): AsyncGenerator<RegistryChange> {
    const emitted = new Map<string, Group>();
    let snapshotSent = false;
    let lastStatus = '';
    while (!signal.aborted) {
      await this.waitForSignal(signal);
      if (signal.aborted) return;
      this.pending = false;
      if (!snapshotSent) {
        if (this.synced) {
          for (const [name, g] of this.current) emitted.set(name, g);
          this.dirty.clear();
          snapshotSent = true;
          this.lastChange = new Date(this.clock.now()).toISOString();
          const status = this.status();
          lastStatus = JSON.stringify(status);
          const services: ServiceEntry[] = [];
          const workloads: WorkloadEntry[] = [];
          const configs: Resource[] = [];
          for (const g of emitted.values()) {
            for (const s of g.services.values()) services.push(s.value);
            for (const w of g.workloads.values()) workloads.push(w.value);
            for (const c of g.configs.values()) configs.push(c.value);
          }
          yield deepFreeze({ type: 'snapshot', services, workloads, configs, status });
          continue;
        }
        // Before the first snapshot only a failure is worth reporting; content in progress is not.
        if (this.state !== 'stale') continue;
      } else {
        const upServices: ServiceEntry[] = [];
        const upWorkloads: WorkloadEntry[] = [];
        const rmServices: string[] = [];
        const rmWorkloads: string[] = [];
        const upConfigs: Resource[] = [];
        const rmConfigs: string[] = [];
        for (const name of this.dirty) {
          const before = emitted.get(name) ?? EMPTY;
          const after = this.current.get(name) ?? EMPTY;
          diff(before.services, after.services, upServices, rmServices);
          diff(before.workloads, after.workloads, upWorkloads, rmWorkloads);
          diff(before.configs, after.configs, upConfigs, rmConfigs);
          if (this.current.has(name)) emitted.set(name, after);
          else emitted.delete(name);
        }
        this.dirty.clear();
        // A key that moved from one group to another is both removed and upserted: keep the upsert.
        const upS = new Set(upServices.map(serviceKey));
        const upW = new Set(upWorkloads.map(workloadKey));
        const upC = new Set(upConfigs.map(resourceKey));
        const remove = {
          services: rmServices.filter((k) => !upS.has(k)),
          workloads: rmWorkloads.filter((k) => !upW.has(k)),
          configs: rmConfigs.filter((k) => !upC.has(k)),
        };
        const upserts = upServices.length + upWorkloads.length + upConfigs.length;
        if (upserts + remove.services.length + remove.workloads.length + remove.configs.length > 0) {
          this.lastChange = new Date(this.clock.now()).toISOString();
          const status = this.status();
          lastStatus = JSON.stringify(status);
          yield deepFreeze({
            type: 'update',
            upsert: { services: upServices, workloads: upWorkloads, configs: upConfigs },
            remove,
            status,
          });
          continue;
        }
      }
      const status = this.status();
      const json = JSON.stringify(status);
      if (json !== lastStatus) {
        lastStatus = json;
        yield { type: 'status', status } as const;
      }
    }
  }
}

function diff<T>(
  before: ReadonlyMap<string, { value: T; json: string }>,
  after: ReadonlyMap<string, { value: T; json: string }>,
  upsert: T[],
  remove: string[],
): void {
  for (const [k, v] of after) if (before.get(k)?.json !== v.json) upsert.push(v.value);
  for (const k of before.keys()) if (!after.has(k)) remove.push(k);
}
