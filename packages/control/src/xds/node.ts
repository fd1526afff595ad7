/**
 * Parsing an xDS `Node` into a `ProxyNode`.
 *
 * Node ids follow Istio's `type~ip~id~domain` (e.g. `sidecar~10.0.0.9~reviews-v1.default~default.svc.cluster.local`),
 * where `id` is `workload.namespace`. Metadata keys are Istio's: NAMESPACE, LABELS, WORKLOAD_NAME, SERVICE_ACCOUNT,
 * CLUSTER_ID, NETWORK, INSTANCE_IPS. A proxyless gRPC client is recognised, as Istio does, by metadata
 * `GENERATOR: grpc`, by the id type `proxyless`, or by a gRPC `user_agent_name` (a gRPC library can only consume the
 * API-listener subset, whatever its bootstrap id says).
 */
import { fromStruct } from '@trellis/api';
import type { ProxyNode } from '../snapshot/types.js';

/** The `Node` message as proto-loader gives it (snake_case, keepCase). */
export interface WireNode {
  readonly id?: string;
  readonly cluster?: string;
  readonly metadata?: { fields?: Record<string, unknown> } | null;
  readonly locality?: { region?: string; zone?: string; sub_zone?: string } | null;
  readonly user_agent_name?: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export function parseNode(node: WireNode | null | undefined): ProxyNode {
  const id = node?.id ?? '';
  const metadata = Object.freeze(fromStruct(node?.metadata ?? undefined));
  const parts = id.split('~');
  const istioForm = parts.length === 4;
  const idType = istioForm ? parts[0] : '';
  const idIp = istioForm ? parts[1] : '';
  const idName = istioForm ? parts[2] : id;
  const idDomain = istioForm ? parts[3] : '';
  const dot = idName.indexOf('.');
  const nameFromId = dot > 0 ? idName.slice(0, dot) : idName;
  const nsFromId = dot > 0 ? idName.slice(dot + 1) : idDomain.split('.')[0] || undefined;

  const grpcAgent = /^grpc/i.test(node?.user_agent_name ?? '');
  const type: ProxyNode['type'] =
    metadata.GENERATOR === 'grpc' || idType === 'proxyless' || grpcAgent ? 'proxyless' : idType === 'router' ? 'router' : 'sidecar';

  const labelsRaw = metadata.LABELS;
  const labels: Record<string, string> = {};
  if (labelsRaw && typeof labelsRaw === 'object' && !Array.isArray(labelsRaw)) {
    for (const [k, v] of Object.entries(labelsRaw as Record<string, unknown>)) if (typeof v === 'string') labels[k] = v;
  }
  const ips = new Set<string>();
  if (idIp) ips.add(idIp);
  const instanceIps = str(metadata.INSTANCE_IPS);
  if (instanceIps) for (const ip of instanceIps.split(',')) if (ip.trim()) ips.add(ip.trim());

  const loc = node?.locality;
  const locality = loc && (loc.region || loc.zone || loc.sub_zone) ? `${loc.region ?? ''}/${loc.zone ?? ''}/${loc.sub_zone ?? ''}` : '';

  return Object.freeze({
    id,
    type,
    ipAddresses: Object.freeze([...ips]),
    namespace: str(metadata.NAMESPACE) ?? nsFromId ?? 'default',
    workloadName: str(metadata.WORKLOAD_NAME) ?? nameFromId,
    labels: Object.freeze(labels),
    serviceAccount: str(metadata.SERVICE_ACCOUNT) ?? 'default',
    clusterId: str(metadata.CLUSTER_ID) ?? (node?.cluster || ''),
    network: str(metadata.NETWORK) ?? '',
    locality,
    metadata,
  });
}
