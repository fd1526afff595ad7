/**
 * Fault injection (`envoy.filters.http.fault`), after routing as in Envoy: the most specific HTTPFault (route, then
 * virtual host, then the HCM filter's own config) decides. Istio's VirtualService `fault` lands on the route, whose
 * match already carries the request conditions (`end-user: jason`).
 *
 * - delay: the request is held for the fixed delay (nothing is read or sent meanwhile), flag DI, then continues;
 *   if the client goes away first the timer is cleared and nothing goes upstream.
 * - abort: answered locally, flag FI: HTTP status `http_status` with body `fault filter abort`; `grpc_status` on a
 *   gRPC request gives a trailers-only reply (HTTP 200, `grpc-status`, `grpc-message: fault filter abort`), and on
 *   any other request HTTP 200 (Envoy's behaviour).
 * - both: the delay first, then the abort (each drawn on its own percentage).
 * - header-controlled faults (`header_delay` / `header_abort`): `x-envoy-fault-delay-request` (ms),
 *   `x-envoy-fault-abort-request` (HTTP status), `x-envoy-fault-abort-grpc-request` (gRPC status), and the
 *   `…-percentage` headers, capped at the configured percentage.
 *
 * Percentages are drawn from an injectable random source. With no fault filter in the HCM this layer is a
 * pass-through.
 */
import http2 from 'node:http2';
import { EXT_TYPE_URL, type FractionalPercent, type HeaderMatch, type HttpConnectionManager, type HttpFault, fractionHit, matchString } from '@trellis/api';
import { type Handler, type HttpContext, type Layer, applyResponseHeaderOps, flag, localReply } from '../context.js';

