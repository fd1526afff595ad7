/**
 * Ingress gateway end to end with real processes (any user): trellis-control on a config directory, one
 * `trellis-proxy --mode gateway` (listeners on 127.0.0.1, credentials from `--gateway-credentials DIR`, mesh
 * identity from a fake SDS server), the demo's Bookinfo apps, a TLS backend and a TCP echo server.
 *
 * Gateway `bookinfo-gateway` (selector istio=ingressgateway):
 *   HTTP  :P_HTTP   hosts *                         (DS-03: Bookinfo from outside the mesh)
 *   HTTP  :P_HTTP   hosts secure.example.com, tls.httpsRedirect (DS-16: 301 to https)
 *   HTTPS :P_HTTPS  hosts a.example.com  SIMPLE  credentialName a-cred
 *                   hosts b.example.com  MUTUAL  credentialName b-cred (ca.crt verifies clients)
 *                   hosts c.example.com  SIMPLE  credentialName c-cred (no files: unavailable)
 *                   hosts d.example.com  SIMPLE  serverCertificate/privateKey file paths (Istio's file-mount form), TLS 1.3 only
 *   TLS   :P_PASS   hosts pass.example.com PASSTHROUGH (DS-19: the backend's own certificate reaches the client)
 *   TCP   :P_TCP    hosts *  → tcp-echo.example.com (VirtualService tcp route by port)
 *   HTTPS :P_MESH   hosts *  ISTIO_MUTUAL (clients present a mesh certificate)
 * Gateway `sds-gateway` (selector istio=sds-gateway, a second gateway process without --gateway-credentials):
 *   HTTPS :P_SDS    hosts *  SIMPLE  credentialName sds-cred (served by the SDS server)
 */
import { expect } from 'chai';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { FakeSdsServer, issueTestCert, makeTestCa, type TestCa } from '@trellis/testing';
import { eventually, startControl, waitHttp, type ControlProcess, type Proc } from './processes.js';
import { freePort, httpGet, httpsGet, startBookinfo, startGateway, tcpExchange, tlsHandshake, writeCredential, type GatewayProcess } from './gateway-fixtures.js';

const NS = 'default';
const svc = (n: string) => `${n}.${NS}.svc.cluster.local`;

describe('gateway: ingress (DS-03, DS-16, DS-19, TCP routes, credential files)', function () {
  this.timeout(60_000);
  let dir: string;
  let control: ControlProcess;
  let gw: GatewayProcess;
  let sdsGw: GatewayProcess | undefined;
  let sds: FakeSdsServer;
  const apps: Proc[] = [];
  const servers: net.Server[] = [];
  const P: Record<'http' | 'https' | 'pass' | 'tcp' | 'mesh' | 'sds', number> = { http: 0, https: 0, pass: 0, tcp: 0, mesh: 0, sds: 0 };
  let serverCa: TestCa;
  let clientCa: TestCa;
  let meshCa: TestCa;
  let passCa: TestCa;
  let credDir: string;

  const config = (appPorts: Record<string, number>, passPort: number, echoPort: number): string => `
${['productpage', 'details', 'reviews', 'ratings'].map((n) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${n}, namespace: ${NS}}
spec:
  hosts: [${svc(n)}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${appPorts[n]}}}]
`).join('---\n')}---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pass, namespace: ${NS}}
spec:
  hosts: [pass.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8443, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.1, ports: {tls: ${passPort}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-echo, namespace: ${NS}}
spec:
  hosts: [tcp-echo.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: ${echoPort}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: ${NS}}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: ${P.http}, name: http, protocol: HTTP}
      hosts: ['*']
    - port: {number: ${P.http}, name: http-secure, protocol: HTTP}
      hosts: [secure.example.com]
      tls: {httpsRedirect: true}
    - port: {number: ${P.https}, name: https-a, protocol: HTTPS}
      hosts: [a.example.com]
      tls: {mode: SIMPLE, credentialName: a-cred}
    - port: {number: ${P.https}, name: https-b, protocol: HTTPS}
      hosts: [b.example.com]
      tls: {mode: MUTUAL, credentialName: b-cred}
    - port: {number: ${P.https}, name: https-c, protocol: HTTPS}
      hosts: [c.example.com]
      tls: {mode: SIMPLE, credentialName: c-cred}
    - port: {number: ${P.https}, name: https-d, protocol: HTTPS}
      hosts: [d.example.com]
      tls: {mode: SIMPLE, serverCertificate: ${join(dir, 'files', 'd.crt')}, privateKey: ${join(dir, 'files', 'd.key')}, minProtocolVersion: TLSV1_3}
    - port: {number: ${P.pass}, name: tls-pass, protocol: TLS}
      hosts: [pass.example.com]
      tls: {mode: PASSTHROUGH}
    - port: {number: ${P.tcp}, name: tcp, protocol: TCP}
      hosts: ['*']
    - port: {number: ${P.mesh}, name: https-mesh, protocol: HTTPS}
      hosts: ['*']
      tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: sds-gateway, namespace: ${NS}}
