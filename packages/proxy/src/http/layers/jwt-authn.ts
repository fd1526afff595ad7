/**
 * `envoy.filters.http.jwt_authn`: end-user JWT verification (RequestAuthentication). Acts only when the HCM carries
 * the filter with a decoded config; otherwise a pass-through.
 *
 * Per request: CORS preflights pass (`bypass_cors_preflight`); the payload/claim headers the filter writes are
 * removed from what the client sent; the first rule matching the request gives the requirement; tokens are read
 * and verified (packages/proxy/src/jwt/). A failure is answered locally like Envoy: 401 (403 for a disallowed
 * audience) with the status text as body (`Jwt is expired`, `Jwt verification fails`, `Jwt is missing`, …) and
 * `www-authenticate: Bearer realm="<scheme>://<authority><path>"` (plus `, error="invalid_token"` unless the token
 * was missing), and a `trellis:proxy:jwt_authn` event. On success, per verified token: the normalised payload goes to
 * `ctx.metadata['envoy.filters.http.jwt_authn'][payload_in_metadata]` (RBAC reads `payload.iss`/`payload.sub`),
 * `claim_to_headers` and `forward_payload_header` are set, and the token's header is removed unless `forward`.
 */
import { readFileSync } from 'node:fs';
import type { HttpConnectionManager, JwtAuthnConfig } from '@trellis/api';
import { JwtAuthenticator, type AuthnOutcome, type VerifiedToken } from '../../jwt/authenticator.js';
import { jwtDenialChannel } from '../../jwt/events.js';
import { KeySources, type JwksFetcher } from '../../jwt/key-source.js';
import { httpStatusOf, JwtStatus } from '../../jwt/status.js';
import { type HttpContext, type Layer, localReply } from '../context.js';

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
const JWT_AUTHN_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';

export interface JwtAuthnLayerOptions {
  /** Fetches remote JWKS (proxy: through the named cluster, see jwt/cluster-fetch.ts). */
  readonly fetchJwks: JwksFetcher;
  /** Milliseconds clock (token time checks, JWKS cache). */
  readonly now?: () => number;
  /** Reads `local_jwks.filename`. */
  readonly readFile?: (filename: string) => string;
  /** Least time between two refetches caused by an unknown `kid` (default 30 s). */
  readonly minRefetchIntervalMs?: number;
  /** Retry delay after a failed refresh while older keys keep serving (default 5 s). */
  readonly failureRetryMs?: number;
}

export function jwtAuthnLayer(o: JwtAuthnLayerOptions): Layer {
  const now = o.now ?? Date.now;
  const sources = new KeySources({
    fetch: o.fetchJwks, now, readFile: o.readFile ?? ((f) => readFileSync(f, 'utf8')),
    minRefetchIntervalMs: o.minRefetchIntervalMs ?? 30_000, failureRetryMs: o.failureRetryMs ?? 5_000,
  });
  // One authenticator per decoded config (a config push brings new frozen objects); null = no jwt_authn filter.
  const byHcm = new WeakMap<HttpConnectionManager, JwtAuthenticator | null>();
  const byConfig = new WeakMap<JwtAuthnConfig, JwtAuthenticator>();
  const authenticatorFor = (hcm: HttpConnectionManager): JwtAuthenticator | null => {
    let a = byHcm.get(hcm);
    if (a !== undefined) return a;
    a = null;
    for (const f of hcm.httpFilters) {
      if (f.type !== JWT_AUTHN_TYPE || f.config === null) continue;
      const cfg = f.config as JwtAuthnConfig;
      a = byConfig.get(cfg) ?? new JwtAuthenticator(cfg, sources, now);
      byConfig.set(cfg, a);
      break;
    }
    byHcm.set(hcm, a);
    return a;
  };

  return (next) => (ctx) => {
    const a = authenticatorFor(ctx.conn.hcm);
    if (a === null) { next(ctx); return; }
    const h = ctx.headers;
    if (a.config.bypassCorsPreflight && ctx.method === 'OPTIONS' && h.origin !== undefined && h['access-control-request-method'] !== undefined) { next(ctx); return; }
    for (const n of a.protectedHeaders) delete h[n];
    const req = { method: ctx.method, authority: ctx.authority, path: ctx.path, headers: h };
    const requirement = a.requirementFor(req);
    if (requirement === null) { next(ctx); return; }
    const out = a.authenticate(requirement, req);
    if (out instanceof Promise) {
      out.then((r) => finish(ctx, r, next), () => finish(ctx, { status: JwtStatus.JwtVerificationFail, verified: [], issuer: null }, next));
    } else {
      finish(ctx, out, next);
    }
  };
}

