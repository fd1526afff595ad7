import { expect } from 'chai';
import { decodeCluster, type OutlierDetection } from '@trellis/api';
import { OutlierDetector } from '../src/cluster/outlier.js';
import { HostSet, type Host } from '../src/lb/hosts.js';

function hostsOf(n: number, panicThreshold = 0): HostSet {
  const cla = {
    clusterName: 'c',
    localities: [{
      locality: { region: '', zone: '', subZone: '' }, priority: 0, weight: 1,
      endpoints: Array.from({ length: n }, (_, i) => ({ address: { address: '10.0.0.' + (i + 1), port: 80 }, weight: 1, healthy: true, metadata: {} })),
    }],
  };
  return new HostSet(cla as unknown as ConstructorParameters<typeof HostSet>[0], 'ROUND_ROBIN', 1024, Math.random, undefined, panicThreshold);
}

function config(o: Record<string, unknown> = {}): OutlierDetection {
  return decodeCluster({ name: 'c', type: 'EDS', eds_cluster_config: {}, outlier_detection: o }).outlierDetection!;
}

const fail5xx = { kind: 'response', status: 500 } as const;
const ok = { kind: 'response', status: 200 } as const;

describe('outlier detection (Envoy consecutive-error detection)', () => {
  it('decodes Envoy defaults: 5 consecutive 5xx enforced, gateway failures counted but not enforced, 10 s / 30 s / 300 s / 10 %', () => {
    expect(config()).to.deep.include({
      consecutive5xx: 5, enforcingConsecutive5xx: 100, consecutiveGatewayFailure: 5, enforcingConsecutiveGatewayFailure: 0,
      intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 10, splitExternalLocalOriginErrors: false,
    });
    expect(() => config({ max_ejection_percent: { value: 150 } })).to.throw(/outlier_detection\.max_ejection_percent: must be between 0 and 100/);
  });

  it('ejects after N consecutive 5xx (a success in between resets the count) until the first tick after base ejection time', () => {
    const hs = hostsOf(2);
    const d = new OutlierDetector(config({ consecutive_5xx: { value: 3 }, interval: { seconds: 10 }, base_ejection_time: { seconds: 30 }, max_ejection_percent: { value: 50 } }), 0);
    const [a] = hs.all as Host[];
    d.record(a, fail5xx, hs.all, 1000);
    d.record(a, fail5xx, hs.all, 1000);
    d.record(a, ok, hs.all, 1000);
    d.record(a, fail5xx, hs.all, 1000);
    d.record(a, fail5xx, hs.all, 1000);
    expect(a.ejectedUntil).to.equal(0);
    d.record(a, fail5xx, hs.all, 2000);
    // 2 s + 30 s = 32 s, un-ejected at the next 10 s tick: 40 s.
    expect(a.ejectedUntil).to.equal(40_000);
    expect(d.stats).to.deep.include({ ejectionsTotal: 1, ejectionsConsecutive5xx: 1 });
    for (let i = 0; i < 10; i++) expect(hs.pick({ hash: null, now: 39_999 })!.key).to.not.equal(a.key);
    const back = new Set(Array.from({ length: 4 }, () => hs.pick({ hash: null, now: 40_000 })!.key));
    expect(back).to.include(a.key);
  });

  it('a host ejected again soon stays out longer (base × ejections, capped at max_ejection_time); recovery forgives one per tick', () => {
    const hs = hostsOf(2);
    const d = new OutlierDetector(config({ consecutive_5xx: { value: 1 }, interval: { seconds: 1 }, base_ejection_time: { seconds: 10 }, max_ejection_time: { seconds: 25 }, max_ejection_percent: { value: 100 } }), 0);
    const a = hs.all[0] as Host;
    d.record(a, fail5xx, hs.all, 0);
    expect(a.ejectedUntil).to.equal(10_000);
    d.record(a, fail5xx, hs.all, 10_000);
    expect(a.ejectedUntil).to.equal(30_000); // 2 × 10 s
    d.record(a, fail5xx, hs.all, 30_000);
    expect(a.ejectedUntil).to.equal(55_000); // 3 × 10 s capped at 25 s
    // 100 ticks healthy: the count is back to 0, the next ejection is the base time again.
    d.record(a, fail5xx, hs.all, 155_000);
    expect(a.ejectedUntil).to.equal(165_000);
  });

  it('max_ejection_percent caps how many hosts are out at once (overflow counted)', () => {
    const hs = hostsOf(4);
    const d = new OutlierDetector(config({ consecutive_5xx: { value: 1 }, max_ejection_percent: { value: 50 } }), 0);
    for (const h of hs.all as Host[]) d.record(h, fail5xx, hs.all, 0);
    expect(hs.all.filter((h) => h.ejectedUntil > 0)).to.have.length(2);
    expect(d.stats.ejectionsOverflow).to.equal(2);
  });

  it('local-origin failures count as 503s (gateway failures) unless split; gateway failures eject only when enforced', () => {
    const hs = hostsOf(2);
    const d = new OutlierDetector(config({ consecutive_5xx: { value: 10 }, consecutive_gateway_failure: { value: 2 }, enforcing_consecutive_gateway_failure: { value: 100 }, max_ejection_percent: { value: 100 } }), 0);
    const a = hs.all[0] as Host;
    d.record(a, { kind: 'connect_failure' }, hs.all, 0);
    d.record(a, { kind: 'timeout' }, hs.all, 0);
    expect(a.ejectedUntil).to.be.greaterThan(0);
    expect(d.stats.ejectionsConsecutiveGateway).to.equal(1);

    const b = hs.all[1] as Host;
    const notEnforced = new OutlierDetector(config({ consecutive_5xx: { value: 10 }, consecutive_gateway_failure: { value: 2 } }), 0);
    for (let i = 0; i < 5; i++) notEnforced.record(b, { kind: 'response', status: 503 }, hs.all, 0);
    expect(b.ejectedUntil).to.equal(0);

    const split = new OutlierDetector(config({ split_external_local_origin_errors: true, consecutive_local_origin_failure: { value: 2 }, max_ejection_percent: { value: 100 } }), 0);
    split.record(b, { kind: 'connect_failure' }, hs.all, 0);
    split.record(b, { kind: 'connect_success' }, hs.all, 0);
    split.record(b, { kind: 'connect_failure' }, hs.all, 0);
    expect(b.ejectedUntil).to.equal(0);
    split.record(b, { kind: 'reset' }, hs.all, 0);
    expect(b.ejectedUntil).to.be.greaterThan(0);
    expect(split.stats.ejectionsConsecutiveLocalOrigin).to.equal(1);
  });

  it('panic threshold: below it the pick ignores ejections; 0 never panics', () => {
    const panicky = hostsOf(3, 50);
    const calm = hostsOf(3, 0);
    for (const hs of [panicky, calm]) { (hs.all[0] as Host).ejectedUntil = 1e9; (hs.all[1] as Host).ejectedUntil = 1e9; }
    const picked = (hs: HostSet) => new Set(Array.from({ length: 9 }, () => hs.pick({ hash: null, now: 0 })!.key));
    expect(picked(panicky).size).to.equal(3);
    expect([...picked(calm)]).to.deep.equal([calm.all[2].key]);
  });
});
