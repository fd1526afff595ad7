/**
 * Runtime state per cluster: hosts (from EDS or the cluster's own load_assignment), the balancer, circuit-breaker
 * counters, outlier ejection, and upstream connection pools keyed by host and TLS context version (a rotated
 * certificate gets new pools; the old pools drain their in-flight requests and close).
 */
import { Pool } from 'undici';
import type { ClusterConfig, UpstreamTls } from '@trellis/api';
import type { ConfigStore } from '../config/store.js';
import type { Host } from '../lb/hosts.js';
import { HostSet } from '../lb/hosts.js';
import { type AttemptResult, OutlierDetector } from './outlier.js';
import type { TlsContexts } from '../tls/contexts.js';
import { bindAddressFor, connectUpstream, type UpstreamTlsParams } from '../upstream/connect.js';
import { H2Upstream } from '../upstream/h2-session.js';

export interface ClusterStats {
  rqTotal: number;
  rqActive: number;
  rqError: number;
  rqTimeout: number;
  cxConnectFail: number;
  overflow: number;
  retries: number;
  /** upstream_rq_retry_success, upstream_rq_retry_overflow, upstream_rq_per_try_timeout; retries outstanding now (http/retry/retry-budget.ts). */
  retrySuccess: number; retryOverflow: number; perTryTimeout: number; retriesActive: number;
}

interface LastUpstream { readonly key: string; readonly version: number; readonly u: Upstream }
type Upstream = { kind: 'h1'; pool: Pool } | { kind: 'h2'; h2: H2Upstream };

export class ClusterRuntime {
  hosts: HostSet;
  readonly stats: ClusterStats = { rqTotal: 0, rqActive: 0, rqError: 0, rqTimeout: 0, cxConnectFail: 0, overflow: 0, retries: 0, retrySuccess: 0, retryOverflow: 0, perTryTimeout: 0, retriesActive: 0 };
  private readonly upstreams = new Map<string, Upstream>();
  /** Per host key: the upstream last used per protocol (validated against `upstreams` on every hit). */
  private readonly lastByHost = new Map<string, { h1: LastUpstream | null; h2: LastUpstream | null }>();

  /** Outlier detection, when the cluster configures it. */
  readonly outlier: OutlierDetector | null;

  constructor(readonly config: ClusterConfig, private readonly tlsContexts: TlsContexts, previous?: ClusterRuntime, now: () => number = Date.now) {
    this.hosts = this.hostSet(config.loadAssignment, previous?.hosts);
    this.outlier = config.outlierDetection ? new OutlierDetector(config.outlierDetection, now()) : null;
  }

  /** A host set for these endpoints with this cluster's policy, keeping the per-host state of `previous`. */
  hostSet(cla: ClusterConfig['loadAssignment'], previous?: HostSet): HostSet {
    const c = this.config;
    return new HostSet(cla, c.lbPolicy, c.ringHash?.minimumRingSize ?? 1024, Math.random, previous, c.healthyPanicThreshold);
  }

  /**
   * Circuit breaker `max_pending_requests`: whether a request on this HTTP/1.1 pool would have to wait behind that
   * many others for a connection (the pool is at `max_connections`). Counted by the caller as an overflow (UO).
   */
  pendingOverflow(u: Upstream): boolean {
    const limit = this.config.circuitBreakers.maxPendingRequests;
    return u.kind === 'h1' && limit < 0x7fffffff && u.pool.stats.queued >= limit;
  }

  /** Accounts an upstream attempt's result to outlier detection (a no-op without it). */
  recordResult(host: Host, result: AttemptResult, now: number): void {
    this.outlier?.record(host, result, this.hosts.all, now);
  }

  setEndpoints(hosts: HostSet): void {
    this.hosts = hosts;
  }

  /** The TLS config that applies to a host (transport_socket_matches on endpoint metadata, else the cluster's). */
  tlsFor(host: Host): UpstreamTls | null {
    for (const m of this.config.transportSocketMatches) {
      const md = host.metadata['envoy.transport_socket_match'] ?? {};
      if (Object.entries(m.match).every(([k, v]) => md[k] === v)) return m.tls;
    }
    return this.config.tls;
  }

