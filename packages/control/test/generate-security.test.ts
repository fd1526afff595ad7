/**
 * AuthorizationPolicy → RBAC and RequestAuthentication → jwt_authn, one Istio rule field at a time (table-driven:
 * policy YAML → the expected Envoy fragment), plus which workloads get which filters, in which order, and that
 * everything encodes with `encodeAny`. The expected fragments follow istio/istio's authz builder testdata
 * (pilot/pkg/security/authz/builder/testdata/http/extended-allow-full-rule-out.yaml).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { decodeAny, encodeAny, EXT_TYPE_URL, TYPE_URL } from '@trellis/api';
import { generators } from '../src/generate/index.js';
import type { ProxyNode, Snapshot } from '../src/snapshot/types.js';
import { fixtureFromYaml, stableJson } from './golden/harness.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test reads generated JSON

/** httpbin on 10.0.0.5: HTTP port 8000, TCP port 9000; the proxy is httpbin's sidecar. */
const WORKLOAD = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: foo}
spec:
  hosts: [httpbin.foo.svc.cluster.local]
  addresses: [10.96.0.5]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}, {number: 9000, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.0.0.5, labels: {app: httpbin}, serviceAccount: httpbin}]
---
kind: TestProxy
spec: {ipAddresses: [10.0.0.5], namespace: foo, workloadName: httpbin, labels: {app: httpbin}, serviceAccount: httpbin}
`;

function listeners(yaml: string, proxyIndex = 0): { snapshot: Snapshot; proxy: ProxyNode; ls: Obj[] } {
  const { snapshot, proxies } = fixtureFromYaml(yaml);
  const proxy = proxies[proxyIndex]!;
  const ls = generators[TYPE_URL.listener](snapshot, proxy).map((r) => r.body as Obj);
  return { snapshot, proxy, ls };
}

function inboundChain(ls: Obj[], name: string): Obj {
  const inbound = ls.find((l) => l.name === 'virtualInbound');
  const chain = (inbound?.filter_chains as Obj[] | undefined)?.find((c) => c.name === name);
  if (chain === undefined) throw new Error(`no inbound chain ${name}`);
  return chain;
}

/** The HTTP filters of the inbound HTTP chain (port 8000, mTLS). */
function httpFilters(yaml: string): Obj[] {
  return inboundChain(listeners(yaml).ls, '0.0.0.0_8000_tls').filters[0].typed_config.http_filters;
}
/** The network filters of the inbound TCP chain (port 9000, mTLS). */
function tcpFilters(yaml: string): Obj[] {
  return inboundChain(listeners(yaml).ls, '0.0.0.0_9000_tls').filters;
}

function policy(name: string, spec: string, ns = 'foo'): string {
  return `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: ${ns}}
