/**
 * Istio's standard metrics (names and labels as Istio's telemetry v2), fed by the data path's diagnostics-channel
 * events. Source/destination facts this proxy knows about itself come from its node identity; the peer's come
 * from its SPIFFE id (`spiffe://<td>/ns/<ns>/sa/<sa>`) and endpoint metadata.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { AuthzEvent } from '../authz/events.js';
import type { JwtDenialEvent } from '../jwt/events.js';
import type { RequestEvent, RetryEvent, TcpEvent, TimeoutEvent } from './events.js';

export interface SelfIdentity {
  readonly workload: string;
  readonly namespace: string;
  readonly principal: string;
  readonly trustDomain: string;
  /** The workload's labels (`--labels`): `app`/`version` (or `app.kubernetes.io/name`/`…/version`) label series. */
  readonly labels?: Readonly<Record<string, string>>;
}

/** What the cluster collectors read at scrape time (the cluster manager's runtimes). */
export interface ClusterStatsSource {
  readonly stats: {
    readonly rqTotal: number; readonly rqActive: number; readonly rqError: number; readonly rqTimeout: number; readonly cxConnectFail: number; readonly overflow: number; readonly retries: number;
    readonly retrySuccess?: number; readonly retryOverflow?: number; readonly perTryTimeout?: number;
  };
  readonly hosts: { readonly all: readonly { readonly key: string; readonly ejectedUntil: number }[] };
  /** The cluster's outlier detector (null: the cluster has no outlier detection; absent: unknown, see ejectionsTotal). */
  readonly outlier?: { readonly stats: OutlierCounters } | null;
}

export interface OutlierCounters {
  readonly ejectionsTotal: number;
  readonly ejectionsConsecutive5xx: number;
  readonly ejectionsConsecutiveGateway: number;
  readonly ejectionsConsecutiveLocalOrigin: number;
  readonly ejectionsOverflow: number;
}

/** Counters of other telemetry parts (access log, tracing), rendered at scrape time. */
export interface TelemetryCounters {
  readonly accessLogDropped: () => number;
  readonly spansReported: () => number;
  readonly spansDropped: () => number;
}

/** Istio's app/version label rule: `app` else `app.kubernetes.io/name`; `version` else `app.kubernetes.io/version`. */
export function appAndVersion(labels: Readonly<Record<string, string>> | null | undefined): { app: string; version: string } {
  return {
    app: labels?.app ?? labels?.['app.kubernetes.io/name'] ?? labels?.['service.istio.io/canonical-name'] ?? 'unknown',
    version: labels?.version ?? labels?.['app.kubernetes.io/version'] ?? labels?.['service.istio.io/canonical-revision'] ?? 'unknown',
  };
}

/** Label names, in Istio's order (documentation; series are built in `ProxyMetrics.common`). */
export const REQUEST_LABELS = [
  'reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version', 'destination_workload',
  'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version', 'destination_service', 'destination_service_name',
  'destination_service_namespace', 'destination_cluster', 'request_protocol', 'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy',
] as const;
export const TCP_LABELS = REQUEST_LABELS.filter((l) => l !== 'response_code' && l !== 'grpc_response_status' && l !== 'request_protocol');

type Labels = Record<string, string>;

/** `outbound|9080|v1|reviews.default.svc.cluster.local` → service facts; `inbound|…` → this workload's service. */
export function serviceOfCluster(cluster: string): { service: string; name: string; namespace: string } {
  const parts = cluster.split('|');
  if (parts[0] === 'outbound' && parts[3]) {
    const host = parts[3];
    const labels = host.split('.');
    return { service: host, name: labels[0], namespace: labels.length > 2 ? labels[1] : 'unknown' };
  }
  return { service: cluster || 'unknown', name: cluster || 'unknown', namespace: 'unknown' };
}

function principalParts(p: string | null): { ns: string; sa: string } | null {
  const m = p ? /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(p) : null;
  return m ? { ns: m[1], sa: m[2] } : null;
}

/**
 * A counter or histogram family registered in a prom-client Registry but updated without prom-client on the hot
 * path: prom-client validates and hashes every label set per call, which with Istio's 20 labels cost about half of
 * the proxy's CPU per request. Here a request does one Map lookup on a short key and a few additions; label objects
 * are built once per series and rendered at scrape time.
 */
