/**
 * MeshConfig access logs and tracing: the settings a MeshConfig spec gives, and the `access_log` / `tracing` the
 * generated HCMs and tcp_proxy filters carry — checked by encoding the listeners to protobuf and decoding them
 * with the proxy's decoder (what a proxy really receives).
 */
import { expect } from 'chai';
import { type FilterChain, type HttpConnectionManager, type TcpProxy, TYPE_URL, decodeAny, decodeListener, encodeAny } from '@trellis/api';
import { decodeResource } from '@trellis/model';
import { meshOverrides, resolveMeshSettings } from '../src/config/mesh-settings.js';
import { generators } from '../src/generate/index.js';
import type { ProxyNode, Snapshot } from '../src/snapshot/types.js';
import { fixtureFromYaml } from './golden/harness.js';

const BASE = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  addresses: [10.96.0.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 5432, name: db, protocol: TCP}]
  endpoints:
  - {address: 10.0.0.1, serviceAccount: web}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: zipkin, namespace: istio-system}
spec:
  hosts: [zipkin.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9411, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.50}
---
kind: TestProxy
spec: {ipAddresses: [10.0.0.1], namespace: default, workloadName: web, labels: {app: web}}
`;

function listeners(mesh: string): ReturnType<typeof decodeListener>[] {
  const { snapshot, proxies } = fixtureFromYaml(BASE + (mesh ? `---\nkind: TestMesh\nspec: ${mesh}\n` : ''));
  const gen = (generators as Record<string, (s: Snapshot, p: ProxyNode) => readonly { body: unknown }[]>)[TYPE_URL.listener]!;
  return gen(snapshot, proxies[0]!).map((r) => decodeListener(decodeAny(encodeAny(TYPE_URL.listener, r.body as Record<string, unknown>))));
}

const chains = (ls: ReturnType<typeof decodeListener>[]): FilterChain[] => ls.flatMap((l) => [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])]);
const hcms = (ls: ReturnType<typeof decodeListener>[]) => chains(ls).map((c) => c.terminal).filter((t): t is HttpConnectionManager => t.kind === 'http');
const tcps = (ls: ReturnType<typeof decodeListener>[]) => chains(ls).map((c) => c.terminal).filter((t): t is TcpProxy => t.kind === 'tcp');

describe('control: MeshConfig access logs and tracing', () => {
  it('MeshConfig fields decode with validation', () => {
    const doc = (spec: unknown) => ({ apiVersion: 'trellis.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh', namespace: 'default' }, spec });
    const ok = decodeResource(doc({ accessLogFile: '/dev/stdout', accessLogEncoding: 'JSON', defaultConfig: { tracing: { sampling: 25, zipkin: { address: 'zipkin.istio-system:9411' } } } }));
    expect(ok.ok, JSON.stringify(ok)).to.equal(true);
    const bad = decodeResource(doc({ accessLogFile: 'relative.log', accessLogEncoding: 'XML', defaultConfig: { tracing: { sampling: 101, zipkin: { address: 'no-port' } } } }));
    expect(bad.ok).to.equal(false);
    const paths = (bad as unknown as { violations: { path: string }[] }).violations.map((e) => e.path).sort();
    expect(paths).to.deep.equal(['spec.accessLogEncoding', 'spec.accessLogFile', 'spec.defaultConfig.tracing.sampling', 'spec.defaultConfig.tracing.zipkin.address']);
  });

  it('overrides: a file turns logs on, an empty file turns them off again; enableTracing false removes tracing', () => {
    expect(meshOverrides({ accessLogFile: '/dev/stdout', accessLogEncoding: 'JSON' }).accessLog).to.deep.equal({ path: '/dev/stdout', encoding: 'JSON', format: '' });
    expect(meshOverrides({}).accessLog).to.equal(undefined);
    expect(meshOverrides({ defaultConfig: { tracing: { zipkin: { address: 'z:9411' } } } }).tracing).to.deep.equal({ sampling: 1, zipkinAddress: 'z:9411' });
    const on = { metadata: { namespace: 'a', name: 'a' }, spec: { accessLogFile: '/var/log/a.log', defaultConfig: { tracing: { sampling: 5 } } } };
    const off = { metadata: { namespace: 'b', name: 'b' }, spec: { accessLogFile: '', enableTracing: false } };
    expect(resolveMeshSettings({}, undefined, [on]).accessLog?.path).to.equal('/var/log/a.log');
    const both = resolveMeshSettings({}, undefined, [on, off]);
    expect(both.accessLog).to.equal(undefined);
    expect(both.tracing).to.equal(undefined);
  });

  it('no access log and no tracing by default', () => {
    const ls = listeners('');
    expect(hcms(ls).length).to.be.greaterThan(0);
    for (const h of hcms(ls)) { expect(h.accessLog).to.deep.equal([]); expect(h.tracing).to.equal(null); }
    for (const t of tcps(ls)) expect(t.accessLog).to.deep.equal([]);
  });

  it('JSON access log on every HCM and tcp_proxy, with Istio\'s fields', () => {
    const ls = listeners(`{accessLog: {path: /var/log/trellis/access.log, encoding: JSON, format: ''}}`);
    for (const t of [...hcms(ls), ...tcps(ls)]) {
      expect(t.accessLog).to.have.length(1);
      const a = t.accessLog[0]!;
      expect(a.path).to.equal('/var/log/trellis/access.log');
      expect(a.format.kind).to.equal('json');
      const fields = (a.format as { fields: Record<string, unknown> }).fields;
      expect(fields).to.include.keys('start_time', 'response_flags', 'upstream_host', 'bytes_received', 'duration', 'downstream_peer_principal');
      expect(fields.method).to.deep.equal([{ kind: 'op', op: 'REQ', arg: ':method', alt: null, maxLength: null }]);
    }
  });

  it('TEXT access log: Istio\'s format string, or the MeshConfig\'s', () => {
    const dflt = hcms(listeners(`{accessLog: {path: /dev/stdout, encoding: TEXT, format: ''}}`))[0]!.accessLog[0]!;
    expect(dflt.format.kind).to.equal('text');
    const own = hcms(listeners(`{accessLog: {path: /dev/stdout, encoding: TEXT, format: '%REQ(:METHOD)% %RESPONSE_CODE%'}}`))[0]!.accessLog[0]!;
    expect(own.format).to.deep.equal({ kind: 'text', segments: [
      { kind: 'op', op: 'REQ', arg: ':method', alt: null, maxLength: null }, { kind: 'text', text: ' ' },
      { kind: 'op', op: 'RESPONSE_CODE', arg: null, alt: null, maxLength: null }, { kind: 'text', text: '\n' },
    ] });
  });

  it('tracing: sampling and a Zipkin provider naming the collector service\'s cluster', () => {
    const ls = listeners(`{tracing: {sampling: 12.5, zipkinAddress: 'zipkin.istio-system:9411'}}`);
    for (const h of hcms(ls)) {
      expect(h.tracing?.randomSampling).to.equal(12.5);
      expect(h.tracing?.provider).to.deep.equal({
        kind: 'zipkin', collectorCluster: 'outbound|9411||zipkin.istio-system.svc.cluster.local', collectorEndpoint: '/api/v2/spans',
        collectorHostname: 'zipkin.istio-system:9411', traceId128bit: true, sharedSpanContext: false,
      });
    }
    for (const t of tcps(ls)) expect(t.accessLog).to.deep.equal([]);
  });
});
