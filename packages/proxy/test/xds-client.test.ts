import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { EXT_TYPE_URL, TYPE_URL } from '@trellis/api';
import { FakeAdsServer, FakeSdsServer, issueTestCert, makeTestCa } from '@trellis/testing';
import { ConfigStore } from '../src/config/store.js';
import { createAdsClient, createSdsClient } from '../src/xds/clients.js';
import { nodeIdentity } from '../src/xds/node.js';
import { silentLogger } from '../src/log.js';
import { Backoff } from '../src/xds/backoff.js';

const node = nodeIdentity({ mode: 'sidecar', ip: '10.0.0.7', workloadName: 'reviews-v1', namespace: 'default', serviceAccount: 'reviews', labels: { app: 'reviews' }, clusterId: 'c1', network: 'n1' });
const hcmListener = (name: string, rds: string) => ({
  name, address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
  filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': EXT_TYPE_URL.httpConnectionManager, stat_prefix: 's', rds: { route_config_name: rds, config_source: { ads: {} } } } }] }],
});
const edsCluster = (name: string) => ({ name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } });
const cla = (name: string, port: number) => ({ cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] });
const routeConfig = (name: string, cluster: string) => ({ name, virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }] });

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('proxy: ADS and SDS clients', () => {
  let ads: FakeAdsServer;
  let ac: AbortController;
  beforeEach(async () => { ads = await new FakeAdsServer().start(); ac = new AbortController(); });
  afterEach(async () => { ac.abort(); await ads.stop(); });

  it('subscribes LDS/CDS wildcard, then RDS/EDS by name, ACKs, and becomes complete', async () => {
    ads.set(TYPE_URL.listener, [hcmListener('l1', 'http.80')]);
    ads.set(TYPE_URL.cluster, [edsCluster('c1')]);
    ads.set(TYPE_URL.route, [routeConfig('http.80', 'c1'), routeConfig('other', 'c1')]);
    ads.set(TYPE_URL.endpoint, [cla('c1', 8080)]);
    const store = new ConfigStore();
    const client = createAdsClient({ target: ads.address, credentials: grpc.credentials.createInsecure(), node, store, logger: silentLogger() });
    client.start(ac.signal);
    await until(() => store.missing().length === 0);
    expect([...store.routes().keys()]).to.deep.equal(['http.80']);
    expect(store.endpoints().get('c1')!.localities[0].endpoints[0].address.port).to.equal(8080);
    const first = ads.requests[0];
    expect(first.nodeId).to.equal('sidecar~10.0.0.7~reviews-v1.default~default.svc.cluster.local');
    expect(first.nodeMetadata).to.deep.include({ NAMESPACE: 'default', WORKLOAD_NAME: 'reviews-v1', SERVICE_ACCOUNT: 'reviews', CLUSTER_ID: 'c1', NETWORK: 'n1', LABELS: { app: 'reviews' } });
    await ads.waitFor((r) => r.typeUrl === TYPE_URL.route && r.versionInfo === '1' && r.resourceNames.join() === 'http.80');
    expect(ads.requests.every((r) => r.errorDetail === null)).to.equal(true);
  });

  it('NACKs an invalid resource naming the field and keeps the last good value', async () => {
    ads.set(TYPE_URL.listener, [hcmListener('l1', 'http.80')]);
    ads.set(TYPE_URL.cluster, [edsCluster('c1')]);
    const store = new ConfigStore();
    const client = createAdsClient({ target: ads.address, credentials: grpc.credentials.createInsecure(), node, store, logger: silentLogger() });
    client.start(ac.signal);
    await until(() => store.listeners().has('l1'));
    const bad = hcmListener('l1', 'x');
    (bad.filter_chains[0].filters[0].typed_config as Record<string, unknown>).rds = { config_source: { ads: {} } };
    ads.set(TYPE_URL.listener, [bad]);
    const nack = await ads.waitFor((r) => r.typeUrl === TYPE_URL.listener && r.errorDetail !== null);
    expect(nack.errorDetail!.message).to.contain('filter_chains[0].filters[0].typed_config.rds.route_config_name: required');
    expect(nack.versionInfo).to.equal('1');
    expect(store.listeners().get('l1')!.filterChains[0].terminal).to.deep.include({ rds: 'http.80' });
    expect(store.get('listener').version).to.equal('1');
  });

  it('keeps its config when the control plane goes away and re-subscribes after reconnecting', async () => {
    ads.set(TYPE_URL.listener, [hcmListener('l1', 'http.80')]);
    ads.set(TYPE_URL.cluster, []);
    const store = new ConfigStore();
    const client = createAdsClient({ target: ads.address, credentials: grpc.credentials.createInsecure(), node, store, logger: silentLogger() });
    (client as unknown as { backoff: Backoff }).backoff = new Backoff(10, 50);
    client.start(ac.signal);
    await until(() => store.listeners().has('l1'));
    const before = ads.requests.length;
    ads.disconnectAll();
    await until(() => ads.requests.length > before && ads.connections === 1);
    expect(store.listeners().has('l1')).to.equal(true);
    const resub = ads.requests.slice(before).find((r) => r.typeUrl === TYPE_URL.listener)!;
    expect(resub.versionInfo).to.equal('1');
    expect(resub.nodeId).to.contain('sidecar~');
    expect(client.counters.reconnects).to.be.greaterThan(0);
  });

  it('SDS over a Unix socket delivers default and ROOTCA, and pushes a rotation', async () => {
    const sds = await new FakeSdsServer().start();
    try {
      const ca = makeTestCa();
      sds.setCertificate('default', issueTestCert(ca, 'spiffe://cluster.local/ns/default/sa/reviews'));
      sds.setTrustBundle('ROOTCA', ca.certPem);
      const store = new ConfigStore();
      createSdsClient({ socketPath: sds.socketPath, node, store, logger: silentLogger() }).start(ac.signal);
      await until(() => store.secrets().size === 2);
      const v1 = store.secrets().get('default');
      sds.setCertificate('default', issueTestCert(ca, 'spiffe://cluster.local/ns/default/sa/reviews'));
      await until(() => store.secrets().get('default') !== v1);
      expect(store.secrets().get('default')!.kind).to.equal('tls_certificate');
      expect(store.secrets().has('ROOTCA')).to.equal(true);
    } finally {
      ac.abort();
      await sds.stop();
    }
  });
});