spec:
  selector: {istio: sds-gateway}
  servers:
    - port: {number: ${P.sds}, name: https, protocol: HTTPS}
      hosts: ['*']
      tls: {mode: SIMPLE, credentialName: sds-cred}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: ${NS}}
spec:
  hosts: [pass.example.com]
  gateways: [bookinfo-gateway]
  tls:
    - match: [{port: ${P.pass}, sniHosts: [pass.example.com]}]
      route: [{destination: {host: pass.example.com, port: {number: 8443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: ${NS}}
spec:
  hosts: [tcp-echo.example.com]
  gateways: [bookinfo-gateway]
  tcp:
    - match: [{port: ${P.tcp}}]
      route: [{destination: {host: tcp-echo.example.com, port: {number: 9000}}}]
---
${['details', 'reviews', 'ratings'].map((n) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${n}, namespace: ${NS}}
spec:
  hosts: [${svc(n)}]
  gateways: [bookinfo-gateway, mesh]
  http:
    - route: [{destination: {host: ${svc(n)}, port: {number: 9080}}}]
`).join('---\n')}`;

  /** DS-03: the Gateway alone routes nothing; this VirtualService binds /productpage to it. */
  const BOOKINFO_VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: ${NS}}
spec:
  hosts: ['*']
  gateways: [bookinfo-gateway, sds-gateway]
  http:
    - match: [{uri: {exact: /productpage}}, {uri: {prefix: /static}}, {uri: {exact: /login}}, {uri: {exact: /logout}}, {uri: {prefix: /api/v1/products}}]
      route: [{destination: {host: ${svc('productpage')}, port: {number: 9080}}}]
`;

  const aCert = () => issueTestCert(serverCa, 'spiffe://example/a', { dnsNames: ['a.example.com'] });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tF-gw-'));
    credDir = join(dir, 'credentials');
    mkdirSync(join(dir, 'config'), { recursive: true });
    serverCa = makeTestCa('gateway server CA');
    clientCa = makeTestCa('gateway client CA');
    meshCa = makeTestCa('mesh root');
    passCa = makeTestCa('passthrough backend CA');
    writeCredential(credDir, 'a-cred', (({ certPem, keyPem }) => ({ cert: certPem + serverCa.certPem, key: keyPem }))(aCert()));
    const b = issueTestCert(serverCa, 'spiffe://example/b', { dnsNames: ['b.example.com'] });
    writeCredential(credDir, 'b-cred', { cert: b.chainPem, key: b.keyPem, ca: clientCa.certPem });
    const d = issueTestCert(serverCa, 'spiffe://example/d', { dnsNames: ['d.example.com'] });
    mkdirSync(join(dir, 'files'));
    writeFileSync(join(dir, 'files', 'd.crt'), d.chainPem);
    writeFileSync(join(dir, 'files', 'd.key'), d.keyPem);

    for (const k of Object.keys(P) as (keyof typeof P)[]) P[k] = await freePort();
    // The apps call each other through the gateway (no capture here), with the service's name as Host.
    const appPorts: Record<string, number> = {};
    for (const [role, version] of [['productpage', 'v1'], ['details', 'v1'], ['reviews', 'v1'], ['ratings', 'v1']] as const) {
      const a = await startBookinfo(role, version, { TRELLIS_DEMO_VIA: `127.0.0.1:${P.http}` });
      apps.push(a.proc);
      appPorts[role] = a.port;
    }
    const pass = makeBackendTls(passCa);
    servers.push(pass);
    const echo = net.createServer((s) => s.pipe(s));
    servers.push(echo);
    for (const s of [pass, echo]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    writeFileSync(join(dir, 'config', 'mesh.yaml'), config(appPorts, (pass.address() as net.AddressInfo).port, (echo.address() as net.AddressInfo).port));

    sds = await new FakeSdsServer().start();
    sds.setCertificate('default', issueTestCert(meshCa, `spiffe://cluster.local/ns/${NS}/sa/ingressgateway`));
    sds.setTrustBundle('ROOTCA', meshCa.certPem);
    sds.setCertificate('sds-cred', issueTestCert(serverCa, 'spiffe://example/sds', { dnsNames: ['sds.example.com'] }));

    control = await startControl([
      '--config-dir', join(dir, 'config'), '--state-dir', join(dir, 'control-state'), '--listen-xds', '127.0.0.1:0',
      '--listen-xds-plaintext', '127.0.0.1:0', '--listen-http', '127.0.0.1:0', '--debounce-after', '20ms', '--debounce-max', '200ms',
    ], ['xds-plaintext', 'http']);
    const xds = control.addresses['xds-plaintext']!;
    [gw, sdsGw] = await Promise.all([
      startGateway({ xds, labels: 'istio=ingressgateway', name: 'ingressgateway', credentials: credDir, sdsSocket: sds.socketPath }),
      // a second gateway without --gateway-credentials: its credentialName comes from the SDS server
      startGateway({ xds, labels: 'istio=sds-gateway', name: 'sds-gateway', sdsSocket: sds.socketPath }),
    ]);
    await Promise.all([gw, sdsGw].map((g) => waitHttp(`http://127.0.0.1:${g.healthPort}/healthz/ready`, (s) => s === 200)));
  });

  after(async () => {
    await gw?.stop();
    await sdsGw?.stop();
    await control?.stop();
    for (const a of apps) { a.child.kill('SIGTERM'); await a.exit; }
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    await sds?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('DS-03: the Gateway alone gives no routing; a bound VirtualService serves /productpage from outside the mesh', async () => {
    const before = await httpGet(P.http, '/productpage', 'bookinfo.example.com');
    expect(before.status).to.equal(404);
    writeFileSync(join(dir, 'config', 'bookinfo-vs.yaml'), BOOKINFO_VS);
    const r = await eventually('/productpage through the gateway', async () => {
      const x = await httpGet(P.http, '/productpage', 'bookinfo.example.com');
      return x.status === 200 ? x : null;
    });
    const page = JSON.parse(r.body) as { service: string; details: { service: string }; reviews: { service: string; version: string } };
    expect(page.service).to.equal('productpage');
    expect(page.details.service).to.equal('details');
    expect(page.reviews).to.include({ service: 'reviews', version: 'v1' });
    // paths the VirtualService does not bind stay 404 at the gateway
    expect((await httpGet(P.http, '/admin', 'bookinfo.example.com')).status).to.equal(404);
  });

  it('DS-16: HTTP with httpsRedirect answers 301 to https; other hosts on the same port are served', async () => {
    const r = await httpGet(P.http, '/productpage?x=1', 'secure.example.com');
    expect(r.status).to.equal(301);
    expect(r.headers.location).to.equal('https://secure.example.com/productpage?x=1');
    expect((await httpGet(P.http, '/productpage', 'www.example.com')).status).to.equal(200);
  });

  it('DS-16: HTTPS picks the certificate by SNI (hosts, certificates from credentialName and from file paths) and routes behind it', async () => {
    const a = await httpsGet(P.https, 'a.example.com', '/productpage', { ca: serverCa.certPem });
    expect(a.status).to.equal(200);
    expect(a.peer.san).to.include('DNS:a.example.com');
    const client = issueTestCert(clientCa, 'spiffe://example/client');
    const b = await httpsGet(P.https, 'b.example.com', '/productpage', { ca: serverCa.certPem, cert: client.certPem, key: client.keyPem });
    expect(b.status).to.equal(200);
    expect(b.peer.san).to.include('DNS:b.example.com');
    expect(b.peer.serial).to.not.equal(a.peer.serial);
    // the file-mount form: serverCertificate/privateKey paths on the server
    const d = await httpsGet(P.https, 'd.example.com', '/productpage', { ca: serverCa.certPem });
    expect(d.status).to.equal(200);
    expect(d.peer.san).to.include('DNS:d.example.com');
    // minProtocolVersion TLSV1_3 on that server only
    expect((await tlsHandshake(P.https, 'd.example.com', { ca: serverCa.certPem, maxVersion: 'TLSv1.2' })).ok).to.equal(false);
    expect((await tlsHandshake(P.https, 'a.example.com', { ca: serverCa.certPem, maxVersion: 'TLSv1.2' })).ok).to.equal(true);
  });

  it('HTTPS over HTTP/2 (ALPN h2) is routed like HTTP/1.1', async () => {
    const session = http2.connect(`https://127.0.0.1:${P.https}`, { servername: 'a.example.com', ca: serverCa.certPem });
    try {
      const { status, body, alpn } = await new Promise<{ status: number; body: string; alpn: string | false | null }>((resolve, reject) => {
        const req = session.request({ ':path': '/productpage', ':authority': 'a.example.com' });
        let status = 0;
        let body = '';
        req.on('response', (h) => { status = Number(h[':status']); });
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => resolve({ status, body, alpn: (session.socket as tls.TLSSocket).alpnProtocol }));
        req.on('error', reject);
        req.end();
      });
      expect(alpn).to.equal('h2');
      expect(status).to.equal(200);
      expect((JSON.parse(body) as { service: string }).service).to.equal('productpage');
    } finally {
      session.close();
    }
  });

  it('DS-16: MUTUAL refuses a client without a certificate, and one whose certificate another CA signed', async () => {
    const none = await httpsGet(P.https, 'b.example.com', '/productpage', { ca: serverCa.certPem }).then(() => 'served', (e: Error) => e.message);
    expect(none).to.not.equal('served');
    const stranger = issueTestCert(makeTestCa('someone else'), 'spiffe://example/stranger');
    const bad = await httpsGet(P.https, 'b.example.com', '/productpage', { ca: serverCa.certPem, cert: stranger.certPem, key: stranger.keyPem }).then(() => 'served', (e: Error) => e.message);
    expect(bad).to.not.equal('served');
  });

  it('a missing credential makes only its server unavailable, with a clear log line; the gateway stays ready', async () => {
    await gw.proc.waitFor(/"msg":"gateway credential unavailable[^"]*","credential":"c-cred","file":"[^"]*c-cred\/tls.crt","reason":"no such file"/, 'the c-cred log line');
    const c = await tlsHandshake(P.https, 'c.example.com', { ca: serverCa.certPem });
    expect(c.ok).to.equal(false);
    expect((await tlsHandshake(P.https, 'a.example.com', { ca: serverCa.certPem })).ok).to.equal(true);
    expect((await fetch(`http://127.0.0.1:${gw.healthPort}/healthz/ready`)).status).to.equal(200);
    // files appear: the server comes up without a restart
    const cc = issueTestCert(serverCa, 'spiffe://example/c', { dnsNames: ['c.example.com'] });
    writeCredential(credDir, 'c-cred', { cert: cc.chainPem, key: cc.keyPem });
    const ok = await eventually('c-cred to be served', async () => { const x = await tlsHandshake(P.https, 'c.example.com', { ca: serverCa.certPem }); return x.ok ? x : null; });
    expect(ok.san).to.include('DNS:c.example.com');
  });

  it('rotation: new certificate files are served to new connections; an open connection keeps working', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await httpsGet(P.https, 'a.example.com', '/productpage', { ca: serverCa.certPem, agent });
      expect(first.status).to.equal(200);
      const next = aCert();
      // a key that does not match (a rotation half written) is refused; the last good certificate stays
      writeCredential(credDir, 'a-cred', { key: issueTestCert(serverCa, 'spiffe://example/other').keyPem });
      await gw.proc.waitFor(/"msg":"gateway credential update rejected[^"]*","credential":"a-cred".*"reason":"the private key does not match/, 'the rejected-update log line');
      const still = await tlsHandshake(P.https, 'a.example.com', { ca: serverCa.certPem });
      expect(still.ok && still.serial).to.equal(first.peer.serial);
      writeCredential(credDir, 'a-cred', { cert: next.chainPem, key: next.keyPem });
      const rotated = await eventually('the rotated certificate', async () => {
        const x = await tlsHandshake(P.https, 'a.example.com', { ca: serverCa.certPem });
        return x.ok && x.serial !== first.peer.serial ? x : null;
      });
      expect(rotated.san).to.include('DNS:a.example.com');
      const again = await httpsGet(P.https, 'a.example.com', '/productpage', { ca: serverCa.certPem, agent });
      expect(again.status).to.equal(200);
      expect(again.reusedSocket).to.equal(true);
      expect(again.peer.serial).to.equal(first.peer.serial);
      await gw.proc.waitFor(/"msg":"gateway credential rotated","credential":"a-cred"/, 'the rotation log line');
    } finally {
      agent.destroy();
    }
  });

  it('DS-19: TLS PASSTHROUGH routes by SNI and the backend\'s own certificate reaches the client', async () => {
    const r = await eventually('passthrough', async () => { const x = await tlsHandshake(P.pass, 'pass.example.com', { ca: passCa.certPem }); return x.ok ? x : null; });
    expect(r.san).to.include('DNS:pass.example.com');
    // an SNI no route names finds no chain
    expect((await tlsHandshake(P.pass, 'other.example.com', { ca: passCa.certPem })).ok).to.equal(false);
  });

  it('TCP route by port: bytes go to the VirtualService tcp destination', async () => {
    expect(await tcpExchange(P.tcp, 'ping\n')).to.equal('ping\n');
  });

  it('ISTIO_MUTUAL: the server presents the mesh identity and wants a mesh client certificate', async () => {
    const client = issueTestCert(meshCa, `spiffe://cluster.local/ns/${NS}/sa/client`);
    const r = await httpsGet(P.mesh, 'bookinfo.example.com', '/productpage', { ca: meshCa.certPem, cert: client.certPem, key: client.keyPem, anyServerName: true });
    expect(r.status).to.equal(200);
    expect(r.peer.san).to.include('URI:spiffe://cluster.local/ns/default/sa/ingressgateway');
    const none = await httpsGet(P.mesh, 'bookinfo.example.com', '/productpage', { ca: meshCa.certPem, anyServerName: true }).then(() => 'served', (e: Error) => e.message);
    expect(none).to.not.equal('served');
  });

  it('without --gateway-credentials, a credentialName is asked of the SDS server', async () => {
    const r = await eventually('the SDS-served certificate', async () => httpsGet(P.sds, 'sds.example.com', '/productpage', { ca: serverCa.certPem }));
    expect(r.status).to.equal(200);
    expect(r.peer.san).to.include('DNS:sds.example.com');
  });
});

/** A TLS server that answers with its own certificate (SAN pass.example.com) and a line naming itself. */
function makeBackendTls(ca: TestCa): tls.Server {
  const c = issueTestCert(ca, 'spiffe://example/pass', { dnsNames: ['pass.example.com'] });
  return tls.createServer({ cert: c.chainPem, key: c.keyPem }, (s) => { s.end('backend\n'); });
}
