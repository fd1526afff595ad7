import { expect } from 'chai';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import {
  decodeResource, encodeResource, formatViolation, isKind, SUPPORTED_API_VERSIONS, type AnyResource, type Violation,
} from '@trellis/model';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'valid');

interface Doc {
  file: string;
  index: number;
  value: unknown;
}
function loadValid(): Doc[] {
  const out: Doc[] = [];
  for (const file of readdirSync(FIXTURES).sort()) {
    parseAllDocuments(readFileSync(join(FIXTURES, file), 'utf8')).forEach((d, index) => out.push({ file, index, value: d.toJS() }));
  }
  return out;
}
const VALID = loadValid();

function decodeOk(doc: unknown): AnyResource {
  const r = decodeResource(doc);
  if (!r.ok) throw new Error(r.violations.map(formatViolation).join('\n'));
  return r.resource;
}
function byName(name: string, kind?: string): AnyResource {
  const d = VALID.find((x) => {
    const v = x.value as { kind: string; metadata: { name: string } };
    return v.metadata.name === name && (kind === undefined || v.kind === kind);
  });
  if (d === undefined) throw new Error(`no fixture ${name}`);
  return decodeOk(d.value);
}

describe('decodeResource: valid documents (walkthrough fixtures)', () => {
  it('has the walkthrough resources', () => {
    expect(VALID.length).to.be.greaterThan(50);
  });
  for (const d of VALID) {
    const v = d.value as { kind: string; metadata: { name: string } };
    it(`decodes ${d.file}#${d.index} ${v.kind} ${v.metadata.name}`, () => {
      const r = decodeResource(d.value, { defaultNamespace: 'bookinfo' });
      expect(r.ok, r.ok ? '' : r.violations.map(formatViolation).join('\n')).to.equal(true);
    });
  }
});

