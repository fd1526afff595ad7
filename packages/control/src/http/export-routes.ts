/**
 * `GET /v1/export/services`: this control plane's merged services, for other control planes to read (the
 * `trellis` registry kind; docs/multicluster.md). The body is a `trellis.dev/v1alpha1` `ServiceExport`:
 *
 *   { apiVersion, kind: "ServiceExport", version, clusterId, network, trustDomain,
 *     items: [ networking.istio.io/v1 ServiceEntry, … ] }
 *
 * One ServiceEntry per service (hostname, namespace), labelled `trellis.dev/exported-from: <clusterId>`, whose
 * `spec.endpoints` are its endpoints as WorkloadEntry specs (address, ports by port name, labels, network,
 * locality, weight, serviceAccount). An endpoint with no network gets this control plane's network. Endpoints that
 * are UNHEALTHY or DRAINING are left out (a ServiceEntry endpoint cannot say so). Addresses are exported except
 * a Kubernetes service's ClusterIPs (routable only inside its cluster).
 *
 * No loops: whatever this control plane learned from another one (shards of kind `trellis`) is never exported
 * again; a service is exported when it has an endpoint of its own or its definition is its own.
 *
 * Long poll: `?version=V&wait=30s` (or `If-None-Match: "V"`) answers at once when the export's version differs
 * from V, else waits up to `wait` (at most 60 s) for it to change, and answers `304 Not Modified` if it did not.
 * `version` is a hash of the items, so an unrelated snapshot (a VirtualService edit) does not wake readers.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WorkloadEntry } from '@trellis/model';
import type { MeshService, Snapshot } from '../snapshot/types.js';
import { parseDurationMs } from '../config/settings.js';
import { sendError, type HttpRoute } from './server.js';

/** Label that marks every exported ServiceEntry with the cluster id of the control plane that exported it. */
export const EXPORTED_FROM_LABEL = 'trellis.dev/exported-from';
const MAX_WAIT_MS = 60_000;

interface ExportDoc {
  readonly version: string;
  readonly text: string;
}

function endpointSpec(w: WorkloadEntry, defaultNetwork: string): Record<string, unknown> {
  const network = w.network || defaultNetwork;
  return {
    address: w.address,
    ...(Object.keys(w.ports).length > 0 ? { ports: w.ports } : {}),
    ...(Object.keys(w.labels).length > 0 ? { labels: w.labels } : {}),
    ...(network ? { network } : {}),
    ...(w.locality ? { locality: w.locality } : {}),
    ...(w.weight > 1 ? { weight: w.weight } : {}),
    ...(w.serviceAccount ? { serviceAccount: w.serviceAccount } : {}),
  };
}

/** A resource name for a hostname (`*` is not allowed in names). */
function resourceName(hostname: string): string {
  return hostname.replace(/^\*\./, 'wildcard.').replace(/\*/g, 'wildcard').slice(0, 253).replace(/[.-]+$/, '');
}

function exportedEntry(m: MeshService, snapshot: Snapshot): Record<string, unknown> | undefined {
  const own = m.endpoints.filter((w) => w.source.kind !== 'trellis' && (w.health === 'HEALTHY' || w.health === 'UNKNOWN'));
  if (m.service.source.kind === 'trellis' && !m.endpoints.some((w) => w.source.kind !== 'trellis')) return undefined;
  const s = m.service;
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: resourceName(s.hostname), namespace: s.namespace, labels: { ...s.labels, [EXPORTED_FROM_LABEL]: snapshot.mesh.clusterId } },
    spec: {
      hosts: [s.hostname],
      // A Kubernetes ClusterIP means nothing in another cluster: the reader allocates a VIP of its own instead.
      ...(s.addresses.length > 0 && s.source.kind !== 'kubernetes' ? { addresses: s.addresses } : {}),
      ports: s.ports.map((p) => ({ number: p.number, protocol: p.protocol, name: p.name, ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}) })),
      location: s.location,
      resolution: s.resolution,
      ...(s.subjectAltNames.length > 0 ? { subjectAltNames: s.subjectAltNames } : {}),
      ...(s.exportTo.length > 0 ? { exportTo: s.exportTo } : {}),
      endpoints: own.map((w) => endpointSpec(w, snapshot.mesh.network)),
    },
  };
}

/** Builds the export of `snapshot` (pure). */
export function buildExport(snapshot: Snapshot): { version: string; body: Record<string, unknown> } {
  const items = snapshot.services.map((m) => exportedEntry(m, snapshot)).filter((e) => e !== undefined);
  const head = { clusterId: snapshot.mesh.clusterId, network: snapshot.mesh.network, trustDomain: snapshot.mesh.trustDomain };
  const version = createHash('sha256').update(JSON.stringify([head, items])).digest('hex').slice(0, 16);
  return { version, body: { apiVersion: 'trellis.dev/v1alpha1', kind: 'ServiceExport', version, ...head, items } };
}

/**
 * The export feed: the current export (rebuilt lazily after each snapshot) and the long-polling readers waiting
 * for it to change. `onSnapshot()` after every snapshot; `close()` answers every waiting reader.
 */
export class ServiceExportFeed {
  readonly #current: () => Snapshot | undefined;
  #built: { snapshot: Snapshot; doc: ExportDoc } | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(current: () => Snapshot | undefined) {
    this.#current = current;
  }

  /** The current export, or undefined before the first snapshot. */
  current(): ExportDoc | undefined {
    const s = this.#current();
    if (!s) return undefined;
    if (this.#built?.snapshot !== s) {
      const { version, body } = buildExport(s);
      this.#built = { snapshot: s, doc: { version, text: JSON.stringify(body) + '\n' } };
    }
    return this.#built.doc;
  }

  onSnapshot(): void {
    for (const w of [...this.#waiters]) w();
  }

  close(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves with the export once its version differs from `version`, or with the current one after `waitMs`. */
  async wait(version: string, waitMs: number, closed: AbortSignal): Promise<ExportDoc | undefined> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const doc = this.current();
      if ((doc && doc.version !== version) || Date.now() >= deadline || closed.aborted) return doc;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          this.#waiters.delete(done);
          closed.removeEventListener('abort', done);
          resolve();
        };
        const t = setTimeout(done, deadline - Date.now());
        this.#waiters.add(done);
        closed.addEventListener('abort', done, { once: true });
      });
    }
  }

  routes(): HttpRoute[] {
    return [{
      method: 'GET',
      path: '/v1/export/services',
      handler: async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
        const q = new URL(req.url ?? '/', 'http://x').searchParams;
        const inm = /^"?([^"]*)"?$/.exec(req.headers['if-none-match'] ?? '')?.[1] ?? '';
        const version = q.get('version') ?? inm;
        let waitMs = 0;
        try {
          waitMs = Math.min(MAX_WAIT_MS, q.has('wait') ? parseDurationMs(q.get('wait')!, 'wait') : 0);
        } catch {
          sendError(res, 400, 'TRELLIS_ERR_EXPORT_QUERY', `wait=${q.get('wait')}: expected a duration like 30s`);
          return;
        }
        const gone = new AbortController();
        res.on('close', () => gone.abort());
        const doc = version !== '' && waitMs > 0 ? await this.wait(version, waitMs, gone.signal) : this.current();
        if (gone.signal.aborted && res.destroyed) return;
        if (!doc) {
          sendError(res, 503, 'TRELLIS_ERR_NOT_READY', 'no snapshot yet');
          return;
        }
        const etag = `"${doc.version}"`;
        if (version === doc.version) {
          res.writeHead(304, { etag });
          res.end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(doc.text), etag });
        res.end(doc.text);
      },
    }];
  }
}
