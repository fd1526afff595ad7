/**
 * Admin on 127.0.0.1:15000 (loopback only): /config_dump, /clusters, /listeners, /stats, /ready, /logging?level=,
 * /drain_listeners (POST). Also the health port (15021 `/healthz/ready`) and Prometheus (15090 `/stats/prometheus`).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClusterManager } from '../cluster/cluster-manager.js';
import type { ConfigStore } from '../config/store.js';
import type { ListenerManager } from '../listener/listener-manager.js';
import { type Logger, isLogLevel } from '../log.js';
import type { ProxyMetrics } from '../telemetry/metrics.js';

export interface AdminDeps {
  readonly store: ConfigStore;
  readonly clusters: ClusterManager;
  readonly listeners: ListenerManager;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  readonly ready: () => { ready: boolean; missing: string[]; draining: boolean };
  readonly xdsStatus: () => Record<string, unknown>;
  readonly drain: () => void;
}

const TYPE_DUMP: Record<string, string> = {
  listener: 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
  route: 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
  cluster: 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
  endpoint: 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump',
  secret: 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump',
};

export function adminHandler(d: AdminDeps): http.RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const send = (status: number, body: string, type = 'text/plain') => { res.writeHead(status, { 'content-type': type }); res.end(body); };
    switch (url.pathname) {
      case '/config_dump': {
        const configs = (['listener', 'route', 'cluster', 'endpoint', 'secret'] as const).map((k) => {
          const s = d.store.get(k);
          const raw = [...s.raw.entries()].map(([name, v]) => ({ name, version_info: s.version, value: k === 'secret' ? redactSecret(v) : v }));
          return { '@type': TYPE_DUMP[k], version_info: s.version, resources: raw };
        });
        send(200, JSON.stringify({ configs, xds: d.xdsStatus() }, null, 2), 'application/json');
        return;
      }
      case '/clusters': {
        const lines: string[] = [];
        const now = Date.now();
        for (const [name, rt] of d.clusters.all()) {
          const s = rt.stats;
          lines.push(`${name}::type::${rt.config.type}`, `${name}::lb_policy::${rt.config.lbPolicy}`,
            `${name}::rq_total::${s.rqTotal}`, `${name}::rq_active::${s.rqActive}`, `${name}::rq_error::${s.rqError}`, `${name}::rq_timeout::${s.rqTimeout}`,
            `${name}::upstream_cx_connect_fail::${s.cxConnectFail}`, `${name}::upstream_rq_pending_overflow::${s.overflow}`, `${name}::upstream_rq_retry::${s.retries}`);
          if (rt.outlier) {
            lines.push(`${name}::outlier::ejections_active::${rt.outlier.ejected(rt.hosts.all, now)}`);
            for (const [k, v] of Object.entries(rt.outlier.stats)) lines.push(`${name}::outlier::${k.replace(/[A-Z0-9]+/g, (m) => `_${m.toLowerCase()}`)}::${v}`);
          }
          for (const h of rt.hosts.all) {
            const flags = [h.healthy ? 'healthy' : `/failed_eds_health(${h.health ?? 'UNHEALTHY'})`, h.ejectedUntil > now ? '/failed_outlier_check' : ''].join('');
            lines.push(`${name}::${h.key}::health_flags::${flags}`, `${name}::${h.key}::weight::${h.weight}`, `${name}::${h.key}::priority::${h.priority}`,
              `${name}::${h.key}::region::${h.locality.region}`, `${name}::${h.key}::zone::${h.locality.zone}`,
              `${name}::${h.key}::rq_active::${h.active}`, `${name}::${h.key}::rq_total::${h.total}`, `${name}::${h.key}::rq_error::${h.errors}`);
          }
        }
        send(200, lines.join('\n') + '\n');
        return;
      }
      case '/listeners': {
        const ports = d.listeners.ports();
        const out = [...d.store.listeners().values()].map((l) => ({ name: l.name, address: l.address, bound_port: ports[l.name] ?? null, bind_to_port: l.bindToPort, filter_chains: l.filterChains.length }));
        if (url.searchParams.get('format') === 'json') send(200, JSON.stringify(out, null, 2), 'application/json');
        else send(200, out.map((l) => `${l.name}::${l.address ? `${l.address.address}:${l.bound_port ?? l.address.port}` : '-'}`).join('\n') + '\n');
        return;
      }
      case '/stats': {
        if (url.searchParams.get('format') === 'prometheus') {
          d.metrics.registry.metrics().then((m) => send(200, m, d.metrics.registry.contentType), (e: Error) => send(500, e.message));
          return;
        }
        const lines: string[] = [];
        for (const [name, rt] of d.clusters.all()) for (const [k, v] of Object.entries(rt.stats)) lines.push(`cluster.${name}.${k}: ${v}`);
        lines.push(`listener_manager.total_connections: ${d.listeners.connectionCount}`);
        for (const [k, v] of Object.entries(d.xdsStatus())) lines.push(`xds.${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
        send(200, lines.join('\n') + '\n');
        return;
      }
      case '/ready': {
        const r = d.ready();
        send(r.ready ? 200 : 503, r.draining ? 'DRAINING\n' : r.ready ? 'LIVE\n' : `PRE_INITIALIZING: waiting for ${r.missing.join(', ')}\n`);
        return;
      }
      case '/logging': {
        const level = url.searchParams.get('level');
        if (level !== null) {
          if (!isLogLevel(level)) { send(400, `unknown level ${level}; use debug, info, warn, error, off\n`); return; }
          d.logger.level = level;
        }
        send(200, `active level: ${d.logger.level}\n`);
        return;
      }
      case '/drain_listeners':
      case '/healthcheck/fail':
        if (req.method !== 'POST') { send(405, 'use POST\n'); return; }
        d.drain();
        send(200, 'OK\n');
        return;
      default:
        send(404, 'endpoints: /config_dump /clusters /listeners /stats /ready /logging?level= /drain_listeners\n');
    }
  };
}

function redactSecret(v: unknown): unknown {
  const s = v as { name?: string; tls_certificate?: unknown; validation_context?: unknown };
  return { name: s.name, tls_certificate: s.tls_certificate ? { certificate_chain: '[present]', private_key: '[redacted]' } : undefined, validation_context: s.validation_context ? { trusted_ca: '[present]' } : undefined };
}

export function healthHandler(ready: AdminDeps['ready']): http.RequestListener {
  return (req, res) => {
    if (req.url?.startsWith('/healthz/ready')) {
      const r = ready();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(r.ready ? 'ready\n' : r.draining ? 'draining\n' : `not ready: waiting for ${r.missing.join(', ')}\n`);
      return;
    }
    res.writeHead(404);
    res.end();
  };
}

export function prometheusHandler(metrics: ProxyMetrics): http.RequestListener {
  return (req, res) => {
    if (req.url?.startsWith('/stats/prometheus') || req.url?.startsWith('/metrics')) {
      metrics.registry.metrics().then((m) => { res.writeHead(200, { 'content-type': metrics.registry.contentType }); res.end(m); }, (e: Error) => { res.writeHead(500); res.end(e.message); });
      return;
    }
    res.writeHead(404);
    res.end();
  };
}

/** `exclusive`: under node:cluster each worker gets its own port (the primary fronts them, see workers.ts). */
export async function listenHttp(handler: http.RequestListener, host: string, port: number): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen({ port, host, exclusive: true }, () => resolve()); });
  return { server, port: (server.address() as AddressInfo).port };
}
