import { expect } from 'chai';
import Consul from 'consul';
import { FakeConsul } from '@trellis/testing';

describe('fake Consul, driven by the consul npm client', () => {
  let fake: FakeConsul;
  beforeEach(async () => {
    fake = await new FakeConsul({ token: 'acl-token' }).start();
  });
  afterEach(async () => {
    await fake.close();
  });

  it("consul.watch(health.service) sees registrations and deregistrations through blocking queries", async () => {
    const consul = new Consul({ host: '127.0.0.1', port: fake.port, defaults: { token: 'acl-token' } });
    const seen: string[][] = [];
    const watch = consul.watch({ method: consul.health.service, options: { service: 'web', passing: true, wait: '20s' } as never, backoffFactor: 10 });
    const next = (n: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (seen.length >= n) {
            watch.off('change', check);
            resolve();
          }
        };
        watch.on('change', check);
        watch.once('error', reject);
        check();
      });
    watch.on('change', (data: { Service: { ID: string } }[]) => seen.push(data.map((e) => e.Service.ID)));
    try {
      await next(1);
      expect(seen[0]).to.deep.equal([]);
      await consul.catalog.register({ node: 'vm1', address: '10.0.0.1', service: { id: 'web-1', service: 'web', port: 80 } } as never);
      await next(2);
      expect(seen[1]).to.deep.equal(['web-1']);
      fake.register({ node: 'vm2', id: 'web-2', service: 'web', port: 80, check: 'critical' });
      fake.register({ node: 'vm3', id: 'web-3', service: 'web', port: 80 });
      await next(3);
      expect(seen.at(-1)).to.deep.equal(['web-1', 'web-3']);
      const n = seen.length;
      await consul.catalog.deregister({ node: 'vm1', serviceid: 'web-1' } as never);
      await next(n + 1);
      expect(seen.at(-1)).to.deep.equal(['web-3']);
      // the watch blocked: it sent ?index= with the last X-Consul-Index
      expect(fake.requests.some((r) => /[?&]index=\d+/.test(r.url) && /wait=20s/.test(r.url))).to.equal(true);
      const services = await consul.catalog.service.list();
      expect(Object.keys(services as object)).to.include('web');
    } finally {
      watch.end();
    }
  });

  it('rejects a wrong ACL token with 403 and an unknown datacenter with 500', async () => {
    const bad = new Consul({ host: '127.0.0.1', port: fake.port, defaults: { token: 'nope' } });
    const err = await bad.catalog.service.list().catch((e: unknown) => e);
    expect((err as { statusCode?: number }).statusCode).to.equal(403);
    const good = new Consul({ host: '127.0.0.1', port: fake.port, defaults: { token: 'acl-token' } });
    const err2 = await good.catalog.service.list({ dc: 'mars' } as never).catch((e: unknown) => e);
    expect((err2 as { statusCode?: number }).statusCode).to.equal(500);
  });

  it('caps the wait (10 minutes by default; shorter here) and answers with the unchanged index', async () => {
    const capped = await new FakeConsul({ maxWaitMs: 50 }).start();
    try {
      const idx = capped.currentIndex;
      const res = await fetch(`${capped.url}/v1/health/service/web?index=${idx}&wait=10m`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('x-consul-index')).to.equal(String(idx));
      expect(await res.json()).to.deep.equal([]);
    } finally {
      await capped.close();
    }
  });

  it('holds a blocking query until the index moves, and answers at once for an older index', async () => {
    const idx = fake.currentIndex;
    const t0 = Date.now();
    const early = await fetch(`${fake.url}/v1/catalog/services?index=${idx - 1}&wait=5s`, { headers: { 'x-consul-token': 'acl-token' } });
    expect(early.status).to.equal(200);
    const pending = fetch(`${fake.url}/v1/catalog/services?index=${idx}&wait=30s`, { headers: { 'x-consul-token': 'acl-token' } });
    setTimeout(() => fake.register({ node: 'n', service: 'late', port: 1 }), 50);
    const res = await pending;
    expect(Number(res.headers.get('x-consul-index'))).to.be.greaterThan(idx);
    expect(Object.keys((await res.json()) as object)).to.include('late');
    expect(Date.now() - t0).to.be.lessThan(30_000);
  });
});
