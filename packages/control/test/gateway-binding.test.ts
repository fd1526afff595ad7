/**
 * DS-16's binding matrix: which VirtualService hosts a Gateway server admits, and under which virtual host name
 * (the more specific of the two patterns), including the `namespace/host` form of server hosts. Also the
 * per-server chains of a gateway listener (SNI, TLS context by credentialName or file paths, passthrough, TCP).
 */
import { expect } from 'chai';
import { TYPE_URL } from '@trellis/api';
import { generators } from '../src/generate/index.js';
import type { ProxyNode, Snapshot } from '../src/snapshot/types.js';
import { fixtureFromYaml } from './golden/harness.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test reads generated JSON

const BASE = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: foo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: [foo.example.com]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wildcard-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*.example.com']}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: team-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 9090, name: http, protocol: HTTP}, hosts: ['team-a/*.example.com']}
---
kind: TestProxy
spec: {type: router, ipAddresses: [10.0.8.1], namespace: istio-system, labels: {istio: ingressgateway}}
`;

const vs = (name: string, ns: string, hosts: string, gateways: string) => `
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: ${ns}}
spec:
  hosts: [${hosts}]
  gateways: [${gateways}]
  http: [{route: [{destination: {host: web.default.svc.cluster.local}}]}]
`;

function generate(yaml: string, url: string): Obj[] {
  const { snapshot, proxies } = fixtureFromYaml(yaml);
  const proxy = proxies[proxies.length - 1]!;
  return (generators as Record<string, (s: Snapshot, p: ProxyNode) => readonly { body: unknown }[]>)[url]!(snapshot, proxy).map((r) => r.body as Obj);
}

function vhostNames(yaml: string, route: string): string[] {
  const rc = generate(yaml, TYPE_URL.route).find((r) => r.name === route);
  return ((rc?.virtual_hosts ?? []) as Obj[]).map((v) => v.name as string);
}

describe('gateway binding (DS-16) and gateway listener chains', () => {
  const cases: { title: string; vs: string; route: string; expect: string[] }[] = [
    { title: 'exact host on an exact server', vs: vs('a', 'default', 'foo.example.com', 'foo-gateway'), route: 'http.80', expect: ['foo.example.com:80'] },
    { title: 'a wildcard VirtualService host binds as the server\'s more specific host', vs: vs('a', 'default', "'*.example.com'", 'foo-gateway'), route: 'http.80', expect: ['foo.example.com:80'] },
    { title: 'an exact VirtualService host under a wildcard server', vs: vs('a', 'default', 'bar.example.com', 'wildcard-gateway'), route: 'http.8080', expect: ['bar.example.com:8080'] },
    { title: 'a host the server does not cover does not bind', vs: vs('a', 'default', 'bar.other.com', 'wildcard-gateway'), route: 'http.8080', expect: ['blackhole:8080'] },
    { title: 'a VirtualService bound to another gateway does not bind', vs: vs('a', 'default', 'foo.example.com', 'wildcard-gateway'), route: 'http.80', expect: ['blackhole:80'] },
    { title: '`ns/host` server hosts admit only that namespace\'s VirtualServices', vs: vs('a', 'team-a', 'x.example.com', 'default/team-gateway') + vs('b', 'team-b', 'y.example.com', 'default/team-gateway'), route: 'http.9090', expect: ['x.example.com:9090'] },
  ];
  for (const c of cases) {
    it(c.title, () => {
      expect(vhostNames(BASE + c.vs, c.route)).to.deep.equal(c.expect);
    });
  }

  it('HTTPS servers get a chain each, matched by SNI, with their own TLS context; PASSTHROUGH and TCP servers forward', () => {
    const yaml = `${BASE}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}, {number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: 10.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 443, name: https-a, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: SIMPLE, credentialName: a-cred}}
  - {port: {number: 443, name: https-b, protocol: HTTPS}, hosts: [b.example.com], tls: {mode: MUTUAL, credentialName: b-cred}}
  - {port: {number: 443, name: https-c, protocol: HTTPS}, hosts: [c.example.com], tls: {mode: SIMPLE, serverCertificate: /etc/c.crt, privateKey: /etc/c.key}}
  - {port: {number: 443, name: https-d, protocol: HTTPS}, hosts: [d.example.com], tls: {mode: MUTUAL, credentialNames: [d-rsa, d-ecdsa]}}
  - {port: {number: 8443, name: tls, protocol: TLS}, hosts: [db.example.com], tls: {mode: PASSTHROUGH}}
  - {port: {number: 5432, name: tcp, protocol: TCP}, hosts: ['*']}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  gateways: [tls-gateway]
  tls: [{match: [{port: 8443, sniHosts: [db.example.com]}], route: [{destination: {host: db.example.com, port: {number: 443}}}]}]
  tcp: [{match: [{port: 5432}], route: [{destination: {host: db.example.com, port: {number: 5432}}}]}]
`;
    const listeners = generate(yaml, TYPE_URL.listener);
    const l443 = listeners.find((l) => l.name === '0.0.0.0_443')!;
    const chains = l443.filter_chains as Obj[];
    const byHost = (h: string) => chains.find((c) => (c.filter_chain_match?.server_names ?? []).includes(h))!;
    const secretNames = (c: Obj) => {
      const t = c.transport_socket.typed_config.common_tls_context;
      return { cert: t.tls_certificate_sds_secret_configs.map((s: Obj) => s.name), ca: t.combined_validation_context?.validation_context_sds_secret_config?.name ?? null, require: c.transport_socket.typed_config.require_client_certificate?.value ?? false };
    };
    expect(secretNames(byHost('a.example.com'))).to.deep.equal({ cert: ['a-cred'], ca: null, require: false });
    expect(secretNames(byHost('b.example.com'))).to.deep.equal({ cert: ['b-cred'], ca: 'b-cred-cacert', require: true });
    expect(secretNames(byHost('c.example.com'))).to.deep.equal({ cert: ['file-cert:/etc/c.crt~/etc/c.key'], ca: null, require: false });
    expect(secretNames(byHost('d.example.com'))).to.deep.equal({ cert: ['d-rsa', 'd-ecdsa'], ca: 'd-rsa-cacert', require: true });
    expect(l443.listener_filters.map((f: Obj) => f.name)).to.include('envoy.filters.listener.tls_inspector');
    const pass = listeners.find((l) => l.name === '0.0.0.0_8443')!.filter_chains as Obj[];
    expect(pass).to.have.length(1);
    expect(pass[0]!.filter_chain_match.server_names).to.deep.equal(['db.example.com']);
    expect(pass[0]!).to.not.have.property('transport_socket');
    expect(pass[0]!.filters.at(-1).typed_config.cluster).to.equal('outbound|443||db.example.com');
    const tcp = listeners.find((l) => l.name === '0.0.0.0_5432')!.filter_chains as Obj[];
    expect(tcp[0]!.filters.at(-1).typed_config.cluster).to.equal('outbound|5432||db.example.com');
  });

  it('a server with `bind: IP` gets its own listener <IP>_<port> on that address', () => {
    const yaml = `${BASE}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: internal-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, bind: 10.1.2.3, hosts: [internal.example.com]}
`;
    const listeners = generate(yaml, TYPE_URL.listener);
    expect(listeners.map((l) => l.name)).to.deep.equal(['0.0.0.0_80', '10.1.2.3_80', '0.0.0.0_8080', '0.0.0.0_9090']);
    expect(listeners[1]!.address.socket_address).to.include({ address: '10.1.2.3', port_value: 80 });
  });

  it('behind a service of its own (80 → targetPort 18080) the gateway listens on 18080; routes and matches keep port 80', () => {
    const yaml = `${BASE}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ingressgateway, namespace: istio-system}
spec:
  hosts: [ingressgateway.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http2, protocol: HTTP}, {number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.0.8.1, ports: {http2: 18080, tcp: 15432}, labels: {istio: ingressgateway}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: same-host, namespace: default}
spec:
  hosts: [same-host.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9090, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.8.1, ports: {http: 19090}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: db-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - {port: {number: 5432, name: tcp, protocol: TCP}, hosts: ['*']}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  gateways: [db-gateway]
  tcp: [{match: [{port: 5432}], route: [{destination: {host: web.default.svc.cluster.local, port: {number: 80}}}]}]
` + vs('a', 'default', 'foo.example.com', 'foo-gateway');
    const listeners = generate(yaml, TYPE_URL.listener);
    expect(listeners.map((l) => l.name)).to.deep.equal(['0.0.0.0_8080', '0.0.0.0_9090', '0.0.0.0_15432', '0.0.0.0_18080']);
    const l18080 = listeners[3]!;
    expect(l18080.address.socket_address.port_value).to.equal(18080);
    expect(l18080.filter_chains[0].filters[0].typed_config.rds.route_config_name).to.equal('http.80');
    expect(vhostNames(yaml, 'http.80')).to.deep.equal(['foo.example.com:80']);
    expect(listeners[2]!.filter_chains[0].filters.at(-1).typed_config.cluster).to.equal('outbound|80||web.default.svc.cluster.local');
    // another service with an endpoint on the gateway's IP but without the gateway's labels does not move 9090
  });
});
