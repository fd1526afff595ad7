/**
 * The proxy, composed: config store ← ADS + SDS clients; TLS contexts; cluster manager; HTTP codecs with the layer
 * stack; listener manager; metrics; admin, health and Prometheus servers. `main.ts` builds one from flags; tests
 * build them in-process with port 0 everywhere.
 */
import type * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { istioAccessLogFormat } from '@trellis/api';
import { getOriginalDst, socketFd } from '@trellis/native';
import { adminHandler, healthHandler, listenHttp, prometheusHandler } from './admin/admin-server.js';
import { ClusterManager } from './cluster/cluster-manager.js';
import { ConfigStore } from './config/store.js';
import { compose } from './http/context.js';
import { HttpServers } from './http/http-servers.js';
import { clusterPickLayer } from './http/layers/cluster-pick.js';
import { corsLayer } from './http/layers/cors.js';
import { faultLayer } from './http/layers/fault.js';
import { mirrorLayer } from './http/layers/mirror.js';
import { ShadowSender } from './upstream/shadow.js';
import { jwtAuthnLayer } from './http/layers/jwt-authn.js';
import { clusterJwksFetcher } from './jwt/cluster-fetch.js';
import { localReplyLayer } from './http/layers/local-reply.js';
import { normalizePathLayer } from './http/layers/normalize-path.js';
import { rbacLayer } from './http/layers/rbac.js';
import { requestIdLayer } from './http/layers/request-id.js';
import { routeLayer } from './http/layers/route.js';
import { telemetryLayer } from './http/layers/telemetry.js';
import { tracingLayer } from './http/layers/tracing.js';
import { AccessLogger } from './telemetry/access-log.js';
import { Tracer } from './telemetry/tracer.js';
import { upstreamLayer } from './http/layers/upstream.js';
import { ListenerManager } from './listener/listener-manager.js';
import type { Logger } from './log.js';
import { ProxyMetrics } from './telemetry/metrics.js';
import { TlsContexts } from './tls/contexts.js';
import { createAdsClient, createSdsClient } from './xds/clients.js';
import type { NodeIdentity } from './xds/node.js';
import type { SotwClient } from './xds/sotw-client.js';

export interface ProxyOptions {
  readonly node: NodeIdentity;
  readonly xds: { readonly target: string; readonly credentials: grpc.ChannelCredentials } | null;
  readonly sdsSocket: string | null;
  readonly logger: Logger;
  /** Ports: 0 = OS-chosen. */
  readonly ports: { readonly outbound: number; readonly inbound: number; readonly admin: number; readonly prometheus: number; readonly health: number };
  /** Bind every LDS listener here instead of its own address (tests: 127.0.0.1). */
  readonly bindAddress?: string;
  readonly adminAddress?: string;
  readonly statusAddress?: string;
  readonly detectionTimeoutMs?: number;
  readonly drainTimeMs?: number;
  readonly trustDomain?: string;
  readonly serviceAccount?: string;
  readonly namespace?: string;
  readonly workloadName?: string;
  /**
   * `--access-log`: a file (or `/dev/stdout`) that gets every request and connection in Istio's default format of
   * `accessLogEncoding` (JSON unless given), whatever the control plane says; `off` = no access log at all;
   * absent = follow the control plane (HCM/tcp_proxy `access_log`).
   */
  readonly accessLog?: string;
  readonly accessLogEncoding?: 'JSON' | 'TEXT';
  /** `--trace-sampling` (percent) and `--zipkin HOST:PORT`, overriding the control plane's tracing config. */
  readonly tracing?: { readonly sampling?: number; readonly zipkin?: string; readonly reporter?: { readonly maxQueue?: number; readonly batchSize?: number; readonly flushIntervalMs?: number } };
  /** Overridable for tests. */
  readonly originalDst?: ListenerManagerOriginalDst;
}

type ListenerManagerOriginalDst = (s: import('node:net').Socket) => { address: string; port: number } | null;

export class Proxy {
  readonly store = new ConfigStore();
  readonly tlsContexts = new TlsContexts(this.store);
  readonly clusters = new ClusterManager(this.store, this.tlsContexts);
  readonly metrics: ProxyMetrics;
  readonly accessLog: AccessLogger;
  readonly tracer: Tracer;
  readonly http: HttpServers;
  readonly listeners: ListenerManager;
  private ads: SotwClient | null = null;
  private sds: SotwClient | null = null;
  private readonly servers: http.Server[] = [];
  private readonly abort = new AbortController();
  private draining = false;
  private wasReady = false;
  private readyWaiters: (() => void)[] = [];
  adminPort = 0;
  prometheusPort = 0;
  healthPort = 0;

