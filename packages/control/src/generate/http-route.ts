/**
 * One VirtualService `http` route → Envoy `Route`s (one per `match` entry, since Envoy ANDs within a match and
 * Istio ORs the entries), with Istio's conversions (pilot/pkg/networking/core/route/route.go):
 * matches (uri exact → `path`, prefix → `prefix`, regex → `safe_regex`; headers, `withoutHeaders` (inverted),
 * query parameters, method/authority/scheme as pseudo-headers), weighted destinations, rewrite, redirect, direct
 * response, timeout (default 0 = none), retries (Istio's default policy when unset), fault, mirrors, header
 * operations, CORS and consistent-hash `hash_policy` from the destination's DestinationRule.
 */
import { EXT_TYPE_URL } from '@trellis/api';
import type { HTTPMatchRequest, HTTPRoute, HTTPRouteDestination, StringMatch, Headers, Destination, CorsPolicy, HTTPRetry, HTTPFaultInjection } from '@trellis/model';
import type { ProxyNode, Snapshot } from '../snapshot/types.js';
import { destinationRuleFor, effectivePolicy } from './destination-rules.js';
import { outboundClusterName } from './names.js';
import { duration, fractionalPercent, u32 } from './proto.js';
import { labelsMatch, resolveHost } from './scope.js';

type Obj = Record<string, unknown>;

export const FAULT_FILTER = 'envoy.filters.http.fault';
export const CORS_FILTER = 'envoy.filters.http.cors';
export const ROUTER_FILTER = 'envoy.filters.http.router';

/** Istio's retry policy for routes that set none (pilot/pkg/networking/core/route/retry/retry.go DefaultPolicy). */
export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';
export function defaultRetryPolicy(): Obj {
  return {
    num_retries: u32(2),
    retry_on: DEFAULT_RETRY_ON,
    retriable_status_codes: [503],
    retry_host_predicate: [previousHostsPredicate()],
    host_selection_retry_max_attempts: 5,
  };
}

/**
 * `envoy.retry_host_predicates.previous_hosts`: retries prefer hosts not tried yet. Istio puts it on every retry
 * policy it builds (the default one and those converted from `retries`, which start from the default).
 */
export function previousHostsPredicate(): Obj {
  return { name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': EXT_TYPE_URL.previousHosts } };
}

/** What a route is being built for. */
export interface RouteContext {
  readonly snapshot: Snapshot;
  readonly proxy: ProxyNode;
  /** Namespace of the VirtualService (short destination hosts resolve against it). */
  readonly namespace: string;
  /** Port of the listener / route configuration, the default destination port. */
  readonly port: number;
  /** `mesh` for sidecars, `ns/name` of the gateway for routers. */
  readonly gateway: string;
  /** Omit what grpc-js-xds rejects or ignores (CORS, per-filter config) for proxyless clients. */
  readonly proxyless: boolean;
  /** The VirtualService's own `gateways` (normalised `ns/name` or `mesh`). */
  readonly vsGateways: readonly string[];
}

export function normaliseGateway(g: string, namespace: string): string {
  return g === 'mesh' || g.includes('/') ? g : `${namespace}/${g}`;
}

function stringMatcher(m: StringMatch): Obj {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.regex !== undefined) return { safe_regex: { regex: m.regex } };
  return {};
}

function headerMatcher(name: string, m: StringMatch, invert: boolean): Obj {
  const out: Obj = { name };
  if (m.exact === undefined && m.prefix === undefined && m.regex === undefined) out.present_match = true;
  else out.string_match = stringMatcher(m);
  if (invert) out.invert_match = true;
  return out;
}

/** Whether this match entry applies to the proxy at all (sourceLabels, sourceNamespace, gateways, port). */
function matchApplies(m: HTTPMatchRequest, ctx: RouteContext): boolean {
  if (m.sourceLabels !== undefined && (ctx.gateway !== 'mesh' || !labelsMatch(m.sourceLabels, ctx.proxy.labels))) return false;
  if (m.sourceNamespace !== undefined && m.sourceNamespace !== ctx.proxy.namespace) return false;
  if (m.port !== undefined && m.port !== ctx.port) return false;
  const gateways = m.gateways !== undefined && m.gateways.length > 0 ? m.gateways.map((g) => normaliseGateway(g, ctx.namespace)) : ctx.vsGateways;
  return gateways.includes(ctx.gateway);
}

