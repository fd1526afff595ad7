/**
 * Builders for the proxy integration tests: Envoy resources in proto field names (as a control plane would send
 * them), and a helper that starts a Proxy in-process against a fake ADS and a fake SDS with ports chosen by the OS.
 */
import * as grpc from '@grpc/grpc-js';
import { EXT_TYPE_URL, TYPE_URL } from '@trellis/api';
import { Proxy, nodeIdentity, silentLogger } from '@trellis/proxy';
import { FakeAdsServer, FakeSdsServer, type TestCa, issueTestCert } from '@trellis/testing';

export const TD = 'cluster.local';
export const spiffe = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;

const sdsRef = (name: string) => ({ name, sds_config: { api_config_source: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }] } } });

export function downstreamTls(requireClient = true) {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': EXT_TYPE_URL.downstreamTlsContext, require_client_certificate: { value: requireClient },
      common_tls_context: { alpn_protocols: ['h2', 'http/1.1'], tls_certificate_sds_secret_configs: [sdsRef('default')], combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: sdsRef('ROOTCA') } },
    },
  };
}

export function upstreamTls(expectSan: string, alpn: string[] = []) {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': EXT_TYPE_URL.upstreamTlsContext,
      common_tls_context: {
        alpn_protocols: alpn,
        tls_certificate_sds_secret_configs: [sdsRef('default')],
        combined_validation_context: { default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: expectSan } }] }, validation_context_sds_secret_config: sdsRef('ROOTCA') },
      },
    },
  };
}

export function hcm(opts: { rds?: string; routeConfig?: Record<string, unknown> }) {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': EXT_TYPE_URL.httpConnectionManager, stat_prefix: 'hcm',
      ...(opts.rds ? { rds: { route_config_name: opts.rds, config_source: { ads: {}, resource_api_version: 'V3' } } } : { route_config: opts.routeConfig }),
      http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': EXT_TYPE_URL.router } }],
    },
  };
}

export function tcpProxy(cluster: string) {
  return { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': EXT_TYPE_URL.tcpProxy, stat_prefix: 'tcp', cluster } };
}

export function listener(name: string, chains: Record<string, unknown>[], extra: Record<string, unknown> = {}) {
  return {
    name, address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: chains,
    listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': EXT_TYPE_URL.tlsInspector } }],
    ...extra,
  };
}

export function endpointsOf(port: number, host = '127.0.0.1', extra: Record<string, unknown> = {}) {
  return { endpoint: { address: { socket_address: { address: host, port_value: port } } }, health_status: 'HEALTHY', ...extra };
}

export function staticCluster(name: string, ports: number[], extra: Record<string, unknown> = {}) {
  return { name, type: 'STATIC', connect_timeout: { seconds: 1 }, load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: ports.map((p) => endpointsOf(p)) }] }, ...extra };
}

export function edsCluster(name: string, extra: Record<string, unknown> = {}) {
  return { name, type: 'EDS', connect_timeout: { seconds: 1 }, eds_cluster_config: { eds_config: { ads: {} }, service_name: name }, ...extra };
}

export const HTTP2 = { typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': EXT_TYPE_URL.httpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } } };

export function cla(name: string, ports: number[]) {
  return { cluster_name: name, endpoints: [{ lb_endpoints: ports.map((p) => endpointsOf(p)) }] };
}

export interface RunningProxy {
  readonly proxy: Proxy;
  readonly ads: FakeAdsServer;
  readonly sds: FakeSdsServer;
  port(listener: string): number;
  stop(): Promise<void>;
}

/** Starts a fake ADS + fake SDS (with a certificate for `sa`) and a proxy connected to both; waits until ready. */
export async function startProxy(o: { ca: TestCa; namespace?: string; sa: string; workload: string; resources: Partial<Record<keyof typeof TYPE_URL, Record<string, unknown>[]>>; waitReady?: boolean }): Promise<RunningProxy> {
  const ns = o.namespace ?? 'default';
  const ads = await new FakeAdsServer().start();
  const sds = await new FakeSdsServer().start();
  sds.setCertificate('default', issueTestCert(o.ca, spiffe(ns, o.sa)));
  sds.setTrustBundle('ROOTCA', o.ca.certPem);
  for (const [k, list] of Object.entries(o.resources)) ads.set(TYPE_URL[k as keyof typeof TYPE_URL], list!);
  const proxy = new Proxy({
    node: nodeIdentity({ mode: 'sidecar', ip: '127.0.0.1', workloadName: o.workload, namespace: ns, serviceAccount: o.sa, labels: { app: o.workload }, clusterId: 'c1', network: '' }),
    xds: { target: ads.address, credentials: grpc.credentials.createInsecure() },
    sdsSocket: sds.socketPath,
    logger: silentLogger(),
    ports: { outbound: 0, inbound: 0, admin: 0, prometheus: 0, health: 0 },
    bindAddress: '127.0.0.1', adminAddress: '127.0.0.1', statusAddress: '127.0.0.1',
    namespace: ns, serviceAccount: o.sa, workloadName: o.workload,
  });
  await proxy.start();
  if (o.waitReady !== false) await proxy.whenReady();
  return {
    proxy, ads, sds,
    port: (name) => proxy.listeners.port(name) ?? (() => { throw new Error(`listener ${name} is not bound`); })(),
    stop: async () => { await proxy.close(); await ads.stop(); await sds.stop(); },
  };
}

export async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
