/**
 * TCP and TLS (SNI) routes of VirtualServices → tcp_proxy targets, in a context (`mesh` or a gateway).
 */
import type { ProxyNode, Snapshot } from '../../snapshot/types.js';
import { destinationCluster, normaliseGateway, type RouteContext } from '../http-route.js';
import { labelsMatch } from '../scope.js';
import { visibleVirtualServices, vsGateways, vsHosts, type VirtualService } from '../virtual-services.js';

export type TcpTarget = string | readonly { name: string; weight: number }[];

interface L4Match {
  readonly port?: number;
  readonly sourceLabels?: Readonly<Record<string, string>>;
  readonly gateways?: readonly string[];
  readonly sourceNamespace?: string;
}

function l4Applies(m: L4Match | undefined, vs: VirtualService, proxy: ProxyNode, gateway: string, port: number): boolean {
  if (m === undefined) return vsGateways(vs).includes(gateway);
  if (m.port !== undefined && m.port !== port) return false;
  if (m.sourceLabels !== undefined && (gateway !== 'mesh' || !labelsMatch(m.sourceLabels, proxy.labels))) return false;
  if (m.sourceNamespace !== undefined && m.sourceNamespace !== proxy.namespace) return false;
  const gws = m.gateways !== undefined && m.gateways.length > 0 ? m.gateways.map((g) => normaliseGateway(g, vs.metadata.namespace)) : vsGateways(vs);
  return gws.includes(gateway);
}

function target(route: readonly { destination: { host: string; subset?: string; port?: { number: number } }; weight?: number }[], ctx: RouteContext): TcpTarget | undefined {
  const dests = route.filter((d) => route.length === 1 || (d.weight ?? 0) > 0);
  if (dests.length === 0) return undefined;
  if (dests.length === 1 && dests[0] !== undefined) return destinationCluster(dests[0].destination, ctx);
  return dests.map((d) => ({ name: destinationCluster(d.destination, ctx), weight: d.weight ?? 0 }));
}

function ctxFor(snapshot: Snapshot, proxy: ProxyNode, vs: VirtualService, port: number, gateway: string): RouteContext {
  return { snapshot, proxy, namespace: vs.metadata.namespace, port, gateway, proxyless: false, vsGateways: vsGateways(vs) };
}

/** The TCP target for `host:port` from the first applicable `tcp` route of a VirtualService naming the host. */
export function tcpRouteTarget(snapshot: Snapshot, proxy: ProxyNode, hostMatch: (vsHost: string) => boolean, port: number, gateway: string): TcpTarget | undefined {
  for (const vs of visibleVirtualServices(snapshot, proxy, gateway)) {
    if (!vsHosts(vs, snapshot.mesh.domainSuffix).some(hostMatch)) continue;
    for (const r of vs.spec.tcp ?? []) {
      const ms = r.match === undefined || r.match.length === 0 ? [undefined] : r.match;
      if (!ms.some((m) => l4Applies(m, vs, proxy, gateway, port))) continue;
      const t = target(r.route ?? [], ctxFor(snapshot, proxy, vs, port, gateway));
      if (t !== undefined) return t;
    }
  }
  return undefined;
}

export interface SniRoute {
  readonly sniHosts: readonly string[];
  readonly port: number | undefined;
  readonly target: TcpTarget;
}

/** SNI routes (`tls:`) of VirtualServices applying in `gateway`, for listener port `port` (undefined: any). */
export function sniRoutes(snapshot: Snapshot, proxy: ProxyNode, gateway: string, port: number | undefined): SniRoute[] {
  const out: SniRoute[] = [];
  for (const vs of visibleVirtualServices(snapshot, proxy, gateway)) {
    for (const r of vs.spec.tls ?? []) {
      for (const m of r.match) {
        const p = m.port ?? port;
        if (p === undefined || (port !== undefined && m.port !== undefined && m.port !== port)) continue;
        if (!l4Applies({ ...m, port: undefined }, vs, proxy, gateway, p)) continue;
        const t = target(r.route ?? [], ctxFor(snapshot, proxy, vs, p, gateway));
        if (t !== undefined) out.push({ sniHosts: m.sniHosts, port: m.port ?? port, target: t });
      }
    }
  }
  return out;
}