  /**
   * An upstream client for the host, or a string saying why none is available (secrets not yet delivered).
   * `h2` selects the HTTP/2 session pool.
   */
  upstream(host: Host, h2: boolean): Upstream | 'no_secret' {
    const t = this.tlsFor(host);
    let c: { ctx: import('node:tls').SecureContext; version: number } | null = null;
    if (t) {
      c = this.tlsContexts.get(t);
      if (!c) return 'no_secret';
    }
    const version = c ? c.version : 0;
    // Fast path (every request): the host's last upstream for this protocol, if made with the current context.
    const last = this.lastByHost.get(host.key);
    const lastHit = last ? (h2 ? last.h2 : last.h1) : null;
    if (lastHit && lastHit.version === version && this.upstreams.get(lastHit.key) === lastHit.u) return lastHit.u;
    let params: UpstreamTlsParams | null = null;
    if (t && c) {
      // Istio's mesh ALPN (Envoy's istio.alpn filter): a cluster whose TLS offers `istio` tells the server proxy
      // the protocol inside the tunnel with `istio-h2` / `istio-http/1.1`, which inbound filter chains match on.
      const istio = t.alpn.includes('istio') || t.alpn.includes('istio-peer-exchange');
      const alpn = h2 ? (istio ? ['istio-h2', 'h2'] : ['h2']) : (istio ? ['istio-http/1.1', 'http/1.1'] : [...t.alpn.filter((a) => a !== 'h2' && a !== 'http/1.1'), 'http/1.1']);
      params = { config: t, ctx: c.ctx, alpn };
    }
    const key = `${h2 ? 'h2' : 'h1'}|${host.key}|${version}`;
    const remember = (u: Upstream): Upstream => {
      const e = this.lastByHost.get(host.key) ?? { h1: null, h2: null };
      if (h2) e.h2 = { key, version, u }; else e.h1 = { key, version, u };
      this.lastByHost.set(host.key, e);
      return u;
    };
    const hit = this.upstreams.get(key);
    if (hit) return remember(hit);
    // A new TLS context version replaces the pools of the old one: they finish in-flight requests and close.
    for (const [k, u] of this.upstreams) if (k.startsWith(`${h2 ? 'h2' : 'h1'}|${host.key}|`)) { this.upstreams.delete(k); closeUpstream(u); }
    const { address, port } = host.address;
    const localAddress = bindAddressFor(address, this.config.bindAddresses);
    let u: Upstream;
    if (h2) u = { kind: 'h2', h2: new H2Upstream(address, port, this.config.connectTimeoutMs, params, localAddress) };
    else {
      const h1Params = params;
      u = {
        kind: 'h1',
        pool: new Pool(`http://${host.key}`, {
          connections: Math.min(this.config.circuitBreakers.maxConnections, 256),
          pipelining: 1,
          keepAliveTimeout: this.config.idleTimeoutMs ?? 60_000,
          ...(this.config.maxRequestsPerConnection !== null ? { maxRequestsPerClient: this.config.maxRequestsPerConnection } : {}),
          keepAliveMaxTimeout: 600_000,
          headersTimeout: 0,
          bodyTimeout: 0,
          connect: (_opts, cb) => { connectUpstream(address, port, this.config.connectTimeoutMs, h1Params, (err, s) => (err ? cb(err, null) : cb(null, s!)), localAddress); },
        }),
      };
    }
    this.upstreams.set(key, u);
    return remember(u);
  }

  /** The current secure context for a TLS config, or null while its secrets are missing. */
  tlsContextFor(t: UpstreamTls): import('node:tls').SecureContext | null {
    return this.tlsContexts.get(t)?.ctx ?? null;
  }

  /** Drops pools of hosts no longer present. */
  prune(): void {
    const keys = new Set(this.hosts.all.map((h) => h.key));
    for (const [k, u] of this.upstreams) if (!keys.has(k.split('|')[1])) { this.upstreams.delete(k); closeUpstream(u); }
    for (const k of this.lastByHost.keys()) if (!keys.has(k)) this.lastByHost.delete(k);
  }

  close(): void {
    for (const u of this.upstreams.values()) closeUpstream(u);
    this.upstreams.clear();
    this.lastByHost.clear();
  }

  /** Pools currently open, for /clusters. */
  get poolCount(): number {
    return this.upstreams.size;
  }
}

function closeUpstream(u: Upstream): void {
  if (u.kind === 'h1') u.pool.close().catch(() => {});
  else u.h2.close();
}

export class ClusterManager {
  private clusters = new Map<string, ClusterRuntime>();
  private readonly unsubscribe: () => void;

  constructor(private readonly store: ConfigStore, private readonly tlsContexts: TlsContexts) {
    this.rebuild();
    this.unsubscribe = store.onChange((kind) => { if (kind === 'cluster' || kind === 'endpoint') this.rebuild(); });
  }

  get(name: string): ClusterRuntime | undefined {
    return this.clusters.get(name);
  }

  all(): ReadonlyMap<string, ClusterRuntime> {
    return this.clusters;
  }

  private rebuild(): void {
    const next = new Map<string, ClusterRuntime>();
    const eps = this.store.endpoints();
    for (const [name, cfg] of this.store.clusters()) {
      const prev = this.clusters.get(name);
      let rt: ClusterRuntime;
      if (prev && prev.config === cfg) rt = prev;
      else {
        rt = new ClusterRuntime(cfg, this.tlsContexts, prev);
        prev?.close();
      }
      if (cfg.type === 'EDS') {
        const cla = eps.get(cfg.edsServiceName) ?? null;
        rt.setEndpoints(rt.hostSet(cla, rt.hosts));
        rt.prune();
      }
      next.set(name, rt);
    }
    for (const [name, rt] of this.clusters) if (!next.has(name)) rt.close();
    this.clusters = next;
  }

  close(): void {
    this.unsubscribe();
    for (const rt of this.clusters.values()) rt.close();
    this.clusters.clear();
  }
}
