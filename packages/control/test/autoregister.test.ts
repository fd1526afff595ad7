import { expect } from 'chai';
import type { RegistryChange, WorkloadEntry } from '@trellis/model';
import { parseNode } from '../src/xds/node.js';
import { toStruct } from '@trellis/api';
import { WorkloadAutoRegistry, type GroupLike, type Timers, WORKLOAD_GROUP_LABEL } from '../src/autoregister/index.js';

class FakeTimers implements Timers {
  now = 0;
  #next = 1;
  readonly pending = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown { const id = this.#next++; this.pending.set(id, { at: this.now + ms, fn }); return id; }
  clearTimeout(h: unknown): void { this.pending.delete(h as number); }
  advance(ms: number): void {
    this.now += ms;
    for (const [id, t] of [...this.pending].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= this.now) { this.pending.delete(id); t.fn(); }
    }
  }
}

const GROUP: GroupLike = {
  metadata: { name: 'billing-vms', namespace: 'shop' },
  spec: { metadata: { labels: { app: 'billing' } }, template: { serviceAccount: 'billing', ports: { http: 8080 }, labels: { version: 'v1' } } },
};
const PROBED: GroupLike = { ...GROUP, spec: { ...GROUP.spec, probe: { httpGet: { port: 8080, path: '/ready' } } } };

function node(overrides: Record<string, unknown> = {}, locality?: Record<string, string>) {
  return parseNode({
    id: 'sidecar~10.0.0.7~vm1.shop~shop.svc.cluster.local',
    metadata: toStruct({ NAMESPACE: 'shop', WORKLOAD_GROUP: 'billing-vms', INSTANCE_IPS: '10.0.0.7', NETWORK: 'net1', LABELS: { rack: 'r1' }, ...overrides }) as never,
    ...(locality ? { locality } : {}),
  });
}

const ME = { namespace: 'shop', serviceAccount: 'billing', spiffeId: 'spiffe://cluster.local/ns/shop/sa/billing' };

function setup(group: GroupLike | null = GROUP) {
  const timers = new FakeTimers();
  const changes: RegistryChange[] = [];
  const refused: string[] = [];
  const logs: { event: string; fields: Record<string, unknown> }[] = [];
  const held = new Map<string, WorkloadEntry>();
  let current: GroupLike | undefined = group ?? undefined;
  const reg = new WorkloadAutoRegistry({
    sink: (c) => {
      changes.push(c);
      if (c.type === 'update') {
        for (const k of c.remove.workloads) held.delete(k);
        for (const w of c.upsert.workloads) held.set(`${w.namespace}/${w.name}`, w);
      }
    },
    group: (ns, name) => (current && current.metadata.namespace === ns && current.metadata.name === name ? current : undefined),
    graceMs: 10_000, timers, onRefused: (r) => refused.push(r), log: (_l, event, fields) => logs.push({ event, fields }),
  });
  return { reg, timers, changes, refused, logs, held, setGroup: (g: GroupLike | undefined) => { current = g; } };
}

