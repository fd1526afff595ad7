/**
 * Merging shards into one service per (namespace, hostname). Pure.
 *
 * Endpoints (inline WorkloadEntries naming the hostname) are unioned across shards. The service itself comes from
 * the shard whose registry kind ranks highest in `priority` (ties: shard id order); any disagreement on ports,
 * protocol, resolution or addresses is reported as a `Conflict`, so the operator sees what was overridden.
 */
import { serviceKey, workloadKey, type ServiceEntry, type SourceKind, type WorkloadEntry } from '@trellis/model';

export interface Conflict {
  readonly hostname: string;
  readonly namespace: string;
  readonly field: 'ports' | 'protocol' | 'resolution' | 'addresses';
  readonly values: readonly { readonly shard: string; readonly value: unknown }[];
  /** Shard id whose value is used. */
  readonly winner: string;
}

/** The content of one shard, as the aggregate holds it. */
export interface ShardContent {
  readonly shard: string;
  readonly kind: SourceKind;
  readonly services: ReadonlyMap<string, ServiceEntry>;
  readonly workloads: ReadonlyMap<string, WorkloadEntry>;
  /** Explicit rank (a `Registry` resource's `priority`; lower wins). Absent: the rank of `kind` in the priority list. */
  readonly rank?: number;
}

export interface MergedService {
  readonly service: ServiceEntry;
  /** Inline endpoints from every shard (workloads whose `services` names this hostname, same namespace). */
  readonly endpoints: readonly WorkloadEntry[];
  /** Shards that define the service, winner first. */
  readonly shards: readonly string[];
}

export interface MergeResult {
  /** Sorted by hostname then namespace. */
  readonly services: readonly MergedService[];
  /** Workloads that are not an inline endpoint of any service (candidates for workloadSelector). */
  readonly standaloneWorkloads: readonly WorkloadEntry[];
  readonly conflicts: readonly Conflict[];
}

function rank(priority: readonly SourceKind[], kind: SourceKind): number {
  const i = priority.indexOf(kind);
  return i < 0 ? priority.length : i;
}

const FIELDS: readonly { field: Conflict['field']; value: (s: ServiceEntry) => unknown }[] = [
  { field: 'ports', value: (s) => s.ports.map((p) => p.number).sort((a, b) => a - b) },
  { field: 'protocol', value: (s) => Object.fromEntries([...s.ports].sort((a, b) => a.number - b.number).map((p) => [String(p.number), p.protocol])) },
  { field: 'resolution', value: (s) => s.resolution },
  { field: 'addresses', value: (s) => [...s.addresses].sort() },
];

export function mergeShards(shards: readonly ShardContent[], priority: readonly SourceKind[]): MergeResult {
  const r = (sh: ShardContent): number => sh.rank ?? rank(priority, sh.kind);
  const ordered = [...shards].sort((a, b) => r(a) - r(b) || a.shard.localeCompare(b.shard));
  const byKey = new Map<string, { shard: string; service: ServiceEntry }[]>();
  for (const sh of ordered) {
    for (const s of sh.services.values()) {
      const k = serviceKey(s);
      let list = byKey.get(k);
      if (!list) byKey.set(k, (list = []));
      list.push({ shard: sh.shard, service: s });
    }
  }
  const endpointsByKey = new Map<string, WorkloadEntry[]>();
  const standalone: WorkloadEntry[] = [];
  for (const sh of ordered) {
    for (const w of sh.workloads.values()) {
      let attached = false;
      for (const host of w.services) {
        const k = serviceKey({ namespace: w.namespace, hostname: host });
        if (!byKey.has(k)) continue;
        attached = true;
        let list = endpointsByKey.get(k);
        if (!list) endpointsByKey.set(k, (list = []));
        list.push(w);
      }
      if (!attached) standalone.push(w);
    }
  }
  const conflicts: Conflict[] = [];
  const services: MergedService[] = [];
  for (const [k, defs] of byKey) {
    const winner = defs[0];
    if (defs.length > 1) {
      for (const f of FIELDS) {
        const values = defs.map((d) => ({ shard: d.shard, value: f.value(d.service) }));
        const first = JSON.stringify(values[0].value);
        if (values.some((v) => JSON.stringify(v.value) !== first)) {
          conflicts.push(Object.freeze({ hostname: winner.service.hostname, namespace: winner.service.namespace, field: f.field, values: Object.freeze(values), winner: winner.shard }));
        }
      }
    }
    const eps = (endpointsByKey.get(k) ?? []).sort((a, b) => a.address.localeCompare(b.address) || workloadKey(a).localeCompare(workloadKey(b)) || a.source.shard.localeCompare(b.source.shard));
    services.push(Object.freeze({ service: winner.service, endpoints: Object.freeze(eps), shards: Object.freeze(defs.map((d) => d.shard)) }));
  }
  services.sort((a, b) => a.service.hostname.localeCompare(b.service.hostname) || a.service.namespace.localeCompare(b.service.namespace));
  conflicts.sort((a, b) => a.hostname.localeCompare(b.hostname) || a.namespace.localeCompare(b.namespace) || a.field.localeCompare(b.field));
  return Object.freeze({ services: Object.freeze(services), standaloneWorkloads: Object.freeze(standalone), conflicts: Object.freeze(conflicts) });
}

/** Whether every label of `selector` is on `labels` (an empty selector selects everything). */
export function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}
