/**
 * EDS: one ClusterLoadAssignment per `outbound|<port>|<subset>|<host>` cluster of type EDS (services with
 * resolution STATIC; NONE is original-destination and DNS resolves in CDS, as in Istio).
 *
 * Endpoints are grouped by locality (`region/zone/subzone`); each endpoint carries its weight and health, each
 * locality the sum of its endpoints' weights. Subset clusters keep the endpoints whose labels match the subset's.
 * With locality load balancing in force (a DestinationRule with outlier detection, `localityLbSetting.enabled` not
 * false) localities get priorities by proximity to the proxy: same region/zone/subzone 0, same zone 1, same region 2,
 * a `failover` target region 3, others 4 (compacted so they are consecutive), which is Istio's failover; a matching
 * `distribute` rule sets locality weights instead.
 *
 * Split horizon (networks.ts, `splitHorizon` below): a proxy gets the endpoints of its own network directly and, for
 * every other network, that network's gateways in their place (same locality, weighted by the endpoints behind
 * them, marked `tlsMode: istio` so the client speaks mesh mTLS with SNI `outbound_.<port>_.<subset>_.<host>`);
 * networks without a gateway are dropped. East-west gateways get their SNI clusters' local endpoints
 * (listeners/east-west.ts).
 */
import { toStruct } from '@trellis/api';
import type { ServiceEntry, ServicePort, WorkloadEntry } from '@trellis/model';
import type { GeneratedResource, ProxyNode, Snapshot } from '../snapshot/types.js';
import { destinationRuleFor, effectivePolicy, type TrafficPolicy } from './destination-rules.js';
import { outboundClusterName } from './names.js';
import { u32 } from './proto.js';
import { eastWestEndpoints } from './listeners/east-west.js';
import { Networks, sameNetwork } from './networks.js';
import { localityByAddress, proxyLocality } from './proxy-locality.js';
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

/**
 * Failover tier of an endpoint locality for a proxy locality: same subzone 0, same zone 1, same region 2, a region
 * named by an explicit `failover` rule for the proxy's region 3, anything else 4 (Istio's applyLocalityFailover).
 */
function proximity(endpointLocality: string, proxyLocality: string, failoverTo: readonly string[]): number {
  const a = splitLocality(endpointLocality);
  const b = splitLocality(proxyLocality);
  if (a.region !== b.region || a.region === '') return failoverTo.includes(a.region) ? 3 : 4;
  if (a.zone !== b.zone) return 2;
  if (a.sub_zone !== b.sub_zone) return 1;
  return 0;
}

/** Istio locality patterns: `region/zone/subzone`, each part may be `*`, missing trailing parts match anything. */
export function localityMatches(pattern: string, locality: string): boolean {
  const p = pattern.split('/');
  const l = locality.split('/');
  return p.every((part, i) => part === '*' || part === (l[i] ?? ''));
}

export interface LocalitySettings {
  /** The proxy's locality: failover priorities are relative to it. */
  readonly from: string;
  /** Regions to fail over to from the proxy's region (`failover[].to` where `from` is the proxy's region). */
  readonly failoverTo: readonly string[];
  /**
   * `distribute[].to` of the rule whose `from` matches the proxy: locality pattern → percentage. When set, it
   * replaces proximity priorities: each locality gets the share of every pattern it matches, split evenly among
   * the localities matching that pattern; localities with no share get no traffic.
   */
  readonly distribute?: Readonly<Record<string, number>>;
}

export interface AssignmentOptions {
  readonly locality?: LocalitySettings;
  /** Whether to mark endpoints with the auto-mTLS transport socket match metadata. */
  readonly tlsMetadata: boolean;
}

function distributedWeights(localities: readonly string[], to: Readonly<Record<string, number>>): number[] {
  const weights = localities.map(() => 0);
  for (const [pattern, pct] of Object.entries(to)) {
    const matching = localities.map((l, i) => (localityMatches(pattern, l) ? i : -1)).filter((i) => i >= 0);
    for (const i of matching) weights[i] = (weights[i] ?? 0) + Math.round((pct * 1000) / matching.length);
  }
  return weights;
}

