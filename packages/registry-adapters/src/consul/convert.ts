/**
 * Consul `/v1/health/service/:name` entries → hub values. Pure; tested from tables of real responses.
 *
 * One Consul service becomes one ServiceEntry (hostname from a template) with one port per protocol found among
 * its instances, and one WorkloadEntry per instance (key `<node>/<service id>`).
 */
import type { Health, Problem, Protocol, ServiceEntry, WorkloadEntry } from '@trellis/model';
import { expandTemplate, localityOf, parseProtocol, portNameFor, reconcilePorts } from '../port-protocol.js';
import { deepFreeze } from '../runtime.js';

/** One element of the `/v1/health/service/:name` array (fields Trellis reads; Consul sends more). */
export interface ConsulHealthEntry {
  readonly Node: {
    readonly ID?: string;
    readonly Node: string;
    readonly Address: string;
    readonly Datacenter?: string;
    readonly Meta?: Readonly<Record<string, string>> | null;
  };
  readonly Service: {
    readonly ID: string;
    readonly Service: string;
    readonly Tags?: readonly string[] | null;
    readonly Address?: string;
    readonly Meta?: Readonly<Record<string, string>> | null;
    readonly Port: number;
    readonly Weights?: { readonly Passing?: number; readonly Warning?: number } | null;
    readonly Namespace?: string;
  };
  readonly Checks?: readonly { readonly CheckID?: string; readonly Status: string; readonly ServiceID?: string }[] | null;
}

export interface ConsulConvertOptions {
  /** Shard id, e.g. `consul:dc1`. */
  readonly shard: string;
  readonly datacenter: string;
  /** Hostname template; tokens `{service}`, `{dc}` (or `{datacenter}`), `{namespace}`. Default `{service}.service.consul`. */
  readonly hostnameTemplate?: string;
  /** Hub namespace of the produced values. Default `default`. */
  readonly namespace?: string;
  /** Consul namespace (Enterprise), used for the `{namespace}` token. Default `default`. */
  readonly consulNamespace?: string;
  /** Node meta keys giving the locality. Defaults `region` and `zone`. */
  readonly localityKeys?: { readonly region?: string; readonly zone?: string };
  /** Protocol when the instance has no `protocol` meta. Default `TCP`. */
  readonly defaultProtocol?: Protocol;
  /** Network of the workloads. Default `''`. */
  readonly network?: string;
}

export interface ConsulConversion {
  /** Absent when the service has no instance (Consul knows no ports for it). */
  readonly service?: ServiceEntry;
  readonly workloads: readonly WorkloadEntry[];
  readonly problems: readonly Problem[];
}

export function consulHostname(service: string, options: ConsulConvertOptions): string {
  return expandTemplate(options.hostnameTemplate ?? '{service}.service.consul', {
    service,
    dc: options.datacenter,
    datacenter: options.datacenter,
    namespace: options.consulNamespace ?? 'default',
  }).toLowerCase();
}

/** Health of an instance from its checks: any `critical` → UNHEALTHY; `warning` → HEALTHY at the warning weight. */
function healthOf(entry: ConsulHealthEntry): { health: Health; warning: boolean } {
  const statuses = (entry.Checks ?? []).map((c) => c.Status);
  if (statuses.includes('critical') || statuses.includes('maintenance')) return { health: 'UNHEALTHY', warning: false };
  return { health: 'HEALTHY', warning: statuses.includes('warning') };
}

/** Labels from tags of the form `key=value` (other tags are ignored) and then service meta (meta wins). */
export function consulLabels(tags: readonly string[] | null | undefined, meta: Readonly<Record<string, string>> | null | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const tag of tags ?? []) {
    const i = tag.indexOf('=');
    if (i > 0) labels[tag.slice(0, i)] = tag.slice(i + 1);
  }
  for (const [k, v] of Object.entries(meta ?? {})) if (typeof v === 'string') labels[k] = v;
  return labels;
}

export function convertConsulService(name: string, entries: readonly ConsulHealthEntry[], options: ConsulConvertOptions): ConsulConversion {
  const hostname = consulHostname(name, options);
  const namespace = options.namespace ?? 'default';
  const problems: Problem[] = [];
  const regionKey = options.localityKeys?.region ?? 'region';
  const zoneKey = options.localityKeys?.zone ?? 'zone';
  const defaultProtocol = options.defaultProtocol ?? 'TCP';
  const byProtocol = new Map<Protocol, number[]>();
  const workloads: WorkloadEntry[] = [];
  const seen = new Set<string>();

  for (const [i, e] of entries.entries()) {
    const ref = `${options.datacenter}/${e?.Node?.Node}/${e?.Service?.ID}`;
    if (!e?.Service || !e.Node || typeof e.Service.Port !== 'number' || !(e.Service.Port > 0 && e.Service.Port < 65536)) {
      problems.push({ file: `consul:${name}`, path: `[${i}].Service.Port`, message: 'missing or invalid port; instance dropped' });
      continue;
    }
    const address = e.Service.Address || e.Node.Address;
    if (!address) {
      problems.push({ file: `consul:${name}`, path: `[${i}].Service.Address`, message: 'neither Service.Address nor Node.Address; instance dropped' });
      continue;
    }
    const metaProtocol = e.Service.Meta?.protocol;
    let protocol = parseProtocol(metaProtocol);
    if (metaProtocol && !protocol) {
      problems.push({ file: `consul:${name}`, path: `[${i}].Service.Meta.protocol`, message: `unknown protocol "${metaProtocol}"; using ${defaultProtocol}` });
    }
    protocol ??= defaultProtocol;
    const key = `${e.Node.Node}/${e.Service.ID}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const list = byProtocol.get(protocol) ?? [];
    list.push(e.Service.Port);
    byProtocol.set(protocol, list);
    const { health, warning } = healthOf(e);
    const weights = e.Service.Weights ?? {};
    const weight = Math.max(1, Math.floor((warning ? weights.Warning : weights.Passing) ?? 1));
    workloads.push({
      name: key,
      namespace,
      address,
      ports: { [portNameFor(protocol)]: e.Service.Port },
      labels: consulLabels(e.Service.Tags, e.Service.Meta),
      serviceAccount: '',
      locality: localityOf(e.Node.Meta?.[regionKey], e.Node.Meta?.[zoneKey]),
      network: options.network ?? '',
      weight,
      health,
      services: [hostname],
      source: { kind: 'consul', shard: options.shard, ref },
    });
  }

  if (workloads.length === 0) return deepFreeze({ workloads: [], problems });
  const { ports, conflicts } = reconcilePorts(
    new Map([...byProtocol.entries()].map(([protocol, numbers]) => [portNameFor(protocol), { protocol, numbers }])),
    workloads,
  );
  for (const message of conflicts) problems.push({ file: `consul:${name}`, path: '[*].Service.Port', message });
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
    aliases: [],
    source: { kind: 'consul', shard: options.shard, ref: `${options.datacenter}/${name}` },
  };
  workloads.sort((a, b) => a.name.localeCompare(b.name));
  return deepFreeze({ service, workloads, problems });
}