export function routeMatch(m: HTTPMatchRequest | undefined): Obj {
  const out: Obj = {};
  const uri = m?.uri;
  if (uri?.exact !== undefined) out.path = uri.exact;
  else if (uri?.prefix !== undefined) out.prefix = uri.prefix;
  else if (uri?.regex !== undefined) out.safe_regex = { regex: uri.regex };
  else out.prefix = '/';
  if (m?.ignoreUriCase === true) out.case_sensitive = { value: false };
  const headers: Obj[] = [];
  if (m?.method !== undefined) headers.push(headerMatcher(':method', m.method, false));
  if (m?.authority !== undefined) headers.push(headerMatcher(':authority', m.authority, false));
  if (m?.scheme !== undefined) headers.push(headerMatcher(':scheme', m.scheme, false));
  for (const [name, sm] of Object.entries(m?.headers ?? {})) headers.push(headerMatcher(name, sm, false));
  for (const [name, sm] of Object.entries(m?.withoutHeaders ?? {})) headers.push(headerMatcher(name, sm, true));
  if (headers.length > 0) out.headers = headers;
  const qp = Object.entries(m?.queryParams ?? {}).map(([name, sm]) =>
    sm.exact === undefined && sm.prefix === undefined && sm.regex === undefined ? { name, present_match: true } : { name, string_match: stringMatcher(sm) },
  );
  if (qp.length > 0) out.query_parameters = qp;
  return out;
}

/** The cluster for a destination: FQDN host, port from the destination, else the service's only port, else ours. */
export function destinationCluster(d: Destination, ctx: RouteContext): string {
  const host = resolveHost(d.host, ctx.namespace, ctx.snapshot.mesh.domainSuffix);
  let port = d.port?.number;
  if (port === undefined) {
    const svc = ctx.snapshot.services.find((s) => s.service.hostname === host);
    port = svc !== undefined && svc.service.ports.length === 1 ? svc.service.ports[0]?.number : undefined;
  }
  return outboundClusterName(port ?? ctx.port, d.subset, host);
}