spec:
${spec.replace(/^/gm, '  ')}
`;
}

function rbacRules(filters: Obj[], action: string): Obj {
  const f = filters.find((x) => x.name.endsWith('.rbac') && x.typed_config.rules.action === action);
  if (f === undefined) throw new Error(`no RBAC filter with action ${action}`);
  return f.typed_config.rules;
}

/** The one generated RBAC policy of a single-rule ALLOW policy `p` on the HTTP chain. */
function allowPolicy(spec: string, forTcp = false): Obj | undefined {
  const yaml = WORKLOAD + policy('p', `action: ALLOW\n${spec}`);
  return rbacRules(forTcp ? tcpFilters(yaml) : httpFilters(yaml), 'ALLOW').policies['ns[foo]-policy[p]-rule[0]'];
}

const spiffe = (m: Obj): Obj => ({ authenticated: { principal_name: m } });
const jwt = (path: string[], value: Obj): Obj => ({ metadata: { filter: 'envoy.filters.http.jwt_authn', path: ['payload', ...path].map((key) => ({ key })), value } });
const orIds = (...ids: Obj[]): Obj => ({ or_ids: { ids } });
const orRules = (...rules: Obj[]): Obj => ({ or_rules: { rules } });
const claimMatch = (...ms: Obj[]): Obj => {
  const any = { or_match: { value_matchers: ms.map((m) => ({ string_match: m })) } };
  return { or_match: { value_matchers: [{ list_match: { one_of: any } }, any] } };
};
const reqPrincipal = (iss: Obj, sub: Obj): Obj => ({ and_ids: { ids: [jwt(['iss'], { string_match: iss }), jwt(['sub'], { string_match: sub })] } });
const ANY_RE = { safe_regex: { regex: '.+' } };

/** Source fields and principal-side conditions → the principal's `and_ids`. */
const PRINCIPAL_CASES: readonly { name: string; rule: string; ids: Obj[] }[] = [
  {
    name: 'principals: exact, prefix, suffix, * → authenticated.principal_name with spiffe://',
    rule: `from: [{source: {principals: [cluster.local/ns/default/sa/sleep, "cluster.local/ns/default/*", "*/sa/sleep", "*"]}}]`,
    ids: [orIds(
      spiffe({ exact: 'spiffe://cluster.local/ns/default/sa/sleep' }),
      spiffe({ prefix: 'spiffe://cluster.local/ns/default/' }),
      spiffe({ safe_regex: { regex: 'spiffe://.*/sa/sleep' } }),
      spiffe(ANY_RE),
    )],
  },
  {
    name: 'notPrincipals → not_id(or_ids)',
    rule: `from: [{source: {notPrincipals: [cluster.local/ns/default/sa/sleep]}}]`,
    ids: [{ not_id: orIds(spiffe({ exact: 'spiffe://cluster.local/ns/default/sa/sleep' })) }],
  },
  {
    name: 'namespaces → principal regex .*/ns/<ns>/.* (wildcards → .*)',
    rule: `from: [{source: {namespaces: [default, "prod-*"], notNamespaces: [kube-system]}}]`,
    ids: [
      orIds(spiffe({ safe_regex: { regex: '.*/ns/default/.*' } }), spiffe({ safe_regex: { regex: '.*/ns/prod-.*/.*' } })),
      { not_id: orIds(spiffe({ safe_regex: { regex: '.*/ns/kube-system/.*' } })) },
    ],
  },
  {
    name: 'serviceAccounts → SPIFFE regex in the policy namespace or ns/sa',
    rule: `from: [{source: {serviceAccounts: [sleep, other/client]}}]`,
    ids: [orIds(
      spiffe({ safe_regex: { regex: 'spiffe://.+/ns/foo/(.+/|)sa/sleep(/.+)?' } }),
      spiffe({ safe_regex: { regex: 'spiffe://.+/ns/other/(.+/|)sa/client(/.+)?' } }),
    )],
  },
  {
    name: 'ipBlocks → direct_remote_ip, remoteIpBlocks → remote_ip',
    rule: `from: [{source: {ipBlocks: [10.0.0.0/8, 192.168.1.7], remoteIpBlocks: [203.0.113.0/24], notIpBlocks: [10.1.0.0/16]}}]`,
    ids: [
      orIds({ remote_ip: { address_prefix: '203.0.113.0', prefix_len: { value: 24 } } }),
      orIds({ direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: { value: 8 } } }, { direct_remote_ip: { address_prefix: '192.168.1.7', prefix_len: { value: 32 } } }),
      { not_id: orIds({ direct_remote_ip: { address_prefix: '10.1.0.0', prefix_len: { value: 16 } } }) },
    ],
  },
  {
    name: 'requestPrincipals: iss/sub on jwt_authn payload (split at the last /), wildcards as Istio',
    rule: `from: [{source: {requestPrincipals: ["https://accounts.example.com/alice", "https://accounts.example.com/*", "*/bob", "*"]}}]`,
    ids: [orIds(
      reqPrincipal({ exact: 'https://accounts.example.com' }, { exact: 'alice' }),
      reqPrincipal({ exact: 'https://accounts.example.com' }, ANY_RE),
      reqPrincipal(ANY_RE, { exact: 'bob' }),
      reqPrincipal(ANY_RE, ANY_RE),
    )],
  },
  {
    name: 'a single requestPrincipal is not wrapped in or_ids; notRequestPrincipals → not_id',
    rule: `from: [{source: {requestPrincipals: ["*"], notRequestPrincipals: ["https://evil.example.com/*"]}}]`,
    ids: [reqPrincipal(ANY_RE, ANY_RE), { not_id: reqPrincipal({ exact: 'https://evil.example.com' }, ANY_RE) }],
  },
  {
    name: 'when request.headers[x] → header matcher (exact, prefix, suffix, present)',
    rule: `when: [{key: "request.headers[x-user]", values: [alice, "adm*", "*@example.com", "*"], notValues: [mallory]}]`,
    ids: [
      orIds(
        { header: { name: 'x-user', string_match: { exact: 'alice' } } },
        { header: { name: 'x-user', string_match: { prefix: 'adm' } } },
        { header: { name: 'x-user', string_match: { suffix: '@example.com' } } },
        { header: { name: 'x-user', present_match: true } },
      ),
      { not_id: orIds({ header: { name: 'x-user', string_match: { exact: 'mallory' } } }) },
    ],
  },
  {
    name: 'when source.ip / remote.ip / source.namespace / source.principal',
    rule: `when:
- {key: source.ip, values: [10.0.0.1]}
- {key: remote.ip, values: [1.2.3.0/24]}
- {key: source.namespace, values: [default]}
- {key: source.principal, values: [cluster.local/ns/default/sa/sleep]}`,
    ids: [
      orIds({ direct_remote_ip: { address_prefix: '10.0.0.1', prefix_len: { value: 32 } } }),
      orIds({ remote_ip: { address_prefix: '1.2.3.0', prefix_len: { value: 24 } } }),
      orIds(spiffe({ safe_regex: { regex: '.*/ns/default/.*' } })),
      orIds(spiffe({ exact: 'spiffe://cluster.local/ns/default/sa/sleep' })),
    ],
  },
  {
    name: 'when request.auth.claims[a][b], audiences, presenter → jwt payload metadata, string or list',
    rule: `when:
