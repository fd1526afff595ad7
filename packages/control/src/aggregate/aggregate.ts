/**
 * The aggregate: one shard per registry adapter, each fed by the adapter's `watch()` stream.
 *
 * It keeps every shard's last content (a stale shard keeps its content: an unreachable source never empties the
 * mesh), the shard's status, and tells its listener when anything changed. Merging is done on demand by `view()`.
 */
import { resourceKey, serviceKey, workloadKey, type RegistryAdapter, type RegistryChange, type Resource, type ServiceEntry, type ShardStatus, type SourceKind, type WorkloadEntry } from '@trellis/model';
import { mergeShards, type MergeResult, type ShardContent } from './merge.js';

export interface ShardView {
  readonly shard: string;
  readonly kind: SourceKind;
  readonly status: ShardStatus;
  /** Whether the first full snapshot of the shard has arrived. */
  readonly received: boolean;
  readonly counts: { readonly services: number; readonly workloads: number; readonly configs: number };
}

export interface AggregateView extends MergeResult {
  readonly shards: readonly ShardView[];
  /** Config resources from every shard; on a duplicate key the higher-priority shard's copy wins. */
  readonly configs: readonly Resource[];
}

interface ShardState {
  readonly shard: string;
  readonly kind: SourceKind;
  services: Map<string, ServiceEntry>;
  workloads: Map<string, WorkloadEntry>;
  configs: Map<string, Resource>;
  status: ShardStatus;
  received: boolean;
  readonly rank?: number;
}

export interface AggregateOptions {
  /** Called after every change to any shard (content or status). */
  readonly onChange: () => void;
  readonly now?: () => Date;
  readonly log?: (level: 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>) => void;
}

export class Aggregate {
  readonly #shards = new Map<string, ShardState>();
  readonly #opts: AggregateOptions;
  readonly #now: () => Date;

  constructor(options: AggregateOptions) {
    this.#opts = options;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Declares a shard (state `syncing`) so readiness waits for it before its first item arrives. `rank` (lower wins)
   * overrides the rank of `kind` in the merge priority.
   */
  addShard(shard: string, kind: SourceKind, options: { readonly rank?: number } = {}): void {
    if (this.#shards.has(shard)) return;
    this.#shards.set(shard, {
      shard, kind, services: new Map(), workloads: new Map(), configs: new Map(), received: false,
      ...(options.rank !== undefined ? { rank: options.rank } : {}),
      status: Object.freeze({ shard, kind, state: 'syncing', problems: Object.freeze([]) }),
    });
  }

  /**
   * Consumes an adapter's stream until `signal` aborts. If the stream throws or ends early, the shard is marked
   * stale with the error and keeps its content. Resolves when the stream is done.
   */
  async run(adapter: RegistryAdapter, signal: AbortSignal): Promise<void> {
    this.addShard(adapter.shard, adapter.kind);
    try {
      for await (const change of adapter.watch(signal)) {
        this.apply(adapter.shard, change);
        if (signal.aborted) break;
      }
      if (!signal.aborted) this.markStale(adapter.shard, 'registry stream ended');
    } catch (err) {
      if (!signal.aborted) this.markStale(adapter.shard, (err as Error).message);
    }
  }

  /** Drops a shard and its content (its registry was removed from the configuration). */
  removeShard(shard: string): void {
    if (!this.#shards.delete(shard)) return;
    this.#opts.log?.('info', 'shard removed', { shard });
    this.#opts.onChange();
  }

  markStale(shard: string, error: string): void {
    const st = this.#shards.get(shard);
    if (!st) return;
    st.status = Object.freeze({ ...st.status, state: 'stale', lastError: error, staleSince: st.status.staleSince ?? this.#now().toISOString() });
    this.#opts.log?.('warn', 'shard stale', { shard, error });
    this.#opts.onChange();
  }

  /** Applies one change to a shard (exported for tests and for sources that are not adapters). */
  apply(shard: string, change: RegistryChange): void {
    const st = this.#shards.get(shard);
    if (!st) throw new Error(`unknown shard ${shard}`);
    let contentChanged = false;
    if (change.type === 'snapshot') {
      st.services = new Map(change.services.map((s) => [serviceKey(s), s]));
      st.workloads = new Map(change.workloads.map((w) => [workloadKey(w), w]));
      st.configs = new Map(change.configs.map((c) => [resourceKey(c), c]));
      st.received = true;
      contentChanged = true;
    } else if (change.type === 'update') {
      for (const k of change.remove.services) st.services.delete(k);
      for (const k of change.remove.workloads) st.workloads.delete(k);
      for (const k of change.remove.configs) st.configs.delete(k);
      for (const s of change.upsert.services) st.services.set(serviceKey(s), s);
      for (const w of change.upsert.workloads) st.workloads.set(workloadKey(w), w);
      for (const c of change.upsert.configs) st.configs.set(resourceKey(c), c);
      contentChanged = true;
    }
    const prev = st.status;
    const incoming = change.status;
    const lastChange = contentChanged ? (incoming.lastChange ?? this.#now().toISOString()) : (incoming.lastChange ?? prev.lastChange);
    st.status = Object.freeze({ ...incoming, shard, kind: st.kind, lastChange });
    if (prev.state !== st.status.state) {
      this.#opts.log?.(st.status.state === 'stale' ? 'warn' : 'info', 'shard state', { shard, state: st.status.state, error: st.status.lastError });
    }
    this.#opts.onChange();
  }

  /**
   * True once every declared shard delivered its first full snapshot or failed before it (`stale`): a registry
   * that is merely slow holds the first snapshot back, one that is unreachable does not hold the mesh hostage.
   */
  allReceived(): boolean {
    for (const s of this.#shards.values()) if (!s.received && s.status.state !== 'stale') return false;
    return true;
  }

  /** Shards still waiting for their first snapshot. */
  pending(): string[] {
    return [...this.#shards.values()].filter((s) => !s.received && s.status.state !== 'stale').map((s) => s.shard);
  }

  /** Shard statuses and counts without merging (cheap: for metrics scrapes). */
  shards(): readonly ShardView[] {
    return [...this.#shards.values()]
      .map((s) => Object.freeze({
        shard: s.shard, kind: s.kind, status: s.status, received: s.received,
        counts: Object.freeze({ services: s.services.size, workloads: s.workloads.size, configs: s.configs.size }),
      }))
      .sort((a, b) => a.shard.localeCompare(b.shard));
  }

  view(priority: readonly SourceKind[]): AggregateView {
    const states = [...this.#shards.values()];
    const contents: ShardContent[] = states.map((s) => ({ shard: s.shard, kind: s.kind, services: s.services, workloads: s.workloads, ...(s.rank !== undefined ? { rank: s.rank } : {}) }));
    const merged = mergeShards(contents, priority);
    const rank = (s: ShardState): number => { if (s.rank !== undefined) return s.rank; const i = priority.indexOf(s.kind); return i < 0 ? priority.length : i; };
    const configs = new Map<string, Resource>();
    for (const s of [...states].sort((a, b) => rank(a) - rank(b) || a.shard.localeCompare(b.shard))) {
      for (const [k, c] of s.configs) if (!configs.has(k)) configs.set(k, c);
    }
    return Object.freeze({ ...merged, shards: Object.freeze(this.shards()), configs: Object.freeze([...configs.values()]) });
  }
}