export interface FaultLayerOptions {
  /** Uniform in [0, 1); Math.random by default (tests inject a sequence). */
  readonly random?: () => number;
  /** Timer used for delays (tests may inject one); setTimeout by default. */
  readonly setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

export const FAULT_ABORT_BODY = 'fault filter abort';

const defaultTimer = (fn: () => void, ms: number) => {
  const t = setTimeout(fn, ms);
  return { cancel: () => clearTimeout(t) };
};

export function faultLayer(o: FaultLayerOptions = {}): Layer {
  const random = o.random ?? Math.random;
  const setTimer = o.setTimer ?? defaultTimer;
  // Per HCM (frozen, replaced on every LDS change): the name of its fault filter entry and its own config.
  const filters = new WeakMap<HttpConnectionManager, { name: string; config: HttpFault | null } | null>();
  let active = 0;

  return (next) => (ctx) => {
    const hcm = ctx.conn.hcm;
    let f = filters.get(hcm);
    if (f === undefined) {
      const e = hcm.httpFilters.find((x) => x.type === EXT_TYPE_URL.fault);
      f = e ? { name: e.name, config: isFault(e.config) ? e.config : null } : null;
      filters.set(hcm, f);
    }
    if (f === null) { next(ctx); return; }
    const fromRoute = ctx.route?.typedPerFilterConfig[f.name] ?? ctx.vhost?.typedPerFilterConfig[f.name];
    const cfg = isFault(fromRoute) ? fromRoute : f.config;
    if (!cfg || (!cfg.delay && !cfg.abort) || !applies(cfg, ctx)) { next(ctx); return; }
    if (cfg.maxActiveFaults !== null && active >= cfg.maxActiveFaults) { next(ctx); return; }

    const delayMs = delayFor(cfg, ctx, random);
    let counted = false;
    const count = () => {
      if (counted) return;
      counted = true;
      active += 1;
      ctx.res.once('close', () => { active -= 1; });
    };
    if (delayMs !== null) {
      count();
      flag(ctx, 'DI');
      const onClose = () => timer.cancel();
      const timer = setTimer(() => {
        ctx.res.off('close', onClose);
        if (ctx.res.destroyed || ctx.res.writableEnded) return;
        abortOrContinue(cfg, ctx, random, next, count);
      }, delayMs);
      ctx.res.once('close', onClose);
      return;
    }
    abortOrContinue(cfg, ctx, random, next, count);
  };
}

function isFault(v: unknown): v is HttpFault {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'http_fault';
}

function header(ctx: HttpContext, name: string): string | undefined {
  if (name === ':method') return ctx.method;
  if (name === ':authority' || name === 'host') return ctx.authority;
  if (name === ':path') return ctx.path;
  const v = ctx.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function headerMatches(h: HeaderMatch, value: string | undefined): boolean {
  let ok: boolean;
  if (h.match === null) ok = (value !== undefined) === h.present;
  else ok = value !== undefined && matchString(h.match, value);
  return h.invert ? !ok : ok;
}

/** The filter's own conditions: header matchers and `upstream_cluster` (a weighted route matches any of its clusters). */
function applies(cfg: HttpFault, ctx: HttpContext): boolean {
  for (const h of cfg.headers) if (!headerMatches(h, header(ctx, h.name))) return false;
  if (cfg.upstreamCluster !== null) {
    const a = ctx.route?.action;
    if (!a || a.kind !== 'route') return false;
    if (a.cluster !== null ? a.cluster !== cfg.upstreamCluster : !a.weightedClusters?.some((c) => c.name === cfg.upstreamCluster)) return false;
  }
  return true;
}

/** A header-given percentage numerator, capped at the configured one (Envoy). */
function percentageOf(configured: FractionalPercent, ctx: HttpContext, headerName: string): FractionalPercent {
  const v = header(ctx, headerName);
  if (v === undefined) return configured;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) return configured;
  return { numerator: Math.min(n, configured.numerator), denominator: configured.denominator };
}

function delayFor(cfg: HttpFault, ctx: HttpContext, random: () => number): number | null {
  const d = cfg.delay;
  if (!d) return null;
  let ms = d.fixedDelayMs;
  let pct = d.percentage;
  if (ms === null) {
    const v = Number(header(ctx, 'x-envoy-fault-delay-request'));
    if (!Number.isFinite(v) || v <= 0) return null;
    ms = v;
    pct = percentageOf(pct, ctx, 'x-envoy-fault-delay-request-percentage');
  }
  if (ms <= 0 || !fractionHit(pct, random)) return null;
  return ms;
}

function abortOrContinue(cfg: HttpFault, ctx: HttpContext, random: () => number, next: Handler, count: () => void): void {
  const a = cfg.abort;
  if (!a) { next(ctx); return; }
  let httpStatus = a.httpStatus;
  let grpcStatus = a.grpcStatus;
  let pct = a.percentage;
  if (a.headerAbort) {
    const hs = Number(header(ctx, 'x-envoy-fault-abort-request'));
    const gs = Number(header(ctx, 'x-envoy-fault-abort-grpc-request'));
    httpStatus = Number.isInteger(hs) && hs >= 200 && hs < 600 ? hs : null;
    grpcStatus = httpStatus === null && Number.isInteger(gs) && gs >= 0 ? gs : null;
    if (httpStatus === null && grpcStatus === null) { next(ctx); return; }
    pct = percentageOf(pct, ctx, 'x-envoy-fault-abort-request-percentage');
  }
  if (!fractionHit(pct, random)) { next(ctx); return; }
  count();
  flag(ctx, 'FI');
  if (httpStatus !== null) { localReply(ctx, httpStatus, FAULT_ABORT_BODY); return; }
  grpcAbort(ctx, grpcStatus!);
}

/** A gRPC abort: trailers-only (one HEADERS frame with END_STREAM) on HTTP/2; HTTP 200 with the body otherwise. */
function grpcAbort(ctx: HttpContext, code: number): void {
  const isGrpc = (ctx.headers['content-type'] as string | undefined)?.startsWith('application/grpc') ?? false;
  if (!isGrpc) { localReply(ctx, 200, FAULT_ABORT_BODY); return; }
  ctx.grpcStatus = String(code);
  const out: Record<string, string | string[]> = { 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeURIComponent(FAULT_ABORT_BODY) };
  applyResponseHeaderOps(ctx, out);
  const res = ctx.res;
  if (ctx.h2) {
    const stream = (res as http2.Http2ServerResponse).stream;
    if (stream && !stream.headersSent && !stream.destroyed) {
      res.statusCode = 200;
      try {
        stream.respond({ ...out, [http2.constants.HTTP2_HEADER_STATUS]: 200 }, { endStream: true });
        return;
      } catch {
        // fall through to the compat response
      }
    }
  }
  res.writeHead(200, out);
  res.end();
}
