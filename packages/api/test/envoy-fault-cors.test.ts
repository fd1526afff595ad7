import { expect } from 'chai';
import {
  EXT_TYPE_URL, TYPE_URL, decodeAny, decodeEnvoyResource, decodeFractionalPercent, encodeAny, fractionHit,
  type CorsPolicy, type HttpFault, type ListenerConfig, type RouteConfig,
} from '@trellis/api';

const roundTrip = (type: string, o: Record<string, unknown>) => decodeAny(encodeAny(type, o));
const routeWith = (route: Record<string, unknown>, vhostExtra: Record<string, unknown> = {}) =>
  decodeEnvoyResource(TYPE_URL.route, roundTrip(TYPE_URL.route, { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, ...route }], ...vhostExtra }] })) as RouteConfig;
const bad = (route: Record<string, unknown>) => {
  try { routeWith(route); } catch (e) { return (e as Error).message; }
  return 'no error';
};

describe('api: fault, CORS and mirror decoders', () => {
  it('decodes an Istio fault (delay and abort) from a route\'s typed_per_filter_config, over the wire', () => {
    const rc = routeWith({
      route: { cluster: 'c' },
      typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': EXT_TYPE_URL.fault,
        delay: { fixed_delay: { seconds: 7 }, percentage: { numerator: 1_000_000, denominator: 'MILLION' } },
        abort: { http_status: 500, percentage: { numerator: 100_000, denominator: 'MILLION' } } } },
    });
    const f = rc.virtualHosts[0]!.routes[0]!.typedPerFilterConfig['envoy.filters.http.fault'] as HttpFault;
    expect(f).to.deep.equal({
      kind: 'http_fault', headers: [], upstreamCluster: null, maxActiveFaults: null,
      delay: { fixedDelayMs: 7000, percentage: { numerator: 1_000_000, denominator: 1_000_000 } },
      abort: { httpStatus: 500, grpcStatus: null, headerAbort: false, percentage: { numerator: 100_000, denominator: 1_000_000 } },
    });
    expect(Object.isFrozen(f.abort!.percentage)).to.equal(true);
  });

  it('decodes gRPC and header-controlled aborts, header delays, header matchers, upstream_cluster, max_active_faults', () => {
    const rc = routeWith({ route: { cluster: 'c' }, typed_per_filter_config: { fault: { '@type': EXT_TYPE_URL.fault,
      abort: { grpc_status: 14, percentage: { numerator: 50 } }, headers: [{ name: 'End-User', string_match: { exact: 'jason' } }, { name: 'x-canary', present_match: true }],
      upstream_cluster: 'outbound|9080||ratings', max_active_faults: { value: 3 } } } },
    { typed_per_filter_config: { fault: { '@type': EXT_TYPE_URL.fault, delay: { header_delay: {}, percentage: { numerator: 10, denominator: 'TEN_THOUSAND' } }, abort: { header_abort: {} } } } });
    const f = rc.virtualHosts[0]!.routes[0]!.typedPerFilterConfig.fault as HttpFault;
    expect(f.abort).to.deep.equal({ httpStatus: null, grpcStatus: 14, headerAbort: false, percentage: { numerator: 50, denominator: 100 } });
    expect(f.headers.map((h) => h.name)).to.deep.equal(['end-user', 'x-canary']);
    expect(f).to.deep.include({ upstreamCluster: 'outbound|9080||ratings', maxActiveFaults: 3 });
    const v = rc.virtualHosts[0]!.typedPerFilterConfig.fault as HttpFault;
    expect(v.delay).to.deep.equal({ fixedDelayMs: null, percentage: { numerator: 10, denominator: 10_000 } });
    expect(v.abort).to.deep.include({ headerAbort: true, percentage: { numerator: 0, denominator: 100 } });
  });

  it('decodes the HCM\'s (empty) fault and cors filter configs', () => {
    const l = decodeEnvoyResource(TYPE_URL.listener, roundTrip(TYPE_URL.listener, { name: 'l', filter_chains: [{ filters: [{ name: 'hcm', typed_config: {
      '@type': EXT_TYPE_URL.httpConnectionManager, stat_prefix: 's', rds: { route_config_name: 'r', config_source: { ads: {} } },
      http_filters: [
        { name: 'envoy.filters.http.fault', typed_config: { '@type': EXT_TYPE_URL.fault } },
        { name: 'envoy.filters.http.cors', typed_config: { '@type': EXT_TYPE_URL.cors } },
        { name: 'envoy.filters.http.router', typed_config: { '@type': EXT_TYPE_URL.router } },
      ] } }] }] })) as ListenerConfig;
    const t = l.filterChains[0]!.terminal;
    if (t.kind !== 'http') throw new Error('expected an HCM');
    expect(t.httpFilters.map((f) => f.config)).to.deep.equal([
      { kind: 'http_fault', delay: null, abort: null, headers: [], upstreamCluster: null, maxActiveFaults: null },
      { kind: 'cors' },
      null,
    ]);
  });

  it('decodes a CorsPolicy as Istio writes it, with Envoy\'s defaults', () => {
    const rc = routeWith({ route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.cors': { '@type': EXT_TYPE_URL.corsPolicy,
      allow_origin_string_match: [{ exact: 'https://a.example' }, { prefix: 'https://p.' }, { safe_regex: { regex: 'https://.*\\.r\\.example' } }],
      allow_methods: 'GET,POST', allow_headers: 'x-a', expose_headers: 'x-b', max_age: '86400', allow_credentials: { value: true } } } });
    const c = rc.virtualHosts[0]!.routes[0]!.typedPerFilterConfig['envoy.filters.http.cors'] as CorsPolicy;
    expect(c).to.deep.include({ kind: 'cors_policy', allowMethods: 'GET,POST', allowHeaders: 'x-a', exposeHeaders: 'x-b', maxAge: '86400', allowCredentials: true,
      forwardNotMatchingPreflights: true, allowPrivateNetworkAccess: false, shadowEnabled: null });
    expect(c.filterEnabled).to.deep.equal({ numerator: 100, denominator: 100 });
    expect(c.allowOrigins.map((m) => m.kind)).to.deep.equal(['exact', 'prefix', 'regex']);
    const off = routeWith({ route: { cluster: 'c' }, typed_per_filter_config: { cors: { '@type': EXT_TYPE_URL.corsPolicy,
      filter_enabled: { default_value: { numerator: 0 } }, forward_not_matching_preflights: { value: false } } } })
      .virtualHosts[0]!.routes[0]!.typedPerFilterConfig.cors as CorsPolicy;
    expect(off).to.deep.include({ allowOrigins: [], allowMethods: '', forwardNotMatchingPreflights: false });
    expect(off.filterEnabled).to.deep.equal({ numerator: 0, denominator: 100 });
  });

  it('decodes request_mirror_policies (default 100 %)', () => {
    const rc = routeWith({ route: { cluster: 'c', request_mirror_policies: [
      { cluster: 'outbound|9080|v2|reviews', runtime_fraction: { default_value: { numerator: 500_000, denominator: 'MILLION' } } },
      { cluster: 'other', disable_shadow_host_suffix_append: true },
    ] } });
    const a = rc.virtualHosts[0]!.routes[0]!.action;
    if (a.kind !== 'route') throw new Error('expected a route action');
    expect(a.requestMirrorPolicies).to.deep.equal([
      { cluster: 'outbound|9080|v2|reviews', fraction: { numerator: 500_000, denominator: 1_000_000 }, keepAuthority: false },
      { cluster: 'other', fraction: { numerator: 100, denominator: 100 }, keepAuthority: true },
    ]);
    const none = routeWith({ route: { cluster: 'c' } }).virtualHosts[0]!.routes[0]!.action;
    expect(none.kind === 'route' && none.requestMirrorPolicies).to.deep.equal([]);
  });

  const faultOf = (x: Record<string, unknown>) => ({ route: { cluster: 'c' }, typed_per_filter_config: { f: { '@type': EXT_TYPE_URL.fault, ...x } } });
  const badCases: [string, Record<string, unknown>, string][] = [
    ['delay without a delay', faultOf({ delay: { percentage: { numerator: 1 } } }), 'virtual_hosts[0].routes[0].typed_per_filter_config.f.delay: one of fixed_delay, header_delay is required'],
    ['abort without a status', faultOf({ abort: { percentage: { numerator: 1 } } }), 'virtual_hosts[0].routes[0].typed_per_filter_config.f.abort: one of http_status, grpc_status, header_abort is required'],
    ['abort status out of range', faultOf({ abort: { http_status: 99 } }), 'virtual_hosts[0].routes[0].typed_per_filter_config.f.abort.http_status: must be 200-599'],
    ['mirror policy without a cluster', { route: { cluster: 'c', request_mirror_policies: [{}] } }, 'virtual_hosts[0].routes[0].route.request_mirror_policies[0].cluster: required'],
    ['bad origin regex', { route: { cluster: 'c' }, typed_per_filter_config: { c: { '@type': EXT_TYPE_URL.corsPolicy, allow_origin_string_match: [{ safe_regex: { regex: '(' } }] } } },
      'virtual_hosts[0].routes[0].typed_per_filter_config.c.allow_origin_string_match[0].safe_regex.regex: invalid regex'],
  ];
  for (const [what, route, want] of badCases) it(`rejects ${what} with the field path`, () => expect(bad(route)).to.match(new RegExp(`^${want.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)));

  it('FractionalPercent: denominators, hits at the edges', () => {
    expect(decodeFractionalPercent({ numerator: 5, denominator: 'TEN_THOUSAND' }, 'p')).to.deep.equal({ numerator: 5, denominator: 10_000 });
    expect(() => decodeFractionalPercent({ numerator: 5, denominator: 'BILLION' }, 'p')).to.throw('p.denominator: must be one of HUNDRED, TEN_THOUSAND, MILLION');
    expect(fractionHit({ numerator: 0, denominator: 100 }, () => 0)).to.equal(false);
    expect(fractionHit({ numerator: 100, denominator: 100 }, () => 0.999999)).to.equal(true);
    expect(fractionHit({ numerator: 50, denominator: 100 }, () => 0.49)).to.equal(true);
    expect(fractionHit({ numerator: 50, denominator: 100 }, () => 0.5)).to.equal(false);
    expect(fractionHit({ numerator: 1, denominator: 1_000_000 }, () => 0.0000009)).to.equal(true);
    expect(fractionHit({ numerator: 1, denominator: 1_000_000 }, () => 0.000001)).to.equal(false);
  });
});
