/**
 * CDS: outbound clusters per visible service port and DestinationRule subset, inbound clusters for the proxy's own
 * workload ports, and the fixed `PassthroughCluster` / `BlackHoleCluster` / `InboundPassthroughCluster`.
 *
 * Istio's semantics (pilot/pkg/networking/core/cluster*.go):
 * - type by resolution: STATIC → EDS (via ADS), DNS → STRICT_DNS, DNS_ROUND_ROBIN → LOGICAL_DNS (endpoints inline,
 *   the hostname itself when the service lists none), NONE → ORIGINAL_DST with CLUSTER_PROVIDED;
 * - connect timeout 10 s unless `connectionPool.tcp.connectTimeout`;
 * - load balancer: LEAST_REQUEST by default (Istio's default), ROUND_ROBIN, RANDOM, LEAST_CONN → LEAST_REQUEST,
 *   consistentHash → RING_HASH (or MAGLEV); the hash key itself goes on the route (`hash_policy`);
 * - circuit breakers: Istio's defaults (every threshold 2^32-1, `track_remaining`), overridden from connectionPool;
 * - outlier detection mapped field by field; `minHealthPercent` → healthy panic threshold;
 * - TLS: DestinationRule `tls` (ISTIO_MUTUAL, SIMPLE, MUTUAL, DISABLE); without one, auto mTLS for MESH_INTERNAL
 *   services whose namespace/mesh PeerAuthentication is not DISABLE and that have an endpoint running a proxy, via
 *   `transport_socket_matches` on the endpoint metadata `tlsMode: istio` (set in EDS or the inline load assignment
 *   from the workload's `security.istio.io/tlsMode` label or its service account); the expected peer identities are the SPIFFE ids of the endpoints' service accounts and the service's
 *   subjectAltNames;
 * - HTTP/2 upstream for GRPC/HTTP2/GRPC_WEB ports and for `h2UpgradePolicy: UPGRADE`.
 * Proxyless gRPC clients get what grpc-js-xds accepts: EDS or single-endpoint LOGICAL_DNS, ROUND_ROBIN or
 * RING_HASH, no transport socket (no SDS in the gRPC library).
 */
import { EXT_TYPE_URL, toStruct } from '@trellis/api';
import type { ServicePort, WorkloadEntry } from '@trellis/model';
import type { GeneratedResource, MeshService, ProxyNode, Snapshot } from '../snapshot/types.js';
import { destinationRuleFor, effectivePolicy, type TrafficPolicy } from './destination-rules.js';
import { endpointAddress, loadAssignment, splitHorizon, workloadTlsMode } from './endpoints.js';
import { Networks } from './networks.js';
import { eastWestClusters } from './listeners/east-west.js';
import { ownWorkloadPorts } from './workload.js';
import { mtlsModeFor } from './mtls.js';
import {
  BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, inboundClusterName, outboundClusterName, outboundSni, PASSTHROUGH_CLUSTER, spiffeId,
} from './names.js';
import { adsConfigSource, duration, u32 } from './proto.js';
import { visibleServices } from './scope.js';
import { istioMutualUpstream, originationUpstream } from './tls.js';

type Obj = Record<string, unknown>;

const MAX_U32 = 4_294_967_295;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export function isHttp2Protocol(p: string): boolean {
  return p === 'GRPC' || p === 'HTTP2' || p === 'GRPC_WEB';
}

export function isHttpProtocol(p: string): boolean {
  return p === 'HTTP' || isHttp2Protocol(p);
}

function circuitBreakers(policy: TrafficPolicy | undefined): Obj {
  const tcp = policy?.connectionPool?.tcp;
  const http = policy?.connectionPool?.http;
  return {
    thresholds: [
      {
        max_connections: u32(tcp?.maxConnections ?? MAX_U32),
        max_pending_requests: u32(http?.http1MaxPendingRequests ?? MAX_U32),
        max_requests: u32(http?.http2MaxRequests ?? MAX_U32),
        max_retries: u32(http?.maxRetries ?? MAX_U32),
        track_remaining: true,
      },
    ],
  };
}

