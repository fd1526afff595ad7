/**
 * EDS: one ClusterLoadAssignment per `outbound|<port>|<subset>|<host>` cluster of type EDS (services with
 * resolution STATIC; NONE is original-destination and DNS resolves in CDS, as in Istio).
 *
 * Endpoints are grouped by locality (`region/zone/subzone`); each endpoint carries its weight and health, each
 * locality the sum of its endpoints' weights. Subset clusters keep the endpoints whose labels match the subset's.
 * With locality load balancing in force (a DestinationRule with outlier detection, `localityLbSetting.enabled` not
 * false) localities get priorities by proximity to the proxy: same region/zone/subzone 0, same zone 1, same region 2,
 * others 3 (compacted so they are consecutive), which is Istio's default failover.
 */
import type { ServiceEntry, ServicePort, WorkloadEntry } from '@trellis/model';
import type { GeneratedResource, MeshService, ProxyNode, Snapshot } from '../snapshot/types.js';
import { destinationRuleFor, effectivePolicy } from './destination-rules.js';
import { outboundClusterName } from './names.js';
import { stringStruct, u32 } from './proto.js';
import { labelsMatch, visibleServices } from './scope.js';

type Obj = Record<string, unknown>;

/** Label that says whether a workload's proxy accepts mesh mTLS (Istio's `security.istio.io/tlsMode`). */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

/**
 * Istio's rule for WorkloadEntries: the `security.istio.io/tlsMode` label when present, else `istio` when the
 * workload has a service account (it runs a proxy with an identity), else `disabled`.
 */
export function workloadTlsMode(w: WorkloadEntry): 'istio' | 'disabled' {
  const label = w.labels[TLS_MODE_LABEL];
  if (label !== undefined) return label === 'istio' ? 'istio' : 'disabled';
  return w.serviceAccount !== '' ? 'istio' : 'disabled';
}

/** The port a workload listens on for a service port. */
export function workloadPort(port: ServicePort, w: WorkloadEntry): number {
  return w.ports[port.name] ?? port.targetPort ?? port.number;
}

/** Services whose clusters are EDS (Istio: ClientSideLB / STATIC resolution). */
export function usesEds(service: ServiceEntry): boolean {
  return service.resolution === 'STATIC';
}

export function endpointAddress(address: string, port: number): Obj {
  if (address.startsWith('unix://')) return { pipe: { path: address.slice('unix://'.length) } };
  return { socket_address: { address, port_value: port } };
}

export function subsetEndpoints(endpoints: readonly WorkloadEntry[], subsetLabels: Readonly<Record<string, string>> | undefined): readonly WorkloadEntry[] {
  return subsetLabels === undefined ? endpoints : endpoints.filter((w) => labelsMatch(subsetLabels, w.labels));
}

function splitLocality(l: string): { region: string; zone: string; sub_zone: string } {
  const [region = '', zone = '', subZone = ''] = l.split('/');
  return { region, zone, sub_zone: subZone };
}

function proximity(endpointLocality: string, proxyLocality: string): number {
  const a = splitLocality(endpointLocality);
  const b = splitLocality(proxyLocality);
  if (a.region !== b.region || a.region === '') return 3;
  if (a.zone !== b.zone) return 2;
  if (a.sub_zone !== b.sub_zone) return 1;
  return 0;
}

export interface AssignmentOptions {
  /** Assign failover priorities relative to this locality. */
  readonly priorityFrom?: string;
  /** Whether to mark endpoints with the auto-mTLS transport socket match metadata. */
  readonly tlsMetadata: boolean;
}

/** Builds a ClusterLoadAssignment body for `clusterName` from workloads and the service port they serve. */
export function loadAssignment(clusterName: string, port: ServicePort, workloads: readonly WorkloadEntry[], opts: AssignmentOptions): Obj {
  const byLocality = new Map<string, WorkloadEntry[]>();
  for (const w of workloads) {
    const list = byLocality.get(w.locality) ?? [];
    list.push(w);
    byLocality.set(w.locality, list);
  }
  const localities = [...byLocality.keys()].sort();
  const rawPriorities = localities.map((l) => (opts.priorityFrom === undefined ? 0 : proximity(l, opts.priorityFrom)));
  const distinct = [...new Set(rawPriorities)].sort((a, b) => a - b);
  const endpoints = localities.map((l, i) => {
    const ws = [...(byLocality.get(l) ?? [])].sort((a, b) => a.address.localeCompare(b.address) || workloadPort(port, a) - workloadPort(port, b) || a.name.localeCompare(b.name));
    const lb = ws.map((w) => {
      const e: Obj = {
        endpoint: { address: endpointAddress(w.address, workloadPort(port, w)) },
        health_status: w.health,
        load_balancing_weight: u32(Math.max(1, w.weight)),
      };
      if (opts.tlsMetadata) e.metadata = { filter_metadata: { 'envoy.transport_socket_match': stringStruct({ tlsMode: workloadTlsMode(w) }) } };
      return e;
    });
    const out: Obj = {
      locality: splitLocality(l),
      lb_endpoints: lb,
      load_balancing_weight: u32(ws.reduce((s, w) => s + Math.max(1, w.weight), 0)),
    };
    const priority = distinct.indexOf(rawPriorities[i] ?? 0);
    if (priority > 0) out.priority = priority;
    return out;
  });
  return { cluster_name: clusterName, endpoints };
}

/** Endpoints of a service that can take traffic on a port: same network as the mesh, not on another network. */
function portEndpoints(ms: MeshService, network: string): readonly WorkloadEntry[] {
  return ms.endpoints.filter((w) => w.network === '' || network === '' || w.network === network);
}

/** Every EDS cluster name with its load assignment, for the services the proxy sees. */
export function generateEndpoints(snapshot: Snapshot, proxy: ProxyNode): readonly GeneratedResource[] {
  const out: GeneratedResource[] = [];
  for (const ms of visibleServices(snapshot, proxy)) {
    const svc = ms.service;
    if (!usesEds(svc)) continue;
    const dr = destinationRuleFor(snapshot, proxy, svc.hostname, svc.namespace);
    const endpoints = portEndpoints(ms, proxy.network);
    const tlsMetadata = svc.location === 'MESH_INTERNAL' && proxy.type !== 'proxyless';
    for (const port of svc.ports) {
      const subsets: (string | undefined)[] = [undefined, ...(dr?.spec.subsets ?? []).map((s) => s.name)];
      for (const subset of subsets) {
        const name = outboundClusterName(port.number, subset, svc.hostname);
        const subsetLabels = subset === undefined ? undefined : dr?.spec.subsets?.find((s) => s.name === subset)?.labels ?? {};
        const policy = effectivePolicy(dr, port.number, subset);
        const localityLb = policy?.outlierDetection !== undefined && policy.loadBalancer?.localityLbSetting?.enabled !== false && proxy.locality !== '';
        out.push({
          name,
          body: loadAssignment(name, port, subsetEndpoints(endpoints, subsetLabels), { tlsMetadata, ...(localityLb ? { priorityFrom: proxy.locality } : {}) }),
        });
      }
    }
  }
  return out;
}
