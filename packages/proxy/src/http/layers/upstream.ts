/**
 * The endpoint stage: circuit breaker, host pick (policy, priorities, ring hash key), then the upstream request in
 * attempts (http/upstream-attempt.ts: pooled HTTP/1.1 or multiplexed HTTP/2) under the route's timeout and retry
 * policy (docs/proxy.md "Timeouts and retries"):
 *
 * - the route timeout (0 = none) bounds all attempts and back-offs together, until the response has been received;
 *   the per-try timeout bounds each attempt until its response head is forwarded; the per-try idle timeout bounds
 *   the silence within an attempt;
 * - a failed attempt is retried when a `retry_on` condition matches (http/retry/retry-policy.ts), retries remain,
 *   the body can be replayed (http/retry/request-body.ts) and the cluster's retry budget allows
 *   (http/retry/retry-budget.ts), after a jittered exponential back-off (http/retry/backoff.ts);
 * - a response is forwarded only once it is decided it will not be retried: a retried one is discarded.
 *
 * Local replies carry Envoy's response flags: UO (overflow: max_requests, max_pending_requests, retry budget),
 * UH (no healthy upstream), UF (connect failure),
 * UT (timeout), UC (upstream reset), URX (retry limit exceeded), and outlier ejection is accounted per attempt.
 */
import type http2 from 'node:http2';
import type { HashPolicy, UpstreamTls } from '@trellis/api';
import type { ClusterRuntime } from '../../cluster/cluster-manager.js';
import { fnv1a } from '../../lb/hash.js';
import { bindAddressFor, connectUpstream } from '../../upstream/connect.js';
import { type Host, hostKey } from '../../lb/hosts.js';
import { type HttpContext, type Layer, flag, localReply } from '../context.js';
import { backoffMs } from '../retry/backoff.js';
import { DEFAULT_BODY_LIMIT, RequestBody } from '../retry/request-body.js';
import { releaseRetry, tryAcquireRetry } from '../retry/retry-budget.js';
import { publishRetry, publishTimeout } from '../retry/retry-event.js';
import { type CompiledRetry, type FailureKind, compileRetry, requestMayRetry, retryReasonForFailure, retryReasonForResponse } from '../retry/retry-policy.js';
import { type Attempt, type AttemptEnd, type RawHeaders, attemptH1, attemptH2, destroyDownstream } from '../upstream-attempt.js';

export interface UpstreamOptions {
  readonly now: () => number;
  /** For the back-off jitter (tests inject one). */
  readonly random?: () => number;
  /** Largest request body held for a retry (bytes); Envoy's per_connection_buffer_limit_bytes default, 1 MiB. */
  readonly bodyLimit?: number;
}