- {key: "request.auth.claims[groups]", values: [admins, "dev-*"]}
- {key: "request.auth.claims[realm][role]", notValues: [guest]}
- {key: request.auth.audiences, values: [bookstore]}
- {key: request.auth.presenter, values: [web-app]}`,
    ids: [
      jwt(['groups'], claimMatch({ exact: 'admins' }, { prefix: 'dev-' })),
      { not_id: jwt(['realm', 'role'], claimMatch({ exact: 'guest' })) },
      jwt(['aud'], claimMatch({ exact: 'bookstore' })),
      jwt(['azp'], claimMatch({ exact: 'web-app' })),
    ],
  },
  {
    name: 'when request.auth.principal → the requestPrincipals form',
    rule: `when: [{key: request.auth.principal, values: ["https://a.example.com/alice"]}]`,
    ids: [reqPrincipal({ exact: 'https://a.example.com' }, { exact: 'alice' })],
  },
  {
    name: 'source fields come in Istio order: principals, requestPrincipals, namespaces, remoteIpBlocks, ipBlocks, then when',
    rule: `from: [{source: {ipBlocks: [10.0.0.1], namespaces: [default], principals: [a/ns/b/sa/c]}}]
when: [{key: "request.headers[x]", values: [y]}]`,
    ids: [
      orIds(spiffe({ exact: 'spiffe://a/ns/b/sa/c' })),
      orIds(spiffe({ safe_regex: { regex: '.*/ns/default/.*' } })),
      orIds({ direct_remote_ip: { address_prefix: '10.0.0.1', prefix_len: { value: 32 } } }),
      orIds({ header: { name: 'x', string_match: { exact: 'y' } } }),
    ],
  },
];

/** Operation fields and permission-side conditions → the permission's `and_rules`. */
const PERMISSION_CASES: readonly { name: string; rule: string; rules: Obj[] }[] = [
  {
    name: 'hosts → :authority, case-insensitive; * → present',
    rule: `to: [{operation: {hosts: [httpbin.foo.svc.cluster.local, "*.example.com", "api.*", "*"]}}]`,
    rules: [orRules(
      { header: { name: ':authority', string_match: { exact: 'httpbin.foo.svc.cluster.local', ignore_case: true } } },
      { header: { name: ':authority', string_match: { suffix: '.example.com', ignore_case: true } } },
      { header: { name: ':authority', string_match: { prefix: 'api.', ignore_case: true } } },
      { header: { name: ':authority', present_match: true } },
    )],
  },
  {
    name: 'methods → :method; notMethods → not_rule',
    rule: `to: [{operation: {methods: [GET, HEAD], notMethods: [DELETE]}}]`,
    rules: [
      orRules({ header: { name: ':method', string_match: { exact: 'GET' } } }, { header: { name: ':method', string_match: { exact: 'HEAD' } } }),
      { not_rule: orRules({ header: { name: ':method', string_match: { exact: 'DELETE' } } }) },
    ],
  },
  {
    name: 'paths → url_path exact / prefix (x*) / suffix (*x) / * → .+',
    rule: `to: [{operation: {paths: [/status, "/api/*", "*.png", "*"]}}]`,
    rules: [orRules(
      { url_path: { path: { exact: '/status' } } },
      { url_path: { path: { prefix: '/api/' } } },
      { url_path: { path: { suffix: '.png' } } },
      { url_path: { path: ANY_RE } },
    )],
  },
  {
    name: 'path templates {*} and {**} → regex over segments',
    rule: `to: [{operation: {paths: ["/users/{*}/profile", "/files/{**}"]}}]`,
    rules: [orRules(
      { url_path: { path: { safe_regex: { regex: '/users/[^/]+/profile' } } } },
      { url_path: { path: { safe_regex: { regex: '/files/.*' } } } },
    )],
  },
  {
    name: 'ports → destination_port; notPorts → not_rule',
    rule: `to: [{operation: {ports: ["8000"], notPorts: ["9000"]}}]`,
    rules: [orRules({ destination_port: 8000 }), { not_rule: orRules({ destination_port: 9000 }) }],
  },
  {
    name: 'operation fields in Istio order (hosts, methods, paths, ports), then when destination.ip/port, connection.sni',
    rule: `to: [{operation: {ports: ["8000"], paths: [/a], methods: [GET], hosts: [h]}}]
