/**
 * The endpoint stage: circuit breaker, host pick (policy, priorities, ring hash key), the upstream call over a
 * pooled HTTP/1.1 connection (undici `dispatch`, the cheapest Node client: DESIGN.md §7) or a multiplexed HTTP/2
 * session (gRPC keeps trailers, grpc-status and deadlines end to end), the route timeout, retries on connect
 * failure for requests without a body, and outlier ejection. Local replies carry Envoy's response flags:
 * UO (overflow), UH (no healthy upstream), UF (connect failure), UT (timeout), UC (upstream reset), URX (retries exhausted).
 */
import type http2 from 'node:http2';
import type { Dispatcher } from 'undici';
import type { HashPolicy, RetryPolicy, UpstreamTls } from '@trellis/api';
import type { ClusterRuntime } from '../../cluster/cluster-manager.js';
import { fnv1a } from '../../lb/hash.js';
import { bindAddressFor, connectUpstream } from '../../upstream/connect.js';
import { type Host, hostKey } from '../../lb/hosts.js';
import { type HttpContext, type Layer, applyResponseHeaderOps, flag, localReply } from '../context.js';
import { forwardableResponseHeaders } from '../hop-by-hop.js';

export interface UpstreamOptions {
  readonly now: () => number;
}

type Outcome = { kind: 'response'; status: number } | { kind: 'connect_failure'; error: Error } | { kind: 'timeout' } | { kind: 'reset'; error: Error };

export function upstreamLayer(o: UpstreamOptions): Layer {
  return () => (ctx) => {
    const rt = ctx.cluster!;
    const cfg = rt.config;
    if (cfg.name === 'BlackHoleCluster') {
      flag(ctx, 'UH');
      localReply(ctx, 502, 'destination is not in the service registry (REGISTRY_ONLY)');
      return;
    }
    if (rt.stats.rqActive >= cfg.circuitBreakers.maxRequests) {
      rt.stats.overflow += 1;
      flag(ctx, 'UO');
      localReply(ctx, 503, 'upstream overflow');
      return;
    }
    const a = ctx.route!.action;
    const retry = (a.kind === 'route' ? a.retryPolicy : null) ?? ctx.vhost!.retryPolicy;
    const hasBody = requestHasBody(ctx);
    const maxAttempts = 1 + (retry && !hasBody && retriesOnConnectFailure(retry) ? Math.min(retry.numRetries, cfg.circuitBreakers.maxRetries) : 0);
    const hash = a.kind === 'route' ? requestHash(a.hashPolicy, ctx) : null;
    // Hosts already tried (retries only): allocated on the first retry, not per request.
    let tried: Set<string> | null = null;
    const timeoutMs = a.kind === 'route' ? (retry?.perTryTimeoutMs ?? a.timeoutMs) : 0;
    const cl = ctx.headers['content-length'];
    ctx.requestBytes = cl ? Number(cl) || 0 : 0;
    rt.stats.rqTotal += 1;
    rt.stats.rqActive += 1;
    let released = false;
    const release = () => { if (!released) { released = true; rt.stats.rqActive -= 1; } };
    ctx.res.once('close', release);

    const attempt = (n: number) => {
      const host = pickHost(rt, ctx, hash, tried, o.now());
      if (!host) {
        release();
        flag(ctx, 'UH');
        localReply(ctx, 503, 'no healthy upstream');
        return;
      }
      if (maxAttempts > 1) (tried ??= new Set<string>()).add(host.key);
      ctx.host = host;
      host.active += 1;
      const h2 = cfg.http2 || (cfg.useDownstreamProtocol && ctx.h2);
      const finish = (out: Outcome) => {
        host.active -= 1;
        host.total += 1;
        accountOutlier(rt, host, out, o.now());
        if (out.kind === 'connect_failure' && n + 1 < maxAttempts && !ctx.res.headersSent && !ctx.res.destroyed) {
          rt.stats.retries += 1;
          attempt(n + 1);
          return;
        }
        release();
        if (out.kind === 'response') return;
        // The client is gone: nothing to answer.
        if (ctx.res.destroyed || ctx.res.writableEnded) { rt.stats.rqError += 1; if (ctx.responseFlags === '-') flag(ctx, 'DC'); return; }
        rt.stats.rqError += 1;
        host.errors += 1;
        if (ctx.res.headersSent) {
          flag(ctx, 'UC');
          destroyDownstream(ctx);
          return;
        }
        if (out.kind === 'timeout') { rt.stats.rqTimeout += 1; flag(ctx, 'UT'); localReply(ctx, 504, 'upstream request timeout'); return; }
        if (out.kind === 'connect_failure') {
          rt.stats.cxConnectFail += 1;
          flag(ctx, n > 0 ? 'URX' : 'UF');
          localReply(ctx, 503, `upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: ${out.error.message}`);
          return;
        }
        flag(ctx, 'UC');
        localReply(ctx, 503, `upstream connect error or disconnect/reset before headers. reset reason: ${out.error.message}`);
      };
      const u = rt.upstream(host, h2);
      if (u === 'no_secret') { finish({ kind: 'connect_failure', error: new Error('TLS secrets not yet delivered by SDS') }); return; }
      const t = rt.tlsFor(host);
      ctx.upstreamPrincipal = t ? expectedPrincipal(t) : null;
      if (ctx.upgrade) { viaUpgrade(ctx, host, rt, finish); return; }
      if (u.kind === 'h1') viaH1(ctx, u.pool, host, hasBody && n === 0, timeoutMs, finish);
      else viaH2(ctx, u.h2.get(), !!t, hasBody && n === 0, timeoutMs, finish);
    };
    attempt(0);
  };
}

