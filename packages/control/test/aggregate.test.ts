import { expect } from 'chai';
import type { Resource } from '@trellis/model';
import { Aggregate } from '../src/aggregate/aggregate.js';
import { mergeShards } from '../src/aggregate/merge.js';
import { resolveMeshSettings, DEFAULT_MESH_SETTINGS } from '../src/config/mesh-settings.js';
import { buildSnapshot } from '../src/snapshot/build.js';
import { snapshotChange, status, svc, wl } from './aggregate-fixtures.js';

const PRIORITY = ['kubernetes', 'file', 'consul', 'eureka'] as const;

function cfg(kind: string, name: string, shard: string, spec: unknown = {}): Resource {
  return Object.freeze({ apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace: 'default', labels: {}, annotations: {} }, spec, origin: { kind: 'file', shard } }) as Resource;
}

describe('aggregate', () => {
  it('unions endpoints across shards and reports field conflicts resolved by registry priority', () => {
    const agg = new Aggregate({ onChange: () => {} });
    agg.addShard('consul:dc1', 'consul');
    agg.addShard('file:/cfg', 'file');
    agg.apply('consul:dc1', snapshotChange('consul:dc1', 'consul',
      [svc('api.example.com', 'consul:dc1', 'consul', { ports: [{ number: 8080, protocol: 'HTTP', name: 'http' }], resolution: 'STATIC' })],
      [wl('c1', '10.0.0.2', 'consul:dc1', 'consul', { services: ['api.example.com'] })]));
    agg.apply('file:/cfg', snapshotChange('file:/cfg', 'file',
      [svc('api.example.com', 'file:/cfg', 'file', { ports: [{ number: 80, protocol: 'GRPC', name: 'http' }], resolution: 'STATIC' })],
      [wl('f1', '10.0.0.1', 'file:/cfg', 'file', { services: ['api.example.com'] })]));
    const v = agg.view(PRIORITY);
    expect(v.services).to.have.length(1);
    expect(v.services[0].service.source.shard).to.equal('file:/cfg');
    expect(v.services[0].endpoints.map((e) => e.address)).to.deep.equal(['10.0.0.1', '10.0.0.2']);
    expect(v.services[0].shards).to.deep.equal(['file:/cfg', 'consul:dc1']);
    expect(v.conflicts.map((c) => c.field)).to.deep.equal(['ports', 'protocol']);
    expect(v.conflicts[0]).to.deep.equal({
      hostname: 'api.example.com', namespace: 'default', field: 'ports', winner: 'file:/cfg',
      values: [{ shard: 'file:/cfg', value: [80] }, { shard: 'consul:dc1', value: [8080] }],
    });
    // A different priority flips the winner.
    const v2 = agg.view(['consul', 'file']);
    expect(v2.services[0].service.source.shard).to.equal('consul:dc1');
    expect(v2.conflicts[0].winner).to.equal('consul:dc1');
  });

  it('keeps a stale shard\'s content and records the error and since when', async () => {
    let changes = 0;
    const agg = new Aggregate({ onChange: () => changes++, now: () => new Date('2026-01-01T00:00:00Z') });
    const adapter = {
      shard: 'consul:dc1', kind: 'consul' as const,
      async *watch() {
        yield snapshotChange('consul:dc1', 'consul', [svc('a.example.com', 'consul:dc1', 'consul')]);
        yield { type: 'status' as const, status: status('consul:dc1', 'consul', 'stale', { lastError: 'connect ECONNREFUSED' }) };
        throw new Error('stream broke');
      },
    };
    await agg.run(adapter, new AbortController().signal);
    const v = agg.view(PRIORITY);
    expect(v.services.map((s) => s.service.hostname)).to.deep.equal(['a.example.com']);
    expect(v.shards[0].status.state).to.equal('stale');
    expect(v.shards[0].status.lastError).to.equal('stream broke');
    expect(v.shards[0].status.staleSince).to.equal('2026-01-01T00:00:00.000Z');
    expect(v.shards[0].status.lastChange).to.be.a('string');
    expect(changes).to.equal(3);
  });

  it('applies incremental updates and waits for every shard before it is complete', () => {
    const agg = new Aggregate({ onChange: () => {} });
    agg.addShard('a', 'file');
    agg.addShard('b', 'consul');
    agg.apply('a', snapshotChange('a', 'file', [svc('x.test', 'a', 'file'), svc('y.test', 'a', 'file')]));
    expect(agg.allReceived()).to.equal(false);
    expect(agg.pending()).to.deep.equal(['b']);
    agg.apply('a', { type: 'update', upsert: { services: [svc('z.test', 'a', 'file')], workloads: [], configs: [] }, remove: { services: ['default/x.test'], workloads: [], configs: [] }, status: status('a', 'file') });
    agg.apply('b', snapshotChange('b', 'consul', []));
    expect(agg.allReceived()).to.equal(true);
    expect(agg.view(PRIORITY).services.map((s) => s.service.hostname)).to.deep.equal(['y.test', 'z.test']);
  });

  it('takes a duplicate config resource from the higher-priority shard', () => {
    const agg = new Aggregate({ onChange: () => {} });
    agg.addShard('k', 'kubernetes');
    agg.addShard('f', 'file');
    agg.apply('f', { ...snapshotChange('f', 'file', []), configs: [cfg('VirtualService', 'vs', 'f', { from: 'file' })] } as never);
    agg.apply('k', { ...snapshotChange('k', 'kubernetes', []), configs: [cfg('VirtualService', 'vs', 'k', { from: 'k8s' })] } as never);
    expect(agg.view(PRIORITY).configs.map((c) => (c.spec as { from: string }).from)).to.deep.equal(['k8s']);
  });
});

