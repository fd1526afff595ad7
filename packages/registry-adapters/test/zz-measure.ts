import { ConsulAdapter } from '@trellis/registry-adapters/consul';
import { EurekaAdapter } from '@trellis/registry-adapters/eureka';
import { KubernetesAdapter } from '@trellis/registry-adapters/kubernetes';
import { FakeConsul, FakeEureka, FakeKubernetes, ShardView } from '@trellis/testing';
const S = Number(process.env.S ?? 5000), I = 10;
async function measure(name: string, view: ShardView, change: () => void, check: (v: ShardView) => boolean) {
  const t0 = performance.now();
  await view.until((v) => v.changes.length > 0 && v.workloads.size === S * I, 600_000);
  const t1 = performance.now();
  change();
  await view.until(check, 60_000);
  const t2 = performance.now();
  console.log(`${name} ${S}x${I}: first full sync ${(t1 - t0).toFixed(0)} ms; one change ${(t2 - t1).toFixed(0)} ms; rss ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB (fake in the same process)`);
  await view.close();
}
const which = process.argv[2];
if (which === 'kube') {
  const kube = await new FakeKubernetes({ bookmarkIntervalMs: 60_000 }).start();
  for (let s = 0; s < S; s++) {
    kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: `s${s}`, namespace: 'default' }, spec: { ports: [{ name: 'http', port: 80 }] } });
    kube.apply({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `s${s}-x`, namespace: 'default', labels: { 'kubernetes.io/service-name': `s${s}` } }, addressType: 'IPv4', endpoints: Array.from({ length: I }, (_, i) => ({ addresses: [`10.${s >> 8}.${s & 255}.${i}`], conditions: { ready: true } })), ports: [{ name: 'http', port: 8080 }] });
  }
  await measure('kubernetes', new ShardView(new KubernetesAdapter({ connection: { server: kube.url } })), () => kube.apply({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's1-x', namespace: 'default', labels: { 'kubernetes.io/service-name': 's1' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.99.0.1'] }], ports: [{ name: 'http', port: 8080 }] }), (v) => v.workloads.has('default/s1/10.99.0.1'));
  await kube.close();
} else if (which === 'eureka') {
  const e = await new FakeEureka().start();
  for (let s = 0; s < S; s++) for (let i = 0; i < I; i++) e.register({ app: `app${s}`, instanceId: `a${s}-${i}`, ipAddr: `10.${s >> 8}.${s & 255}.${i}`, port: 8080 });
  e.expireDeltas();
  await measure('eureka', new ShardView(new EurekaAdapter({ serviceUrls: [e.serviceUrl], deltaIntervalMs: 1000 })), () => e.register({ app: 'app1', instanceId: 'new', ipAddr: '10.99.0.1', port: 8080 }), (v) => v.workloads.has('default/new'));
  await e.close();
} else {
  const c = await new FakeConsul().start();
  for (let s = 0; s < S; s++) for (let i = 0; i < I; i++) c.register({ node: `n${s}-${i}`, nodeAddress: `10.${s >> 8}.${s & 255}.${i}`, service: `s${s}`, port: 8080 });
  await measure('consul', new ShardView(new ConsulAdapter({ address: c.url })), () => c.register({ node: 'new', nodeAddress: '10.99.0.1', service: 's1', port: 8080 }), (v) => v.workloads.has('default/new/s1'));
  await c.close();
}
process.exit(0);