function outlierDetection(policy: TrafficPolicy | undefined): Obj | undefined {
  const o = policy?.outlierDetection;
  if (o === undefined) return undefined;
  const out: Obj = { enforcing_success_rate: u32(0) };
  const c5xx = o.consecutive5xxErrors ?? o.consecutiveErrors;
  if (c5xx !== undefined) {
    out.consecutive_5xx = u32(c5xx);
    out.enforcing_consecutive_5xx = u32(c5xx > 0 ? 100 : 0);
  }
  if (o.consecutiveGatewayErrors !== undefined) {
    out.consecutive_gateway_failure = u32(o.consecutiveGatewayErrors);
    out.enforcing_consecutive_gateway_failure = u32(o.consecutiveGatewayErrors > 0 ? 100 : 0);
  }
  if (o.interval !== undefined) out.interval = duration(o.interval);
  if (o.baseEjectionTime !== undefined) out.base_ejection_time = duration(o.baseEjectionTime);
  if (o.maxEjectionPercent !== undefined && o.maxEjectionPercent > 0) out.max_ejection_percent = u32(o.maxEjectionPercent);
  if (o.splitExternalLocalOriginErrors === true) {
    out.split_external_local_origin_errors = true;
    if (o.consecutiveLocalOriginFailures !== undefined) out.consecutive_local_origin_failure = u32(o.consecutiveLocalOriginFailures);
  }
  return out;
}

function lbPolicy(policy: TrafficPolicy | undefined, proxyless: boolean): Obj {
  const lb = policy?.loadBalancer;
  const ch = lb?.consistentHash;
  if (ch !== undefined) {
    if (ch.maglev !== undefined && !proxyless) return { lb_policy: 'MAGLEV', ...(ch.maglev.tableSize !== undefined ? { maglev_lb_config: { table_size: { value: ch.maglev.tableSize } } } : {}) };
    const min = ch.ringHash?.minimumRingSize ?? ch.minimumRingSize ?? 1024;
    return { lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: min } } };
  }
  if (proxyless) return { lb_policy: 'ROUND_ROBIN' };
  switch (lb?.simple) {
    case 'ROUND_ROBIN':
      return { lb_policy: 'ROUND_ROBIN' };
    case 'RANDOM':
      return { lb_policy: 'RANDOM' };
    case 'PASSTHROUGH':
      return { lb_policy: 'CLUSTER_PROVIDED' };
    default:
      return { lb_policy: 'LEAST_REQUEST' };
  }
}

function protocolOptions(port: ServicePort, policy: TrafficPolicy | undefined): Obj | undefined {
  const http = policy?.connectionPool?.http;
  const h2 = isHttp2Protocol(port.protocol) || (port.protocol === 'HTTP' && http?.h2UpgradePolicy === 'UPGRADE');
  const common: Obj = {};
  const idle = http?.idleTimeout;
  if (idle !== undefined) common.idle_timeout = duration(idle);
  if (http?.maxRequestsPerConnection !== undefined && http.maxRequestsPerConnection > 0) common.max_requests_per_connection = u32(http.maxRequestsPerConnection);
  const tcp = policy?.connectionPool?.tcp;
  if (tcp?.maxConnectionDuration !== undefined) common.max_connection_duration = duration(tcp.maxConnectionDuration);
  if (!h2 && Object.keys(common).length === 0) return undefined;
  const opts: Obj = { '@type': EXT_TYPE_URL.httpProtocolOptions };
  if (Object.keys(common).length > 0) opts.common_http_protocol_options = common;
  if (h2) {
    opts.explicit_http_config = {
      http2_protocol_options: http?.maxConcurrentStreams !== undefined ? { max_concurrent_streams: u32(http.maxConcurrentStreams) } : {},
    };
  } else if (isHttpProtocol(port.protocol)) {
    opts.explicit_http_config = { http_protocol_options: {} };
  } else {
    return undefined;
  }
  return { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': opts };
}

function peerIdentities(snapshot: Snapshot, ms: MeshService, endpoints: readonly WorkloadEntry[]): string[] {
  const ids = endpoints.filter((w) => w.serviceAccount !== '').map((w) => spiffeId(snapshot.mesh.trustDomain, w.namespace, w.serviceAccount));
  return [...new Set([...ids, ...ms.service.subjectAltNames])].sort();
}

function meshAlpn(port: ServicePort): string[] {
  return isHttp2Protocol(port.protocol) ? ['istio', 'h2'] : ['istio'];
}

/** The cluster's TLS: `transport_socket` or auto-mTLS `transport_socket_matches`, or nothing. */
function clusterTls(snapshot: Snapshot, ms: MeshService, port: ServicePort, subset: string | undefined, policy: TrafficPolicy | undefined, endpoints: readonly WorkloadEntry[]): Obj {
  const tls = policy?.tls;
  const host = ms.service.hostname;
  const sni = outboundSni(port.number, subset, host);
  if (tls !== undefined) {
    switch (tls.mode) {
      case 'DISABLE':
        return {};
      case 'ISTIO_MUTUAL':
        return { transport_socket: istioMutualUpstream(sni, tls.subjectAltNames ?? peerIdentities(snapshot, ms, endpoints), meshAlpn(port)) };
      case 'SIMPLE':
      case 'MUTUAL':
        return { transport_socket: originationUpstream({ ...tls, mode: tls.mode }, host.startsWith('*') ? undefined : host, []) };
    }
  }
  if (ms.service.location !== 'MESH_INTERNAL') return {};
  // Auto mTLS: skip when the service's namespace (or the mesh) disables mTLS. Like Istio's
  // BestEffortInferServiceMTLSMode, workload-level policies are not consulted: a client cannot know them.
  const mode = mtlsModeFor(snapshot, { namespace: ms.service.namespace });
  if (mode === 'DISABLE') return {};
  // Only endpoints that run a proxy take mTLS; the choice is per endpoint, from its metadata (EDS or inline).
  if (!endpoints.some((w) => workloadTlsMode(w) === 'istio')) return {};
  const mtls = istioMutualUpstream(sni, peerIdentities(snapshot, ms, endpoints), meshAlpn(port));
  return {
    transport_socket_matches: [
      { name: 'tlsMode-istio', match: toStruct({ tlsMode: 'istio' }), transport_socket: mtls },
      { name: 'tlsMode-disabled', match: {}, transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: { '@type': EXT_TYPE_URL.rawBuffer } } },
    ],
  };
}

