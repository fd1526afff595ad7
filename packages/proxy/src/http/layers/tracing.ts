/**
 * Tracing: continues the caller's trace (W3C `traceparent`/`tracestate`, B3 single or multi-header) or starts
 * one, makes this hop's span (CLIENT on outbound listeners, SERVER on inbound, a child of the caller's span),
 * rewrites the propagation headers so the upstream sees this span as its parent, and reports the finished span to
 * Zipkin when the trace is sampled. `x-request-id` (set by the request-id layer) is kept and tagged.
 *
 * Acts only when the HCM carries `tracing` or the proxy was started with `--zipkin` (see telemetry/tracer.ts);
 * otherwise a pass-through.
 */
import type { Tracer } from '../../telemetry/tracer.js';
import { type SpanContext, extract, inject } from '../../telemetry/trace-context.js';
import type { ZipkinSpan } from '../../telemetry/zipkin.js';
import type { HttpContext, Layer } from '../context.js';

/** Istio's operation name: `<host>:<port>/*` of the destination service. */
function spanName(ctx: HttpContext): string {
  const parts = ctx.clusterName.split('|');
  const port = parts[1] ?? '';
  if (parts[0] === 'outbound' && parts[3]) return `${parts[3]}:${port}/*`;
  const host = ctx.authority.replace(/:\d+$/, '') || 'unknown';
  return port ? `${host}:${port}/*` : `${host}/*`;
}

function remote(addr: string | undefined, port?: number): ZipkinSpan['remoteEndpoint'] | undefined {
  if (!addr) return undefined;
  return addr.includes(':') ? { ipv6: addr, ...(port ? { port } : {}) } : { ipv4: addr, ...(port ? { port } : {}) };
}

function finishedSpan(tracer: Tracer, ctx: HttpContext, span: SpanContext, startUs: number): ZipkinSpan {
  const outbound = ctx.conn.direction === 'outbound';
  const status = ctx.res.statusCode;
  const rid = ctx.headers['x-request-id'];
  const tags: Record<string, string> = {
    component: 'proxy',
    'http.method': ctx.method,
    'http.url': `${ctx.conn.tls ? 'https' : 'http'}://${ctx.authority}${ctx.path}`,
    'http.protocol': ctx.h2 ? 'HTTP/2' : `HTTP/${ctx.req.httpVersion}`,
    'http.status_code': String(status),
    response_flags: ctx.responseFlags,
    upstream_cluster: ctx.clusterName || '-',
    'upstream_cluster.name': ctx.clusterName || '-',
    node_id: tracer.o.nodeId,
    'istio.namespace': tracer.o.namespace,
    'istio.canonical_service': tracer.o.serviceName.slice(0, tracer.o.serviceName.lastIndexOf('.')) || tracer.o.serviceName,
    request_size: String(ctx.requestBytes),
    response_size: String(ctx.responseBytes),
    'peer.address': ctx.conn.sourceIp,
  };
  if (typeof rid === 'string') tags['guid:x-request-id'] = rid;
  const ua = ctx.headers['user-agent'];
  if (typeof ua === 'string') tags.user_agent = ua;
  if (status >= 500 || ctx.responseFlags !== '-') tags.error = 'true';
  const durationUs = Math.max(1, Math.round(Number(process.hrtime.bigint() - ctx.startNs) / 1000));
  const host = ctx.host?.address;
  return {
    traceId: span.traceId,
    id: span.spanId,
    ...(span.parentId ? { parentId: span.parentId } : {}),
    name: spanName(ctx),
    kind: outbound ? 'CLIENT' : 'SERVER',
    timestamp: startUs,
    duration: durationUs,
    localEndpoint: tracer.localEndpoint(),
    ...(outbound ? (host ? { remoteEndpoint: remote(host.address, host.port) } : {}) : { remoteEndpoint: remote(ctx.conn.sourceIp) }),
    tags,
    ...(span.debug ? { debug: true } : {}),
  };
}

export function tracingLayer(tracer: Tracer): Layer {
  return (next) => (ctx) => {
    const d = tracer.decide(ctx.conn.hcm);
    if (!d) { next(ctx); return; }
    const incoming = extract(ctx.headers);
    const sampled = incoming?.sampled ?? tracer.sample(d.sampling);
    const span: SpanContext = {
      traceId: incoming?.traceId || tracer.ids.traceId(d.traceId128),
      spanId: tracer.ids.spanId(),
      parentId: incoming?.spanId || null,
      sampled,
      debug: incoming?.debug ?? false,
      tracestate: incoming?.tracestate ?? null,
      singleB3: incoming?.singleB3 ?? false,
    };
    ctx.trace = span;
    inject(ctx.headers, span);
    const reporter = d.reporter;
    if (sampled && reporter) {
      const startUs = Date.now() * 1000;
      let done = false;
      const report = () => { if (!done) { done = true; reporter.report(finishedSpan(tracer, ctx, span, startUs)); } };
      if (ctx.upgrade) ctx.res.once('finish', report);
      ctx.res.once('close', report);
    }
    next(ctx);
  };
}
