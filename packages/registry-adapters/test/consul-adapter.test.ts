import { expect } from 'chai';
import { ConsulAdapter } from '@trellis/registry-adapters/consul';
import { FakeConsul, ShardView } from '@trellis/testing';

describe('consul adapter against the fake Consul', () => {
  let consul: FakeConsul;
  let view: ShardView | undefined;
  beforeEach(async () => {
    consul = await new FakeConsul({ token: 's3cret', datacenters: ['dc2'] }).start();
  });
  afterEach(async () => {
    await view?.close();
    view = undefined;
    await consul.close();
  });
  const adapter = (dc = 'dc1'): ConsulAdapter =>
    new ConsulAdapter({ address: consul.url, datacenter: dc, token: 's3cret', waitSeconds: 30, backoff: { initialMs: 20, maxMs: 100 }, rateLimit: { perSecond: 50 } });

  it('snapshots, converges on changes, goes stale on outage keeping endpoints, and recovers', async () => {
    consul.register({ node: 'vm1', nodeAddress: '10.0.0.1', service: 'web', port: 8080, meta: { protocol: 'http' }, nodeMeta: { region: 'eu', zone: 'eu-1' } });
    consul.register({ node: 'vm2', nodeAddress: '10.0.0.2', service: 'web', port: 8080, check: 'warning' });
    view = new ShardView(adapter());
    await view.until((v) => v.changes.length > 0, 5000, 'first change');
    const first = view.changes[0];
    expect(first.type).to.equal('snapshot');
    expect(first.status.state).to.equal('synced');
    // ?passing by default: the warning instance is not there
    expect(view.endpointsOf('web.service.consul').map((w) => w.address)).to.deep.equal(['10.0.0.1']);
    expect(view.services.get('default/web.service.consul')?.ports).to.deep.equal([{ number: 8080, protocol: 'HTTP', name: 'http' }]);
    expect(consul.requests.every((r) => r.headers['x-consul-token'] === 's3cret')).to.equal(true);

    consul.setCheck('vm2', 'web', 'passing');
    consul.register({ node: 'vm3', nodeAddress: '10.0.0.3', service: 'api', port: 9090 });
    await view.until((v) => v.endpointsOf('web.service.consul').length === 2 && v.endpointsOf('api.service.consul').length === 1, 5000, 'convergence');
    expect(view.changes.slice(1).every((c) => c.type !== 'snapshot')).to.equal(true);
    expect(consul.requests.some((r) => r.url.includes('index='))).to.equal(true);

    await consul.stop();
    await view.until((v) => v.status?.state === 'stale', 5000, 'stale');
    expect(view.status?.lastError).to.match(/consul dc1/);
    expect(view.status?.staleSince).to.be.a('string');
    expect(view.endpointsOf('web.service.consul')).to.have.length(2);

    consul.deregister('vm1', 'web');
    consul.deregister('vm3', 'api');
    await consul.restart();
    await view.until((v) => v.status?.state === 'synced' && v.endpointsOf('web.service.consul').length === 1 && v.services.size === 1, 5000, 'recovery');
    expect(view.status?.lastError).to.equal(undefined);
    expect(view.endpointsOf('web.service.consul')[0].address).to.equal('10.0.0.2');
  });

  it('includes warning instances when configured, and watches one datacenter per shard', async () => {
    consul.register({ node: 'vm2', nodeAddress: '10.0.0.2', service: 'web', port: 8080, check: 'warning', weights: { Passing: 5, Warning: 2 } });
    consul.register({ node: 'vm9', nodeAddress: '10.9.0.9', service: 'web', port: 8080, datacenter: 'dc2' });
    const a = new ConsulAdapter({ address: consul.url, datacenter: 'dc2', token: 's3cret', waitSeconds: 30 });
    expect(a.shard).to.equal('consul:dc2');
    view = new ShardView(a);
    await view.until((v) => v.workloads.size === 1);
    expect(view.endpointsOf('web.service.consul')[0].address).to.equal('10.9.0.9');
    await view.close();
    view = new ShardView(new ConsulAdapter({ address: consul.url, token: 's3cret', includeWarning: true, waitSeconds: 30 }));
    await view.until((v) => v.workloads.size === 1);
    expect([...view.workloads.values()][0]).to.deep.include({ weight: 2, health: 'HEALTHY' });
  });

  it('never yields an empty snapshot when the agent is unreachable from the start', async () => {
    await consul.stop();
    view = new ShardView(adapter());
    await view.until((v) => v.status?.state === 'stale', 5000, 'stale');
    expect(view.changes.every((c) => c.type === 'status')).to.equal(true);
    consul.register({ node: 'vm1', nodeAddress: '10.0.0.1', service: 'web', port: 8080 });
    await consul.restart();
    await view.until((v) => v.workloads.size === 1, 5000, 'snapshot after restart');
    expect(view.changes.find((c) => c.type !== 'status')?.type).to.equal('snapshot');
  });

  it('re-reads from index 0 when the index goes backwards', async () => {
    consul.register({ node: 'vm1', nodeAddress: '10.0.0.1', service: 'web', port: 8080 });
    for (let i = 0; i < 8; i++) consul.setCheck('vm1', 'web', 'passing');
    view = new ShardView(new ConsulAdapter({ address: consul.url, token: 's3cret', waitSeconds: 1, rateLimit: { perSecond: 50 } }));
    await view.until((v) => v.workloads.size === 1);
    consul.resetIndex(1);
    consul.register({ node: 'vm2', nodeAddress: '10.0.0.2', service: 'web', port: 8080 });
    await view.until((v) => v.workloads.size === 2, 8000, 'after index reset');
  });
});
