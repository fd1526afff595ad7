/**
 * The east-west (cross-network) gateway: a Gateway server with `tls.mode: AUTO_PASSTHROUGH` (Istio's
 * `cross-network-gateway`, conventionally on 15443) on a router proxy.
 *
 * A client proxy on another network reaches a service of this network by opening mesh mTLS to the gateway with SNI
 * `outbound_.<port>_.<subset>_.<host>` (what its cluster's UpstreamTlsContext sets, see clusters.ts and
 * endpoints.ts `splitHorizon`). The gateway never terminates that TLS, so the identity stays end to end and it
 * holds no plaintext:
 * - LDS: listener `0.0.0.0_<port>` with the TLS inspector and, for every visible service whose hostname matches the
 *   server's `hosts`, every port and every DestinationRule subset, a filter chain matching
 *   `server_names: [<sni>]` + `transport_protocol: tls` → tcp_proxy to the cluster named `<sni>`; no transport
 *   socket (no TLS termination);
 * - CDS: cluster `<sni>` with the outbound cluster's settings (type, load balancer, outlier detection, circuit
 *   breakers) and no TLS of its own (the bytes it carries already are the client's TLS);
 * - EDS: the endpoints of that service (and subset) on THIS network only, never other networks' gateways (so
 *   traffic never bounces between gateways).
 * Services with resolution NONE have no endpoints to send to and get no chain.
 */
import type { Server, ServicePort } from '@trellis/model';
import type { GeneratedResource, MeshService, ProxyNode, Snapshot } from '../../snapshot/types.js';
import { outboundCluster } from '../clusters.js';
import { destinationRuleFor } from '../destination-rules.js';
import { loadAssignment, localEndpoints, subsetEndpoints, usesEds } from '../endpoints.js';
import { gatewayListenerName, outboundSni } from '../names.js';
import { Networks } from '../networks.js';
import { socketAddress } from '../proto.js';
import { gatewaysFor } from '../routes.js';
import { hostMatches, visibleServices } from '../scope.js';
import { tcpProxy, tlsInspectorFilter } from './filters.js';

type Obj = Record<string, unknown>;

/** One SNI name the gateway forwards, with what its cluster needs. */
interface EastWestTarget {
  readonly sni: string;
  readonly ms: MeshService;
  readonly port: ServicePort;
  readonly subset: string | undefined;
}

function bareHost(h: string): string {
  const i = h.indexOf('/');
  return i < 0 ? h : h.slice(i + 1);
}

/** The AUTO_PASSTHROUGH servers of the Gateways selecting this proxy. */
export function autoPassthroughServers(snapshot: Snapshot, proxy: ProxyNode): Server[] {
  if (proxy.type !== 'router') return [];
  return gatewaysFor(snapshot, proxy).flatMap((gw) => gw.spec.servers.filter((s) => s.tls?.mode === 'AUTO_PASSTHROUGH'));
}

/** Every (service, port, subset) the servers expose, by SNI; sorted and without duplicates. */
function targets(snapshot: Snapshot, proxy: ProxyNode, servers: readonly Server[]): Map<number, EastWestTarget[]> {
  const byPort = new Map<number, Map<string, EastWestTarget>>();
  const services = visibleServices(snapshot, proxy).filter((ms) => ms.service.resolution !== 'NONE');
  for (const server of servers) {
    const hosts = server.hosts.map(bareHost);
    const list = byPort.get(server.port.number) ?? new Map<string, EastWestTarget>();
    byPort.set(server.port.number, list);
    for (const ms of services) {
      if (!hosts.some((h) => hostMatches(h, ms.service.hostname))) continue;
      const dr = destinationRuleFor(snapshot, proxy, ms.service.hostname, ms.service.namespace);
      for (const port of ms.service.ports) {
        for (const subset of [undefined, ...(dr?.spec.subsets ?? []).map((s) => s.name)]) {
          const sni = outboundSni(port.number, subset, ms.service.hostname);
          if (!list.has(sni)) list.set(sni, { sni, ms, port, subset });
        }
      }
    }
  }
  return new Map([...byPort].map(([p, m]) => [p, [...m.values()].sort((a, b) => a.sni.localeCompare(b.sni))]));
}

