/**
 * The contract between registry adapters and the control plane.
 *
 * An adapter is one class with `watch(signal)`. The first item it yields is a full `snapshot` of its shard;
 * later items are further snapshots, incremental `update`s, or `status` changes. An unreachable source yields a
 * `status` with state `stale` and keeps its last content; it never yields an empty snapshot because it failed.
 */
import type { ServiceEntry, ShardStatus, SourceKind, WorkloadEntry } from './hub.js';
import type { Resource } from './resource.js';

export type RegistryChange =
  | {
      readonly type: 'snapshot';
      readonly services: readonly ServiceEntry[];
      readonly workloads: readonly WorkloadEntry[];
      /** Config resources (VirtualService, DestinationRule, …) the source carries; adapters without config give []. */
      readonly configs: readonly Resource[];
      readonly status: ShardStatus;
    }
  | {
      readonly type: 'update';
      readonly upsert: {
        readonly services: readonly ServiceEntry[];
        readonly workloads: readonly WorkloadEntry[];
        readonly configs: readonly Resource[];
      };
      /** Keys as given by serviceKey / workloadKey / resourceKey. */
      readonly remove: {
        readonly services: readonly string[];
        readonly workloads: readonly string[];
        readonly configs: readonly string[];
      };
      readonly status: ShardStatus;
    }
  | { readonly type: 'status'; readonly status: ShardStatus };

export interface RegistryAdapter {
  /** Shard id, unique per adapter instance. */
  readonly shard: string;
  readonly kind: SourceKind;
  /** Streams changes until `signal` aborts; the first item is a full snapshot. Never throws for an unreachable source. */
  watch(signal: AbortSignal): AsyncIterable<RegistryChange>;
}

/** `namespace/hostname`: a service is one hostname in one namespace. */
export function serviceKey(s: { namespace: string; hostname: string }): string {
  return `${s.namespace}/${s.hostname}`;
}

/** `namespace/name`: a workload's key within its shard. */
export function workloadKey(w: { namespace: string; name: string }): string {
  return `${w.namespace}/${w.name}`;
}
