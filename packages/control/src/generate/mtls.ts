/**
 * The mutual-TLS mode a workload's inbound port accepts, from PeerAuthentication (Istio's rules, pilot/pkg/security/
 * authn/policy_applier.go): the workload policy (selector matching the workload, in its namespace) wins over the
 * namespace policy (no selector), which wins over the mesh policy (no selector, root namespace); `UNSET` inherits
 * from the next level; `portLevelMtls` (workload policies only) overrides per workload port; default PERMISSIVE.
 */
import type { ConfigOf, Snapshot } from '../snapshot/types.js';
import { labelsMatch, ROOT_NAMESPACE } from './scope.js';

export type MtlsMode = 'DISABLE' | 'PERMISSIVE' | 'STRICT';
type PeerAuthentication = ConfigOf<'PeerAuthentication'>;

function oneMode(pa: PeerAuthentication | undefined): MtlsMode | undefined {
  const m = pa?.spec.mtls?.mode;
  return m === undefined || m === 'UNSET' ? undefined : m;
}

export interface WorkloadRef {
  readonly namespace: string;
  /** Undefined for a service seen from a client: only namespace and mesh policies are known then. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** Mode for one workload port (the port the workload listens on). */
export function mtlsModeFor(snapshot: Snapshot, workload: WorkloadRef, port?: number): MtlsMode {
  const all = snapshot.config.peerAuthentications;
  const labels = workload.labels;
  const workloadPolicy = labels === undefined
    ? undefined
    : all.find((pa) => pa.metadata.namespace === workload.namespace && pa.spec.selector !== undefined && labelsMatch(pa.spec.selector.matchLabels, labels));
  const nsPolicy = all.find((pa) => pa.metadata.namespace === workload.namespace && pa.spec.selector === undefined);
  const meshPolicy = all.find((pa) => pa.metadata.namespace === ROOT_NAMESPACE && pa.spec.selector === undefined);
  if (port !== undefined && workloadPolicy?.spec.portLevelMtls !== undefined) {
    const m = workloadPolicy.spec.portLevelMtls[String(port)]?.mode;
    if (m !== undefined && m !== 'UNSET') return m;
  }
  return oneMode(workloadPolicy) ?? oneMode(nsPolicy) ?? oneMode(meshPolicy) ?? 'PERMISSIVE';
}
