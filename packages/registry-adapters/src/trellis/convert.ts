/**
 * A remote control plane's `ServiceExport` (`GET /v1/export/services`, see packages/control/src/http/export-routes.ts)
 * → the hub model. Pure: each item is decoded with `@trellis/model`'s decoder (a bad item is dropped and reported
 * with its path, the rest are kept) and converted like a ServiceEntry from a file; the source is this shard, kind
 * `trellis`, so the importing control plane never exports it again.
 */
import {
  convertServiceEntry, decodeResource, type Problem, type ServiceEntry, type ServiceEntryInput, type Source, type WorkloadEntry,
} from '@trellis/model';

export interface TrellisExportOptions {
  /** Shard id, e.g. `trellis:cluster-b`. */
  readonly shard: string;
  /** Network given to endpoints that name none (the export already fills in the remote's own network). */
  readonly network?: string;
  /** URL the export was read from, for problem messages. */
  readonly url: string;
}

export interface TrellisExportHeader {
  readonly version: string;
  readonly clusterId: string;
  readonly network: string;
  readonly trustDomain: string;
}

export interface TrellisConversion {
  readonly header: TrellisExportHeader;
  readonly services: readonly ServiceEntry[];
  readonly workloads: readonly WorkloadEntry[];
  readonly problems: readonly Problem[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Throws when `body` is not a ServiceExport at all (the shard goes stale); drops and reports bad items. */
export function convertTrellisExport(body: unknown, o: TrellisExportOptions): TrellisConversion {
  if (!isObject(body) || body.kind !== 'ServiceExport' || !Array.isArray(body.items)) {
    throw new Error(`${o.url}: not a trellis.dev/v1alpha1 ServiceExport (kind ${JSON.stringify(isObject(body) ? body.kind ?? null : null)})`);
  }
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const header = Object.freeze({ version: str(body.version), clusterId: str(body.clusterId), network: str(body.network), trustDomain: str(body.trustDomain) });
  const services: ServiceEntry[] = [];
  const workloads: WorkloadEntry[] = [];
  const problems: Problem[] = [];
  body.items.forEach((item, i) => {
    const d = decodeResource(item);
    if (!d.ok) {
      for (const v of d.violations) problems.push(Object.freeze({ file: o.url, document: i, path: v.path, message: v.message }));
      return;
    }
    if (d.resource.kind !== 'ServiceEntry') {
      problems.push(Object.freeze({ file: o.url, document: i, path: 'kind', message: `expected ServiceEntry, got ${d.resource.kind}` }));
      return;
    }
    const r = d.resource as unknown as ServiceEntryInput;
    const source: Source = Object.freeze({ kind: 'trellis', shard: o.shard, ref: `${header.clusterId || o.url}:${r.metadata.namespace}/${r.metadata.name}` });
    const c = convertServiceEntry({ kind: 'ServiceEntry', metadata: r.metadata, spec: r.spec }, source);
    services.push(...c.services);
    for (const w of c.workloads) workloads.push(w.network === '' && o.network ? Object.freeze({ ...w, network: o.network }) : w);
  });
  return Object.freeze({ header, services: Object.freeze(services), workloads: Object.freeze(workloads), problems: Object.freeze(problems) });
}
