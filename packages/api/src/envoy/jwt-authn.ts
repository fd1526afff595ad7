/**
 * `envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication` → JwtAuthnConfig (the `config` of an HCM http
 * filter of that type). What the control plane generates from RequestAuthentication (docs/security-policy.md) and
 * what trellis-proxy enforces (packages/proxy/src/jwt/, http/layers/jwt-authn.ts).
 *
 * Decoded: providers (issuer, audiences, local_jwks inline_string / inline_bytes / filename, remote_jwks http_uri +
 * cache_duration, from_headers / from_params / from_cookies, forward, forward_payload_header,
 * pad_forward_payload_header, payload_in_metadata, normalize_payload_in_metadata, claim_to_headers,
 * clock_skew_seconds, require_expiration, max_lifetime), rules (route match + requirement) and
 * bypass_cors_preflight. A requirement naming a provider that does not exist, a provider without keys, or a rule
 * without match is rejected (the proxy NACKs). `requirement_map` / `filter_state_rules` and per-route configs are
 * not supported and ignored.
 */
import type { RouteMatch } from './route.js';
import { decodeMatch } from './route.js';
import { type Obj, deepFreeze, durationMs, fail, isObj, join, list, num, obj, reqObj, reqStr, str, strs } from './read.js';

/** Envoy's defaults. */
export const JWT_DEFAULT_CLOCK_SKEW_SECONDS = 60;
export const JWT_DEFAULT_CACHE_DURATION_MS = 10 * 60_000;
export const JWT_DEFAULT_FETCH_TIMEOUT_MS = 1_000;

export type JwksSource =
  | { readonly kind: 'inline'; readonly text: string }
  | { readonly kind: 'file'; readonly filename: string }
  | { readonly kind: 'remote'; readonly uri: string; readonly cluster: string; readonly timeoutMs: number; readonly cacheDurationMs: number };

export interface JwtHeaderLocation {
  /** Lowercase header name. */
  readonly name: string;
  /** `value_prefix`, e.g. `Bearer `; empty = the whole value is the token. */
  readonly valuePrefix: string;
}

export interface JwtProvider {
  readonly name: string;
  /** The token's `iss` must equal it; null = any issuer. */
  readonly issuer: string | null;
  /** The token's `aud` must contain one of them; empty = any. */
  readonly audiences: readonly string[];
  readonly jwks: JwksSource;
  /** Keep the token in the request sent upstream (default: removed after it verified). */
  readonly forward: boolean;
  /** Where the token is read. When all three are empty Envoy's defaults apply (`Authorization: Bearer`, `?access_token=`). */
  readonly fromHeaders: readonly JwtHeaderLocation[];
  readonly fromParams: readonly string[];
  readonly fromCookies: readonly string[];
  /** Header that receives the base64url payload of a verified token. */
  readonly forwardPayloadHeader: string | null;
  readonly padForwardPayloadHeader: boolean;
  /** Dynamic-metadata key (under `envoy.filters.http.jwt_authn`) that receives the verified payload. */
  readonly payloadInMetadata: string | null;
  /** Claims whose space-separated string value becomes a list in that metadata. */
  readonly spaceDelimitedClaims: readonly string[];
  readonly claimToHeaders: readonly { readonly headerName: string; readonly claimName: string }[];
  readonly clockSkewSeconds: number;
  readonly requireExpiration: boolean;
  readonly maxLifetimeMs: number | null;
}

export type JwtRequirement =
  | { readonly kind: 'provider'; readonly provider: string; readonly audiences: readonly string[] | null }
  | { readonly kind: 'any'; readonly requirements: readonly JwtRequirement[] }
  | { readonly kind: 'all'; readonly requirements: readonly JwtRequirement[] }
  | { readonly kind: 'allow_missing' }
  | { readonly kind: 'allow_missing_or_failed' };

export interface JwtRule {
  readonly match: RouteMatch;
  /** null = no verification for requests this rule matches. */
  readonly requires: JwtRequirement | null;
}

export interface JwtAuthnConfig {
  readonly providers: Readonly<Record<string, JwtProvider>>;
  readonly rules: readonly JwtRule[];
  readonly bypassCorsPreflight: boolean;
}

function decodeJwks(p: Obj, path: string): JwksSource {
  const local = obj(p, 'local_jwks', path);
  if (local) {
    const lp = join(path, 'local_jwks');
    const inline = str(local, 'inline_string', lp);
    if (inline !== undefined) return { kind: 'inline', text: inline };
    const bytes = str(local, 'inline_bytes', lp);
    if (bytes !== undefined) return { kind: 'inline', text: Buffer.from(bytes, 'base64').toString('utf8') };
    const filename = str(local, 'filename', lp);
    if (filename !== undefined) return { kind: 'file', filename };
    // An empty inline string decodes as absent: a key set with no keys (every token is rejected).
    if (Object.keys(local).length === 0) return { kind: 'inline', text: '' };
    return fail(lp, 'one of inline_string, inline_bytes, filename is required');
  }
  const remote = obj(p, 'remote_jwks', path);
  if (remote) {
    const rp = join(path, 'remote_jwks');
    const hu = reqObj(remote, 'http_uri', rp);
    const hp = join(rp, 'http_uri');
    const uri = reqStr(hu, 'uri', hp);
    try { new URL(uri); } catch { fail(join(hp, 'uri'), `invalid URL ${JSON.stringify(uri)}`); }
    return {
      kind: 'remote', uri, cluster: reqStr(hu, 'cluster', hp),
      timeoutMs: durationMs(hu, 'timeout', hp) ?? JWT_DEFAULT_FETCH_TIMEOUT_MS,
      cacheDurationMs: durationMs(remote, 'cache_duration', rp) ?? JWT_DEFAULT_CACHE_DURATION_MS,
    };
  }
  return fail(path, 'one of local_jwks, remote_jwks is required');
}