function pickHost(rt: ClusterRuntime, ctx: HttpContext, hash: number | null, tried: Set<string> | null, now: number): Host | null {
  if (rt.config.type === 'ORIGINAL_DST') {
    const address = { address: ctx.conn.destIp, port: ctx.conn.destPort };
    return { address, key: hostKey(address), weight: 1, healthy: true, metadata: {}, locality: { region: '', zone: '', subZone: '' }, priority: 0, active: 0, ejectedUntil: 0, consecutive5xx: 0, total: 0, errors: 0 };
  }
  const first = rt.hosts.pick({ hash, now });
  if (!first || !tried || !tried.has(first.key)) return first;
  // On a retry prefer another host when one is available.
  for (let i = 0; i < 4; i++) { const h = rt.hosts.pick({ hash: null, now }); if (h && !tried.has(h.key)) return h; }
  return first;
}

/** The peer principal a TLS config expects (its exact URI SAN), computed once per (frozen) config. */
const principals = new WeakMap<UpstreamTls, string>();
function expectedPrincipal(t: UpstreamTls): string {
  let p = principals.get(t);
  if (p === undefined) {
    p = t.matchSubjectAltNames.find((m) => m.type === 'URI' && m.match.kind === 'exact')?.match.value ?? 'unknown';
    principals.set(t, p);
  }
  return p;
}

function retriesOnConnectFailure(r: RetryPolicy): boolean {
  return r.retryOn.some((x) => x === 'connect-failure' || x === 'reset' || x === '5xx' || x === 'gateway-error' || x === 'unavailable' || x === 'retriable-status-codes' || x === 'cancelled');
}

