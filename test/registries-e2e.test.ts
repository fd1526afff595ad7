/**
 * Done-when for issue 8: Consul, Eureka, Kubernetes and the file directory merged into one mesh.
 *
 * `trellis-control` runs as a child process; its registries are declared as `Registry` resources in its config
 * directory (credentials from an environment variable). One instance in the fake Consul, one in the fake Eureka, an
 * EndpointSlice in the fake Kubernetes and a WorkloadEntry file — all for `shop.default.svc.cluster.local` — must be
 * four endpoints of one ClusterLoadAssignment served to an ADS client; the protocol Eureka disagrees on is a live
 * conflict (`/debug/conflicts`, `trellisctl analyze --control`). Then each registry goes down (its endpoints keep
 * serving, its shard is stale with the error), changes while down, comes back, and the mesh converges — Kubernetes
 * through a forced 410 relist. A pod's service-account token gets a certificate through TokenReview.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { expect } from 'chai';
import { TYPE_URL } from '@trellis/api';
import { buildCsr, generateKey, isRefusal, requestCertificate } from '@trellis/node-agent';
import { AdsTestClient, FakeConsul, FakeEureka, FakeKubernetes, type AdsResponse } from '@trellis/testing';
import { eventually, runCtl, startControl, type ControlProcess } from './processes.js';

const HOST = 'shop.default.svc.cluster.local';
const CLUSTER = `outbound|8080||${HOST}`;
const CONSUL_TOKEN = 'consul-acl-secret-7f3a';
const KUBE_TOKEN = 'kube-admin-token';
const SA_JWT = 'eyJhbGciOiJSUzI1NiJ9.pod-shop-token.sig';

function registries(opts: { consul: string; eureka: string; kubeconfig: string; withEureka?: boolean }): string {
  const docs = [
    `apiVersion: trellis.dev/v1alpha1
kind: Registry
metadata: { name: consul }
spec:
  type: consul
  address: ${opts.consul}
  credentials: { tokenEnv: E2E_CONSUL_TOKEN }
  hostnameTemplate: "{service}.default.svc.cluster.local"
  datacenters: [dc1]
  priority: 6
`,
    `apiVersion: trellis.dev/v1alpha1
kind: Registry
metadata: { name: kube }
spec:
  type: kubernetes
  kubeconfig: ${opts.kubeconfig}
  clusterId: c1
  priority: 5
`,
  ];
  if (opts.withEureka !== false) {
    docs.push(`apiVersion: trellis.dev/v1alpha1
kind: Registry
metadata: { name: eureka }
spec:
  type: eureka
  address: ${opts.eureka}
  hostnameTemplate: "{app}.default.svc.cluster.local"
  deltaInterval: 300ms
  priority: 7
`);
  }
  return docs.join('---\n');
}

/** The file registry's part: a ServiceEntry that selects a WorkloadEntry by label (the file ranks first: 1 < 5). */
const SHOP_FILE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: shop, namespace: default }
spec:
  hosts: [${HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: shop-vm } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: shop-vm-1, namespace: default }
spec:
  address: 10.0.0.4
  labels: { app: shop-vm }
