import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { toStruct, TYPE_URL } from '@trellis/api';
import { AdsTestClient, type AdsResponse } from '@trellis/testing';
import { DEFAULT_MESH_SETTINGS } from '../src/config/mesh-settings.js';
import { buildSnapshot } from '../src/snapshot/build.js';
import { mergeShards } from '../src/aggregate/merge.js';
import type { Generator, Snapshot } from '../src/snapshot/types.js';
import { AdsServer } from '../src/xds/ads-server.js';
import { parseNode } from '../src/xds/node.js';
import { svc, wl } from './aggregate-fixtures.js';

describe('xDS node parsing', () => {
  it('reads Istio\'s id form and metadata', () => {
    const n = parseNode({
      id: 'sidecar~10.0.0.9~reviews-v1.bookinfo~bookinfo.svc.cluster.local',
      metadata: toStruct({ LABELS: { app: 'reviews', version: 'v1' }, SERVICE_ACCOUNT: 'bookinfo-reviews', CLUSTER_ID: 'vm-1', NETWORK: 'n1', INSTANCE_IPS: '10.0.0.9,10.0.1.9' }),
      locality: { region: 'eu', zone: 'eu-1', sub_zone: '' },
    });
    expect(n).to.deep.include({ type: 'sidecar', namespace: 'bookinfo', workloadName: 'reviews-v1', serviceAccount: 'bookinfo-reviews', clusterId: 'vm-1', network: 'n1', locality: 'eu/eu-1/' });
    expect(n.ipAddresses).to.deep.equal(['10.0.0.9', '10.0.1.9']);
    expect(n.labels).to.deep.equal({ app: 'reviews', version: 'v1' });
  });

  it('recognises routers and proxyless gRPC clients', () => {
    expect(parseNode({ id: 'router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local' }).type).to.equal('router');
    expect(parseNode({ id: 'sidecar~10.0.0.1~c.ns~ns.svc.cluster.local', metadata: toStruct({ GENERATOR: 'grpc' }) }).type).to.equal('proxyless');
    expect(parseNode({ id: 'proxyless~10.0.0.1~c.ns~ns.svc.cluster.local' }).type).to.equal('proxyless');
    expect(parseNode({ id: 'plain-id', user_agent_name: 'gRPC Node Pure JS' }).type).to.equal('proxyless');
    const n = parseNode({ id: 'plain-id', metadata: toStruct({ NAMESPACE: 'x', WORKLOAD_NAME: 'w' }) });
    expect(n).to.deep.include({ type: 'sidecar', namespace: 'x', workloadName: 'w' });
  });
});

function snapshotOf(version: string, endpoints: string[], port = 80): Snapshot {
  const s = svc('api.test', 'f', 'file', { ports: [{ number: port, protocol: 'HTTP', name: 'http' }] });
  const ws = endpoints.map((a, i) => wl(`w${i}`, a, 'f', 'file', { services: ['api.test'] }));
  const merged = mergeShards([{ shard: 'f', kind: 'file', services: new Map([['k', s]]), workloads: new Map(ws.map((w) => [w.name, w])) }], ['file']);
  return buildSnapshot({ view: { ...merged, shards: [], configs: [] }, mesh: DEFAULT_MESH_SETTINGS, vips: new Map(), version });
}

const baseGenerators: Readonly<Record<string, Generator>> = {
  [TYPE_URL.cluster]: (snap) => snap.services.flatMap((m) => m.service.ports.map((p) => ({
    name: `outbound|${p.number}||${m.service.hostname}`,
    body: { name: `outbound|${p.number}||${m.service.hostname}`, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } },
  }))),
  [TYPE_URL.endpoint]: (snap) => snap.services.flatMap((m) => m.service.ports.map((p) => ({
    name: `outbound|${p.number}||${m.service.hostname}`,
    body: {
      cluster_name: `outbound|${p.number}||${m.service.hostname}`,
      endpoints: [{ lb_endpoints: m.endpoints.map((e) => ({ endpoint: { address: { socket_address: { address: e.address, port_value: 8080 } } } })) }],
    },
  }))),
  [TYPE_URL.listener]: (_snap, proxy) => [{ name: `${proxy.type}-listener`, body: { name: `${proxy.type}-listener` } }],
};