describe('auto-registration: registry of connected workloads', () => {
  it('starts with an empty snapshot of its shard', () => {
    const { changes } = setup();
    expect(changes[0]).to.include({ type: 'snapshot' });
    expect(changes[0]!.status).to.include({ shard: 'control:autoregistered', kind: 'control', state: 'synced' });
  });

  it('registers a WorkloadEntry from the group template and the announced node', () => {
    const { reg, held } = setup();
    reg.connect('c1', node({}, { region: 'eu', zone: 'eu-1' }), ME);
    const [w] = [...held.values()];
    expect(w).to.deep.include({
      name: 'billing-vms-10.0.0.7-net1', namespace: 'shop', address: '10.0.0.7', serviceAccount: 'billing', network: 'net1',
      locality: 'eu/eu-1/', weight: 1, health: 'HEALTHY', ports: { http: 8080 },
    });
    expect(w!.labels).to.deep.equal({ rack: 'r1', version: 'v1', app: 'billing', [WORKLOAD_GROUP_LABEL]: 'billing-vms' });
    expect(w!.source).to.include({ kind: 'control', shard: 'control:autoregistered' });
    expect(Object.isFrozen(w)).to.equal(true);
  });

  it('ignores streams without WORKLOAD_GROUP', () => {
    const { reg, held, changes } = setup();
    reg.connect('c1', node({ WORKLOAD_GROUP: '' }), ME);
    expect(held.size).to.equal(0);
    expect(changes).to.have.length(1);
  });

  it('removes the entry only after the grace period once the last stream closed', () => {
    const { reg, held, timers } = setup();
    reg.connect('c1', node(), ME);
    reg.disconnect('c1');
    timers.advance(9_999);
    expect(held.size).to.equal(1);
    timers.advance(1);
    expect(held.size).to.equal(0);
  });

  it('keeps the entry untouched when the agent reconnects within the grace period', () => {
    const { reg, held, timers, changes } = setup();
    reg.connect('c1', node(), ME);
    reg.disconnect('c1');
    timers.advance(5_000);
    const before = changes.length;
    reg.connect('c2', node(), ME);
    timers.advance(20_000);
    expect(held.size).to.equal(1);
    expect(changes.length).to.equal(before); // no churn: nothing emitted
  });

  it('keeps the entry while another stream of the same workload is open (certificate rotation)', () => {
    const { reg, held, timers } = setup();
    reg.connect('c1', node(), ME);
    reg.connect('c2', node(), ME);
    reg.disconnect('c1');
    timers.advance(60_000);
    expect(held.size).to.equal(1);
    reg.disconnect('c2');
    timers.advance(10_000);
    expect(held.size).to.equal(0);
  });

  it('refuses an identity that is not the group\'s service account, with a log line and a metric', () => {
    const { reg, held, refused, logs } = setup();
    reg.connect('c1', node(), { namespace: 'shop', serviceAccount: 'intruder', spiffeId: 'spiffe://cluster.local/ns/shop/sa/intruder' });
    expect(held.size).to.equal(0);
    expect(refused).to.deep.equal(['identity-mismatch']);
    const line = logs.find((l) => l.event === 'workload auto-registration refused');
    expect(line?.fields.detail).to.match(/intruder.*is not ns\/shop\/sa\/billing/);
  });

  it('refuses streams without a client certificate (plaintext) and with a bad one', () => {
    const { reg, held, refused } = setup();
    reg.connect('c1', node(), null);
    reg.connect('c2', node(), new Error('client certificate was not issued by this mesh CA'));
    reg.connect('c3', node({ NAMESPACE: 'other' }), { namespace: 'other', serviceAccount: 'billing' });
    expect(held.size).to.equal(0);
    expect(refused).to.deep.equal(['no-client-certificate', 'bad-client-certificate']);
  });

  it('waits for a group that is not in the config yet and registers on refresh', () => {
    const { reg, held, setGroup } = setup(null);
    reg.connect('c1', node(), ME);
    expect(held.size).to.equal(0);
    setGroup(GROUP);
    reg.refresh();
    expect(held.size).to.equal(1);
    reg.refresh();
    expect(held.size).to.equal(1);
  });

  it('with a probe: UNHEALTHY until the agent reports healthy, then follows the reports', () => {
    const { reg, held } = setup(PROBED);
    reg.connect('c1', node(), ME);
    const key = 'shop/billing-vms-10.0.0.7-net1';
    expect(held.get(key)!.health).to.equal('UNHEALTHY');
    reg.health('c1', { healthy: true });
    expect(held.get(key)!.health).to.equal('HEALTHY');
    reg.health('c1', { healthy: false, message: 'HTTP GET: status 503' });
    expect(held.get(key)!.health).to.equal('UNHEALTHY');
    reg.health('c9', { healthy: true }); // unknown stream: ignored
    expect(held.get(key)!.health).to.equal('UNHEALTHY');
  });

  it('re-applies group changes to held entries, keeping the reported health', () => {
    const { reg, held, setGroup } = setup(PROBED);
    reg.connect('c1', node(), ME);
    reg.health('c1', { healthy: true });
    setGroup({ ...PROBED, spec: { ...PROBED.spec, template: { ...PROBED.spec.template, ports: { http: 9090 } } } });
    reg.refresh();
    const [w] = [...held.values()];
    expect(w!.ports).to.deep.equal({ http: 9090 });
    expect(w!.health).to.equal('HEALTHY');
  });

  it('close() cancels grace timers', () => {
    const { reg, held, timers } = setup();
    reg.connect('c1', node(), ME);
    reg.disconnect('c1');
    reg.close();
    expect(timers.pending.size).to.equal(0);
    expect(held.size).to.equal(1);
  });
});

describe('auto-registration: the control plane service', () => {
  it('declares its shard only with the first registration, refuses unauthenticated streams and counts it', async () => {
    const { AutoRegistration } = await import('../src/autoregister/index.js');
    const { Registry } = await import('prom-client');
    const shards: string[] = [];
    const applied: RegistryChange[] = [];
    let fn: (() => void) | undefined;
    const svc = new AutoRegistration({
      aggregate: { addShard: (s: string) => { shards.push(s); }, apply: (_s: string, c: RegistryChange) => { applied.push(c); } },
      snapshots: { current: { snapshot: { config: { workloadGroups: [GROUP] } } } as never, subscribe: (f) => { fn = f as () => void; return () => { fn = undefined; }; } },
      graceMs: 1000,
      log: () => {},
    });
    const metrics = new Registry();
    svc.useMetrics(metrics);
    expect(shards).to.deep.equal([]);
    svc.streams.connected('c1', node(), {} as never); // no CA: every stream is unauthenticated
    svc.streams.health('c1', { healthy: true });
    await new Promise((r) => setImmediate(r));
    expect(svc.registry.entries()).to.have.length(0);
    expect(await metrics.getSingleMetricAsString('trellis_autoregistration_refused_total')).to.contain('reason="no-client-certificate"} 1');
    expect(shards).to.deep.equal([]);
    expect(fn).to.be.a('function');
    svc.close();
    expect(fn).to.equal(undefined);
    expect(applied).to.have.length(0);
  });
});
