import { expect } from 'chai';
import { IstioConfigSource } from '@trellis/registry-adapters/kubernetes';
import { FakeKubernetes, ShardView } from '@trellis/testing';
import type { RegistryChange, Resource } from '@trellis/model';
import { resourceKey } from '@trellis/model';

/** Config resources currently in force, from a view's change log. */
function configs(changes: readonly RegistryChange[]): Map<string, Resource> {
  const m = new Map<string, Resource>();
  for (const c of changes) {
    if (c.type === 'snapshot') {
      m.clear();
      for (const r of c.configs) m.set(resourceKey(r), r);
    } else if (c.type === 'update') {
      for (const k of c.remove.configs) m.delete(k);
      for (const r of c.upsert.configs) m.set(resourceKey(r), r);
    }
  }
  return m;
}

const vs = (name: string, host: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name, namespace: 'default' },
  spec: { hosts: [host], http: [{ route: [{ destination: { host } }] }], ...extra },
});

describe('Istio CRDs as a config source (IstioConfigSource against the fake API server)', () => {
  let kube: FakeKubernetes;
  let view: ShardView | undefined;
  afterEach(async () => {
    await view?.close();
    view = undefined;
    await kube.close();
  });

  it('decodes CRDs like files: ServiceEntry → hub, others → configs; invalid objects are problems and keep the last good version', async () => {
    kube = await new FakeKubernetes().start();
    kube.apply(vs('reviews', 'reviews.default.svc.cluster.local'));
    kube.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'ext', namespace: 'default' },
      spec: { hosts: ['api.example.com'], ports: [{ number: 443, name: 'https', protocol: 'HTTPS' }], resolution: 'DNS', location: 'MESH_EXTERNAL' },
    });
    const source = new IstioConfigSource({ connection: { server: kube.url }, clusterId: 'c1', backoff: { initialMs: 20, maxMs: 50 } });
    expect(source.shard).to.equal('kubernetes:c1/istio');
    view = new ShardView(source);
    await view.until((v) => v.changes.length > 0);
    expect(view.changes[0].type).to.equal('snapshot');
    expect([...configs(view.changes).keys()]).to.deep.equal(['VirtualService/default/reviews']);
    expect([...view.services.keys()]).to.deep.equal(['default/api.example.com']);
    expect(view.services.get('default/api.example.com')?.source).to.deep.include({ kind: 'kubernetes', shard: 'kubernetes:c1/istio' });

    // an invalid edit: reported, the previous version stays in force
    kube.apply(vs('reviews', 'reviews.default.svc.cluster.local', { bogusField: 1 }));
    await view.until((v) => (v.status?.problems.length ?? 0) > 0, 5000, 'problem');
    expect(view.status!.problems[0]).to.deep.include({ file: 'VirtualService/default/reviews' });
    expect(configs(view.changes).get('VirtualService/default/reviews')).to.not.equal(undefined);

    kube.apply({
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: 'default' },
      spec: { mtls: { mode: 'STRICT' } },
    });
    kube.remove('VirtualService', 'reviews');
    await view.until((v) => {
      const c = configs(v.changes);
      return c.has('PeerAuthentication/default/default') && !c.has('VirtualService/default/reviews') && v.status?.problems.length === 0;
    }, 5000, 'convergence');

    kube.expireHistory(); // relist after 410 keeps the same content
    kube.apply(vs('ratings', 'ratings.default.svc.cluster.local'));
    await view.until((v) => configs(v.changes).has('VirtualService/default/ratings'), 5000, 'after 410');
    expect(configs(view.changes).size).to.equal(2);
  });

  it('a cluster without Istio CRDs is an empty, synced source', async () => {
    kube = await new FakeKubernetes({ istioCrds: false }).start();
    view = new ShardView(new IstioConfigSource({ connection: { server: kube.url } }));
    await view.until((v) => v.changes.length > 0);
    expect(view.changes[0]).to.deep.include({ type: 'snapshot', configs: [] });
    expect(view.status?.state).to.equal('synced');
  });
});
