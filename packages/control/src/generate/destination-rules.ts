/**
 * Which DestinationRule applies to a host for a proxy, and the traffic policy in force for one port and subset.
 *
 * Lookup (Istio's push_context destinationRule): DestinationRules exported to the proxy's namespace whose host
 * matches; those in the proxy's namespace first, then the service's namespace, then the root namespace, then any;
 * within a tier an exact host beats a wildcard and a longer wildcard beats a shorter one. A DR with a
 * `workloadSelector` applies only to proxies whose labels match.
 *
 * Policy merge (Istio's MergeTrafficPolicy): the subset's `trafficPolicy` replaces each top-level field it sets;
 * then the port-level settings for the port (subset's before the top level's) replace loadBalancer,
 * connectionPool, outlierDetection and tls.
 */
import type { ProxyNode, Snapshot, ConfigOf } from '../snapshot/types.js';
import { exportedTo, hostMatches, labelsMatch, resolveHost, ROOT_NAMESPACE } from './scope.js';

export type DestinationRule = ConfigOf<'DestinationRule'>;
type Spec = DestinationRule['spec'];
export type TrafficPolicy = NonNullable<Spec['trafficPolicy']>;
export type Subset = NonNullable<Spec['subsets']>[number];

function specificity(pattern: string): number {
  if (pattern === '*') return 0;
  if (pattern.startsWith('*.')) return pattern.length;
  return 1_000_000;
}

export function destinationRuleFor(snapshot: Snapshot, proxy: ProxyNode, host: string, serviceNamespace: string): DestinationRule | undefined {
  const candidates = snapshot.config.destinationRules.filter((dr) => {
    const spec = dr.spec;
    if (!exportedTo(spec.exportTo, dr.metadata.namespace, proxy.namespace)) return false;
    if (spec.workloadSelector !== undefined && !(dr.metadata.namespace === proxy.namespace && labelsMatch(spec.workloadSelector.matchLabels, proxy.labels))) return false;
    return hostMatches(resolveHost(spec.host, dr.metadata.namespace, snapshot.mesh.domainSuffix), host);
  });
  if (candidates.length === 0) return undefined;
  const tier = (dr: DestinationRule): number => {
    const ns = dr.metadata.namespace;
    if (ns === proxy.namespace) return 0;
    if (ns === serviceNamespace) return 1;
    if (ns === ROOT_NAMESPACE) return 2;
    return 3;
  };
  const sorted = [...candidates].sort((a, b) => {
    const t = tier(a) - tier(b);
    if (t !== 0) return t;
    const s = specificity(resolveHost(b.spec.host, b.metadata.namespace, snapshot.mesh.domainSuffix)) - specificity(resolveHost(a.spec.host, a.metadata.namespace, snapshot.mesh.domainSuffix));
    if (s !== 0) return s;
    // Selector-scoped rules win over namespace-wide ones (Istio prefers the more specific rule).
    return (b.spec.workloadSelector === undefined ? 0 : 1) - (a.spec.workloadSelector === undefined ? 0 : 1);
  });
  return sorted[0];
}

/** The policy for `port` and `subset` after Istio's merge; undefined when nothing applies. */
export function effectivePolicy(dr: DestinationRule | undefined, port: number, subset?: string): TrafficPolicy | undefined {
  if (dr === undefined) return undefined;
  const base = dr.spec.trafficPolicy;
  const sub = subset === undefined ? undefined : dr.spec.subsets?.find((s) => s.name === subset)?.trafficPolicy;
  let merged: TrafficPolicy | undefined = base;
  if (sub !== undefined) merged = { ...(base ?? {}), ...stripUndefined(sub) };
  if (merged === undefined) return undefined;
  const portLevel = sub?.portLevelSettings?.find((p) => p.port?.number === port) ?? base?.portLevelSettings?.find((p) => p.port?.number === port);
  if (portLevel !== undefined) {
    merged = {
      ...merged,
      ...(portLevel.loadBalancer !== undefined ? { loadBalancer: portLevel.loadBalancer } : {}),
      ...(portLevel.connectionPool !== undefined ? { connectionPool: portLevel.connectionPool } : {}),
      ...(portLevel.outlierDetection !== undefined ? { outlierDetection: portLevel.outlierDetection } : {}),
      ...(portLevel.tls !== undefined ? { tls: portLevel.tls } : {}),
    };
  }
  return merged;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