/** Builds a ClusterLoadAssignment body for `clusterName` from workloads and the service port they serve. */
export function loadAssignment(clusterName: string, port: ServicePort, workloads: readonly WorkloadEntry[], opts: AssignmentOptions): Obj {
  const byLocality = new Map<string, WorkloadEntry[]>();
  for (const w of workloads) {
    const list = byLocality.get(w.locality) ?? [];
    list.push(w);
    byLocality.set(w.locality, list);
  }
  const loc = opts.locality;
  const all = [...byLocality.keys()].sort();
  const shares = loc?.distribute === undefined ? undefined : distributedWeights(all, loc.distribute);
  const localities = shares === undefined ? all : all.filter((_l, i) => (shares[i] ?? 0) > 0);
  const rawPriorities = localities.map((l) => (loc === undefined || shares !== undefined ? 0 : proximity(l, loc.from, loc.failoverTo)));
  const distinct = [...new Set(rawPriorities)].sort((a, b) => a - b);
  const endpoints = localities.map((l, i) => {
    const ws = [...(byLocality.get(l) ?? [])].sort((a, b) => a.address.localeCompare(b.address) || workloadPort(port, a) - workloadPort(port, b) || a.name.localeCompare(b.name));
    const lb = ws.map((w) => {
      const e: Obj = {
        endpoint: { address: endpointAddress(w.address, workloadPort(port, w)) },
        health_status: w.health,
        load_balancing_weight: u32(Math.max(1, w.weight)),
      };
      if (opts.tlsMetadata) e.metadata = { filter_metadata: { 'envoy.transport_socket_match': toStruct({ tlsMode: workloadTlsMode(w) }) } };
      return e;
    });
    const out: Obj = {
      locality: splitLocality(l),
      lb_endpoints: lb,
      load_balancing_weight: u32(shares === undefined ? ws.reduce((s, w) => s + Math.max(1, w.weight), 0) : (shares[all.indexOf(l)] ?? 0)),
    };
    const priority = distinct.indexOf(rawPriorities[i] ?? 0);
    if (priority > 0) out.priority = priority;
    return out;
  });
  return { cluster_name: clusterName, endpoints };
}

/** The auto-mTLS mode label value of gateway endpoints: traffic through a network gateway is always mesh mTLS. */
const VIA_GATEWAY_LABELS: Readonly<Record<string, string>> = Object.freeze({ [TLS_MODE_LABEL]: 'istio' });

/**
 * Split horizon (Istio's EndpointsByNetworkFilter): the endpoints a proxy on `proxyNetwork` gets for one cluster.
 * Endpoints on the proxy's network (or on the unknown network '') are kept as they are. The endpoints of every other
 * network are replaced, per locality, by that network's gateways: one endpoint per gateway address, in the same
 * locality (so locality failover still orders them), weighted by the summed weight of the healthy endpoints it
 * stands for, split evenly among the network's gateways. Only endpoints that run a proxy (`tlsMode: istio`) count:
 * a gateway forwards mesh mTLS by SNI and nothing else. A network without gateways is unreachable: its endpoints
 * are dropped. `viaGateways: false` (proxyless gRPC clients, which cannot do mesh mTLS) drops every other network.
 */
