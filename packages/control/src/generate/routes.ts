/**
 * RDS. Sidecars get one `http.<port>` RouteConfiguration per HTTP port of the services they see: a virtual host
 * per service on that port named `<host>:<port>` with every name a client may use (see hosts.ts), routes from the
 * VirtualService that applies in the `mesh` context (route order = VirtualService order) or the implicit default
 * route; then `allow_any` (→ PassthroughCluster) or `block_all` (502) for unknown hosts, per the outbound traffic
 * policy. A VirtualService whose routes all have matches gets no catch-all: Envoy answers 404 when nothing matches.
 *
 * Gateways get `http.<port>` for plain HTTP servers and `https.<port>.<portName>.<gateway>.<ns>` for terminated
 * HTTPS servers: a virtual host per VirtualService host bound to the gateway and admitted by the server's hosts,
 * named `<host>:<port>` with domains `<host>` and `<host>:*`; `httpsRedirect` sets `require_tls: ALL`.
 */
import type { GeneratedResource, MeshService, ProxyNode, Snapshot, ConfigOf } from '../snapshot/types.js';
import { isHttpProtocol } from './clusters.js';
import { gatewayDomains, sidecarDomains } from './hosts.js';
import { buildHttpRoutes, defaultRoute, serviceHashPolicy, type RouteContext } from './http-route.js';
import { httpRouteName, httpsGatewayRouteName, outboundClusterName, PASSTHROUGH_CLUSTER } from './names.js';
import { duration } from './proto.js';
import { hostMatches, labelsMatch, outboundPolicy, visibleServices } from './scope.js';
import { expandHttpRoutes, virtualServiceForHost, visibleVirtualServices, vsGateways, vsHosts, type VirtualService } from './virtual-services.js';

type Obj = Record<string, unknown>;
type Gateway = ConfigOf<'Gateway'>;
type Server = Gateway['spec']['servers'][number];

function vsRoutes(snapshot: Snapshot, proxy: ProxyNode, vs: VirtualService, port: number, gateway: string, proxyless: boolean): Obj[] {
  const gws = vsGateways(vs);
  return expandHttpRoutes(snapshot, vs).flatMap(({ route, namespace }) => {
    const ctx: RouteContext = { snapshot, proxy, namespace, port, gateway, proxyless, vsGateways: gws };
    return buildHttpRoutes(route, ctx);
  });
}

/** Virtual hosts for the services on one port, as seen by a sidecar or proxyless client (`mesh` context). */
export function meshVirtualHosts(snapshot: Snapshot, proxy: ProxyNode, port: number, services: readonly MeshService[], proxyless: boolean): Obj[] {
  const vss = visibleVirtualServices(snapshot, proxy, 'mesh');
  const seen = new Set<string>();
  const out: Obj[] = [];
  for (const ms of services) {
    const sp = ms.service.ports.find((p) => p.number === port);
    if (sp === undefined || !isHttpProtocol(sp.protocol)) continue;
    const host = ms.service.hostname;
    const domains = sidecarDomains(ms, proxy, snapshot.mesh.domainSuffix, port).filter((d) => !seen.has(d));
    if (domains.length === 0) continue;
    for (const d of domains) seen.add(d);
    const vs = virtualServiceForHost(vss, host, snapshot.mesh.domainSuffix);
    let routes: Obj[];
    // A VirtualService with no `http` section says nothing about HTTP: the implicit route stays.
    if (vs?.spec.http !== undefined) {
      routes = vsRoutes(snapshot, proxy, vs, port, 'mesh', proxyless);
    } else {
      const ctx: RouteContext = { snapshot, proxy, namespace: ms.service.namespace, port, gateway: 'mesh', proxyless, vsGateways: ['mesh'] };
      routes = [defaultRoute(outboundClusterName(port, undefined, host), serviceHashPolicy(ctx, host, port))];
    }
    out.push({ name: `${host}:${port}`, domains, routes });
  }
  if (!proxyless) out.push(...nonServiceVirtualHosts(snapshot, proxy, port, services, vss, seen));
  return out;
}