describe('decodeResource: normalization', () => {
  it('fills the namespace from options, and origin', () => {
    const doc = VALID.find((d) => (d.value as { metadata: { name: string } }).metadata.name === 'reviews-50-v3')!.value;
    const r = decodeResource(doc, { defaultNamespace: 'bookinfo', origin: { kind: 'file', shard: 'file:/x', file: '/x/a.yaml', document: 3 } });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.resource.metadata.namespace).to.equal('bookinfo');
    expect(r.resource.origin).to.deep.equal({ kind: 'file', shard: 'file:/x', file: '/x/a.yaml', document: 3 });
    expect(decodeOk(doc).metadata.namespace).to.equal('default');
  });
  it('deep-freezes the resource', () => {
    const r = byName('reviews-50-v3');
    expect(Object.isFrozen(r)).to.equal(true);
    expect(Object.isFrozen(r.spec)).to.equal(true);
    if (!isKind(r, 'VirtualService')) throw new Error('kind');
    expect(Object.isFrozen(r.spec.http![0].route![1].destination)).to.equal(true);
  });
  it('turns durations into milliseconds and percentages into numbers', () => {
    const foo = byName('foo', 'VirtualService');
    if (!isKind(foo, 'VirtualService')) throw new Error('kind');
    const h = foo.spec.http![0];
    expect(h.timeout).to.equal(2000);
    expect(h.retries).to.deep.equal({ attempts: 3, perTryTimeout: 500, retryOn: '5xx,connect-failure,503' });
    expect(h.fault!.delay).to.deep.equal({ fixedDelay: 5000, percentage: 100 });
    expect(h.fault!.abort).to.deep.equal({ httpStatus: 500, percentage: 10 });
    const t = byName('reviews-timeout');
    if (!isKind(t, 'VirtualService')) throw new Error('kind');
    expect(t.spec.http![0].timeout).to.equal(500);
    const m = byName('reviews-mirror');
    if (!isKind(m, 'VirtualService')) throw new Error('kind');
    expect(m.spec.http![0].mirrorPercentage).to.equal(50);
    const o = byName('outlier');
    if (!isKind(o, 'DestinationRule')) throw new Error('kind');
    expect(o.spec.trafficPolicy!.outlierDetection).to.include({ interval: 60_000, baseEjectionTime: 180_000, consecutive5xxErrors: 5 });
    expect(o.spec.trafficPolicy!.connectionPool!.tcp!.connectTimeout).to.equal(10_000);
  });
  it('derives port protocols from names and upper-cases them', () => {
    const baz = byName('baz-dns');
    if (!isKind(baz, 'ServiceEntry')) throw new Error('kind');
    expect(baz.spec.ports).to.deep.equal([
      { number: 80, name: 'http-port', protocol: 'HTTP' },
      { number: 443, name: 'https', protocol: 'HTTPS' },
    ]);
    expect(baz.spec.location).to.equal('MESH_EXTERNAL');
    const tcp = byName('my-tcp-service');
    if (!isKind(tcp, 'ServiceEntry')) throw new Error('kind');
    expect(tcp.spec.ports![0].protocol).to.equal('TCP');
    expect(tcp.spec.addresses).to.deep.equal(['1.2.3.4']);
    const gw = byName('foo-gateway');
    if (!isKind(gw, 'Gateway')) throw new Error('kind');
    expect(gw.spec.servers.map((s) => s.port.protocol)).to.deep.equal(['HTTP', 'HTTPS']);
  });
  it('fills Istio defaults', () => {
    const vs = byName('reviews', 'VirtualService');
    if (!isKind(vs, 'VirtualService')) throw new Error('kind');
    expect(vs.spec.gateways).to.deep.equal(['mesh']);
    const delegate = byName('bars');
    if (!isKind(delegate, 'VirtualService')) throw new Error('kind');
    expect(delegate.spec.gateways).to.equal(undefined);
    const se = byName('some-domain-static');
    if (!isKind(se, 'ServiceEntry')) throw new Error('kind');
    expect(se.spec.location).to.equal('MESH_EXTERNAL');
    const ap = byName('allow-nothing');
    if (!isKind(ap, 'AuthorizationPolicy')) throw new Error('kind');
    expect(ap.spec).to.deep.equal({ action: 'ALLOW' });
    const mesh = byName('defaults');
    if (!isKind(mesh, 'MeshConfig')) throw new Error('kind');
    expect(mesh.spec).to.deep.equal({
      trustDomain: 'cluster.local',
      defaultNamespace: 'default',
      outboundTrafficPolicy: { mode: 'ALLOW_ANY' },
      registryPriority: ['kubernetes', 'file', 'consul', 'eureka'],
      vipRange: '240.240.0.0/16',
    });
    const consul = byName('consul-dc1');
    if (!isKind(consul, 'Registry')) throw new Error('kind');
    expect(consul.spec.healthFilter).to.equal('warning');
    const eureka = byName('eureka');
    if (!isKind(eureka, 'Registry')) throw new Error('kind');
    expect(eureka.spec.deltaInterval).to.equal(30_000);
    const redirect = byName('redirects');
    if (!isKind(redirect, 'VirtualService')) throw new Error('kind');
    expect(redirect.spec.http![0].redirect!.redirectCode).to.equal(301);
  });
  it('lists the supported versions', () => {
    expect(SUPPORTED_API_VERSIONS['networking.istio.io']).to.deep.equal(['v1', 'v1beta1', 'v1alpha3']);
    expect(SUPPORTED_API_VERSIONS['trellis.dev']).to.deep.equal(['v1alpha1']);
  });
});

describe('decodeResource: idempotence (decode → encode → decode)', () => {
  for (const d of VALID) {
    const v = d.value as { kind: string; metadata: { name: string } };
    it(`round-trips ${d.file}#${d.index} ${v.kind} ${v.metadata.name}`, () => {
      const origin = { kind: 'file' as const, shard: 'file:/t', file: d.file, document: d.index };
      const first = decodeResource(d.value, { origin });
      if (!first.ok) throw new Error('fixture must decode');
      const encoded = encodeResource(first.resource);
      const second = decodeResource(JSON.parse(JSON.stringify(encoded)), { origin });
      expect(second.ok, second.ok ? '' : second.violations.map(formatViolation).join('\n')).to.equal(true);
      if (second.ok) expect(second.resource).to.deep.equal(first.resource);
      expect(encodeResource((second as { resource: AnyResource }).resource)).to.deep.equal(encoded);
    });
  }
});