describe('snapshot build', () => {
  it('selects WorkloadEntries by workloadSelector in the service namespace, assigns VIPs, indexes config, freezes', () => {
    const services = [
      svc('sel.test', 'f', 'file', { workloadSelector: { app: 'web' } }),
      svc('fixed.test', 'f', 'file', { addresses: ['10.9.9.9'] }),
    ];
    const workloads = [
      wl('w1', '10.0.0.1', 'f', 'file', { labels: { app: 'web', v: '1' } }),
      wl('w2', '10.0.0.2', 'f', 'file', { labels: { app: 'web' }, namespace: 'other' }),
      wl('w3', '10.0.0.3', 'f', 'file', { labels: { app: 'db' } }),
    ];
    const merged = mergeShards([{ shard: 'f', kind: 'file', services: new Map(services.map((s) => [s.hostname, s])), workloads: new Map(workloads.map((w) => [w.name, w])) }], PRIORITY);
    const view = { ...merged, shards: [], configs: [cfg('DestinationRule', 'b', 'f'), cfg('VirtualService', 'z', 'f'), cfg('VirtualService', 'a', 'f'), cfg('MeshConfig', 'm', 'f')] };
    const snap = buildSnapshot({ view, mesh: DEFAULT_MESH_SETTINGS, vips: new Map([['sel.test', '240.240.1.2']]), version: 'v1' });
    const sel = snap.services.find((s) => s.service.hostname === 'sel.test')!;
    expect(sel.endpoints.map((e) => e.name)).to.deep.equal(['w1']);
    expect(sel.vip).to.equal('240.240.1.2');
    expect(snap.services.find((s) => s.service.hostname === 'fixed.test')!.vip).to.equal('10.9.9.9');
    expect(snap.workloads.map((w) => w.name)).to.deep.equal(['w2', 'w3']);
    expect(snap.config.virtualServices.map((c) => c.metadata.name)).to.deep.equal(['a', 'z']);
    expect(snap.config.destinationRules).to.have.length(1);
    expect(Object.isFrozen(snap.services[0])).to.equal(true);
    expect(Object.isFrozen(snap.config.virtualServices)).to.equal(true);
  });
});

describe('mesh settings precedence', () => {
  it('defaults < flags < --mesh-config file < MeshConfig resources (namespace/name order)', () => {
    const m = resolveMeshSettings(
      { trustDomain: 'flag.td', clusterId: 'flag-cluster', network: 'flag-net' },
      { metadata: { namespace: 'default', name: 'file' }, spec: { trustDomain: 'file.td', vipRange: '10.10.0.0/16' } },
      [
        { metadata: { namespace: 'default', name: 'b' }, spec: { clusterId: 'res-b' } },
        { metadata: { namespace: 'default', name: 'a' }, spec: { clusterId: 'res-a', outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' }, registryPriority: ['consul'] } },
      ],
    );
    expect(m.trustDomain).to.equal('file.td');
    expect(m.clusterId).to.equal('res-b');
    expect(m.network).to.equal('flag-net');
    expect(m.vipRange).to.equal('10.10.0.0/16');
    expect(m.outboundTrafficPolicy).to.equal('REGISTRY_ONLY');
    expect(m.registryPriority).to.deep.equal(['consul', 'kubernetes', 'file', 'eureka', 'control']);
    expect(m.domainSuffix).to.equal('cluster.local');
  });

  it('does not let a MeshConfig\'s decoder-filled defaults override flags', () => {
    const m = resolveMeshSettings({ trustDomain: 'flag.td' }, undefined, [
      { metadata: { namespace: 'default', name: 'a' }, spec: { trustDomain: 'cluster.local', defaultNamespace: 'default', outboundTrafficPolicy: { mode: 'ALLOW_ANY' }, registryPriority: ['kubernetes', 'file', 'consul', 'eureka'], vipRange: '240.240.0.0/16', clusterId: 'c1' } },
    ]);
    expect(m.trustDomain).to.equal('flag.td');
    expect(m.clusterId).to.equal('c1');
  });
});