/**
 * VirtualService hosts that name no visible service (an external name, a wildcard covering none) still get a
 * virtual host on every HTTP port, `<host>:<port>` with domains `<host>` and `<host>:<port>`, as Istio's
 * separateVSHostsAndServices does; their destinations decide where traffic goes.
 */
function nonServiceVirtualHosts(
  snapshot: Snapshot, proxy: ProxyNode, port: number, services: readonly MeshService[], vss: readonly VirtualService[], seen: Set<string>,
): Obj[] {
  const out: Obj[] = [];
  for (const vs of vss) {
    if (vs.spec.http === undefined) continue;
    const hosts = vsHosts(vs, snapshot.mesh.domainSuffix).filter(
      (h) => !services.some((ms) => hostMatches(h, ms.service.hostname) || ms.service.aliases.includes(h)),
    );
    for (const host of hosts) {
      const domains = [host, `${host}:${port}`].filter((d) => !seen.has(d));
      if (domains.length === 0) continue;
      for (const d of domains) seen.add(d);
      out.push({ name: `${host}:${port}`, domains, routes: vsRoutes(snapshot, proxy, vs, port, 'mesh', false) });
    }
  }
  return out;
}

function sidecarRouteConfig(snapshot: Snapshot, proxy: ProxyNode, port: number, services: readonly MeshService[]): Obj {
  const vhosts = meshVirtualHosts(snapshot, proxy, port, services, false);
  if (outboundPolicy(snapshot, proxy) === 'ALLOW_ANY') {
    vhosts.push({
      name: 'allow_any',
      domains: ['*'],
      routes: [{ name: 'allow_any', match: { prefix: '/' }, route: { cluster: PASSTHROUGH_CLUSTER, timeout: duration(0) } }],
    });
  } else {
    vhosts.push({ name: 'block_all', domains: ['*'], routes: [{ name: 'block_all', match: { prefix: '/' }, direct_response: { status: 502 } }] });
  }
  return { name: httpRouteName(port), virtual_hosts: vhosts, validate_clusters: { value: false } };
}

/** HTTP ports of the services a sidecar sees, ascending. */
export function sidecarHttpPorts(services: readonly MeshService[]): number[] {
  const ports = new Set<number>();
  for (const ms of services) for (const p of ms.service.ports) if (isHttpProtocol(p.protocol)) ports.add(p.number);
  return [...ports].sort((a, b) => a - b);
}

export function gatewayKey(gw: Gateway): string {
  return `${gw.metadata.namespace}/${gw.metadata.name}`;
}

/** Gateways whose selector matches a router proxy (no selector selects every gateway proxy). */
export function gatewaysFor(snapshot: Snapshot, proxy: ProxyNode): Gateway[] {
  return snapshot.config.gateways.filter((gw) => labelsMatch(gw.spec.selector, proxy.labels));
}

/** Whether the server terminates TLS (then HTTP is routed behind it) rather than passing it through. */
export function terminatesTls(server: Server): boolean {
  const mode = server.tls?.mode ?? 'SIMPLE';
  return mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'ISTIO_MUTUAL' || mode === 'OPTIONAL_MUTUAL';
}

export function serverRouteName(gw: Gateway, server: Server): string {
  const p = server.port;
  if (p.protocol === 'HTTPS' || (p.protocol === 'TLS' && terminatesTls(server))) {
    return httpsGatewayRouteName(p.number, p.name ?? String(p.number), gw.metadata.name, gw.metadata.namespace);
  }
  return httpRouteName(p.number);
}

/** Server host entries as (namespace filter, host). */
function serverHosts(server: Server, gwNamespace: string): { ns: string; host: string }[] {
  return server.hosts.map((h) => {
    const i = h.indexOf('/');
    if (i < 0) return { ns: '*', host: h };
    const ns = h.slice(0, i);
    return { ns: ns === '.' ? gwNamespace : ns, host: h.slice(i + 1) };
  });
}