when:
- {key: destination.ip, values: [10.0.0.5]}
- {key: destination.port, values: ["8000"]}
- {key: connection.sni, values: ["*.example.com"]}`,
    rules: [
      orRules({ header: { name: ':authority', string_match: { exact: 'h', ignore_case: true } } }),
      orRules({ header: { name: ':method', string_match: { exact: 'GET' } } }),
      orRules({ url_path: { path: { exact: '/a' } } }),
      orRules({ destination_port: 8000 }),
      orRules({ destination_ip: { address_prefix: '10.0.0.5', prefix_len: { value: 32 } } }),
      orRules({ destination_port: 8000 }),
      orRules({ requested_server_name: { suffix: '.example.com' } }),
    ],
  },
];

describe('generate: AuthorizationPolicy → RBAC, one field at a time', () => {
  for (const c of PRINCIPAL_CASES) {
    it(c.name, () => {
      const p = allowPolicy(`rules:\n- ${c.rule.replace(/\n/g, '\n  ')}`);
      expect(p?.principals).to.deep.equal([{ and_ids: { ids: c.ids } }]);
    });
  }
  for (const c of PERMISSION_CASES) {
    it(c.name, () => {
      const p = allowPolicy(`rules:\n- ${c.rule.replace(/\n/g, '\n  ')}`);
      expect(p?.permissions).to.deep.equal([{ and_rules: { rules: c.rules } }]);
    });
  }

  it('several from / to entries are ORed (one principal / permission each); empty sides are any', () => {
    const p = allowPolicy(`rules:
- from: [{source: {namespaces: [a]}}, {source: {namespaces: [b]}}]
- to: [{operation: {methods: [GET]}}, {operation: {methods: [POST]}}]`)!;
    expect(p.principals).to.have.length(2);
    expect(p.permissions).to.deep.equal([{ and_rules: { rules: [{ any: true }] } }]);
    const yaml = WORKLOAD + policy('p', `rules:
