import { expect } from 'chai';
import { EurekaAdapter } from '@trellis/registry-adapters/eureka';
import { FakeEureka, ShardView } from '@trellis/testing';

describe('eureka adapter against the fake Eureka', () => {
  let eureka: FakeEureka;
  let view: ShardView | undefined;
  beforeEach(async () => {
    eureka = await new FakeEureka({ basePath: '/eureka' }).start();
  });
  afterEach(async () => {
    await view?.close();
    view = undefined;
    await eureka.close();
  });
  const adapter = (urls = [eureka.serviceUrl]): EurekaAdapter =>
    new EurekaAdapter({ serviceUrls: urls, deltaIntervalMs: 30, backoff: { initialMs: 20, maxMs: 100 } });

  it('snapshots, merges deltas, goes stale keeping endpoints, recovers with a full fetch', async () => {
    eureka.register({ app: 'reviews', instanceId: 'r1', ipAddr: '10.0.0.1', port: 9080, vipAddress: 'reviews-vip' });
    view = new ShardView(adapter());
    await view.until((v) => v.changes.length > 0);
    expect(view.changes[0].type, JSON.stringify(view.changes[0])).to.equal('snapshot');
    expect(view.endpointsOf('reviews.eureka').map((w) => w.address)).to.deep.equal(['10.0.0.1']);
    expect(view.services.get('default/reviews.eureka')?.aliases).to.deep.equal(['reviews', 'reviews-vip']); // secureVipAddress defaults to the app name
    expect(eureka.requests[0]).to.deep.include({ method: 'GET', url: '/eureka/apps', accept: 'application/json' });

    eureka.register({ app: 'reviews', instanceId: 'r2', ipAddr: '10.0.0.2', port: 9080 });
    eureka.setStatus('REVIEWS', 'r1', 'OUT_OF_SERVICE');
    await view.until((v) => v.endpointsOf('reviews.eureka').length === 2 && v.workloads.get('default/r1')?.health === 'UNHEALTHY', 5000, 'delta');
    expect(eureka.requests.some((r) => r.url === '/eureka/apps/delta')).to.equal(true);

    await eureka.stop();
    await view.until((v) => v.status?.state === 'stale', 5000, 'stale');
    expect(view.status?.lastError).to.match(/eureka: every server failed/);
    expect(view.endpointsOf('reviews.eureka')).to.have.length(2);

    eureka.deregister('REVIEWS', 'r1');
    eureka.expireDeltas(); // the outage outlived the delta window
    await eureka.restart();
    await view.until((v) => v.status?.state === 'synced' && v.endpointsOf('reviews.eureka').length === 1, 5000, 'recovery');
    expect(view.endpointsOf('reviews.eureka')[0].name).to.equal('r2');
  });

  it('does a full fetch when the recomputed hashcode disagrees with the delta', async () => {
    eureka.register({ app: 'a', instanceId: 'a1', ipAddr: '10.0.0.1', port: 80 });
    view = new ShardView(adapter());
    await view.until((v) => v.workloads.size === 1);
    // a change the delta no longer shows: only the hashcode reveals it
    eureka.register({ app: 'a', instanceId: 'a2', ipAddr: '10.0.0.2', port: 80 });
    eureka.expireDeltas();
    await view.until((v) => v.workloads.size === 2, 5000, 'full fetch after hash mismatch');
    expect(eureka.requests.filter((r) => r.url === '/eureka/apps').length).to.be.greaterThan(1);
  });

  it('fails over to the next server URL and handles the single-object quirk', async () => {
    const quirky = await new FakeEureka({ basePath: '/eureka', singleObjects: true }).start();
    const dead = await new FakeEureka().start();
    const deadUrl = dead.serviceUrl;
    await dead.close();
    try {
      quirky.register({ app: 'solo', instanceId: 's1', ipAddr: '10.1.0.1', port: 8080 });
      view = new ShardView(adapter([deadUrl, quirky.serviceUrl]));
      await view.until((v) => v.workloads.size === 1);
      expect(view.status?.state).to.equal('synced');
      quirky.register({ app: 'solo2', instanceId: 's2', ipAddr: '10.1.0.2', port: 8080 });
      await view.until((v) => v.services.size === 2);
    } finally {
      await view?.close();
      view = undefined;
      await quirky.close();
    }
  });
});
