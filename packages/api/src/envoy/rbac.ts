/**
 * `envoy.extensions.filters.http.rbac.v3.RBAC` and `envoy.extensions.filters.network.rbac.v3.RBAC` (both wrap
 * `envoy.config.rbac.v3.RBAC`) → RbacFilterConfig, the shape the proxy's authorization engine evaluates.
 *
 * Envoy's semantics, which the decoded value keeps:
 * - `rules` absent → the filter enforces nothing (`rules: null`); `rules` present with no `policies` (an empty map
 *   is absent on the wire) → an ALLOW filter denies everything, a DENY filter denies nothing.
 * - `shadow_rules` are evaluated for stats/metadata only and never deny. Action LOG never denies either.
 * - A policy matches when any permission AND any principal match.
 *
 * Everything Envoy can express that Trellis cannot evaluate (the xDS `matcher` API, CEL `condition`s, filter-state
 * matchers, uri_template / extension matchers) is rejected with its path, so the proxy NACKs the listener rather
 * than enforce an authorization rule partially.
 */
import { type StringMatch, decodeStringMatcher } from './common.js';
import { type Obj, bool, deepFreeze, enumOf, fail, isObj, join, list, num, obj, regex, reqObj, reqStr, str, wrapped } from './read.js';

export type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

/** A CIDR (`core.v3.CidrRange`), prefix length defaulted to the full address. */
export interface RbacCidr {
  readonly address: string;
  readonly prefixLen: number;
}

/** `route.v3.HeaderMatcher` as RBAC uses it (name lowercased; pseudo-headers `:method`, `:path`, `:authority`). */
export interface RbacHeaderMatch {
  readonly name: string;
  readonly kind: 'string' | 'present' | 'range';
  /** For kind 'string'. */
  readonly match: StringMatch | null;
  /** For kind 'present': whether the header must be present (true) or absent (false). */
  readonly present: boolean;
  /** For kind 'range': `[start, end)`. */
  readonly range: { readonly start: number; readonly end: number } | null;
  readonly invert: boolean;
  readonly treatMissingAsEmpty: boolean;
}

/** `type.matcher.v3.ValueMatcher`. */
export type RbacValueMatch =
  | { readonly kind: 'null' }
  | { readonly kind: 'double'; readonly exact: number | null; readonly range: { readonly start: number; readonly end: number } | null }
  | { readonly kind: 'string'; readonly match: StringMatch }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'present'; readonly value: boolean }
  | { readonly kind: 'list'; readonly oneOf: RbacValueMatch }
  | { readonly kind: 'or'; readonly matchers: readonly RbacValueMatch[] };

/** `type.matcher.v3.MetadataMatcher`: the value at `path` below dynamic metadata namespace `filter`. */
export interface RbacMetadataMatch {
  readonly filter: string;
  readonly path: readonly string[];
  readonly value: RbacValueMatch;
  readonly invert: boolean;
}

export type RbacPermission =
  | { readonly kind: 'any' }
  | { readonly kind: 'and'; readonly rules: readonly RbacPermission[] }
  | { readonly kind: 'or'; readonly rules: readonly RbacPermission[] }
  | { readonly kind: 'not'; readonly rule: RbacPermission }
  | { readonly kind: 'header'; readonly header: RbacHeaderMatch }
  | { readonly kind: 'urlPath'; readonly match: StringMatch }
  | { readonly kind: 'destinationIp'; readonly cidr: RbacCidr }
  | { readonly kind: 'destinationPort'; readonly port: number }
  | { readonly kind: 'destinationPortRange'; readonly start: number; readonly end: number }
  | { readonly kind: 'metadata'; readonly metadata: RbacMetadataMatch }
  | { readonly kind: 'requestedServerName'; readonly match: StringMatch };

export type RbacPrincipal =
  | { readonly kind: 'any' }
  | { readonly kind: 'and'; readonly ids: readonly RbacPrincipal[] }
  | { readonly kind: 'or'; readonly ids: readonly RbacPrincipal[] }
  | { readonly kind: 'not'; readonly id: RbacPrincipal }
  /** `match: null` = any authenticated (mTLS) peer. */
  | { readonly kind: 'authenticated'; readonly match: StringMatch | null }
  /** `source_ip` (deprecated) is decoded as `directRemoteIp`, which is what Envoy evaluates it as. */
  | { readonly kind: 'directRemoteIp'; readonly cidr: RbacCidr }
  | { readonly kind: 'remoteIp'; readonly cidr: RbacCidr }
  | { readonly kind: 'header'; readonly header: RbacHeaderMatch }
  | { readonly kind: 'urlPath'; readonly match: StringMatch }
  | { readonly kind: 'metadata'; readonly metadata: RbacMetadataMatch };

