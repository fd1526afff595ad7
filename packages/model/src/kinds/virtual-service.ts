/** `networking.istio.io` VirtualService (istio/api networking/v1alpha3/virtual_service.proto). */
import {
  arrayOf, bool, duration, enumOf, int, labels, mapOf, obj, percent, port, required, str, strings, withDefault,
  type Schema,
} from '../decode/schema.js';
import type { Ctx } from '../decode/violations.js';
import { joinIndex, joinKey } from '../decode/violations.js';
import { checkHost, checkIpOrCidr, isDns1123Label } from '../decode/syntax.js';
import { destination, exportTo, headers, type Destination, type Headers } from './common.js';

/** `StringMatch`: exactly one of `exact`, `prefix`, `regex` (RE2 syntax, checked as a JavaScript regex). */
export interface StringMatch {
  readonly exact?: string;
  readonly prefix?: string;
  readonly regex?: string;
}
const checkRegex = (r: string): string | undefined => {
  try {
    new RegExp(r);
    return undefined;
  } catch (e) {
    const reason = (e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
    return `invalid regex \`${r}\`: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`;
  }
};
/** `allowEmpty`: header and query matches may be `{}`, meaning "present with any value". */
export const stringMatch = (allowEmpty: boolean): Schema<StringMatch> =>
  obj<StringMatch>(
    { exact: str(), prefix: str(), regex: str(checkRegex) },
    allowEmpty ? { oneOf: [['exact', 'prefix', 'regex']] } : { exactlyOne: [['exact', 'prefix', 'regex']] },
  );

export interface HTTPMatchRequest {
  readonly name?: string;
  readonly uri?: StringMatch;
  readonly scheme?: StringMatch;
  readonly method?: StringMatch;
  readonly authority?: StringMatch;
  /** Header name (lower-case) → match; `{}` means the header is present. */
  readonly headers?: Readonly<Record<string, StringMatch>>;
  readonly port?: number;
  readonly sourceLabels?: Readonly<Record<string, string>>;
  readonly gateways?: readonly string[];
  readonly queryParams?: Readonly<Record<string, StringMatch>>;
  readonly ignoreUriCase?: boolean;
  readonly withoutHeaders?: Readonly<Record<string, StringMatch>>;
  readonly sourceNamespace?: string;
  readonly statPrefix?: string;
}
const headerKey = (k: string): string | undefined =>
  k === '' ? 'header name must not be empty' : /^[!#$%&'*+\-.^_`|~0-9a-z:]+$/.test(k) ? undefined : `invalid header name \`${k}\`: header names must be lower-case`;
const httpMatchRequest = (): Schema<HTTPMatchRequest> =>
  obj<HTTPMatchRequest>({
    name: str(),
    uri: stringMatch(false),
    scheme: stringMatch(false),
    method: stringMatch(false),
    authority: stringMatch(false),
    headers: mapOf(stringMatch(true), headerKey),
    port: port(),
    sourceLabels: labels(),
    gateways: strings(checkGatewayName),
    queryParams: mapOf(stringMatch(true)),
    ignoreUriCase: bool(),
    withoutHeaders: mapOf(stringMatch(true), headerKey),
    sourceNamespace: str(),
    statPrefix: str(),
  });

export interface HTTPRouteDestination {
  readonly destination: Destination;
  /** 0–100; with more than one destination the weights of a route must sum to 100. A lone destination may omit it. */
  readonly weight?: number;
  readonly headers?: Headers;
}
const httpRouteDestination = (): Schema<HTTPRouteDestination> =>
  obj<HTTPRouteDestination>({ destination: required(destination()), weight: int({ min: 0, max: 100 }), headers: headers() });

export interface RouteDestination {
  readonly destination: Destination;
  /** 0–100; see HTTPRouteDestination.weight. */
  readonly weight?: number;
}
const routeDestination = (): Schema<RouteDestination> =>
  obj<RouteDestination>({ destination: required(destination()), weight: int({ min: 0, max: 100 }) });

/** `name`, `namespace/name` or the reserved `mesh`, as Istio's validateGatewayNames accepts them. */
export const checkGatewayName = (g: string): string | undefined => {
  if (g === 'mesh') return undefined;
  const slash = g.indexOf('/');
  if (slash < 0) return checkHost(g, { bareWildcard: false, wildcard: false }) === undefined ? undefined : `invalid gateway name \`${g}\``;
  const ns = g.slice(0, slash);
  const name = g.slice(slash + 1);
  if (!isDns1123Label(ns)) return `invalid namespace \`${ns}\` in gateway \`${g}\``;
  if (!isDns1123Label(name)) return `invalid gateway name \`${name}\` in \`${g}\``;
  return undefined;
};

/** Istio's host.Name.Matches: equal, or one wildcard covers the other. */
function hostsOverlap(a: string, b: string): boolean {
  if (a === b || a === '*' || b === '*') return true;
  const covers = (w: string, h: string): boolean => w.startsWith('*.') && (h.endsWith(w.slice(1)) || (h.startsWith('*.') && h.slice(1).endsWith(w.slice(1))));
  return covers(a, b) || covers(b, a);
}

/** Istio's host.Name.SubsetOf: `sni` is `host`, or inside its wildcard. */
function sniSubsetOf(sni: string, host: string): boolean {
  if (host === '*' || sni === host) return true;
  if (!host.startsWith('*.')) return false;
  const suffix = host.slice(1);
  return sni.endsWith(suffix);
}

/** Istio's rule: weights sum to 100 when a route has more than one destination. */
function checkWeights(route: readonly { weight?: number }[] | undefined, path: string, cx: Ctx): void {
  if (route === undefined || route.length < 2) return;
  const total = route.reduce((s, r) => s + (r.weight ?? 0), 0);
  if (total !== 100) cx.add(path, `total destination weight ${total} != 100`);
}

export interface HTTPRedirect {
  readonly uri?: string;
  readonly authority?: string;
  readonly port?: number;
  readonly derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  readonly scheme?: string;
  /** Default 301 (Istio's default). */
  readonly redirectCode: number;
}
const httpRedirect = (): Schema<HTTPRedirect> =>
  obj<HTTPRedirect>(
    {
      uri: str(),
      authority: str(),
      port: port(),
      derivePort: enumOf(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'] as const),
      scheme: str(),
      redirectCode: withDefault(int({ min: 300, max: 399 }), 301),
    },
    {
      oneOf: [['port', 'derivePort']],
      check(r, path, cx) {
        if (r.uri === undefined && r.authority === undefined && r.scheme === undefined && r.port === undefined && r.derivePort === undefined) {
          cx.add(path, 'redirect must specify `uri`, `authority`, `scheme` or a port');
        }
      },
    },
  );

export interface HTTPBody {
  readonly string?: string;
  /** Base64. */
  readonly bytes?: string;
}
export interface HTTPDirectResponse {
  readonly status: number;
  readonly body?: HTTPBody;
}
const directResponse = (): Schema<HTTPDirectResponse> =>
  obj<HTTPDirectResponse>({
    status: required(int({ min: 200, max: 599 })),
    body: obj<HTTPBody>({ string: str(), bytes: str() }, { oneOf: [['string', 'bytes']] }),
  });

export interface Delegate {
  readonly name: string;
  /** Default: the namespace of the delegating VirtualService. */
  readonly namespace?: string;
}

export interface RegexRewrite {
  readonly match: string;
  readonly rewrite: string;
}
export interface HTTPRewrite {
  readonly uri?: string;
  readonly authority?: string;
  readonly uriRegexRewrite?: RegexRewrite;
}
const httpRewrite = (): Schema<HTTPRewrite> =>
  obj<HTTPRewrite>(
    {
      uri: str(),
      authority: str(),
      uriRegexRewrite: obj<RegexRewrite>({ match: required(str(checkRegex)), rewrite: required(str()) }),
    },
    {
      oneOf: [['uri', 'uriRegexRewrite']],
      check(r, path, cx) {
        if (r.uri === undefined && r.authority === undefined && r.uriRegexRewrite === undefined) cx.add(path, 'rewrite must specify `uri`, `authority` or `uriRegexRewrite`');
      },
    },
  );

export interface HTTPRetry {
  /** Number of retries. Default 0 inside a `retries` block (Istio's): retries disabled. */
  readonly attempts: number;
  /** Milliseconds, at least 1. */
  readonly perTryTimeout?: number;
  /** Comma-separated Envoy retry conditions and HTTP status codes, e.g. `5xx,gateway-error,503`. */
  readonly retryOn?: string;
  readonly retryRemoteLocalities?: boolean;
  /** Skip hosts already tried (Istio 1.26+). */
  readonly retryIgnorePreviousHosts?: boolean;
  /** Milliseconds, at least 1: base interval between retries (Istio 1.26+). */
  readonly backoff?: number;
}
const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx', 'refused-stream',
  'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure', 'cancelled', 'deadline-exceeded', 'internal',
  'resource-exhausted', 'unavailable',
]);
const httpRetry = (): Schema<HTTPRetry> =>
  obj<HTTPRetry>({
    attempts: withDefault(int({ min: 0 }), 0),
    perTryTimeout: duration({ min: 1 }),
    retryOn: str((s) => {
      const bad = s.split(',').map((x) => x.trim()).filter((x) => !RETRY_ON.has(x) && !/^\d{3}$/.test(x));
      return bad.length === 0 ? undefined : `unknown retryOn condition \`${bad[0]}\``;
    }),
    retryRemoteLocalities: bool(),
    retryIgnorePreviousHosts: bool(),
    backoff: duration({ min: 1 }),
  }, {
    check(r, path, cx) {
      if (r.attempts === 0 && (r.perTryTimeout !== undefined || r.retryOn !== undefined || r.retryRemoteLocalities !== undefined)) {
        cx.add(path, 'retry policy configured while `attempts` is 0 (retries disabled)');
      }
    },
  });

export interface FaultDelay {
  /** Milliseconds, at least 1. */
  readonly fixedDelay?: number;
  /** Milliseconds, at least 1. */
  readonly exponentialDelay?: number;
  /** Percentage 0–100 of requests delayed. */
  readonly percentage?: number;
  /** Deprecated integer percentage (use `percentage`). */
  readonly percent?: number;
}
export interface FaultAbort {
  readonly httpStatus?: number;
  readonly grpcStatus?: string;
  readonly http2Error?: string;
  /** Percentage 0–100 of requests aborted. */
  readonly percentage?: number;
}
export interface HTTPFaultInjection {
  readonly delay?: FaultDelay;
  readonly abort?: FaultAbort;
}
const fault = (): Schema<HTTPFaultInjection> =>
  obj<HTTPFaultInjection>(
    {
      delay: obj<FaultDelay>(
        { fixedDelay: duration({ min: 1 }), exponentialDelay: duration({ min: 1 }), percentage: percent(), percent: int({ min: 0, max: 100 }) },
        { exactlyOne: [['fixedDelay', 'exponentialDelay']], oneOf: [['percentage', 'percent']] },
      ),
      abort: obj<FaultAbort>(
        { httpStatus: int({ min: 200, max: 599 }), grpcStatus: str(), http2Error: str(), percentage: percent() },
        { exactlyOne: [['httpStatus', 'grpcStatus', 'http2Error']] },
      ),
    },
    { check: (f, path, cx) => { if (f.delay === undefined && f.abort === undefined) cx.add(path, 'one of `delay`, `abort` is required'); } },
  );

export interface HTTPMirrorPolicy {
  readonly destination: Destination;
  /** Percentage 0–100 of requests mirrored. */
  readonly percentage?: number;
}

export interface CorsPolicy {
  readonly allowOrigins?: readonly StringMatch[];
  /** Deprecated: use `allowOrigins`. */
  readonly allowOrigin?: readonly string[];
  readonly allowMethods?: readonly string[];
  readonly allowHeaders?: readonly string[];
  readonly exposeHeaders?: readonly string[];
  /** Milliseconds. */
  readonly maxAge?: number;
  readonly allowCredentials?: boolean;
  readonly unmatchedPreflights?: 'UNSPECIFIED' | 'FORWARD' | 'IGNORE';
}
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const corsPolicy = (): Schema<CorsPolicy> =>
  obj<CorsPolicy>({
    allowOrigins: arrayOf(stringMatch(false)),
    allowOrigin: strings(),
    allowMethods: strings((m) => (HTTP_METHODS.has(m) ? undefined : `\`${m}\` is not a supported HTTP method`)),
    allowHeaders: strings(),
    exposeHeaders: strings(),
    maxAge: duration(),
    allowCredentials: bool(),
    unmatchedPreflights: enumOf(['UNSPECIFIED', 'FORWARD', 'IGNORE'] as const),
  });

export interface HTTPRoute {
  readonly name?: string;
  readonly match?: readonly HTTPMatchRequest[];
  readonly route?: readonly HTTPRouteDestination[];
  readonly redirect?: HTTPRedirect;
  readonly directResponse?: HTTPDirectResponse;
  readonly delegate?: Delegate;
  readonly rewrite?: HTTPRewrite;
  /** Milliseconds; 0 disables the timeout (Envoy's and Istio's default for routes). */
  readonly timeout?: number;
  readonly retries?: HTTPRetry;
  readonly fault?: HTTPFaultInjection;
  readonly mirror?: Destination;
  readonly mirrors?: readonly HTTPMirrorPolicy[];
  /** Deprecated integer percentage; use `mirrorPercentage`. */
  readonly mirrorPercent?: number;
  /** Percentage 0–100 of requests mirrored to `mirror`. */
  readonly mirrorPercentage?: number;
  readonly corsPolicy?: CorsPolicy;
  readonly headers?: Headers;
}
const httpRoute = (): Schema<HTTPRoute> =>
  obj<HTTPRoute>(
    {
      name: str(),
      match: arrayOf(httpMatchRequest()),
      route: arrayOf(httpRouteDestination()),
      redirect: httpRedirect(),
      directResponse: directResponse(),
      delegate: obj<Delegate>({ name: required(str()), namespace: str() }),
      rewrite: httpRewrite(),
      timeout: duration(),
      retries: httpRetry(),
      fault: fault(),
      mirror: destination(),
      mirrors: arrayOf(obj<HTTPMirrorPolicy>({ destination: required(destination()), percentage: percent() })),
      mirrorPercent: int({ min: 0, max: 100 }),
      mirrorPercentage: percent(),
      corsPolicy: corsPolicy(),
      headers: headers(),
    },
    {
      oneOf: [['route', 'redirect', 'directResponse', 'delegate'], ['mirror', 'mirrors'], ['mirrorPercent', 'mirrorPercentage']],
      check(r, path, cx) {
        if (r.route === undefined && r.redirect === undefined && r.directResponse === undefined && r.delegate === undefined) {
          cx.add(path, 'one of `route`, `redirect`, `directResponse`, `delegate` is required');
        }
        if (r.route !== undefined && r.route.length === 0) cx.add(joinKey(path, 'route'), 'must not be empty');
        if (r.redirect !== undefined && r.rewrite !== undefined) cx.add(path, 'a route with `redirect` cannot also have `rewrite`');
        if (r.redirect !== undefined && r.fault !== undefined) cx.add(path, 'a route with `redirect` cannot also have `fault`');
        if (r.delegate !== undefined) {
          for (const k of ['rewrite', 'timeout', 'retries', 'fault', 'mirror', 'mirrors', 'corsPolicy', 'headers'] as const) {
            if (r[k] !== undefined) cx.add(joinKey(path, k), 'not allowed together with `delegate`; set it in the delegate VirtualService');
          }
        }
        if ((r.mirrorPercent !== undefined || r.mirrorPercentage !== undefined) && r.mirror === undefined) {
          cx.add(path, '`mirrorPercentage` needs `mirror`');
        }
        checkWeights(r.route, joinKey(path, 'route'), cx);
      },
    },
  );

export interface TLSMatchAttributes {
  readonly sniHosts: readonly string[];
  readonly destinationSubnets?: readonly string[];
  readonly port?: number;
  readonly sourceLabels?: Readonly<Record<string, string>>;
  readonly gateways?: readonly string[];
  readonly sourceNamespace?: string;
}
export interface TLSRoute {
  readonly match: readonly TLSMatchAttributes[];
  readonly route?: readonly RouteDestination[];
}
const tlsRoute = (): Schema<TLSRoute> =>
  obj<TLSRoute>(
    {
      match: required(
        arrayOf(
          obj<TLSMatchAttributes>({
            sniHosts: required(arrayOf(str((h) => checkHost(h)), { min: 1 })),
            destinationSubnets: strings(checkIpOrCidr),
            port: port(),
            sourceLabels: labels(),
            gateways: strings(checkGatewayName),
            sourceNamespace: str(),
          }),
          { min: 1 },
        ),
      ),
      route: arrayOf(routeDestination(), { min: 1 }),
    },
    { check: (r, path, cx) => checkWeights(r.route, joinKey(path, 'route'), cx) },
  );

export interface L4MatchAttributes {
  readonly destinationSubnets?: readonly string[];
  readonly port?: number;
  /** Deprecated in Istio; kept for old documents. */
  readonly sourceSubnet?: string;
  readonly sourceLabels?: Readonly<Record<string, string>>;
  readonly gateways?: readonly string[];
  readonly sourceNamespace?: string;
}
export interface TCPRoute {
  readonly match?: readonly L4MatchAttributes[];
  readonly route?: readonly RouteDestination[];
}
const tcpRoute = (): Schema<TCPRoute> =>
  obj<TCPRoute>(
    {
      match: arrayOf(
        obj<L4MatchAttributes>({
          destinationSubnets: strings(checkIpOrCidr),
          port: port(),
          sourceSubnet: str(checkIpOrCidr),
          sourceLabels: labels(),
          gateways: strings(checkGatewayName),
          sourceNamespace: str(),
        }),
      ),
      route: arrayOf(routeDestination(), { min: 1 }),
    },
    { check: (r, path, cx) => checkWeights(r.route, joinKey(path, 'route'), cx) },
  );

export interface VirtualServiceSpec {
  /** Hosts the rules apply to: FQDNs, short names, `*.example.com`, `*` or IPs. Empty for a delegate VirtualService. */
  readonly hosts?: readonly string[];
  /**
   * Gateway names (`namespace/name` or `name`) and the reserved `mesh` (all sidecars). Default `[mesh]` when `hosts`
   * is given (Istio's default); a delegate VirtualService (no hosts) has none.
   */
  readonly gateways?: readonly string[];
  readonly http?: readonly HTTPRoute[];
  readonly tls?: readonly TLSRoute[];
  readonly tcp?: readonly TCPRoute[];
  readonly exportTo?: readonly string[];
}

const vsObject = obj<VirtualServiceSpec>(
  {
    hosts: arrayOf(str((h) => checkHost(h, { ip: true }))),
    gateways: arrayOf(str(checkGatewayName)),
    http: arrayOf(httpRoute()),
    tls: arrayOf(tlsRoute()),
    tcp: arrayOf(tcpRoute()),
    exportTo: exportTo(),
  },
  {
    check(vs, path, cx) {
      const delegate = vs.hosts === undefined || vs.hosts.length === 0;
      if (delegate) {
        if (vs.gateways !== undefined && vs.gateways.length > 0) cx.add(joinKey(path, 'gateways'), 'a delegate VirtualService (no `hosts`) must not set `gateways`');
        if (vs.tls !== undefined || vs.tcp !== undefined) cx.add(path, 'a delegate VirtualService (no `hosts`) supports only `http` routes');
        (vs.http ?? []).forEach((r, i) => {
          if (r.delegate !== undefined) cx.add(joinKey(joinIndex(joinKey(path, 'http'), i), 'delegate'), 'a delegate VirtualService cannot delegate again');
        });
      }
      if (vs.http === undefined && vs.tls === undefined && vs.tcp === undefined) cx.add(path, 'one of `http`, `tls`, `tcp` is required');
      const hosts = vs.hosts ?? [];
      for (let i = 0; i < hosts.length; i++) {
        for (let j = i + 1; j < hosts.length; j++) {
          if (hostsOverlap(hosts[i], hosts[j])) cx.add(joinIndex(joinKey(path, 'hosts'), j), `duplicate hosts in virtual service: ${hosts[i]} & ${hosts[j]}`);
        }
      }
      const toGateway = (vs.gateways ?? []).some((g) => g !== 'mesh');
      if (!delegate && !toGateway) {
        (vs.http ?? []).forEach((r, i) => {
          if (r.delegate !== undefined) cx.add(joinKey(joinIndex(joinKey(path, 'http'), i), 'delegate'), 'delegation applies only to VirtualServices bound to a gateway (not only `mesh`)');
        });
      }
      (vs.tls ?? []).forEach((r, i) => {
        r.match.forEach((m, j) => {
          m.sniHosts.forEach((sni, k) => {
            if (!hosts.some((h) => sniSubsetOf(sni, h))) {
              cx.add(joinIndex(joinKey(joinIndex(joinKey(joinIndex(joinKey(path, 'tls'), i), 'match'), j), 'sniHosts'), k), `SNI host \`${sni}\` is not covered by any of the VirtualService hosts: [${hosts.join(', ')}]`);
            }
          });
        });
      });
    },
    normalize: (vs) => (vs.hosts !== undefined && vs.hosts.length > 0 && vs.gateways === undefined ? { ...vs, gateways: ['mesh'] } : vs),
  },
);
export const virtualServiceSpec = (): Schema<VirtualServiceSpec> => vsObject;
