/**
 * Golden-test harness: builds a frozen `Snapshot` and `ProxyNode`s from a YAML fixture and renders `generateAll`
 * output as stable JSON.
 *
 * A fixture (`<case>/input.yaml`) is a multi-document YAML file of Istio/Trellis resources, decoded with
 * `decodeResource` exactly as the file registry does, plus test-only documents:
 * - `kind: TestProxy` with `spec` = a ProxyNode (missing fields defaulted), one per proxy to generate for;
 * - `kind: TestMesh` with `spec` = MeshSettings overrides.
 * ServiceEntries without an address get a VIP from 240.240.0.0/16 in document order (a stand-in for the allocator).
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { convertToHub, decodeResource, type AnyResource, type WorkloadEntry } from '@trellis/model';
import type { ConfigIndex, MeshService, MeshSettings, ProxyNode, Snapshot } from '../../src/snapshot/types.js';

export interface Fixture {
  readonly snapshot: Snapshot;
  readonly proxies: readonly ProxyNode[];
}

const DEFAULT_MESH: MeshSettings = {
  trustDomain: 'cluster.local',
  defaultNamespace: 'default',
  outboundTrafficPolicy: 'ALLOW_ANY',
  registryPriority: ['kubernetes', 'file', 'consul', 'eureka'],
  vipRange: '240.240.0.0/16',
  clusterId: 'Kubernetes',
  network: '',
  domainSuffix: 'cluster.local',
};

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as Record<string, unknown>)) deepFreeze(x);
  }
  return v;
}

function proxyFrom(spec: Record<string, unknown>): ProxyNode {
  const ns = (spec.namespace as string | undefined) ?? 'default';
  const ips = (spec.ipAddresses as string[] | undefined) ?? [];
  const type = (spec.type as ProxyNode['type'] | undefined) ?? 'sidecar';
  const workloadName = (spec.workloadName as string | undefined) ?? 'workload';
  return {
    id: (spec.id as string | undefined) ?? `${type}~${ips[0] ?? '0.0.0.0'}~${workloadName}.${ns}~${ns}.svc.cluster.local`,
    type,
    ipAddresses: ips,
    namespace: ns,
    workloadName,
    labels: (spec.labels as Record<string, string> | undefined) ?? {},
    serviceAccount: (spec.serviceAccount as string | undefined) ?? 'default',
    clusterId: 'Kubernetes',
    network: (spec.network as string | undefined) ?? '',
    locality: (spec.locality as string | undefined) ?? '',
    metadata: {},
  };
}

function labelsMatch(sel: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(sel).every(([k, v]) => labels[k] === v);
}

export function loadFixture(path: string): Fixture {
  return fixtureFromYaml(readFileSync(path, 'utf8'), path);
}

/** Same as loadFixture, from YAML text (`path` only names it in errors). */
export function fixtureFromYaml(text: string, path = 'inline.yaml'): Fixture {
  const docs = parseAllDocuments(text);
  const resources: AnyResource[] = [];
  const proxies: ProxyNode[] = [];
  let mesh: MeshSettings = DEFAULT_MESH;
  docs.forEach((d, i) => {
    const js = d.toJS() as Record<string, unknown> | null;
    if (js === null) return;
    if (js.kind === 'TestProxy') return void proxies.push(proxyFrom(js.spec as Record<string, unknown>));
    if (js.kind === 'TestMesh') return void (mesh = { ...mesh, ...(js.spec as Partial<MeshSettings>) });
    const r = decodeResource(js, { origin: { kind: 'file', shard: 'file:test', file: path, document: i } });
    if (!r.ok) throw new Error(`${path} document ${i}: ${r.violations.map((v) => `${v.path}: ${v.message}`).join('; ')}`);
    resources.push(r.resource);
  });
  const hub = convertToHub(resources, { kind: 'file', shard: 'file:test' });
  let vipIndex = 0;
  const services: MeshService[] = hub.services.map((svc) => {
    const endpoints: WorkloadEntry[] = hub.workloads.filter(
      (w) => w.services.includes(svc.hostname) || (svc.workloadSelector !== undefined && w.namespace === svc.namespace && w.services.length === 0 && labelsMatch(svc.workloadSelector, w.labels)),
    );
    const vip = svc.addresses[0] ?? (svc.hostname.startsWith('*') ? undefined : `240.240.0.${++vipIndex}`);
    return { service: svc, endpoints, ...(vip !== undefined ? { vip } : {}) };
  });
  services.sort((a, b) => a.service.hostname.localeCompare(b.service.hostname) || a.service.namespace.localeCompare(b.service.namespace));
  const byName = <K extends AnyResource['kind']>(kind: K) =>
    resources
      .filter((r): r is Extract<AnyResource, { kind: K }> => r.kind === kind)
      .sort((a, b) => a.metadata.namespace.localeCompare(b.metadata.namespace) || a.metadata.name.localeCompare(b.metadata.name));
  const config: ConfigIndex = {
    virtualServices: byName('VirtualService'),
    destinationRules: byName('DestinationRule'),
    gateways: byName('Gateway'),
    sidecars: byName('Sidecar'),
    peerAuthentications: byName('PeerAuthentication'),
    authorizationPolicies: byName('AuthorizationPolicy'),
    requestAuthentications: byName('RequestAuthentication'),
    workloadGroups: byName('WorkloadGroup'),
  };
  const snapshot: Snapshot = { version: 'golden/1', services, workloads: hub.workloads.filter((w) => w.services.length === 0), config, mesh };
  return deepFreeze({ snapshot, proxies });
}

/** JSON with object keys sorted, so goldens diff cleanly. */
export function stableJson(v: unknown): string {
  const sort = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sort);
    if (x !== null && typeof x === 'object') return Object.fromEntries(Object.keys(x).sort().map((k) => [k, sort((x as Record<string, unknown>)[k])]));
    return x;
  };
  return `${JSON.stringify(sort(v), null, 2)}\n`;
}
