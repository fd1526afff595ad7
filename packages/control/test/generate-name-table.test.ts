/**
 * NDS generator: the name table for a proxy holds every visible mesh hostname with its VIP and the alt names a
 * client in the proxy's namespace may use, and encodes as `istio.networking.nds.v1.NameTable`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { decodeAny, encodeAny, TYPE_URL } from '@trellis/api';
import { generateNameTable } from '../src/generate/name-table.js';
import { loadFixture, type Fixture } from './golden/harness.js';

const INPUT = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [10.96.0.12]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.21}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: other}
spec:
  hosts: [ratings.other.svc.cluster.local]
  addresses: [10.96.0.13, "fd00::13"]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.31}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden, namespace: other}
spec:
  hosts: [hidden.other.svc.cluster.local]
  addresses: [10.96.0.14]
  exportTo: ["."]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.41}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: default}
spec:
  hosts: [legacy.corp.example]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.51}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild, namespace: default}
spec:
  hosts: ["*.wild.example"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 443, name: tls, protocol: TLS}]
---
kind: TestProxy
spec: {namespace: default, workloadName: productpage, ipAddresses: [10.0.0.10]}
`;

describe('generate: name table (NDS)', () => {
  let dir: string;
  let fixture: Fixture;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-nds-'));
    writeFileSync(join(dir, 'input.yaml'), INPUT);
    fixture = loadFixture(join(dir, 'input.yaml'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('returns one resource named "" that encodes as a NameTable and decodes back', () => {
    const [proxy] = fixture.proxies;
    const out = generateNameTable(fixture.snapshot, proxy!);
    expect(out).to.have.length(1);
    expect(out[0]!.name).to.equal('');
    const any = encodeAny(TYPE_URL.nameTable, out[0]!.body as Record<string, unknown>);
    expect(any.type_url).to.equal('type.googleapis.com/istio.networking.nds.v1.NameTable');
    const back = decodeAny(any) as { table: Record<string, { ips: string[]; shortname: string; namespace: string; alt_hosts: string[] }> };
    expect(back.table['reviews.default.svc.cluster.local']!.ips).to.deep.equal(['10.96.0.12']);
  });

  it('holds the visible services with VIPs and the alt names a client in namespace default may use', () => {
    const [proxy] = fixture.proxies;
    const body = generateNameTable(fixture.snapshot, proxy!)[0]!.body as { table: Record<string, { ips: readonly string[]; registry: string; shortname: string; namespace: string; alt_hosts: readonly string[] }> };
    const t = body.table;
    expect(Object.keys(t).sort()).to.deep.equal(['legacy.corp.example', 'ratings.other.svc.cluster.local', 'reviews.default.svc.cluster.local']);
    expect(t['reviews.default.svc.cluster.local']).to.deep.include({ shortname: 'reviews', namespace: 'default', registry: 'File' });
    expect(t['reviews.default.svc.cluster.local']!.alt_hosts).to.have.members(['reviews', 'reviews.default', 'reviews.default.svc']);
    // Another namespace's service: reachable as name.namespace, never by its bare short name.
    expect(t['ratings.other.svc.cluster.local']!.alt_hosts).to.have.members(['ratings.other', 'ratings.other.svc']);
    expect(t['ratings.other.svc.cluster.local']!.ips).to.deep.equal(['10.96.0.13', 'fd00::13']);
    // Not Kubernetes-style: FQDN only, with the allocated VIP.
    expect(t['legacy.corp.example']).to.deep.include({ shortname: '', namespace: '' });
    expect(t['legacy.corp.example']!.ips).to.have.length(1);
    expect(t['legacy.corp.example']!.alt_hosts).to.deep.equal([]);
  });
});
