/**
 * Gateway listeners `0.0.0.0_<port>` for router proxies, from the Gateways whose selector matches the proxy
 * (DS-11: a Gateway for `*.foo.com:80` gives listener `0.0.0.0_80` with RDS `http.80`):
 * - HTTP servers: one chain, HCM with RDS `http.<port>` (`use_remote_address`: the gateway is the edge);
 * - HTTPS/TLS servers that terminate (SIMPLE, MUTUAL, ISTIO_MUTUAL): a chain per server matching its hosts by SNI,
 *   DownstreamTlsContext with SDS secrets named by `credentialName` (`<name>-cacert` for MUTUAL), HCM with RDS
 *   `https.<port>.<portName>.<gateway>.<ns>`;
 * - TLS PASSTHROUGH: SNI chains from VirtualService `tls` routes bound to the gateway;
 * - TCP servers: tcp_proxy to the target of a VirtualService `tcp` route bound to the gateway.
 * A server with `bind: <IP>` gets its own listener `<IP>_<port>` on that address. Behind a service of its own the
 * gateway listens on the target port of the server's port (see listenPorts); RDS names keep the server port.
 */
import net from 'node:net';
import type { ProxyNode, Snapshot } from '../../snapshot/types.js';
import { isHttpProtocol } from '../clusters.js';
import { gatewayListenerName } from '../names.js';
import { socketAddress } from '../proto.js';
import { gatewayKey, gatewaysFor, serverRouteName, terminatesTls } from '../routes.js';
import { hostMatches, labelsMatch } from '../scope.js';
import { gatewayDownstream } from '../tls.js';
import { workloadPort } from '../endpoints.js';
import { ownServices } from '../workload.js';
import { dedupeChains, hcm, httpFilters as defaultHttpFilters, tcpProxy, tlsInspectorFilter } from './filters.js';
import { sniRoutes, tcpRouteTarget } from './l4-routes.js';
import { securityFilters } from './security-filters.js';

type Obj = Record<string, unknown>;

function bareHost(h: string): string {
  const i = h.indexOf('/');
  return i < 0 ? h : h.slice(i + 1);
}

/**
 * Server port → the port the gateway listens on. A Gateway's `port.number` is the port clients use; when the
 * gateway workload is behind a service of its own (the Helm chart's `ingressgateway` Service: 80 → targetPort 8080),
 * it listens on that service port's target port, as Istio does. Without such a service the numbers are the same.
 */
function listenPorts(snapshot: Snapshot, proxy: ProxyNode, selectors: readonly (Readonly<Record<string, string>> | undefined)[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const { service, endpoint } of ownServices(snapshot, proxy)) {
    // The gateway's own service: an endpoint on this host that carries the gateway labels (a Kubernetes gateway pod),
    // or a service selecting this proxy — not any service that happens to have an endpoint on the same IP.
    if (endpoint !== undefined && !selectors.some((sel) => labelsMatch(sel, endpoint.labels))) continue;
    for (const sp of service.service.ports) {
      if (!out.has(sp.number)) out.set(sp.number, endpoint !== undefined ? workloadPort(sp, endpoint) : (sp.targetPort ?? sp.number));
    }
  }
  return out;
}

export function gatewayListeners(snapshot: Snapshot, proxy: ProxyNode): Obj[] {
  const listenPort = listenPorts(snapshot, proxy, gatewaysFor(snapshot, proxy).map((gw) => gw.spec.selector));
  // One listener per (bind address, port): a server's `bind` IP gives `<bind>_<port>` on that address (Istio).
  const byPort = new Map<string, { bind: string; port: number; chains: Obj[]; tls: boolean }>();
  const add = (bind: string, port: number, chain: Obj, tls: boolean): void => {
    const key = `${bind}|${port}`;
    const e = byPort.get(key) ?? { bind, port, chains: [], tls: false };
    e.chains.push(chain);
    e.tls ||= tls;
    byPort.set(key, e);
  };
  // AuthorizationPolicy / RequestAuthentication selecting the gateway's own labels apply to every server.
  const sec = securityFilters(snapshot, proxy);
  const httpFilters = sec.http.length > 0 ? [...sec.http, ...defaultHttpFilters()] : undefined;
  for (const gw of gatewaysFor(snapshot, proxy)) {
    const key = gatewayKey(gw);
    for (const server of gw.spec.servers) {
      const bind = server.bind !== undefined && net.isIP(server.bind) !== 0 ? server.bind : '0.0.0.0';
      // VirtualService matches name the server port; the listener binds the port the gateway listens on.
      const port = listenPort.get(server.port.number) ?? server.port.number;
      const proto = server.port.protocol;
      const hosts = server.hosts.map(bareHost);
      if (isHttpProtocol(proto)) {
        add(bind, port, { name: `0.0.0.0_${port}`, filters: [hcm({ statPrefix: `outbound_0.0.0.0_${port}`, rds: serverRouteName(gw, server), useRemoteAddress: true, normalizePath: true, ...(httpFilters !== undefined ? { filters: httpFilters } : {}) })] }, false);
      } else if ((proto === 'HTTPS' || proto === 'TLS') && terminatesTls(server) && server.tls !== undefined) {
        const match: Obj = hosts.includes('*') ? {} : { server_names: hosts };
        add(bind, port, {
          name: `${serverRouteName(gw, server)}`,
          filter_chain_match: match,
          transport_socket: gatewayDownstream(server.tls, ['h2', 'http/1.1']),
          filters: [hcm({ statPrefix: `outbound_0.0.0.0_${port}`, rds: serverRouteName(gw, server), useRemoteAddress: true, normalizePath: true, ...(httpFilters !== undefined ? { filters: httpFilters } : {}) })],
        }, true);
      } else if (proto === 'TLS' || proto === 'HTTPS') {
        for (const r of sniRoutes(snapshot, proxy, key, server.port.number)) {
          const sni = r.sniHosts.filter((s) => hosts.some((h) => hostMatches(h, s) || hostMatches(s, h)));
          if (sni.length === 0) continue;
          const stat = typeof r.target === 'string' ? r.target : r.target.map((c) => c.name).join(',');
          add(bind, port, { name: `${sni.join(',')}_${port}`, filter_chain_match: { server_names: sni }, filters: [...sec.network, tcpProxy(stat, r.target)] }, true);
        }
      } else {
        const t = tcpRouteTarget(snapshot, proxy, (h) => hosts.some((sh) => hostMatches(sh, h) || hostMatches(h, sh)), server.port.number, key);
        if (t !== undefined) {
          const stat = typeof t === 'string' ? t : t.map((c) => c.name).join(',');
          add(bind, port, { name: `0.0.0.0_${port}`, filters: [...sec.network, tcpProxy(stat, t)] }, false);
        }
      }
    }
  }
  return [...byPort.values()]
    .sort((a, b) => a.port - b.port || a.bind.localeCompare(b.bind))
    .map((e) => ({
      name: e.bind === '0.0.0.0' ? gatewayListenerName(e.port) : `${e.bind}_${e.port}`,
      address: socketAddress(e.bind, e.port),
      ...(e.tls ? { listener_filters: [tlsInspectorFilter()] } : {}),
      traffic_direction: 'OUTBOUND',
      filter_chains: dedupeChains(e.chains),
    }));
}