- from: [{source: {namespaces: [a]}}, {source: {namespaces: [b]}}]
- to: [{operation: {methods: [GET]}}, {operation: {methods: [POST]}}]`);
    const second = rbacRules(httpFilters(yaml), 'ALLOW').policies['ns[foo]-policy[p]-rule[1]'];
    expect(second.permissions).to.have.length(2);
    expect(second.principals).to.deep.equal([{ and_ids: { ids: [{ any: true }] } }]);
  });

  it('principals naming cluster.local mean the mesh trust domain; other trust domains are kept', () => {
    const yaml = WORKLOAD.replace('---\nkind: TestProxy', '---\nkind: TestMesh\nspec: {trustDomain: example.org}\n---\nkind: TestProxy')
      + policy('p', `rules:\n- from: [{source: {principals: [cluster.local/ns/a/sa/b, other.org/ns/a/sa/b, "*/sa/b"]}}]\n  when: [{key: source.principal, notValues: [cluster.local/ns/x/sa/y]}]`);
    const p = rbacRules(httpFilters(yaml), 'ALLOW').policies['ns[foo]-policy[p]-rule[0]'];
    expect(p.principals[0].and_ids.ids).to.deep.equal([
      orIds(spiffe({ exact: 'spiffe://example.org/ns/a/sa/b' }), spiffe({ exact: 'spiffe://other.org/ns/a/sa/b' }), spiffe({ safe_regex: { regex: 'spiffe://.*/sa/b' } })),
      { not_id: orIds(spiffe({ exact: 'spiffe://example.org/ns/x/sa/y' })) },
    ]);
  });

  it('a condition value that is not an address or port: ALLOW drops the rule, DENY ignores the value', () => {
    const when = `when: [{key: source.ip, values: [not-an-ip, 10.0.0.1]}, {key: destination.port, values: [http]}]`;
    expect(allowPolicy(`rules:\n- ${when}`)).to.equal(undefined);
    const yaml = WORKLOAD + policy('d', `action: DENY\nrules:\n- ${when}`);
    expect(rbacRules(httpFilters(yaml), 'DENY').policies['ns[foo]-policy[d]-rule[0]']).to.deep.equal({
      permissions: [{ and_rules: { rules: [{ any: true }] } }],
      principals: [{ and_ids: { ids: [orIds({ direct_remote_ip: { address_prefix: '10.0.0.1', prefix_len: { value: 32 } } })] } }],
    });
  });

  it('an unknown condition key drops the rule (Istio skips invalid rules)', () => {
    const yaml = WORKLOAD + policy('p', `rules:\n- when: [{key: "request.bogus", values: [x]}]\n- {}`);
    const rules = rbacRules(httpFilters(yaml), 'ALLOW');
    expect(Object.keys(rules.policies)).to.deep.equal(['ns[foo]-policy[p]-rule[1]']);
  });
});

describe('generate: RBAC filters per workload', () => {
  it('no policy → no RBAC and no jwt_authn filter; the router stays last', () => {
    const f = httpFilters(WORKLOAD);
    expect(f.map((x) => x.name)).to.deep.equal(['envoy.filters.http.router']);
    expect(tcpFilters(WORKLOAD).map((x) => x.name)).to.deep.equal(['envoy.filters.network.tcp_proxy']);
  });

  it('filters come in Istio order: jwt_authn, AUDIT (LOG), CUSTOM, DENY, ALLOW, router', () => {
    const yaml = WORKLOAD
      + policy('allow', 'action: ALLOW\nrules: [{}]')
      + policy('deny', 'action: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]')
      + policy('audit', 'action: AUDIT\nrules: [{}]')
      + policy('custom', 'action: CUSTOM\nprovider: {name: opa}\nrules: [{to: [{operation: {paths: [/ext]}}]}]')
      + `---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  jwtRules: [{issuer: https://issuer.example.com, jwks: '{"keys":[]}'}]
`;
    const f = httpFilters(yaml);
    expect(f.map((x) => `${x.name}${x.typed_config.rules?.action !== undefined ? `:${x.typed_config.rules.action}` : ''}`)).to.deep.equal([
      'envoy.filters.http.jwt_authn',
      'envoy.filters.http.rbac:LOG',
      'envoy.filters.http.rbac:DENY',
      'envoy.filters.http.rbac:DENY',
      'envoy.filters.http.rbac:ALLOW',
      'envoy.filters.http.router',
    ]);
    // CUSTOM without an ext_authz provider fails closed: its rules deny, under Istio's name for that case.
    expect(Object.keys(f[2]!.typed_config.rules.policies)).to.deep.equal(['istio-ext-authz-ns[foo]-policy[custom]-rule[0]-deny-due-to-bad-CUSTOM-action']);
    expect(f[4]!.typed_config['@type']).to.equal(EXT_TYPE_URL.rbacHttp);
    const tcp = tcpFilters(yaml);
    expect(tcp.map((x) => `${x.name}:${x.typed_config.rules?.action ?? ''}`)).to.deep.equal([
      'envoy.filters.network.rbac:LOG',
      'envoy.filters.network.rbac:DENY',
      'envoy.filters.network.rbac:DENY',
      'envoy.filters.network.rbac:ALLOW',
      'envoy.filters.network.tcp_proxy:',
    ]);
    expect(tcp[0]!.typed_config.stat_prefix).to.equal('tcp.');
  });

  it('an ALLOW policy without rules makes an ALLOW filter with no policies (deny all); a DENY without rules denies nothing', () => {
    const allowNothing = httpFilters(WORKLOAD + policy('allow-nothing', 'action: ALLOW'));
    expect(rbacRules(allowNothing, 'ALLOW')).to.deep.equal({ action: 'ALLOW', policies: {} });
    const denyNothing = httpFilters(WORKLOAD + policy('deny-nothing', 'action: DENY'));
    expect(rbacRules(denyNothing, 'DENY')).to.deep.equal({ action: 'DENY', policies: {} });
  });

  it('TCP: an ALLOW rule with HTTP-only fields is dropped; in a DENY rule only those fields are dropped', () => {
    expect(allowPolicy(`rules: [{to: [{operation: {methods: [GET], ports: ["9000"]}}]}]`, true)).to.equal(undefined);
    expect(allowPolicy(`rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]`, true)).to.equal(undefined);
    expect(allowPolicy(`rules: [{from: [{source: {namespaces: [default]}}], to: [{operation: {ports: ["9000"]}}]}]`, true)).to.deep.equal({
      permissions: [{ and_rules: { rules: [orRules({ destination_port: 9000 })] } }],
      principals: [{ and_ids: { ids: [orIds(spiffe({ safe_regex: { regex: '.*/ns/default/.*' } }))] } }],
    });
    const yaml = WORKLOAD + policy('d', `action: DENY\nrules: [{to: [{operation: {methods: [POST], ports: ["9000"]}}], when: [{key: "request.headers[x]", values: [y]}]}]`);
    expect(rbacRules(tcpFilters(yaml), 'DENY').policies['ns[foo]-policy[d]-rule[0]']).to.deep.equal({
      permissions: [{ and_rules: { rules: [orRules({ destination_port: 9000 })] } }],
      principals: [{ and_ids: { ids: [{ any: true }] } }],
    });
  });

  it('selection: root namespace = mesh-wide, namespace-wide, selector matches labels, other namespaces and targetRef ignored', () => {
    const names = (yaml: string): string[] => Object.keys(rbacRules(httpFilters(yaml), 'ALLOW').policies);
    const yaml = WORKLOAD
      + policy('mesh', 'rules: [{}]', 'istio-system')
      + policy('mesh-selected', 'selector: {matchLabels: {app: httpbin}}\nrules: [{}]', 'istio-system')
      + policy('mesh-other', 'selector: {matchLabels: {app: other}}\nrules: [{}]', 'istio-system')
      + policy('ns', 'rules: [{}]')
      + policy('selected', 'selector: {matchLabels: {app: httpbin}}\nrules: [{}]')
      + policy('not-selected', 'selector: {matchLabels: {app: other}}\nrules: [{}]')
      + policy('elsewhere', 'rules: [{}]', 'bar')
      + policy('gateway-api', 'targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\nrules: [{}]');
    expect(names(yaml)).to.deep.equal([
      'ns[istio-system]-policy[mesh]-rule[0]',
      'ns[istio-system]-policy[mesh-selected]-rule[0]',
      'ns[foo]-policy[ns]-rule[0]',
      'ns[foo]-policy[selected]-rule[0]',
    ]);
  });

  it('plaintext, passthrough and gateway chains carry the filters too; inbound HCMs normalise paths', () => {
    const yaml = WORKLOAD + policy('p', 'rules: [{}]');
    const { ls } = listeners(yaml);
    const plain = inboundChain(ls, '0.0.0.0_8000_plaintext').filters[0].typed_config;
    expect(plain.http_filters.map((x: Obj) => x.name)).to.deep.equal(['envoy.filters.http.rbac', 'envoy.filters.http.router']);
    expect(plain.normalize_path).to.deep.equal({ value: true });
    expect(plain.merge_slashes).to.equal(true);
    expect(inboundChain(ls, 'virtualInbound_tls').filters.map((x: Obj) => x.name)).to.deep.equal(['envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
    const gw = `${yaml}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: foo}