export function upstreamLayer(o: UpstreamOptions): Layer {
  const random = o.random ?? Math.random;
  const bodyLimit = o.bodyLimit ?? DEFAULT_BODY_LIMIT;
  return () => (ctx) => {
    const rt = ctx.cluster!;
    const cfg = rt.config;
    if (cfg.name === 'BlackHoleCluster') {
      flag(ctx, 'UH');
      localReply(ctx, 502, 'destination is not in the service registry (REGISTRY_ONLY)');
      return;
    }
    const stats = rt.stats;
    if (stats.rqActive >= cfg.circuitBreakers.maxRequests) {
      stats.overflow += 1;
      flag(ctx, 'UO');
      localReply(ctx, 503, 'upstream overflow');
      return;
    }
    const a = ctx.route!.action;
    let retry: CompiledRetry | null = compileRetry((a.kind === 'route' ? a.retryPolicy : null) ?? ctx.vhost!.retryPolicy);
    if (retry && (ctx.upgrade || (retry.policy.retriableRequestHeaders.length > 0 && !requestMayRetry(retry, requestHeader(ctx))))) retry = null;
    const hash = a.kind === 'route' ? requestHash(a.hashPolicy, ctx) : null;
    const routeTimeoutMs = a.kind === 'route' ? a.timeoutMs : 0;
    const perTryMs = retry?.policy.perTryTimeoutMs ?? 0;
    const idleMs = retry?.policy.perTryIdleTimeoutMs ?? 0;
    const hasBody = !ctx.upgrade && requestHasBody(ctx);
    // Only a request that may be retried pays for a replayable body.
    const body = hasBody && retry ? new RequestBody(ctx.req, bodyLimit) : null;
    const cl = ctx.headers['content-length'];
    ctx.requestBytes = cl ? Number(cl) || 0 : 0;
    stats.rqTotal += 1;
    stats.rqActive += 1;

    // Hosts already tried: the first one's key, then a set allocated on the first retry (not per request).
    let firstHost: string | null = null;
    let tried: Set<string> | null = null;
    let n = 0; // attempts started
    let current: Attempt | null = null;
    let perTry: NodeJS.Timeout | undefined;
    let backoff: NodeJS.Timeout | undefined;
    let slot = false; // a retry-budget slot taken for the next attempt (each attempt then holds its own until it ends)
    let done = false;
    const finishRequest = () => {
      if (done) return;
      done = true;
      clearTimeout(global);
      clearTimeout(perTry);
      clearTimeout(backoff);
      if (slot) { slot = false; releaseRetry(stats); }
      stats.rqActive -= 1;
    };
    const global = routeTimeoutMs > 0 ? setTimeout(() => {
      if (done) return;
      stats.rqTimeout += 1;
      publishTimeout(ctx, 'route');
      const c = current;
      const sent = ctx.res.headersSent;
      finishRequest();
      c?.abort('timeout');
      stats.rqError += 1;
      flag(ctx, 'UT');
      if (sent) destroyDownstream(ctx);
      else localReply(ctx, 504, 'upstream request timeout');
    }, routeTimeoutMs) : undefined;
    ctx.res.once('close', () => {
      if (done) return;
      const c = current;
      finishRequest();
      c?.abort('downstream');
      stats.rqError += 1;
      if (ctx.responseFlags === '-') flag(ctx, 'DC');
    });

    /** Decides a retry for the failed attempt `n`: 'retry' (slot taken, counted), or why not. */
    const decide = (reason: string, status: number): 'retry' | 'limit' | 'overflow' | 'no' => {
      if (n - 1 >= retry!.policy.numRetries) return 'limit';
      if (body && !body.replayable) return 'no';
      if (!tryAcquireRetry(stats, cfg.circuitBreakers.maxRetries)) { stats.retryOverflow += 1; return 'overflow'; }
      slot = true;
      stats.retries += 1;
      publishRetry(ctx, n, reason, status);
      return 'retry';
    };
    const noRetryFlag = (d: 'limit' | 'overflow' | 'no') => { if (d === 'limit') flag(ctx, 'URX'); else if (d === 'overflow') flag(ctx, 'UO'); };

    const onHead = (status: number, headers: RawHeaders): boolean => {
      if (done) return false;
      const reason = retry ? retryReasonForResponse(retry, status, headers) : null;
      if (reason !== null) {
        const d = decide(reason, status);
        if (d === 'retry') return false;
        noRetryFlag(d);
      } else if (n > 1) stats.retrySuccess += 1;
      clearTimeout(perTry);
      body?.dropCopy(); // decided: this request will not be sent again
      return true;
    };

    const finishAttempt = (host: Host, end: AttemptEnd, ownSlot: boolean) => {
      host.active -= 1;
      host.total += 1;
      accountOutlier(rt, host, end, o.now());
      current = null;
      clearTimeout(perTry);
      body?.detach();
      if (ownSlot) releaseRetry(stats);
      if (done) return;
      if (end.kind === 'response') { finishRequest(); return; }
      if (end.kind === 'discarded') { scheduleRetry(); return; }
      if (end.kind === 'aborted' && end.why === 'downstream') return; // handled by the close listener
      if (end.kind === 'aborted' && end.why === 'per_try_timeout') { stats.perTryTimeout += 1; publishTimeout(ctx, 'per_try'); }
      host.errors += 1;
      const afterHead = end.kind !== 'connect_failure' && end.afterHead;
      if (afterHead || ctx.res.headersSent) {
        finishRequest();
        stats.rqError += 1;
        flag(ctx, end.kind === 'aborted' ? 'UT' : 'UC');
        destroyDownstream(ctx);
        return;
      }
      if (end.kind === 'connect_failure') stats.cxConnectFail += 1;
      const kind: FailureKind = end.kind === 'connect_failure' ? 'connect_failure' : end.kind === 'aborted' ? 'per_try_timeout' : end.refused ? 'refused' : 'reset';
      const reason = retry ? retryReasonForFailure(retry, kind) : null;
      const d = reason !== null ? decide(reason, 0) : 'no';
      if (d === 'retry') { scheduleRetry(); return; }
      finishRequest();
      stats.rqError += 1;
      if (end.kind === 'aborted') {
        flag(ctx, 'UT');
        noRetryFlag(d);
        localReply(ctx, 504, 'upstream request timeout');
      } else if (end.kind === 'connect_failure') {
        flag(ctx, 'UF');
        noRetryFlag(d);
        ctx.upstreamTransportFailureReason = end.error.message; // access log %UPSTREAM_TRANSPORT_FAILURE_REASON%
        localReply(ctx, 503, `upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: ${end.error.message}`);
      } else {
        flag(ctx, 'UC');
        noRetryFlag(d);
        localReply(ctx, 503, `upstream connect error or disconnect/reset before headers. reset reason: ${end.refused ? 'remote refused stream reset' : end.error.message}`);
      }
    };

    const scheduleRetry = () => {
      backoff = setTimeout(() => {
        backoff = undefined;
        if (done) return;
        if (body && !body.replayable) {
          // (guard: the body is not read between attempts, so it cannot outgrow the buffer during a back-off)
          finishRequest();
          stats.rqError += 1;
          flag(ctx, 'UC');
          localReply(ctx, 503, 'upstream reset before headers; the request body exceeded the retry buffer');
          return;
        }
        attempt();
      }, backoffMs(n, retry!.policy.backOff.baseIntervalMs, retry!.policy.backOff.maxIntervalMs, random));
    };

    const attempt = () => {
      n += 1;
      const ownSlot = slot;
      slot = false;
      if (n === 2 && firstHost !== null) tried = new Set([firstHost]);
      const host = pickHost(rt, ctx, hash, tried, retry?.previousHosts ? retry.policy.hostSelectionRetryMaxAttempts : 0, o.now());
      if (!host) {
        if (ownSlot) releaseRetry(stats);
        finishRequest();
        flag(ctx, 'UH');
        localReply(ctx, 503, 'no healthy upstream');
        return;
      }
      if (tried) tried.add(host.key);
      else if (retry) firstHost = host.key;
      ctx.host = host;
      ctx.upstreamStartNs = process.hrtime.bigint(); // access log %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% (telemetry)
      const u = rt.upstream(host, cfg.http2 || (cfg.useDownstreamProtocol && ctx.h2));
      if (u !== 'no_secret' && rt.pendingOverflow(u)) {
        // circuit breaker max_pending_requests: this try would queue behind that many others for a connection
        if (ownSlot) releaseRetry(stats);
        finishRequest();
        stats.overflow += 1;
        flag(ctx, 'UO');
        localReply(ctx, 503, 'upstream overflow');
        return;
      }
      host.active += 1;
      let ended = false;
      const finish = (end: AttemptEnd) => { ended = true; finishAttempt(host, end, ownSlot); };
      if (u === 'no_secret') { finish({ kind: 'connect_failure', error: new Error('TLS secrets not yet delivered by SDS') }); return; }
      const t = rt.tlsFor(host);
      ctx.upstreamPrincipal = t ? expectedPrincipal(t) : null;
      if (ctx.upgrade) { viaUpgrade(ctx, host, rt, finish); return; }
      // Istio turns on include_request_attempt_count: the upstream sees `x-envoy-attempt-count` (1, 2, …).
      const headers: Record<string, string | string[]> = u.kind === 'h1'
        ? (retry ? { ...ctx.headers, host: ctx.authority, 'x-envoy-attempt-count': String(n) } : { ...ctx.headers, host: ctx.authority })
        : (retry ? { ...ctx.headers, 'x-envoy-attempt-count': String(n) } : ctx.headers);
      const b = body ? body.open() : hasBody ? ctx.req : null;
      const spec = { ctx, headers, body: b, idleTimeoutMs: idleMs, onHead, finish };
      const at = u.kind === 'h1' ? attemptH1(u.pool, spec) : attemptH2(u.h2.get(), !!t, spec);
      // (an attempt can end inside its own start, on a synchronous failure)
      if (ended) return;
      current = at;
      if (perTryMs > 0) perTry = setTimeout(() => at.abort('per_try_timeout'), perTryMs);
    };
    // A body of known length that fits the buffer is read whole first: every try then sends a Buffer.
    const declared = body ? Number(ctx.req.headers['content-length'] ?? NaN) : NaN;
    if (body && declared >= 0 && declared <= bodyLimit) body.prefetch(() => { if (!done) attempt(); });
    else attempt();
  };
}

