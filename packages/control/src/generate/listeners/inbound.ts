/**
 * `virtualInbound` on 0.0.0.0:15006: inbound traffic redirected by iptables, dispatched on the original
 * destination port to one chain per port of the proxy's own workload (see workload.ts), terminating mesh mTLS
 * per PeerAuthentication (DS-08):
 * - STRICT: only a `transport_protocol: tls` chain with a DownstreamTlsContext (SDS `default`, peers validated
 *   against `ROOTCA`, client certificate required); plaintext finds no chain and is closed;
 * - PERMISSIVE: the tls chain plus a `raw_buffer` plaintext chain;
 * - DISABLE: a plaintext chain only (matching any transport);
 * per-port `portLevelMtls` overrides the workload mode. HTTP ports get an HCM with an inline route config
 * `inbound|<port>||` to cluster `inbound|<port>||`; other ports tcp_proxy to it. Ports the workload does not
 * declare pass through to `InboundPassthroughCluster` under the workload's mode.
 * Policy (docs/security-policy.md): HTTP chains carry jwt_authn and the RBAC filters before the router and normalise
 * paths; TCP and passthrough chains carry network RBAC before tcp_proxy.
 */
import type { ProxyNode, Snapshot } from '../../snapshot/types.js';
import { isHttpProtocol, isHttp2Protocol } from '../clusters.js';
import { mtlsModeFor, type MtlsMode } from '../mtls.js';
import { BLACKHOLE_CLUSTER, INBOUND_CAPTURE_PORT, INBOUND_PASSTHROUGH_CLUSTER, inboundClusterName, VIRTUAL_INBOUND } from '../names.js';
import { duration, socketAddress, u32 } from '../proto.js';
import { istioMutualDownstream } from '../tls.js';
import { ownWorkloadPorts } from '../workload.js';
import { hcm, originalDstFilter, routerOnly, tcpProxy, tlsInspectorFilter } from './filters.js';
import { securityFilters, type SecurityFilters } from './security-filters.js';

type Obj = Record<string, unknown>;

function inboundRouteConfig(port: number): Obj {
  const cluster = inboundClusterName(port);
  return {
    name: cluster,
    virtual_hosts: [{ name: `inbound|http|${port}`, domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster, timeout: duration(0) } }] }],
    validate_clusters: { value: false },
  };
}

function portFilters(port: number, protocol: string, tls: boolean, sec: SecurityFilters): Obj[] {
  const cluster = inboundClusterName(port);
  if (isHttpProtocol(protocol)) {
    return [hcm({ statPrefix: `inbound_0.0.0.0_${port}`, routeConfig: inboundRouteConfig(port), filters: [...sec.http, ...routerOnly()], forwardClientCert: tls, normalizePath: true })];
  }
  return [...sec.network, tcpProxy(cluster, cluster)];
}

function alpnFor(protocol: string): string[] {
  if (isHttp2Protocol(protocol)) return ['h2', 'http/1.1'];
  if (isHttpProtocol(protocol)) return ['h2', 'http/1.1'];
  return [];
}

function chainsFor(name: string, mode: MtlsMode, baseMatch: Obj, filters: (tls: boolean) => Obj[], alpn: string[]): Obj[] {
  const tlsChain: Obj = {
    name: `${name}_tls`,
    filter_chain_match: { ...baseMatch, transport_protocol: 'tls' },
    transport_socket: istioMutualDownstream(alpn),
    filters: filters(true),
  };
  switch (mode) {
    case 'STRICT':
      return [tlsChain];
    case 'PERMISSIVE':
      return [tlsChain, { name: `${name}_plaintext`, filter_chain_match: { ...baseMatch, transport_protocol: 'raw_buffer' }, filters: filters(false) }];
    case 'DISABLE':
      return [{ name: `${name}_plaintext`, ...(Object.keys(baseMatch).length > 0 ? { filter_chain_match: baseMatch } : {}), filters: filters(false) }];
  }
}

export function inboundListener(snapshot: Snapshot, proxy: ProxyNode): Obj {
  const workload = { namespace: proxy.namespace, labels: proxy.labels };
  const sec = securityFilters(snapshot, proxy);
  const chains: Obj[] = [
    { name: `${VIRTUAL_INBOUND}-blackhole`, filter_chain_match: { destination_port: u32(INBOUND_CAPTURE_PORT) }, filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)] },
  ];
  for (const wp of ownWorkloadPorts(snapshot, proxy)) {
    const mode = mtlsModeFor(snapshot, workload, wp.port);
    chains.push(...chainsFor(`0.0.0.0_${wp.port}`, mode, { destination_port: u32(wp.port) }, (tls) => portFilters(wp.port, wp.protocol, tls, sec), alpnFor(wp.protocol)));
  }
  const passthrough = (): Obj[] => [...sec.network, tcpProxy(INBOUND_PASSTHROUGH_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER)];
  chains.push(...chainsFor(VIRTUAL_INBOUND, mtlsModeFor(snapshot, workload), {}, passthrough, []));
  return {
    name: VIRTUAL_INBOUND,
    address: socketAddress('0.0.0.0', INBOUND_CAPTURE_PORT),
    listener_filters: [originalDstFilter(), tlsInspectorFilter()],
    traffic_direction: 'INBOUND',
    filter_chains: chains,
  };
}