class Family {
  readonly aggregator = 'sum';
  private readonly series = new Map<string, { labels: Labels; value: number; sum: number; buckets: Float64Array | null }>();

  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'histogram', private readonly bounds: readonly number[] = []) {}

  add(key: string, labels: () => Labels, v: number): void {
    let s = this.series.get(key);
    if (!s) { s = { labels: labels(), value: 0, sum: 0, buckets: this.type === 'histogram' ? new Float64Array(this.bounds.length) : null }; this.series.set(key, s); }
    if (!s.buckets) { s.value += v; return; }
    s.value += 1;
    s.sum += v;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) if (v <= b[i]) { s.buckets[i] += 1; break; }
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Labels; value: number; metricName?: string }[] } {
    const values: { labels: Labels; value: number; metricName?: string }[] = [];
    for (const s of this.series.values()) {
      if (!s.buckets) { values.push({ labels: s.labels, value: s.value }); continue; }
      let acc = 0;
      this.bounds.forEach((le, i) => { acc += s.buckets![i]; values.push({ labels: { ...s.labels, le: String(le) }, value: acc, metricName: `${this.name}_bucket` }); });
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.value, metricName: `${this.name}_bucket` });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.value, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

const DURATION_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
const BYTES_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000];

/**
 * A family computed at scrape time from live state (cluster counters, ejected hosts): nothing on the data path.
 * `read` returns (label set, value) pairs.
 */
