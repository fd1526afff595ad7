/**
 * Behaviour of the generators that the golden files show only implicitly, asserted one rule at a time
 * (Istio's semantics: DS-17 mesh gateway, sourceLabels, outbound policy, exportTo, short names, TLS modes,
 * PeerAuthentication DISABLE, httpsRedirect, DNS clusters, frozen output).
 */
import { expect } from 'chai';
import { TYPE_URL } from '@trellis/api';
import { generateAll, generators } from '../src/generate/index.js';
import type { ProxyNode, Snapshot } from '../src/snapshot/types.js';
import { fixtureFromYaml } from './golden/harness.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test reads generated JSON

const SERVICE = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  addresses: [10.96.0.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}, serviceAccount: web}
  - {address: 10.0.0.2, labels: {version: v2}, serviceAccount: web}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`;
const CLIENT = `
---
kind: TestProxy
spec: {ipAddresses: [10.0.9.9], namespace: default, workloadName: client, labels: {app: client}}
`;

function load(yaml: string): { snapshot: Snapshot; proxies: readonly ProxyNode[] } {
  return fixtureFromYaml(yaml);
}
function first(p: readonly ProxyNode[]): ProxyNode {
  const x = p[0];
  if (x === undefined) throw new Error('fixture has no proxy');
  return x;
}
function resources(yaml: string, url: string, proxyIndex = 0): Obj[] {
  const { snapshot, proxies } = load(yaml);
  const proxy = proxies[proxyIndex] ?? first(proxies);
  return (generators as Record<string, (s: Snapshot, p: ProxyNode) => readonly { body: unknown }[]>)[url]!(snapshot, proxy).map((r) => r.body as Obj);
}
function vhost(yaml: string, route: string, name: string): Obj {
  const rc = resources(yaml, TYPE_URL.route).find((r) => r.name === route);
  const vh = (rc?.virtual_hosts as Obj[] | undefined)?.find((v) => v.name === name);
  if (vh === undefined) throw new Error(`no virtual host ${name} in ${route}`);
  return vh;
}

describe('generate: Istio semantics', () => {
  it('DS-17: a VirtualService bound only to a gateway does not route sidecar traffic; adding mesh does', () => {
    const vs = (gateways: string) => `${SERVICE}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  gateways: ${gateways}
  http: [{route: [{destination: {host: web, subset: v2}}]}]
${CLIENT}`;
    const gwOnly = vhost(vs('[web-gateway]'), 'http.80', 'web.default.svc.cluster.local:80');
    expect(gwOnly.routes[0].name).to.equal('default');
    expect(gwOnly.routes[0].route.cluster).to.equal('outbound|80||web.default.svc.cluster.local');
    const both = vhost(vs('[web-gateway, mesh]'), 'http.80', 'web.default.svc.cluster.local:80');
    expect(both.routes[0].route.cluster).to.equal('outbound|80|v2|web.default.svc.cluster.local');
  });

  it('a match with sourceLabels applies only to proxies whose labels match; routes with matches get no catch-all', () => {
    const yaml = (labels: string) => `${SERVICE}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - match: [{sourceLabels: {app: canary-client}}]
    route: [{destination: {host: web, subset: v2}}]
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: web, subset: v1}}]
---
kind: TestProxy
spec: {ipAddresses: [10.0.9.9], namespace: default, labels: ${labels}}
`;
    const other = vhost(yaml('{app: client}'), 'http.80', 'web.default.svc.cluster.local:80');
    expect(other.routes.map((r: Obj) => r.match)).to.deep.equal([{ prefix: '/api' }]);
    const canary = vhost(yaml('{app: canary-client}'), 'http.80', 'web.default.svc.cluster.local:80');
    expect(canary.routes.map((r: Obj) => r.route.cluster)).to.deep.equal(['outbound|80|v2|web.default.svc.cluster.local', 'outbound|80|v1|web.default.svc.cluster.local']);
  });

  it('outbound traffic policy: ALLOW_ANY passes unknown traffic through, REGISTRY_ONLY blackholes it', () => {
    const allow = resources(SERVICE + CLIENT, TYPE_URL.listener).find((l) => l.name === 'virtualOutbound')!;
    expect(allow.filter_chains.at(-1).filters[0].typed_config.cluster).to.equal('PassthroughCluster');
    expect(vhost(SERVICE + CLIENT, 'http.80', 'allow_any').routes[0].route.cluster).to.equal('PassthroughCluster');
    const strict = `${SERVICE}\n---\nkind: TestMesh\nspec: {outboundTrafficPolicy: REGISTRY_ONLY}${CLIENT}`;
    const block = resources(strict, TYPE_URL.listener).find((l) => l.name === 'virtualOutbound')!;
    expect(block.filter_chains.at(-1).filters[0].typed_config.cluster).to.equal('BlackHoleCluster');
    expect(vhost(strict, 'http.80', 'block_all').routes[0].direct_response).to.deep.equal({ status: 502 });
  });

  it('exportTo "." hides a service from other namespaces; the bare short name is a domain only in its own namespace', () => {
    const yaml = `${SERVICE.replace('  location: MESH_INTERNAL', "  location: MESH_INTERNAL\n  exportTo: ['.']")}
