/**
 * What a layer sees: the downstream request/response, the connection it came on, and the decisions earlier
 * layers made. `Layer = next => handler` (DESIGN.md §6.4): each layer does one thing, then calls `next(ctx)`
 * or answers locally.
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import type { HeaderToAdd, HttpConnectionManager, Route, RouteConfig, VirtualHost } from '@trellis/api';
import type { ClusterRuntime } from '../cluster/cluster-manager.js';
import type { Host } from '../lb/hosts.js';

export interface ConnectionInfo {
  /** Which proxy instance accepted it (events carry it so several proxies can share a process, as in tests). */
  readonly instance: string;
  readonly direction: 'inbound' | 'outbound';
  readonly listener: string;
  readonly hcm: HttpConnectionManager;
  readonly sourceIp: string;
  readonly destIp: string;
  readonly destPort: number;
  /** The downstream peer's SPIFFE id after mTLS termination. */
  readonly peerPrincipal: string | null;
  readonly tls: boolean;
  /** TLS SNI the downstream sent (RBAC `requested_server_name`), when known. */
  readonly serverName?: string | null;
}

export type DownstreamRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type DownstreamResponse = http.ServerResponse | http2.Http2ServerResponse;

export interface HttpContext {
  readonly req: DownstreamRequest;
  readonly res: DownstreamResponse;
  readonly conn: ConnectionInfo;
  readonly startNs: bigint;
  readonly h2: boolean;
  method: string;
  authority: string;
  path: string;
  /** Request headers to send upstream: lowercase names, no hop-by-hop or pseudo headers, no host. */
  headers: Record<string, string | string[]>;
  routeConfig: RouteConfig | null;
  vhost: VirtualHost | null;
  route: Route | null;
  clusterName: string;
  cluster: ClusterRuntime | null;
  host: Host | null;
  /** Response header operations collected while routing, applied when the upstream answers. */
  responseHeadersToAdd: HeaderToAdd[];
  responseHeadersToRemove: string[];
  responseFlags: string;
  /** Envoy's %RESPONSE_CODE_DETAILS% for local replies that set it (RBAC: `rbac_access_denied_matched_policy[…]`). */
  responseCodeDetails?: string;
  upstreamPrincipal: string | null;
  requestBytes: number;
  responseBytes: number;
  grpcStatus: string | null;
  /**
   * Envoy's dynamic metadata: filter name → values a policy layer published for later layers and the access log
   * (jwt_authn puts the verified payload under `envoy.filters.http.jwt_authn` → `payload`). Absent until set.
   */
  metadata?: Record<string, Record<string, unknown>>;
  /** Tracing (http/layers/tracing.ts): this hop's span context, when the request is traced. */
  trace?: import('../telemetry/trace-context.js').SpanContext;
  /** Access log facts the upstream layer may fill: upstream call start / response head (hrtime), local address, failure. */
  upstreamStartNs?: bigint;
  upstreamHeadersNs?: bigint;
  upstreamLocalAddress?: string;
  upstreamTransportFailureReason?: string;
  /** Set for an HTTP/1.1 Upgrade request (WebSocket): the client socket and the bytes read past the head. */
  upgrade: { readonly socket: import('node:stream').Duplex; readonly head: Buffer; value: string } | null;
}

export type Handler = (ctx: HttpContext) => void;
export type Layer = (next: Handler) => Handler;

/** Composes layers outermost first. */
export function compose(layers: readonly Layer[], terminal: Handler): Handler {
  return layers.reduceRight<Handler>((next, layer) => layer(next), terminal);
}

/** Appends a response flag (Envoy's short codes, comma-separated). */
export function flag(ctx: HttpContext, f: string): void {
  ctx.responseFlags = ctx.responseFlags === '-' ? f : `${ctx.responseFlags},${f}`;
}

/** Answers locally (no upstream): used for 404/503/redirects/direct responses. */
export function localReply(ctx: HttpContext, status: number, body: string, headers: Record<string, string> = {}): void {
  const res = ctx.res;
  if (res.headersSent) {
    (res as http.ServerResponse).destroy?.();
    return;
  }
  const isGrpc = (ctx.headers['content-type'] as string | undefined)?.startsWith('application/grpc') ?? false;
  const out: Record<string, string> = { ...headers };
  if (isGrpc && status >= 400) {
    // gRPC clients read status from grpc-status; map like Envoy does.
    out['content-type'] = 'application/grpc';
    out['grpc-status'] = status === 404 ? '12' : status === 503 || status === 502 ? '14' : status === 504 ? '4' : status === 403 ? '7' : status === 401 ? '16' : '2';
    out['grpc-message'] = body.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c)); // gRPC's percent-encoding: only non-printables and '%'
    ctx.grpcStatus = out['grpc-status'];
    applyResponseHeaderOps(ctx, out);
    if (ctx.h2) {
      // headers, then trailers carrying the status (a trailers-only reply through the compat API would be
      // followed by an empty DATA frame and lose the status)
      res.addTrailers({ 'grpc-status': out['grpc-status'], 'grpc-message': out['grpc-message'] });
      delete out['grpc-status'];
      delete out['grpc-message'];
    }
    res.writeHead(200, out);
    res.end();
    return;
  }
  if (body && !out['content-type']) out['content-type'] = 'text/plain';
  out['content-length'] = String(Buffer.byteLength(body));
  applyResponseHeaderOps(ctx, out);
  res.writeHead(status, out);
  ctx.responseBytes += Buffer.byteLength(body);
  res.end(body);
}

/** Applies collected response header operations to an outgoing header object (mutates it). */
export function applyResponseHeaderOps(ctx: HttpContext, h: Record<string, string | string[] | number | undefined>): void {
  for (const name of ctx.responseHeadersToRemove) delete h[name];
  for (const op of ctx.responseHeadersToAdd) addHeader(h, op);
}

export function addHeader(h: Record<string, string | string[] | number | undefined>, op: HeaderToAdd): void {
  const cur = h[op.key];
  switch (op.action) {
    case 'APPEND_IF_EXISTS_OR_ADD':
      if (cur === undefined) h[op.key] = op.value;
      else h[op.key] = Array.isArray(cur) ? [...cur, op.value] : [String(cur), op.value];
      break;
    case 'ADD_IF_ABSENT':
      if (cur === undefined) h[op.key] = op.value;
      break;
    case 'OVERWRITE_IF_EXISTS_OR_ADD':
      h[op.key] = op.value;
      break;
    case 'OVERWRITE_IF_EXISTS':
      if (cur !== undefined) h[op.key] = op.value;
      break;
  }
}