describe('decodeResource: never throws', () => {
  it('returns a result for arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const r = decodeResource(v);
        return typeof r.ok === 'boolean';
      }),
      { numRuns: 300 },
    );
  });
  it('returns a result for arbitrary specs of every kind', () => {
    const kinds = ['ServiceEntry', 'WorkloadEntry', 'WorkloadGroup', 'VirtualService', 'DestinationRule', 'Gateway', 'Sidecar'];
    const sec = ['PeerAuthentication', 'AuthorizationPolicy', 'RequestAuthentication'];
    const spec = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.jsonValue({ maxDepth: 1 }),
        fc.dictionary(
          fc.constantFrom('hosts', 'http', 'route', 'destination', 'host', 'weight', 'ports', 'number', 'name', 'match', 'uri', 'timeout', 'servers', 'tls', 'mode', 'subsets', 'labels', 'rules', 'from', 'source', 'jwtRules', 'issuer', 'endpoints', 'address', 'fault', 'delay', 'percentage', 'value'),
          tie('value'),
          { maxKeys: 5 },
        ),
        fc.array(tie('value'), { maxLength: 3 }),
      ),
    })).value;
    fc.assert(
      fc.property(fc.constantFrom(...kinds, ...sec, 'MeshConfig', 'Registry'), spec, (kind, s) => {
        const group = sec.includes(kind) ? 'security.istio.io/v1' : kinds.includes(kind) ? 'networking.istio.io/v1' : 'trellis.dev/v1alpha1';
        const r = decodeResource({ apiVersion: group, kind, metadata: { name: 'x' }, spec: s });
        if (r.ok) {
          const again = decodeResource(encodeResource(r.resource));
          expect(again.ok).to.equal(true);
          if (again.ok) expect(again.resource).to.deep.equal(r.resource);
        }
        return true;
      }),
      { numRuns: 400 },
    );
  });
});

/** All paths to values inside a JSON value. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...prefix, i])));
  else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...prefix, k]));
  return out;
}
function mutate(doc: unknown, at: (string | number)[], op: number, value: unknown): unknown {
  const copy = structuredClone(doc) as Record<string | number, unknown>;
  if (at.length === 0) return value;
  let parent: Record<string | number, unknown> = copy;
  for (const k of at.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = at[at.length - 1];
  if (op === 0) {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else if (op === 1) parent[last] = value;
  else if (!Array.isArray(parent)) {
    parent[`${String(last)}x`] = parent[last];
    delete parent[last];
  }
  return copy;
}

describe('decodeResource: mutated walkthrough documents', () => {
  it('never throws, and whatever decodes round-trips', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: VALID.length - 1 }),
        fc.nat(),
        fc.integer({ min: 0, max: 2 }),
        fc.jsonValue({ maxDepth: 2 }),
        (i, pick, op, value) => {
          const doc = VALID[i].value;
          const all = paths(doc);
          const mutated = mutate(doc, all[pick % all.length], op, value);
          const r = decodeResource(mutated);
          if (r.ok) {
            const again = decodeResource(encodeResource(r.resource));
            expect(again.ok, again.ok ? '' : again.violations.map(formatViolation).join('; ')).to.equal(true);
            if (again.ok) expect(again.resource).to.deep.equal(r.resource);
          } else {
            expect(r.violations.length).to.be.greaterThan(0);
            for (const v of r.violations) expect(v.message).to.be.a('string').and.not.equal('');
          }
          return true;
        },
      ),
      { numRuns: 1500 },
    );
  });
});

export type { Violation };
