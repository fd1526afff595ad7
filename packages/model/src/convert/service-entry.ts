/**
 * Conversion of decoded user ServiceEntry / WorkloadEntry resources into the hub model.
 *
 * Pure functions: no I/O, no defaults taken from the environment. The input types below are structural (the
 * fields of Istio's `ServiceEntry` and `WorkloadEntry` specs that the hub needs, in Istio's camelCase, as the
 * decoders in `../decode/` produce them), so any decoded resource of those kinds is accepted as is.
 *
 * Rules (also in docs/file-registry.md):
 * - one hub `ServiceEntry` per host of the user ServiceEntry, all sharing namespace, addresses, ports,
 *   resolution, location, workload selector, subject alt names, exportTo and the resource's metadata labels;
 * - each inline `endpoints[i]` becomes one hub `WorkloadEntry` named `<serviceentry-name>-<i>`, attached to every
 *   host of the ServiceEntry through `services`; its `ports` are completed from the service ports
 *   (`endpoint.ports[name] ?? port.targetPort ?? port.number`) so a consumer never has to look them up;
 * - a `WorkloadEntry` resource becomes one hub `WorkloadEntry` named after the resource, with `services: []`
 *   (ServiceEntries select it through `workloadSelector` in the control plane);
 * - defaults: resolution NONE, location MESH_EXTERNAL (Istio's), weight 1 (0 or absent), health HEALTHY,
 *   network '', locality '', serviceAccount '', exportTo [] (meaning "the mesh default").
 */
import type { Health, Location, Protocol, Resolution, ServiceEntry, ServicePort, Source, WorkloadEntry } from '../hub.js';

type Labels = Readonly<Record<string, string>>;

/** The metadata a conversion reads. */
export interface ConvertMeta {
  readonly name: string;
  readonly namespace: string;
  readonly labels?: Labels;
}

/** Source fields of a resource's origin (a `ResourceOrigin` fits). */
export interface ConvertOrigin {
  readonly kind: Source['kind'];
  readonly shard: string;
  readonly ref?: string;
}

/** Istio `WorkloadEntry` spec fields (also the shape of a ServiceEntry's inline endpoint). */
export interface WorkloadEntrySpecInput {
  readonly address?: string;
  readonly ports?: Readonly<Record<string, number>>;
  readonly labels?: Labels;
  readonly network?: string;
  readonly locality?: string;
  readonly weight?: number;
  readonly serviceAccount?: string;
}

export interface ServicePortInput {
  readonly number: number;
  readonly protocol?: string;
  readonly name?: string;
  readonly targetPort?: number;
}

/** Istio `ServiceEntry` spec fields. */
export interface ServiceEntrySpecInput {
  readonly hosts: readonly string[];
  readonly addresses?: readonly string[];
  readonly ports?: readonly ServicePortInput[];
  readonly location?: string;
  readonly resolution?: string;
  readonly endpoints?: readonly WorkloadEntrySpecInput[];
  readonly workloadSelector?: { readonly labels?: Labels };
  readonly exportTo?: readonly string[];
  readonly subjectAltNames?: readonly string[];
}

export interface ServiceEntryInput {
  readonly kind: 'ServiceEntry';
  readonly metadata: ConvertMeta;
  readonly spec: ServiceEntrySpecInput;
  readonly origin?: ConvertOrigin;
}

export interface WorkloadEntryInput {
  readonly kind: 'WorkloadEntry';
  readonly metadata: ConvertMeta;
  readonly spec: WorkloadEntrySpecInput;
  readonly origin?: ConvertOrigin;
}

export interface ConvertedServices {
  readonly services: readonly ServiceEntry[];
  readonly workloads: readonly WorkloadEntry[];
}

