/**
 * The hub model: what every registry adapter produces and the control plane consumes.
 *
 * One `ServiceEntry` per hostname (and namespace) and one `WorkloadEntry` per address, frozen. Nothing
 * source-specific passes an adapter: a Consul service, a Eureka app, a Kubernetes Service and a YAML
 * ServiceEntry all become these two shapes.
 */

/** Which kind of registry produced a value; also the unit of registry priority. */
export type SourceKind = 'kubernetes' | 'file' | 'consul' | 'eureka' | 'trellis' | 'control';

/** Where a value came from: the registry kind, the shard (one per adapter instance) and a locator for humans. */
export interface Source {
  readonly kind: SourceKind;
  /** Shard id, unique per adapter instance, e.g. `file:/etc/trellis/config`, `consul:dc1`. */
  readonly shard: string;
  /** Human locator: a file path and document index, a Consul service id, a Kubernetes object path. */
  readonly ref?: string;
}

export type Protocol = 'HTTP' | 'HTTPS' | 'GRPC' | 'GRPC_WEB' | 'HTTP2' | 'MONGO' | 'MYSQL' | 'REDIS' | 'TCP' | 'TLS' | 'UDP';
export type Resolution = 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
export type Location = 'MESH_EXTERNAL' | 'MESH_INTERNAL';

export interface ServicePort {
  readonly number: number;
  readonly protocol: Protocol;
  /** Port name, unique within the service; `http-foo`-style prefixes were already folded into `protocol`. */
  readonly name: string;
  /** Port the workloads listen on when it differs from `number`. */
  readonly targetPort?: number;
}

/** A service: one hostname in one namespace. */
export interface ServiceEntry {
  /** Fully qualified hostname, e.g. `reviews.default.svc.cluster.local` or `*.example.com`. */
  readonly hostname: string;
  readonly namespace: string;
  /** VIPs/CIDRs; empty means none was given (the control plane may allocate one). */
  readonly addresses: readonly string[];
  readonly ports: readonly ServicePort[];
  readonly resolution: Resolution;
  readonly location: Location;
  /** Selects WorkloadEntries (same namespace) by labels; absent means only `endpoints` below belong to it. */
  readonly workloadSelector?: Readonly<Record<string, string>>;
  readonly subjectAltNames: readonly string[];
  readonly exportTo: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** Extra names clients may use for the service (e.g. a Eureka vipAddress). */
  readonly aliases: readonly string[];
  readonly source: Source;
}

export type Health = 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'UNKNOWN';

/** A workload: one address (IP, hostname for DNS resolution, or `unix://` path). */
export interface WorkloadEntry {
  /** Stable key within the shard (e.g. `<namespace>/<name>` or a registry instance id). */
  readonly name: string;
  readonly namespace: string;
  readonly address: string;
  /** Port name (of the service) → workload port. */
  readonly ports: Readonly<Record<string, number>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  /** `region/zone/subzone`, any part may be empty. */
  readonly locality: string;
  readonly network: string;
  /** Load-balancing weight, ≥ 1. */
  readonly weight: number;
  readonly health: Health;
  /**
   * Hostnames of the services this workload is an inline endpoint of (ServiceEntry `endpoints`, Consul, Eureka,
   * Kubernetes EndpointSlices). Workloads selected by a `workloadSelector` leave this empty.
   */
  readonly services: readonly string[];
  readonly source: Source;
}

/** Health of one shard, as shown by `/debug/registryz` and `trellisctl registry status`. */
export interface ShardStatus {
  readonly shard: string;
  readonly kind: SourceKind;
  readonly state: 'syncing' | 'synced' | 'stale';
  /** Last error (unreachable source, invalid item); kept until the next success. */
  readonly lastError?: string;
  /** When the shard went stale, ISO 8601. */
  readonly staleSince?: string;
  /** When the shard's content last changed, ISO 8601. */
  readonly lastChange?: string;
  /** Problems with individual items (invalid file, bad instance) that were dropped or kept at their last good value. */
  readonly problems: readonly Problem[];
}

/** One reported problem with an input: a file, document, field path and reason. */
export interface Problem {
  /** File path, registry object, or URL. */
  readonly file?: string;
  /** Index of the document in a multi-document file, from 0. */
  readonly document?: number;
  /** 1-based line of the document or field, when known. */
  readonly line?: number;
  /** Field path such as `spec.http[0].route[1].weight`. */
  readonly path: string;
  readonly message: string;
}