---
kind: TestProxy
spec: {ipAddresses: [10.0.9.9], namespace: default}
---
kind: TestProxy
spec: {ipAddresses: [10.0.9.8], namespace: other}
`;
    const own = resources(yaml, TYPE_URL.cluster, 0).map((c) => c.name);
    const other = resources(yaml, TYPE_URL.cluster, 1).map((c) => c.name);
    expect(own).to.include('outbound|80||web.default.svc.cluster.local');
    expect(other).to.not.include('outbound|80||web.default.svc.cluster.local');
    const shared = SERVICE + `
---
kind: TestProxy
spec: {ipAddresses: [10.0.9.8], namespace: other}
`;
    const domains = vhost(shared, 'http.80', 'web.default.svc.cluster.local:80').domains as string[];
    expect(domains).to.include.members(['web.default', 'web.default:80', '10.96.0.1:80']);
    expect(domains).to.not.include('web');
  });

  it('TLS: auto mTLS for mesh services, DR DISABLE turns it off, MESH_EXTERNAL stays plaintext, ISTIO_MUTUAL expects the endpoints SPIFFE ids', () => {
    const cluster = (yaml: string, name: string): Obj => resources(yaml, TYPE_URL.cluster).find((c) => c.name === name)!;
    const auto = cluster(SERVICE + CLIENT, 'outbound|80||web.default.svc.cluster.local');
    expect(auto.transport_socket_matches[0].transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names)
      .to.deep.equal([{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/default/sa/web' } }]);
    const disabled = SERVICE.replace('  host: web\n', '  host: web\n  trafficPolicy: {tls: {mode: DISABLE}}\n') + CLIENT;
    expect(cluster(disabled, 'outbound|80||web.default.svc.cluster.local')).to.not.have.any.keys('transport_socket', 'transport_socket_matches');
    const external = SERVICE.replace('MESH_INTERNAL', 'MESH_EXTERNAL') + CLIENT;
    expect(cluster(external, 'outbound|80||web.default.svc.cluster.local')).to.not.have.any.keys('transport_socket', 'transport_socket_matches');
    const mutual = SERVICE.replace('  host: web\n', "  host: web\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n") + CLIENT;
    const ts = cluster(mutual, 'outbound|80|v1|web.default.svc.cluster.local').transport_socket;
    expect(ts.typed_config.sni).to.equal('outbound_.80_.v1_.web.default.svc.cluster.local');
    expect(ts.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name).to.equal('default');
    expect(ts.typed_config.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name).to.equal('ROOTCA');
    expect(ts.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names[0].matcher.exact)
      .to.equal('spiffe://cluster.local/ns/default/sa/web');
    expect(cluster(mutual, 'outbound|80|v1|web.default.svc.cluster.local')).to.not.have.any.keys('transport_socket_matches');
  });

  it('PeerAuthentication DISABLE on the destination namespace turns auto mTLS off', () => {
    const yaml = `${SERVICE}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: DISABLE}}
${CLIENT}`;
    const c = resources(yaml, TYPE_URL.cluster).find((x) => x.name === 'outbound|80||web.default.svc.cluster.local')!;
    expect(c).to.not.have.any.keys('transport_socket', 'transport_socket_matches');
  });

  it('gateway httpsRedirect sets require_tls ALL; an unbound gateway port answers from a blackhole virtual host', () => {
    const yaml = `${SERVICE}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: [web.example.com], tls: {httpsRedirect: true}}
  - {port: {number: 8080, name: http-alt, protocol: HTTP}, hosts: [other.example.com]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: web.default.svc.cluster.local}}]}]
