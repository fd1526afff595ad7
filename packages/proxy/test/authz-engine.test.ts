import { expect } from 'chai';
import { decodeHttpRbac, decodeNetworkRbac, type RbacFilterConfig } from '@trellis/api';
import { type AuthzFacts, cidrContains, denialDetails, evaluateFilters, evaluateRules, remoteIpOf, valueMatches } from '../src/authz/engine.js';

type Obj = Record<string, unknown>;
const http = (rules: Obj | undefined, extra: Obj = {}): RbacFilterConfig => decodeHttpRbac({ ...(rules ? { rules } : {}), ...extra }, 'tc');
const policy = (permissions: Obj[], principals: Obj[]) => ({ permissions, principals });
const ANY = { any: true };
const spiffe = (sa: string, ns = 'default') => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

function facts(o: Partial<AuthzFacts> & { headers?: Record<string, string>; method?: string; md?: Obj } = {}): AuthzFacts {
  const headers: Record<string, string> = { ':method': o.method ?? 'GET', ':path': o.path ?? '/', ':authority': 'details', ...o.headers };
  return {
    principal: o.principal ?? null, directRemoteIp: o.directRemoteIp ?? '10.0.0.1', remoteIp: o.remoteIp ?? o.directRemoteIp ?? '10.0.0.1',
    destinationIp: o.destinationIp ?? '10.0.0.11', destinationPort: o.destinationPort ?? 9080, serverName: o.serverName ?? null,
    path: o.path === undefined ? '/' : o.path, header: (n) => headers[n], metadata: (f) => o.md?.[f],
  };
}

// DS-48 as the control plane generates it: ALLOW GET from productpage's identity.
const detailsViewer = http({ action: 'ALLOW', policies: {
  'ns[default]-policy[details-viewer]-rule[0]': policy(
    [{ and_rules: { rules: [{ or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }] } }] } }],
    [{ and_ids: { ids: [{ or_ids: { ids: [{ authenticated: { principal_name: { exact: spiffe('bookinfo-productpage') } } }] } }] } }],
  ),
} });

