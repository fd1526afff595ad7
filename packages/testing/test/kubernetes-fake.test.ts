import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import * as k8s from '@kubernetes/client-node';
import { FakeKubernetes } from '@trellis/testing';

const run = promisify(execFile);

function until(pred: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
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

const service = (name: string, port: number, labels: Record<string, string> = {}): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default', labels },
  spec: { ports: [{ name: 'http', port }] },
});

describe('fake Kubernetes API server', () => {
  let fake: FakeKubernetes;
  let dir: string;
  beforeEach(async () => {
    fake = await new FakeKubernetes({ bookmarkIntervalMs: 100 }).start();
    dir = mkdtempSync(path.join(tmpdir(), 'trellis-kube-'));
    writeFileSync(path.join(dir, 'kubeconfig'), fake.kubeconfig());
  });
  afterEach(async () => {
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('@kubernetes/client-node makeInformer sees add/update/delete and recovers after a forced 410', async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(path.join(dir, 'kubeconfig'));
    const core = kc.makeApiClient(k8s.CoreV1Api);
    fake.apply(service('a', 80));
    const informer = k8s.makeInformer(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
    const events: string[] = [];
    informer.on('add', (o) => events.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => events.push(`update ${o.metadata?.name} ${o.spec?.ports?.[0]?.port}`));
    informer.on('delete', (o) => events.push(`delete ${o.metadata?.name}`));
    await informer.start();
    try {
      await until(() => events.includes('add a'), 'initial list');
      fake.apply(service('b', 81));
      fake.apply(service('a', 8080));
      fake.remove('Service', 'b');
      await until(() => events.includes('delete b') && events.includes('update a 8080'), 'watch events');
      expect(events).to.deep.equal(['add a', 'add b', 'update a 8080', 'delete b']);
      const lists = () => fake.requests.filter((r) => r.url.startsWith('/api/v1/services') && !r.url.includes('watch')).length;
      const before = lists();
      // History lost: the open watch gets ERROR 410; the informer re-lists and sees a change made meanwhile.
      fake.expireHistory();
      fake.apply(service('c', 82));
      await until(() => events.includes('add c') && lists() > before, 'relist after 410');
      expect(informer.list().map((o) => o.metadata?.name).sort()).to.deep.equal(['a', 'c']);
    } finally {
      await informer.stop();
    }
  });

  it('kubectl get services -A -o json and kubectl apply -f (create, then configure via PATCH), also of an Istio CRD', async () => {
    fake.apply(service('web', 80, { app: 'web' }));
    const env = { ...process.env, KUBECONFIG: path.join(dir, 'kubeconfig'), HOME: dir };
    const got = JSON.parse((await run('/usr/bin/kubectl', ['get', 'services', '-A', '-o', 'json'], { env })).stdout) as { items: { metadata: { name: string; labels: object } }[] };
    expect(got.items.map((i) => i.metadata.name)).to.deep.equal(['web']);
    expect(got.items[0].metadata.labels).to.deep.equal({ app: 'web' });
    const file = path.join(dir, 'svc.yaml');
    const yaml = (port: number): string =>
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: default\nspec:\n  ports:\n  - name: grpc\n    port: ${port}\n`;
    writeFileSync(file, yaml(9090));
    // The fake serves no OpenAPI documents, so client-side validation is turned off.
    expect((await run('/usr/bin/kubectl', ['apply', '--validate=false', '-f', file], { env })).stdout).to.match(/service\/api created/);
    writeFileSync(file, yaml(9091));
    expect((await run('/usr/bin/kubectl', ['apply', '--validate=false', '-f', file], { env })).stdout).to.match(/service\/api configured/);
    const api = fake.get('Service', 'api') as unknown as { spec: { ports: { port: number }[] }; metadata: { annotations: Record<string, string> } };
    expect(api.spec.ports[0].port).to.equal(9091);
    expect(api.metadata.annotations).to.have.property('kubectl.kubernetes.io/last-applied-configuration');
    expect(fake.requests.some((r) => r.method === 'PATCH')).to.equal(true);

    // an Istio CRD: kubectl finds it through discovery and applies it (merge patch on the second apply)
    const vs = path.join(dir, 'vs.yaml');
    const vsYaml = (weight: number): string =>
      `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: ${weight}\n`;
    writeFileSync(vs, vsYaml(100));
    expect((await run('/usr/bin/kubectl', ['apply', '--validate=false', '-f', vs], { env })).stdout).to.match(/virtualservice.networking.istio.io\/reviews created/);
    writeFileSync(vs, vsYaml(90));
    expect((await run('/usr/bin/kubectl', ['apply', '--validate=false', '-f', vs], { env })).stdout).to.match(/configured/);
    const listed = JSON.parse((await run('/usr/bin/kubectl', ['get', 'virtualservices', '-o', 'json'], { env })).stdout) as { items: { spec: { http: { route: { weight: number }[] }[] } }[] };
    expect(listed.items[0].spec.http[0].route[0].weight).to.equal(90);
  });

  it('paginates lists with limit/continue, expires continue tokens with 410, streams bookmarks, and answers TokenReview', async () => {
    for (let i = 0; i < 5; i++) fake.apply(service(`s${i}`, 80 + i));
    const page1 = (await (await fetch(`${fake.url}/api/v1/services?limit=2`)).json()) as { items: unknown[]; metadata: { continue: string; resourceVersion: string } };
    expect(page1.items).to.have.length(2);
    const page2 = (await (await fetch(`${fake.url}/api/v1/services?limit=2&continue=${page1.metadata.continue}`)).json()) as { items: { metadata: { name: string } }[]; metadata: { continue: string } };
    expect(page2.items.map((i) => i.metadata.name)).to.deep.equal(['s2', 's3']);
    fake.apply(service('s9', 99));
    fake.expireHistory(); // compacted past the list's version: its continue token is expired
    expect((await fetch(`${fake.url}/api/v1/services?limit=2&continue=${page2.metadata.continue}`)).status).to.equal(410);

    const ctl = new AbortController();
    const res = await fetch(`${fake.url}/api/v1/services?watch=1&allowWatchBookmarks=true&resourceVersion=${fake.resourceVersion}`, { signal: ctl.signal });
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    expect(JSON.parse(new TextDecoder().decode(value).split('\n')[0])).to.deep.include({ type: 'BOOKMARK' });
    ctl.abort();
    const old = await (await fetch(`${fake.url}/api/v1/services?watch=1&resourceVersion=1`)).text();
    expect(JSON.parse(old)).to.deep.include({ type: 'ERROR' });
    expect(JSON.parse(old).object.code).to.equal(410);

    fake.tokens.set('good', { username: 'system:serviceaccount:shop:cart' });
    const review = async (token: string) =>
      (await (
        await fetch(`${fake.url}/apis/authentication.k8s.io/v1/tokenreviews`, {
          method: 'POST',
          body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } }),
        })
      ).json()) as { status: { authenticated: boolean; user?: { username: string } } };
    expect((await review('good')).status).to.deep.include({ authenticated: true });
    expect((await review('good')).status.user?.username).to.equal('system:serviceaccount:shop:cart');
    expect((await review('bad')).status.authenticated).to.equal(false);
  });
});