function dnsAssignment(name: string, ms: MeshService, port: ServicePort, endpoints: readonly WorkloadEntry[], proxyless: boolean): Obj {
  const eps = endpoints.length > 0 ? endpoints : undefined;
  if (eps !== undefined) return loadAssignment(name, port, eps, { tlsMetadata: ms.service.location === 'MESH_INTERNAL' && !proxyless });
  return {
    cluster_name: name,
    endpoints: [{ locality: {}, lb_endpoints: [{ endpoint: { address: endpointAddress(ms.service.hostname, port.number) }, load_balancing_weight: u32(1) }], load_balancing_weight: u32(1) }],
  };
}

export function outboundCluster(snapshot: Snapshot, proxy: ProxyNode, ms: MeshService, port: ServicePort, subset: string | undefined): Obj | undefined {
  const svc = ms.service;
  const proxyless = proxy.type === 'proxyless';
  const name = outboundClusterName(port.number, subset, svc.hostname);
  const dr = destinationRuleFor(snapshot, proxy, svc.hostname, svc.namespace);
  const policy = effectivePolicy(dr, port.number, subset);
  const subsetLabels = subset === undefined ? undefined : dr?.spec.subsets?.find((s) => s.name === subset)?.labels;
  const endpoints = subsetLabels === undefined ? ms.endpoints : ms.endpoints.filter((w) => Object.entries(subsetLabels).every(([k, v]) => w.labels[k] === v));
  const c: Obj = { name };
  switch (svc.resolution) {
    case 'STATIC':
      c.type = 'EDS';
      c.eds_cluster_config = { service_name: name, eds_config: adsConfigSource() };
      break;
    case 'DNS':
    case 'DNS_ROUND_ROBIN': {
      // Split horizon for inline endpoints too (networks.ts): other networks' endpoints become their gateways.
      const networks = new Networks(snapshot);
      const assignment = dnsAssignment(name, ms, port, splitHorizon(endpoints, port, networks.proxyNetwork(proxy.network), networks, !proxyless), proxyless);
      if (proxyless) {
        const eps = (assignment.endpoints as Obj[]).flatMap((e) => e.lb_endpoints as Obj[]);
        if (eps.length !== 1) return undefined;
        c.type = 'LOGICAL_DNS';
      } else {
        c.type = svc.resolution === 'DNS' ? 'STRICT_DNS' : 'LOGICAL_DNS';
        c.dns_lookup_family = 'V4_ONLY';
        c.respect_dns_ttl = true;
      }
      c.load_assignment = assignment;
      break;
    }
    case 'NONE':
      if (proxyless) return undefined;
      c.type = 'ORIGINAL_DST';
      break;
  }
  c.connect_timeout = duration(policy?.connectionPool?.tcp?.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS);
  Object.assign(c, svc.resolution === 'NONE' ? { lb_policy: 'CLUSTER_PROVIDED' } : lbPolicy(policy, proxyless));
  const od = outlierDetection(policy);
  if (od !== undefined) c.outlier_detection = od;
  // Endpoints are sent with their health (a failing readiness probe makes one UNHEALTHY), so Envoy's default panic
  // threshold (50 %) would send traffic to unready endpoints once half are down: as Istio does when it sends
  // unhealthy endpoints, panic is off unless DestinationRule's `minHealthPercent` asks for it.
  if (!proxyless) c.common_lb_config = { healthy_panic_threshold: { value: policy?.outlierDetection?.minHealthPercent ?? 0 } };
  if (proxyless) return c;
  c.circuit_breakers = circuitBreakers(policy);
  const tcpKeepalive = policy?.connectionPool?.tcp?.tcpKeepalive;
  if (tcpKeepalive !== undefined) {
    const ka: Obj = {};
    if (tcpKeepalive.probes !== undefined) ka.keepalive_probes = u32(tcpKeepalive.probes);
    if (tcpKeepalive.time !== undefined) ka.keepalive_time = u32(Math.round(tcpKeepalive.time / 1000));
    if (tcpKeepalive.interval !== undefined) ka.keepalive_interval = u32(Math.round(tcpKeepalive.interval / 1000));
    c.upstream_connection_options = { tcp_keepalive: ka };
  }
  const po = protocolOptions(port, policy);
  if (po !== undefined) c.typed_extension_protocol_options = po;
  Object.assign(c, clusterTls(snapshot, ms, port, subset, policy, endpoints));
  return c;
}