export interface RbacPolicy {
  readonly name: string;
  readonly permissions: readonly RbacPermission[];
  readonly principals: readonly RbacPrincipal[];
}

/** `config.rbac.v3.RBAC`: policies sorted by name (Envoy keeps them in an ordered map; the first match names the decision). */
export interface RbacRules {
  readonly action: RbacAction;
  readonly policies: readonly RbacPolicy[];
}

export interface RbacFilterConfig {
  readonly kind: 'http' | 'network';
  /** null: the filter enforces nothing. */
  readonly rules: RbacRules | null;
  readonly shadowRules: RbacRules | null;
  /** HTTP: `rules_stat_prefix`; network: `stat_prefix` (required by Envoy). */
  readonly statPrefix: string;
  readonly shadowRulesStatPrefix: string;
  /** Network only: ONE_TIME_ON_FIRST_BYTE (default) or CONTINUOUS; Trellis decides once, when the connection is dispatched. */
  readonly enforcementType: 'ONE_TIME_ON_FIRST_BYTE' | 'CONTINUOUS';
}

function cidr(o: Obj, p: string): RbacCidr {
  const address = reqStr(o, 'address_prefix', p);
  const max = address.includes(':') ? 128 : 32;
  const prefixLen = wrapped(o, 'prefix_len', p) ?? max;
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > max) fail(join(p, 'prefix_len'), `must be 0-${max}`);
  return { address, prefixLen };
}

function int64(v: unknown, p: string): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) fail(p, 'must be a number');
  return n;
}

export function decodeRbacHeaderMatch(h: Obj, p: string): RbacHeaderMatch {
  const name = reqStr(h, 'name', p).toLowerCase();
  const base = { name, match: null, present: true, range: null, invert: bool(h, 'invert_match'), treatMissingAsEmpty: bool(h, 'treat_missing_header_as_empty') };
  if (typeof h.present_match === 'boolean') return { ...base, kind: 'present', present: h.present_match };
  const sm = obj(h, 'string_match', p);
  if (sm) return { ...base, kind: 'string', match: decodeStringMatcher(sm, join(p, 'string_match')) };
  for (const [key, kind] of [['exact_match', 'exact'], ['prefix_match', 'prefix'], ['suffix_match', 'suffix'], ['contains_match', 'contains']] as const) {
    if (typeof h[key] === 'string') return { ...base, kind: 'string', match: { kind, value: h[key] as string, ignoreCase: false } };
  }
  const sr = obj(h, 'safe_regex_match', p);
  if (sr) {
    const pattern = reqStr(sr, 'regex', join(p, 'safe_regex_match'));
    return { ...base, kind: 'string', match: { kind: 'regex', value: pattern, ignoreCase: false, regex: regex(pattern, join(p, 'safe_regex_match.regex')) } };
  }
  const rm = obj(h, 'range_match', p);
  if (rm) return { ...base, kind: 'range', range: { start: int64(rm.start ?? 0, join(p, 'range_match.start')), end: int64(rm.end ?? 0, join(p, 'range_match.end')) } };
  // No match specifier: Envoy treats it as "present".
  return { ...base, kind: 'present', present: true };
}

function decodeValueMatch(v: Obj, p: string): RbacValueMatch {
  if (obj(v, 'null_match', p)) return { kind: 'null' };
  const dm = obj(v, 'double_match', p);
  if (dm) {
    const dp = join(p, 'double_match');
    const r = obj(dm, 'range', dp);
    if (r) return { kind: 'double', exact: null, range: { start: num(r, 'start', join(dp, 'range')) ?? 0, end: num(r, 'end', join(dp, 'range')) ?? 0 } };
    return { kind: 'double', exact: num(dm, 'exact', dp) ?? 0, range: null };
  }
  const sm = obj(v, 'string_match', p);
  if (sm) return { kind: 'string', match: decodeStringMatcher(sm, join(p, 'string_match')) };
  if (typeof v.bool_match === 'boolean') return { kind: 'bool', value: v.bool_match };
  if (typeof v.present_match === 'boolean') return { kind: 'present', value: v.present_match };
  const lm = obj(v, 'list_match', p);
  if (lm) return { kind: 'list', oneOf: decodeValueMatch(reqObj(lm, 'one_of', join(p, 'list_match')), join(p, 'list_match.one_of')) };
  const om = obj(v, 'or_match', p);
  if (om) {
    const matchers = list(om, 'value_matchers', join(p, 'or_match'), decodeValueMatch);
    if (matchers.length < 2) fail(join(p, 'or_match.value_matchers'), 'needs at least 2 matchers');
    return { kind: 'or', matchers };
  }
  return fail(p, 'one of null_match, double_match, string_match, bool_match, present_match, list_match, or_match is required');
}

