/**
 * CORS (`envoy.filters.http.cors`) with Envoy's semantics, from the most specific CorsPolicy (route, then virtual
 * host; Istio's VirtualService `corsPolicy` is on the route):
 *
 * - no `Origin`, or the policy is not enabled for this request (`filter_enabled`): nothing happens;
 * - an origin no `allow_origin_string_match` entry matches: no CORS headers at all (the browser refuses); a
 *   preflight with such an origin goes upstream, or is answered 200 without CORS headers when
 *   `forward_not_matching_preflights` is false (Istio `unmatchedPreflights: IGNORE`);
 * - a preflight (OPTIONS + Origin + Access-Control-Request-Method) with an allowed origin is answered here, 200, with
 *   `access-control-allow-origin` (the request's origin), `-allow-methods`, `-allow-headers`, `-max-age`,
 *   `-allow-credentials: true` when set (each only when configured);
 * - any other request with an allowed origin goes upstream; its response gets `access-control-allow-origin`,
 *   `-allow-credentials` and `-expose-headers` (these overwrite what the upstream sent).
 *
 * With no CORS filter in the HCM this layer is a pass-through.
 */
import { type CorsPolicy, EXT_TYPE_URL, type HeaderToAdd, type HttpConnectionManager, fractionHit, matchString } from '@trellis/api';
import { type HttpContext, type Layer, applyResponseHeaderOps } from '../context.js';

export interface CorsLayerOptions {
  /** Uniform in [0, 1), for `filter_enabled` fractions; Math.random by default. */
  readonly random?: () => number;
}

export function corsLayer(o: CorsLayerOptions = {}): Layer {
  const random = o.random ?? Math.random;
  // Per HCM: the name of its CORS filter entry (per-route policies are keyed by it), or null.
  const names = new WeakMap<HttpConnectionManager, string | null>();

  return (next) => (ctx) => {
    const hcm = ctx.conn.hcm;
    let name = names.get(hcm);
    if (name === undefined) {
      name = hcm.httpFilters.find((x) => x.type === EXT_TYPE_URL.cors || x.type === EXT_TYPE_URL.corsPolicy)?.name ?? null;
      names.set(hcm, name);
    }
    if (name === null) { next(ctx); return; }
    const origin = ctx.headers.origin;
    if (typeof origin !== 'string' || origin === '') { next(ctx); return; }
    const fromRoute = ctx.route?.typedPerFilterConfig[name];
    const policy = isPolicy(fromRoute) ? fromRoute : (isPolicy(ctx.vhost?.typedPerFilterConfig[name]) ? ctx.vhost!.typedPerFilterConfig[name] as CorsPolicy : null);
    if (!policy || !fractionHit(policy.filterEnabled, random)) { next(ctx); return; }
    const preflight = ctx.method === 'OPTIONS' && typeof ctx.headers['access-control-request-method'] === 'string' && ctx.headers['access-control-request-method'] !== '';
    if (!originAllowed(policy, origin)) {
      if (preflight && !policy.forwardNotMatchingPreflights) { reply(ctx, {}); return; }
      next(ctx);
      return;
    }
    if (preflight) {
      const h: Record<string, string> = { 'access-control-allow-origin': origin };
      if (policy.allowCredentials) h['access-control-allow-credentials'] = 'true';
      if (policy.allowMethods) h['access-control-allow-methods'] = policy.allowMethods;
      if (policy.allowHeaders) h['access-control-allow-headers'] = policy.allowHeaders;
      if (policy.maxAge) h['access-control-max-age'] = policy.maxAge;
      if (policy.allowPrivateNetworkAccess && ctx.headers['access-control-request-private-network'] === 'true') h['access-control-allow-private-network'] = 'true';
      reply(ctx, h);
      return;
    }
    const add: HeaderToAdd[] = [{ key: 'access-control-allow-origin', value: origin, action: 'OVERWRITE_IF_EXISTS_OR_ADD' }];
    if (policy.allowCredentials) add.push({ key: 'access-control-allow-credentials', value: 'true', action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    if (policy.exposeHeaders) add.push({ key: 'access-control-expose-headers', value: policy.exposeHeaders, action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    ctx.responseHeadersToAdd.push(...add);
    next(ctx);
  };
}

function isPolicy(v: unknown): v is CorsPolicy {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'cors_policy';
}

export function originAllowed(p: CorsPolicy, origin: string): boolean {
  for (const m of p.allowOrigins) if (matchString(m, origin)) return true;
  return false;
}

/** The local preflight answer: 200, no body (Envoy's `cors_response`). */
function reply(ctx: HttpContext, h: Record<string, string>): void {
  const out: Record<string, string | string[]> = { ...h, 'content-length': '0' };
  applyResponseHeaderOps(ctx, out);
  ctx.res.writeHead(200, out);
  ctx.res.end();
}