export function headerOps(h: Headers | undefined): Obj {
  const out: Obj = {};
  const build = (ops: NonNullable<Headers['request']>): Obj[] => [
    ...Object.entries(ops.set ?? {}).map(([key, value]) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })),
    ...Object.entries(ops.add ?? {}).map(([key, value]) => ({ header: { key, value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' })),
  ];
  if (h?.request !== undefined) {
    const add = build(h.request);
    if (add.length > 0) out.request_headers_to_add = add;
    if (h.request.remove !== undefined && h.request.remove.length > 0) out.request_headers_to_remove = [...h.request.remove];
  }
  if (h?.response !== undefined) {
    const add = build(h.response);
    if (add.length > 0) out.response_headers_to_add = add;
    if (h.response.remove !== undefined && h.response.remove.length > 0) out.response_headers_to_remove = [...h.response.remove];
  }
  return out;
}

export function retryPolicy(r: HTTPRetry | undefined): Obj | undefined {
  if (r === undefined) return defaultRetryPolicy();
  if (r.attempts === 0) return undefined;
  const out: Obj = { num_retries: u32(r.attempts), retry_host_predicate: [previousHostsPredicate()], host_selection_retry_max_attempts: 5 };
  const tokens = (r.retryOn ?? DEFAULT_RETRY_ON).split(',').map((t) => t.trim()).filter((t) => t !== '');
  const codes = tokens.filter((t) => /^\d{3}$/.test(t)).map(Number);
  const on = tokens.filter((t) => !/^\d{3}$/.test(t));
  if (codes.length > 0 && !on.includes('retriable-status-codes')) on.push('retriable-status-codes');
  out.retry_on = on.join(',');
  if (r.retryOn === undefined) out.retriable_status_codes = [503];
  else if (codes.length > 0) out.retriable_status_codes = codes;
  if (r.perTryTimeout !== undefined) out.per_try_timeout = duration(r.perTryTimeout);
  return out;
}

function faultConfig(f: HTTPFaultInjection): Obj {
  const out: Obj = { '@type': EXT_TYPE_URL.fault };
  if (f.delay !== undefined) {
    const pct = f.delay.percentage ?? f.delay.percent ?? 100;
    const d: Obj = { percentage: fractionalPercent(pct) };
    if (f.delay.fixedDelay !== undefined) d.fixed_delay = duration(f.delay.fixedDelay);
    out.delay = d;
  }
  if (f.abort !== undefined) {
    const a: Obj = { percentage: fractionalPercent(f.abort.percentage ?? 100) };
    if (f.abort.httpStatus !== undefined) a.http_status = f.abort.httpStatus;
    else if (f.abort.grpcStatus !== undefined) a.grpc_status = grpcCode(f.abort.grpcStatus);
    else a.http_status = 500;
    out.abort = a;
  }
  return out;
}

const GRPC_CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
function grpcCode(s: string): number {
  const i = GRPC_CODES.indexOf(s.toUpperCase());
  return i >= 0 ? i : Number.isInteger(Number(s)) ? Number(s) : 2;
}

function corsConfig(c: CorsPolicy): Obj {
  const out: Obj = { '@type': EXT_TYPE_URL.corsPolicy };
  const origins = [...(c.allowOrigins ?? []).map(stringMatcher), ...(c.allowOrigin ?? []).map((o) => (o === '*' ? { prefix: '' } : { exact: o }))];
  if (origins.length > 0) out.allow_origin_string_match = origins;
  if (c.allowMethods !== undefined) out.allow_methods = c.allowMethods.join(',');
  if (c.allowHeaders !== undefined) out.allow_headers = c.allowHeaders.join(',');
  if (c.exposeHeaders !== undefined) out.expose_headers = c.exposeHeaders.join(',');
  if (c.maxAge !== undefined) out.max_age = String(Math.floor(c.maxAge / 1000));
  if (c.allowCredentials !== undefined) out.allow_credentials = { value: c.allowCredentials };
  // Envoy forwards a preflight whose origin matches nothing (the default, Istio's FORWARD); IGNORE answers it here.
  if (c.unmatchedPreflights === 'IGNORE') out.forward_not_matching_preflights = { value: false };
  return out;
}

const REDIRECT_CODES: Readonly<Record<number, string>> = { 301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT' };

function hashPolicy(d: Destination, ctx: RouteContext): Obj[] | undefined {
  const host = resolveHost(d.host, ctx.namespace, ctx.snapshot.mesh.domainSuffix);
  const svc = ctx.snapshot.services.find((s) => s.service.hostname === host);
  const dr = destinationRuleFor(ctx.snapshot, ctx.proxy, host, svc?.service.namespace ?? ctx.namespace);
  const ch = effectivePolicy(dr, d.port?.number ?? ctx.port, d.subset)?.loadBalancer?.consistentHash;
  if (ch === undefined) return undefined;
  if (ch.httpHeaderName !== undefined) return [{ header: { header_name: ch.httpHeaderName } }];
  if (ch.httpCookie !== undefined) {
    const cookie: Obj = { name: ch.httpCookie.name };
    if (ch.httpCookie.path !== undefined) cookie.path = ch.httpCookie.path;
    if (ch.httpCookie.ttl !== undefined) cookie.ttl = duration(ch.httpCookie.ttl);
    return [{ cookie }];
  }
  if (ch.useSourceIp === true) return [{ connection_properties: { source_ip: true } }];
  if (ch.httpQueryParameterName !== undefined) return [{ query_parameter: { name: ch.httpQueryParameterName } }];
  return undefined;
}

function routeAction(r: HTTPRoute, ctx: RouteContext, prefixMatch: boolean): Obj {
  const dests = (r.route ?? []).filter((d, _i, all) => all.length === 1 || (d.weight ?? 0) > 0);
  const action: Obj = {};
  if (dests.length === 1 && dests[0] !== undefined && dests[0].headers === undefined) {
    action.cluster = destinationCluster(dests[0].destination, ctx);
  } else {
    action.weighted_clusters = {
      clusters: dests.map((d: HTTPRouteDestination) => ({
        name: destinationCluster(d.destination, ctx),
        weight: u32(dests.length === 1 ? 100 : (d.weight ?? 0)),
        ...headerOps(d.headers),
      })),
    };
  }
  action.timeout = duration(r.timeout ?? 0);
  const retry = retryPolicy(r.retries);
  if (retry !== undefined) action.retry_policy = retry;
  if (r.rewrite?.uri !== undefined) {
    if (prefixMatch || r.rewrite.uri !== '') action.prefix_rewrite = r.rewrite.uri;
  } else if (r.rewrite?.uriRegexRewrite !== undefined) {
    action.regex_rewrite = { pattern: { regex: r.rewrite.uriRegexRewrite.match }, substitution: r.rewrite.uriRegexRewrite.rewrite };
  }
  if (r.rewrite?.authority !== undefined) action.host_rewrite_literal = r.rewrite.authority;
  const mirrors: Obj[] = [];
  if (r.mirror !== undefined) {
    mirrors.push({ cluster: destinationCluster(r.mirror, ctx), runtime_fraction: { default_value: fractionalPercent(r.mirrorPercentage ?? r.mirrorPercent ?? 100) } });
  }
  for (const m of r.mirrors ?? []) {
    mirrors.push({ cluster: destinationCluster(m.destination, ctx), runtime_fraction: { default_value: fractionalPercent(m.percentage ?? 100) } });
  }
  if (mirrors.length > 0) action.request_mirror_policies = mirrors;
  const first = dests[0];
  if (first !== undefined) {
    const hp = hashPolicy(first.destination, ctx);
    if (hp !== undefined) action.hash_policy = hp;
  }
  return action;
}

function redirectAction(r: NonNullable<HTTPRoute['redirect']>): Obj {
  const out: Obj = {};
  if (r.uri !== undefined) out.path_redirect = r.uri;
  if (r.authority !== undefined) out.host_redirect = r.authority;
  if (r.port !== undefined) out.port_redirect = r.port;
  if (r.scheme !== undefined) out.scheme_redirect = r.scheme;
  out.response_code = REDIRECT_CODES[r.redirectCode] ?? 'MOVED_PERMANENTLY';
  return out;
}

/**
 * Envoy routes for one VirtualService http route, for the matches that apply to this proxy and context. An empty
 * result means the route does not apply here.
 */
export function buildHttpRoutes(r: HTTPRoute, ctx: RouteContext): Obj[] {
  const matches: (HTTPMatchRequest | undefined)[] = r.match === undefined || r.match.length === 0 ? [undefined] : [...r.match];
  const out: Obj[] = [];
  for (const m of matches) {
    if (m !== undefined ? !matchApplies(m, ctx) : !ctx.vsGateways.includes(ctx.gateway)) continue;
    const match = routeMatch(m);
    const envoy: Obj = {};
    const name = r.name !== undefined && m?.name !== undefined ? `${r.name}.${m.name}` : (r.name ?? m?.name);
    if (name !== undefined) envoy.name = name;
    envoy.match = match;
    if (r.redirect !== undefined) {
      if (ctx.proxyless) continue;
      envoy.redirect = redirectAction(r.redirect);
    } else if (r.directResponse !== undefined) {
      if (ctx.proxyless) continue;
      const dr: Obj = { status: r.directResponse.status };
      if (r.directResponse.body?.string !== undefined) dr.body = { inline_string: r.directResponse.body.string };
      else if (r.directResponse.body?.bytes !== undefined) dr.body = { inline_bytes: r.directResponse.body.bytes };
      envoy.direct_response = dr;
    } else {
      envoy.route = routeAction(r, ctx, match.prefix !== undefined);
    }
    Object.assign(envoy, headerOps(r.headers));
    if (!ctx.proxyless) {
      const perFilter: Obj = {};
      if (r.fault !== undefined) perFilter[FAULT_FILTER] = faultConfig(r.fault);
      if (r.corsPolicy !== undefined) perFilter[CORS_FILTER] = corsConfig(r.corsPolicy);
      if (Object.keys(perFilter).length > 0) envoy.typed_per_filter_config = perFilter;
    }
    out.push(envoy);
  }
  return out;
}

/** The implicit route of a service without a VirtualService: everything to its cluster, Istio's default retries. */
export function defaultRoute(cluster: string, hashPolicyFor?: Obj[]): Obj {
  const route: Obj = { cluster, timeout: duration(0), retry_policy: defaultRetryPolicy() };
  if (hashPolicyFor !== undefined) route.hash_policy = hashPolicyFor;
  return { name: 'default', match: { prefix: '/' }, route };
}

/** Consistent-hash policy of a service's DR for the implicit route. */
export function serviceHashPolicy(ctx: RouteContext, host: string, port: number): Obj[] | undefined {
  return hashPolicy({ host, port: { number: port } }, ctx);
}
