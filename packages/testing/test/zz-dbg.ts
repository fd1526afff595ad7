import * as k8s from '@kubernetes/client-node';
import { writeFileSync } from 'node:fs';
import { FakeKubernetes } from '@trellis/testing';
const fake = await new FakeKubernetes().start();
writeFileSync('/tmp/k8sdbg/kc', fake.kubeconfig());
const kc = new k8s.KubeConfig(); kc.loadFromFile('/tmp/k8sdbg/kc');
const core = kc.makeApiClient(k8s.CoreV1Api);
try { const l = await core.listServiceForAllNamespaces(); console.log('list ok', l.items.length); } catch (e) { console.log('ERR', e); }
const informer = k8s.makeInformer(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
informer.on('error', (e) => console.log('informer error', e));
await informer.start().catch((e) => console.log('start err', e));
await new Promise((r) => setTimeout(r, 500));
console.log(fake.requests);
await informer.stop(); await fake.close();
