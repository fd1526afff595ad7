import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import {
  convertKubernetesService,
  kubePortProtocol,
  type KubeEndpointSlice,
  type KubeNode,
  type KubePod,
  type KubeService,
} from '@trellis/registry-adapters/kubernetes';

const fx = JSON.parse(readFileSync(new URL('./fixtures/kubernetes-objects.json', import.meta.url), 'utf8')) as {
  service: KubeService;
  slices: KubeEndpointSlice[];
  pods: KubePod[];
  nodes: KubeNode[];
};
const lookup = {
  pod: (ns: string, name: string) => fx.pods.find((p) => p.metadata.namespace === ns && p.metadata.name === name),
  node: (name: string) => fx.nodes.find((n) => n.metadata.name === name),
};
const opts = { shard: 'kubernetes:c1', network: 'net-1' };

describe('kubernetes convert', () => {
  it('maps a Service to a ServiceEntry: hostname, cluster IPs, ports with appProtocol/name prefix/UDP, targetPort, exportTo', () => {
    const { service, problems } = convertKubernetesService(fx.service, fx.slices, lookup, opts);
    expect(problems).to.deep.equal([]);
    expect(service).to.deep.include({
      hostname: 'reviews.bookinfo.svc.cluster.local',
      namespace: 'bookinfo',
      addresses: ['10.96.12.34'],
      resolution: 'STATIC',
      location: 'MESH_INTERNAL',
      exportTo: ['.', 'istio-system'],
      labels: { app: 'reviews', service: 'reviews' },
    });
    expect(service.ports).to.deep.equal([
      { number: 9080, protocol: 'HTTP', name: 'http' },
      { number: 15090, protocol: 'HTTP', name: 'metrics' },
      { number: 7070, protocol: 'GRPC', name: 'grpc-api', targetPort: 17070 },
      { number: 53, protocol: 'UDP', name: 'dns' },
    ]);
    expect(service.source).to.deep.equal({ kind: 'kubernetes', shard: 'kubernetes:c1', ref: 'Service/bookinfo/reviews' });
  });

  it('maps EndpointSlice endpoints to WorkloadEntries with Pod labels/service account and Node locality; ready → health', () => {
    const { workloads } = convertKubernetesService(fx.service, fx.slices, lookup, opts);
    expect(workloads.map((w) => [w.name, w.address, w.health, w.serviceAccount, w.locality, w.network])).to.deep.equal([
      ['reviews/10.244.1.5', '10.244.1.5', 'HEALTHY', 'bookinfo-reviews', 'eu-west-1/eu-west-1a', 'net-1'],
      // terminating but still serving → DRAINING; default service account; node without topology labels → the slice zone
      ['reviews/10.244.2.9', '10.244.2.9', 'DRAINING', 'default', '/zone-b', 'net-2'],
      // a Pod not (yet) known: no labels, no service account
      ['reviews/10.244.3.3', '10.244.3.3', 'UNHEALTHY', '', '', 'net-1'],
      // no targetRef, no conditions (nil ready means ready)
      ['reviews/192.168.9.9', '192.168.9.9', 'HEALTHY', '', '', 'net-1'],
    ]);
    expect(workloads[0].ports).to.deep.equal({ http: 9080, metrics: 15090, 'grpc-api': 17070, dns: 53 });
    expect(workloads[0].labels).to.deep.equal({ app: 'reviews', version: 'v1', 'pod-template-hash': '7d9c8' });
    expect(workloads[0].services).to.deep.equal(['reviews.bookinfo.svc.cluster.local']);
    expect(workloads[0].source.ref).to.equal('Pod/bookinfo/reviews-v1-7d9c8');
    expect(workloads[3].source.ref).to.equal('EndpointSlice/bookinfo/reviews-abc12');
    expect(Object.isFrozen(workloads[0].ports)).to.equal(true);
  });

  it('names an unnamed single port after its protocol and maps the slice port onto it; custom domain', () => {
    const svc: KubeService = { metadata: { name: 'db', namespace: 'ns' }, spec: { clusterIP: 'None', ports: [{ port: 5432, appProtocol: 'tcp' }] } };
    const slice: KubeEndpointSlice = {
      metadata: { name: 'db-1', namespace: 'ns', labels: { 'kubernetes.io/service-name': 'db' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.7'], conditions: { ready: true } }],
      ports: [{ name: '', port: 5432, protocol: 'TCP' }],
    };
    const r = convertKubernetesService(svc, [slice], lookup, { shard: 's', domain: 'corp.local' });
    expect(r.service.hostname).to.equal('db.ns.svc.corp.local');
    expect(r.service.addresses).to.deep.equal([]);
    expect(r.service.ports).to.deep.equal([{ number: 5432, protocol: 'TCP', name: 'tcp' }]);
    expect(r.workloads[0].ports).to.deep.equal({ tcp: 5432 });
  });

  it('ExternalName services resolve by DNS to the external name', () => {
    const svc: KubeService = { metadata: { name: 'ext', namespace: 'ns' }, spec: { type: 'ExternalName', externalName: 'api.example.com', ports: [{ name: 'https', port: 443 }] } };
    const r = convertKubernetesService(svc, [], lookup, { shard: 's' });
    expect(r.service).to.deep.include({ resolution: 'DNS', location: 'MESH_EXTERNAL' });
    expect(r.workloads.map((w) => [w.address, w.ports])).to.deep.equal([['api.example.com', { https: 443 }]]);
  });

  const protocols: [object, string][] = [
    [{ name: 'http2-x' }, 'HTTP2'],
    [{ name: 'grpc-web' }, 'GRPC_WEB'],
    [{ name: 'tcp' }, 'TCP'],
    [{ name: 'redis' }, 'REDIS'],
    [{ name: 'foo' }, 'TCP'],
    [{ name: 'foo', appProtocol: 'kubernetes.io/h2c' }, 'HTTP2'],
    [{ name: 'http', appProtocol: 'grpc' }, 'GRPC'],
    [{ name: 'http', protocol: 'UDP' }, 'UDP'],
  ];
  for (const [port, protocol] of protocols) {
    it(`port protocol ${JSON.stringify(port)} → ${protocol}`, () => {
      expect(kubePortProtocol(port)).to.equal(protocol);
    });
  }
});
