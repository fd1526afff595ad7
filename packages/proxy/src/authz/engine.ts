/**
 * Envoy's RBAC engine as pure functions over a decoded `RbacFilterConfig` (see @trellis/api envoy/rbac.ts) and the
 * facts of one request or connection.
 *
 * - A policy matches when any of its permissions AND any of its principals match.
 * - ALLOW: allowed iff some policy matches (so no policies = deny all). DENY: allowed iff none matches.
 *   LOG: always allowed; a match only marks the request for the access log.
 * - Several RBAC filters run in order (Istio emits AUDIT(LOG), CUSTOM(DENY), DENY, ALLOW); the first denial stops
 *   the request, which is how "deny beats allow" falls out. `rules: null` means the filter enforces nothing.
 * - Shadow rules are evaluated the same way but never deny.
 *
 * Matching details follow Envoy: header values of a repeated header are joined with ","; `url_path` ignores the
 * query and fragment; `authenticated` needs a verified peer certificate; a missing header or metadata value never
 * matches a value matcher (but `not_rule` / `not_id` / `invert` see through that, as in Envoy).
 */
import { isIPv4 } from 'node:net';
import { matchString } from '@trellis/api';
import type {
  RbacCidr, RbacFilterConfig, RbacHeaderMatch, RbacMetadataMatch, RbacPermission, RbacPrincipal, RbacRules, RbacValueMatch,
} from '@trellis/api';
import { inCidr, normalizeIp } from '../net/cidr.js';

/** What the engine may look at. HTTP facts have `header`/`path`; connection (network RBAC) facts do not. */
export interface AuthzFacts {
  /** The downstream peer's principal (SPIFFE URI SAN) after mTLS, or null when there is no verified peer certificate. */
  readonly principal: string | null;
  /** Address of the downstream connection's peer. */
  readonly directRemoteIp: string;
  /** The original client: the connection's peer, or the x-forwarded-for entry Envoy would use (see remoteIpOf). */
  readonly remoteIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
  /** TLS SNI, or null. */
  readonly serverName: string | null;
  /** A request header by lowercase name (`:method`, `:path`, `:authority`, `:scheme` too); absent on TCP. */
  readonly header?: (name: string) => string | undefined;
  /** `:path` with its query, or null on TCP. */
  readonly path: string | null;
  /** Dynamic metadata namespace (filter name → values), e.g. jwt_authn's `{ payload }`. */
  readonly metadata?: (filter: string) => unknown;
}

export interface RulesResult {
  readonly action: RbacRules['action'];
  /** Whether these rules let the request through (LOG always does). */
  readonly allowed: boolean;
  /** The first policy (by name) that matched, or null. */
  readonly matchedPolicy: string | null;
}

/** Evaluates one `RBAC` rules block. */
export function evaluateRules(rules: RbacRules, facts: AuthzFacts): RulesResult {
  let matched: string | null = null;
  for (const p of rules.policies) {
    if (anyPermission(p.permissions, facts) && anyPrincipal(p.principals, facts)) {
      matched = p.name;
      break;
    }
  }
  const allowed = rules.action === 'ALLOW' ? matched !== null : rules.action === 'DENY' ? matched === null : true;
  return { action: rules.action, allowed, matchedPolicy: matched };
}

/** The outcome of one RBAC filter: its enforced rules and its shadow rules. */
export interface FilterResult {
  readonly index: number;
  readonly config: RbacFilterConfig;
  /** null when the filter has no `rules` (enforces nothing). */
  readonly enforced: RulesResult | null;
  readonly shadow: RulesResult | null;
}

export interface ChainDecision {
  readonly allowed: boolean;
  /** The filter that denied, when one did. */
  readonly deniedBy: FilterResult | null;
  /** Results of the filters that ran (up to and including the denying one), in order. */
  readonly results: readonly FilterResult[];
}

/** Runs RBAC filters in order, stopping at the first denial (Envoy stops the filter chain there). */
export function evaluateFilters(configs: readonly RbacFilterConfig[], facts: AuthzFacts): ChainDecision {
  const results: FilterResult[] = [];
  for (let i = 0; i < configs.length; i++) {
    const config = configs[i]!;
    const r: FilterResult = {
      index: i,
      config,
      enforced: config.rules ? evaluateRules(config.rules, facts) : null,
      shadow: config.shadowRules ? evaluateRules(config.shadowRules, facts) : null,
    };
    results.push(r);
    if (r.enforced && !r.enforced.allowed) return { allowed: false, deniedBy: r, results };
  }
  return { allowed: true, deniedBy: null, results };
}

/** Envoy's response code details for a denial: `rbac_access_denied_matched_policy[<policy>|none]`. */
export function denialDetails(r: FilterResult): string {
  return `rbac_access_denied_matched_policy[${r.enforced?.matchedPolicy ?? 'none'}]`;
}

/**
 * The "remote address" Envoy's RBAC `remote_ip` sees: with `use_remote_address` the connection's peer; otherwise
 * the last x-forwarded-for entry (xff_num_trusted_hops 0), falling back to the peer when there is none.
 */