/** All targets of all AUTO_PASSTHROUGH servers, each SNI once. */
function allTargets(snapshot: Snapshot, proxy: ProxyNode): EastWestTarget[] {
  const seen = new Map<string, EastWestTarget>();
  for (const list of targets(snapshot, proxy, autoPassthroughServers(snapshot, proxy)).values()) for (const t of list) if (!seen.has(t.sni)) seen.set(t.sni, t);
  return [...seen.values()].sort((a, b) => a.sni.localeCompare(b.sni));
}

function chain(t: EastWestTarget): Obj {
  return {
    name: t.sni,
    filter_chain_match: { server_names: [t.sni], transport_protocol: 'tls' },
    filters: [tcpProxy(t.sni, t.sni)],
  };
}

/**
 * The gateway listeners with the east-west chains added: chains go into the listener of their port when the
 * Gateway already produced one (other servers on the same port), else into a new `0.0.0.0_<port>` listener.
 */
export function withEastWestListeners(snapshot: Snapshot, proxy: ProxyNode, listeners: Obj[]): Obj[] {
  const servers = autoPassthroughServers(snapshot, proxy);
  if (servers.length === 0) return listeners;
  const out = [...listeners];
  for (const [port, list] of [...targets(snapshot, proxy, servers)].sort(([a], [b]) => a - b)) {
    const name = gatewayListenerName(port);
    const i = out.findIndex((l) => l.name === name);
    const chains = list.map(chain);
    if (i >= 0) {
      const l = out[i]!;
      const existing = (l.filter_chains as Obj[] | undefined) ?? [];
      const names = new Set(existing.map((c) => c.name));
      const filters = (l.listener_filters as Obj[] | undefined) ?? [];
      out[i] = {
        ...l,
        listener_filters: filters.some((f) => f.name === 'envoy.filters.listener.tls_inspector') ? filters : [tlsInspectorFilter(), ...filters],
        filter_chains: [...existing, ...chains.filter((c) => !names.has(c.name))],
      };
    } else {
      out.push({
        name,
        address: socketAddress('0.0.0.0', port),
        listener_filters: [tlsInspectorFilter()],
        traffic_direction: 'OUTBOUND',
        filter_chains: chains,
      });
    }
  }
  return out;
}

/** CDS: one passthrough cluster per east-west SNI name (router proxies with an AUTO_PASSTHROUGH server). */
export function eastWestClusters(snapshot: Snapshot, proxy: ProxyNode): Obj[] {
  const out: Obj[] = [];
  for (const t of allTargets(snapshot, proxy)) {
    const base = outboundCluster(snapshot, proxy, t.ms, t.port, t.subset);
    if (base === undefined) continue;
    const c: Obj = { ...base, name: t.sni };
    // The connection already carries the client's mTLS, and tcp_proxy never speaks HTTP to the endpoint.
    delete c.transport_socket;
    delete c.transport_socket_matches;
    delete c.typed_extension_protocol_options;
    if (c.type === 'EDS') c.eds_cluster_config = { ...(c.eds_cluster_config as Obj), service_name: t.sni };
    else if (c.load_assignment !== undefined) c.load_assignment = assignment(snapshot, proxy, t, new Networks(snapshot));
    out.push(c);
  }
  return out;
}

function assignment(snapshot: Snapshot, proxy: ProxyNode, t: EastWestTarget, networks: Networks): Obj {
  const dr = destinationRuleFor(snapshot, proxy, t.ms.service.hostname, t.ms.service.namespace);
  const subsetLabels = t.subset === undefined ? undefined : dr?.spec.subsets?.find((s) => s.name === t.subset)?.labels ?? {};
  const local = localEndpoints(subsetEndpoints(t.ms.endpoints, subsetLabels), networks.proxyNetwork(proxy.network), networks);
  return loadAssignment(t.sni, t.port, local, { tlsMetadata: false });
}

/** EDS for the east-west clusters of EDS services: this network's endpoints only. */
export function eastWestEndpoints(snapshot: Snapshot, proxy: ProxyNode, networks: Networks): GeneratedResource[] {
  return allTargets(snapshot, proxy)
    .filter((t) => usesEds(t.ms.service))
    .map((t) => ({ name: t.sni, body: assignment(snapshot, proxy, t, networks) }));
}
