/** `envoy.config.route.v3.RouteConfiguration` → RouteConfig (also used for HCM's inline `route_config`). */
import { type HeaderToAdd, type StringMatch, decodeHeadersToAdd, decodeStringMatcher, lowerStrs } from './common.js';
import { PER_ROUTE_DECODERS, decodeFilterConfig } from './filter-configs.js';
import { type FractionalPercent, decodeFractionalPercent } from './fault.js';
import { type Obj, bool, deepFreeze, durationMs, enumOf, fail, join, list, num, obj, regex, reqStr, str, strs, wrapped } from './read.js';

export interface HeaderMatch {
  readonly name: string;
  /** null = present match. */
  readonly match: StringMatch | null;
  /** For present_match: whether the header must be present (true) or absent (false). */
  readonly present: boolean;
  readonly invert: boolean;
}

export interface QueryMatch {
  readonly name: string;
  readonly match: StringMatch | null;
}

export interface RouteMatch {
  readonly kind: 'prefix' | 'path' | 'regex' | 'path_separated_prefix';
  readonly value: string;
  readonly regex?: RegExp;
  readonly caseSensitive: boolean;
  readonly headers: readonly HeaderMatch[];
  readonly queryParameters: readonly QueryMatch[];
}

export interface WeightedCluster {
  readonly name: string;
  readonly weight: number;
  readonly requestHeadersToAdd: readonly HeaderToAdd[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  readonly responseHeadersToRemove: readonly string[];
}

/** `envoy.config.route.v3.RetryPolicy`, with Envoy's defaults filled in (docs/proxy.md "Timeouts and retries"). */
export interface RetryPolicy {
  /** The `retry_on` conditions as written (unknown ones are kept and ignored by the proxy, as Envoy does). */
  readonly retryOn: readonly string[];
  /** Retries after the first attempt (`num_retries`, default 1). */
  readonly numRetries: number;
  /** Bounds each attempt until its response head is forwarded; null = only the route timeout. */
  readonly perTryTimeoutMs: number | null;
  /** Bounds the silence between events of one attempt (head, body chunks), also while the response streams; null = none. */
  readonly perTryIdleTimeoutMs: number | null;
  /** For `retriable-status-codes`. */
  readonly retriableStatusCodes: readonly number[];
  /** For `retriable-headers`: a response matching any of these is retried. */
  readonly retriableHeaders: readonly HeaderMatch[];
  /** When non-empty, only requests matching one of these are retried at all. */
  readonly retriableRequestHeaders: readonly HeaderMatch[];
  /** `retry_back_off`: base 25 ms and max 10 × base unless set. */
  readonly backOff: { readonly baseIntervalMs: number; readonly maxIntervalMs: number };
  /** `retry_host_predicate` extension names (e.g. `envoy.retry_host_predicates.previous_hosts`). */
  readonly retryHostPredicates: readonly string[];
  /** `host_selection_retry_max_attempts` (default 1): how often host selection is redone while a predicate rejects the host. */
  readonly hostSelectionRetryMaxAttempts: number;
}

export type HashPolicy =
  | { readonly kind: 'header'; readonly name: string; readonly terminal: boolean }
  | { readonly kind: 'cookie'; readonly name: string; readonly terminal: boolean }
  | { readonly kind: 'source_ip'; readonly terminal: boolean }
  | { readonly kind: 'query'; readonly name: string; readonly terminal: boolean };

export interface ForwardAction {
  readonly kind: 'route';
  /** Exactly one of cluster / weightedClusters is set. */
  readonly cluster: string | null;
  readonly weightedClusters: readonly WeightedCluster[] | null;
  readonly prefixRewrite: string | null;
  readonly regexRewrite: { readonly pattern: RegExp; readonly substitution: string } | null;
  readonly hostRewrite: string | null;
  /** 0 = no timeout; Envoy's default when unset is 15 s. */
  readonly timeoutMs: number;
  readonly retryPolicy: RetryPolicy | null;
  readonly hashPolicy: readonly HashPolicy[];
  /** `request_mirror_policies`: copies of the request go to each cluster for the fraction of requests given. */
  readonly requestMirrorPolicies: readonly MirrorPolicy[];
}

/** `RouteAction.RequestMirrorPolicy` (Istio's `mirror` / `mirrors` with `mirrorPercentage`). */
export interface MirrorPolicy {
  readonly cluster: string;
  /** `runtime_fraction.default_value`; 100 % when unset (Envoy mirrors every request then). */
  readonly fraction: FractionalPercent;
  /** `disable_shadow_host_suffix_append`: keep the authority as it is instead of appending `-shadow`. */
  readonly keepAuthority: boolean;
}

export interface RedirectAction {
  readonly kind: 'redirect';
  readonly scheme: string | null;
  readonly host: string | null;
  readonly port: number | null;
  readonly path: string | null;
  readonly prefixRewrite: string | null;
  readonly stripQuery: boolean;
  readonly status: 301 | 302 | 303 | 307 | 308;
}

export interface DirectResponseAction {
  readonly kind: 'direct_response';
  readonly status: number;
  readonly body: string;
}

export interface Route {
  readonly name: string;
  /** Decoded per-filter overrides by filter name (see filter-configs.ts PER_ROUTE_DECODERS; undecoded types are absent). */
  readonly typedPerFilterConfig: Readonly<Record<string, unknown>>;
  readonly match: RouteMatch;
  readonly action: ForwardAction | RedirectAction | DirectResponseAction;
  readonly requestHeadersToAdd: readonly HeaderToAdd[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  readonly responseHeadersToRemove: readonly string[];
}

export interface VirtualHost {
  readonly name: string;
  /** Decoded per-filter overrides by filter name, as on Route. */
  readonly typedPerFilterConfig: Readonly<Record<string, unknown>>;
  readonly domains: readonly string[];
  readonly routes: readonly Route[];
  readonly requestHeadersToAdd: readonly HeaderToAdd[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  readonly responseHeadersToRemove: readonly string[];
  readonly retryPolicy: RetryPolicy | null;
  /** `require_tls`: ALL answers every plaintext request with a 301 to https (gateway `httpsRedirect`). */
  readonly requireTls?: 'NONE' | 'EXTERNAL_ONLY' | 'ALL';
}

export interface RouteConfig {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
  readonly requestHeadersToAdd: readonly HeaderToAdd[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  readonly responseHeadersToRemove: readonly string[];
}

function headerOps(o: Obj, path: string) {
  return {
    requestHeadersToAdd: decodeHeadersToAdd(o, 'request_headers_to_add', path),
    requestHeadersToRemove: lowerStrs(o, 'request_headers_to_remove', path),
    responseHeadersToAdd: decodeHeadersToAdd(o, 'response_headers_to_add', path),
    responseHeadersToRemove: lowerStrs(o, 'response_headers_to_remove', path),
  };
}

/** `typed_per_filter_config`: filter name → decoded override, for the types PER_ROUTE_DECODERS knows. */
function perFilterConfigs(o: Obj, p: string): Record<string, unknown> {
  const m = obj(o, 'typed_per_filter_config', p);
  const out: Record<string, unknown> = {};
  if (!m) return out;
  const mp = join(p, 'typed_per_filter_config');
  for (const name of Object.keys(m)) {
    const c = decodeFilterConfig(PER_ROUTE_DECODERS, obj(m, name, mp), join(mp, name));
    if (c !== null) out[name] = c;
  }
  return out;
}

function decodeHeaderMatch(h: Obj, p: string): HeaderMatch {
  const name = reqStr(h, 'name', p).toLowerCase();
  const invert = bool(h, 'invert_match');
  if (typeof h.present_match === 'boolean') return { name, match: null, present: h.present_match, invert };
  const sm = obj(h, 'string_match', p);
  if (sm) return { name, match: decodeStringMatcher(sm, join(p, 'string_match')), present: true, invert };
  for (const [key, kind] of [['exact_match', 'exact'], ['prefix_match', 'prefix'], ['suffix_match', 'suffix'], ['contains_match', 'contains']] as const) {
    if (typeof h[key] === 'string') return { name, match: { kind, value: h[key] as string, ignoreCase: false }, present: true, invert };
  }
  const sr = obj(h, 'safe_regex_match', p);
  if (sr) {
    const pattern = reqStr(sr, 'regex', join(p, 'safe_regex_match'));
    return { name, match: { kind: 'regex', value: pattern, ignoreCase: false, regex: regex(pattern, join(p, 'safe_regex_match.regex')) }, present: true, invert };
  }
  return { name, match: null, present: true, invert };
}

export function decodeMatch(m: Obj, p: string): RouteMatch {
  const caseSensitive = m.case_sensitive === undefined || m.case_sensitive === null ? true : (m.case_sensitive as { value?: boolean }).value !== false;
  const headers = list(m, 'headers', p, decodeHeaderMatch);
  const queryParameters = list(m, 'query_parameters', p, (q, qp): QueryMatch => {
    const name = reqStr(q, 'name', qp);
    const sm = obj(q, 'string_match', qp);
    return { name, match: sm ? decodeStringMatcher(sm, join(qp, 'string_match')) : null };
  });
  const common = { caseSensitive, headers, queryParameters };
  if (typeof m.prefix === 'string') return { kind: 'prefix', value: m.prefix, ...common };
  if (typeof m.path === 'string') return { kind: 'path', value: m.path, ...common };
  if (typeof m.path_separated_prefix === 'string') return { kind: 'path_separated_prefix', value: m.path_separated_prefix, ...common };
  const sr = obj(m, 'safe_regex', p);
  if (sr) {
    const pattern = reqStr(sr, 'regex', join(p, 'safe_regex'));
    return { kind: 'regex', value: pattern, regex: regex(pattern, join(p, 'safe_regex.regex'), caseSensitive ? '' : 'i'), ...common };
  }
  return fail(p, 'one of prefix, path, safe_regex, path_separated_prefix is required');
}

function decodeRetry(r: Obj | undefined, p: string): RetryPolicy | null {
  if (!r) return null;
  const retryOn = (str(r, 'retry_on', p) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const rawCodes = r.retriable_status_codes ?? [];
  if (!Array.isArray(rawCodes)) fail(join(p, 'retriable_status_codes'), 'must be a list');
  const codes = (rawCodes as unknown[]).map((c, i) => {
    const n = typeof c === 'string' ? Number(c) : c;
    return typeof n === 'number' && Number.isInteger(n) && n >= 100 && n <= 599 ? n : fail(join(join(p, 'retriable_status_codes'), i), 'must be an HTTP status 100-599');
  });
  const bo = obj(r, 'retry_back_off', p);
  let backOff = { baseIntervalMs: 25, maxIntervalMs: 250 };
  if (bo) {
    const bp = join(p, 'retry_back_off');
    const base = durationMs(bo, 'base_interval', bp) ?? fail(join(bp, 'base_interval'), 'required');
    if (base <= 0) fail(join(bp, 'base_interval'), 'must be greater than 0');
    const max = durationMs(bo, 'max_interval', bp) ?? base * 10;
    if (max < base) fail(join(bp, 'max_interval'), 'must be at least base_interval');
    backOff = { baseIntervalMs: base, maxIntervalMs: max };
  }
  const hostAttempts = num(r, 'host_selection_retry_max_attempts', p) ?? 1;
  if (!Number.isInteger(hostAttempts) || hostAttempts < 0) fail(join(p, 'host_selection_retry_max_attempts'), 'must be a non-negative integer');
  return {
    retryOn,
    numRetries: wrapped(r, 'num_retries', p) ?? 1,
    perTryTimeoutMs: durationMs(r, 'per_try_timeout', p) || null,
    perTryIdleTimeoutMs: durationMs(r, 'per_try_idle_timeout', p) || null,
    retriableStatusCodes: Object.freeze(codes),
    retriableHeaders: list(r, 'retriable_headers', p, decodeHeaderMatch),
    retriableRequestHeaders: list(r, 'retriable_request_headers', p, decodeHeaderMatch),
    backOff,
    retryHostPredicates: list(r, 'retry_host_predicate', p, (h, hp) => reqStr(h, 'name', hp)),
    hostSelectionRetryMaxAttempts: hostAttempts,
  };
}

function decodeForward(a: Obj, p: string): ForwardAction {
  const cluster = str(a, 'cluster', p) ?? null;
  const wc = obj(a, 'weighted_clusters', p);
  let weightedClusters: WeightedCluster[] | null = null;
  if (wc) {
    const wp = join(p, 'weighted_clusters');
    weightedClusters = [...list(wc, 'clusters', wp, (c, cp) => ({
      name: reqStr(c, 'name', cp),
      weight: wrapped(c, 'weight', cp) ?? 0,
      ...headerOps(c, cp),
    }))];
    if (!weightedClusters.length) fail(join(wp, 'clusters'), 'must not be empty');
    if (weightedClusters.every((c) => c.weight === 0)) fail(join(wp, 'clusters'), 'total weight must be positive');
  }
  if (!cluster && !weightedClusters) {
    if (str(a, 'cluster_header', p)) fail(join(p, 'cluster_header'), 'not supported');
    fail(join(p, 'cluster'), 'required (or weighted_clusters)');
  }
  const rr = obj(a, 'regex_rewrite', p);
  let regexRewrite: ForwardAction['regexRewrite'] = null;
  if (rr) {
    const rp = join(p, 'regex_rewrite');
    const pat = reqStr(obj(rr, 'pattern', rp) ?? fail(join(rp, 'pattern'), 'required'), 'regex', join(rp, 'pattern'));
    try { regexRewrite = { pattern: new RegExp(pat, 'g'), substitution: (str(rr, 'substitution', rp) ?? '').replace(/\\(\d)/g, '$$$1') }; } catch (e) { fail(join(rp, 'pattern.regex'), `invalid regex: ${(e as Error).message}`); }
  }
  const hashPolicy = list(a, 'hash_policy', p, (h, hp): HashPolicy => {
    const terminal = bool(h, 'terminal');
    const header = obj(h, 'header', hp);
    if (header) return { kind: 'header', name: reqStr(header, 'header_name', join(hp, 'header')).toLowerCase(), terminal };
    const cookie = obj(h, 'cookie', hp);
    if (cookie) return { kind: 'cookie', name: reqStr(cookie, 'name', join(hp, 'cookie')), terminal };
    const cp = obj(h, 'connection_properties', hp);
    if (cp) return { kind: 'source_ip', terminal };
    const q = obj(h, 'query_parameter', hp);
    if (q) return { kind: 'query', name: reqStr(q, 'name', join(hp, 'query_parameter')), terminal };
    return fail(hp, 'one of header, cookie, connection_properties, query_parameter is required');
  });
  return {
    kind: 'route',
    cluster: weightedClusters ? null : cluster,
    weightedClusters,
    prefixRewrite: typeof a.prefix_rewrite === 'string' ? a.prefix_rewrite : null,
    regexRewrite,
    hostRewrite: str(a, 'host_rewrite_literal', p) ?? null,
    timeoutMs: durationMs(a, 'timeout', p) ?? 15000,
    retryPolicy: decodeRetry(obj(a, 'retry_policy', p), join(p, 'retry_policy')),
    hashPolicy,
    requestMirrorPolicies: list(a, 'request_mirror_policies', p, (m, mp): MirrorPolicy => {
      const rf = obj(m, 'runtime_fraction', mp);
      const rfp = join(mp, 'runtime_fraction');
      return {
        cluster: reqStr(m, 'cluster', mp),
        fraction: decodeFractionalPercent(rf ? obj(rf, 'default_value', rfp) : undefined, join(rfp, 'default_value'), { numerator: 100, denominator: 100 }),
        keepAuthority: bool(m, 'disable_shadow_host_suffix_append'),
      };
    }),
  };
}

const REDIRECT_CODES = { MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308 } as const;

function decodeRedirect(r: Obj, p: string): RedirectAction {
  const code = r.response_code ?? 'MOVED_PERMANENTLY';
  const status = REDIRECT_CODES[code as keyof typeof REDIRECT_CODES] ?? fail(join(p, 'response_code'), 'unsupported');
  return {
    kind: 'redirect',
    scheme: r.https_redirect === true ? 'https' : (str(r, 'scheme_redirect', p) ?? null),
    host: str(r, 'host_redirect', p) ?? null,
    port: num(r, 'port_redirect', p) || null,
    path: str(r, 'path_redirect', p) ?? null,
    prefixRewrite: typeof r.prefix_rewrite === 'string' ? r.prefix_rewrite : null,
    stripQuery: bool(r, 'strip_query'),
    status,
  };
}

function decodeDirect(d: Obj, p: string): DirectResponseAction {
  const status = num(d, 'status', p);
  if (status === undefined || status < 200 || status > 599) fail(join(p, 'status'), 'required, 200-599');
  const body = obj(d, 'body', p);
  let text = '';
  if (body) {
    if (typeof body.inline_string === 'string') text = body.inline_string;
    else if (typeof body.inline_bytes === 'string') text = Buffer.from(body.inline_bytes, 'base64').toString('utf8');
    else if (body.filename !== undefined) fail(join(p, 'body.filename'), 'not supported');
  }
  return { kind: 'direct_response', status, body: text };
}

function decodeRoute(r: Obj, p: string): Route {
  const match = decodeMatch(obj(r, 'match', p) ?? fail(join(p, 'match'), 'required'), join(p, 'match'));
  const route = obj(r, 'route', p);
  const redirect = obj(r, 'redirect', p);
  const direct = obj(r, 'direct_response', p);
  let action: Route['action'];
  if (route) action = decodeForward(route, join(p, 'route'));
  else if (redirect) action = decodeRedirect(redirect, join(p, 'redirect'));
  else if (direct) action = decodeDirect(direct, join(p, 'direct_response'));
  else return fail(p, 'one of route, redirect, direct_response is required');
  return { name: str(r, 'name', p) ?? '', match, action, ...headerOps(r, p), typedPerFilterConfig: perFilterConfigs(r, p) };
}

function decodeVirtualHost(v: Obj, p: string): VirtualHost {
  const domains = strs(v, 'domains', p).map((d) => d.toLowerCase());
  if (!domains.length) fail(join(p, 'domains'), 'must not be empty');
  return {
    name: reqStr(v, 'name', p),
    domains,
    routes: list(v, 'routes', p, decodeRoute),
    ...headerOps(v, p),
    retryPolicy: decodeRetry(obj(v, 'retry_policy', p), join(p, 'retry_policy')),
    typedPerFilterConfig: perFilterConfigs(v, p),
    requireTls: enumOf(v, 'require_tls', p, ['NONE', 'EXTERNAL_ONLY', 'ALL'] as const, 'NONE'),
  };
}

/** Decodes a RouteConfiguration; `path` prefixes error paths (empty for a top-level RDS resource). */
export function decodeRouteConfig(o: Obj, path = ''): RouteConfig {
  const vhosts = list(o, 'virtual_hosts', path, decodeVirtualHost);
  const seen = new Set<string>();
  vhosts.forEach((v, i) => v.domains.forEach((d) => {
    if (seen.has(d)) fail(join(join(join(path, 'virtual_hosts'), i), 'domains'), `duplicate domain ${d}`);
    seen.add(d);
  }));
  return deepFreeze({ name: str(o, 'name', path) ?? '', virtualHosts: vhosts, ...headerOps(o, path) });
}
