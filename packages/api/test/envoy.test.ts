import { expect } from 'chai';
import {
  EXT_TYPE_URL, TYPE_URL, decodeAny, decodeEnvoyResource, encodeAny, matchString, toStruct,
  type ClusterConfig, type ListenerConfig, type RouteConfig,
} from '@trellis/api';

const roundTrip = (type: string, o: Record<string, unknown>) => decodeAny(encodeAny(type, o));
const sds = (name: string) => ({ name, sds_config: { api_config_source: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }] } } });

describe('api: Envoy resource decoders', () => {
  it('decodes an inbound listener with filter chain matches, mTLS and RDS', () => {
    const l = decodeEnvoyResource(TYPE_URL.listener, roundTrip(TYPE_URL.listener, {
      name: 'virtualInbound',
      address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
      use_original_dst: { value: true },
      traffic_direction: 'INBOUND',
      listener_filters: [
        { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': EXT_TYPE_URL.originalDst } },
        { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': EXT_TYPE_URL.tlsInspector } },
      ],
      filter_chains: [{
        name: 'inbound|8080||',
        filter_chain_match: { destination_port: { value: 8080 }, transport_protocol: 'tls', application_protocols: ['istio-http/1.1', 'h2'], prefix_ranges: [{ address_prefix: '10.0.0.0', prefix_len: { value: 8 } }], server_names: ['Foo.example'] },
        transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: {
          '@type': EXT_TYPE_URL.downstreamTlsContext, require_client_certificate: { value: true },
          common_tls_context: { alpn_protocols: ['h2', 'http/1.1'], tls_certificate_sds_secret_configs: [sds('default')],
            combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: sds('ROOTCA') } },
        } },
        filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
          '@type': EXT_TYPE_URL.httpConnectionManager, stat_prefix: 'inbound_0.0.0.0_8080', rds: { route_config_name: 'inbound|8080||', config_source: { ads: {} } },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': EXT_TYPE_URL.router } }],
        } }],
      }],
    })) as ListenerConfig;
    expect(Object.isFrozen(l) && Object.isFrozen(l.filterChains[0].match)).to.equal(true);
    expect(l.useOriginalDst).to.equal(true);
    expect(l.listenerFilters).to.deep.equal(['original_dst', 'tls_inspector']);
    const fc = l.filterChains[0];
    expect(fc.match).to.deep.include({ destinationPort: 8080, transportProtocol: 'tls', serverNames: ['foo.example'] });
    expect(fc.match.prefixRanges).to.deep.equal([{ address: '10.0.0.0', prefixLen: 8 }]);
    expect(fc.tls).to.deep.include({ certificateSds: ['default'], validationSds: 'ROOTCA', requireClientCertificate: true });
    expect(fc.terminal).to.deep.include({ kind: 'http', rds: 'inbound|8080||' });
  });

  it('decodes a tcp_proxy chain with weighted clusters', () => {
    const l = decodeEnvoyResource(TYPE_URL.listener, roundTrip(TYPE_URL.listener, {
      name: 'x', filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: {
        '@type': EXT_TYPE_URL.tcpProxy, stat_prefix: 's', weighted_clusters: { clusters: [{ name: 'a', weight: 1 }, { name: 'b', weight: 3 }] } } }] }],
    }));
    expect(l.filterChains[0].terminal).to.deep.include({ kind: 'tcp', cluster: null, weightedClusters: [{ name: 'a', weight: 1 }, { name: 'b', weight: 3 }] });
  });

  const badCases: [string, string, Record<string, unknown>, string][] = [
    ['HCM without rds name', TYPE_URL.listener, { name: 'l', filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': EXT_TYPE_URL.httpConnectionManager, rds: { config_source: { ads: {} } } } }] }] },
      'filter_chains[0].filters[0].typed_config.rds.route_config_name: required'],
    ['listener without chains', TYPE_URL.listener, { name: 'l' }, 'filter_chains: must not be empty (or set default_filter_chain)'],
    ['route without action', TYPE_URL.route, { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' } }] }] },
      'virtual_hosts[0].routes[0]: one of route, redirect, direct_response is required'],
    ['bad regex', TYPE_URL.route, { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { safe_regex: { regex: '(' } }, route: { cluster: 'c' } }] }] },
      'virtual_hosts[0].routes[0].match.safe_regex.regex: invalid regex'],
    ['duplicate domain', TYPE_URL.route, { name: 'r', virtual_hosts: [{ name: 'a', domains: ['x'] }, { name: 'b', domains: ['x'] }] }, 'virtual_hosts[1].domains: duplicate domain x'],
    ['MAGLEV', TYPE_URL.cluster, { name: 'c', type: 'EDS', lb_policy: 'MAGLEV' }, 'lb_policy: unsupported value MAGLEV'],
    ['STATIC without endpoints', TYPE_URL.cluster, { name: 'c', type: 'STATIC' }, 'load_assignment: required for type STATIC'],
    ['CLA endpoint without address', TYPE_URL.endpoint, { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: {} }] }] }, 'endpoints[0].lb_endpoints[0].endpoint.address: required'],
    ['secret with a file name', TYPE_URL.secret, { name: 'default', tls_certificate: { certificate_chain: { filename: '/x' }, private_key: { inline_string: 'k' } } }, 'tls_certificate.certificate_chain.filename: not supported'],
  ];
  for (const [what, type, resource, message] of badCases) {
    it(`rejects ${what} naming the field`, () => {
      expect(() => decodeEnvoyResource(type as typeof TYPE_URL.listener, roundTrip(type, resource))).to.throw(message).with.property('code', 'TRELLIS_ERR_INVALID_RESOURCE');
    });
  }

  it('decodes a route configuration: matches, actions, header operations', () => {
    const rc = decodeEnvoyResource(TYPE_URL.route, roundTrip(TYPE_URL.route, {
      name: 'http.80',
      virtual_hosts: [{
        name: 'reviews', domains: ['reviews.default.svc.cluster.local', 'reviews:80'],
        request_headers_to_add: [{ header: { key: 'X-VH', value: '1' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
        routes: [
          { match: { prefix: '/v2', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }], query_parameters: [{ name: 'q', present_match: true }] },
            route: { weighted_clusters: { clusters: [{ name: 'a', weight: { value: 90 } }, { name: 'b', weight: { value: 10 } }] }, prefix_rewrite: '/', host_rewrite_literal: 'h', timeout: { seconds: 2 },
              retry_policy: { retry_on: '5xx,connect-failure', num_retries: { value: 3 } }, hash_policy: [{ header: { header_name: 'X-User' } }] } },
          { match: { path: '/old' }, redirect: { path_redirect: '/new', response_code: 'FOUND' } },
          { match: { safe_regex: { regex: '/h[a-z]+' } }, direct_response: { status: 200, body: { inline_string: 'ok' } }, response_headers_to_remove: ['Server'] },
        ],
      }],
    })) as RouteConfig;
    const vh = rc.virtualHosts[0];
    expect(vh.requestHeadersToAdd).to.deep.equal([{ key: 'x-vh', value: '1', action: 'OVERWRITE_IF_EXISTS_OR_ADD' }]);
    const [r0, r1, r2] = vh.routes;
    expect(r0.match.headers[0].name).to.equal('end-user');
    expect(matchString(r0.match.headers[0].match!, 'jason')).to.equal(true);
    expect(r0.match.queryParameters).to.deep.equal([{ name: 'q', match: null }]);
    expect(r0.action).to.deep.include({ kind: 'route', cluster: null, prefixRewrite: '/', hostRewrite: 'h', timeoutMs: 2000 });
    expect(r0.action.kind === 'route' && r0.action.weightedClusters!.map((c) => c.weight)).to.deep.equal([90, 10]);
    expect(r0.action.kind === 'route' && r0.action.retryPolicy).to.deep.include({ retryOn: ['5xx', 'connect-failure'], numRetries: 3, perTryTimeoutMs: null });
    expect(r0.action.kind === 'route' && r0.action.hashPolicy).to.deep.equal([{ kind: 'header', name: 'x-user', terminal: false }]);
    expect(r1.action).to.deep.include({ kind: 'redirect', path: '/new', status: 302 });
    expect(r2.match.regex!.test('/hello')).to.equal(true);
    expect(r2.action).to.deep.equal({ kind: 'direct_response', status: 200, body: 'ok' });
    expect(r2.responseHeadersToRemove).to.deep.equal(['server']);
  });

  it('decodes an EDS cluster with mTLS, SAN matching, HTTP/2, circuit breakers and outlier detection', () => {
    const c = decodeEnvoyResource(TYPE_URL.cluster, roundTrip(TYPE_URL.cluster, {
      name: 'outbound|9080||reviews.default.svc.cluster.local', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} }, service_name: 'outbound|9080||reviews.default.svc.cluster.local' },
      lb_policy: 'LEAST_REQUEST', connect_timeout: { seconds: 1, nanos: 500000000 },
      circuit_breakers: { thresholds: [{ max_connections: { value: 10 }, max_retries: { value: 1 } }] },
      outlier_detection: { consecutive_5xx: { value: 3 }, base_ejection_time: { seconds: 60 } },
      transport_socket: { name: 'tls', typed_config: { '@type': EXT_TYPE_URL.upstreamTlsContext, sni: 'outbound_.9080_._.reviews', common_tls_context: {
        alpn_protocols: ['istio-peer-exchange', 'istio', 'h2'], tls_certificate_sds_secret_configs: [sds('default')],
        combined_validation_context: { default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/default/sa/reviews' } }] }, validation_context_sds_secret_config: sds('ROOTCA') } } } },
      typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': EXT_TYPE_URL.httpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } },
    })) as ClusterConfig;
    expect(c).to.deep.include({ type: 'EDS', lbPolicy: 'LEAST_REQUEST', connectTimeoutMs: 1500, http2: true });
    expect(c.circuitBreakers).to.deep.equal({ maxConnections: 10, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 1 });
    expect(c.outlierDetection).to.deep.include({ consecutive5xx: 3, baseEjectionTimeMs: 60000 });
    expect(c.tls!.sni).to.equal('outbound_.9080_._.reviews');
    expect(c.tls!.matchSubjectAltNames[0].type).to.equal('URI');
    expect(c.tls!.matchSubjectAltNames[0].match.value).to.equal('spiffe://cluster.local/ns/default/sa/reviews');
    expect(c.tls!.certificateSds).to.deep.equal(['default']);
  });

  it('decodes a STATIC cluster and a ClusterLoadAssignment with localities, priorities and health', () => {
    const c = decodeEnvoyResource(TYPE_URL.cluster, roundTrip(TYPE_URL.cluster, {
      name: 's', type: 'STATIC', load_assignment: { cluster_name: 's', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8080 } } } }] }] },
    }));
    expect(c.loadAssignment!.localities[0].endpoints[0]).to.deep.include({ address: { address: '127.0.0.1', port: 8080 }, healthy: true, weight: 1 });
    const cla = decodeEnvoyResource(TYPE_URL.endpoint, roundTrip(TYPE_URL.endpoint, {
      cluster_name: 'c',
      endpoints: [
        { locality: { region: 'r1', zone: 'z1' }, load_balancing_weight: { value: 3 }, lb_endpoints: [
          { endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } }, health_status: 'HEALTHY', load_balancing_weight: { value: 2 } },
          { endpoint: { address: { socket_address: { address: '10.0.0.2', port_value: 80 } } }, health_status: 'UNHEALTHY' }] },
        { locality: { region: 'r2' }, priority: 1, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.1.1', port_value: 80 } } } }] },
      ],
    }));
    expect(cla.localities.map((l) => [l.locality.region, l.priority, l.weight])).to.deep.equal([['r1', 0, 3], ['r2', 1, 1]]);
    expect(cla.localities[0].endpoints.map((e) => [e.health, e.healthy, e.weight])).to.deep.equal([['HEALTHY', true, 2], ['UNHEALTHY', false, 1]]);
    void toStruct;
  });

  it('decodes SDS secrets: key and chain, trust bundle', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const key = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';
    const s = decodeEnvoyResource(TYPE_URL.secret, roundTrip(TYPE_URL.secret, { name: 'default', tls_certificate: { certificate_chain: { inline_bytes: Buffer.from(pem) }, private_key: { inline_bytes: Buffer.from(key) } } }));
    expect(s).to.deep.equal({ name: 'default', kind: 'tls_certificate', certificateChain: pem, privateKey: key });
    const r = decodeEnvoyResource(TYPE_URL.secret, roundTrip(TYPE_URL.secret, { name: 'ROOTCA', validation_context: { trusted_ca: { inline_bytes: Buffer.from(pem) } } }));
    expect(r).to.deep.equal({ name: 'ROOTCA', kind: 'validation_context', trustedCa: pem });
  });
});
