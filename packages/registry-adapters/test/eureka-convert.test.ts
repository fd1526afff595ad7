import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { applicationsOf, convertEurekaApp, eurekaHashcode, eurekaHostname, type EurekaApplicationsResponse } from '@trellis/registry-adapters/eureka';

const body = JSON.parse(readFileSync(new URL('./fixtures/eureka-apps.json', import.meta.url), 'utf8')) as EurekaApplicationsResponse;
const opts = { shard: 'eureka:default' };

describe('eureka convert', () => {
  it('reads /apps with arrays and with the single-object quirk (application and instance)', () => {
    const apps = applicationsOf(body);
    expect(apps.map((a) => [a.name, a.instances.length])).to.deep.equal([['FOO_BAR_LOCAL', 2], ['SPRING', 1]]);
    const single = { applications: { application: { name: 'ONE', instance: { instanceId: 'x', app: 'ONE', ipAddr: '1.1.1.1', status: 'UP' } } } };
    expect(applicationsOf(single).map((a) => [a.name, a.instances.length])).to.deep.equal([['ONE', 1]]);
    expect(applicationsOf({ applications: {} })).to.deep.equal([]);
  });

  it('maps ports with @enabled, protocol from istio.protocol metadata, UP → HEALTHY, others UNHEALTHY, vipAddress aliases', () => {
    const [foo] = applicationsOf(body);
    const r = convertEurekaApp(foo.name, foo.instances, opts);
    // foo2 has no istio.protocol (default HTTP) on the same port 5000: a reported disagreement, GRPC kept
    expect(r.problems.map((p) => p.message)).to.deep.equal(['instances disagree on port 5000: 1 say "http", as many or more say "grpc"; using "grpc"']);
    expect(r.service).to.deep.include({ hostname: 'foo-bar-local.eureka', aliases: ['foo-alias', 'foo.bar.local'] });
    expect(r.service!.ports).to.deep.equal([
      { number: 5000, protocol: 'GRPC', name: 'grpc' },
      { number: 5443, protocol: 'HTTPS', name: 'https' },
    ]);
    expect(r.workloads.map((w) => [w.name, w.address, w.health, w.ports])).to.deep.equal([
      ['foo.bar.local:foo_bar_local:5000', '10.0.0.1', 'HEALTHY', { grpc: 5000, https: 5443 }],
      // securePort disabled; its port renamed onto the service's port 5000
      ['foo2', '10.0.0.2', 'UNHEALTHY', { grpc: 5000 }],
    ]);
    expect(r.workloads[0].labels).to.deep.equal({ 'istio.protocol': 'grpc', version: 'v1', zone: 'z1', region: 'r1' });
    expect(r.workloads[0].locality).to.equal('r1/z1');
    expect(r.workloads[1].labels).to.deep.equal({});
    expect(r.workloads[0].source).to.deep.equal({ kind: 'eureka', shard: 'eureka:default', ref: 'FOO_BAR_LOCAL/foo.bar.local:foo_bar_local:5000' });
  });

  it('string port numbers, protocol metadata, Amazon availability zone, dropNonUp', () => {
    const [foo, spring] = applicationsOf(body);
    const r = convertEurekaApp(spring.name, spring.instances, opts);
    expect(r.service!.ports).to.deep.equal([{ number: 8080, protocol: 'HTTP', name: 'http' }]);
    expect(r.workloads[0].locality).to.equal('/us-east-1c');
    expect(convertEurekaApp(foo.name, foo.instances, { ...opts, dropNonUp: true }).workloads.map((w) => w.name)).to.deep.equal(['foo.bar.local:foo_bar_local:5000']);
  });

  it('reports an instance with no enabled port and drops it', () => {
    const r = convertEurekaApp('X', [{ instanceId: 'a', ipAddr: '1.2.3.4', status: 'UP', port: { $: 80, '@enabled': 'false' } }], opts);
    expect(r.service).to.equal(undefined);
    expect(r.problems[0]).to.deep.include({ path: 'instance[0].port' });
  });

  it('hostname template over the app name', () => {
    expect(eurekaHostname('FOO_BAR', {})).to.equal('foo-bar.eureka');
    expect(eurekaHostname('Reviews', { hostnameTemplate: '{app}.svc.example.com' })).to.equal('reviews.svc.example.com');
  });

  it('recomputes apps__hashcode as sorted STATUS_count_ pairs', () => {
    const all = applicationsOf(body).flatMap((a) => a.instances);
    expect(eurekaHashcode(all)).to.equal(body.applications!.apps__hashcode);
    expect(eurekaHashcode([{ status: 'UP' }, { status: 'UP' }, { status: 'UP' }, { status: 'DOWN' }])).to.equal('DOWN_1_UP_3_');
    expect(eurekaHashcode([])).to.equal('');
  });
});
