/**
 * Publishes one RequestEvent when the downstream response finishes or the stream closes. The access-log facts are
 * a closure (`detail`) evaluated only by a subscriber that logs this request, so requests on HCMs without an
 * access log pay for one closure, not for the facts.
 */
import type http from 'node:http';
import type { TLSSocket } from 'node:tls';
import { type AccessLogFacts, requestChannel } from '../../telemetry/events.js';
import type { HttpContext, Layer } from '../context.js';

/** Envoy's %RESPONSE_CODE_DETAILS% for the flags Trellis sets (a response from the upstream is `via_upstream`). */
const DETAILS: Readonly<Record<string, string>> = Object.freeze({
  NR: 'route_not_found', UH: 'no_healthy_upstream', UO: 'upstream_reset_before_response_started{overflow}',
  UF: 'upstream_reset_before_response_started{connection_failure}', UT: 'response_timeout', URX: 'upstream_reset_before_response_started{retries_exhausted}',
  UC: 'upstream_reset_after_response_started{remote_reset}', DC: 'downstream_remote_disconnect', DPE: 'http1.codec_error', RL: 'request_rate_limited',
  UAEX: 'ext_authz_denied', FI: 'fault_filter_abort', DI: 'delayed_by_fault', RBAC: 'rbac_access_denied',
});

/**
 * Istio's endpoint metadata `istio.workload` is `name;namespace;canonical-name;canonical-revision;cluster`; a
 * Trellis control plane may instead send `{ workload, namespace }`.
 */
const NO_PEER = Object.freeze({ workload: null, namespace: null, labels: null });

function peerWorkload(md: Record<string, unknown> | undefined): { workload: string | null; namespace: string | null; labels: Record<string, string> | null } {
  if (!md) return NO_PEER;
  const w = md.workload;
  if (typeof w === 'string' && w.includes(';')) {
    const [name, ns, app, version] = w.split(';');
    return { workload: name || null, namespace: ns || null, labels: { ...(app ? { app } : {}), ...(version ? { version } : {}) } };
  }
  return { workload: typeof w === 'string' ? w : null, namespace: typeof md.namespace === 'string' ? md.namespace : null, labels: null };
}

function address(ip: string | undefined, port: number | undefined): string {
  if (!ip) return '-';
  const host = ip.includes(':') ? `[${ip}]` : ip;
  return port === undefined ? host : `${host}:${port}`;
}

function firstHeader(v: string | string[] | number | undefined): string | null {
  if (v === undefined) return null;
  return Array.isArray(v) ? (v[0] ?? null) : String(v);
}

function facts(ctx: HttpContext, originalPath: string, durationMs: number): AccessLogFacts {
  const sock = ctx.req.socket as (TLSSocket & { servername?: string | false }) | undefined;
  const us = ctx.upstreamStartNs !== undefined && ctx.upstreamHeadersNs !== undefined ? Number(ctx.upstreamHeadersNs - ctx.upstreamStartNs) / 1e6 : null;
  const flags = ctx.responseFlags;
  const details = ctx.responseCodeDetails ?? (flags === '-' ? (ctx.host ? 'via_upstream' : null) : (DETAILS[flags.split(',')[0]] ?? null));
  return {
    startTimeMs: Date.now() - durationMs,
    protocol: ctx.h2 ? 'HTTP/2' : `HTTP/${(ctx.req as http.IncomingMessage).httpVersion}`,
    method: ctx.method,
    path: originalPath,
    authority: ctx.authority || null,
    responseCode: ctx.res.statusCode,
    responseCodeDetails: details,
    responseFlags: flags,
    connectionTerminationDetails: null,
    bytesReceived: ctx.requestBytes,
    bytesSent: ctx.responseBytes,
    durationMs,
    upstreamServiceTimeMs: us,
    upstreamHost: ctx.host?.key ?? null,
    upstreamCluster: ctx.clusterName,
    upstreamLocalAddress: ctx.upstreamLocalAddress ?? null,
    upstreamTransportFailureReason: ctx.upstreamTransportFailureReason ?? null,
    downstreamLocalAddress: address(ctx.conn.destIp, ctx.conn.destPort),
    downstreamRemoteAddress: address(ctx.conn.sourceIp, sock?.remotePort),
    downstreamPeerPrincipal: ctx.conn.peerPrincipal,
    upstreamPeerPrincipal: ctx.upstreamPrincipal,
    requestedServerName: ctx.conn.serverName ?? (typeof sock?.servername === 'string' ? sock.servername : null),
    routeName: ctx.route?.name || null,
    traceId: ctx.trace?.traceId || null,
    requestHeader: (name) => firstHeader(ctx.headers[name] ?? ctx.req.headers[name]),
    responseHeader: (name) => firstHeader(ctx.res.getHeader(name)),
    accessLog: ctx.conn.hcm.accessLog ?? [],
  };
}

export const telemetryLayer: Layer = (next) => (ctx) => {
  let done = false;
  // The path as the client sent it (a route may rewrite ctx.path): %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%.
  const originalPath = ctx.path;
  const publish = () => {
    if (done) return;
    done = true;
    if (!ctx.res.writableFinished && ctx.responseFlags === '-' && !ctx.upgrade) ctx.responseFlags = 'DC';
    if (!requestChannel.hasSubscribers) return;
    const pw = peerWorkload(ctx.host?.metadata.istio as Record<string, unknown> | undefined);
    const durationMs = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
    requestChannel.publish({
      instance: ctx.conn.instance,
      reporter: ctx.conn.direction === 'outbound' ? 'source' : 'destination',
      protocol: (ctx.headers['content-type'] as string | undefined)?.startsWith('application/grpc') ? 'grpc' : 'http',
      cluster: ctx.clusterName,
      responseCode: ctx.res.statusCode,
      grpcStatus: ctx.grpcStatus,
      responseFlags: ctx.responseFlags,
      durationMs,
      requestBytes: ctx.requestBytes,
      responseBytes: ctx.responseBytes,
      sourcePrincipal: ctx.conn.peerPrincipal,
      destinationPrincipal: ctx.upstreamPrincipal,
      mtls: ctx.conn.direction === 'inbound' ? ctx.conn.peerPrincipal !== null : ctx.upstreamPrincipal !== null,
      destinationWorkload: pw.workload,
      destinationWorkloadNamespace: pw.namespace,
      destinationLabels: pw.labels,
      accessLog: ctx.conn.hcm.accessLog,
      detail: () => facts(ctx, originalPath, durationMs),
    });
  };
  // One listener: a response emits 'close' after 'finish' (node:http on the next tick, HTTP/2 when its stream
  // closes). A hand-made upgrade response (see http-servers.ts) emits no 'close' after a local reply: it keeps 'finish'.
  if (ctx.upgrade) ctx.res.once('finish', publish);
  ctx.res.on('close', publish);
  next(ctx);
};