function decodeMetadataMatch(m: Obj, p: string): RbacMetadataMatch {
  const filter = reqStr(m, 'filter', p);
  const path = list(m, 'path', p, (s, sp) => reqStr(s, 'key', sp));
  if (path.length === 0) fail(join(p, 'path'), 'must not be empty');
  return { filter, path, value: decodeValueMatch(reqObj(m, 'value', p), join(p, 'value')), invert: bool(m, 'invert') };
}

function pathMatch(o: Obj, p: string): StringMatch {
  return decodeStringMatcher(reqObj(o, 'path', p), join(p, 'path'));
}

function unsupported(o: Obj, p: string, keys: readonly string[]): void {
  for (const k of keys) if (o[k] !== undefined && o[k] !== null) fail(join(p, k), 'not supported by trellis-proxy');
}

function setOf<T>(o: Obj, key: string, itemsKey: string, p: string, each: (x: Obj, xp: string) => T): readonly T[] {
  const s = reqObj(o, key, p);
  const items = list(s, itemsKey, join(p, key), each);
  if (items.length === 0) fail(join(join(p, key), itemsKey), 'must not be empty');
  return items;
}

export function decodeRbacPermission(o: Obj, p: string): RbacPermission {
  unsupported(o, p, ['matcher', 'uri_template']);
  if (o.any === true) return { kind: 'any' };
  if (o.and_rules !== undefined) return { kind: 'and', rules: setOf(o, 'and_rules', 'rules', p, decodeRbacPermission) };
  if (o.or_rules !== undefined) return { kind: 'or', rules: setOf(o, 'or_rules', 'rules', p, decodeRbacPermission) };
  const nr = obj(o, 'not_rule', p);
  if (nr) return { kind: 'not', rule: decodeRbacPermission(nr, join(p, 'not_rule')) };
  const h = obj(o, 'header', p);
  if (h) return { kind: 'header', header: decodeRbacHeaderMatch(h, join(p, 'header')) };
  const up = obj(o, 'url_path', p);
  if (up) return { kind: 'urlPath', match: pathMatch(up, join(p, 'url_path')) };
  const di = obj(o, 'destination_ip', p);
  if (di) return { kind: 'destinationIp', cidr: cidr(di, join(p, 'destination_ip')) };
  if (o.destination_port !== undefined && o.destination_port !== null) {
    const port = num(o, 'destination_port', p)!;
    if (!Number.isInteger(port) || port < 0 || port > 65535) fail(join(p, 'destination_port'), 'must be a port 0-65535');
    return { kind: 'destinationPort', port };
  }
  const dr = obj(o, 'destination_port_range', p);
  if (dr) {
    const rp = join(p, 'destination_port_range');
    return { kind: 'destinationPortRange', start: num(dr, 'start', rp) ?? 0, end: num(dr, 'end', rp) ?? 0 };
  }
  const md = obj(o, 'metadata', p);
  if (md) return { kind: 'metadata', metadata: decodeMetadataMatch(md, join(p, 'metadata')) };
  const sni = obj(o, 'requested_server_name', p);
  if (sni) return { kind: 'requestedServerName', match: decodeStringMatcher(sni, join(p, 'requested_server_name')) };
  return fail(p, 'one of any, and_rules, or_rules, not_rule, header, url_path, destination_ip, destination_port, destination_port_range, metadata, requested_server_name is required');
}

