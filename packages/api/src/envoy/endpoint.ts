/** `envoy.config.endpoint.v3.ClusterLoadAssignment` → ClusterLoadAssignmentConfig. */
import { fromStruct } from '../any.js';
import { type SocketAddress, decodeAddress } from './common.js';
import { type Obj, deepFreeze, fail, join, list, num, obj, reqStr, str, wrapped } from './read.js';

export type HealthStatus = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';

export interface LbEndpoint {
  readonly address: SocketAddress;
  readonly health: HealthStatus;
  /** Usable for load balancing: UNKNOWN and HEALTHY (Envoy treats DEGRADED as a lower tier; here it is usable). */
  readonly healthy: boolean;
  readonly weight: number;
  readonly hostname: string | null;
  /** `metadata.filter_metadata` as JSON (e.g. `envoy.transport_socket_match: { tlsMode: 'istio' }`, `istio: {workload}`). */
  readonly metadata: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
}

export interface LocalityEndpoints {
  readonly locality: Locality;
  readonly weight: number;
  readonly priority: number;
  readonly endpoints: readonly LbEndpoint[];
}

export interface ClusterLoadAssignmentConfig {
  readonly clusterName: string;
  readonly localities: readonly LocalityEndpoints[];
  readonly overprovisioningFactor: number;
}

const HEALTH: readonly HealthStatus[] = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'];

function decodeLbEndpoint(e: Obj, p: string): LbEndpoint {
  const ep = obj(e, 'endpoint', p) ?? fail(join(p, 'endpoint'), 'required (named endpoints are not supported)');
  const addr = obj(ep, 'address', join(p, 'endpoint')) ?? fail(join(p, 'endpoint.address'), 'required');
  const address = decodeAddress(addr, join(p, 'endpoint.address'));
  const h = e.health_status ?? 'UNKNOWN';
  if (!HEALTH.includes(h as HealthStatus)) fail(join(p, 'health_status'), 'unsupported');
  const health = h as HealthStatus;
  const weight = wrapped(e, 'load_balancing_weight', p) ?? 1;
  if (weight < 1) fail(join(p, 'load_balancing_weight'), 'must be at least 1');
  const fm = (obj(e, 'metadata', p)?.filter_metadata ?? {}) as Record<string, { fields?: Record<string, unknown> }>;
  const metadata: Record<string, Record<string, unknown>> = {};
  for (const [k, v] of Object.entries(fm)) metadata[k] = fromStruct(v);
  return { address, health, healthy: health === 'UNKNOWN' || health === 'HEALTHY' || health === 'DEGRADED', weight, hostname: str(ep, 'hostname', join(p, 'endpoint')) ?? null, metadata };
}

export function decodeClusterLoadAssignment(o: Obj, path = ''): ClusterLoadAssignmentConfig {
  const clusterName = reqStr(o, 'cluster_name', path);
  const localities = list(o, 'endpoints', path, (l, p): LocalityEndpoints => {
    const loc = obj(l, 'locality', p) ?? {};
    const priority = num(l, 'priority', p) ?? 0;
    return {
      locality: { region: String(loc.region ?? ''), zone: String(loc.zone ?? ''), subZone: String(loc.sub_zone ?? '') },
      weight: wrapped(l, 'load_balancing_weight', p) ?? 1,
      priority,
      endpoints: list(l, 'lb_endpoints', p, decodeLbEndpoint),
    };
  });
  const policy = obj(o, 'policy', path);
  return deepFreeze({ clusterName, localities, overprovisioningFactor: (policy && wrapped(policy, 'overprovisioning_factor', join(path, 'policy'))) || 140 });
}