const PROTOCOLS: ReadonlySet<string> = new Set<Protocol>([
  'HTTP', 'HTTPS', 'GRPC', 'GRPC_WEB', 'HTTP2', 'MONGO', 'MYSQL', 'REDIS', 'TCP', 'TLS', 'UDP',
]);
const RESOLUTIONS: ReadonlySet<string> = new Set<Resolution>(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN']);
const LOCATIONS: ReadonlySet<string> = new Set<Location>(['MESH_EXTERNAL', 'MESH_INTERNAL']);

/** Source used when a resource carries no origin. */
const UNKNOWN_SOURCE: Source = Object.freeze({ kind: 'file', shard: '' });

function sourceOf(origin: ConvertOrigin | undefined, fallback: Source | undefined): Source {
  const o = origin ?? fallback ?? UNKNOWN_SOURCE;
  return Object.freeze(o.ref === undefined ? { kind: o.kind, shard: o.shard } : { kind: o.kind, shard: o.shard, ref: o.ref });
}

function frozenRecord<V>(r: Readonly<Record<string, V>> | undefined): Readonly<Record<string, V>> {
  return Object.freeze({ ...(r ?? {}) });
}

function frozenList<T>(l: readonly T[] | undefined): readonly T[] {
  return Object.freeze([...(l ?? [])]);
}

/** Upper-cases a protocol and falls back to TCP for anything unknown (Istio treats unnamed ports as TCP). */
export function hubProtocol(p: string | undefined): Protocol {
  const up = (p ?? '').toUpperCase();
  return (PROTOCOLS.has(up) ? up : 'TCP') as Protocol;
}

function hubPort(p: ServicePortInput): ServicePort {
  const port: ServicePort = p.targetPort !== undefined && p.targetPort !== 0
    ? { number: p.number, protocol: hubProtocol(p.protocol), name: p.name ?? '', targetPort: p.targetPort }
    : { number: p.number, protocol: hubProtocol(p.protocol), name: p.name ?? '' };
  return Object.freeze(port);
}

function workload(
  name: string,
  namespace: string,
  spec: WorkloadEntrySpecInput,
  ports: Readonly<Record<string, number>>,
  labels: Labels,
  services: readonly string[],
  source: Source,
): WorkloadEntry {
  const health: Health = 'HEALTHY';
  return Object.freeze({
    name,
    namespace,
    address: spec.address ?? '',
    ports: Object.freeze({ ...ports }),
    labels: Object.freeze({ ...labels }),
    serviceAccount: spec.serviceAccount ?? '',
    locality: spec.locality ?? '',
    network: spec.network ?? '',
    weight: spec.weight !== undefined && spec.weight >= 1 ? spec.weight : 1,
    health,
    services: frozenList(services),
    source,
  });
}

/** One user ServiceEntry → one hub ServiceEntry per host, plus one hub WorkloadEntry per inline endpoint. */
export function convertServiceEntry(se: ServiceEntryInput, fallbackSource?: Source): ConvertedServices {
  const { metadata: meta, spec } = se;
  const source = sourceOf(se.origin, fallbackSource);
  const ports = Object.freeze((spec.ports ?? []).map(hubPort));
  const resolution = (RESOLUTIONS.has(spec.resolution ?? '') ? spec.resolution : 'NONE') as Resolution;
  const location = (LOCATIONS.has(spec.location ?? '') ? spec.location : 'MESH_EXTERNAL') as Location;
  const selector = spec.workloadSelector?.labels;
  const addresses = frozenList(spec.addresses);
  const subjectAltNames = frozenList(spec.subjectAltNames);
  const exportTo = frozenList(spec.exportTo);
  const labels = frozenRecord(meta.labels);
  const services = spec.hosts.map((hostname): ServiceEntry => {
    const base = {
      hostname,
      namespace: meta.namespace,
      addresses,
      ports,
      resolution,
      location,
      subjectAltNames,
      exportTo,
      labels,
      aliases: Object.freeze([] as string[]),
      source,
    };
    return Object.freeze(selector === undefined ? base : { ...base, workloadSelector: frozenRecord(selector) });
  });
  const hosts = Object.freeze([...spec.hosts]);
  const workloads = (spec.endpoints ?? []).map((ep, i) => {
    const epPorts: Record<string, number> = { ...(ep.ports ?? {}) };
    for (const p of spec.ports ?? []) {
      const name = p.name ?? '';
      if (name !== '' && epPorts[name] === undefined) epPorts[name] = p.targetPort || p.number;
    }
    return workload(`${meta.name}-${i}`, meta.namespace, ep, epPorts, ep.labels ?? {}, hosts, source);
  });
  return Object.freeze({ services: Object.freeze(services), workloads: Object.freeze(workloads) });
}

/**
 * One WorkloadEntry resource → one hub WorkloadEntry. Its labels are `spec.labels` with `metadata.labels`
 * merged over them (as Istio does), since ServiceEntry `workloadSelector`s match on them.
 */
export function convertWorkloadEntry(we: WorkloadEntryInput, fallbackSource?: Source): WorkloadEntry {
  const labels = { ...(we.spec.labels ?? {}), ...(we.metadata.labels ?? {}) };
  return workload(we.metadata.name, we.metadata.namespace, we.spec, we.spec.ports ?? {}, labels, [], sourceOf(we.origin, fallbackSource));
}

/**
 * Converts every ServiceEntry and WorkloadEntry among `resources` (other kinds are skipped), in input order.
 */
export function convertToHub(resources: Iterable<{ readonly kind: string }>, fallbackSource?: Source): ConvertedServices {
  const services: ServiceEntry[] = [];
  const workloads: WorkloadEntry[] = [];
  for (const r of resources) {
    if (r.kind === 'ServiceEntry') {
      const c = convertServiceEntry(r as ServiceEntryInput, fallbackSource);
      services.push(...c.services);
      workloads.push(...c.workloads);
    } else if (r.kind === 'WorkloadEntry') {
      workloads.push(convertWorkloadEntry(r as WorkloadEntryInput, fallbackSource));
    }
  }
  return Object.freeze({ services: Object.freeze(services), workloads: Object.freeze(workloads) });
}