function requestHasBody(ctx: HttpContext): boolean {
  if (ctx.h2) return !(ctx.req as http2.Http2ServerRequest).stream.endAfterHeaders;
  const h = ctx.req.headers;
  return (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
}

function requestHash(policies: readonly HashPolicy[], ctx: HttpContext): number | null {
  let hash: number | null = null;
  for (const p of policies) {
    let key: string | undefined;
    if (p.kind === 'header') { const v = ctx.headers[p.name]; key = Array.isArray(v) ? v.join(',') : v; }
    else if (p.kind === 'source_ip') key = ctx.conn.sourceIp;
    else if (p.kind === 'cookie') key = cookie(ctx.headers.cookie, p.name);
    else if (p.kind === 'query') { const q = ctx.path.indexOf('?'); key = q < 0 ? undefined : new URLSearchParams(ctx.path.slice(q + 1)).get(p.name) ?? undefined; }
    if (key === undefined) continue;
    const h = fnv1a(key);
    hash = hash === null ? h : (((hash << 1) | (hash >>> 31)) ^ h) >>> 0;
    if (p.terminal) break;
  }
  return hash;
}

function cookie(header: string | string[] | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of (Array.isArray(header) ? header.join(';') : header).split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function accountOutlier(rt: ClusterRuntime, host: Host, out: Outcome, now: number): void {
  const od = rt.config.outlierDetection;
  if (!od) return;
  const bad = out.kind !== 'response' || out.status >= 500;
  if (!bad) { host.consecutive5xx = 0; return; }
  host.consecutive5xx += 1;
  if (host.consecutive5xx < od.consecutive5xx) return;
  const all = rt.hosts.all;
  const ejected = all.filter((h) => h.ejectedUntil > now).length;
  if (all.length && ((ejected + 1) * 100) / all.length > Math.max(od.maxEjectionPercent, 100 / all.length)) return;
  host.ejectedUntil = now + od.baseEjectionTimeMs;
  host.consecutive5xx = 0;
}

function destroyDownstream(ctx: HttpContext): void {
  if (ctx.h2) (ctx.req as http2.Http2ServerRequest).stream.close(2 /* INTERNAL_ERROR */);
  else ctx.res.destroy();
}

function isConnectError(err: Error & { code?: string }): boolean {
  return ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'TRELLIS_ERR_PEER_IDENTITY', 'UND_ERR_SOCKET', 'EPIPE'].includes(err.code ?? '')
    || /certificate|handshake|ssl|tls/i.test(err.message);
}

function viaH1(ctx: HttpContext, pool: Dispatcher, _host: Host, withBody: boolean, timeoutMs: number, finish: (o: Outcome) => void): void {
  let controller: Dispatcher.DispatchController | null = null;
  let started = false;
  let timedOut = false;
  let settled = false;
  const settle = (o: Outcome) => { if (!settled) { settled = true; clearTimeout(timer); ctx.res.off('close', onClose); finish(o); } };
  const timer = timeoutMs > 0 ? setTimeout(() => { timedOut = true; controller?.abort(new Error('timeout')); if (!controller) settle({ kind: 'timeout' }); }, timeoutMs) : undefined;
  const onClose = () => { if (!ctx.res.writableFinished) controller?.abort(new Error('downstream closed')); };
  ctx.res.once('close', onClose);
  const headers: Record<string, string | string[]> = { ...ctx.headers, host: ctx.authority };
  pool.dispatch({ path: ctx.path, method: ctx.method, headers, body: withBody ? (ctx.req as NodeJS.ReadableStream as never) : null, headersTimeout: 0, bodyTimeout: 0 }, {
    onRequestStart(c) { controller = c; if (timedOut) c.abort(new Error('timeout')); },
    onResponseStart(c, status, raw) {
      if (status < 200) return;
      if (settled || ctx.res.headersSent) { c.abort(new Error('response already answered')); return; }
      started = true;
      const out = forwardableResponseHeaders(raw as Record<string, string | string[] | undefined>);
      applyResponseHeaderOps(ctx, out);
      const gs = raw['grpc-status'];
      if (gs !== undefined) ctx.grpcStatus = String(gs);
      // A Content-Length response from an HTTP/1.1 upstream cannot carry trailers.
      writeResponseHead(ctx, status, out, raw['content-length'] !== undefined && raw['transfer-encoding'] === undefined);
    },
    onResponseData(c, chunk) {
      ctx.responseBytes += chunk.length;
      if (!(ctx.res as NodeJS.WritableStream).write(chunk)) {
        c.pause();
        ctx.res.once('drain', () => c.resume());
      }
    },
    onResponseEnd(_c, trailers) {
      if (ctx.h2 && trailers && Object.keys(trailers).length) {
        const t = forwardableResponseHeaders(trailers as Record<string, string | string[] | undefined>);
        if (t['grpc-status'] !== undefined) ctx.grpcStatus = String(t['grpc-status']);
        ctx.res.addTrailers(t as Record<string, string>);
      }
      ctx.res.end();
      settle({ kind: 'response', status: ctx.res.statusCode });
    },
    onResponseError(_c, err) {
      if (timedOut) settle({ kind: 'timeout' });
      else if (!started && isConnectError(err)) settle({ kind: 'connect_failure', error: err });
      else settle({ kind: 'reset', error: err });
    },
  });
}

function viaH2(ctx: HttpContext, session: http2.ClientHttp2Session, tls: boolean, withBody: boolean, timeoutMs: number, finish: (o: Outcome) => void): void {
  let settled = false;
  let started = false;
  const settle = (o: Outcome) => { if (!settled) { settled = true; clearTimeout(timer); finish(o); } };
  let stream: http2.ClientHttp2Stream;
  try {
    stream = session.request({ ...ctx.headers, ':method': ctx.method, ':path': ctx.path, ':authority': ctx.authority, ':scheme': tls ? 'https' : 'http' }, { endStream: !withBody });
  } catch (err) {
    settle({ kind: 'connect_failure', error: err as Error });
    return;
  }
  const timer = timeoutMs > 0 ? setTimeout(() => { stream.close(8 /* CANCEL */); settle({ kind: 'timeout' }); }, timeoutMs) : undefined;
  if (withBody) ctx.req.pipe(stream);
  ctx.res.once('close', () => { if (!ctx.res.writableFinished && !stream.closed) stream.close(8); });
  stream.on('response', (raw) => {
    // A stream closed by us (downstream gone, timeout) may still deliver queued events: ignore them.
    if (settled || ctx.res.headersSent) return;
    const status = Number(raw[':status']);
    if (status < 200) return;
    started = true;
    const out = forwardableResponseHeaders(raw as Record<string, string | string[] | undefined>);
    applyResponseHeaderOps(ctx, out);
    if (raw['grpc-status'] !== undefined) ctx.grpcStatus = String(raw['grpc-status']);
    writeResponseHead(ctx, status, out);
    if (early) { const held = early; early = null; for (const c of held) forward(c); }
  });
  // Node's HTTP/2 client emits 'response' on the next tick but DATA read in the same chunk synchronously, so the
  // body of a small response can come before its head: hold it until the head is written (writing it first would
  // send an implicit 200 head, and the real head would find the response started; the request then ended as UC).
  let early: Buffer[] | null = null;
  const forward = (chunk: Buffer) => {
    ctx.responseBytes += chunk.length;
    if (!(ctx.res as NodeJS.WritableStream).write(chunk)) {
      stream.pause();
      ctx.res.once('drain', () => stream.resume());
    }
  };
  stream.on('data', (chunk: Buffer) => {
    if (settled) return;
    if (!started) { (early ??= []).push(chunk); return; }
    forward(chunk);
  });
  stream.on('trailers', (t) => {
    if (t['grpc-status'] !== undefined) ctx.grpcStatus = String(t['grpc-status']);
    if (ctx.h2) ctx.res.addTrailers(forwardableResponseHeaders(t as Record<string, string | string[] | undefined>) as Record<string, string>);
  });
  stream.on('end', () => {
    if (settled) return;
    if (!started) { settle({ kind: 'reset', error: new Error('upstream stream ended without headers') }); return; }
    ctx.res.end();
    settle({ kind: 'response', status: ctx.res.statusCode });
  });
  stream.on('error', (err) => {
    if (!started && (isConnectError(err) || (err as { code?: string }).code === 'ERR_HTTP2_STREAM_CANCEL' || (err as { code?: string }).code === 'ERR_HTTP2_GOAWAY_SESSION')) settle({ kind: 'connect_failure', error: err });
    else settle({ kind: 'reset', error: err });
  });
  stream.on('close', () => {
    if (!settled) settle(started ? { kind: 'reset', error: new Error(`upstream stream closed (code ${stream.rstCode})`) } : { kind: 'connect_failure', error: new Error(`upstream stream closed before headers (code ${stream.rstCode})`) });
  });
}

/**
 * Writes the response head. A gRPC "trailers-only" response (grpc-status in the headers) is re-sent to an HTTP/2
 * downstream as headers plus trailers: Node's compat response always ends with a DATA frame, after which a
 * client would find no status.
 */
function writeResponseHead(ctx: HttpContext, status: number, out: Record<string, string | string[]>, noTrailers = false): void {
  if (ctx.h2 && noTrailers && out['grpc-status'] === undefined && status !== 204 && status !== 205 && status !== 304 && ctx.method !== 'HEAD'
    && !String(out['content-type'] ?? '').startsWith('application/grpc')) {
    // Respond on the stream itself: the compat response's writeHead always asks for trailers (`waitForTrailers`),
    // which sends END_STREAM as a separate empty DATA frame after the body, one more TLS record and write per
    // response and one more read (and a WINDOW_UPDATE) at the peer. Without it, the last DATA frame carries
    // END_STREAM. Status, headersSent, 'finish' and 'close' of the compat response stay as they were.
    const res = ctx.res as http2.Http2ServerResponse;
    const stream = res.stream;
    if (stream && !stream.headersSent && !stream.destroyed) {
      res.statusCode = status;
      const h: http2.OutgoingHttpHeaders = { ...out, ':status': status };
      try {
        stream.respond(h);
        return;
      } catch {
        // invalid header for HTTP/2: let the compat path answer as before
      }
    }
  }
  if (ctx.h2 && out['grpc-status'] !== undefined) {
    const trailers: Record<string, string> = { 'grpc-status': String(out['grpc-status']) };
    if (out['grpc-message'] !== undefined) trailers['grpc-message'] = String(out['grpc-message']);
    delete out['grpc-status'];
    delete out['grpc-message'];
    ctx.res.addTrailers(trailers);
  }
  ctx.res.writeHead(status, out);
}

/**
 * HTTP/1.1 Upgrade (WebSocket) passthrough: a dedicated upstream connection (TLS with ALPN http/1.1 when the
 * cluster uses TLS), the request head re-sent with `connection: upgrade`, then bytes spliced both ways until either
 * side closes. The upstream's answer (101 or a refusal) reaches the client unchanged.
 */
function viaUpgrade(ctx: HttpContext, host: Host, rt: ClusterRuntime, finish: (o: Outcome) => void): void {
  const up = ctx.upgrade!;
  const t = rt.config.type === 'ORIGINAL_DST' ? null : rt.tlsFor(host);
  const c = t ? rt.tlsContextFor(t) : null;
  if (t && !c) { finish({ kind: 'connect_failure', error: new Error('TLS secrets not yet delivered by SDS') }); return; }
  connectUpstream(host.address.address, host.address.port, rt.config.connectTimeoutMs, t && c ? { config: t, ctx: c, alpn: t.alpn.includes('istio') || t.alpn.includes('istio-peer-exchange') ? ['istio-http/1.1', 'http/1.1'] : ['http/1.1'] } : null, (err, s) => {
    if (err || !s) { finish({ kind: 'connect_failure', error: err ?? new Error('connect failed') }); return; }
    const lines = [`${ctx.method} ${ctx.path} HTTP/1.1`, `host: ${ctx.authority}`, 'connection: upgrade', `upgrade: ${up.value}`];
    for (const [k, v] of Object.entries(ctx.headers)) for (const x of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${x}`);
    s.write(lines.join('\r\n') + '\r\n\r\n');
    if (up.head.length) s.write(up.head);
    ctx.res.statusCode = 101;
    s.once('data', (first: Buffer) => {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(first.subarray(0, 16).toString('latin1'));
      if (m) ctx.res.statusCode = Number(m[1]);
    });
    s.pipe(up.socket as NodeJS.WritableStream);
    (up.socket as NodeJS.ReadableStream).pipe(s);
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      ctx.responseBytes = s.bytesRead;
      s.destroy();
      up.socket.destroy();
      finish({ kind: 'response', status: ctx.res.statusCode });
      ctx.res.emit('close');
    };
    s.on('close', end);
    s.on('error', end);
    up.socket.on('close', end);
  }, bindAddressFor(host.address.address, rt.config.bindAddresses));
}