---
kind: TestProxy
spec: {type: router, ipAddresses: [10.0.8.1], namespace: istio-system, labels: {istio: ingressgateway}}
`;
    const vh = vhost(yaml, 'http.80', 'web.example.com:80');
    expect(vh.require_tls).to.equal('ALL');
    expect(vh.domains).to.deep.equal(['web.example.com', 'web.example.com:*']);
    expect(vh.routes[0].route.cluster).to.equal('outbound|80||web.default.svc.cluster.local');
    expect(vhost(yaml, 'http.8080', 'blackhole:8080').routes).to.deep.equal([]);
    expect(resources(yaml, TYPE_URL.listener).map((l) => l.name)).to.deep.equal(['0.0.0.0_80', '0.0.0.0_8080']);
  });

  it('DNS resolution gives STRICT_DNS with the hostname as the endpoint when none are listed', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
${CLIENT}`;
    const c = resources(yaml, TYPE_URL.cluster).find((x) => x.name === 'outbound|443||api.example.com')!;
    expect(c.type).to.equal('STRICT_DNS');
    expect(c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).to.deep.equal({ address: 'api.example.com', port_value: 443 });
    expect(resources(yaml, TYPE_URL.endpoint).map((e) => e.cluster_name)).to.not.include('outbound|443||api.example.com');
  });

  it('a VirtualService host that names no service gets its own virtual host on each HTTP port', () => {
    const yaml = `${SERVICE}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy.example.com]
  http: [{route: [{destination: {host: web, subset: v1}}]}]
${CLIENT}`;
    const vh = vhost(yaml, 'http.80', 'legacy.example.com:80');
    expect(vh.domains).to.deep.equal(['legacy.example.com', 'legacy.example.com:80']);
    expect(vh.routes[0].route.cluster).to.equal('outbound|80|v1|web.default.svc.cluster.local');
  });

  it('locality: failover priorities by proximity and failover rules; distribute sets locality weights', () => {
    const base = (lb: string) => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, locality: us-east/a}
  - {address: 10.0.0.2, locality: us-east/b}
  - {address: 10.0.0.3, locality: eu-west/a}
  - {address: 10.0.0.4, locality: us-west/a}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3}
    loadBalancer: {localityLbSetting: ${lb}}
---
kind: TestProxy
spec: {ipAddresses: [10.0.9.9], namespace: default, locality: us-east/a}
`;
    const cla = (lb: string): Obj => resources(base(lb), TYPE_URL.endpoint).find((e) => e.cluster_name === 'outbound|80||web.default.svc.cluster.local')!;
    const byRegion = (c: Obj) => Object.fromEntries((c.endpoints as Obj[]).map((e) => [`${e.locality.region}/${e.locality.zone}`, e.priority ?? 0]));
    expect(byRegion(cla('{enabled: true}'))).to.deep.equal({ 'us-east/a': 0, 'us-east/b': 1, 'eu-west/a': 2, 'us-west/a': 2 });
    expect(byRegion(cla('{failover: [{from: us-east, to: us-west}]}'))).to.deep.equal({ 'us-east/a': 0, 'us-east/b': 1, 'us-west/a': 2, 'eu-west/a': 3 });
    const dist = cla(`{distribute: [{from: 'us-east/*', to: {'us-east/*': 80, 'us-west/*': 20}}]}`);
    expect(Object.fromEntries((dist.endpoints as Obj[]).map((e) => [`${e.locality.region}/${e.locality.zone}`, e.load_balancing_weight.value])))
      .to.deep.equal({ 'us-east/a': 40000, 'us-east/b': 40000, 'us-west/a': 20000 });
    expect(cla('{enabled: false}').endpoints.every((e: Obj) => e.priority === undefined)).to.equal(true);
  });

  it('DS-19: a VirtualService tls route by SNI gets an outbound chain with server_names and the tls_inspector', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: ['*.api.company.com']
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: example-prod, namespace: default}
spec:
  hosts: [example.prod.internal]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sni, namespace: default}
spec:
  hosts: ['*.api.company.com']
  tls:
  - match: [{sniHosts: [example.api.company.com]}]
    route: [{destination: {host: example.prod.internal}}]
${CLIENT}`;
    const l = resources(yaml, TYPE_URL.listener).find((x) => x.name === 'virtualOutbound')!;
    const chain = (l.filter_chains as Obj[]).find((c) => c.filter_chain_match?.server_names?.includes('example.api.company.com'))!;
    expect(chain.filter_chain_match).to.deep.equal({ destination_port: { value: 443 }, transport_protocol: 'tls', server_names: ['example.api.company.com'] });
    expect(chain.filters[0].typed_config.cluster).to.equal('outbound|443||example.prod.internal');
    expect((l.listener_filters as Obj[]).map((f) => f.name)).to.include('envoy.filters.listener.tls_inspector');
  });

  it('generateAll returns deeply frozen values', () => {
    const { snapshot, proxies } = load(SERVICE + CLIENT);
    const all = generateAll(snapshot, first(proxies));
    const cluster = all[TYPE_URL.cluster][0];
    expect(Object.isFrozen(all)).to.equal(true);
    expect(Object.isFrozen(cluster?.body)).to.equal(true);
  });
});
