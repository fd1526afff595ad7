/**
 * The frozen snapshot the control plane generates xDS from, and the per-proxy view of who is asking.
 *
 * This is the contract between the aggregate/snapshot side (which builds a `Snapshot` from the registry shards and
 * the config store) and the generators in `generate/` (pure `(snapshot, proxy) → resources`). Everything here is
 * deeply frozen and never mutated after construction; a new change produces a new snapshot.
 */
import type { AnyResource, Kind, MeshNetwork, ServiceEntry, SourceKind, WorkloadEntry } from '@trellis/model';

/** A decoded config resource of one kind. */
export type ConfigOf<K extends Kind> = Extract<AnyResource, { kind: K }>;

/** One merged service: the winning hub ServiceEntry, its VIP, and every endpoint from every shard. */
export interface MeshService {
  readonly service: ServiceEntry;
  /** The address clients use: the first of `service.addresses`, or the allocated VIP when it has none. */
  readonly vip?: string;
  /** Endpoints unioned across shards: inline ones and WorkloadEntries selected by `workloadSelector`. */
  readonly endpoints: readonly WorkloadEntry[];
}

/** Config resources by kind, each list sorted by (namespace, name) so generation is deterministic. */
export interface ConfigIndex {
  readonly virtualServices: readonly ConfigOf<'VirtualService'>[];
  readonly destinationRules: readonly ConfigOf<'DestinationRule'>[];
  readonly gateways: readonly ConfigOf<'Gateway'>[];
  readonly sidecars: readonly ConfigOf<'Sidecar'>[];
  readonly peerAuthentications: readonly ConfigOf<'PeerAuthentication'>[];
  readonly authorizationPolicies: readonly ConfigOf<'AuthorizationPolicy'>[];
  readonly requestAuthentications: readonly ConfigOf<'RequestAuthentication'>[];
  readonly workloadGroups: readonly ConfigOf<'WorkloadGroup'>[];
}

/** Mesh-wide settings (from the MeshConfig resource and flags), with defaults applied. */
export interface MeshSettings {
  /** SPIFFE trust domain, default `cluster.local`. */
  readonly trustDomain: string;
  readonly defaultNamespace: string;
  readonly outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Registry kinds from highest to lowest priority, for conflict resolution. */
  readonly registryPriority: readonly SourceKind[];
  /** CIDR for auto-allocated VIPs, default `240.240.0.0/16`. */
  readonly vipRange: string;
  readonly clusterId: string;
  readonly network: string;
  /** MeshConfig `networks`: network name → its address ranges/registries and gateways (see generate/networks.ts). */
  readonly networks?: Readonly<Record<string, MeshNetwork>>;
  /** Kubernetes-style DNS suffix, default `cluster.local` (services are `<name>.<ns>.svc.<domain>`). */
  readonly domainSuffix: string;
  /** MeshConfig `accessLogFile`/`accessLogEncoding`/`accessLogFormat`; absent = access logs off (the default). */
  readonly accessLog?: { readonly path: string; readonly encoding: 'TEXT' | 'JSON'; readonly format: string };
  /** MeshConfig `defaultConfig.tracing` (with `enableTracing`); absent = no tracing config on HCMs. */
  readonly tracing?: { readonly sampling: number; readonly zipkinAddress: string | null };
}

export interface Snapshot {
  /** Monotonic version of the whole snapshot, e.g. `2026-11-22T05:00:00.123Z/17`; resources are versioned by hash. */
  readonly version: string;
  /** Sorted by hostname then namespace. */
  readonly services: readonly MeshService[];
  /** WorkloadEntries not attached to any service (may become endpoints via selectors later; shown in debug). */
  readonly workloads: readonly WorkloadEntry[];
  readonly config: ConfigIndex;
  readonly mesh: MeshSettings;
}

/** What the control plane knows of a connected proxy, parsed from its xDS `Node`. */
export interface ProxyNode {
  /** Node id as sent, e.g. `sidecar~10.0.0.9~reviews-v1.default~default.svc.cluster.local`. */
  readonly id: string;
  /** `sidecar` (Trellis proxy or Envoy next to a workload), `router` (gateway), `proxyless` (gRPC xDS client). */
  readonly type: 'sidecar' | 'router' | 'proxyless';
  readonly ipAddresses: readonly string[];
  readonly namespace: string;
  /** Workload name (metadata WORKLOAD_NAME, else from the id). */
  readonly workloadName: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  readonly clusterId: string;
  readonly network: string;
  readonly locality: string;
  /** The node's full metadata as JSON (from the Struct), for generators that need more. */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** One generated xDS resource before encoding: its name and its body in proto field form (snake_case). */
export interface GeneratedResource {
  readonly name: string;
  readonly body: Readonly<Record<string, unknown>>;
}

/** A generator for one type URL: a pure function of the snapshot and the proxy. */
export type Generator = (snapshot: Snapshot, proxy: ProxyNode) => readonly GeneratedResource[];
