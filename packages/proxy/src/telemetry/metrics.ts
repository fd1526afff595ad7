/**
 * Istio's standard metrics (names and labels as Istio's telemetry v2), fed by the data path's diagnostics-channel
 * events. Source/destination facts this proxy knows about itself come from its node identity; the peer's come
 * from its SPIFFE id (`spiffe://<td>/ns/<ns>/sa/<sa>`) and endpoint metadata.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RequestEvent, TcpEvent } from './events.js';

export interface SelfIdentity {
  readonly workload: string;
  readonly namespace: string;
  readonly principal: string;
  readonly trustDomain: string;
}

const REQUEST_LABELS = [
  'reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version', 'destination_workload',
  'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version', 'destination_service', 'destination_service_name',
  'destination_service_namespace', 'destination_cluster', 'request_protocol', 'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy',
] as const;
const TCP_LABELS = REQUEST_LABELS.filter((l) => l !== 'response_code' && l !== 'grpc_response_status' && l !== 'request_protocol');

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

export class ProxyMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<string>;
  private readonly duration: Histogram<string>;
  private readonly requestBytes: Histogram<string>;
  private readonly responseBytes: Histogram<string>;
  private readonly tcpSent: Counter<string>;
  private readonly tcpReceived: Counter<string>;
  private readonly tcpOpened: Counter<string>;
  private readonly tcpClosed: Counter<string>;
  private readonly onRequest = (m: unknown) => this.request(m as RequestEvent);
  private readonly onTcp = (m: unknown) => this.tcp(m as TcpEvent);

  constructor(private readonly self: SelfIdentity, opts: { defaultMetrics?: boolean } = {}) {
    const r = [this.registry];
    this.requests = new Counter({ name: 'istio_requests_total', help: 'Requests processed by the proxy', labelNames: REQUEST_LABELS, registers: r });
    this.duration = new Histogram({ name: 'istio_request_duration_milliseconds', help: 'Request duration', labelNames: REQUEST_LABELS, buckets: [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000], registers: r });
    this.requestBytes = new Histogram({ name: 'istio_request_bytes', help: 'Request body sizes', labelNames: REQUEST_LABELS, buckets: [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000], registers: r });
    this.responseBytes = new Histogram({ name: 'istio_response_bytes', help: 'Response body sizes', labelNames: REQUEST_LABELS, buckets: [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000], registers: r });
    this.tcpSent = new Counter({ name: 'istio_tcp_sent_bytes_total', help: 'Bytes sent during response in a TCP connection', labelNames: TCP_LABELS, registers: r });
    this.tcpReceived = new Counter({ name: 'istio_tcp_received_bytes_total', help: 'Bytes received during request in a TCP connection', labelNames: TCP_LABELS, registers: r });
    this.tcpOpened = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'TCP connections opened', labelNames: TCP_LABELS, registers: r });
    this.tcpClosed = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'TCP connections closed', labelNames: TCP_LABELS, registers: r });
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    diagnostics_channel.subscribe('trellis:proxy:request', this.onRequest);
    diagnostics_channel.subscribe('trellis:proxy:tcp', this.onTcp);
  }

  close(): void {
    diagnostics_channel.unsubscribe('trellis:proxy:request', this.onRequest);
    diagnostics_channel.unsubscribe('trellis:proxy:tcp', this.onTcp);
  }

  private common(reporter: 'source' | 'destination', cluster: string, sourcePrincipal: string | null, destPrincipal: string | null, mtls: boolean, flags: string, destWorkload: string | null, destNs: string | null): Labels {
    const svc = serviceOfCluster(cluster);
    const outbound = reporter === 'source';
    const peer = principalParts(outbound ? destPrincipal : sourcePrincipal);
    return {
      reporter,
      source_workload: outbound ? this.self.workload : 'unknown',
      source_workload_namespace: outbound ? this.self.namespace : (peer?.ns ?? 'unknown'),
      source_principal: outbound ? (this.self.principal || 'unknown') : (sourcePrincipal ?? 'unknown'),
      source_app: 'unknown', source_version: 'unknown',
      destination_workload: outbound ? (destWorkload ?? 'unknown') : this.self.workload,
      destination_workload_namespace: outbound ? (destNs ?? peer?.ns ?? svc.namespace) : this.self.namespace,
      destination_principal: outbound ? (destPrincipal ?? 'unknown') : (this.self.principal || 'unknown'),
      destination_app: 'unknown', destination_version: 'unknown',
      destination_service: outbound ? svc.service : cluster || 'unknown',
      destination_service_name: outbound ? svc.name : cluster || 'unknown',
      destination_service_namespace: outbound ? svc.namespace : this.self.namespace,
      destination_cluster: 'unknown',
      response_flags: flags,
      connection_security_policy: reporter === 'destination' ? (mtls ? 'mutual_tls' : 'none') : 'unknown',
    };
  }

  private request(e: RequestEvent): void {
    const labels = {
      ...this.common(e.reporter, e.cluster, e.sourcePrincipal, e.destinationPrincipal, e.mtls, e.responseFlags, e.destinationWorkload, e.destinationWorkloadNamespace),
      request_protocol: e.protocol,
      response_code: String(e.responseCode),
      grpc_response_status: e.grpcStatus ?? '',
    };
    this.requests.inc(labels);
    this.duration.observe(labels, e.durationMs);
    this.requestBytes.observe(labels, e.requestBytes);
    this.responseBytes.observe(labels, e.responseBytes);
  }

  private tcp(e: TcpEvent): void {
    const labels = this.common(e.reporter, e.cluster, e.sourcePrincipal, e.destinationPrincipal, e.mtls, e.responseFlags, null, null);
    if (e.kind === 'open') this.tcpOpened.inc(labels);
    else if (e.kind === 'close') {
      this.tcpClosed.inc(labels);
      this.tcpSent.inc(labels, e.receivedBytes);
      this.tcpReceived.inc(labels, e.sentBytes);
    }
  }
}
