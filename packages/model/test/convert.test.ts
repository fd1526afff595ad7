import { expect } from 'chai';
import {
  convertServiceEntry,
  convertToHub,
  convertWorkloadEntry,
  decodeResource,
  isKind,
  type ServiceEntryInput,
  type ServiceEntry,
  type Source,
  type WorkloadEntry,
  type WorkloadEntryInput,
} from '@trellis/model';

const origin = { kind: 'file', shard: 'file:/etc/trellis', ref: '/etc/trellis/se.yaml#0' } as const;
const source: Source = { kind: 'file', shard: 'file:/etc/trellis', ref: '/etc/trellis/se.yaml#0' };

function se(name: string, spec: ServiceEntryInput['spec'], namespace = 'default', labels: Record<string, string> = {}): ServiceEntryInput {
  return { kind: 'ServiceEntry', metadata: { name, namespace, labels }, spec, origin };
}

function hubService(over: Partial<ServiceEntry> & { hostname: string }): ServiceEntry {
  return {
    namespace: 'default',
    addresses: [],
    ports: [],
    resolution: 'NONE',
    location: 'MESH_EXTERNAL',
    subjectAltNames: [],
    exportTo: [],
    labels: {},
    aliases: [],
    source,
    ...over,
  };
}

function hubWorkload(over: Partial<WorkloadEntry> & { name: string; address: string }): WorkloadEntry {
  return {
    namespace: 'default',
    ports: {},
    labels: {},
    serviceAccount: '',
    locality: '',
    network: '',
    weight: 1,
    health: 'HEALTHY',
    services: [],
    source,
    ...over,
  };
}

interface Row {
  readonly title: string;
  readonly input: ServiceEntryInput;
  readonly services: readonly ServiceEntry[];
  readonly workloads: readonly WorkloadEntry[];
}

