/**
 * `virtualOutbound` on 0.0.0.0:15001: the listener iptables redirects outbound traffic to. It uses the original
 * destination (`use_original_dst` + the original_dst listener filter) and picks a filter chain by Envoy's
 * filter_chain_match rules (destination port first, then the most specific destination prefix, then SNI):
 * - `virtualOutbound-blackhole`: port 15001 itself → BlackHoleCluster (no loops);
 * - `0.0.0.0_<port>` per HTTP port: HCM with RDS `http.<port>` (all HTTP services on a port share it, routed by Host);
 * - `<vip>_<port>` per TCP service port: `prefix_ranges: [<vip>/32]` → tcp_proxy `outbound|<port>||<host>` (or the
 *   target of a VirtualService `tcp` route); services without a VIP match on the port alone;
 * - SNI chains for TLS/HTTPS service ports and VirtualService `tls` routes (`transport_protocol: tls`,
 *   `server_names`), with the tls_inspector listener filter;
 * - `PassthroughFilterChain`: everything else → PassthroughCluster (ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY).
 */
import type { MeshService, ProxyNode, Snapshot } from '../../snapshot/types.js';
import { isHttpProtocol } from '../clusters.js';
import { BLACKHOLE_CLUSTER, httpRouteName, OUTBOUND_CAPTURE_PORT, outboundClusterName, PASSTHROUGH_CLUSTER, VIRTUAL_OUTBOUND } from '../names.js';
import { socketAddress, u32 } from '../proto.js';
import { hostMatches, outboundPolicy } from '../scope.js';
import { dedupeChains, hcm, originalDstFilter, tcpProxy, tlsInspectorFilter } from './filters.js';
import { sniRoutes, tcpRouteTarget, type TcpTarget } from './l4-routes.js';

type Obj = Record<string, unknown>;

function cidr(vip: string): { address_prefix: string; prefix_len: { value: number } } {
  const [addr = vip, len] = vip.split('/');
  return { address_prefix: addr, prefix_len: u32(len !== undefined ? Number(len) : addr.includes(':') ? 128 : 32) };
}

function statName(t: TcpTarget): string {
  return typeof t === 'string' ? t : t.map((c) => c.name).join(',');
}

export function outboundListener(snapshot: Snapshot, proxy: ProxyNode, services: readonly MeshService[]): Obj {
  const chains: Obj[] = [
    { name: `${VIRTUAL_OUTBOUND}-blackhole`, filter_chain_match: { destination_port: u32(OUTBOUND_CAPTURE_PORT) }, filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)] },
  ];
  let needsTlsInspector = false;
  const httpPorts = new Set<number>();
  for (const ms of services) for (const p of ms.service.ports) if (isHttpProtocol(p.protocol)) httpPorts.add(p.number);
  for (const port of [...httpPorts].sort((a, b) => a - b)) {
    chains.push({
      name: `0.0.0.0_${port}`,
      filter_chain_match: { destination_port: u32(port) },
      filters: [hcm({ statPrefix: `outbound_0.0.0.0_${port}`, rds: httpRouteName(port) })],
    });
  }
  // SNI routes of VirtualServices first: they are more specific than plain TLS service chains with the same port.
  // A `tls` match without a port applies on every TLS/HTTPS service port.
  const tlsPorts = new Set<number>();
  for (const ms of services) for (const p of ms.service.ports) if (p.protocol === 'TLS' || p.protocol === 'HTTPS') tlsPorts.add(p.number);
  const sni = [...sniRoutes(snapshot, proxy, 'mesh', undefined), ...[...tlsPorts].sort((a, b) => a - b).flatMap((port) => sniRoutes(snapshot, proxy, 'mesh', port))];
  for (const r of sni) {
    if (r.port === undefined) continue;
    needsTlsInspector = true;
    chains.push({
      name: `${r.sniHosts.join(',')}_${r.port}`,
      filter_chain_match: { destination_port: u32(r.port), transport_protocol: 'tls', server_names: [...r.sniHosts] },
      filters: [tcpProxy(statName(r.target), r.target)],
    });
  }
  for (const ms of services) {
    const host = ms.service.hostname;
    for (const p of ms.service.ports) {
      if (isHttpProtocol(p.protocol)) continue;
      const target = tcpRouteTarget(snapshot, proxy, (h) => hostMatches(h, host), p.number, 'mesh') ?? outboundClusterName(p.number, undefined, host);
      if (p.protocol === 'TLS' || p.protocol === 'HTTPS') {
        needsTlsInspector = true;
        chains.push({
          name: `${host}_${p.number}`,
          filter_chain_match: { destination_port: u32(p.number), transport_protocol: 'tls', server_names: [host] },
          filters: [tcpProxy(statName(target), target)],
        });
      }
      if (ms.vip !== undefined) {
        chains.push({
          name: `${ms.vip.split('/')[0]}_${p.number}`,
          filter_chain_match: { destination_port: u32(p.number), prefix_ranges: [cidr(ms.vip)] },
          filters: [tcpProxy(statName(target), target)],
        });
      } else if (!httpPorts.has(p.number) && p.protocol !== 'TLS' && p.protocol !== 'HTTPS') {
        chains.push({ name: `0.0.0.0_${p.number}`, filter_chain_match: { destination_port: u32(p.number) }, filters: [tcpProxy(statName(target), target)] });
      }
    }
  }
  const fallback = outboundPolicy(snapshot, proxy) === 'ALLOW_ANY' ? PASSTHROUGH_CLUSTER : BLACKHOLE_CLUSTER;
  chains.push({ name: 'PassthroughFilterChain', filters: [tcpProxy(fallback, fallback)] });
  const listenerFilters = [originalDstFilter()];
  if (needsTlsInspector) listenerFilters.push(tlsInspectorFilter());
  return {
    name: VIRTUAL_OUTBOUND,
    address: socketAddress('0.0.0.0', OUTBOUND_CAPTURE_PORT),
    use_original_dst: { value: true },
    listener_filters: listenerFilters,
    traffic_direction: 'OUTBOUND',
    filter_chains: dedupeChains(chains),
  };
}