/** The hosts of `vs` a server admits: for each VS host, the more specific of it and the matching server host. */
export function admittedHosts(vs: VirtualService, server: Server, gwNamespace: string, domainSuffix: string): string[] {
  const out: string[] = [];
  for (const h of vsHosts(vs, domainSuffix)) {
    for (const sh of serverHosts(server, gwNamespace)) {
      if (sh.ns !== '*' && sh.ns !== vs.metadata.namespace) continue;
      if (hostMatches(sh.host, h)) out.push(h);
      else if (hostMatches(h, sh.host)) out.push(sh.host);
      else continue;
      break;
    }
  }
  return [...new Set(out)];
}

function gatewayVirtualHosts(snapshot: Snapshot, proxy: ProxyNode, entries: readonly { gw: Gateway; server: Server }[], port: number): Obj[] {
  const byHost = new Map<string, { routes: Obj[]; requireTls: boolean }>();
  for (const { gw, server } of entries) {
    const key = gatewayKey(gw);
    for (const vs of visibleVirtualServices(snapshot, proxy, key)) {
      for (const host of admittedHosts(vs, server, gw.metadata.namespace, snapshot.mesh.domainSuffix)) {
        const entry = byHost.get(host) ?? { routes: [], requireTls: false };
        entry.routes.push(...vsRoutes(snapshot, proxy, vs, port, key, false));
        if (server.tls?.httpsRedirect === true) entry.requireTls = true;
        byHost.set(host, entry);
      }
    }
    // A server with httpsRedirect and no VirtualService still redirects its hosts.
    if (server.tls?.httpsRedirect === true) {
      for (const { host } of serverHosts(server, gw.metadata.namespace)) {
        const entry = byHost.get(host) ?? { routes: [], requireTls: true };
        entry.requireTls = true;
        byHost.set(host, entry);
      }
    }
  }
  const vhosts = [...byHost.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([host, e]) => ({ name: `${host}:${port}`, domains: gatewayDomains(host), routes: e.routes, ...(e.requireTls ? { require_tls: 'ALL' } : {}) }));
  if (vhosts.length === 0) vhosts.push({ name: `blackhole:${port}`, domains: ['*'], routes: [] });
  return vhosts;
}

/** Route configs of a gateway proxy, keyed by name (plain HTTP servers on a port share `http.<port>`). */
export function gatewayRouteConfigs(snapshot: Snapshot, proxy: ProxyNode): Obj[] {
  const groups = new Map<string, { port: number; entries: { gw: Gateway; server: Server }[] }>();
  for (const gw of gatewaysFor(snapshot, proxy)) {
    for (const server of gw.spec.servers) {
      const p = server.port.protocol;
      const http = isHttpProtocol(p) || ((p === 'HTTPS' || p === 'TLS') && terminatesTls(server));
      if (!http || (p === 'TLS' && server.tls?.mode === 'PASSTHROUGH')) continue;
      const name = serverRouteName(gw, server);
      const g = groups.get(name) ?? { port: server.port.number, entries: [] };
      g.entries.push({ gw, server });
      groups.set(name, g);
    }
  }
  return [...groups.entries()].map(([name, g]) => ({ name, virtual_hosts: gatewayVirtualHosts(snapshot, proxy, g.entries, g.port), validate_clusters: { value: false } }));
}

export function generateRoutes(snapshot: Snapshot, proxy: ProxyNode): readonly GeneratedResource[] {
  let configs: Obj[];
  if (proxy.type === 'router') configs = gatewayRouteConfigs(snapshot, proxy);
  else if (proxy.type === 'proxyless') configs = [];
  else {
    const services = visibleServices(snapshot, proxy);
    configs = sidecarHttpPorts(services).map((port) => sidecarRouteConfig(snapshot, proxy, port, services));
  }
  return configs.map((body) => ({ name: body.name as string, body }));
}

