/**
 * TRELLIS_A0001 and TRELLIS_A0002: every destination of a VirtualService (HTTP, TLS and TCP routes, mirrors)
 * must name a host some ServiceEntry defines and, when it names a subset, a subset some DestinationRule for that
 * host defines.
 */
import type { AnalysisContext, DestinationRuleView, Located } from './context.js';
import { candidates } from './hosts.js';

interface DestinationView {
  readonly host: string;
  readonly subset?: string;
}
interface RouteDestinationView {
  readonly destination?: DestinationView;
}
interface HttpRouteView {
  readonly route?: readonly RouteDestinationView[];
  readonly mirror?: DestinationView;
  readonly mirrors?: readonly RouteDestinationView[];
}
interface L4RouteView {
  readonly route?: readonly RouteDestinationView[];
}
export interface VirtualServiceView {
  readonly hosts?: readonly string[];
  readonly gateways?: readonly string[];
  readonly http?: readonly (HttpRouteView & { readonly match?: readonly { readonly gateways?: readonly string[] }[] })[];
  readonly tls?: readonly (L4RouteView & { readonly match?: readonly { readonly gateways?: readonly string[] }[] })[];
  readonly tcp?: readonly (L4RouteView & { readonly match?: readonly { readonly gateways?: readonly string[] }[] })[];
}

/** Every destination of a VirtualService with its field path. */
export function destinationsOf(vs: VirtualServiceView): { path: string; destination: DestinationView }[] {
  const out: { path: string; destination: DestinationView }[] = [];
  (vs.http ?? []).forEach((h, i) => {
    (h.route ?? []).forEach((r, j) => {
      if (r.destination !== undefined) out.push({ path: `spec.http[${i}].route[${j}].destination`, destination: r.destination });
    });
    if (h.mirror !== undefined) out.push({ path: `spec.http[${i}].mirror`, destination: h.mirror });
    (h.mirrors ?? []).forEach((m, j) => {
      if (m.destination !== undefined) out.push({ path: `spec.http[${i}].mirrors[${j}].destination`, destination: m.destination });
    });
  });
  for (const section of ['tls', 'tcp'] as const) {
    (vs[section] ?? []).forEach((t, i) => {
      (t.route ?? []).forEach((r, j) => {
        if (r.destination !== undefined) out.push({ path: `spec.${section}[${i}].route[${j}].destination`, destination: r.destination });
      });
    });
  }
  return out;
}

export function checkDestinations(cx: AnalysisContext): void {
  for (const vs of cx.ofKind('VirtualService')) checkVirtualService(cx, vs);
}

function checkVirtualService(cx: AnalysisContext, vs: Located): void {
  const ns = vs.resource.metadata.namespace;
  for (const { path, destination } of destinationsOf(vs.resource.spec as VirtualServiceView)) {
    if (destination.host.includes('*')) continue;
    const names = candidates(destination.host, ns);
    if (cx.services.lookup(names).length === 0) {
      cx.report('unknownHost', vs, `${path}.host`, `host ${names[0]} is not defined by any ServiceEntry`);
    }
    const subset = destination.subset;
    if (subset === undefined || subset === '') continue;
    const rules = cx.destinationRules.lookup(names);
    const defined = rules.some((dr) => ((dr.resource.spec as DestinationRuleView).subsets ?? []).some((s) => s.name === subset));
    if (!defined) {
      const why = rules.length === 0 ? 'no DestinationRule exists for this host' : `the DestinationRules for this host define ${subsetList(rules)}`;
      cx.report('unknownSubset', vs, `${path}.subset`, `subset "${subset}" of host ${names[0]} is not defined by any DestinationRule (${why})`);
    }
  }
}

function subsetList(rules: readonly Located[]): string {
  const names = rules.flatMap((dr) => ((dr.resource.spec as DestinationRuleView).subsets ?? []).map((s) => `"${s.name}"`));
  return names.length === 0 ? 'no subsets' : `subsets ${[...new Set(names)].join(', ')}`;
}