describe('ADS server', () => {
  let server: grpc.Server;
  let ads: AdsServer;
  let current: Snapshot | undefined;
  let address: string;
  let gens: Record<string, Generator>;
  const clients: AdsTestClient[] = [];

  beforeEach(async () => {
    current = snapshotOf('v1', ['10.0.0.1']);
    gens = { ...baseGenerators };
    ads = new AdsServer({ generators: gens, snapshots: { current: () => current }, identifier: 'test' });
    server = new grpc.Server();
    ads.addTo(server);
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    address = `127.0.0.1:${port}`;
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    ads.close();
    await new Promise<void>((res) => server.tryShutdown(() => res()));
  });

  function client(id: string, reject?: (r: AdsResponse) => string | undefined): AdsTestClient {
    const c = new AdsTestClient({ address, nodeId: id, reject });
    clients.push(c);
    return c;
  }

  const wait = async (pred: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(pred()).to.equal(true);
  };

  it('serves wildcard CDS and named EDS, and reports SYNCED after the ACKs', async () => {
    const c = client('sidecar~10.0.0.5~a.default~default.svc.cluster.local');
    c.subscribe(TYPE_URL.cluster);
    const cds = await c.next((r) => r.type === TYPE_URL.cluster, 0);
    expect(cds.names).to.deep.equal(['outbound|80||api.test']);
    c.subscribe(TYPE_URL.endpoint, ['outbound|80||api.test', 'outbound|81||missing']);
    const eds = await c.next((r) => r.type === TYPE_URL.endpoint, 0);
    expect(eds.names).to.deep.equal(['outbound|80||api.test']);
    await wait(() => ads.syncStatus()[0]?.types.filter((t) => t.state === 'SYNCED').length === 2);
    const st = ads.syncStatus()[0];
    expect(st.proxy).to.equal('sidecar~10.0.0.5~a.default~default.svc.cluster.local');
    expect(Object.fromEntries(st.types.map((t) => [t.short, t.state]))).to.deep.equal({ CDS: 'SYNCED', EDS: 'SYNCED', LDS: 'NOT SENT', RDS: 'NOT SENT' });
    expect(st.types.find((t) => t.short === 'EDS')!.subscribed).to.deep.equal(['outbound|80||api.test', 'outbound|81||missing']);
  });

  it('pushes EDS only on an endpoint-only change, and nothing when nothing changed', async () => {
    const c = client('sidecar~10.0.0.5~a.default~default.svc.cluster.local');
    c.subscribe(TYPE_URL.cluster);
    c.subscribe(TYPE_URL.endpoint, ['outbound|80||api.test']);
    c.subscribe(TYPE_URL.listener);
    await wait(() => ads.syncStatus()[0]?.types.filter((t) => t.state === 'SYNCED').length === 3);
    const before = c.responses.length;
    current = snapshotOf('v2', ['10.0.0.1', '10.0.0.2']);
    ads.onSnapshot();
    const eds = await c.next((r) => r.type === TYPE_URL.endpoint, before);
    const lbs = ((eds.resources[0].endpoints as { lb_endpoints: unknown[] }[])[0]).lb_endpoints;
    expect(lbs).to.have.length(2);
    current = snapshotOf('v3', ['10.0.0.1', '10.0.0.2']);
    ads.onSnapshot();
    await new Promise((r) => setTimeout(r, 100));
    expect(c.responses.slice(before).map((r) => r.type)).to.deep.equal([TYPE_URL.endpoint]);
  });

  it('regenerates only the changed services on an endpoint-only step and sends only the changed EDS resources', async () => {
    const two = (version: string, a: string[], b: string[]): Snapshot => {
      const sa = svc('a.test', 'f', 'file');
      const sb = svc('b.test', 'f', 'file');
      const ws = [...a.map((x, i) => wl(`a${i}`, x, 'f', 'file', { services: ['a.test'] })), ...b.map((x, i) => wl(`b${i}`, x, 'f', 'file', { services: ['b.test'] }))];
      const merged = mergeShards([{ shard: 'f', kind: 'file', services: new Map([['a', sa], ['b', sb]]), workloads: new Map(ws.map((w) => [w.name, w])) }], ['file']);
      return buildSnapshot({ view: { ...merged, shards: [], configs: [] }, mesh: DEFAULT_MESH_SETTINGS, vips: new Map(), version });
    };
    const seen: number[] = [];
    gens[TYPE_URL.endpoint] = (snap, p) => { seen.push(snap.services.length); return baseGenerators[TYPE_URL.endpoint](snap, p); };
    current = two('t1', ['10.0.0.1'], ['10.0.1.1']);
    const c = client('sidecar~10.0.0.9~a.default~default.svc.cluster.local');
    c.subscribe(TYPE_URL.cluster);
    c.subscribe(TYPE_URL.endpoint, ['outbound|80||a.test', 'outbound|80||b.test']);
    await wait(() => ads.syncStatus()[0]?.types.filter((t) => t.state === 'SYNCED').length === 2);
    ads.onSnapshot(); // records the snapshot the connection was generated from
    await new Promise((r) => setTimeout(r, 50));
    const before = c.responses.length;
    seen.length = 0;
    current = two('t2', ['10.0.0.1', '10.0.0.2'], ['10.0.1.1']);
    ads.onSnapshot();
    const eds = await c.next((r) => r.type === TYPE_URL.endpoint, before);
    expect(seen).to.deep.equal([1, 1]);
    const byName = Object.fromEntries(eds.resources.map((r) => [r.cluster_name, ((r.endpoints as { lb_endpoints: unknown[] }[])[0]).lb_endpoints.length]));
    expect(byName).to.deep.equal({ 'outbound|80||a.test': 2 });
    // The version names the whole set: what a full generation gives.
    await wait(() => ads.syncStatus()[0]?.types.find((t) => t.short === 'EDS')?.state === 'SYNCED');
    expect(ads.syncStatus()[0].types.find((t) => t.short === 'EDS')!.resources).to.equal(2);
    const fresh = client('sidecar~10.0.0.8~b.default~default.svc.cluster.local');
    fresh.subscribe(TYPE_URL.endpoint, ['outbound|80||a.test', 'outbound|80||b.test']);
    const full = await fresh.next((r) => r.type === TYPE_URL.endpoint, 0);
    expect(full.resources).to.have.length(2);
    expect(full.version).to.equal(eds.version);
  });

  it('records a NACK per proxy and type, keeps it, and does not re-push the same version', async () => {
    const c = client('sidecar~10.0.0.6~b.default~default.svc.cluster.local', (r) => (r.type === TYPE_URL.cluster && r.resources.some((x) => x.lb_policy === 'MAGLEV') ? 'unsupported lb_policy: MAGLEV' : undefined));
    c.subscribe(TYPE_URL.cluster);
    await wait(() => ads.syncStatus()[0]?.types.find((t) => t.short === 'CDS')?.state === 'SYNCED');
    const goodVersion = ads.syncStatus()[0].types.find((t) => t.short === 'CDS')!.ackedVersion;
    gens[TYPE_URL.cluster] = (snap, p) => baseGenerators[TYPE_URL.cluster](snap, p).map((r) => ({ name: r.name, body: { ...r.body, lb_policy: 'MAGLEV' } }));
    {
      current = snapshotOf('v2', ['10.0.0.1'], 81);
      ads.onSnapshot();
      await wait(() => ads.syncStatus()[0]?.types.find((t) => t.short === 'CDS')?.state === 'NACKED');
      const cds = ads.syncStatus()[0].types.find((t) => t.short === 'CDS')!;
      expect(cds.nack!.message).to.equal('unsupported lb_policy: MAGLEV');
      expect(cds.ackedVersion).to.equal(goodVersion);
      expect(cds.sentVersion).not.to.equal(goodVersion);
      const n = c.responses.length;
      current = snapshotOf('v3', ['10.0.0.1'], 81);
      ads.onSnapshot();
      await new Promise((r) => setTimeout(r, 100));
      expect(c.responses.length).to.equal(n);
      // A content change is pushed again.
      gens[TYPE_URL.cluster] = baseGenerators[TYPE_URL.cluster];
      current = snapshotOf('v4', ['10.0.0.1'], 82);
      ads.onSnapshot();
      await wait(() => ads.syncStatus()[0]?.types.find((t) => t.short === 'CDS')?.state === 'SYNCED');
    }
  });

  it('serves a dump of what a connected proxy gets', async () => {
    const c = client('proxyless~10.0.0.7~g.default~default.svc.cluster.local');
    c.subscribe(TYPE_URL.listener, ['proxyless-listener']);
    await c.next((r) => r.type === TYPE_URL.listener, 0);
    const dump = ads.configDump('proxyless~10.0.0.7~g.default~default.svc.cluster.local')!;
    expect(dump.types.LDS.map((r) => r.name)).to.deep.equal(['proxyless-listener']);
    expect(dump.types.CDS.map((r) => r.name)).to.deep.equal(['outbound|80||api.test']);
    expect(ads.configDump('nope')).to.equal(undefined);
  });
});