export function decodeRbacPrincipal(o: Obj, p: string): RbacPrincipal {
  unsupported(o, p, ['filter_state', 'custom']);
  if (o.any === true) return { kind: 'any' };
  if (o.and_ids !== undefined) return { kind: 'and', ids: setOf(o, 'and_ids', 'ids', p, decodeRbacPrincipal) };
  if (o.or_ids !== undefined) return { kind: 'or', ids: setOf(o, 'or_ids', 'ids', p, decodeRbacPrincipal) };
  const ni = obj(o, 'not_id', p);
  if (ni) return { kind: 'not', id: decodeRbacPrincipal(ni, join(p, 'not_id')) };
  if (o.authenticated !== undefined && o.authenticated !== null) {
    if (!isObj(o.authenticated)) fail(join(p, 'authenticated'), 'must be a message');
    const pn = obj(o.authenticated, 'principal_name', join(p, 'authenticated'));
    return { kind: 'authenticated', match: pn ? decodeStringMatcher(pn, join(p, 'authenticated.principal_name')) : null };
  }
  for (const key of ['source_ip', 'direct_remote_ip'] as const) {
    const c = obj(o, key, p);
    if (c) return { kind: 'directRemoteIp', cidr: cidr(c, join(p, key)) };
  }
  const ri = obj(o, 'remote_ip', p);
  if (ri) return { kind: 'remoteIp', cidr: cidr(ri, join(p, 'remote_ip')) };
  const h = obj(o, 'header', p);
  if (h) return { kind: 'header', header: decodeRbacHeaderMatch(h, join(p, 'header')) };
  const up = obj(o, 'url_path', p);
  if (up) return { kind: 'urlPath', match: pathMatch(up, join(p, 'url_path')) };
  const md = obj(o, 'metadata', p);
  if (md) return { kind: 'metadata', metadata: decodeMetadataMatch(md, join(p, 'metadata')) };
  return fail(p, 'one of any, and_ids, or_ids, not_id, authenticated, source_ip, direct_remote_ip, remote_ip, header, url_path, metadata is required');
}

/** `config.rbac.v3.RBAC`, or null when absent. */
export function decodeRbacRules(o: Obj | undefined, p: string): RbacRules | null {
  if (!o) return null;
  const action = enumOf(o, 'action', p, ['ALLOW', 'DENY', 'LOG'] as const, 'ALLOW');
  const pm = obj(o, 'policies', p);
  const policies: RbacPolicy[] = [];
  for (const name of Object.keys(pm ?? {}).sort()) {
    const pp = `${join(p, 'policies')}[${JSON.stringify(name)}]`;
    const po = pm![name];
    if (!isObj(po)) fail(pp, 'must be a message');
    unsupported(po, pp, ['condition', 'checked_condition']);
    const permissions = list(po, 'permissions', pp, decodeRbacPermission);
    const principals = list(po, 'principals', pp, decodeRbacPrincipal);
    if (permissions.length === 0) fail(join(pp, 'permissions'), 'must not be empty');
    if (principals.length === 0) fail(join(pp, 'principals'), 'must not be empty');
    policies.push({ name, permissions, principals });
  }
  return { action, policies };
}

function decodeRbac(kind: 'http' | 'network', tc: Obj, p: string): RbacFilterConfig {
  unsupported(tc, p, ['matcher', 'shadow_matcher']);
  const statPrefix = kind === 'http' ? (str(tc, 'rules_stat_prefix', p) ?? '') : reqStr(tc, 'stat_prefix', p);
  return deepFreeze({
    kind,
    rules: decodeRbacRules(obj(tc, 'rules', p), join(p, 'rules')),
    shadowRules: decodeRbacRules(obj(tc, 'shadow_rules', p), join(p, 'shadow_rules')),
    statPrefix,
    shadowRulesStatPrefix: str(tc, 'shadow_rules_stat_prefix', p) ?? '',
    enforcementType: kind === 'network' ? enumOf(tc, 'enforcement_type', p, ['ONE_TIME_ON_FIRST_BYTE', 'CONTINUOUS'] as const, 'ONE_TIME_ON_FIRST_BYTE') : 'ONE_TIME_ON_FIRST_BYTE',
  });
}

/** `envoy.extensions.filters.http.rbac.v3.RBAC` (HTTP_FILTER_DECODERS). */
export function decodeHttpRbac(tc: Obj, path: string): RbacFilterConfig {
  return decodeRbac('http', tc, path);
}

/** `envoy.extensions.filters.network.rbac.v3.RBAC` (NETWORK_FILTER_DECODERS). */
export function decodeNetworkRbac(tc: Obj, path: string): RbacFilterConfig {
  return decodeRbac('network', tc, path);
}