function requestHasBody(ctx: HttpContext): boolean {
  if (ctx.h2) return !(ctx.req as http2.Http2ServerRequest).stream.endAfterHeaders;
  const h = ctx.req.headers;
  return (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
}

function requestHeader(ctx: HttpContext): (name: string) => string | undefined {
  return (name) => {
    if (name === ':method') return ctx.method;
    if (name === ':path') return ctx.path;
    if (name === ':authority') return ctx.authority;
    const v = ctx.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  };
}

/**
 * Picks the host of an attempt. On a retry with the previous_hosts predicate, host selection is redone up to
 * `host_selection_retry_max_attempts` times while it lands on a host already tried; then the last pick is used.
 */
function pickHost(rt: ClusterRuntime, ctx: HttpContext, hash: number | null, tried: Set<string> | null, reselect: number, now: number): Host | null {
  if (rt.config.type === 'ORIGINAL_DST') {
    const address = { address: ctx.conn.destIp, port: ctx.conn.destPort };
    return { address, key: hostKey(address), weight: 1, healthy: true, metadata: {}, locality: { region: '', zone: '', subZone: '' }, priority: 0, active: 0, ejectedUntil: 0, consecutive5xx: 0, total: 0, errors: 0 };
  }
  let h = rt.hosts.pick({ hash, now });
  if (!tried) return h;
  for (let i = 0; h && tried.has(h.key) && i < reselect; i++) h = rt.hosts.pick({ hash: null, now }) ?? h;
  return h;
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

/** Outlier detection sees every attempt except one the client abandoned; a timed-out attempt is a local-origin timeout. */
function accountOutlier(rt: ClusterRuntime, host: Host, out: AttemptEnd, now: number): void {
  if (out.kind === 'aborted' && out.why === 'downstream') return;
  rt.recordResult(host, out.kind === 'response' || out.kind === 'discarded' ? { kind: 'response', status: out.status } : out.kind === 'aborted' ? { kind: 'timeout' } : { kind: out.kind }, now);
}

/**
 * HTTP/1.1 Upgrade (WebSocket) passthrough: a dedicated upstream connection (TLS with ALPN http/1.1 when the
 * cluster uses TLS), the request head re-sent with `connection: upgrade`, then bytes spliced both ways until either
 * side closes. The upstream's answer (101 or a refusal) reaches the client unchanged.
 */
function viaUpgrade(ctx: HttpContext, host: Host, rt: ClusterRuntime, finish: (o: AttemptEnd) => void): void {
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