  constructor(private readonly o: ProxyOptions) {
    const td = o.trustDomain ?? 'cluster.local';
    const instance = randomUUID();
    const labels = (o.node.metadata.LABELS ?? {}) as Readonly<Record<string, string>>;
    this.accessLog = new AccessLogger({
      instance, logger: o.logger,
      override: o.accessLog === undefined ? undefined : o.accessLog === 'off' ? null : { name: 'flag', path: o.accessLog, format: istioAccessLogFormat(o.accessLogEncoding ?? 'JSON') },
    });
    this.tracer = new Tracer({
      logger: o.logger, nodeId: o.node.id, namespace: o.namespace ?? 'default', ip: String(o.node.metadata.INSTANCE_IPS ?? '127.0.0.1').split(',')[0],
      serviceName: `${labels.app ?? labels['app.kubernetes.io/name'] ?? o.workloadName ?? 'unknown'}.${o.namespace ?? 'default'}`,
      sampling: o.tracing?.sampling, zipkin: o.tracing?.zipkin, reporter: o.tracing?.reporter,
      clusterHost: (name) => { const h = this.clusters.get(name)?.hosts.pick({ hash: null, now: Date.now() }); return h ? h.address : null; },
    });
    this.metrics = new ProxyMetrics({
      workload: o.workloadName ?? 'unknown', namespace: o.namespace ?? 'unknown', trustDomain: td, labels,
      principal: o.namespace && o.serviceAccount ? `spiffe://${td}/ns/${o.namespace}/sa/${o.serviceAccount}` : 'unknown',
    }, {
      instance, defaultMetrics: true, clusters: () => this.clusters.all(),
      telemetry: { accessLogDropped: () => this.accessLog.dropped, spansReported: () => this.tracer.spansReported, spansDropped: () => this.tracer.spansDropped },
    });
    const now = () => Date.now();
    // listener → route → cluster → endpoint (DESIGN.md §6.4), one layer per file. Policy layers act only when the
    // HCM carries their filter (http_filters), so the order here is the Envoy/Istio filter order.
    const handler = compose([
      telemetryLayer,
      requestIdLayer,
      tracingLayer(this.tracer),
      normalizePathLayer(),
      jwtAuthnLayer({ fetchJwks: clusterJwksFetcher(this.clusters), now }),
      rbacLayer(),
      routeLayer((name) => this.store.routes().get(name)),
      faultLayer(),
      corsLayer(),
      localReplyLayer,
      clusterPickLayer(this.clusters),
      mirrorLayer(new ShadowSender(this.clusters, { now, signal: this.abort.signal })),
    ], upstreamLayer({ now })(() => {}));
    this.http = new HttpServers(handler);
    this.listeners = new ListenerManager({
      store: this.store, clusters: this.clusters, tlsContexts: this.tlsContexts, http: this.http, logger: o.logger,
      originalDst: o.originalDst ?? ((s) => { const fd = socketFd(s as unknown as { _handle?: { fd?: number } | null }); if (fd < 0) return null; try { return getOriginalDst(fd); } catch { return null; } }),
      portOverrides: { virtualOutbound: o.ports.outbound, virtualInbound: o.ports.inbound },
      bindAddress: o.bindAddress, detectionTimeoutMs: o.detectionTimeoutMs ?? 100, now, instance,
    });
    this.store.onChange(() => {
      if (!this.wasReady && this.store.missing().length === 0) {
        this.wasReady = true;
        for (const w of this.readyWaiters.splice(0)) w();
      }
    });
  }

  /** Starts the config clients and the admin/health/metrics servers; listeners bind as LDS arrives. */
  async start(): Promise<void> {
    const signal = this.abort.signal;
    if (this.o.xds) {
      this.ads = createAdsClient({ target: this.o.xds.target, credentials: this.o.xds.credentials, node: this.o.node, store: this.store, logger: this.o.logger });
      this.ads.start(signal);
    }
    if (this.o.sdsSocket) {
      this.sds = createSdsClient({ socketPath: this.o.sdsSocket, node: this.o.node, store: this.store, logger: this.o.logger });
      this.sds.start(signal);
      // New TLS references in LDS/CDS may need more secret names.
      this.store.onChange((k) => { if (k === 'listener' || k === 'cluster') this.sds?.refresh(); });
    }
    const ready = () => this.readiness();
    const admin = await listenHttp(adminHandler({
      store: this.store, clusters: this.clusters, listeners: this.listeners, metrics: this.metrics, logger: this.o.logger, ready,
      xdsStatus: () => ({ ads: this.ads ? { connected: this.ads.connected, ...this.ads.counters } : null, sds: this.sds ? { connected: this.sds.connected, ...this.sds.counters } : null }),
      drain: () => this.drain(),
    }), this.o.adminAddress ?? '127.0.0.1', this.o.ports.admin);
    const prom = await listenHttp(prometheusHandler(this.metrics), this.o.statusAddress ?? '0.0.0.0', this.o.ports.prometheus);
    const health = await listenHttp(healthHandler(ready), this.o.statusAddress ?? '0.0.0.0', this.o.ports.health);
    this.servers.push(admin.server, prom.server, health.server);
    this.adminPort = admin.port;
    this.prometheusPort = prom.port;
    this.healthPort = health.port;
  }

  readiness(): { ready: boolean; missing: string[]; draining: boolean } {
    const missing = this.store.missing();
    return { ready: !this.draining && missing.length === 0, missing, draining: this.draining };
  }

  /** Resolves after the first complete config (listeners, their routes and clusters, endpoints, secrets) is in. */
  whenReady(): Promise<void> {
    if (this.wasReady || this.store.missing().length === 0) return this.listeners.sync();
    return new Promise<void>((resolve) => this.readyWaiters.push(resolve)).then(() => this.listeners.sync());
  }

  /** Stops accepting, tells keep-alive clients to go away, lets in-flight requests finish. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.listeners.drain();
    this.http.drain();
  }

  /** Drains, waits up to `drainTimeMs` for open connections, then closes everything. */
  async shutdown(drainTimeMs = this.o.drainTimeMs ?? 5000): Promise<void> {
    this.drain();
    const end = Date.now() + drainTimeMs;
    while (this.listeners.connectionCount > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    await this.close();
  }

  async close(): Promise<void> {
    this.abort.abort();
    this.listeners.close();
    this.http.close();
    this.clusters.close();
    this.metrics.close();
    await Promise.all([this.accessLog.close(), this.tracer.close()]);
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })));
  }
}