/**
 * Source addresses of the proxy's connections to the local application (Istio's InboundPassthroughBindIpv4/6): the
 * capture rules RETURN traffic from 127.0.0.6 / ::6 on lo, so an inbound call the proxy forwards to the host's own
 * address is not captured again (docs/capture.md), and applications see 127.0.0.6 as the peer.
 */
function inboundBindConfig(): Obj {
  return {
    source_address: { address: '127.0.0.6', port_value: 0 },
    extra_source_addresses: [{ address: { address: '::6', port_value: 0 } }],
  };
}

/** `inbound|<port>||`: STATIC to the application on loopback at the workload port, from 127.0.0.6. */
export function inboundCluster(port: number, protocol: string): Obj {
  const name = inboundClusterName(port);
  const c: Obj = {
    name,
    type: 'STATIC',
    connect_timeout: duration(DEFAULT_CONNECT_TIMEOUT_MS),
    lb_policy: 'ROUND_ROBIN',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: endpointAddress('127.0.0.1', port) } }] }],
    },
    circuit_breakers: circuitBreakers(undefined),
    upstream_bind_config: inboundBindConfig(),
  };
  if (isHttp2Protocol(protocol)) {
    c.typed_extension_protocol_options = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': EXT_TYPE_URL.httpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } },
    };
  }
  return c;
}

function fixedClusters(): Obj[] {
  return [
    // No endpoints: every connection fails. The empty load_assignment is what Envoy assumes when it is absent.
    { name: BLACKHOLE_CLUSTER, type: 'STATIC', connect_timeout: duration(DEFAULT_CONNECT_TIMEOUT_MS), load_assignment: { cluster_name: BLACKHOLE_CLUSTER } },
    { name: INBOUND_PASSTHROUGH_CLUSTER, type: 'ORIGINAL_DST', connect_timeout: duration(DEFAULT_CONNECT_TIMEOUT_MS), lb_policy: 'CLUSTER_PROVIDED', circuit_breakers: circuitBreakers(undefined), upstream_bind_config: inboundBindConfig() },
    { name: PASSTHROUGH_CLUSTER, type: 'ORIGINAL_DST', connect_timeout: duration(DEFAULT_CONNECT_TIMEOUT_MS), lb_policy: 'CLUSTER_PROVIDED', circuit_breakers: circuitBreakers(undefined) },
  ];
}

export function generateClusters(snapshot: Snapshot, proxy: ProxyNode): readonly GeneratedResource[] {
  const out: Obj[] = [];
  for (const ms of visibleServices(snapshot, proxy)) {
    const dr = destinationRuleFor(snapshot, proxy, ms.service.hostname, ms.service.namespace);
    for (const port of ms.service.ports) {
      if (proxy.type === 'proxyless' && !isHttpProtocol(port.protocol)) continue;
      for (const subset of [undefined, ...(dr?.spec.subsets ?? []).map((s) => s.name)]) {
        const c = outboundCluster(snapshot, proxy, ms, port, subset);
        if (c !== undefined) out.push(c);
      }
    }
  }
  if (proxy.type === 'sidecar') {
    for (const p of ownWorkloadPorts(snapshot, proxy)) out.push(inboundCluster(p.port, p.protocol));
  }
  if (proxy.type === 'router') out.push(...eastWestClusters(snapshot, proxy));
  if (proxy.type !== 'proxyless') out.push(...fixedClusters());
  return out.map((body) => ({ name: body.name as string, body }));
}
