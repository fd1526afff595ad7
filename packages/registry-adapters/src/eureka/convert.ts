/**
 * Eureka `/apps` JSON → hub values. Pure; tested from tables of real responses.
 *
 * One Eureka application becomes one ServiceEntry (hostname from a template over the app name, each distinct
 * `vipAddress` as an alias) and one WorkloadEntry per instance (key = `instanceId`). Handles the XStream quirk
 * where `application` or `instance` is a single object instead of an array.
 */
import type { Health, Problem, Protocol, ServiceEntry, WorkloadEntry } from '@trellis/model';
import { expandTemplate, localityOf, parseProtocol, portNameFor, reconcilePorts } from '../port-protocol.js';
import { deepFreeze } from '../runtime.js';

export interface EurekaPort {
  readonly $?: number | string;
  readonly '@enabled'?: string | boolean;
}

/** One Eureka instance as served in JSON (fields Trellis reads). */
export interface EurekaInstance {
  readonly instanceId?: string;
  readonly hostName?: string;
  readonly app?: string;
  readonly ipAddr?: string;
  readonly status?: string;
  readonly overriddenstatus?: string;
  readonly port?: EurekaPort;
  readonly securePort?: EurekaPort;
  readonly metadata?: Readonly<Record<string, unknown>>;
  readonly vipAddress?: string;
  readonly secureVipAddress?: string;
  readonly dataCenterInfo?: { readonly name?: string; readonly metadata?: Readonly<Record<string, string>> };
  readonly actionType?: 'ADDED' | 'MODIFIED' | 'DELETED' | string;
  readonly lastUpdatedTimestamp?: string | number;
}

export interface EurekaApplication {
  readonly name: string;
  readonly instance?: EurekaInstance | readonly EurekaInstance[];
}

/** The body of `GET /apps` and `GET /apps/delta`. */
export interface EurekaApplicationsResponse {
  readonly applications?: {
    readonly versions__delta?: string | number;
    readonly apps__hashcode?: string;
    readonly application?: EurekaApplication | readonly EurekaApplication[];
  };
}

export interface EurekaConvertOptions {
  /** Shard id, e.g. `eureka:default`. */
  readonly shard: string;
  /**
   * Hostname template over the app name; token `{app}` (alias `{service}`) is the app name lower-cased with `_` replaced by `-`
   * (so `FOO_BAR` → `foo-bar`, a valid DNS label). Default `{app}.eureka`.
   */
  readonly hostnameTemplate?: string;
  /** Hub namespace. Default `default`. */
  readonly namespace?: string;
  /** Protocol of `port` when metadata has neither `istio.protocol` nor `protocol`. Default `HTTP`. */
  readonly defaultProtocol?: Protocol;
  /** Drop instances whose status is not `UP` instead of keeping them as UNHEALTHY. Default false. */
  readonly dropNonUp?: boolean;
  /** Address of a workload: `ipAddr` (default) or `hostName`. */
  readonly addressFrom?: 'ipAddr' | 'hostName';
  /** Metadata keys for the locality. Default `region`/`zone` (Amazon `availability-zone` as zone fallback). */
  readonly localityKeys?: { readonly region?: string; readonly zone?: string };
  readonly network?: string;
}

export interface EurekaConversion {
  readonly service?: ServiceEntry;
  readonly workloads: readonly WorkloadEntry[];
  readonly problems: readonly Problem[];
}

/** An array whatever the server sent: absent → [], one object → [object]. */
export function asArray<T>(value: T | readonly T[] | null | undefined): readonly T[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? (value as readonly T[]) : [value as T];
}

/** The applications of an `/apps` body, with `instance` always an array. */
export function applicationsOf(body: EurekaApplicationsResponse): { name: string; instances: readonly EurekaInstance[] }[] {
  return asArray(body?.applications?.application).map((a) => ({ name: String(a.name), instances: asArray(a.instance) }));
}

