/**
 * The WorkloadEntry an auto-registered workload gets: a pure function of its WorkloadGroup and the node its agent
 * announced. Names follow Istio's (`<group>-<address>`, `-<network>` appended when the node names a network), so a
 * workload that reconnects maps to the same entry and nothing churns.
 */
import type { Health, Source, WorkloadEntry } from '@trellis/model';
import type { WorkloadGroupSpec } from '@trellis/model';

/** Label every auto-registered entry carries: the name of the WorkloadGroup it was registered from. */
export const WORKLOAD_GROUP_LABEL = 'trellis.dev/workload-group';

/** The group as the registry needs it (the config resource's metadata and spec). */
export interface GroupLike {
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: WorkloadGroupSpec;
}

/** What the agent announced in its node metadata, already parsed. */
export interface AnnouncedWorkload {
  readonly group: string;
  readonly namespace: string;
  readonly address: string;
  readonly network: string;
  /** `region/zone/subzone` from `node.locality`, or ''. */
  readonly locality: string;
  /** Extra labels from the node's LABELS metadata; the group's labels win on a clash. */
  readonly labels: Readonly<Record<string, string>>;
}

export const SHARD = 'control:autoregistered';

export function entryName(group: string, address: string, network: string): string {
  const raw = `${group}-${address}${network ? `-${network}` : ''}`;
  return raw.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '');
}

export function serviceAccountOf(group: GroupLike): string {
  return group.spec.template.serviceAccount || 'default';
}

/** Builds the frozen hub WorkloadEntry. */
export function buildEntry(group: GroupLike, w: AnnouncedWorkload, health: Health): WorkloadEntry {
  const t = group.spec.template;
  const name = entryName(group.metadata.name, w.address, w.network || t.network || '');
  const source: Source = Object.freeze({ kind: 'control', shard: SHARD, ref: `WorkloadGroup ${group.metadata.namespace}/${group.metadata.name}` });
  return Object.freeze({
    name,
    namespace: group.metadata.namespace,
    address: w.address,
    ports: Object.freeze({ ...(t.ports ?? {}) }),
    labels: Object.freeze({ ...w.labels, ...(t.labels ?? {}), ...(group.spec.metadata?.labels ?? {}), [WORKLOAD_GROUP_LABEL]: group.metadata.name }),
    serviceAccount: serviceAccountOf(group),
    locality: w.locality || t.locality || '',
    network: w.network || t.network || '',
    weight: t.weight && t.weight > 0 ? t.weight : 1,
    health,
    services: Object.freeze([]),
    source,
  });
}
