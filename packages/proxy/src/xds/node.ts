/** The xDS `Node` this proxy presents: Istio's id format and metadata keys, so a stock control plane understands it. */
import { loadProtos } from '@trellis/api';

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
  return { id: n.id, cluster: n.cluster, metadata: structOf(n.metadata), user_agent_name: 'trellis-proxy' };
}

/**
 * JSON → `google.protobuf.Struct` using the field names the loaded root actually has: protobufjs substitutes its
 * bundled struct.proto, whose `Value` fields are camelCase (`stringValue`) even with keepCase.
 */
function structOf(json: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const fields = loadProtos().root.lookupType('google.protobuf.Value').fields;
  const f = (snake: string) => (snake in fields ? snake : snake.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()));
  const value = (v: unknown): Record<string, unknown> => {
    if (v === null || v === undefined) return { [f('null_value')]: 'NULL_VALUE' };
    if (typeof v === 'number') return { [f('number_value')]: v };
    if (typeof v === 'boolean') return { [f('bool_value')]: v };
    if (Array.isArray(v)) return { [f('list_value')]: { values: v.map(value) } };
    if (typeof v === 'object') return { [f('struct_value')]: structOf(v as Record<string, unknown>) };
    return { [f('string_value')]: String(v) };
  };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) out[k] = value(v);
  return { fields: out };
}