/** Eureka's reconcile hash: statuses in order with counts, `STATUS_count_` (e.g. `DOWN_1_UP_3_`). */
export function eurekaHashcode(instances: Iterable<EurekaInstance>): string {
  const counts = new Map<string, number>();
  for (const i of instances) {
    const s = i.status ?? 'UNKNOWN';
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  return [...counts.keys()]
    .sort()
    .map((s) => `${s}_${counts.get(s)}_`)
    .join('');
}

function portOf(p: EurekaPort | undefined): number | undefined {
  if (!p) return undefined;
  const enabled = p['@enabled'] === undefined ? true : String(p['@enabled']) === 'true';
  const n = Number(p.$);
  return enabled && Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined;
}

export function eurekaHostname(app: string, options: Pick<EurekaConvertOptions, 'hostnameTemplate'>): string {
  const name = app.toLowerCase().replace(/_/g, '-');
  return expandTemplate(options.hostnameTemplate ?? '{app}.eureka', { app: name, service: name }).toLowerCase();
}

/** Stable workload key of an instance: `instanceId`, else `hostName:port`. */
export function eurekaInstanceKey(i: EurekaInstance): string {
  return i.instanceId || `${i.hostName}:${i.port?.$ ?? ''}`;
}

export function convertEurekaApp(app: string, instances: readonly EurekaInstance[], options: EurekaConvertOptions): EurekaConversion {
  const hostname = eurekaHostname(app, options);
  const namespace = options.namespace ?? 'default';
  const problems: Problem[] = [];
  const byName = new Map<string, { protocol: Protocol; numbers: number[] }>();
  const aliases = new Set<string>();
  const workloads: WorkloadEntry[] = [];
  const regionKey = options.localityKeys?.region ?? 'region';
  const zoneKey = options.localityKeys?.zone ?? 'zone';

  for (const [n, i] of instances.entries()) {
    const key = eurekaInstanceKey(i);
    const file = `eureka:${app}/${key}`;
    const up = i.status === 'UP';
    if (!up && options.dropNonUp) continue;
    const address = options.addressFrom === 'hostName' ? i.hostName || i.ipAddr : i.ipAddr || i.hostName;
    if (!address) {
      problems.push({ file, path: `instance[${n}].ipAddr`, message: 'no ipAddr or hostName; instance dropped' });
      continue;
    }
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(i.metadata ?? {})) if (!k.startsWith('@') && typeof v === 'string') metadata[k] = v;
    const named = metadata['istio.protocol'] ?? metadata.protocol;
    let protocol = parseProtocol(named);
    if (named && !protocol) problems.push({ file, path: `instance[${n}].metadata.protocol`, message: `unknown protocol "${named}"` });
    protocol ??= options.defaultProtocol ?? 'HTTP';
    const ports: Record<string, number> = {};
    const plain = portOf(i.port);
    const secure = portOf(i.securePort);
    const add = (name: string, proto: Protocol, number: number): void => {
      ports[name] = number;
      const e = byName.get(name) ?? { protocol: proto, numbers: [] };
      e.numbers.push(number);
      byName.set(name, e);
    };
    if (plain !== undefined) add(portNameFor(protocol), protocol, plain);
    if (secure !== undefined) add(protocol === 'HTTPS' ? 'https-secure' : 'https', 'HTTPS', secure);
    if (Object.keys(ports).length === 0) {
      problems.push({ file, path: `instance[${n}].port`, message: 'neither port nor securePort is enabled; instance dropped' });
      continue;
    }
    for (const vip of `${i.vipAddress ?? ''},${i.secureVipAddress ?? ''}`.split(',')) {
      const v = vip.trim().toLowerCase();
      if (v && v !== hostname) aliases.add(v);
    }
    const dc = i.dataCenterInfo?.metadata ?? {};
    const health: Health = up ? 'HEALTHY' : 'UNHEALTHY';
    workloads.push({
      name: key,
      namespace,
      address,
      ports,
      labels: metadata,
      serviceAccount: '',
      locality: localityOf(metadata[regionKey] ?? dc.region, metadata[zoneKey] ?? dc['availability-zone']),
      network: options.network ?? '',
      weight: 1,
      health,
      services: [hostname],
      source: { kind: 'eureka', shard: options.shard, ref: `${app}/${key}` },
    });
  }
  if (workloads.length === 0) return deepFreeze({ workloads: [], problems });
  const { ports, conflicts } = reconcilePorts(byName, workloads);
  for (const message of conflicts) problems.push({ file: `eureka:${app}`, path: 'instance[*].port', message });
  workloads.sort((a, b) => a.name.localeCompare(b.name));
  const service: ServiceEntry = {
    hostname,
    namespace,
    addresses: [],
    ports,
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    subjectAltNames: [],
    exportTo: [],
    labels: {},
    aliases: [...aliases].sort(),
    source: { kind: 'eureka', shard: options.shard, ref: app },
  };
  return deepFreeze({ service, workloads, problems });
}
