/**
 * Which security policies (AuthorizationPolicy, RequestAuthentication) apply to a proxy's workload, by Istio's
 * rules (pilot/pkg/model/authorization.go, push_context.go):
 *
 * - a policy in the root namespace (`ROOT_NAMESPACE`, Istio's `istio-system`) without a selector applies mesh-wide;
 *   with a selector it applies to matching workloads in every namespace;
 * - a policy in the workload's namespace without a selector applies to every workload there; with a selector, to
 *   the workloads whose labels it matches;
 * - policies with `targetRef`/`targetRefs` are for gateways and waypoints of the Kubernetes Gateway API; they never
 *   bind to a sidecar, and Trellis's gateways are Istio gateways, so they are left out here.
 *
 * Order is root-namespace policies first, then the workload's namespace, each by (namespace, name) as the snapshot
 * keeps them.
 */
import type { MatchLabelsSelector } from '@trellis/model';
import type { ProxyNode } from '../snapshot/types.js';
import { labelsMatch, ROOT_NAMESPACE } from './scope.js';

interface SelectablePolicy {
  readonly metadata: { readonly namespace: string; readonly name: string };
  readonly spec: {
    readonly selector?: MatchLabelsSelector;
    readonly targetRef?: unknown;
    readonly targetRefs?: readonly unknown[];
  };
}

function appliesTo(p: SelectablePolicy, proxy: ProxyNode): boolean {
  if (p.spec.targetRef !== undefined || (p.spec.targetRefs !== undefined && p.spec.targetRefs.length > 0)) return false;
  const ns = p.metadata.namespace;
  if (ns !== ROOT_NAMESPACE && ns !== proxy.namespace) return false;
  return p.spec.selector === undefined || labelsMatch(p.spec.selector.matchLabels, proxy.labels);
}

/** The policies of one kind that apply to the proxy's workload, root namespace first. */
export function policiesFor<P extends SelectablePolicy>(all: readonly P[], proxy: ProxyNode): P[] {
  const selected = all.filter((p) => appliesTo(p, proxy));
  const root = selected.filter((p) => p.metadata.namespace === ROOT_NAMESPACE);
  const local = selected.filter((p) => p.metadata.namespace !== ROOT_NAMESPACE);
  return [...root, ...local];
}
