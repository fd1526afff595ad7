/** HCM / tcp_proxy `access_log` and HCM `tracing` decoding, through protobuf as a proxy receives them. */
import { expect } from 'chai';
import {
  EXT_TYPE_URL, EnvoyResourceError, TYPE_URL, decodeAny, decodeEnvoyResource, encodeAny, toStruct,
  type HttpConnectionManager, type ListenerConfig, type TcpProxy,
} from '@trellis/api';

function listener(hcmExtra: Record<string, unknown>, tcpExtra: Record<string, unknown> = {}): ListenerConfig {
  return decodeEnvoyResource(TYPE_URL.listener, decodeAny(encodeAny(TYPE_URL.listener, {
    name: 'l',
    address: { socket_address: { address: '0.0.0.0', port_value: 80 } },
    filter_chains: [
      { filter_chain_match: { destination_port: { value: 80 } }, filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
        '@type': EXT_TYPE_URL.httpConnectionManager, stat_prefix: 's', rds: { route_config_name: 'r', config_source: { ads: {} } },
        http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': EXT_TYPE_URL.router } }], ...hcmExtra,
      } }] },
      { filter_chain_match: { destination_port: { value: 81 } }, filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': EXT_TYPE_URL.tcpProxy, stat_prefix: 't', cluster: 'c', ...tcpExtra } }] },
    ],
  }))) as ListenerConfig;
}
const hcm = (l: ListenerConfig) => l.filterChains[0]!.terminal as HttpConnectionManager;
const tcp = (l: ListenerConfig) => l.filterChains[1]!.terminal as TcpProxy;

describe('api: access_log and tracing', () => {
  it('file (json_format, text_format_source, legacy format, none) and stdout loggers, on HCMs and tcp_proxy', () => {
    const l = listener({ access_log: [
      { name: 'a', typed_config: { '@type': EXT_TYPE_URL.fileAccessLog, path: '/dev/stdout', log_format: { json_format: toStruct({ code: '%RESPONSE_CODE%', nested: { m: '%REQ(:METHOD)%' }, n: 1 }) } } },
      { name: 'b', typed_config: { '@type': EXT_TYPE_URL.fileAccessLog, path: '/var/log/b', log_format: { text_format_source: { inline_string: '%DURATION%ms\n' } } } },
      { name: 'c', typed_config: { '@type': EXT_TYPE_URL.stdoutAccessLog } },
      { name: 'd', typed_config: { '@type': EXT_TYPE_URL.fileAccessLog, path: '/var/log/d', format: '%PROTOCOL%' } },
    ] }, { access_log: [{ name: 't', typed_config: { '@type': EXT_TYPE_URL.fileAccessLog, path: '/var/log/t' } }] });
    const logs = hcm(l).accessLog;
    expect(logs.map((a) => [a.name, a.path, a.format.kind])).to.deep.equal([['a', '/dev/stdout', 'json'], ['b', '/var/log/b', 'text'], ['c', '/dev/stdout', 'default'], ['d', '/var/log/d', 'text']]);
    expect(logs[0]!.format).to.deep.equal({ kind: 'json', fields: {
      code: [{ kind: 'op', op: 'RESPONSE_CODE', arg: null, alt: null, maxLength: null }],
      nested: { m: [{ kind: 'op', op: 'REQ', arg: ':method', alt: null, maxLength: null }] },
      n: 1,
    } });
    expect(Object.isFrozen(logs[0]!.format)).to.equal(true);
    expect(tcp(l).accessLog.map((a) => [a.path, a.format.kind])).to.deep.equal([['/var/log/t', 'default']]);
    expect(hcm(listener({})).accessLog).to.deep.equal([]);
  });

  it('NACKs a logger without a path or with a malformed format, naming the field', () => {
    const bad = (al: Record<string, unknown>, path: string) => expect(() => listener({ access_log: [{ name: 'x', typed_config: { '@type': EXT_TYPE_URL.fileAccessLog, ...al } }] }))
      .to.throw(EnvoyResourceError).with.property('path', path);
    bad({}, 'filter_chains[0].filters[0].typed_config.access_log[0].typed_config.path');
    bad({ path: '/x', log_format: { text_format_source: { inline_string: '%DURATION' } } }, 'filter_chains[0].filters[0].typed_config.access_log[0].typed_config.log_format.text_format_source.inline_string');
  });

  it('tracing: random sampling and the Zipkin provider (Envoy defaults: 100 %)', () => {
    const l = listener({ tracing: { random_sampling: { value: 2.5 }, provider: { name: 'envoy.tracers.zipkin', typed_config: {
      '@type': EXT_TYPE_URL.zipkinConfig, collector_cluster: 'zipkin', collector_endpoint: '/api/v2/spans', collector_endpoint_version: 'HTTP_JSON',
      collector_hostname: 'zipkin.istio-system:9411', trace_id_128bit: true, shared_span_context: { value: false },
    } } } });
    expect(hcm(l).tracing).to.deep.equal({ randomSampling: 2.5, clientSampling: 100, provider: {
      kind: 'zipkin', collectorCluster: 'zipkin', collectorEndpoint: '/api/v2/spans', collectorHostname: 'zipkin.istio-system:9411', traceId128bit: true, sharedSpanContext: false,
    } });
    expect(hcm(listener({ tracing: {} })).tracing).to.deep.equal({ randomSampling: 100, clientSampling: 100, provider: null });
    expect(() => listener({ tracing: { provider: { name: 'z', typed_config: { '@type': EXT_TYPE_URL.zipkinConfig, collector_cluster: 'z', collector_endpoint: '/p', collector_endpoint_version: 'GRPC' } } } }))
      .to.throw(EnvoyResourceError, 'collector_endpoint_version: unsupported value');
  });
});
