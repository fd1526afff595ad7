/**
 * Kubernetes Service + EndpointSlices (+ Pods, Nodes) → hub values. Pure; tested from tables of real objects.
 *
 * A Service becomes a ServiceEntry `<name>.<namespace>.svc.<domain>`; each address of each endpoint of its
 * EndpointSlices (label `kubernetes.io/service-name`) becomes a WorkloadEntry named `<service>/<address>`, with
 * the Pod's labels and service account, and the Node's `topology.kubernetes.io/region|zone` as locality.
 */
import type { Health, Problem, Protocol, ServiceEntry, ServicePort, WorkloadEntry } from '@trellis/model';
import { localityOf, parseProtocol, portNameFor, protocolFromPortName } from '../port-protocol.js';
import { deepFreeze } from '../runtime.js';

export interface KubeObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly labels?: Readonly<Record<string, string>> | null;
  readonly annotations?: Readonly<Record<string, string>> | null;
}

export interface KubeObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: KubeObjectMeta;
}

export interface KubeServicePort {
  readonly name?: string;
  readonly port: number;
  readonly targetPort?: number | string;
  readonly protocol?: string;
  readonly appProtocol?: string;
}

export interface KubeService extends KubeObject {
  readonly spec?: {
    readonly type?: string;
    readonly clusterIP?: string;
    readonly clusterIPs?: readonly string[];
    readonly ports?: readonly KubeServicePort[] | null;
    readonly externalName?: string;
  };
}

export interface KubeEndpoint {
  readonly addresses: readonly string[];
  readonly conditions?: { readonly ready?: boolean | null; readonly serving?: boolean | null; readonly terminating?: boolean | null };
  readonly targetRef?: { readonly kind?: string; readonly name?: string; readonly namespace?: string };
  readonly nodeName?: string;
  readonly zone?: string;
}

export interface KubeEndpointSlice extends KubeObject {
  readonly addressType?: string;
  readonly endpoints?: readonly KubeEndpoint[] | null;
  readonly ports?: readonly { readonly name?: string | null; readonly port?: number | null; readonly protocol?: string; readonly appProtocol?: string }[] | null;
}

export interface KubePod extends KubeObject {
  readonly spec?: { readonly serviceAccountName?: string; readonly nodeName?: string };
  readonly status?: { readonly podIP?: string };
}

export type KubeNode = KubeObject;

export interface KubernetesConvertOptions {
  /** Shard id, `kubernetes:<clusterId>`. */
  readonly shard: string;
  /** Cluster DNS domain. Default `cluster.local`. */
  readonly domain?: string;
  /** Network of the cluster's workloads (a Pod label `topology.istio.io/network` overrides it). Default `''`. */
  readonly network?: string;
}

/** Looks up the Pods and Nodes endpoints refer to. */
export interface KubeLookup {
  pod(namespace: string, name: string): KubePod | undefined;
  node(name: string): KubeNode | undefined;
}

