/**
 * Selecting VirtualServices and expanding delegation (DS-15).
 *
 * A VirtualService applies in a context (`mesh` for sidecars, `ns/name` for a gateway) when its `gateways` (default
 * `[mesh]`, names without a namespace are in the VS's namespace) include it, or any of its matches names it. For a
 * sidecar, a service takes the first VirtualService (by namespace/name order) whose hosts name it exactly, else the
 * first whose wildcard host covers it, as Istio does. Delegation replaces a `delegate` route by the delegate's
 * routes, each match merged with the delegating match (the child's fields win, header and query matches are
 * combined), resolved in the delegate's namespace.
 */
import type { HTTPMatchRequest, HTTPRoute } from '@trellis/model';
import type { ConfigOf, ProxyNode, Snapshot } from '../snapshot/types.js';
import { normaliseGateway } from './http-route.js';
import { exportedTo, hostMatches, resolveHost } from './scope.js';

export type VirtualService = ConfigOf<'VirtualService'>;

export function vsGateways(vs: VirtualService): string[] {
  return (vs.spec.gateways ?? ['mesh']).map((g) => normaliseGateway(g, vs.metadata.namespace));
}

/** Whether the VS can apply in `gateway` (its own gateways, or a match naming it). */
export function vsInContext(vs: VirtualService, gateway: string): boolean {
  if (vsGateways(vs).includes(gateway)) return true;
  return (vs.spec.http ?? []).some((r) => (r.match ?? []).some((m) => (m.gateways ?? []).map((g) => normaliseGateway(g, vs.metadata.namespace)).includes(gateway)));
}

export function visibleVirtualServices(snapshot: Snapshot, proxy: ProxyNode, gateway: string): VirtualService[] {
  return snapshot.config.virtualServices.filter(
    (vs) => (vs.spec.hosts ?? []).length > 0 && exportedTo(vs.spec.exportTo, vs.metadata.namespace, proxy.namespace) && vsInContext(vs, gateway),
  );
}

export function vsHosts(vs: VirtualService, domainSuffix: string): string[] {
  return (vs.spec.hosts ?? []).map((h) => resolveHost(h, vs.metadata.namespace, domainSuffix));
}

/** The VirtualService that routes `host` for a sidecar, if any. */
export function virtualServiceForHost(candidates: readonly VirtualService[], host: string, domainSuffix: string): VirtualService | undefined {
  return candidates.find((vs) => vsHosts(vs, domainSuffix).includes(host)) ?? candidates.find((vs) => vsHosts(vs, domainSuffix).some((h) => h !== host && hostMatches(h, host)));
}

function mergeMatch(root: HTTPMatchRequest | undefined, child: HTTPMatchRequest | undefined): HTTPMatchRequest | undefined {
  if (root === undefined) return child;
  if (child === undefined) return root;
  const defined = Object.fromEntries(Object.entries(child).filter(([, v]) => v !== undefined)) as HTTPMatchRequest;
  return {
    ...root,
    ...defined,
    ...(root.headers !== undefined || child.headers !== undefined ? { headers: { ...root.headers, ...child.headers } } : {}),
    ...(root.queryParams !== undefined || child.queryParams !== undefined ? { queryParams: { ...root.queryParams, ...child.queryParams } } : {}),
    ...(root.withoutHeaders !== undefined || child.withoutHeaders !== undefined ? { withoutHeaders: { ...root.withoutHeaders, ...child.withoutHeaders } } : {}),
    ...(root.gateways !== undefined ? { gateways: root.gateways } : {}),
  };
}

export interface ExpandedRoute {
  readonly route: HTTPRoute;
  /** Namespace the route's destinations resolve in. */
  readonly namespace: string;
}

/** The VS's http routes with delegation expanded. A delegate that does not exist contributes nothing. */
export function expandHttpRoutes(snapshot: Snapshot, vs: VirtualService): ExpandedRoute[] {
  const out: ExpandedRoute[] = [];
  for (const r of vs.spec.http ?? []) {
    if (r.delegate === undefined) {
      out.push({ route: r, namespace: vs.metadata.namespace });
      continue;
    }
    const ns = r.delegate.namespace ?? vs.metadata.namespace;
    const child = snapshot.config.virtualServices.find((c) => c.metadata.name === r.delegate?.name && c.metadata.namespace === ns && (c.spec.hosts ?? []).length === 0);
    if (child === undefined) continue;
    for (const cr of child.spec.http ?? []) {
      const rootMatches: (HTTPMatchRequest | undefined)[] = r.match === undefined || r.match.length === 0 ? [undefined] : [...r.match];
      const childMatches: (HTTPMatchRequest | undefined)[] = cr.match === undefined || cr.match.length === 0 ? [undefined] : [...cr.match];
      const merged = rootMatches.flatMap((rm) => childMatches.map((cm) => mergeMatch(rm, cm))).filter((m): m is HTTPMatchRequest => m !== undefined);
      out.push({ route: { ...cr, ...(merged.length > 0 ? { match: merged } : {}) }, namespace: ns });
    }
  }
  return out;
}