describe('authz engine (Envoy RBAC semantics)', () => {
  it('DS-48: only productpage\'s identity may GET', () => {
    const run = (f: AuthzFacts) => evaluateFilters([detailsViewer], f).allowed;
    expect(run(facts({ principal: spiffe('bookinfo-productpage') }))).to.equal(true);
    expect(run(facts({ principal: spiffe('bookinfo-productpage'), method: 'POST' }))).to.equal(false);
    expect(run(facts({ principal: spiffe('bookinfo-reviews') }))).to.equal(false);
    expect(run(facts({ principal: null }))).to.equal(false);
  });

  it('ALLOW with no policies denies all; no rules enforces nothing; DENY with no policies denies nothing', () => {
    expect(evaluateFilters([http({ action: 'ALLOW' })], facts()).allowed).to.equal(false);
    expect(evaluateFilters([http(undefined)], facts()).allowed).to.equal(true);
    expect(evaluateFilters([http({ action: 'DENY' })], facts()).allowed).to.equal(true);
    expect(evaluateFilters([], facts()).allowed).to.equal(true);
  });

  it('filters run in order and the first denial wins (deny beats allow); LOG never denies', () => {
    const log = http({ action: 'LOG', policies: { audit: policy([ANY], [ANY]) } });
    const deny = http({ action: 'DENY', policies: { 'deny-admin': policy([{ url_path: { path: { prefix: '/admin' } } }], [ANY]) } });
    const allow = http({ action: 'ALLOW', policies: { 'allow-all': policy([ANY], [ANY]) } });
    const d = evaluateFilters([log, deny, allow], facts({ path: '/admin/x?y=1' }));
    expect(d.allowed).to.equal(false);
    expect(d.deniedBy!.index).to.equal(1);
    expect(denialDetails(d.deniedBy!)).to.equal('rbac_access_denied_matched_policy[deny-admin]');
    expect(d.results.map((r) => r.enforced!.action)).to.deep.equal(['LOG', 'DENY']);
    expect(d.results[0]!.enforced).to.deep.equal({ action: 'LOG', allowed: true, matchedPolicy: 'audit' });
    const ok = evaluateFilters([log, deny, allow], facts({ path: '/public' }));
    expect(ok.allowed).to.equal(true);
    expect(ok.results).to.have.length(3);
    expect(denialDetails({ index: 0, config: allow, enforced: { action: 'ALLOW', allowed: false, matchedPolicy: null }, shadow: null })).to.equal('rbac_access_denied_matched_policy[none]');
  });

  it('shadow rules are evaluated but never deny', () => {
    const c = http(undefined, { shadow_rules: { action: 'ALLOW' }, shadow_rules_stat_prefix: 'istio_dry_run_allow_' });
    const d = evaluateFilters([c], facts());
    expect(d.allowed).to.equal(true);
    expect(d.results[0]!.shadow).to.deep.equal({ action: 'ALLOW', allowed: false, matchedPolicy: null });
  });

  it('a policy needs a matching permission AND a matching principal', () => {
    const rules = http({ action: 'ALLOW', policies: { p: policy([{ destination_port: 9080 }], [{ direct_remote_ip: { address_prefix: '10.1.0.0', prefix_len: { value: 16 } } }]) } }).rules!;
    expect(evaluateRules(rules, facts({ directRemoteIp: '10.1.2.3' })).allowed).to.equal(true);
    expect(evaluateRules(rules, facts({ directRemoteIp: '10.2.2.3' })).allowed).to.equal(false);
    expect(evaluateRules(rules, facts({ directRemoteIp: '10.1.2.3', destinationPort: 9081 })).allowed).to.equal(false);
  });

  const matchCases: [string, Obj, Obj, Partial<AuthzFacts> & { headers?: Record<string, string>; method?: string; md?: Obj }, boolean][] = [
    ['url_path ignores the query', { url_path: { path: { exact: '/admin' } } }, ANY, { path: '/admin?x=1' }, true],
    ['url_path ignores a fragment', { url_path: { path: { exact: '/admin' } } }, ANY, { path: '/admin#top' }, true],
    [':path header keeps the query', { header: { name: ':path', string_match: { exact: '/admin' } } }, ANY, { path: '/admin?x=1' }, false],
    ['url_path never matches on TCP', { url_path: { path: { prefix: '/' } } }, ANY, { path: null }, false],
    ['not_rule', { not_rule: { url_path: { path: { prefix: '/private' } } } }, ANY, { path: '/public' }, true],
    ['not_rule (negative)', { not_rule: { url_path: { path: { prefix: '/private' } } } }, ANY, { path: '/private/x' }, false],
    ['or_rules', { or_rules: { rules: [{ destination_port: 1 }, { destination_port: 9080 }] } }, ANY, {}, true],
    ['and_rules', { and_rules: { rules: [{ destination_port: 9080 }, { destination_ip: { address_prefix: '10.0.0.0', prefix_len: { value: 8 } } }] } }, ANY, {}, true],
    ['destination_port_range is [start, end)', { destination_port_range: { start: 9000, end: 9080 } }, ANY, {}, false],
    ['requested_server_name', { requested_server_name: { prefix: 'outbound_.9080_' } }, ANY, { serverName: 'outbound_.9080_._.details' }, true],
    ['requested_server_name without SNI', { requested_server_name: { prefix: 'outbound' } }, ANY, {}, false],
    ['header present', ANY, { header: { name: 'x-user', present_match: true } }, { headers: { 'x-user': 'a' } }, true],
    ['header present (absent)', ANY, { header: { name: 'x-user', present_match: true } }, {}, false],
    ['missing header never matches a value', ANY, { header: { name: 'x-user', string_match: { exact: '' } } }, {}, false],
    ['missing header treated as empty', ANY, { header: { name: 'x-user', string_match: { exact: '' }, treat_missing_header_as_empty: true } }, {}, true],
    ['invert_match', ANY, { header: { name: 'x-user', string_match: { exact: 'a' }, invert_match: true } }, { headers: { 'x-user': 'b' } }, true],
    ['range_match', ANY, { header: { name: 'x-n', range_match: { start: '1', end: '10' } } }, { headers: { 'x-n': '9' } }, true],
    ['authenticated without a name = any mTLS peer', ANY, { authenticated: {} }, { principal: spiffe('x') }, true],
    ['authenticated without mTLS', ANY, { authenticated: {} }, {}, false],
    ['Istio namespace regex', ANY, { authenticated: { principal_name: { safe_regex: { regex: '.*/ns/foo/.*' } } } }, { principal: spiffe('x', 'foo') }, true],
    ['not_id', ANY, { not_id: { authenticated: { principal_name: { exact: spiffe('x') } } } }, { principal: spiffe('y') }, true],
    ['remote_ip', ANY, { remote_ip: { address_prefix: '203.0.113.0', prefix_len: { value: 24 } } }, { remoteIp: '203.0.113.9', directRemoteIp: '127.0.0.1' }, true],
    ['direct_remote_ip is not remote_ip', ANY, { direct_remote_ip: { address_prefix: '203.0.113.0', prefix_len: { value: 24 } } }, { remoteIp: '203.0.113.9', directRemoteIp: '127.0.0.1' }, false],
    ['IPv6 CIDR', ANY, { direct_remote_ip: { address_prefix: '2001:db8::', prefix_len: { value: 32 } } }, { directRemoteIp: '2001:db8:1::5' }, true],
    ['jwt metadata (request principal iss/sub)', ANY, { and_ids: { ids: [
      { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'iss' }], value: { string_match: { exact: 'https://issuer' } } } },
      { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'sub' }], value: { string_match: { exact: 'alice' } } } },
    ] } }, { md: { 'envoy.filters.http.jwt_authn': { payload: { iss: 'https://issuer', sub: 'alice' } } } }, true],
    ['jwt metadata without a token', ANY, { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'iss' }], value: { string_match: { safe_regex: { regex: '.+' } } } } }, {}, false],
    ['claim list (aud) matches any element', ANY, { metadata: { filter: 'j', path: [{ key: 'payload' }, { key: 'aud' }], value: { or_match: { value_matchers: [{ list_match: { one_of: { string_match: { exact: 'b' } } } }, { string_match: { exact: 'b' } }] } } } }, { md: { j: { payload: { aud: ['a', 'b'] } } } }, true],
    ['metadata invert sees through a missing value', ANY, { metadata: { filter: 'j', path: [{ key: 'x' }], value: { string_match: { exact: 'a' } }, invert: true } }, {}, true],
  ];
  for (const [name, perm, princ, f, want] of matchCases) {
    it(`matches: ${name}`, () => {
      const c = http({ action: 'ALLOW', policies: { p: policy([perm], [princ]) } });
      expect(evaluateFilters([c], facts(f)).allowed).to.equal(want);
    });
  }

  it('network RBAC evaluates connection facts only', () => {
    const c = decodeNetworkRbac({ stat_prefix: 'tcp.', rules: { action: 'ALLOW', policies: { p: policy([ANY], [{ authenticated: { principal_name: { exact: spiffe('reader') } } }]) } } }, 'tc');
    const conn = (principal: string | null): AuthzFacts => ({ principal, directRemoteIp: '127.0.0.1', remoteIp: '127.0.0.1', destinationIp: '10.0.0.1', destinationPort: 3306, serverName: null, path: null });
    expect(evaluateFilters([c], conn(spiffe('reader'))).allowed).to.equal(true);
    expect(evaluateFilters([c], conn(spiffe('writer'))).allowed).to.equal(false);
    expect(evaluateFilters([c], conn(null)).allowed).to.equal(false);
  });

  it('remote address: the peer with use_remote_address, else the last x-forwarded-for entry', () => {
    expect(remoteIpOf(true, '10.0.0.1', '1.2.3.4')).to.equal('10.0.0.1');
    expect(remoteIpOf(false, '10.0.0.1', '1.2.3.4, 5.6.7.8')).to.equal('5.6.7.8');
    expect(remoteIpOf(false, '10.0.0.1', ['1.2.3.4', '9.9.9.9'])).to.equal('9.9.9.9');
    expect(remoteIpOf(false, '10.0.0.1', undefined)).to.equal('10.0.0.1');
  });

  it('CIDR and value matchers', () => {
    expect(cidrContains({ address: '10.0.0.0', prefixLen: 8 }, '10.255.1.1')).to.equal(true);
    expect(cidrContains({ address: '10.0.0.0', prefixLen: 8 }, '11.0.0.1')).to.equal(false);
    expect(cidrContains({ address: '0.0.0.0', prefixLen: 0 }, '1.2.3.4')).to.equal(true);
    expect(cidrContains({ address: '192.168.1.7', prefixLen: 32 }, '::ffff:192.168.1.7')).to.equal(true);
    expect(cidrContains({ address: '255.255.255.0', prefixLen: 24 }, '255.255.255.9')).to.equal(true);
    expect(cidrContains({ address: '10.0.0.0', prefixLen: 8 }, '::1')).to.equal(false);
    expect(valueMatches({ kind: 'present', value: false }, undefined)).to.equal(true);
    expect(valueMatches({ kind: 'null' }, undefined)).to.equal(false);
    expect(valueMatches({ kind: 'double', exact: null, range: { start: 1, end: 2 } }, 1.5)).to.equal(true);
    expect(valueMatches({ kind: 'bool', value: true }, 'true')).to.equal(false);
  });
});
