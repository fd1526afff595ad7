import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { KubeHttpClient, KubernetesAdapter, TokenReviewer, inClusterConnection, loadKubeconfig } from '@trellis/registry-adapters/kubernetes';
import { FakeKubernetes, ShardView } from '@trellis/testing';

function poll(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = (): void => {
      if (pred()) return resolve();
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

const svc = (name: string, port = 80): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port }] },
});
const slice = (name: string, service: string, endpoints: { ip: string; pod?: string; ready?: boolean; node?: string }[]): Record<string, unknown> => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  endpoints: endpoints.map((e) => ({
    addresses: [e.ip],
    conditions: { ready: e.ready ?? true },
    ...(e.node ? { nodeName: e.node } : {}),
    ...(e.pod ? { targetRef: { kind: 'Pod', namespace: 'default', name: e.pod } } : {}),
  })),
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
});
const pod = (name: string, labels: Record<string, string>, sa = 'default'): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default', labels },
  spec: { serviceAccountName: sa, nodeName: 'n1' },
});

describe('kubernetes adapter against the fake API server', () => {
  let kube: FakeKubernetes;
  let view: ShardView | undefined;
  let dir: string;
  beforeEach(async () => {
    kube = await new FakeKubernetes({ token: 'tkn', bookmarkIntervalMs: 50 }).start();
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-k8s-adapter-'));
  });
  afterEach(async () => {
    await view?.close();
    view = undefined;
    await kube.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const adapter = (): KubernetesAdapter =>
    new KubernetesAdapter({
      clusterId: 'c1',
      network: 'n1',
      connection: { server: kube.url, token: 'tkn' },
      pageSize: 2,
      backoff: { initialMs: 20, maxMs: 100 },
    });

  it('lists (paginated), snapshots, follows watches incl. pods and nodes, goes stale, recovers, and relists on 410', async () => {
    kube.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', labels: { 'topology.kubernetes.io/region': 'r1', 'topology.kubernetes.io/zone': 'z1' } } });
    for (const n of ['a', 'b', 'c']) kube.apply(svc(n));
    kube.apply(pod('a-1', { app: 'a', version: 'v1' }, 'sa-a'));
    kube.apply(slice('a-x', 'a', [{ ip: '10.1.0.1', pod: 'a-1', node: 'n1' }, { ip: '10.1.0.2', ready: false }]));
    const a = adapter();
    expect(a.shard).to.equal('kubernetes:c1');
    view = new ShardView(a);
    await view.until((v) => v.changes.length > 0, 5000, 'snapshot');
    expect(view.changes[0].type).to.equal('snapshot');
    expect(view.services.size).to.equal(3);
    const eps = view.endpointsOf('a.default.svc.cluster.local');
    expect(eps.map((w) => [w.address, w.health, w.serviceAccount, w.locality, w.network, w.labels.version])).to.deep.equal([
      ['10.1.0.1', 'HEALTHY', 'sa-a', 'r1/z1', 'n1', 'v1'],
      ['10.1.0.2', 'UNHEALTHY', '', '', 'n1', undefined],
    ]);
    expect(eps[0].ports).to.deep.equal({ http: 8080 });
    // paginated: limit=2 and a continue token were used for the services list
    expect(kube.requests.some((r) => r.url.startsWith('/api/v1/services?') && r.url.includes('continue='))).to.equal(true);
    expect(kube.requests.some((r) => r.url.includes('allowWatchBookmarks=true'))).to.equal(true);

    // watch: a pod relabel, a node relabel, a new slice, a deleted service
    kube.apply(pod('a-1', { app: 'a', version: 'v2' }, 'sa-a'));
    kube.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', labels: { 'topology.kubernetes.io/region': 'r2', 'topology.kubernetes.io/zone': 'z9' } } });
    kube.apply(slice('b-x', 'b', [{ ip: '10.2.0.1' }]));
    kube.remove('Service', 'c');
    await view.until(
      (v) =>
        v.services.size === 2 &&
        v.endpointsOf('b.default.svc.cluster.local').length === 1 &&
        v.workloads.get('default/a/10.1.0.1')?.labels.version === 'v2' &&
        v.workloads.get('default/a/10.1.0.1')?.locality === 'r2/z9',
      5000,
      'watch convergence',
    );
    expect(view.changes.slice(1).every((c) => c.type !== 'snapshot')).to.equal(true);

    await kube.stop();
    await view.until((v) => v.status?.state === 'stale', 5000, 'stale');
    expect(view.status?.lastError).to.match(/\/api/); // e.g. "watch /api/v1/pods?…: aborted" or ECONNREFUSED
    expect(view.services.size).to.equal(2);
    expect(view.endpointsOf('a.default.svc.cluster.local')).to.have.length(2);

    kube.apply(svc('d'));
    kube.remove('EndpointSlice', 'b-x');
    kube.expireHistory(); // the outage outlived the watch history: the adapter must relist
    const listsBefore = a.lists.services;
    await kube.restart();
    await view.until((v) => v.status?.state === 'synced' && v.services.has('default/d.default.svc.cluster.local') && v.endpointsOf('b.default.svc.cluster.local').length === 0, 5000, 'recovery');
    expect(a.lists.services).to.be.greaterThan(listsBefore);

    // a forced 410 on open watches: relist, and changes made meanwhile converge
    await poll(() => kube.openWatches === 4, 'four open watches');
    const lists = a.lists.endpointslices;
    kube.expireHistory();
    kube.apply(slice('d-x', 'd', [{ ip: '10.4.0.1' }]));
    await view.until((v) => v.endpointsOf('d.default.svc.cluster.local').length === 1 && a.lists.endpointslices > lists, 5000, 'relist after 410');
    expect(view.status?.state).to.equal('synced');
  });

  it('reports a refused credential as stale with the API error, never as an empty snapshot', async () => {
    view = new ShardView(new KubernetesAdapter({ connection: { server: kube.url, token: 'wrong' }, backoff: { initialMs: 20, maxMs: 50 } }));
    await view.until((v) => v.status?.state === 'stale', 5000, 'stale');
    expect(view.status?.lastError).to.match(/HTTP 401/);
    expect(view.changes.every((c) => c.type === 'status')).to.equal(true);
  });

  it('loads kubeconfig files and in-cluster credentials', async () => {
    writeFileSync(path.join(dir, 'ca.crt'), 'CA');
    writeFileSync(path.join(dir, 'token'), 'tkn\n');
    const conn = inClusterConnection(dir, { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' });
    expect(conn).to.deep.include({ server: 'https://10.96.0.1:443', tokenFile: path.join(dir, 'token') });
    expect(() => inClusterConnection(dir, {})).to.throw(/KUBERNETES_SERVICE_HOST/);
    writeFileSync(path.join(dir, 'kc'), kube.kubeconfig());
    const fromFile = loadKubeconfig(path.join(dir, 'kc'));
    expect(fromFile).to.deep.include({ server: kube.url, token: 'tkn', insecureSkipTlsVerify: true });
    expect(() => loadKubeconfig(path.join(dir, 'kc'), 'nope')).to.throw(/context "nope" not found/);
    // a token file is re-read per request
    const client = new KubeHttpClient({ server: kube.url, tokenFile: path.join(dir, 'token') });
    const v = await client.request<{ gitVersion: string }>('GET', '/version');
    expect(v.gitVersion).to.match(/^v1\./);
    client.close();
    view = new ShardView(new KubernetesAdapter({ kubeconfig: path.join(dir, 'kc'), clusterId: 'from-file' }));
    kube.apply(svc('z'));
    await view.until((x) => x.services.size === 1);
  });

  it('TokenReviewer returns the service account of a valid token and refuses others', async () => {
    kube.tokens.set('pod-token', { username: 'system:serviceaccount:shop:cart', audiences: ['trellis'] });
    kube.tokens.set('user-token', { username: 'alice' });
    const client = new KubeHttpClient({ server: kube.url, token: 'tkn' });
    try {
      const reviewer = new TokenReviewer(client, { audiences: ['trellis'] });
      expect(await reviewer.review('pod-token')).to.deep.include({ authenticated: true, namespace: 'shop', serviceAccount: 'cart' });
      expect(await reviewer.review('nope')).to.deep.include({ authenticated: false });
      expect(await reviewer.review('user-token')).to.deep.equal({ authenticated: false, reason: '"alice" is not a service account' });
      expect(await new TokenReviewer(client, { audiences: ['other'] }).review('pod-token')).to.deep.include({ authenticated: false });
      await kube.stop();
      const err = await reviewer.review('pod-token').catch((e: unknown) => e);
      expect((err as { code?: string }).code).to.equal('TRELLIS_ERR_TOKEN_REVIEW_UNAVAILABLE');
    } finally {
      client.close();
    }
  });
});