class ScrapeFamily {
  readonly aggregator = 'sum';
  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'gauge' | 'untyped', private readonly read: () => Iterable<[Labels, number]>) {}
  get(): { name: string; help: string; type: string; aggregator: string; values: { labels: Labels; value: number }[] } {
    const values: { labels: Labels; value: number }[] = [];
    for (const [labels, value] of this.read()) values.push({ labels, value });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

export interface ProxyMetricsOptions {
  readonly instance: string;
  readonly defaultMetrics?: boolean;
  /** Cluster runtimes by name, read at scrape time for the `envoy_cluster_*` families. */
  readonly clusters?: () => Iterable<readonly [string, ClusterStatsSource]>;
  readonly telemetry?: TelemetryCounters;
  readonly now?: () => number;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly requests = new Family('istio_requests_total', 'Requests processed by the proxy', 'counter');
  private readonly duration = new Family('istio_request_duration_milliseconds', 'Request duration', 'histogram', DURATION_BUCKETS);
  private readonly requestBytes = new Family('istio_request_bytes', 'Request body sizes', 'histogram', BYTES_BUCKETS);
  private readonly responseBytes = new Family('istio_response_bytes', 'Response body sizes', 'histogram', BYTES_BUCKETS);
  private readonly tcpSent = new Family('istio_tcp_sent_bytes_total', 'Bytes sent during response in a TCP connection', 'counter');
  private readonly tcpReceived = new Family('istio_tcp_received_bytes_total', 'Bytes received during request in a TCP connection', 'counter');
  private readonly tcpOpened = new Family('istio_tcp_connections_opened_total', 'TCP connections opened', 'counter');
  private readonly tcpClosed = new Family('istio_tcp_connections_closed_total', 'TCP connections closed', 'counter');
  private readonly denials = new Family('trellis_authorization_denials_total', 'Requests or connections denied by rbac (HTTP), network_rbac (TCP) or jwt_authn; shadow="true": a shadow rule would have denied (not enforced)', 'counter');
  private readonly retryReasons = new Family('trellis_upstream_retries_total', 'Upstream retries by cause', 'counter');
  private readonly timeouts = new Family('trellis_upstream_timeouts_total', 'Upstream requests that hit a timeout, by kind (route or per_try)', 'counter');
  private readonly onRequest = (m: unknown) => { if ((m as RequestEvent).instance === this.instance) this.request(m as RequestEvent); };
  private readonly onTcp = (m: unknown) => { if ((m as TcpEvent).instance === this.instance) this.tcp(m as TcpEvent); };
  /** RBAC evaluations (helper authz/events.ts): enforced denials and shadow denials. */
  private readonly onAuthz = (m: unknown) => {
    const e = m as AuthzEvent;
    if (e.instance !== this.instance || e.result !== 'denied') return;
    const filter = e.protocol === 'tcp' ? 'network_rbac' : 'rbac';
    this.denials.add(`${e.reporter}\x1f${filter}\x1f${e.policy}\x1f${e.shadow}`, () => ({ reporter: e.reporter, filter, policy: e.policy ?? 'none', reason: 'rbac_access_denied', shadow: String(e.shadow) }), 1);
  };
  /** Requests jwt_authn refused (jwt/events.ts): the reason is Envoy's status text (a small fixed set). */
  private readonly onJwt = (m: unknown) => {
    const e = m as JwtDenialEvent;
    if (e.instance !== this.instance) return;
    const reporter = e.direction === 'outbound' ? 'source' : 'destination';
    this.denials.add(`${reporter}\x1fjwt_authn\x1f${e.status}`, () => ({ reporter, filter: 'jwt_authn', policy: 'none', reason: e.status, shadow: 'false' }), 1);
  };
  private readonly onRetry = (m: unknown) => {
    const e = m as RetryEvent;
    if (e.instance === this.instance) this.retryReasons.add(`${e.cluster}\x1f${e.reason}`, () => ({ cluster_name: e.cluster, reason: e.reason }), 1);
  };
  private readonly onTimeout = (m: unknown) => {
    const e = m as TimeoutEvent;
    if (e.instance === this.instance) this.timeouts.add(`${e.cluster}\x1f${e.kind}`, () => ({ cluster_name: e.cluster, kind: e.kind }), 1);
  };
  private readonly instance: string;
  private readonly selfApp: { app: string; version: string };
  /** Outlier ejections seen at scrapes, per cluster, for clusters whose stats carry no `ejectionsTotal`. */
  private readonly seenEjections = new Map<string, { total: number; until: Map<string, number> }>();

  /** Counts the events of proxy `instance` only. */
  constructor(private readonly self: SelfIdentity, opts: ProxyMetricsOptions) {
    this.instance = opts.instance;
    this.selfApp = appAndVersion(self.labels);
    const families: object[] = [this.requests, this.duration, this.requestBytes, this.responseBytes, this.tcpSent, this.tcpReceived, this.tcpOpened, this.tcpClosed, this.denials, this.retryReasons, this.timeouts];
    const clusters = opts.clusters;
    if (clusters) {
      const now = opts.now ?? Date.now;
      const per = (pick: (s: ClusterStatsSource['stats']) => number) => function* (): Iterable<[Labels, number]> {
        for (const [name, rt] of clusters()) yield [{ cluster_name: name }, pick(rt.stats)];
      };
      families.push(
        new ScrapeFamily('envoy_cluster_upstream_rq_total', 'Upstream requests (Envoy cluster stat upstream_rq_total)', 'counter', per((s) => s.rqTotal)),
        new ScrapeFamily('envoy_cluster_upstream_rq_active', 'Upstream requests in flight', 'gauge', per((s) => s.rqActive)),
        new ScrapeFamily('envoy_cluster_upstream_rq_retry', 'Upstream request retries (Envoy cluster stat upstream_rq_retry)', 'counter', per((s) => s.retries)),
        new ScrapeFamily('envoy_cluster_upstream_rq_timeout', 'Upstream requests that timed out', 'counter', per((s) => s.rqTimeout)),
        new ScrapeFamily('envoy_cluster_upstream_rq_per_try_timeout', 'Upstream tries that hit the per-try timeout', 'counter', per((s) => s.perTryTimeout ?? 0)),
        new ScrapeFamily('envoy_cluster_upstream_rq_retry_success', 'Retried requests whose last answer was not retriable', 'counter', per((s) => s.retrySuccess ?? 0)),
        new ScrapeFamily('envoy_cluster_upstream_rq_retry_overflow', 'Retries not made: retry budget or max_retries circuit breaker', 'counter', per((s) => s.retryOverflow ?? 0)),
        new ScrapeFamily('envoy_cluster_upstream_cx_connect_fail', 'Upstream connection failures', 'counter', per((s) => s.cxConnectFail)),
        new ScrapeFamily('envoy_cluster_upstream_rq_pending_overflow', 'Requests refused by the circuit breaker (UO)', 'counter', per((s) => s.overflow)),
        new ScrapeFamily('envoy_cluster_outlier_detection_ejections_active', 'Hosts currently ejected by outlier detection', 'gauge', function* (): Iterable<[Labels, number]> {
          const t = now();
          for (const [name, rt] of clusters()) yield [{ cluster_name: name }, rt.hosts.all.reduce((n, h) => n + (h.ejectedUntil > t ? 1 : 0), 0)];
        }),
        new ScrapeFamily('envoy_cluster_outlier_detection_ejections_total', 'Outlier ejections since start', 'counter', () => this.ejectionsTotal(clusters(), now())),
        ...([
          ['ejections_enforced_consecutive_5xx', 'Ejections for consecutive 5xx', 'ejectionsConsecutive5xx'],
          ['ejections_enforced_consecutive_gateway_failure', 'Ejections for consecutive gateway failures', 'ejectionsConsecutiveGateway'],
          ['ejections_enforced_consecutive_local_origin_failure', 'Ejections for consecutive local-origin (connect) failures', 'ejectionsConsecutiveLocalOrigin'],
          ['ejections_overflow', 'Ejections not made because max_ejection_percent hosts were out', 'ejectionsOverflow'],
        ] as const).map(([name, help, key]) => new ScrapeFamily(`envoy_cluster_outlier_detection_${name}`, help, 'counter', function* (): Iterable<[Labels, number]> {
          for (const [n, rt] of clusters()) if (rt.outlier) yield [{ cluster_name: n }, rt.outlier.stats[key]];
        })),
      );
    }
    const tc = opts.telemetry;
    if (tc) {
      families.push(
        new ScrapeFamily('trellis_access_log_dropped_total', 'Access log lines dropped because the write buffer was full', 'counter', () => [[{}, tc.accessLogDropped()]]),
        new ScrapeFamily('trellis_tracing_spans_reported_total', 'Spans accepted by the Zipkin collector', 'counter', () => [[{}, tc.spansReported()]]),
        new ScrapeFamily('trellis_tracing_spans_dropped_total', 'Spans dropped (queue full or collector unreachable)', 'counter', () => [[{}, tc.spansDropped()]]),
      );
    }
    for (const f of families) this.registry.registerMetric(f as unknown as Parameters<Registry['registerMetric']>[0]);
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    diagnostics_channel.subscribe('trellis:proxy:request', this.onRequest);
    diagnostics_channel.subscribe('trellis:proxy:tcp', this.onTcp);
    diagnostics_channel.subscribe('trellis:proxy:authz', this.onAuthz);
    diagnostics_channel.subscribe('trellis:proxy:jwt_authn', this.onJwt);
    diagnostics_channel.subscribe('trellis:proxy:retry', this.onRetry);
    diagnostics_channel.subscribe('trellis:proxy:timeout', this.onTimeout);
  }

  close(): void {
    diagnostics_channel.unsubscribe('trellis:proxy:request', this.onRequest);
    diagnostics_channel.unsubscribe('trellis:proxy:tcp', this.onTcp);
    diagnostics_channel.unsubscribe('trellis:proxy:authz', this.onAuthz);
    diagnostics_channel.unsubscribe('trellis:proxy:jwt_authn', this.onJwt);
    diagnostics_channel.unsubscribe('trellis:proxy:retry', this.onRetry);
    diagnostics_channel.unsubscribe('trellis:proxy:timeout', this.onTimeout);
  }

  /**
   * `ejections_total`: the cluster's outlier detector's count (0 without outlier detection); for a source that
   * says nothing about a detector, each new ejection deadline seen on a host at a scrape counts once (an ejection
   * that starts and ends between two scrapes is then missed).
   */
  private *ejectionsTotal(clusters: Iterable<readonly [string, ClusterStatsSource]>, now: number): Iterable<[Labels, number]> {
    for (const [name, rt] of clusters) {
      if (rt.outlier !== undefined) { yield [{ cluster_name: name }, rt.outlier?.stats.ejectionsTotal ?? 0]; continue; }
      let seen = this.seenEjections.get(name);
      if (!seen) { seen = { total: 0, until: new Map() }; this.seenEjections.set(name, seen); }
      for (const h of rt.hosts.all) {
        if (h.ejectedUntil > now && seen.until.get(h.key) !== h.ejectedUntil) { seen.total += 1; seen.until.set(h.key, h.ejectedUntil); }
      }
      yield [{ cluster_name: name }, seen.total];
    }
  }

  private common(reporter: 'source' | 'destination', cluster: string, sourcePrincipal: string | null, destPrincipal: string | null, mtls: boolean, flags: string, destWorkload: string | null, destNs: string | null, destLabels: Readonly<Record<string, string>> | null = null): Labels {
    const svc = serviceOfCluster(cluster);
    const outbound = reporter === 'source';
    const peer = principalParts(outbound ? destPrincipal : sourcePrincipal);
    // This proxy's own app/version are the source's outbound and the destination's inbound; the peer's come from
    // endpoint metadata when the control plane sends it (outbound), and are unknown inbound (no peer metadata exchange).
    const dest = outbound ? appAndVersion(destLabels) : this.selfApp;
    return {
      reporter,
      source_workload: outbound ? this.self.workload : 'unknown',
      source_workload_namespace: outbound ? this.self.namespace : (peer?.ns ?? 'unknown'),
      source_principal: outbound ? (this.self.principal || 'unknown') : (sourcePrincipal ?? 'unknown'),
      source_app: outbound ? this.selfApp.app : 'unknown', source_version: outbound ? this.selfApp.version : 'unknown',
      destination_workload: outbound ? (destWorkload ?? 'unknown') : this.self.workload,
      destination_workload_namespace: outbound ? (destNs ?? peer?.ns ?? svc.namespace) : this.self.namespace,
      destination_principal: outbound ? (destPrincipal ?? 'unknown') : (this.self.principal || 'unknown'),
      destination_app: dest.app, destination_version: dest.version,
      destination_service: outbound ? svc.service : cluster || 'unknown',
      destination_service_name: outbound ? svc.name : cluster || 'unknown',
      destination_service_namespace: outbound ? svc.namespace : this.self.namespace,
      destination_cluster: 'unknown',
      response_flags: flags,
      connection_security_policy: reporter === 'destination' ? (mtls ? 'mutual_tls' : 'none') : 'unknown',
    };
  }

  private request(e: RequestEvent): void {
    const dl = e.destinationLabels ?? null;
    const dlKey = dl ? `${dl.app ?? ''}/${dl.version ?? ''}` : '';
    const key = `${e.reporter}\x1f${e.cluster}\x1f${e.sourcePrincipal}\x1f${e.destinationPrincipal}\x1f${e.mtls}\x1f${e.responseFlags}\x1f${e.destinationWorkload}\x1f${e.destinationWorkloadNamespace}\x1f${e.protocol}\x1f${e.responseCode}\x1f${e.grpcStatus}\x1f${dlKey}`;
    const labels = () => ({
      ...this.common(e.reporter, e.cluster, e.sourcePrincipal, e.destinationPrincipal, e.mtls, e.responseFlags, e.destinationWorkload, e.destinationWorkloadNamespace, dl),
      request_protocol: e.protocol,
      response_code: String(e.responseCode),
      grpc_response_status: e.grpcStatus ?? '',
    });
    this.requests.add(key, labels, 1);
    this.duration.add(key, labels, e.durationMs);
    this.requestBytes.add(key, labels, e.requestBytes);
    this.responseBytes.add(key, labels, e.responseBytes);
  }

  private tcp(e: TcpEvent): void {
    const key = `${e.reporter}\x1f${e.cluster}\x1f${e.sourcePrincipal}\x1f${e.destinationPrincipal}\x1f${e.mtls}\x1f${e.responseFlags}`;
    const labels = () => this.common(e.reporter, e.cluster, e.sourcePrincipal, e.destinationPrincipal, e.mtls, e.responseFlags, null, null);
    if (e.kind === 'open') this.tcpOpened.add(key, labels, 1);
    else if (e.kind === 'close') {
      this.tcpClosed.add(key, labels, 1);
      this.tcpSent.add(key, labels, e.receivedBytes);
      this.tcpReceived.add(key, labels, e.sentBytes);
    }
  }
}
