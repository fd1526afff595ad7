/** The xDS `Node` this proxy presents: Istio's id format and metadata keys, so a stock control plane understands it. */
import { toStruct } from '@trellis/api';

export interface NodeIdentity {
  readonly id: string;
  readonly cluster: string;
  readonly metadata: Readonly<Record<string, unknown>>;
}

export interface NodeOptions {
  readonly mode: 'sidecar' | 'gateway';
  readonly ip: string;
  readonly workloadName: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly clusterId: string;
  readonly network: string;
  readonly nodeId?: string;
}

/** `sidecar~<ip>~<workload>.<ns>~<ns>.svc.cluster.local` (gateways use `router~…`). */
export function nodeIdentity(o: NodeOptions): NodeIdentity {
  const id = o.nodeId || `${o.mode === 'gateway' ? 'router' : 'sidecar'}~${o.ip}~${o.workloadName}.${o.namespace}~${o.namespace}.svc.cluster.local`;
  return Object.freeze({
    id,
    cluster: `${o.workloadName}.${o.namespace}`,
    metadata: Object.freeze({
      NAMESPACE: o.namespace, LABELS: { ...o.labels }, WORKLOAD_NAME: o.workloadName, SERVICE_ACCOUNT: o.serviceAccount,
      CLUSTER_ID: o.clusterId, NETWORK: o.network, INSTANCE_IPS: o.ip, ISTIO_VERSION: '1.24.0', INTERCEPTION_MODE: 'REDIRECT',
    }),
  });
}

export function nodeMessage(n: NodeIdentity): Record<string, unknown> {
  return { id: n.id, cluster: n.cluster, metadata: toStruct(n.metadata), user_agent_name: 'trellis-proxy' };
}

