import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { convertConsulService, nextConsulIndex, type ConsulHealthEntry } from '@trellis/registry-adapters/consul';

const fixture = JSON.parse(readFileSync(new URL('./fixtures/consul-health-web.json', import.meta.url), 'utf8')) as ConsulHealthEntry[];
const base = { shard: 'consul:dc1', datacenter: 'dc1' };

describe('consul convert', () => {
  it('maps a real /v1/health/service response to one ServiceEntry and one WorkloadEntry per instance', () => {
    const r = convertConsulService('redis', fixture, base);
    expect(r.problems).to.deep.equal([]);
    expect(r.service).to.deep.include({ hostname: 'redis.service.consul', namespace: 'default', resolution: 'STATIC' });
    // meta protocol=redis on one instance, none (TCP default) on the other: one port per protocol
    expect(r.service!.ports).to.deep.equal([
      { number: 8000, protocol: 'REDIS', name: 'redis' },
      { number: 8001, protocol: 'TCP', name: 'tcp' },
    ]);
    const [a, b] = r.workloads;
    expect(a).to.deep.include({
      name: 'foobar/redis',
      address: '10.1.10.12',
      ports: { redis: 8000 },
      labels: { version: 'v1', redis_version: '4.0', protocol: 'redis' },
      locality: 'us-east-1/us-east-1a',
      weight: 10,
      health: 'HEALTHY',
      services: ['redis.service.consul'],
    });
    expect(a.source).to.deep.equal({ kind: 'consul', shard: 'consul:dc1', ref: 'dc1/foobar/redis' });
    // empty Service.Address falls back to Node.Address; warning check → healthy at Weights.Warning
    expect(b).to.deep.include({ name: 'node-2/redis-2', address: '10.1.10.13', locality: '', weight: 1, labels: {} });
    expect(Object.isFrozen(r.service) && Object.isFrozen(a.labels)).to.equal(true);
  });

  const table: { name: string; options: object; expect: string }[] = [
    { name: 'default template', options: {}, expect: 'redis.service.consul' },
    { name: 'dc token', options: { hostnameTemplate: '{service}.service.{dc}.consul' }, expect: 'redis.service.dc1.consul' },
    { name: 'namespace token', options: { hostnameTemplate: '{service}.{namespace}.svc', consulNamespace: 'team-a' }, expect: 'redis.team-a.svc' },
  ];
  for (const row of table) {
    it(`hostname template: ${row.name}`, () => {
      expect(convertConsulService('redis', fixture, { ...base, ...row.options }).service!.hostname).to.equal(row.expect);
    });
  }

  it('uses configurable node meta keys for locality and a configurable default protocol', () => {
    const r = convertConsulService('redis', fixture, { ...base, localityKeys: { region: 'instance_type' }, defaultProtocol: 'HTTP' });
    expect(r.workloads[0].locality).to.equal('t2.medium/us-east-1a');
    expect(r.service!.ports.map((p) => p.protocol)).to.deep.equal(['REDIS', 'HTTP']);
  });

  it('marks critical instances unhealthy and reports unusable ones as problems', () => {
    const critical = structuredClone(fixture[1]) as ConsulHealthEntry & { Checks: { Status: string }[] };
    critical.Checks[0].Status = 'critical';
    const bad = { Node: { Node: 'n', Address: '' }, Service: { ID: 'x', Service: 'redis', Port: 0 } };
    const r = convertConsulService('redis', [critical, bad as ConsulHealthEntry], base);
    expect(r.workloads.map((w) => w.health)).to.deep.equal(['UNHEALTHY']);
    expect(r.problems).to.have.length(1);
    expect(r.problems[0].path).to.equal('[1].Service.Port');
  });

  it('gives no ServiceEntry for a service without instances', () => {
    expect(convertConsulService('redis', [], base).service).to.equal(undefined);
  });

  it('blocking index rules: reset when it goes backwards, clamp to ≥ 1', () => {
    expect(nextConsulIndex(0, '42')).to.equal(42);
    expect(nextConsulIndex(42, '40')).to.equal(0);
    expect(nextConsulIndex(0, '0')).to.equal(1);
    expect(nextConsulIndex(5, null)).to.equal(0);
  });
});