export function splitHorizon(endpoints: readonly WorkloadEntry[], port: ServicePort, proxyNetwork: string, networks: Networks, viaGateways: boolean): readonly WorkloadEntry[] {
  const local: WorkloadEntry[] = [];
  // network → locality → summed weight of the endpoints behind the network's gateways
  const remote = new Map<string, Map<string, number>>();
  for (const w of endpoints) {
    const net = networks.workloadNetwork(w);
    if (sameNetwork(net, proxyNetwork)) {
      local.push(w);
      continue;
    }
    if (!viaGateways || workloadTlsMode(w) !== 'istio' || w.health === 'UNHEALTHY' || w.health === 'DRAINING') continue;
    const byLocality = remote.get(net) ?? new Map<string, number>();
    byLocality.set(w.locality, (byLocality.get(w.locality) ?? 0) + Math.max(1, w.weight));
    remote.set(net, byLocality);
  }
  if (remote.size === 0) return local;
  const out = [...local];
  for (const net of [...remote.keys()].sort()) {
    const gateways = networks.gateways(net);
    if (gateways.length === 0) continue;
    for (const [locality, weight] of [...remote.get(net)!.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const share = Math.max(1, Math.round(weight / gateways.length));
      for (const gw of gateways) {
        out.push(Object.freeze({
          name: `gateway:${net}:${gw.address}:${gw.port}`,
          namespace: '',
          address: gw.address,
          ports: Object.freeze({ [port.name]: gw.port }),
          labels: VIA_GATEWAY_LABELS,
          serviceAccount: '',
          locality,
          network: net,
          weight: share,
          health: 'HEALTHY',
          services: Object.freeze([]),
          source: Object.freeze({ kind: 'control', shard: `network:${net}` }),
        } satisfies WorkloadEntry));
      }
    }
  }
  return out;
}

/** The endpoints on the proxy's own network only (what an east-west gateway forwards to). */
export function localEndpoints(endpoints: readonly WorkloadEntry[], proxyNetwork: string, networks: Networks): readonly WorkloadEntry[] {
  return endpoints.filter((w) => sameNetwork(networks.workloadNetwork(w), proxyNetwork));
}

/**
 * Locality load balancing in force for a policy and proxy: Istio applies it only with outlier detection (so
 * failover can happen) unless `localityLbSetting.enabled` is false, and only when the proxy has a locality.
 */
export function localitySettings(policy: TrafficPolicy | undefined, proxyLocality: string): LocalitySettings | undefined {
  const setting = policy?.loadBalancer?.localityLbSetting;
  if (proxyLocality === '' || setting?.enabled === false) return undefined;
  const distribute = setting?.distribute?.find((d) => d.from !== undefined && localityMatches(d.from, proxyLocality))?.to;
  if (distribute !== undefined) return { from: proxyLocality, failoverTo: [], distribute };
  if (policy?.outlierDetection === undefined) return undefined;
  const region = proxyLocality.split('/')[0] ?? '';
  const failoverTo = (setting?.failover ?? []).filter((f) => f.from === region && f.to !== undefined).map((f) => f.to as string);
  return { from: proxyLocality, failoverTo };
}

/** Every EDS cluster name with its load assignment, for the services the proxy sees. */
export function generateEndpoints(snapshot: Snapshot, proxy: ProxyNode): readonly GeneratedResource[] {
  const out: GeneratedResource[] = [];
  const networks = new Networks(snapshot);
  const proxyNetwork = networks.proxyNetwork(proxy.network);
  const viaGateways = proxy.type !== 'proxyless';
  const fromLocality = proxyLocality(proxy, localityByAddress(snapshot));
  for (const ms of visibleServices(snapshot, proxy)) {
    const svc = ms.service;
    if (!usesEds(svc)) continue;
    const dr = destinationRuleFor(snapshot, proxy, svc.hostname, svc.namespace);
    const tlsMetadata = svc.location === 'MESH_INTERNAL' && proxy.type !== 'proxyless';
    for (const port of svc.ports) {
      const endpoints = splitHorizon(ms.endpoints, port, proxyNetwork, networks, viaGateways);
      const subsets: (string | undefined)[] = [undefined, ...(dr?.spec.subsets ?? []).map((s) => s.name)];
      for (const subset of subsets) {
        const name = outboundClusterName(port.number, subset, svc.hostname);
        const subsetLabels = subset === undefined ? undefined : dr?.spec.subsets?.find((s) => s.name === subset)?.labels ?? {};
        const locality = localitySettings(effectivePolicy(dr, port.number, subset), fromLocality);
        // Subsets select by the real endpoints' labels, so split the subset's endpoints, not the service's.
        const selected = subsetLabels === undefined ? endpoints : splitHorizon(subsetEndpoints(ms.endpoints, subsetLabels), port, proxyNetwork, networks, viaGateways);
        out.push({
          name,
          body: loadAssignment(name, port, selected, { tlsMetadata: tlsMetadata || selected.some((w) => w.source.kind === 'control' && w.source.shard.startsWith('network:')), ...(locality !== undefined ? { locality } : {}) }),
        });
      }
    }
  }
  if (proxy.type === 'router') out.push(...eastWestEndpoints(snapshot, proxy, networks));
  return out;
}
