/**
 * Building a frozen `Snapshot` from the aggregate's view, the mesh settings and the VIP table. Pure.
 */
import type { Resource, WorkloadEntry } from '@trellis/model';
import type { AggregateView } from '../aggregate/aggregate.js';
import { selects } from '../aggregate/merge.js';
import type { ConfigIndex, ConfigOf, MeshService, MeshSettings, Snapshot } from './types.js';

/** Deep-freezes plain data in place (objects and arrays) and returns it. Already-frozen subtrees are skipped. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

const byName = (a: Resource, b: Resource): number =>
  a.metadata.namespace.localeCompare(b.metadata.namespace) || a.metadata.name.localeCompare(b.metadata.name);

/** Sorts config resources by kind into the index the generators read. Unknown and hub kinds are skipped. */
export function indexConfigs(configs: readonly Resource[]): ConfigIndex {
  const of = <K extends ConfigOf<'VirtualService'>['kind'] | string>(kind: K): never[] =>
    configs.filter((c) => c.kind === kind).sort(byName) as never[];
  return Object.freeze({
    virtualServices: Object.freeze(of('VirtualService')),
    destinationRules: Object.freeze(of('DestinationRule')),
    gateways: Object.freeze(of('Gateway')),
    sidecars: Object.freeze(of('Sidecar')),
    peerAuthentications: Object.freeze(of('PeerAuthentication')),
    authorizationPolicies: Object.freeze(of('AuthorizationPolicy')),
    requestAuthentications: Object.freeze(of('RequestAuthentication')),
    workloadGroups: Object.freeze(of('WorkloadGroup')),
  });
}

export interface BuildInput {
  readonly view: AggregateView;
  readonly mesh: MeshSettings;
  /** hostname → allocated VIP, for services without addresses. */
  readonly vips: ReadonlyMap<string, string>;
  readonly version: string;
}

export function buildSnapshot(input: BuildInput): Snapshot {
  const { view } = input;
  const standalone = view.standaloneWorkloads;
  const selected = new Set<WorkloadEntry>();
  const services: MeshService[] = view.services.map((m) => {
    const s = m.service;
    let endpoints: readonly WorkloadEntry[] = m.endpoints;
    if (s.workloadSelector !== undefined) {
      const picked = standalone.filter((w) => w.namespace === s.namespace && selects(s.workloadSelector!, w.labels));
      for (const w of picked) selected.add(w);
      if (picked.length > 0) endpoints = [...m.endpoints, ...picked].sort((a, b) => a.address.localeCompare(b.address) || a.name.localeCompare(b.name));
    }
    const vip = s.addresses[0] ?? input.vips.get(s.hostname);
    return { service: s, ...(vip !== undefined ? { vip } : {}), endpoints: Object.freeze(endpoints) };
  });
  const workloads = standalone.filter((w) => !selected.has(w));
  return deepFreeze({
    version: input.version,
    services,
    workloads,
    config: indexConfigs(view.configs),
    mesh: input.mesh,
  });
}