spec:
  selector: {app: httpbin}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
kind: TestProxy
spec: {type: router, ipAddresses: [10.0.0.50], namespace: foo, workloadName: gw, labels: {app: httpbin}}
`;
    const g = listeners(gw, 1).ls.find((l) => l.name === '0.0.0.0_80')!;
    expect(g.filter_chains[0].filters[0].typed_config.http_filters.map((x: Obj) => x.name)).to.deep.equal([
      'envoy.filters.http.rbac', 'envoy.filters.http.fault', 'envoy.filters.http.cors', 'envoy.filters.http.router',
    ]);
  });
});

describe('generate: RequestAuthentication → jwt_authn', () => {
  const ra = (rules: string, name = 'jwt', ns = 'foo', selector = ''): string => `---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ${name}, namespace: ${ns}}
spec:
${selector}  jwtRules:
${rules.replace(/^/gm, '  ')}
`;
  const jwtConfig = (yaml: string): Obj => {
    const f = httpFilters(yaml).find((x) => x.name === 'envoy.filters.http.jwt_authn');
    if (f === undefined) throw new Error('no jwt_authn filter');
    return f.typed_config;
  };

  it('one rule: every field maps to the provider; requires_any[provider, allow_missing] for /', () => {
    const cfg = jwtConfig(WORKLOAD + ra(`- issuer: https://issuer.example.com
  audiences: [bookstore, web]
  jwks: '{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}'
  fromHeaders: [{name: x-jwt-assertion, prefix: "Bearer "}, {name: x-token}]
  fromParams: [token]
  fromCookies: [session]
  forwardOriginalToken: true
  outputPayloadToHeader: x-jwt-payload
  outputClaimToHeaders: [{header: x-sub, claim: sub}]`));
    expect(cfg).to.deep.equal({
      '@type': EXT_TYPE_URL.jwtAuthn,
      providers: {
        'origins-0': {
          issuer: 'https://issuer.example.com',
          audiences: ['bookstore', 'web'],
          local_jwks: { inline_string: '{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}' },
          forward: true,
          from_headers: [{ name: 'x-jwt-assertion', value_prefix: 'Bearer ' }, { name: 'x-token' }],
          from_params: ['token'],
          from_cookies: ['session'],
          forward_payload_header: 'x-jwt-payload',
          payload_in_metadata: 'payload',
          normalize_payload_in_metadata: { space_delimited_claims: ['permission', 'scope'] },
          claim_to_headers: [{ header_name: 'x-sub', claim_name: 'sub' }],
        },
      },
      rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] } } }],
      bypass_cors_preflight: true,
    });
  });

  it('jwksUri → remote_jwks through outbound|<port>||<host>, timeout (default 5s), 5 min cache', () => {
    const cfg = jwtConfig(WORKLOAD + ra(`- issuer: https://issuer.example.com
  jwksUri: https://www.googleapis.com/oauth2/v3/certs
