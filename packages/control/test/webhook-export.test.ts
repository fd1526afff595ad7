/**
 * The validating webhook (reviewAdmission, served over HTTPS by HttpServer with a mesh-CA or file certificate) and
 * the service export (buildExport, the long-polling feed). The real process is driven in test/control-extras.test.ts
 * and test/control-multi-primary.test.ts.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeResource, formatViolation } from '@trellis/model';
import { CertificateAuthority } from '../src/ca/authority.js';
import { buildExport, EXPORTED_FROM_LABEL, ServiceExportFeed } from '../src/http/export-routes.js';
import { HttpServer } from '../src/http/server.js';
import { AdmissionReviewError, reviewAdmission, webhookRoutes } from '../src/http/webhook.js';
import { webhookTls } from '../src/http/webhook-tls.js';
import type { MeshService, Snapshot } from '../src/snapshot/types.js';
import { svc, wl } from './aggregate-fixtures.js';

const review = (request: Record<string, unknown>): unknown => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
const VS = (spec: unknown): unknown => ({ apiVersion: 'networking.istio.io/v1beta1', kind: 'VirtualService', metadata: { name: 'r' }, spec });
const VS_KIND = { group: 'networking.istio.io', version: 'v1beta1', kind: 'VirtualService' };

describe('webhook: reviewAdmission', () => {
  it('admits a valid resource, defaulting its namespace from the request', () => {
    expect(reviewAdmission(review({ uid: 'a', operation: 'CREATE', kind: VS_KIND, namespace: 'shop', object: VS({ hosts: ['r'], http: [{ route: [{ destination: { host: 'r' } }] }] }) })))
      .to.deep.equal({ uid: 'a', allowed: true });
  });

  it('refuses with every violation, as the decoder words them, and one cause per violation', () => {
    const bad = VS({ hosts: [], http: [{ route: [{ destination: { host: 'r' }, weight: -1 }] }], tcpp: [] });
    const r = reviewAdmission(review({ uid: 'b', operation: 'UPDATE', kind: VS_KIND, namespace: 'shop', object: bad }));
    const d = decodeResource(bad, { defaultNamespace: 'shop' });
    if (d.ok) throw new Error('decoded');
    expect(r.allowed).to.equal(false);
    expect(r.status!.message).to.equal(`VirtualService shop/r is invalid (${d.violations.length} problems): ${d.violations.map(formatViolation).join('; ')}`);
    expect(r.status!.message).to.contain('tcpp');
    expect(r.status!.details.causes.map((c) => c.field)).to.deep.equal(d.violations.map((v) => v.path));
  });

  it('admits DELETE, CONNECT, other groups, and Istio kinds Trellis does not read (with a warning)', () => {
    expect(reviewAdmission(review({ uid: 'c', operation: 'DELETE', kind: VS_KIND })).allowed).to.equal(true);
    expect(reviewAdmission(review({ uid: 's', operation: 'UPDATE', kind: VS_KIND, subResource: 'status', object: VS({ nonsense: 1 }) })).allowed).to.equal(true);
    expect(reviewAdmission(review({ uid: 'd', operation: 'CONNECT', kind: { group: '', version: 'v1', kind: 'Pod' } })).allowed).to.equal(true);
    expect(reviewAdmission(review({ uid: 'e', operation: 'CREATE', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, object: {} }))).to.deep.equal({ uid: 'e', allowed: true });
    const ef = reviewAdmission(review({ uid: 'f', operation: 'CREATE', kind: { group: 'networking.istio.io', version: 'v1alpha3', kind: 'EnvoyFilter' }, object: {} }));
    expect(ef).to.deep.equal({ uid: 'f', allowed: true, warnings: ['Trellis does not read networking.istio.io/EnvoyFilter; admitted without validation'] });
  });

  it('throws AdmissionReviewError naming what is wrong with the body', () => {
    const cases: [unknown, string][] = [
      [undefined, 'empty body: expected an admission.k8s.io/v1 AdmissionReview'],
      [[1], 'body must be a JSON object (an admission.k8s.io/v1 AdmissionReview)'],
      [{ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' }, 'expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got "admission.k8s.io/v1beta1" "AdmissionReview"'],
      [review(undefined as unknown as Record<string, unknown>), 'request: required field is missing'],
      [review({ operation: 'CREATE' }), 'request.uid: required field is missing'],
      [review({ uid: 'x' }), 'request.operation: required field is missing'],
      [review({ uid: 'x', operation: 'PATCH' }), 'request.operation: unknown operation "PATCH"'],
      [review({ uid: 'x', operation: 'CREATE', kind: VS_KIND }), 'request.object: required field is missing (operation CREATE)'],
    ];
    for (const [body, message] of cases) expect(() => reviewAdmission(body), message).to.throw(AdmissionReviewError, message);
  });
});

function postTls(port: number, path: string, body: string, ca: string): Promise<{ status: number; text: string; peerSerial: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, method: 'POST', ca, servername: 'localhost', agent: false }, (res) => {
      let text = '';
      const serial = (res.socket as unknown as { getPeerCertificate(): { serialNumber: string } }).getPeerCertificate().serialNumber;
      res.setEncoding('utf8').on('data', (c: string) => { text += c; }).on('end', () => resolve({ status: res.statusCode ?? 0, text, peerSerial: serial }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('webhook: HTTPS serving', function () {
  this.timeout(20_000);
  let dir: string;
  const closers: (() => unknown)[] = [];
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'trellis-webhook-')); });
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /validate with a certificate from the mesh CA that the mesh root verifies', async () => {
    const ca = await CertificateAuthority.open({ stateDir: dir, trustDomain: 'cluster.local', keyBits: 2048 });
    const tls = webhookTls({ kind: 'ca', ca, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }, () => {}, () => {});
    closers.push(() => tls.close());
    const server = new HttpServer(webhookRoutes(), undefined, tls.initial);
    closers.push(() => server.close());
    const { port } = await server.listen('127.0.0.1', 0);
    const r = await postTls(port, '/validate', JSON.stringify(review({ uid: 'z', operation: 'DELETE' })), ca.trustBundlePem());
    expect(r.status).to.equal(200);
    expect(JSON.parse(r.text)).to.deep.equal({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'z', allowed: true } });
    const bad = await postTls(port, '/validate', '', ca.trustBundlePem());
    expect(bad.status).to.equal(400);
    expect(JSON.parse(bad.text)).to.deep.equal({ code: 'TRELLIS_ERR_ADMISSION_REVIEW', message: 'empty body: expected an admission.k8s.io/v1 AdmissionReview' });
  });

  it('serves a certificate from files and swaps it for new handshakes via setSecureContext', async () => {
    const make = (name: string): { cert: string; key: string } => {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { cwd: dir, stdio: 'ignore' });
      return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
    };
    const one = make('one');
    let server: HttpServer | undefined;
    const tls = webhookTls({ kind: 'files', certFile: one.cert, keyFile: one.key }, (n) => server?.setSecureContext(n), () => {});
    closers.push(() => tls.close());
    server = new HttpServer(webhookRoutes(), undefined, tls.initial);
    const s = server;
    closers.push(() => s.close());
    const { port } = await server.listen('127.0.0.1', 0);
    const r1 = await postTls(port, '/validate', JSON.stringify(review({ uid: '1', operation: 'DELETE' })), readFileSync(one.cert, 'utf8'));
    expect(r1.status).to.equal(200);
    const two = make('two');
    server.setSecureContext({ cert: readFileSync(two.cert, 'utf8'), key: readFileSync(two.key, 'utf8') });
    const r2 = await postTls(port, '/validate', JSON.stringify(review({ uid: '2', operation: 'DELETE' })), readFileSync(two.cert, 'utf8'));
    expect(r2.peerSerial).to.not.equal(r1.peerSerial);
    expect(() => webhookTls({ kind: 'files', certFile: join(dir, 'missing.crt'), keyFile: one.key }, () => {}, () => {}))
      .to.throw(/missing\.crt: cannot read the webhook certificate/);
  });
});

function snapshotOf(services: MeshService[], network = 'net-b'): Snapshot {
  return {
    version: 'v1', services, workloads: [], config: {} as Snapshot['config'],
    mesh: { trustDomain: 'cluster.local', clusterId: 'cluster-b', network, defaultNamespace: 'default', outboundTrafficPolicy: 'ALLOW_ANY', registryPriority: [], vipRange: '', domainSuffix: 'cluster.local' },
  } as Snapshot;
}

describe('service export', () => {
  const own = svc('billing.shop.svc', 'file:/b', 'file', { namespace: 'shop', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }] });
  const learned = svc('orders.shop.svc', 'trellis:cluster-a', 'trellis', { namespace: 'shop' });

  it('exports own services with own healthy endpoints as ServiceEntries, never what was learned from another control plane', () => {
    const ex = buildExport(snapshotOf([
      { service: own, endpoints: [
        wl('b1', '10.0.0.1', 'file:/b', 'file', { namespace: 'shop', locality: 'r/z', serviceAccount: 'billing', ports: { http: 8080 } }),
        wl('b2', '10.0.0.2', 'file:/b', 'file', { namespace: 'shop', health: 'UNHEALTHY' }),
        wl('b3', '10.9.0.3', 'trellis:cluster-a', 'trellis', { namespace: 'shop', network: 'net-a' }),
      ] },
      { service: learned, endpoints: [wl('o1', '10.9.0.9', 'trellis:cluster-a', 'trellis', { namespace: 'shop', network: 'net-a' })] },
      // A learned service with an endpoint of our own is exported with that endpoint only.
      { service: svc('pay.shop.svc', 'trellis:cluster-a', 'trellis', { namespace: 'shop' }), endpoints: [wl('p1', '10.0.0.7', 'file:/b', 'file', { namespace: 'shop' })] },
    ]));
    const items = ex.body.items as { metadata: { name: string; labels: Record<string, string> }; spec: { hosts: string[]; endpoints: Record<string, unknown>[] } }[];
    expect(items.map((i) => i.spec.hosts[0])).to.deep.equal(['billing.shop.svc', 'pay.shop.svc']);
    expect(items[0].metadata.labels[EXPORTED_FROM_LABEL]).to.equal('cluster-b');
    expect(items[0].spec.endpoints).to.deep.equal([{ address: '10.0.0.1', ports: { http: 8080 }, network: 'net-b', locality: 'r/z', serviceAccount: 'billing' }]);
    expect(items[1].spec.endpoints.map((e) => e.address)).to.deep.equal(['10.0.0.7']);
    for (const i of items) expect(decodeResource(i).ok, JSON.stringify(i)).to.equal(true);
    expect(buildExport(snapshotOf([{ service: own, endpoints: [] }])).version).to.not.equal(ex.version);
    const withVips = buildExport(snapshotOf([
      { service: svc('vip.shop', 'file:/b', 'file', { addresses: ['240.0.0.9'] }), endpoints: [] },
      { service: svc('k8s.shop', 'kubernetes:b', 'kubernetes', { addresses: ['10.96.0.7'] }), endpoints: [] },
    ])).body.items as { spec: { hosts: string[]; addresses?: string[] } }[];
    expect(withVips.map((i) => [i.spec.hosts[0], i.spec.addresses])).to.deep.equal([['vip.shop', ['240.0.0.9']], ['k8s.shop', undefined]]);
    expect(buildExport(snapshotOf([{ service: own, endpoints: [] }])).version).to.equal(buildExport(snapshotOf([{ service: own, endpoints: [] }])).version);
  });

  it('the feed answers a waiting reader when the export changes, and not for a snapshot that changes nothing', async () => {
    let current = snapshotOf([{ service: own, endpoints: [] }]);
    const feed = new ServiceExportFeed(() => current);
    const v1 = feed.current()!.version;
    const closed = new AbortController();
    let answered: string | undefined;
    const waiting = feed.wait(v1, 5_000, closed.signal).then((d) => { answered = d?.version; });
    current = snapshotOf([{ service: own, endpoints: [] }]); // a new snapshot, same export
    feed.onSnapshot();
    await new Promise((r) => setTimeout(r, 20));
    expect(answered).to.equal(undefined);
    current = snapshotOf([{ service: own, endpoints: [wl('b1', '10.0.0.1', 'file:/b', 'file', { namespace: 'shop' })] }]);
    feed.onSnapshot();
    await waiting;
    expect(answered).to.be.a('string').and.not.equal(v1);
    const timedOut = await feed.wait(answered!, 30, closed.signal);
    expect(timedOut!.version).to.equal(answered);
    feed.close();
  });
});