function decodeProvider(name: string, p: Obj, path: string): JwtProvider {
  const normalize = obj(p, 'normalize_payload_in_metadata', path);
  const skew = num(p, 'clock_skew_seconds', path);
  if (skew !== undefined && (!Number.isInteger(skew) || skew < 0)) fail(join(path, 'clock_skew_seconds'), 'must be a non-negative integer');
  return {
    name,
    issuer: str(p, 'issuer', path) ?? null,
    audiences: strs(p, 'audiences', path),
    jwks: decodeJwks(p, path),
    forward: p.forward === true,
    fromHeaders: list(p, 'from_headers', path, (h, hp) => ({ name: reqStr(h, 'name', hp).toLowerCase(), valuePrefix: str(h, 'value_prefix', hp) ?? '' })),
    fromParams: strs(p, 'from_params', path),
    fromCookies: strs(p, 'from_cookies', path),
    forwardPayloadHeader: str(p, 'forward_payload_header', path)?.toLowerCase() ?? null,
    padForwardPayloadHeader: p.pad_forward_payload_header === true,
    payloadInMetadata: str(p, 'payload_in_metadata', path) ?? null,
    spaceDelimitedClaims: normalize ? strs(normalize, 'space_delimited_claims', join(path, 'normalize_payload_in_metadata')) : [],
    claimToHeaders: list(p, 'claim_to_headers', path, (c, cp) => ({ headerName: reqStr(c, 'header_name', cp).toLowerCase(), claimName: reqStr(c, 'claim_name', cp) })),
    clockSkewSeconds: skew ?? JWT_DEFAULT_CLOCK_SKEW_SECONDS,
    requireExpiration: p.require_expiration === true,
    maxLifetimeMs: durationMs(p, 'max_lifetime', path) ?? null,
  };
}

function decodeRequirement(r: Obj, path: string, providers: Readonly<Record<string, JwtProvider>>): JwtRequirement {
  const known = (n: string, p: string): string => (Object.hasOwn(providers, n) ? n : fail(p, `unknown provider ${JSON.stringify(n)}`));
  const pn = str(r, 'provider_name', path);
  if (pn !== undefined) return { kind: 'provider', provider: known(pn, join(path, 'provider_name')), audiences: null };
  const pa = obj(r, 'provider_and_audiences', path);
  if (pa) {
    const pp = join(path, 'provider_and_audiences');
    return { kind: 'provider', provider: known(reqStr(pa, 'provider_name', pp), join(pp, 'provider_name')), audiences: strs(pa, 'audiences', pp) };
  }
  for (const [key, kind] of [['requires_any', 'any'], ['requires_all', 'all']] as const) {
    const l = obj(r, key, path);
    if (l) {
      const requirements = list(l, 'requirements', join(path, key), (x, xp) => decodeRequirement(x, xp, providers));
      if (requirements.length === 0) fail(join(join(path, key), 'requirements'), 'must not be empty');
      return { kind, requirements };
    }
  }
  if (isObj(r.allow_missing)) return { kind: 'allow_missing' };
  if (isObj(r.allow_missing_or_failed)) return { kind: 'allow_missing_or_failed' };
  return fail(path, 'one of provider_name, provider_and_audiences, requires_any, requires_all, allow_missing, allow_missing_or_failed is required');
}

/** Decodes a JwtAuthentication typed config (registered in HTTP_FILTER_DECODERS). */
export function decodeJwtAuthn(tc: Obj, path: string): JwtAuthnConfig {
  const providers: Record<string, JwtProvider> = {};
  const po = obj(tc, 'providers', path);
  for (const [name, p] of Object.entries(po ?? {})) {
    const pp = join(join(path, 'providers'), name);
    if (!isObj(p)) fail(pp, 'must be a message');
    providers[name] = decodeProvider(name, p, pp);
  }
  const rules = list(tc, 'rules', path, (r, rp): JwtRule => {
    const m = reqObj(r, 'match', rp);
    const req = obj(r, 'requires', rp);
    return { match: decodeMatch(m, join(rp, 'match')), requires: req ? decodeRequirement(req, join(rp, 'requires'), providers) : null };
  });
  return deepFreeze({ providers, rules, bypassCorsPreflight: tc.bypass_cors_preflight === true });
}