- issuer: https://other.example.com
  jwksUri: http://keys.internal:8080/jwks.json
  timeout: 2s`));
    expect(cfg.providers['origins-0'].remote_jwks).to.deep.equal({
      http_uri: { uri: 'https://www.googleapis.com/oauth2/v3/certs', cluster: 'outbound|443||www.googleapis.com', timeout: { seconds: 5, nanos: 0 } },
      cache_duration: { seconds: 300, nanos: 0 },
    });
    expect(cfg.providers['origins-1'].remote_jwks.http_uri).to.deep.equal({ uri: 'http://keys.internal:8080/jwks.json', cluster: 'outbound|8080||keys.internal', timeout: { seconds: 2, nanos: 0 } });
  });

  it('several rules (from several policies, sorted by issuer): a valid token of any provider, or no token at all', () => {
    const yaml = WORKLOAD
      + ra(`- {issuer: zeta, jwks: '{"keys":[]}'}`, 'b')
      + ra(`- {issuer: alpha, jwks: '{"keys":[]}'}`, 'a', 'istio-system')
      + ra(`- {issuer: other, jwks: '{"keys":[]}'}`, 'c', 'foo', '  selector: {matchLabels: {app: nobody}}\n');
    const cfg = jwtConfig(yaml);
    expect(Object.entries(cfg.providers).map(([k, v]) => `${k}=${(v as Obj).issuer}`)).to.deep.equal(['origins-0=alpha', 'origins-1=zeta']);
    const either = (p: string): Obj => ({ requires_any: { requirements: [{ provider_name: p }, { allow_missing: {} }] } });
    expect(cfg.rules[0].requires).to.deep.equal({
      requires_any: { requirements: [{ provider_name: 'origins-0' }, { provider_name: 'origins-1' }, { requires_all: { requirements: [either('origins-0'), either('origins-1')] } }] },
    });
  });

  it('a RequestAuthentication for other workloads adds nothing; TCP chains never get jwt_authn', () => {
    const yaml = WORKLOAD + ra(`- {issuer: a, jwks: '{"keys":[]}'}`, 'x', 'foo', '  selector: {matchLabels: {app: other}}\n');
    expect(httpFilters(yaml).map((x) => x.name)).to.deep.equal(['envoy.filters.http.router']);
    const yaml2 = WORKLOAD + ra(`- {issuer: a, jwks: '{"keys":[]}'}`);
    expect(tcpFilters(yaml2).map((x) => x.name)).to.deep.equal(['envoy.filters.network.tcp_proxy']);
  });

  it('every generated listener with policies encodes with encodeAny and keeps its nested types', () => {
    const yaml = WORKLOAD
      + ra(`- issuer: https://issuer.example.com\n  jwksUri: https://keys.example.com/jwks\n  fromHeaders: [{name: x-goog-iap-jwt-assertion}]\n  outputClaimToHeaders: [{header: x-sub, claim: sub}]`)
      + policy('full', `action: ALLOW
rules:
- from:
  - source:
      principals: [cluster.local/ns/default/sa/sleep, "*"]
      notPrincipals: ["*/sa/evil"]
      requestPrincipals: ["https://issuer.example.com/*"]
      namespaces: [default]
      ipBlocks: [10.0.0.0/8]
      remoteIpBlocks: [1.2.3.4]
      serviceAccounts: [sleep]
  to:
  - operation: {hosts: ["*.example.com"], methods: [GET], paths: ["/api/*", "/u/{*}"], ports: ["8000"], notPaths: [/admin]}
  when:
  - {key: "request.auth.claims[groups]", values: [admins]}
  - {key: "request.headers[x-env]", notValues: [prod]}
  - {key: destination.ip, values: [10.0.0.5]}
  - {key: connection.sni, values: [a.example.com]}`)
      + policy('deny', 'action: DENY\nrules: [{to: [{operation: {methods: [DELETE]}}]}]')
      + policy('audit', 'action: AUDIT\nrules: [{}]');
    const { ls } = listeners(yaml);
    for (const l of ls) {
      const back = decodeAny(encodeAny(TYPE_URL.listener, l));
      expect(JSON.stringify(back).includes(EXT_TYPE_URL.jwtAuthn) || l.name !== 'virtualInbound').to.equal(true);
    }
    const inbound = decodeAny(encodeAny(TYPE_URL.listener, ls.find((l) => l.name === 'virtualInbound')!)) as Obj;
    const chain = inbound.filter_chains.find((c: Obj) => c.name === '0.0.0.0_8000_tls');
    const filters = chain.filters[0].typed_config.http_filters;
    expect(filters.map((f: Obj) => f.typed_config['@type'])).to.deep.equal([
      EXT_TYPE_URL.jwtAuthn, EXT_TYPE_URL.rbacHttp, EXT_TYPE_URL.rbacHttp, EXT_TYPE_URL.rbacHttp, EXT_TYPE_URL.router,
    ]);
    const allow = filters[3].typed_config.rules.policies['ns[foo]-policy[full]-rule[0]'];
    expect(allow.principals[0].and_ids.ids).to.have.length(9);
    expect(allow.permissions[0].and_rules.rules).to.have.length(7);
    // Nothing is lost in encoding: protobufjs drops unknown fields silently, so compare field by field.
    const original = ls.find((l) => l.name === 'virtualInbound')!.filter_chains.find((c: Obj) => c.name === '0.0.0.0_8000_tls').filters[0].typed_config.http_filters;
    const norm = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (k, x) => (k === 'seconds' && typeof x === 'string' ? Number(x) : x)));
    expect(stableJson(norm(filters.slice(0, 4)))).to.equal(stableJson(norm(original.slice(0, 4))));
  });
});

