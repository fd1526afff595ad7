/**
 * Networks (issue 9 item 2): a workload's network, split-horizon EDS (own network direct, other networks through
 * their gateways weighted by the endpoints behind them, networks without a gateway dropped), east-west gateway
 * LDS/CDS/EDS, and that memoised generation keys EDS by the proxy's network.
 */
import { expect } from 'chai';
import { decodeResource, formatViolation, type WorkloadEntry } from '@trellis/model';
import { TYPE_URL } from '@trellis/api';
import { resolveMeshSettings } from '../src/config/mesh-settings.js';
import { generateClusters } from '../src/generate/clusters.js';
import { generateEndpoints } from '../src/generate/endpoints.js';
import { generateListeners } from '../src/generate/listeners/index.js';
import { generators, memoizeGenerators } from '../src/generate/index.js';
import { Networks } from '../src/generate/networks.js';
import type { ProxyNode, Snapshot } from '../src/snapshot/types.js';
import { fixtureFromYaml } from './golden/harness.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test reads generated JSON

const HOST = 'echo.default.svc.cluster.local';

function endpoint(name: string, spec: Record<string, unknown>): string {
  return `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ${name}, namespace: default}
spec: ${JSON.stringify({ serviceAccount: 'echo', ...spec, labels: { app: 'echo', ...((spec.labels as object | undefined) ?? {}) } })}
`;
}

function fixture(mesh: Record<string, unknown>, endpoints: string, proxies: Record<string, unknown>[], extra = ''): { snapshot: Snapshot; proxies: readonly ProxyNode[] } {
  return fixtureFromYaml(`kind: TestMesh
spec: ${JSON.stringify(mesh)}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [${HOST}]
  addresses: [240.240.9.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  workloadSelector: {labels: {app: echo}}
${endpoints}${extra}${proxies.map((p) => `---\nkind: TestProxy\nspec: ${JSON.stringify(p)}\n`).join('')}`);
}

/** EDS of the default cluster as [address:port, weight, locality, tlsMode] rows. */
function rows(snapshot: Snapshot, proxy: ProxyNode, cluster = `outbound|80||${HOST}`): string[] {
  const cla = generateEndpoints(snapshot, proxy).find((r) => r.name === cluster)?.body as Obj | undefined;
  expect(cla, cluster).to.not.equal(undefined);
  return (cla!.endpoints as Obj[]).flatMap((l) => (l.lb_endpoints as Obj[]).map((e) => {
    const a = e.endpoint.address.socket_address;
    const meta = JSON.stringify(e.metadata?.filter_metadata?.['envoy.transport_socket_match'] ?? null);
    const mode = meta.includes('"istio"') ? 'istio' : meta.includes('"disabled"') ? 'disabled' : '-';
    return `${a.address}:${a.port_value} w${e.load_balancing_weight.value} ${l.locality.region}/${l.locality.zone} ${mode}`;
  })).sort();
}

const NETS = {
  network: 'net-a',
  networks: {
    'net-a': { cidrs: ['10.1.0.0/16'] },
    'net-b': { endpoints: [{ fromCidr: '10.2.0.0/16' }], gateways: [{ address: '192.0.2.2', port: 15443 }] },
    'net-c': { endpoints: [{ fromCidr: '10.3.0.0/16' }] },
  },
};