export interface KubernetesConversion {
  readonly service: ServiceEntry;
  readonly workloads: readonly WorkloadEntry[];
  readonly problems: readonly Problem[];
  /** `namespace/name` of the Pods referenced, so a Pod change can re-run this conversion. */
  readonly pods: readonly string[];
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
const REGION = 'topology.kubernetes.io/region';
const ZONE = 'topology.kubernetes.io/zone';

/** Protocol of a Service port: `appProtocol`, else the port name's prefix (`http-…`), else UDP/TCP. */
export function kubePortProtocol(p: { name?: string | null; protocol?: string; appProtocol?: string }): Protocol {
  if (p.protocol === 'UDP') return 'UDP';
  return parseProtocol(p.appProtocol) ?? protocolFromPortName(p.name ?? undefined) ?? 'TCP';
}

/** The hub port name of a Service port: its name, or (unnamed single port) the protocol's name. */
export function kubePortName(p: KubeServicePort): string {
  return p.name || portNameFor(kubePortProtocol(p));
}

export function kubeHostname(name: string, namespace: string, domain = 'cluster.local'): string {
  return `${name}.${namespace}.svc.${domain}`;
}

function healthOf(e: KubeEndpoint): Health {
  const c = e.conditions ?? {};
  // The API says a nil `ready` is to be read as ready.
  if (c.ready !== false) return 'HEALTHY';
  if (c.terminating && c.serving) return 'DRAINING';
  return 'UNHEALTHY';
}

export function convertKubernetesService(
  svc: KubeService,
  slices: readonly KubeEndpointSlice[],
  lookup: KubeLookup,
  options: KubernetesConvertOptions,
): KubernetesConversion {
  const namespace = svc.metadata.namespace ?? 'default';
  const name = svc.metadata.name;
  const hostname = kubeHostname(name, namespace, options.domain);
  const problems: Problem[] = [];
  const spec = svc.spec ?? {};
  const ports: ServicePort[] = [];
  for (const [i, p] of (spec.ports ?? []).entries()) {
    if (!(p.port > 0 && p.port < 65536)) {
      problems.push({ file: `Service/${namespace}/${name}`, path: `spec.ports[${i}].port`, message: 'invalid port; dropped' });
      continue;
    }
    ports.push({
      number: p.port,
      protocol: kubePortProtocol(p),
      name: kubePortName(p),
      ...(typeof p.targetPort === 'number' && p.targetPort !== p.port ? { targetPort: p.targetPort } : {}),
    });
  }
  const external = spec.type === 'ExternalName';
  const annotations = svc.metadata.annotations ?? {};
  const exportTo = annotations['networking.istio.io/exportTo']?.split(',').map((s) => s.trim()).filter(Boolean) ?? [];
  const service: ServiceEntry = {
    hostname,
    namespace,
    addresses: (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter((a) => a && a !== 'None'),
    ports,
    resolution: external ? 'DNS' : 'STATIC',
    location: external ? 'MESH_EXTERNAL' : 'MESH_INTERNAL',
    subjectAltNames: [],
    exportTo,
    labels: { ...(svc.metadata.labels ?? {}) },
    aliases: [],
    source: { kind: 'kubernetes', shard: options.shard, ref: `Service/${namespace}/${name}` },
  };

  const workloads = new Map<string, WorkloadEntry>();
  const pods = new Set<string>();
  if (external && spec.externalName) {
    workloads.set(`${name}/${spec.externalName}`, {
      name: `${name}/${spec.externalName}`,
      namespace,
      address: spec.externalName,
      ports: Object.fromEntries(ports.map((p) => [p.name, p.targetPort ?? p.number])),
      labels: {},
      serviceAccount: '',
      locality: '',
      network: options.network ?? '',
      weight: 1,
      health: 'HEALTHY',
      services: [hostname],
      source: { kind: 'kubernetes', shard: options.shard, ref: `Service/${namespace}/${name}` },
    });
  }
  const sorted = [...slices].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const slice of sorted) {
    if (slice.addressType === 'FQDN') continue;
    const portMap: Record<string, number> = {};
    for (const sp of slice.ports ?? []) {
      if (typeof sp.port !== 'number') continue;
      const match = (spec.ports ?? []).find((p) => (p.name ?? '') === (sp.name ?? '')) ?? ((spec.ports ?? []).length === 1 ? spec.ports![0] : undefined);
      if (match) portMap[kubePortName(match)] = sp.port;
    }
    for (const e of slice.endpoints ?? []) {
      const podRef = e.targetRef?.kind === 'Pod' && e.targetRef.name ? { namespace: e.targetRef.namespace ?? namespace, name: e.targetRef.name } : undefined;
      const pod = podRef ? lookup.pod(podRef.namespace, podRef.name) : undefined;
      if (podRef) pods.add(`${podRef.namespace}/${podRef.name}`);
      const nodeName = e.nodeName ?? pod?.spec?.nodeName;
      const nodeLabels = (nodeName ? lookup.node(nodeName)?.metadata.labels : undefined) ?? {};
      const podLabels = pod?.metadata.labels ?? {};
      const health = healthOf(e);
      for (const address of e.addresses ?? []) {
        const key = `${name}/${address}`;
        const prior = workloads.get(key);
        // The same address in two slices (during a slice rewrite): keep the healthier entry.
        if (prior && (prior.health === 'HEALTHY' || health !== 'HEALTHY')) continue;
        workloads.set(key, {
          name: key,
          namespace,
          address,
          ports: { ...portMap },
          labels: { ...podLabels },
          serviceAccount: pod ? (pod.spec?.serviceAccountName ?? 'default') : '',
          locality: localityOf(nodeLabels[REGION], nodeLabels[ZONE] ?? e.zone),
          network: podLabels['topology.istio.io/network'] ?? options.network ?? '',
          weight: 1,
          health,
          services: [hostname],
          source: {
            kind: 'kubernetes',
            shard: options.shard,
            ref: podRef ? `Pod/${podRef.namespace}/${podRef.name}` : `EndpointSlice/${namespace}/${slice.metadata.name}`,
          },
        });
      }
    }
  }
  return deepFreeze({
    service,
    workloads: [...workloads.values()].sort((a, b) => a.name.localeCompare(b.name)),
    problems,
    pods: [...pods].sort(),
  });
}