describe('generate: security filters for arbitrary policies (property)', () => {
  const word = fc.stringMatching(/^[a-z0-9.\-/]{1,12}$/);
  /** Istio's value syntax: exact, prefix*, *suffix, or *. */
  const value = fc.oneof(word, word.map((w) => `${w}*`), word.map((w) => `*${w}`), fc.constant('*'));
  const values = fc.array(value, { minLength: 1, maxLength: 3 });
  const ip = fc.tuple(fc.nat(255), fc.nat(255), fc.integer({ min: 0, max: 32 })).map(([a, b, len]) => `${a}.${b}.0.0/${len}`);
  const port = fc.integer({ min: 1, max: 65535 }).map(String);
  const opt = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined });
  const source = fc.record({
    principals: opt(values), notPrincipals: opt(values), requestPrincipals: opt(values), notRequestPrincipals: opt(values),
    namespaces: opt(values), notNamespaces: opt(values), ipBlocks: opt(fc.array(ip, { minLength: 1, maxLength: 2 })),
    remoteIpBlocks: opt(fc.array(ip, { minLength: 1, maxLength: 2 })), serviceAccounts: opt(values),
  }).filter((s) => Object.values(s).some((v) => v !== undefined));
  const operation = fc.record({
    hosts: opt(values), notHosts: opt(values), methods: opt(values), paths: opt(values), notPaths: opt(values),
    ports: opt(fc.array(port, { minLength: 1, maxLength: 2 })),
  }).filter((o) => Object.values(o).some((v) => v !== undefined));
  const condition = fc.record({
    key: fc.constantFrom('request.headers[x-a]', 'source.ip', 'remote.ip', 'source.namespace', 'source.principal', 'request.auth.principal',
      'request.auth.audiences', 'request.auth.presenter', 'request.auth.claims[groups]', 'request.auth.claims[a][b]', 'destination.port',
      'connection.sni', 'destination.ip', 'unknown.key'),
    values: values,
  });
  const rule = fc.record({
    from: opt(fc.array(source.map((s) => ({ source: s })), { minLength: 1, maxLength: 2 })),
    to: opt(fc.array(operation.map((o) => ({ operation: o })), { minLength: 1, maxLength: 2 })),
    when: opt(fc.array(condition, { minLength: 1, maxLength: 2 })),
  });
  const spec = fc.record({ action: fc.constantFrom('ALLOW', 'DENY', 'AUDIT'), rules: opt(fc.array(rule, { maxLength: 3 })) });


  it('every policy yields filters that encode losslessly, ALLOW/DENY/LOG only, router last', () => {
    fc.assert(
      fc.property(fc.array(spec, { minLength: 1, maxLength: 3 }), (specs) => {
        const yaml = WORKLOAD + specs.map((s, i) => `---\n${JSON.stringify({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: `p${i}`, namespace: 'foo' }, spec: s })}\n`).join('');
        const { ls } = listeners(yaml);
        const inbound = ls.find((l) => l.name === 'virtualInbound')!;
        const back = decodeAny(encodeAny(TYPE_URL.listener, inbound)) as Obj;
        // The policy filters survive encoding field for field (an empty `policies` map is absent on the wire: same
        // meaning, none). Other parts of the listener are checked by the golden tests.
        const policyFilters = (l: Obj): unknown => (l.filter_chains as Obj[]).map((c) => {
          const hcm = c.filters.find((f: Obj) => f.name === 'envoy.filters.network.http_connection_manager');
          return (hcm !== undefined ? hcm.typed_config.http_filters : c.filters).filter((f: Obj) => f.name.endsWith('.rbac') || f.name.endsWith('.jwt_authn'));
        });
        const norm = (v: unknown): string =>
          stableJson(JSON.parse(JSON.stringify(v, (k, x) => (k === 'policies' && Object.keys(x as object).length === 0 ? undefined : x))));
        expect(norm(policyFilters(back))).to.equal(norm(policyFilters(inbound)));
        for (const chain of inbound.filter_chains as Obj[]) {
          const hcm = chain.filters.find((f: Obj) => f.name === 'envoy.filters.network.http_connection_manager');
          const names: string[] = hcm !== undefined ? hcm.typed_config.http_filters.map((f: Obj) => f.name) : chain.filters.map((f: Obj) => f.name);
          expect(names.at(-1)).to.be.oneOf(['envoy.filters.http.router', 'envoy.filters.network.tcp_proxy']);
          const actions = (hcm !== undefined ? hcm.typed_config.http_filters : chain.filters).filter((f: Obj) => f.name.endsWith('.rbac')).map((f: Obj) => f.typed_config.rules.action);
          expect(actions.every((a: string) => ['ALLOW', 'DENY', 'LOG'].includes(a))).to.equal(true);
        }
      }),
      { numRuns: 60 },
    );
  });
});
