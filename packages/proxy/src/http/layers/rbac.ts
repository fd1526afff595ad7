/**
 * HTTP RBAC (`envoy.filters.http.rbac` in the HCM's http_filters): every RBAC filter of the HCM runs in order on
 * the request as the earlier layers left it (normalized path, jwt_authn's verified payload in `ctx.metadata`).
 * The first denial answers 403 `RBAC: access denied` (Envoy's body) with response code details
 * `rbac_access_denied_matched_policy[<policy>|none]`; Envoy sets no response flag for it and neither does this.
 * Shadow rules and LOG rules never deny: they publish AuthzEvents and dynamic metadata
 * (`envoy.filters.http.rbac` → `<shadow prefix>shadow_engine_result`, `…shadow_effective_policy_id`; LOG rules:
 * `envoy.common` → `access_log_hint`).
 * An HCM without RBAC filters costs one WeakMap lookup per request.
 */
import type { HttpConnectionManager, RbacFilterConfig } from '@trellis/api';
import { type AuthzFacts, denialDetails, evaluateFilters, remoteIpOf } from '../../authz/engine.js';
import { publishDecision } from '../../authz/publish.js';
import { type HttpContext, type Layer, localReply } from '../context.js';

export const HTTP_RBAC_FILTER = 'envoy.filters.http.rbac';

function isHttpRbac(c: unknown): c is RbacFilterConfig {
  return typeof c === 'object' && c !== null && (c as { kind?: unknown }).kind === 'http' && 'rules' in c && 'shadowRules' in c;
}

/** The decoded HTTP RBAC filters of an HCM, in filter order. */
export function httpRbacFilters(hcm: HttpConnectionManager): readonly RbacFilterConfig[] {
  return hcm.httpFilters.map((f) => f.config).filter(isHttpRbac);
}

function headerOf(ctx: HttpContext, name: string): string | undefined {
  switch (name) {
    case ':method': return ctx.method;
    case ':path': return ctx.path;
    case ':authority':
    case 'host': return ctx.authority;
    case ':scheme': return ctx.conn.tls ? 'https' : 'http';
  }
  const v = ctx.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

export function httpFacts(ctx: HttpContext): AuthzFacts {
  const c = ctx.conn;
  return {
    principal: c.peerPrincipal,
    directRemoteIp: c.sourceIp,
    remoteIp: remoteIpOf(c.hcm.useRemoteAddress, c.sourceIp, ctx.headers['x-forwarded-for']),
    destinationIp: c.destIp,
    destinationPort: c.destPort,
    serverName: c.serverName ?? null,
    path: ctx.path,
    header: (n) => headerOf(ctx, n),
    metadata: (f) => ctx.metadata?.[f],
  };
}

export function rbacLayer(): Layer {
  const byHcm = new WeakMap<HttpConnectionManager, readonly RbacFilterConfig[]>();
  return (next) => (ctx) => {
    const hcm = ctx.conn.hcm;
    let filters = byHcm.get(hcm);
    if (filters === undefined) {
      filters = httpRbacFilters(hcm);
      byHcm.set(hcm, filters);
    }
    if (filters.length === 0) { next(ctx); return; }
    const d = evaluateFilters(filters, httpFacts(ctx));
    publishDecision(d, { instance: ctx.conn.instance, direction: ctx.conn.direction, protocol: 'http', sourcePrincipal: ctx.conn.peerPrincipal, sourceIp: ctx.conn.sourceIp, destinationPort: ctx.conn.destPort });
    for (const r of d.results) {
      if (r.shadow) {
        const md = (ctx.metadata ??= {})[HTTP_RBAC_FILTER] ??= {};
        const prefix = r.config.shadowRulesStatPrefix;
        md[`${prefix}shadow_engine_result`] = r.shadow.allowed ? 'allowed' : 'denied';
        if (r.shadow.matchedPolicy !== null) md[`${prefix}shadow_effective_policy_id`] = r.shadow.matchedPolicy;
      }
      // Envoy writes the LOG decision to the shared namespace access loggers read.
      if (r.enforced?.action === 'LOG') ((ctx.metadata ??= {})['envoy.common'] ??= {}).access_log_hint = r.enforced.matchedPolicy !== null;
    }
    if (!d.allowed) {
      ctx.responseCodeDetails = denialDetails(d.deniedBy!);
      localReply(ctx, 403, 'RBAC: access denied');
      return;
    }
    next(ctx);
  };
}
