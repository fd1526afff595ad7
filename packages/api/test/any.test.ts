import { expect } from 'chai';
import { EXT_TYPE_URL, TYPE_URL, decodeAny, encodeAny, fromStruct, grpcService, toStruct } from '@trellis/api';

describe('api: protos and Any', () => {
  it('round-trips a Listener whose filter carries a nested Any (HttpConnectionManager with RDS)', () => {
    const listener = {
      name: '0.0.0.0_80',
      address: { socket_address: { address: '0.0.0.0', port_value: 80 } },
      filter_chains: [{
        filters: [{
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            '@type': EXT_TYPE_URL.httpConnectionManager,
            stat_prefix: 'outbound_0.0.0.0_80',
            rds: { route_config_name: 'http.80', config_source: { ads: {}, resource_api_version: 'V3' } },
            http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': EXT_TYPE_URL.router } }],
          },
        }],
      }],
    };
    const any = encodeAny(TYPE_URL.listener, listener);
    expect(any.type_url).to.equal(TYPE_URL.listener);
    const back = decodeAny(any) as typeof listener;
    expect(back.name).to.equal('0.0.0.0_80');
    const hcm = back.filter_chains[0].filters[0].typed_config;
    expect(hcm['@type']).to.equal(EXT_TYPE_URL.httpConnectionManager);
    expect(hcm.rds.route_config_name).to.equal('http.80');
    expect(hcm.http_filters[0].typed_config['@type']).to.equal(EXT_TYPE_URL.router);
  });

  it('refuses to encode a field of the wrong shape with TRELLIS_ERR_ENCODE', () => {
    expect(() => encodeAny(TYPE_URL.cluster, { name: 'c', connect_timeout: 'ten seconds' })).to.throw().with.property('code', 'TRELLIS_ERR_ENCODE');
  });

  it('refuses an unknown type URL with TRELLIS_ERR_UNKNOWN_TYPE', () => {
    expect(() => encodeAny('type.googleapis.com/no.such.Type', {})).to.throw().with.property('code', 'TRELLIS_ERR_UNKNOWN_TYPE');
  });

  it('exposes the ADS, SDS and Istio CA gRPC services', () => {
    expect(grpcService('envoy.service.discovery.v3.AggregatedDiscoveryService').service.StreamAggregatedResources.path)
      .to.equal('/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources');
    expect(grpcService('envoy.service.secret.v3.SecretDiscoveryService').service.StreamSecrets.requestStream).to.equal(true);
    expect(grpcService('istio.v1.auth.IstioCertificateService').service.CreateCertificate.path)
      .to.equal('/istio.v1.auth.IstioCertificateService/CreateCertificate');
  });

  it('carries JSON through google.protobuf.Struct on the wire (node metadata in a DiscoveryRequest)', () => {
    const json = { CLUSTER_ID: 'c1', LABELS: { app: 'reviews', version: 'v2' }, PORTS: [9080, 15090], MESH: true, NONE: null };
    const request = { node: { id: 'sidecar~10.0.0.1~reviews-v2.default~default.svc.cluster.local', metadata: toStruct(json) } };
    const typeUrl = 'type.googleapis.com/envoy.service.discovery.v3.DiscoveryRequest';
    const back = decodeAny(encodeAny(typeUrl, request)) as { node: { metadata: { fields: Record<string, unknown> } } };
    expect(fromStruct(back.node.metadata)).to.deep.equal(json);
  });

  it('reads a Struct in the snake_case spelling of proto JSON too', () => {
    expect(fromStruct({ fields: { a: { string_value: 'x' }, b: { list_value: { values: [{ number_value: 1 }] } } } })).to.deep.equal({ a: 'x', b: [1] });
  });
});
