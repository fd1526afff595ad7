/**
 * Diagnostics channels the data path publishes on (hot paths don't log: metrics and access logs subscribe).
 * A message is published once per finished request / closed TCP connection.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import type { AccessLogConfig } from '@trellis/api';

/**
 * What an access log line can say about one request or TCP connection (Envoy's command operators). Built only
 * when a subscriber asks for it (`RequestEvent.detail()`), so requests pay nothing when no access log is on.
 */
export interface AccessLogFacts {
  /** Wall-clock start, ms since the epoch. */
  readonly startTimeMs: number;
  /** `HTTP/1.1` or `HTTP/2`; null for TCP. */
  readonly protocol: string | null;
  readonly method: string | null;
  /** The original request path (before any rewrite), with the query. */
  readonly path: string | null;
  readonly authority: string | null;
  /** 0 for TCP. */
  readonly responseCode: number;
  readonly responseCodeDetails: string | null;
  readonly responseFlags: string;
  readonly connectionTerminationDetails: string | null;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly durationMs: number;
  /** Upstream request start → its response headers, when an upstream answered and the layer measured it. */
  readonly upstreamServiceTimeMs: number | null;
  readonly upstreamHost: string | null;
  readonly upstreamCluster: string;
  readonly upstreamLocalAddress: string | null;
  readonly upstreamTransportFailureReason: string | null;
  /** The connection's original destination (`ip:port`). */
  readonly downstreamLocalAddress: string;
  readonly downstreamRemoteAddress: string;
  /** SPIFFE id of the downstream peer (mTLS), or null. */
  readonly downstreamPeerPrincipal: string | null;
  /** SPIFFE id expected of the upstream peer, or null. */
  readonly upstreamPeerPrincipal: string | null;
  /** SNI the downstream sent, or null. */
  readonly requestedServerName: string | null;
  readonly routeName: string | null;
  readonly traceId: string | null;
  /** A request / response header by lowercase name (first value), or null. */
  readonly requestHeader: (name: string) => string | null;
  readonly responseHeader: (name: string) => string | null;
  /** The access logs the HCM / tcp_proxy asked for. */
  readonly accessLog: readonly AccessLogConfig[];
}

export interface RequestEvent {
  /** The publishing proxy instance. */
  readonly instance: string;
  readonly reporter: 'source' | 'destination';
  readonly protocol: 'http' | 'grpc';
  readonly cluster: string;
  readonly responseCode: number;
  readonly grpcStatus: string | null;
  readonly responseFlags: string;
  readonly durationMs: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** SPIFFE id of the downstream peer (inbound mTLS), or null. */
  readonly sourcePrincipal: string | null;
  /** SPIFFE id of the upstream peer (outbound mTLS), or null. */
  readonly destinationPrincipal: string | null;
  readonly mtls: boolean;
  readonly destinationWorkload: string | null;
  readonly destinationWorkloadNamespace: string | null;
  /** Labels of the upstream endpoint (`istio` metadata `labels`, else none): destination_app/version outbound. */
  readonly destinationLabels?: Readonly<Record<string, string>> | null;
  /** The HCM's access logs (a reference, no copy), so a logger knows whether to ask for `detail`. */
  readonly accessLog?: readonly AccessLogConfig[];
  /** Access-log facts; call synchronously inside the subscriber (it reads the live request). */
  readonly detail?: () => AccessLogFacts;
}

export interface TcpEvent {
  readonly instance: string;
  readonly kind: 'open' | 'close' | 'bytes';
  readonly reporter: 'source' | 'destination';
  readonly cluster: string;
  readonly sentBytes: number;
  readonly receivedBytes: number;
  readonly sourcePrincipal: string | null;
  readonly destinationPrincipal: string | null;
  readonly mtls: boolean;
  readonly responseFlags: string;
  /** Access-log facts, on `close`. */
  readonly detail?: AccessLogFacts;
}

/** One upstream attempt the router retried (published by the upstream layer per retry). */
export interface RetryEvent {
  readonly instance: string;
  readonly cluster: string;
  /** Why: `5xx`, `gateway-error`, `reset`, `connect-failure`, `retriable-status-codes`, … */
  readonly reason: string;
}

/** A request or try that hit its timeout. */
export interface TimeoutEvent {
  readonly instance: string;
  readonly cluster: string;
  /** `route` (the whole request) or `per_try`. */
  readonly kind: 'route' | 'per_try';
}

export const requestChannel = diagnostics_channel.channel('trellis:proxy:request');
export const tcpChannel = diagnostics_channel.channel('trellis:proxy:tcp');
/** RetryEvent. */
export const retryChannel = diagnostics_channel.channel('trellis:proxy:retry');
/** TimeoutEvent. */
export const timeoutChannel = diagnostics_channel.channel('trellis:proxy:timeout');
