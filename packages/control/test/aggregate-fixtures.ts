/** Builders of hub values for the aggregate, snapshot and xDS tests. */
import type { RegistryChange, Resource, ServiceEntry, ShardStatus, SourceKind, WorkloadEntry } from '@trellis/model';

export function svc(hostname: string, shard: string, kind: SourceKind, over: Partial<ServiceEntry> = {}): ServiceEntry {
  return Object.freeze({
    hostname, namespace: 'default', addresses: [], ports: [{ number: 80, protocol: 'HTTP', name: 'http' }], resolution: 'STATIC',
    location: 'MESH_INTERNAL', subjectAltNames: [], exportTo: [], labels: {}, aliases: [], source: { kind, shard }, ...over,
  } as ServiceEntry);
}

export function wl(name: string, address: string, shard: string, kind: SourceKind, over: Partial<WorkloadEntry> = {}): WorkloadEntry {
  return Object.freeze({
    name, namespace: 'default', address, ports: { http: 8080 }, labels: {}, serviceAccount: 'default', locality: '', network: '',
    weight: 1, health: 'HEALTHY', services: [], source: { kind, shard }, ...over,
  } as WorkloadEntry);
}

export function status(shard: string, kind: SourceKind, state: ShardStatus['state'] = 'synced', over: Partial<ShardStatus> = {}): ShardStatus {
  return { shard, kind, state, problems: [], ...over };
}

export function snapshotChange(shard: string, kind: SourceKind, services: ServiceEntry[], workloads: WorkloadEntry[] = [], configs: readonly Resource[] = []): RegistryChange {
  return { type: 'snapshot', services, workloads, configs, status: status(shard, kind) };
}
