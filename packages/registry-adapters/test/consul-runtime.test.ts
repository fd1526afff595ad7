// Shared adapter runtime (lives under src/consul/): backoff, token bucket, shard publisher.
import { expect } from 'chai';
import type { RegistryChange, ServiceEntry, WorkloadEntry } from '@trellis/model';
import { Backoff, ShardPublisher, TokenBucket, type Clock } from '@trellis/registry-adapters/consul';

class FakeClock implements Clock {
  t = 0;
  sleeps: number[] = [];
  now(): number {
    return this.t;
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.t += ms;
  }
}

const svc = (host: string): ServiceEntry => ({
  hostname: host,
  namespace: 'default',
  addresses: [],
  ports: [{ number: 80, protocol: 'HTTP', name: 'http' }],
  resolution: 'STATIC',
  location: 'MESH_INTERNAL',
  subjectAltNames: [],
  exportTo: [],
  labels: {},
  aliases: [],
  source: { kind: 'consul', shard: 'consul:dc1' },
});
const wl = (name: string, address: string, host: string): WorkloadEntry => ({
  name,
  namespace: 'default',
  address,
  ports: { http: 80 },
  labels: {},
  serviceAccount: '',
  locality: '',
  network: '',
  weight: 1,
  health: 'HEALTHY',
  services: [host],
  source: { kind: 'consul', shard: 'consul:dc1' },
});

describe('adapter runtime', () => {
  it('Backoff grows exponentially to the cap with equal jitter, and resets', () => {
    const lo = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 0);
    expect([lo.next(), lo.next(), lo.next(), lo.next(), lo.next()]).to.deep.equal([50, 100, 200, 400, 500]);
    const hi = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 1);
    expect([hi.next(), hi.next()]).to.deep.equal([100, 200]);
    hi.reset();
    expect(hi.next()).to.equal(100);
  });

  it('TokenBucket allows a burst of 2, then paces at the rate', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(2, 2, clock);
    const signal = new AbortController().signal;
    for (let i = 0; i < 5; i++) await bucket.take(signal);
    expect(clock.sleeps).to.deep.equal([500, 500, 500]);
    expect(clock.t).to.equal(1500);
  });

  it('ShardPublisher: stale before the first sync yields status only; first content is a snapshot; then coalesced updates', async () => {
    const clock = new FakeClock();
    const p = new ShardPublisher('consul', 'consul:dc1', clock);
    const ctl = new AbortController();
    const it = p.changes(ctl.signal)[Symbol.asyncIterator]();
    p.fail(new Error('connection refused'));
    const first = (await it.next()).value as RegistryChange;
    expect(first).to.deep.include({ type: 'status' });
    expect(first.status).to.deep.include({ state: 'stale', lastError: 'connection refused', staleSince: new Date(0).toISOString() });
    p.setGroup('web', [svc('web')], [wl('a', '10.0.0.1', 'web'), wl('b', '10.0.0.2', 'web')]);
    p.ready();
    const snap = (await it.next()).value as RegistryChange;
    expect(snap.type).to.equal('snapshot');
    expect(snap.status.state).to.equal('synced');
    expect(snap.status.lastError).to.equal(undefined);
    // two changes before the consumer pulls: one update with the net difference
    p.setGroup('web', [svc('web')], [wl('a', '10.0.0.9', 'web')]);
    p.setGroup('api', [svc('api')], []);
    const up = (await it.next()).value as RegistryChange;
    if (up.type !== 'update') throw new Error(up.type);
    expect(up.upsert.services.map((s) => s.hostname)).to.deep.equal(['api']);
    expect(up.upsert.workloads.map((w) => w.address)).to.deep.equal(['10.0.0.9']);
    expect(up.remove.workloads).to.deep.equal(['default/b']);
    // an unchanged rewrite yields nothing; a failure yields a status with the content kept
    p.setGroup('api', [svc('api')], []);
    p.fail(new Error('down'));
    const st = (await it.next()).value as RegistryChange;
    expect(st.type).to.equal('status');
    p.deleteGroup('api');
    const rm = (await it.next()).value as RegistryChange;
    if (rm.type !== 'update') throw new Error(rm.type);
    expect(rm.remove.services).to.deep.equal(['default/api']);
    expect(rm.status.state).to.equal('stale');
    ctl.abort();
    expect((await it.next()).done).to.equal(true);
  });
});