describe('networks: which network a workload is on', () => {
  const { snapshot } = fixture({
    network: 'home',
    networks: {
      wide: { cidrs: ['10.0.0.0/8'] },
      narrow: { endpoints: [{ fromCidr: '10.5.0.0/16' }] },
      reg: { endpoints: [{ fromRegistry: 'test' }] },
    },
  }, '', []);
  const nets = new Networks(snapshot);
  const w = (over: Partial<WorkloadEntry>): WorkloadEntry => ({
    name: 'w', namespace: 'default', address: '10.5.1.1', ports: {}, labels: {}, serviceAccount: '', locality: '', network: '', weight: 1,
    health: 'HEALTHY', services: [], source: { kind: 'consul', shard: 'consul:dc1' }, ...over,
  });
  it('its own network first, then the topology.istio.io/network label', () => {
    expect(nets.workloadNetwork(w({ network: 'own', labels: { 'topology.istio.io/network': 'lbl' } }))).to.equal('own');
    expect(nets.workloadNetwork(w({ labels: { 'topology.istio.io/network': 'lbl' } }))).to.equal('lbl');
  });
  it('then fromRegistry (shard id or the part after `kind:`), then the longest matching CIDR, then MeshConfig network', () => {
    expect(nets.workloadNetwork(w({ source: { kind: 'file', shard: 'file:test' } }))).to.equal('reg');
    expect(nets.workloadNetwork(w({ source: { kind: 'file', shard: 'test' } }))).to.equal('reg');
    expect(nets.workloadNetwork(w({}))).to.equal('narrow');
    expect(nets.workloadNetwork(w({ address: '10.6.0.1' }))).to.equal('wide');
    expect(nets.workloadNetwork(w({ address: '192.168.0.1' }))).to.equal('home');
    expect(nets.workloadNetwork(w({ address: 'db.example.com' }))).to.equal('home');
  });
  it('a proxy that names no network is on MeshConfig network', () => {
    expect(nets.proxyNetwork('')).to.equal('home');
    expect(nets.proxyNetwork('x')).to.equal('x');
  });
});

