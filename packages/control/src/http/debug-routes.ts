/**
 * The operator view on the HTTP port: `/ready`, `/metrics` and `/debug/*`. JSON with stable field names; these
 * shapes are what `trellisctl proxy-status`, `proxy-config` and `registry status` read.
 */
import type { AggregateView } from '../aggregate/aggregate.js';
import type { AdsServer } from '../xds/ads-server.js';
import type { Snapshot } from '../snapshot/types.js';
import type { ControlMetrics } from './metrics.js';
import { sendError, sendJson, type HttpRoute } from './server.js';

export interface DebugSources {
  /** The current snapshot and the aggregate view it was built from, if one was built. */
  state(): { readonly snapshot: Snapshot; readonly view: AggregateView } | undefined;
  /** The aggregate view right now (also before the first snapshot). */
  liveView(): AggregateView;
  notReadyReason(): string | undefined;
  readonly ads: AdsServer;
  readonly metrics: ControlMetrics;
  /** Version of the control plane binary, shown by proxy-status. */
  readonly version: string;
}

export function debugRoutes(d: DebugSources): HttpRoute[] {
  const get = (path: string, handler: HttpRoute['handler']): HttpRoute => ({ method: 'GET', path, handler });
  return [
    get('/ready', (_req, res) => {
      const reason = d.notReadyReason();
      if (reason === undefined) sendJson(res, 200, { ready: true, version: d.state()?.snapshot.version });
      else sendError(res, 503, 'TRELLIS_ERR_NOT_READY', reason);
    }),
    get('/metrics', async (_req, res) => {
      const text = await d.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': d.metrics.registry.contentType });
      res.end(text);
    }),
    get('/debug/registryz', (_req, res) => {
      const v = d.liveView();
      sendJson(res, 200, {
        shards: v.shards.map((s) => ({ ...s.status, received: s.received, counts: s.counts })),
        services: v.services.map((m) => ({
          hostname: m.service.hostname, namespace: m.service.namespace, shards: m.shards,
          addresses: m.service.addresses, ports: m.service.ports, resolution: m.service.resolution, location: m.service.location,
          workloadSelector: m.service.workloadSelector, source: m.service.source,
          vip: d.state()?.snapshot.services.find((s) => s.service.hostname === m.service.hostname && s.service.namespace === m.service.namespace)?.vip,
        })),
      });
    }),
    get('/debug/endpointz', (_req, res) => {
      const s = d.state();
      if (!s) return sendError(res, 503, 'TRELLIS_ERR_NOT_READY', d.notReadyReason() ?? 'no snapshot');
      sendJson(res, 200, {
        version: s.snapshot.version,
        services: s.snapshot.services.map((m) => ({
          hostname: m.service.hostname, namespace: m.service.namespace, vip: m.vip,
          endpoints: m.endpoints.map((w) => ({
            name: w.name, namespace: w.namespace, address: w.address, ports: w.ports, labels: w.labels, locality: w.locality,
            weight: w.weight, health: w.health, network: w.network, serviceAccount: w.serviceAccount, shard: w.source.shard,
          })),
        })),
        unattachedWorkloads: s.snapshot.workloads.map((w) => ({ name: w.name, namespace: w.namespace, address: w.address, labels: w.labels, shard: w.source.shard })),
      });
    }),
    get('/debug/configz', (_req, res) => {
      const s = d.state();
      if (!s) return sendError(res, 503, 'TRELLIS_ERR_NOT_READY', d.notReadyReason() ?? 'no snapshot');
      const v = d.liveView();
      sendJson(res, 200, {
        version: s.snapshot.version,
        mesh: s.snapshot.mesh,
        configs: v.configs.map((c) => ({ apiVersion: c.apiVersion, kind: c.kind, metadata: c.metadata, spec: c.spec, origin: c.origin })),
        problems: v.shards.flatMap((sh) => sh.status.problems.map((p) => ({ shard: sh.shard, ...p }))),
      });
    }),
    get('/debug/syncz', (_req, res) => {
      sendJson(res, 200, { controlPlaneVersion: d.version, snapshotVersion: d.state()?.snapshot.version, proxies: d.ads.syncStatus() });
    }),
    get('/debug/conflicts', (_req, res) => {
      sendJson(res, 200, { conflicts: d.liveView().conflicts });
    }),
    get('/debug/config_dump', (req, res) => {
      const id = new URL(req.url ?? '/', 'http://x').searchParams.get('proxy');
      if (!id) return sendError(res, 400, 'TRELLIS_ERR_BAD_REQUEST', 'query parameter proxy=ID is required');
      const dump = d.ads.configDump(id);
      if (!dump) return sendError(res, 404, 'TRELLIS_ERR_NOT_FOUND', `proxy ${id} is not connected (or no snapshot yet)`);
      sendJson(res, 200, dump);
    }),
  ];
}