function finish(ctx: HttpContext, r: AuthnOutcome, next: (ctx: HttpContext) => void): void {
  if (r.status !== JwtStatus.Ok) { deny(ctx, r); return; }
  for (const v of r.verified) apply(ctx, v);
  next(ctx);
}

function deny(ctx: HttpContext, r: AuthnOutcome): void {
  const code = httpStatusOf(r.status);
  const scheme = (ctx.headers['x-forwarded-proto'] as string | undefined) ?? (ctx.conn.tls ? 'https' : 'http');
  let challenge = `Bearer realm="${scheme}://${ctx.authority}${ctx.path}"`;
  if (r.status !== JwtStatus.JwtMissed) challenge += ', error="invalid_token"';
  if (jwtDenialChannel.hasSubscribers) {
    const q = ctx.path.indexOf('?');
    jwtDenialChannel.publish({
      instance: ctx.conn.instance, direction: ctx.conn.direction, listener: ctx.conn.listener, responseCode: code, status: r.status,
      issuer: r.issuer, method: ctx.method, path: q < 0 ? ctx.path : ctx.path.slice(0, q), sourceIp: ctx.conn.sourceIp, sourcePrincipal: ctx.conn.peerPrincipal,
    });
  }
  localReply(ctx, code, r.status, { 'www-authenticate': challenge });
}

/** Envoy's `normalize_payload_in_metadata`: listed claims holding a space-separated string become lists. */
function normalizedPayload(v: VerifiedToken): Readonly<Record<string, unknown>> {
  const claims = v.provider.p.spaceDelimitedClaims;
  if (claims.length === 0) return v.jwt.payload;
  let out: Record<string, unknown> | null = null;
  for (const c of claims) {
    const val = v.jwt.payload[c];
    if (typeof val !== 'string') continue;
    out ??= { ...v.jwt.payload };
    out[c] = val.split(' ').filter((s) => s !== '');
  }
  return out ? Object.freeze(out) : v.jwt.payload;
}

function claimValue(payload: Readonly<Record<string, unknown>>, name: string): string | null {
  let cur: unknown = payload;
  for (const part of name.split('.')) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return null;
    cur = (cur as Record<string, unknown>)[part];
  }
  if (typeof cur === 'string') return cur;
  if (typeof cur === 'number' || typeof cur === 'boolean') return String(cur);
  if (Array.isArray(cur) && cur.every((x) => typeof x === 'string')) return cur.join(',');
  return null;
}

function apply(ctx: HttpContext, v: VerifiedToken): void {
  const p = v.provider.p;
  if (p.payloadInMetadata !== null) {
    const md = (ctx.metadata ??= {});
    const mine = (md[JWT_AUTHN_FILTER] ??= {});
    mine[p.payloadInMetadata] = normalizedPayload(v);
  }
  for (const c of p.claimToHeaders) {
    const val = claimValue(v.jwt.payload, c.claimName);
    if (val !== null) ctx.headers[c.headerName] = val;
  }
  if (p.forwardPayloadHeader !== null) {
    let b64 = v.jwt.payloadB64.replace(/=+$/, '');
    if (p.padForwardPayloadHeader) b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    ctx.headers[p.forwardPayloadHeader] = b64;
  }
  if (!p.forward && v.found.location.kind === 'header') delete ctx.headers[v.found.location.name];
}