// The ServiceEntry variants of DS-12 and the cross-cluster entries of DS-37/38, as the decoders produce them.
const rows: readonly Row[] = [
  {
    title: 'DS-12 STATIC with an inline endpoint 2.2.2.2',
    input: se('some-service', {
      hosts: ['some.domain.com'],
      ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
      resolution: 'STATIC',
      endpoints: [{ address: '2.2.2.2' }],
    }),
    services: [hubService({ hostname: 'some.domain.com', resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }] })],
    workloads: [hubWorkload({ name: 'some-service-0', address: '2.2.2.2', ports: { http: 80 }, services: ['some.domain.com'] })],
  },
  {
    title: 'DS-12 DNS to baz.com, MESH_EXTERNAL',
    input: se('external-svc-dns', {
      hosts: ['foo.bar.com'],
      location: 'MESH_EXTERNAL',
      ports: [{ number: 443, name: 'https', protocol: 'HTTPS' }],
      resolution: 'DNS',
      endpoints: [{ address: 'baz.com' }],
    }),
    services: [hubService({ hostname: 'foo.bar.com', resolution: 'DNS', ports: [{ number: 443, name: 'https', protocol: 'HTTPS' }] })],
    workloads: [hubWorkload({ name: 'external-svc-dns-0', address: 'baz.com', ports: { https: 443 }, services: ['foo.bar.com'] })],
  },
  {
    title: 'DS-12 VIP 1.2.3.4:975 for my-tcp-service.internal, no endpoints',
    input: se('tcp-vip', {
      hosts: ['my-tcp-service.internal'],
      addresses: ['1.2.3.4'],
      ports: [{ number: 975, name: 'tcp', protocol: 'TCP' }],
      location: 'MESH_INTERNAL',
      resolution: 'NONE',
    }),
    services: [hubService({
      hostname: 'my-tcp-service.internal',
      addresses: ['1.2.3.4'],
      location: 'MESH_INTERNAL',
      ports: [{ number: 975, name: 'tcp', protocol: 'TCP' }],
    })],
    workloads: [],
  },
  {
    title: 'DS-37 httpbin.remote.global: MESH_INTERNAL, DNS, VIP, endpoint on 15443 with named port override',
    input: se('httpbin-remote', {
      hosts: ['httpbin.remote.global'],
      location: 'MESH_INTERNAL',
      ports: [{ number: 8000, name: 'http1', protocol: 'HTTP' }],
      resolution: 'DNS',
      addresses: ['127.255.0.2'],
      endpoints: [{ address: '1.2.3.4', ports: { http1: 15443 } }],
    }, 'bar'),
    services: [hubService({
      hostname: 'httpbin.remote.global',
      namespace: 'bar',
      location: 'MESH_INTERNAL',
      resolution: 'DNS',
      addresses: ['127.255.0.2'],
      ports: [{ number: 8000, name: 'http1', protocol: 'HTTP' }],
    })],
    workloads: [hubWorkload({ name: 'httpbin-remote-0', namespace: 'bar', address: '1.2.3.4', ports: { http1: 15443 }, services: ['httpbin.remote.global'] })],
  },
  {
    title: 'several hosts: one hub service per host; endpoints attached to all of them; endpoint fields kept',
    input: se('multi', {
      hosts: ['a.example.com', 'b.example.com'],
      ports: [{ number: 8000, name: 'http', protocol: 'HTTP', targetPort: 80 }, { number: 9000, name: 'grpc-x', protocol: 'GRPC' }],
      resolution: 'STATIC',
      subjectAltNames: ['spiffe://cluster.local/ns/default/sa/multi'],
      exportTo: ['.'],
      endpoints: [
        { address: '10.0.0.1', labels: { version: 'v1' }, network: 'n1', locality: 'r/z/s', weight: 3, serviceAccount: 'multi' },
        { address: '10.0.0.2', weight: 0 },
      ],
    }, 'default', { team: 'a' }),
    services: ['a.example.com', 'b.example.com'].map((hostname) => hubService({
      hostname,
      resolution: 'STATIC',
      ports: [{ number: 8000, name: 'http', protocol: 'HTTP', targetPort: 80 }, { number: 9000, name: 'grpc-x', protocol: 'GRPC' }],
      subjectAltNames: ['spiffe://cluster.local/ns/default/sa/multi'],
      exportTo: ['.'],
      labels: { team: 'a' },
    })),
    workloads: [
      hubWorkload({
        name: 'multi-0', address: '10.0.0.1', ports: { http: 80, 'grpc-x': 9000 }, labels: { version: 'v1' }, network: 'n1',
        locality: 'r/z/s', weight: 3, serviceAccount: 'multi', services: ['a.example.com', 'b.example.com'],
      }),
      hubWorkload({ name: 'multi-1', address: '10.0.0.2', ports: { http: 80, 'grpc-x': 9000 }, services: ['a.example.com', 'b.example.com'] }),
    ],
  },
  {
    title: 'workloadSelector is carried; unknown protocol falls back to TCP',
    input: se('selected', {
      hosts: ['details.bookinfo.svc.cluster.local'],
      ports: [{ number: 9080, name: 'foo', protocol: 'weird' }],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      workloadSelector: { labels: { app: 'details' } },
    }, 'bookinfo'),
    services: [hubService({
      hostname: 'details.bookinfo.svc.cluster.local',
      namespace: 'bookinfo',
      ports: [{ number: 9080, name: 'foo', protocol: 'TCP' }],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      workloadSelector: { app: 'details' },
    })],
    workloads: [],
  },
];

describe('convert: user ServiceEntry → hub', () => {
  for (const row of rows) {
    it(row.title, () => {
      const out = convertServiceEntry(row.input);
      expect(out.services).to.deep.equal(row.services);
      expect(out.workloads).to.deep.equal(row.workloads);
    });
  }

  it('returns deeply frozen values', () => {
    const out = convertServiceEntry(rows[4].input);
    expect(Object.isFrozen(out.services)).to.equal(true);
    expect(Object.isFrozen(out.services[0])).to.equal(true);
    expect(Object.isFrozen(out.services[0].ports[0])).to.equal(true);
    expect(Object.isFrozen(out.workloads[0].ports)).to.equal(true);
    expect(Object.isFrozen(out.workloads[0].services)).to.equal(true);
  });

  it('uses the fallback source when the resource has no origin', () => {
    const input: ServiceEntryInput = { kind: 'ServiceEntry', metadata: { name: 'x', namespace: 'ns' }, spec: { hosts: ['x.example.com'] } };
    const out = convertServiceEntry(input, { kind: 'kubernetes', shard: 'kubernetes:c1' });
    expect(out.services[0].source).to.deep.equal({ kind: 'kubernetes', shard: 'kubernetes:c1' });
  });
});

