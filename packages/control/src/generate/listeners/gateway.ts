/**
 * Gateway listeners `0.0.0.0_<port>` for router proxies, from the Gateways whose selector matches the proxy
 * (DS-11: a Gateway for `*.foo.com:80` gives listener `0.0.0.0_80` with RDS `http.80`):
 * - HTTP servers: one chain, HCM with RDS `http.<port>` (`use_remote_address`: the gateway is the edge);
 * - HTTPS/TLS servers that terminate (SIMPLE, MUTUAL, ISTIO_MUTUAL): a chain per server matching its hosts by SNI,
 *   DownstreamTlsContext with SDS secrets named by `credentialName` (`<name>-cacert` for MUTUAL), HCM with RDS
 *   `https.<port>.<portName>.<gateway>.<ns>`;
 * - TLS PASSTHROUGH: SNI chains from VirtualService `tls` routes bound to the gateway;
 * - TCP servers: tcp_proxy to the target of a VirtualService `tcp` route bound to the gateway.
 */
import type { ProxyNode, Snapshot } from '../../snapshot/types.js';
import { isHttpProtocol } from '../clusters.js';
import { gatewayListenerName } from '../names.js';
import { socketAddress } from '../proto.js';
import { gatewayKey, gatewaysFor, serverRouteName, terminatesTls } from '../routes.js';
import { hostMatches } from '../scope.js';
import { gatewayDownstream } from '../tls.js';
import { dedupeChains, hcm, httpFilters as defaultHttpFilters, tcpProxy, tlsInspectorFilter } from './filters.js';
import { sniRoutes, tcpRouteTarget } from './l4-routes.js';
import { securityFilters } from './security-filters.js';

type Obj = Record<string, unknown>;

function bareHost(h: string): string {
  const i = h.indexOf('/');
  return i < 0 ? h : h.slice(i + 1);
}

export function gatewayListeners(snapshot: Snapshot, proxy: ProxyNode): Obj[] {
  const byPort = new Map<number, { chains: Obj[]; tls: boolean }>();
  const add = (port: number, chain: Obj, tls: boolean): void => {
    const e = byPort.get(port) ?? { chains: [], tls: false };
    e.chains.push(chain);
    e.tls ||= tls;
    byPort.set(port, e);
  };
  // AuthorizationPolicy / RequestAuthentication selecting the gateway's own labels apply to every server.
  const sec = securityFilters(snapshot, proxy);
  const httpFilters = sec.http.length > 0 ? [...sec.http, ...defaultHttpFilters()] : undefined;
  for (const gw of gatewaysFor(snapshot, proxy)) {
    const key = gatewayKey(gw);
    for (const server of gw.spec.servers) {
      const port = server.port.number;
      const proto = server.port.protocol;
      const hosts = server.hosts.map(bareHost);
      if (isHttpProtocol(proto)) {
        add(port, { name: `0.0.0.0_${port}`, filters: [hcm({ statPrefix: `outbound_0.0.0.0_${port}`, rds: serverRouteName(gw, server), useRemoteAddress: true, normalizePath: true, ...(httpFilters !== undefined ? { filters: httpFilters } : {}) })] }, false);
      } else if ((proto === 'HTTPS' || proto === 'TLS') && terminatesTls(server) && server.tls !== undefined) {
        const match: Obj = hosts.includes('*') ? {} : { server_names: hosts };
        add(port, {
          name: `${serverRouteName(gw, server)}`,
          filter_chain_match: match,
          transport_socket: gatewayDownstream(server.tls, ['h2', 'http/1.1']),
          filters: [hcm({ statPrefix: `outbound_0.0.0.0_${port}`, rds: serverRouteName(gw, server), useRemoteAddress: true, normalizePath: true, ...(httpFilters !== undefined ? { filters: httpFilters } : {}) })],
        }, true);
      } else if (proto === 'TLS' || proto === 'HTTPS') {
        for (const r of sniRoutes(snapshot, proxy, key, port)) {
          const sni = r.sniHosts.filter((s) => hosts.some((h) => hostMatches(h, s) || hostMatches(s, h)));
          if (sni.length === 0) continue;
          const stat = typeof r.target === 'string' ? r.target : r.target.map((c) => c.name).join(',');
          add(port, { name: `${sni.join(',')}_${port}`, filter_chain_match: { server_names: sni }, filters: [...sec.network, tcpProxy(stat, r.target)] }, true);
        }
      } else {
        const t = tcpRouteTarget(snapshot, proxy, (h) => hosts.some((sh) => hostMatches(sh, h) || hostMatches(h, sh)), port, key);
        if (t !== undefined) {
          const stat = typeof t === 'string' ? t : t.map((c) => c.name).join(',');
          add(port, { name: `0.0.0.0_${port}`, filters: [...sec.network, tcpProxy(stat, t)] }, false);
        }
      }
    }
  }
  return [...byPort.entries()]
    .sort(([a], [b]) => a - b)
    .map(([port, e]) => ({
      name: gatewayListenerName(port),
      address: socketAddress('0.0.0.0', port),
      ...(e.tls ? { listener_filters: [tlsInspectorFilter()] } : {}),
      traffic_direction: 'OUTBOUND',
      filter_chains: dedupeChains(e.chains),
    }));
}
