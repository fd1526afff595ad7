import { expect } from 'chai';
import { clusterRows, endpointRows, listenerRows, routeRows } from '../src/cli/proxy-config.js';
import { renderProxyStatus } from '../src/cli/proxy-status.js';
import { renderRegistryStatus } from '../src/cli/registry-status.js';

describe('trellisctl proxy-status / proxy-config / registry status rendering', () => {
  it('renders one row per proxy with per-type states and NACK errors below', () => {
    const out = renderProxyStatus({
      controlPlaneVersion: '0.1.0', snapshotVersion: 's/3',
      proxies: [{
        proxy: 'sidecar~10.0.0.1~a.default~default.svc.cluster.local', connection: 'c1', clusterId: 'Kubernetes', type: 'sidecar',
        types: [
          { short: 'CDS', state: 'NACKED', nack: { version: 'abc', message: 'bad cluster', at: 't' } },
          { short: 'EDS', state: 'SYNCED' }, { short: 'LDS', state: 'STALE' },
        ],
      }],
    });
    const lines = out.split('\n');
    expect(lines[0]).to.match(/^NAME\s+CLUSTER\s+CDS\s+LDS\s+EDS\s+RDS\s+VERSION$/);
    expect(lines[1]).to.match(/^sidecar~10\.0\.0\.1~a\.default~default\.svc\.cluster\.local\s+Kubernetes\s+NACKED\s+STALE\s+SYNCED\s+NOT SENT\s+trellis-control 0\.1\.0$/);
    expect(out).to.contain('NACK errors:\n  sidecar~10.0.0.1~a.default~default.svc.cluster.local CDS (rejected version abc, at t): bad cluster\n');
    expect(out).to.contain('snapshot s/3');
  });

  it('lists the node agents\' DNS and registration streams apart from the proxies', () => {
    const notSent = (short: string) => ({ short, state: 'NOT SENT', subscribed: [] as string[] });
    const out = renderProxyStatus({
      controlPlaneVersion: '0.1.0',
      proxies: [
        { proxy: 'sidecar~10.0.0.2~vm.default~default.svc.cluster.local', connection: 'c1', clusterId: 'vms', type: 'sidecar',
          types: [{ short: 'CDS', state: 'SYNCED', subscribed: '*' }, { short: 'LDS', state: 'SYNCED', subscribed: '*' }, notSent('EDS'), notSent('RDS')] },
        { proxy: 'sidecar~10.0.0.2~vm.default~default.svc.cluster.local', connection: 'c2', clusterId: 'vms', type: 'sidecar',
          types: [notSent('CDS'), notSent('LDS'), notSent('EDS'), notSent('RDS'), { short: 'NDS', state: 'SYNCED', subscribed: '*' }] },
        { proxy: 'sidecar~10.0.0.2~vm.default~default.svc.cluster.local', connection: 'c3', clusterId: 'vms', type: 'sidecar',
          types: [notSent('CDS'), notSent('LDS'), notSent('EDS'), notSent('RDS')] },
      ],
    });
    const [proxies, agents] = out.split('Node agent streams:');
    expect(proxies.trim().split('\n')).to.have.length(2);
    expect(agents).to.match(/^NAME\s+CLUSTER\s+STREAM\s+STATE$/m);
    expect(agents).to.match(/vms\s+DNS name table\s+SYNCED$/m);
    expect(agents).to.match(/vms\s+registration\s+CONNECTED$/m);
  });

  it('tabulates listeners, routes, clusters and endpoints from a config dump', () => {
    const listeners = listenerRows([
      { name: 'virtualOutbound', body: { address: { socket_address: { address: '0.0.0.0', port_value: 15001 } }, filter_chains: [
        { filter_chain_match: { destination_port: 9080 }, filters: [{ name: 'hcm', typed_config: { '@type': 'x.HttpConnectionManager', rds: { route_config_name: 'http.9080' } } }] },
        { filters: [{ name: 'tcp', typed_config: { '@type': 'x.TcpProxy', cluster: 'PassthroughCluster' } }] },
      ] } },
      { name: 'echo:50051', body: { api_listener: { api_listener: { '@type': 'x.HttpConnectionManager', route_config: { name: 'rc' } } } } },
    ]);
    expect(listeners).to.deep.equal([
      ['virtualOutbound', '0.0.0.0', '15001', 'port 9080', 'Route: http.9080'],
      ['virtualOutbound', '0.0.0.0', '15001', 'ALL', 'Cluster: PassthroughCluster'],
      ['echo:50051', '-', '-', 'proxyless API listener', 'inline route'],
    ]);
    const routes = routeRows([{ name: 'http.9080', body: { virtual_hosts: [{ name: 'reviews:9080', domains: ['reviews'], routes: [
      { match: { prefix: '/', headers: [{ name: 'end-user' }] }, route: { cluster: 'outbound|9080|v2|reviews' } },
      { match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'a', weight: 80 }, { name: 'b', weight: 20 }] } } },
    ] }] } }], []);
    expect(routes).to.deep.equal([
      ['http.9080', 'reviews:9080', 'reviews', '/* [headers end-user]', 'outbound|9080|v2|reviews'],
      ['http.9080', 'reviews:9080', 'reviews', '/*', 'a 80, b 20'],
    ]);
    expect(clusterRows([{ name: 'outbound|9080|v1|reviews.default.svc.cluster.local', body: { type: 'EDS' } }])).to.deep.equal([
      ['reviews.default.svc.cluster.local', '9080', 'v1', 'outbound', 'EDS', 'ROUND_ROBIN'],
    ]);
    expect(endpointRows([{ name: 'c', body: { cluster_name: 'c', endpoints: [{ locality: { region: 'r', zone: 'z' }, lb_endpoints: [
      { endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 8080 } } }, load_balancing_weight: { value: 3 } },
    ] }] } }])).to.deep.equal([['10.0.0.1:8080', 'HEALTHY', 'r/z/', '3', 'c']]);
  });

  it('renders shards with stale state, problems and conflicts', () => {
    const out = renderRegistryStatus(
      [{ shard: 'consul:dc1', kind: 'consul', state: 'stale', staleSince: 'T0', lastError: 'ECONNREFUSED', lastChange: 'T', problems: [], counts: { services: 2, workloads: 5, configs: 0 } }],
      [{ hostname: 'a.test', namespace: 'default', field: 'ports', values: [{ shard: 'file:/c', value: [80] }, { shard: 'consul:dc1', value: [8080] }], winner: 'file:/c' }],
    );
    expect(out).to.match(/^SHARD\s+KIND\s+STATE\s+SERVICES\s+WORKLOADS\s+CONFIGS\s+LAST CHANGE\s+LAST ERROR$/m);
    expect(out).to.match(/consul:dc1\s+consul\s+stale since T0\s+2\s+5\s+0\s+T\s+ECONNREFUSED/);
    expect(out).to.contain('default/a.test ports: file:/c=[80] vs consul:dc1=[8080] → file:/c');
  });
});