describe('convert: WorkloadEntry resource → hub', () => {
  const rowsWe: readonly { title: string; input: WorkloadEntryInput; expected: WorkloadEntry }[] = [
    {
      title: 'a VM workload with defaults',
      input: { kind: 'WorkloadEntry', metadata: { name: 'details-vm', namespace: 'bookinfo' }, spec: { address: '10.1.0.5' }, origin },
      expected: hubWorkload({ name: 'details-vm', namespace: 'bookinfo', address: '10.1.0.5' }),
    },
    {
      title: 'all fields, metadata labels merged over spec labels',
      input: {
        kind: 'WorkloadEntry',
        metadata: { name: 'reviews-v2-vm', namespace: 'default', labels: { tier: 'meta' } },
        spec: {
          address: '10.1.0.6', ports: { http: 9080 }, labels: { app: 'reviews', version: 'v2', tier: 'spec' }, network: 'vm-net',
          locality: 'us/east/1', weight: 5, serviceAccount: 'bookinfo-reviews',
        },
        origin,
      },
      expected: hubWorkload({
        name: 'reviews-v2-vm', address: '10.1.0.6', ports: { http: 9080 }, labels: { app: 'reviews', version: 'v2', tier: 'meta' },
        network: 'vm-net', locality: 'us/east/1', weight: 5, serviceAccount: 'bookinfo-reviews',
      }),
    },
  ];
  for (const row of rowsWe) {
    it(row.title, () => {
      const out = convertWorkloadEntry(row.input);
      expect(out).to.deep.equal(row.expected);
      expect(Object.isFrozen(out)).to.equal(true);
    });
  }

  it('convertToHub converts both kinds in order and skips the others', () => {
    const out = convertToHub([
      rows[0].input,
      { kind: 'VirtualService' },
      rowsWe[0].input,
    ]);
    expect(out.services.map((s) => s.hostname)).to.deep.equal(['some.domain.com']);
    expect(out.workloads.map((w) => w.name)).to.deep.equal(['some-service-0', 'details-vm']);
  });
});

describe('convert: decoded resources (decodeResource → hub)', () => {
  it('a decoded ServiceEntry and WorkloadEntry convert as they are (typed, no casts)', () => {
    const se = decodeResource({
      apiVersion: 'networking.istio.io/v1beta1',
      kind: 'ServiceEntry',
      metadata: { name: 'httpbin', namespace: 'bar' },
      spec: {
        hosts: ['httpbin.bar.global'],
        location: 'MESH_INTERNAL',
        ports: [{ number: 8000, name: 'http1', protocol: 'http' }, { number: 9000, name: 'grpc-api' }],
        resolution: 'DNS',
        addresses: ['127.255.0.2'],
        endpoints: [{ address: '1.2.3.4', ports: { http1: 15443 } }],
      },
    }, { origin: { kind: 'file', shard: 'file:/x', ref: '/x/a.yaml#0', file: '/x/a.yaml', document: 0, line: 1 } });
    const we = decodeResource({
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name: 'vm1' },
      spec: { address: '10.0.0.1', labels: { app: 'httpbin' } },
    });
    if (!se.ok || !we.ok) throw new Error('fixtures must decode');
    if (!isKind(se.resource, 'ServiceEntry') || !isKind(we.resource, 'WorkloadEntry')) throw new Error('kinds');
    const seInput: ServiceEntryInput = se.resource; // the decoder's types fit the converter's input
    const weInput: WorkloadEntryInput = we.resource;
    const out = convertServiceEntry(seInput);
    expect(out.services[0].ports).to.deep.equal([
      { number: 8000, name: 'http1', protocol: 'HTTP' },
      { number: 9000, name: 'grpc-api', protocol: 'GRPC' },
    ]);
    expect(out.services[0].source).to.deep.equal({ kind: 'file', shard: 'file:/x', ref: '/x/a.yaml#0' });
    expect(out.workloads[0]).to.include({ name: 'httpbin-0', namespace: 'bar', address: '1.2.3.4' });
    expect(out.workloads[0].ports).to.deep.equal({ http1: 15443, 'grpc-api': 9000 });
    expect(convertWorkloadEntry(weInput)).to.include({ name: 'vm1', namespace: 'default', weight: 1, health: 'HEALTHY' });
  });
});
