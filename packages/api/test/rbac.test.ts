import { expect } from 'chai';
import {
  EXT_TYPE_URL, TYPE_URL, decodeAny, decodeEnvoyResource, decodeHttpRbac, decodeNetworkRbac, encodeAny,
  type ListenerConfig, type RbacFilterConfig,
} from '@trellis/api';

const roundTrip = (type: string, o: Record<string, unknown>) => decodeAny(encodeAny(type, o));

/** An RBAC filter as the control plane generates it (rbac.ts), through protobuf and back. */
function wire(kind: 'http' | 'network', tc: Record<string, unknown>): RbacFilterConfig {
  const type = kind === 'http' ? EXT_TYPE_URL.rbacHttp : EXT_TYPE_URL.rbacNetwork;
  const decoded = roundTrip(type, tc);
  return kind === 'http' ? decodeHttpRbac(decoded, 'typed_config') : decodeNetworkRbac(decoded, 'typed_config');
}

describe('api: RBAC filter decoder', () => {
  it('decodes every permission and principal kind the control plane generates', () => {
    const c = wire('http', {
      rules: { action: 'DENY', policies: {
        'z-second': { permissions: [{ any: true }], principals: [{ any: true }] },
        'a-first': {
          permissions: [{ and_rules: { rules: [
            { or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }] } },
            { not_rule: { or_rules: { rules: [{ url_path: { path: { prefix: '/admin' } } }] } } },
            { destination_ip: { address_prefix: '10.0.0.0', prefix_len: { value: 8 } } },
            { destination_port: 9080 },
            { destination_port_range: { start: 8000, end: 9000 } },
            { requested_server_name: { safe_regex: { regex: 'outbound_.+' } } },
            { metadata: { filter: 'envoy.filters.http.jwt_authn', path: [{ key: 'payload' }, { key: 'aud' }], value: { or_match: { value_matchers: [{ list_match: { one_of: { string_match: { exact: 'a' } } } }, { string_match: { exact: 'a' } }] } } } },
          ] } }],
          principals: [{ and_ids: { ids: [
            { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/default/sa/x' } } },
            { authenticated: {} },
            { source_ip: { address_prefix: '192.168.0.1' } },
            { direct_remote_ip: { address_prefix: '::1', prefix_len: { value: 128 } } },
            { remote_ip: { address_prefix: '203.0.113.0', prefix_len: { value: 24 } } },
            { header: { name: 'X-User', present_match: true } },
            { not_id: { header: { name: 'x-n', range_match: { start: '1', end: '10' }, invert_match: true } } },
            { metadata: { filter: 'f', path: [{ key: 'k' }], value: { present_match: true }, invert: true } },
          ] } }],
        },
      } },
      shadow_rules_stat_prefix: 'istio_dry_run_allow_',
    });
    expect(Object.isFrozen(c) && Object.isFrozen(c.rules!.policies[0]!.permissions)).to.equal(true);
    expect(c.kind).to.equal('http');
    expect(c.rules!.action).to.equal('DENY');
    expect(c.rules!.policies.map((p) => p.name)).to.deep.equal(['a-first', 'z-second']);
    const perm = c.rules!.policies[0]!.permissions[0]!;
    expect(perm.kind).to.equal('and');
    const rules = (perm as { rules: readonly { kind: string }[] }).rules.map((r) => r.kind);
    expect(rules).to.deep.equal(['or', 'not', 'destinationIp', 'destinationPort', 'destinationPortRange', 'requestedServerName', 'metadata']);
    const ids = (c.rules!.policies[0]!.principals[0] as { ids: readonly Record<string, unknown>[] }).ids;
    expect(ids.map((i) => i.kind)).to.deep.equal(['authenticated', 'authenticated', 'directRemoteIp', 'directRemoteIp', 'remoteIp', 'header', 'not', 'metadata']);
    expect(ids[1]).to.deep.equal({ kind: 'authenticated', match: null });
    expect(ids[2]).to.deep.equal({ kind: 'directRemoteIp', cidr: { address: '192.168.0.1', prefixLen: 32 } });
    expect((ids[5] as { header: unknown }).header).to.deep.include({ name: 'x-user', kind: 'present', present: true });
    expect(c.shadowRulesStatPrefix).to.equal('istio_dry_run_allow_');
    expect(c.shadowRules).to.equal(null);
  });

  it('keeps Envoy\'s absent-vs-empty distinction: no rules enforces nothing, rules without policies is an empty list', () => {
    expect(wire('http', {}).rules).to.equal(null);
    const allowNothing = wire('network', { rules: { action: 'ALLOW', policies: {} }, stat_prefix: 'tcp.' });
    expect(allowNothing.rules).to.deep.equal({ action: 'ALLOW', policies: [] });
    expect(allowNothing.statPrefix).to.equal('tcp.');
    // ALLOW is enum value 0: on the wire an ALLOW block with no policies is an empty message.
    expect(wire('http', { rules: {} }).rules).to.deep.equal({ action: 'ALLOW', policies: [] });
  });

  it('decodes shadow rules and LOG actions', () => {
    const c = wire('http', { shadow_rules: { action: 'LOG', policies: { p: { permissions: [{ any: true }], principals: [{ any: true }] } } }, rules_stat_prefix: 'r.' });
    expect(c.rules).to.equal(null);
    expect(c.shadowRules!.action).to.equal('LOG');
    expect(c.statPrefix).to.equal('r.');
  });

  const bad: [string, 'http' | 'network', Record<string, unknown>, string][] = [
    ['a CEL condition', 'http', { rules: { policies: { p: { permissions: [{ any: true }], principals: [{ any: true }], condition: { id: '1' } } } } }, 'typed_config.rules.policies["p"].condition: not supported by trellis-proxy'],
    ['a policy without principals', 'http', { rules: { policies: { p: { permissions: [{ any: true }] } } } }, 'typed_config.rules.policies["p"].principals: must not be empty'],
    ['an empty permission', 'http', { rules: { policies: { p: { permissions: [{}], principals: [{ any: true }] } } } }, 'typed_config.rules.policies["p"].permissions[0]: one of any'],
    ['a bad regex', 'http', { rules: { policies: { p: { permissions: [{ url_path: { path: { safe_regex: { regex: '(' } } } }], principals: [{ any: true }] } } } }, 'url_path.path.safe_regex.regex: invalid regex'],
    ['a network filter without stat_prefix', 'network', { rules: {} }, 'typed_config.stat_prefix: required'],
    ['a bad prefix length', 'network', { stat_prefix: 's', rules: { policies: { p: { permissions: [{ any: true }], principals: [{ remote_ip: { address_prefix: '10.0.0.0', prefix_len: { value: 33 } } }] } } } }, 'principals[0].remote_ip.prefix_len: must be 0-32'],
  ];
  for (const [name, kind, tc, msg] of bad) {
    it(`rejects ${name} with its path`, () => {
      expect(() => wire(kind, tc)).to.throw(msg);
    });
  }

  it('registers both filters: a listener carries decoded configs (HCM http_filters and network filters)', () => {
    const rbacHttp = { '@type': EXT_TYPE_URL.rbacHttp, rules: { action: 'DENY', policies: { p: { permissions: [{ url_path: { path: { prefix: '/admin' } } }], principals: [{ any: true }] } } } };
    const l = decodeEnvoyResource(TYPE_URL.listener, roundTrip(TYPE_URL.listener, {
      name: 'l',
      filter_chains: [
        { filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
          '@type': EXT_TYPE_URL.httpConnectionManager, stat_prefix: 's', rds: { route_config_name: 'r', config_source: { ads: {} } },
          http_filters: [{ name: 'envoy.filters.http.rbac', typed_config: rbacHttp }, { name: 'envoy.filters.http.router', typed_config: { '@type': EXT_TYPE_URL.router } }],
        } }] },
        { filters: [
          { name: 'envoy.filters.network.rbac', typed_config: { '@type': EXT_TYPE_URL.rbacNetwork, stat_prefix: 'tcp.', rules: { action: 'ALLOW' } } },
          { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': EXT_TYPE_URL.tcpProxy, stat_prefix: 't', cluster: 'c' } },
        ] },
      ],
    })) as ListenerConfig;
    const hcm = l.filterChains[0]!.terminal;
    expect(hcm.kind).to.equal('http');
    const f = (hcm as { httpFilters: readonly { name: string; config: unknown }[] }).httpFilters[0]!;
    expect((f.config as RbacFilterConfig).rules!.policies[0]!.name).to.equal('p');
    const net = l.filterChains[1]!.filters[0]!;
    expect(net.kind).to.equal('other');
    expect((net as { config: RbacFilterConfig }).config).to.deep.include({ kind: 'network', statPrefix: 'tcp.' });
    expect((net as { config: RbacFilterConfig }).config.rules).to.deep.equal({ action: 'ALLOW', policies: [] });
  });
});
