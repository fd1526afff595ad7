/**
 * RequestAuthentication → Envoy `envoy.filters.http.jwt_authn`, as Istio builds it (istio/istio
 * pilot/pkg/security/authn/policy_applier.go convertToEnvoyJwtConfig):
 *
 * - the JWT rules of every applicable RequestAuthentication (policy-selection.ts) are merged and sorted by issuer;
 *   rule i is provider `origins-<i>`: issuer, audiences, `forward` (forwardOriginalToken), `forward_payload_header`
 *   (outputPayloadToHeader), `claim_to_headers`, `from_headers` (name + value_prefix), `from_params`,
 *   `from_cookies`, and the verified payload in metadata under `payload` (normalised: `scope` and `permission`
 *   split on spaces) — which rbac.ts reads for request principals and claims;
 * - keys: inline `jwks` → `local_jwks.inline_string`; a `file://` jwksUri → `local_jwks.filename`; an http(s) jwksUri
 *   → `remote_jwks` fetched by the proxy through cluster `outbound|<port>||<host>` of the URI (port 443/80 by
 *   scheme), timeout from `timeout` (default 5 s), cached 5 min — Istio's PILOT_JWT_ENABLE_REMOTE_JWKS=envoy mode.
 *   That cluster exists only if a ServiceEntry declares the JWKS host; otherwise fetches fail and tokens of that
 *   issuer are rejected. A rule with neither is given an empty key set (fail closed; Istio would try OpenID
 *   discovery from the issuer, Trellis does not);
 * - requirement for every path: a token that is present must verify with a provider, an absent token passes
 *   (`allow_missing`) and is left to AuthorizationPolicy (`requestPrincipals: ["*"]` makes a token mandatory). With
 *   one provider `requires_any[provider, allow_missing]`; with several, `requires_any[P1, …, Pn, requires_all[any(Pi,
 *   allow_missing)…]]` so that providers sharing a token location still work;
 * - `bypass_cors_preflight: true`.
 */
import { EXT_TYPE_URL } from '@trellis/api';
import type { JWTRule } from '@trellis/model';
import type { ProxyNode, Snapshot } from '../snapshot/types.js';
import { outboundClusterName } from './names.js';
import { policiesFor } from './policy-selection.js';
import { duration } from './proto.js';
import { JWT_AUTHN_FILTER, JWT_PAYLOAD_KEY } from './rbac-matchers.js';

type Obj = Record<string, unknown>;

const DEFAULT_JWKS_TIMEOUT_MS = 5_000;
const JWKS_CACHE_MS = 5 * 60_000;
/** Claims whose space-separated string value is turned into a list in the payload metadata (Istio's default). */
const SPACE_DELIMITED_CLAIMS = ['permission', 'scope'];

/** The cluster a proxy fetches a remote JWKS through: `outbound|<port>||<host>` of the URI. */
export function jwksCluster(uri: string): string {
  const u = new URL(uri);
  const port = u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  return outboundClusterName(port, undefined, u.hostname);
}

function jwksSource(rule: JWTRule): Obj {
  if (rule.jwks !== undefined) return { local_jwks: { inline_string: rule.jwks } };
  const uri = rule.jwksUri;
  if (uri === undefined) return { local_jwks: { inline_string: '{"keys":[]}' } };
  if (uri.startsWith('file://')) return { local_jwks: { filename: decodeURIComponent(new URL(uri).pathname) } };
  return {
    remote_jwks: {
      http_uri: { uri, cluster: jwksCluster(uri), timeout: duration(rule.timeout ?? DEFAULT_JWKS_TIMEOUT_MS) },
      cache_duration: duration(JWKS_CACHE_MS),
    },
  };
}

function provider(rule: JWTRule): Obj {
  const p: Obj = { issuer: rule.issuer };
  if (rule.audiences !== undefined && rule.audiences.length > 0) p.audiences = [...rule.audiences];
  Object.assign(p, jwksSource(rule));
  if (rule.forwardOriginalToken === true) p.forward = true;
  if (rule.fromHeaders !== undefined && rule.fromHeaders.length > 0) {
    p.from_headers = rule.fromHeaders.map((h) => (h.prefix !== undefined ? { name: h.name, value_prefix: h.prefix } : { name: h.name }));
  }
  if (rule.fromParams !== undefined && rule.fromParams.length > 0) p.from_params = [...rule.fromParams];
  if (rule.fromCookies !== undefined && rule.fromCookies.length > 0) p.from_cookies = [...rule.fromCookies];
  if (rule.outputPayloadToHeader !== undefined) p.forward_payload_header = rule.outputPayloadToHeader;
  p.payload_in_metadata = JWT_PAYLOAD_KEY;
  p.normalize_payload_in_metadata = { space_delimited_claims: [...SPACE_DELIMITED_CLAIMS] };
  if (rule.outputClaimToHeaders !== undefined && rule.outputClaimToHeaders.length > 0) {
    p.claim_to_headers = rule.outputClaimToHeaders.map((c) => ({ header_name: c.header, claim_name: c.claim }));
  }
  return p;
}

/** The merged JWT rules for the proxy's workload, sorted by issuer (stable), as Istio orders them. */
export function jwtRulesFor(snapshot: Snapshot, proxy: ProxyNode): JWTRule[] {
  const rules = policiesFor(snapshot.config.requestAuthentications, proxy).flatMap((ra) => ra.spec.jwtRules ?? []);
  return rules
    .map((r, i) => ({ r, i }))
    .sort((a, b) => (a.r.issuer < b.r.issuer ? -1 : a.r.issuer > b.r.issuer ? 1 : a.i - b.i))
    .map((x) => x.r);
}

/** The jwt_authn HTTP filter for the proxy's workload, or undefined when no RequestAuthentication applies. */
export function jwtAuthnFilter(snapshot: Snapshot, proxy: ProxyNode): Obj | undefined {
  const rules = jwtRulesFor(snapshot, proxy);
  if (rules.length === 0) return undefined;
  const providers: Record<string, Obj> = {};
  const inner: Obj[] = [];
  const outer: Obj[] = [];
  rules.forEach((rule, i) => {
    const name = `origins-${i}`;
    providers[name] = provider(rule);
    inner.push({ requires_any: { requirements: [{ provider_name: name }, { allow_missing: {} }] } });
    outer.push({ provider_name: name });
  });
  const requires = inner.length === 1 ? inner[0]! : { requires_any: { requirements: [...outer, { requires_all: { requirements: inner } }] } };
  return {
    name: JWT_AUTHN_FILTER,
    typed_config: {
      '@type': EXT_TYPE_URL.jwtAuthn,
      providers,
      rules: [{ match: { prefix: '/' }, requires }],
      bypass_cors_preflight: true,
    },
  };
}
