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

describe('consul adapter with an injected fetch and clock', () => {
  it('backs off with jitter on errors (deterministic), stays stale without an empty snapshot, then snapshots', async () => {
    let t = 0;
    const sleeps: number[] = [];
    const clock = {
      now: () => t,
      sleep: async (ms: number) => {
        sleeps.push(ms);
        t += ms;
      },
    };
    let calls = 0;
    const urls: string[] = [];
    const fetch = async (url: string, init: { signal: AbortSignal }) => {
      urls.push(url);
      calls++;
      if (calls <= 3) throw new Error('connect ECONNREFUSED');
      if (url.includes('/v1/catalog/services') && !url.includes('index=')) {
        return { status: 200, headers: { get: () => '7' }, text: async () => '{"web":[]}' };
      }
      if (url.includes('/v1/health/service/web') && !url.includes('index=')) {
        const body = JSON.stringify([{ Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'web', Service: 'web', Port: 80 }, Checks: [] }]);
        return { status: 200, headers: { get: () => '7' }, text: async () => body };
      }
      // later blocking queries: wait until the test aborts
      await new Promise((resolve) => init.signal.addEventListener('abort', resolve, { once: true }));
      throw new Error('aborted');
    };
    const ctl = new AbortController();
    const changes: string[] = [];
    const adapter = new ConsulAdapter({ address: 'http://consul.invalid:8500', fetch, clock, random: () => 1, backoff: { initialMs: 100, maxMs: 1000 } });
    for await (const c of adapter.watch(ctl.signal)) {
      changes.push(`${c.type}:${c.status.state}`);
      if (c.type === 'snapshot') break;
    }
    ctl.abort();
    expect(changes).to.deep.equal(['status:stale', 'snapshot:synced']);
    // three failures: 100, 200, 400 ms of backoff (random() = 1: the top of each jitter range); the backoff time
    // refilled the token bucket, so it added no wait of its own
    expect(sleeps).to.deep.equal([100, 200, 400]);
    expect(urls[0]).to.equal('http://consul.invalid:8500/v1/catalog/services?dc=dc1&wait=300s');
    expect(urls.some((u) => u === 'http://consul.invalid:8500/v1/health/service/web?dc=dc1&wait=300s&passing')).to.equal(true);
  });
});