`;

function slice(addresses: string[]): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'shop-x1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'shop' } },
    addressType: 'IPv4', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
  };
}

interface Shard { shard: string; state: string; lastError?: string; counts: { services: number; workloads: number } }

describe('registries end to end: Consul + Eureka + Kubernetes + files → one service over xDS', function () {
  this.timeout(120_000);
  const consul = new FakeConsul({ token: CONSUL_TOKEN, maxWaitMs: 2000 });
  const eureka = new FakeEureka();
  const kube = new FakeKubernetes({ token: KUBE_TOKEN, bookmarkIntervalMs: 500 });
  let dir: string;
  let cfg: string;
  let control: ControlProcess;
  let ads: AdsTestClient;
  let http: string;
  let kubeconfig: string;

  const addresses = (r: AdsResponse): string[] => {
    const cla = r.resources.find((c) => c.cluster_name === CLUSTER) as { endpoints?: { lb_endpoints?: { endpoint?: { address?: { socket_address?: { address?: string } } } }[] }[] } | undefined;
    return (cla?.endpoints ?? []).flatMap((l) => l.lb_endpoints ?? []).map((e) => e.endpoint?.address?.socket_address?.address ?? '?').sort();
  };
  const latestEndpoints = (): string[] | undefined => {
    const r = [...ads.responses].reverse().find((x) => x.type === TYPE_URL.endpoint && x.resources.some((c) => c.cluster_name === CLUSTER));
    return r ? addresses(r) : undefined;
  };
  const endpointsEqual = (want: string[]) => eventually(`endpoints ${want.join(',')} (have ${latestEndpoints()?.join(',')})`, () => JSON.stringify(latestEndpoints()) === JSON.stringify([...want].sort()), 30_000);
  const shards = async (): Promise<Shard[]> => (await (await fetch(`${http}/debug/registryz`)).json() as { shards: Shard[] }).shards;
  const shard = async (id: string): Promise<Shard | undefined> => (await shards()).find((s) => s.shard === id);
  const stateIs = (id: string, state: string) => eventually(`${id} ${state}`, async () => ((await shard(id))?.state === state ? shard(id) : undefined), 30_000);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-reg-e2e-'));
    cfg = join(dir, 'config');
    await Promise.all([consul.start(), eureka.start(), kube.start()]);
    kubeconfig = join(dir, 'kubeconfig.yaml');
    writeFileSync(kubeconfig, kube.kubeconfig());
    kube.tokens.set(SA_JWT, { username: 'system:serviceaccount:default:shop' });

    consul.register({ node: 'node-a', service: 'shop', id: 'shop-1', address: '10.0.0.1', port: 8080, meta: { protocol: 'http' } });
    eureka.register({ app: 'SHOP', instanceId: 'shop-eu-1', ipAddr: '10.0.0.2', port: 8080, metadata: { protocol: 'grpc' } });
    kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'shop', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }] } });
    kube.apply(slice(['10.0.0.3']));

    mkdirSync(cfg);
    writeFileSync(join(cfg, 'shop.yaml'), SHOP_FILE);
    writeFileSync(join(cfg, 'registries.yaml'), registries({ consul: consul.url, eureka: eureka.serviceUrl, kubeconfig }));

    control = await startControl([
      '--config-dir', cfg, '--state-dir', join(dir, 'state'), '--listen-xds', '127.0.0.1:0', '--listen-xds-plaintext', '127.0.0.1:0',
      '--listen-http', '127.0.0.1:0', '--debounce-after', '50ms', '--debounce-max', '300ms',
    ], ['xds', 'xds-plaintext', 'http'], { ...process.env, E2E_CONSUL_TOKEN: CONSUL_TOKEN });
    http = `http://${control.addresses.http}`;
    ads = new AdsTestClient({ address: control.addresses['xds-plaintext'], nodeId: 'sidecar~10.9.9.9~client-1.default~default.svc.cluster.local' });
    ads.onResponse = (r) => {
      if (r.type === TYPE_URL.cluster && r.names.includes(CLUSTER)) ads.subscribe(TYPE_URL.endpoint, [CLUSTER]);
    };
    ads.subscribe(TYPE_URL.cluster);
  });

  after(async () => {
    ads?.close();
    await control?.stop();
    await Promise.all([consul.close(), eureka.close(), kube.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the four registries\' instances as four endpoints of one service', async () => {
    await endpointsEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    const ids = (await shards()).map((s) => `${s.shard}=${s.state}`);
    expect(ids).to.include.members(['consul:dc1=synced', 'eureka:eureka=synced', 'kubernetes:c1=synced', 'kubernetes:c1/istio=synced', `file:${cfg}=synced`]);
  });

  it('never logs the registry credentials', () => {
    expect(control.lines.join('\n')).not.to.contain(CONSUL_TOKEN);
    expect(control.lines.join('\n')).not.to.contain(KUBE_TOKEN);
  });

  it('reports the conflicting protocol in /debug/conflicts and trellisctl analyze --control', async () => {
    const { conflicts } = await (await fetch(`${http}/debug/conflicts`)).json() as { conflicts: { hostname: string; field: string; winner: string; values: { shard: string; value: unknown }[] }[] };
    const proto = conflicts.find((c) => c.hostname === HOST && c.field === 'protocol');
    expect(proto, JSON.stringify(conflicts)).to.not.equal(undefined);
    expect(proto!.winner).to.equal(`file:${cfg}`);
    expect(proto!.values.find((v) => v.shard === 'eureka:eureka')?.value).to.deep.equal({ 8080: 'GRPC' });

    const r = await runCtl(['analyze', '--control', http]);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(new RegExp(`warning TRELLIS_A0200 live:default/${HOST.replace(/\./g, '\\.')} protocol: .*eureka:eureka=\\{"8080":"GRPC"\\}`));
    const j = await runCtl(['analyze', '--control', http, '--output', 'json', cfg]);
    const findings = JSON.parse(j.stdout) as { code: string; level: string }[];
    expect(findings.filter((f) => f.code === 'TRELLIS_A0200').every((f) => f.level === 'warning')).to.equal(true);
  });

  it('Consul down: endpoints keep serving, shard stale with the error; back with changes: converges', async () => {
    await consul.stop();
    const st = await stateIs('consul:dc1', 'stale');
    expect(st.lastError).to.be.a('string').and.not.equal('');
    const status = await runCtl(['registry', 'status', '--control', http]);
    expect(status.stdout).to.match(/consul:dc1\s+consul\s+stale since \S+\s+1\s+1/);
    expect(latestEndpoints()).to.include('10.0.0.1');
    consul.register({ node: 'node-b', service: 'shop', id: 'shop-2', address: '10.0.0.5', port: 8080, meta: { protocol: 'http' } });
    await consul.restart();
    await endpointsEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5']);
    await stateIs('consul:dc1', 'synced');
  });

  it('Eureka down: endpoints keep serving, shard stale; back with changes: converges', async () => {
    await eureka.stop();
    const st = await stateIs('eureka:eureka', 'stale');
    expect(st.lastError).to.be.a('string').and.not.equal('');
    expect(latestEndpoints()).to.include('10.0.0.2');
    eureka.deregister('SHOP', 'shop-eu-1');
    eureka.register({ app: 'SHOP', instanceId: 'shop-eu-2', ipAddr: '10.0.0.6', port: 8080, metadata: { protocol: 'grpc' } });
    await eureka.restart();
    await endpointsEqual(['10.0.0.1', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    await stateIs('eureka:eureka', 'synced');
  });

  it('Kubernetes down: endpoints keep serving, shard stale; back after a forced 410: relists and converges', async () => {
    await kube.stop();
    const st = await stateIs('kubernetes:c1', 'stale');
    expect(st.lastError).to.be.a('string').and.not.equal('');
    expect(latestEndpoints()).to.include('10.0.0.3');
    kube.apply(slice(['10.0.0.3', '10.0.0.7']));
    kube.expireHistory();
    const mark = kube.requests.length;
    await kube.restart();
    await endpointsEqual(['10.0.0.1', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.7']);
    // The watch from the old resourceVersion got 410 Gone: the slices were listed again, not just re-watched.
    const after = kube.requests.slice(mark).map((r) => r.url);
    expect(after.some((u) => u.startsWith('/apis/discovery.k8s.io/v1/endpointslices') && !u.includes('watch=')), after.join('\n')).to.equal(true);
    await stateIs('kubernetes:c1', 'synced');
  });

  it('gives a pod a certificate for its service-account token (TokenReview)', async () => {
    const root = readFileSync(join(dir, 'state', 'ca', 'root-cert.pem'), 'utf8');
    const spiffe = 'spiffe://cluster.local/ns/default/sa/shop';
    const chain = await requestCertificate({ address: control.addresses.xds, rootCertsPem: root }, {
      csrPem: buildCsr(await generateKey(), spiffe), validitySeconds: 600, credential: { kind: 'token', token: SA_JWT },
    });
    expect(new X509Certificate(chain[0]).subjectAltName).to.contain(`URI:${spiffe}`);
    let refused: unknown;
    try {
      await requestCertificate({ address: control.addresses.xds, rootCertsPem: root }, {
        csrPem: buildCsr(await generateKey(), spiffe), validitySeconds: 600, credential: { kind: 'token', token: 'not-a-valid-token' },
      });
    } catch (err) {
      refused = err;
    }
    expect(isRefusal(refused), String(refused)).to.equal(true);
  });

  it('removing a Registry resource stops its adapter and drops its shard', async () => {
    writeFileSync(join(cfg, 'registries.yaml'), registries({ consul: consul.url, eureka: eureka.serviceUrl, kubeconfig, withEureka: false }));
    await eventually('eureka shard dropped', async () => !(await shards()).some((s) => s.shard === 'eureka:eureka'), 30_000);
    await endpointsEqual(['10.0.0.1', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.7']);
  });
});