export function remoteIpOf(useRemoteAddress: boolean, peer: string, xff: string | string[] | undefined): string {
  if (useRemoteAddress || xff === undefined) return peer;
  const joined = Array.isArray(xff) ? xff.join(',') : xff;
  const last = joined.slice(joined.lastIndexOf(',') + 1).trim();
  return last === '' ? peer : normalizeIp(last);
}

// --- matchers ------------------------------------------------------------------------------------------------

function anyPermission(ps: readonly RbacPermission[], f: AuthzFacts): boolean {
  for (const p of ps) if (permissionMatches(p, f)) return true;
  return false;
}

function anyPrincipal(ps: readonly RbacPrincipal[], f: AuthzFacts): boolean {
  for (const p of ps) if (principalMatches(p, f)) return true;
  return false;
}

export function permissionMatches(p: RbacPermission, f: AuthzFacts): boolean {
  switch (p.kind) {
    case 'any': return true;
    case 'and':
      for (const r of p.rules) if (!permissionMatches(r, f)) return false;
      return true;
    case 'or': return anyPermission(p.rules, f);
    case 'not': return !permissionMatches(p.rule, f);
    case 'header': return headerMatches(p.header, f);
    case 'urlPath': return f.path !== null && matchString(p.match, pathOnly(f.path));
    case 'destinationIp': return cidrContains(p.cidr, f.destinationIp);
    case 'destinationPort': return f.destinationPort === p.port;
    case 'destinationPortRange': return f.destinationPort >= p.start && f.destinationPort < p.end;
    case 'metadata': return metadataMatches(p.metadata, f);
    case 'requestedServerName': return matchString(p.match, f.serverName ?? '');
  }
}

export function principalMatches(p: RbacPrincipal, f: AuthzFacts): boolean {
  switch (p.kind) {
    case 'any': return true;
    case 'and':
      for (const r of p.ids) if (!principalMatches(r, f)) return false;
      return true;
    case 'or': return anyPrincipal(p.ids, f);
    case 'not': return !principalMatches(p.id, f);
    case 'authenticated': return f.principal !== null && (p.match === null || matchString(p.match, f.principal));
    case 'directRemoteIp': return cidrContains(p.cidr, f.directRemoteIp);
    case 'remoteIp': return cidrContains(p.cidr, f.remoteIp);
    case 'header': return headerMatches(p.header, f);
    case 'urlPath': return f.path !== null && matchString(p.match, pathOnly(f.path));
    case 'metadata': return metadataMatches(p.metadata, f);
  }
}

/** The path without query and fragment (what Envoy's PathMatcher compares). */
function pathOnly(path: string): string {
  let end = path.length;
  const q = path.indexOf('?');
  if (q >= 0) end = q;
  const h = path.indexOf('#');
  if (h >= 0 && h < end) end = h;
  return end === path.length ? path : path.slice(0, end);
}

function headerMatches(h: RbacHeaderMatch, f: AuthzFacts): boolean {
  let value = f.header?.(h.name);
  if (h.kind === 'present') return ((value !== undefined) === h.present) !== h.invert;
  if (value === undefined) {
    if (!h.treatMissingAsEmpty) return false;
    value = '';
  }
  let m: boolean;
  if (h.kind === 'range') {
    const n = /^-?\d+$/.test(value) ? Number(value) : NaN;
    m = !Number.isNaN(n) && n >= h.range!.start && n < h.range!.end;
  } else {
    m = matchString(h.match!, value);
  }
  return m !== h.invert;
}

function metadataMatches(m: RbacMetadataMatch, f: AuthzFacts): boolean {
  let v: unknown = f.metadata?.(m.filter);
  for (const key of m.path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) { v = undefined; break; }
    v = (v as Record<string, unknown>)[key];
  }
  return valueMatches(m.value, v) !== m.invert;
}

/** ValueMatcher over a JSON-ish value; `undefined` is "not set" (only `present_match: false` matches it). */
export function valueMatches(m: RbacValueMatch, v: unknown): boolean {
  switch (m.kind) {
    case 'null': return v === null;
    case 'double':
      if (typeof v !== 'number') return false;
      return m.range ? v >= m.range.start && v < m.range.end : v === m.exact;
    case 'string': return typeof v === 'string' && matchString(m.match, v);
    case 'bool': return typeof v === 'boolean' && v === m.value;
    case 'present': return (v !== undefined) === m.value;
    case 'list': return Array.isArray(v) && v.some((x) => valueMatches(m.oneOf, x));
    case 'or': return m.matchers.some((x) => valueMatches(x, v));
  }
}

/** CIDR containment; IPv4 without BigInt (the common case), IPv6 through net/cidr.ts. */
export function cidrContains(c: RbacCidr, ipIn: string): boolean {
  if (ipIn === '') return false;
  const ip = normalizeIp(ipIn);
  if (isIPv4(ip) && isIPv4(c.address)) {
    if (c.prefixLen === 0) return true;
    const mask = c.prefixLen >= 32 ? 0xffffffff : ~((1 << (32 - c.prefixLen)) - 1) >>> 0;
    return ((v4(ip) & mask) >>> 0) === ((v4(c.address) & mask) >>> 0);
  }
  return inCidr(ip, c.address, c.prefixLen);
}

function v4(ip: string): number {
  let n = 0;
  let part = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) { n = n * 256 + part; part = 0; } else part = part * 10 + (c - 48);
  }
  return n * 256 + part;
}