describe('networks: split-horizon EDS', () => {
  const eps = endpoint('a1', { address: '10.1.0.1', locality: 'r1/z1' })
    + endpoint('b1', { address: '10.2.0.1', locality: 'r2/z1' })
    + endpoint('b2', { address: '10.2.0.2', locality: 'r2/z1', weight: 3 })
    + endpoint('b3', { address: '10.2.0.3', locality: 'r2/z2' })
    + endpoint('c1', { address: '10.3.0.1', locality: 'r3/z1' });
  const proxies = [
    { ipAddresses: ['10.1.0.9'], workloadName: 'client-a', network: 'net-a' },
    { ipAddresses: ['10.2.0.9'], workloadName: 'client-b', network: 'net-b' },
    { ipAddresses: ['10.1.0.8'], workloadName: 'client-unnamed' },
    { ipAddresses: ['10.1.0.7'], workloadName: 'grpc', type: 'proxyless', network: 'net-a' },
  ];
  const { snapshot, proxies: [a, b, unnamed, grpc] } = fixture(NETS, eps, proxies);

  it('a proxy gets its own network\'s endpoints directly and, per locality, the other network\'s gateway weighted by the endpoints behind it', () => {
    expect(rows(snapshot, a!)).to.deep.equal([
      '10.1.0.1:8080 w1 r1/z1 istio',
      '192.0.2.2:15443 w1 r2/z2 istio',
      '192.0.2.2:15443 w4 r2/z1 istio',
    ]);
  });
  it('a network without gateways is unreachable from elsewhere: its endpoints are dropped', () => {
    expect(rows(snapshot, b!).some((r) => r.startsWith('10.3.'))).to.equal(false);
    expect(rows(snapshot, a!).some((r) => r.startsWith('10.3.'))).to.equal(false);
    // net-a has no gateway either: net-b's proxy sees only net-b.
    expect(rows(snapshot, b!)).to.deep.equal(['10.2.0.1:8080 w1 r2/z1 istio', '10.2.0.2:8080 w3 r2/z1 istio', '10.2.0.3:8080 w1 r2/z2 istio']);
  });
  it('a proxy that names no network is on MeshConfig network', () => {
    expect(rows(snapshot, unnamed!)).to.deep.equal(rows(snapshot, a!));
  });
  it('proxyless gRPC clients (no mesh mTLS) get no gateway endpoints', () => {
    expect(rows(snapshot, grpc!).map((r) => r.split(' ')[0])).to.deep.equal(['10.1.0.1:8080']);
  });
  it('the cluster speaks mesh mTLS to the gateway with SNI outbound_.<port>_.<subset>_.<host> and expects the endpoints\' identity', () => {
    const c = generateClusters(snapshot, a!).find((r) => r.name === `outbound|80||${HOST}`)!.body as Obj;
    const m = (c.transport_socket_matches as Obj[]).find((x) => x.name === 'tlsMode-istio')!;
    const ctx = m.transport_socket.typed_config;
    expect(ctx.sni).to.equal(`outbound_.80_._.${HOST}`);
    expect(JSON.stringify(ctx)).to.contain('spiffe://cluster.local/ns/default/sa/echo');
  });
  it('only endpoints that run a proxy count behind a gateway; two gateways split the weight', () => {
    const two = { ...NETS, networks: { ...NETS.networks, 'net-b': { ...NETS.networks['net-b'], gateways: [{ address: '192.0.2.2', port: 15443 }, { address: '192.0.2.3', port: 15443 }] } } };
    const f = fixture(two, endpoint('b1', { address: '10.2.0.1', locality: 'r2/z1', weight: 4 })
      + endpoint('b2', { address: '10.2.0.2', locality: 'r2/z1', labels: { 'security.istio.io/tlsMode': 'disabled' } })
      + endpoint('b3', { address: '10.2.0.3', locality: 'r2/z1', weight: 9, labels: { 'topology.istio.io/network': 'net-b' }, serviceAccount: 'echo' }), [{ workloadName: 'c', network: 'net-a' }]);
    // b3 is healthy too: 4 + 9 = 13 behind the network, 7 (rounded) per gateway; b2 has no proxy and is dropped.
    expect(rows(f.snapshot, f.proxies[0]!)).to.deep.equal(['192.0.2.2:15443 w7 r2/z1 istio', '192.0.2.3:15443 w7 r2/z1 istio']);
  });
  it('a gateway given as registryServiceName is that service\'s endpoints, at its port', () => {
    const mesh = { network: 'net-a', networks: { 'net-b': { endpoints: [{ fromCidr: '10.2.0.0/16' }], gateways: [{ registryServiceName: 'eastwest.istio-system.svc.cluster.local', port: 15443 }] } } };
    const gw = `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: eastwest, namespace: istio-system}
spec:
  hosts: [eastwest.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 15443, name: tls, protocol: TLS, targetPort: 16443}]
  endpoints: [{address: 198.51.100.7}]
`;
    const f = fixture(mesh, endpoint('b1', { address: '10.2.0.1' }), [{ workloadName: 'c', network: 'net-a' }], gw);
    expect(rows(f.snapshot, f.proxies[0]!)).to.deep.equal(['198.51.100.7:16443 w1 / istio']);
  });
  it('subsets select by the real endpoints\' labels before the split', () => {
    const dr = `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec: {host: ${HOST}, subsets: [{name: v2, labels: {version: v2}}]}
`;
    const f = fixture(NETS, endpoint('a1', { address: '10.1.0.1', labels: { version: 'v1' } }) + endpoint('b1', { address: '10.2.0.1', labels: { version: 'v2' } }), [{ workloadName: 'c', network: 'net-a' }], dr);
    expect(rows(f.snapshot, f.proxies[0]!, `outbound|80|v2|${HOST}`)).to.deep.equal(['192.0.2.2:15443 w1 / istio']);
  });
  it('DNS clusters list their endpoints inline, split the same way', () => {
    const dns = `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  location: MESH_INTERNAL
  resolution: DNS
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints:
  - {address: 10.1.0.5, serviceAccount: db}
  - {address: 10.2.0.5, serviceAccount: db}
  - {address: 10.3.0.5, serviceAccount: db}
`;
    const f = fixture(NETS, '', [{ workloadName: 'c', network: 'net-a' }], dns);
    const c = generateClusters(f.snapshot, f.proxies[0]!).find((r) => r.name === 'outbound|5432||db.example.com')!.body as Obj;
    const addrs = (c.load_assignment.endpoints as Obj[]).flatMap((l) => (l.lb_endpoints as Obj[]).map((e) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}`));
    expect(addrs.sort()).to.deep.equal(['10.1.0.5:5432', '192.0.2.2:15443']);
  });
  it('memoised generation keys EDS and CDS by the proxy\'s network', () => {
    const cds = memoizeGenerators(generators)[TYPE_URL.cluster]!;
    const dnsEndpoints = (p: ProxyNode) => JSON.stringify(cds(snapshot, p));
    expect(dnsEndpoints({ ...a!, network: 'net-a' })).to.equal(JSON.stringify(generateClusters(snapshot, { ...a!, network: 'net-a' })));

    const memo = memoizeGenerators(generators);
    const eds = memo[TYPE_URL.endpoint]!;
    const rowsOf = (p: ProxyNode) => JSON.stringify(eds(snapshot, p));
    expect(rowsOf(a!)).to.not.equal(rowsOf(b!));
    expect(rowsOf({ ...b!, labels: {} })).to.equal(JSON.stringify(generateEndpoints(snapshot, b!)));
  });
});

describe('networks: the east-west gateway (AUTO_PASSTHROUGH)', () => {
  const gateway = `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: AUTO_PASSTHROUGH}
    hosts: ['*.local']
`;
  const eps = endpoint('a1', { address: '10.1.0.1' }) + endpoint('b1', { address: '10.2.0.1' });
  const { snapshot, proxies: [gw, other] } = fixture(NETS, eps, [
    { type: 'router', namespace: 'istio-system', workloadName: 'eastwest', labels: { istio: 'eastwestgateway' }, network: 'net-b' },
    { type: 'router', namespace: 'istio-system', workloadName: 'ingress', labels: { istio: 'ingressgateway' }, network: 'net-b' },
  ], gateway);
  const sni = `outbound_.80_._.${HOST}`;

  it('listens on 15443 with one SNI chain per service port (and subset) → tcp_proxy, never terminating TLS', () => {
    const l = generateListeners(snapshot, gw!).find((r) => r.name === '0.0.0.0_15443')!.body as Obj;
    expect(l.listener_filters.map((f: Obj) => f.name)).to.deep.equal(['envoy.filters.listener.tls_inspector']);
    expect(l.filter_chains).to.have.length(1);
    const chain = l.filter_chains[0];
    expect(chain.filter_chain_match).to.deep.equal({ server_names: [sni], transport_protocol: 'tls' });
    expect(chain.transport_socket).to.equal(undefined);
    expect(chain.filters.map((f: Obj) => f.typed_config.cluster)).to.deep.equal([sni]);
  });
  it('the SNI cluster has no TLS of its own and its endpoints are this network\'s only', () => {
    const c = generateClusters(snapshot, gw!).find((r) => r.name === sni)!.body as Obj;
    expect(c.type).to.equal('EDS');
    expect(c.eds_cluster_config.service_name).to.equal(sni);
    expect(c.transport_socket).to.equal(undefined);
    expect(c.transport_socket_matches).to.equal(undefined);
    expect(rows(snapshot, gw!, sni)).to.deep.equal(['10.2.0.1:8080 w1 / -']);
  });
  it('a gateway without an AUTO_PASSTHROUGH server gets none of it', () => {
    expect(generateListeners(snapshot, other!).map((r) => r.name)).to.not.include('0.0.0.0_15443');
    expect(generateClusters(snapshot, other!).map((r) => r.name)).to.not.include(sni);
  });
});

describe('networks: MeshConfig', () => {
  const decode = (networks: unknown) => decodeResource({ apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'm' }, spec: { networks } });
  it('accepts Istio\'s meshNetworks shape, defaulting the gateway port to 15443', () => {
    const r = decode({ 'net-b': { endpoints: [{ fromCidr: '10.2.0.0/16' }, { fromRegistry: 'cluster-b' }], gateways: [{ address: '192.0.2.2' }, { registryServiceName: 'eastwest.istio-system.svc.cluster.local', port: 15443 }] } });
    expect(r.ok, r.ok ? '' : r.violations.map(formatViolation).join('\n')).to.equal(true);
    if (!r.ok || r.resource.kind !== 'MeshConfig') return;
    expect(r.resource.spec.networks?.['net-b']?.gateways?.[0]).to.deep.equal({ address: '192.0.2.2', port: 15443 });
  });
  it('reports each mistake with its path', () => {
    const r = decode({ '': {}, 'net-b': { endpoints: [{ fromCidr: '10.2.0.0/33' }, {}, { fromCidr: '10.0.0.0/8', fromRegistry: 'x' }], gateways: [{ port: 15443 }, { address: '1.2.3.4', registryServiceName: 'gw.example.com' }, { address: 'bad address' }] } });
    expect(r.ok).to.equal(false);
    if (r.ok) return;
    expect(r.violations.map(formatViolation)).to.deep.equal([
      'spec.networks[""]: network name must not be empty',
      'spec.networks.net-b.endpoints[0].fromCidr: invalid CIDR `10.2.0.0/33`',
      'spec.networks.net-b.endpoints[1]: one of `fromCidr`, `fromRegistry` is required',
      'spec.networks.net-b.endpoints[2]: only one of `fromCidr`, `fromRegistry` may be set, got `fromCidr`, `fromRegistry`',
      'spec.networks.net-b.gateways[0]: one of `address`, `registryServiceName` is required',
      'spec.networks.net-b.gateways[1]: only one of `address`, `registryServiceName` may be set, got `address`, `registryServiceName`',
      'spec.networks.net-b.gateways[2].address: invalid address `bad address`: expected an IP or a hostname',
    ]);
  });
  it('a MeshConfig\'s networks table reaches the mesh settings', () => {
    const networks = { 'net-b': { gateways: [{ address: '192.0.2.2', port: 15443 }] } };
    const m = resolveMeshSettings({ network: 'net-a' }, undefined, [{ metadata: { namespace: 'default', name: 'mesh' }, spec: { networks } }]);
    expect(m.network).to.equal('net-a');
    expect(m.networks).to.deep.equal(networks);
  });
});

describe('locality: a proxy without a node locality takes its own workload\'s (Istio\'s service-instance locality)', () => {
  const dr = `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: ${HOST}
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
    loadBalancer: {localityLbSetting: {failover: [{from: r1, to: r2}]}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: default}
spec: {address: 10.1.0.9, locality: r1/z1, labels: {app: client}}
`;
  const eps = endpoint('a1', { address: '10.1.0.1', locality: 'r1/z1' }) + endpoint('b1', { address: '10.2.0.1', locality: 'r2/z1' });
  const { snapshot, proxies: [vm, nowhere] } = fixture(NETS, eps, [
    { ipAddresses: ['10.1.0.9'], workloadName: 'client', network: 'net-a' },
    { ipAddresses: ['10.1.0.99'], workloadName: 'unknown', network: 'net-a' },
  ], dr);
  const priorities = (p: ProxyNode): string[] => ((generateEndpoints(snapshot, p).find((r) => r.name === `outbound|80||${HOST}`)!.body as Obj).endpoints as Obj[])
    .map((l) => `${l.locality.region}/${l.locality.zone}:${l.priority ?? 0}`);

  it('its WorkloadEntry\'s locality orders the failover: own zone first, then the failover region (via the gateway)', () => {
    expect(priorities(vm!)).to.deep.equal(['r1/z1:0', 'r2/z1:1']);
  });
  it('a proxy with no locality anywhere gets no priorities', () => {
    expect(priorities(nowhere!)).to.deep.equal(['r1/z1:0', 'r2/z1:0']);
  });
  it('memoised EDS tells the two apart', () => {
    const eds = memoizeGenerators(generators)[TYPE_URL.endpoint]!;
    expect(JSON.stringify(eds(snapshot, vm!))).to.not.equal(JSON.stringify(eds(snapshot, nowhere!)));
  });
});
