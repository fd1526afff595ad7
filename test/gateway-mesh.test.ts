/**
 * Gateways and sidecars together (root only: one network namespace with capture rules):
 *
 *   root namespace (10.66.N.1 on veth tF<pid>h, N from the pid):
 *     trellis-control (plaintext xDS on 10.66.N.1), the ingress gateway (listeners on 127.0.0.1, mesh identity
 *     `ingressgateway` from a fake SDS server), the egress gateway (listeners on 10.66.N.1), Bookinfo details,
 *     reviews v1/v2 and ratings (plaintext, no sidecar), and "external.example.com", a TLS server outside the mesh
 *   namespace tF<pid>-pp (10.66.N.2): capture rules (`trellis-agent iptables install`), trellis-proxy as uid 1337
 *     (identity bookinfo-productpage from its own fake SDS server), productpage on :9080 (PeerAuthentication STRICT)
 *
 * DS-03: a client outside the mesh gets /productpage through the ingress gateway, which talks mTLS to productpage's
 * sidecar; productpage calls details and reviews through its sidecar (outbound capture).
 * DS-17: a VirtualService bound only to the gateway leaves sidecar routing alone; adding `mesh` applies it there too.
 * DS-26: a client in the namespace reaches external.example.com:443 through the egress gateway (TLS passthrough:
 * sidecar → egress gateway by SNI → the external host, which sees the egress gateway's address; the Gateway says
 * port 443 and the egress gateway listens on its service's target port); with
 * outboundTrafficPolicy REGISTRY_ONLY, a host no ServiceEntry names stays unreachable.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { FakeSdsServer, issueTestCert, makeTestCa, type TestCa } from '@trellis/testing';
import { AGENT_BIN, eventually, startControl, type ControlProcess, type Proc } from './processes.js';
import { BOOKINFO_APP, freePort, httpGet, PROXY_BIN, startBookinfo, startGateway, type GatewayProcess } from './gateway-fixtures.js';
import { inNs, must, Processes, run, type NsProc } from './vm-mesh/netns.js';

const NODE = process.execPath;
const PREFIX = `tF${process.pid % 100_000}`;
const PP_NS = `${PREFIX}-pp`;
const HOST_IF = `${PREFIX}h`;
// a /24 of 10.66.0.0/16 per run, so that two runs at once (two checkouts, two suites) do not share addresses
const SUBNET = `10.66.${(process.pid % 250) + 1}`;
const H = `${SUBNET}.1`;
const PP_IP = `${SUBNET}.2`;
const NSP = 'default';
const svc = (n: string) => `${n}.${NSP}.svc.cluster.local`;

function whyNot(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespace, veth, iptables)';
  for (const tool of [['ip', 'netns', 'list'], ['iptables-save', '--version'], ['setpriv', '--version'], ['curl', '--version']]) {
    try { execFileSync(tool[0]!, tool.slice(1), { stdio: 'ignore', timeout: 10_000 }); } catch { return `${tool[0]} is unavailable`; }
  }
  return null;
}

const reviewsVs = (gateways: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: ${NSP}}
spec:
  hosts: [${svc('reviews')}]
  gateways: [${gateways}]
  http:
    - route: [{destination: {host: ${svc('reviews')}, subset: v2, port: {number: 9080}}}]
`;

/** A client inside the namespace: TLS to H:PORT with SNI `servername`; prints the SAN and the reply. */
const tlsClient = (ca: string, port = 443, servername = 'external.example.com') => `const tls = require('tls');
const s = tls.connect({ host: '${H}', port: ${port}, servername: '${servername}', ca: ${JSON.stringify(ca)} }, () => {
  const san = s.getPeerCertificate().subjectaltname; let body = '';
  s.on('data', (d) => { body += d; }); s.on('end', () => { console.log(JSON.stringify({ san, body })); process.exit(0); });
});
s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1); });
setTimeout(() => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(1); }, 5000);`;

describe('gateway: ingress to sidecars over mTLS, the mesh gateway, egress (DS-03, DS-17, DS-26; netns)', function () {
  this.timeout(120_000);
  const reason = whyNot();
  const procs = new Processes();
  const apps: Proc[] = [];
  let dir = '';
  let nsCreated = false;
  let control: ControlProcess | undefined;
  let ingress: GatewayProcess | undefined;
  let egress: GatewayProcess | undefined;
  let sidecar: NsProc | undefined;
  let gwSds: FakeSdsServer | undefined;
  let ppSds: FakeSdsServer | undefined;
  let external: tls.Server | undefined;
  let unlisted: tls.Server | undefined;
  let externalCa: TestCa;
  const P = { http: 0, egress: 0 };

  before(async function () {
    if (reason) { this.skip(); return; }
    dir = mkdtempSync(join(tmpdir(), 'tF-gwmesh-'));
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'config'));
    await run('ip', ['netns', 'del', PP_NS]);
    await must('ip', ['netns', 'add', PP_NS]);
    nsCreated = true;
    await must('ip', ['-n', PP_NS, 'link', 'set', 'lo', 'up']);
    await must('ip', ['link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', PP_NS]);
    await must('ip', ['addr', 'add', `${H}/24`, 'dev', HOST_IF]);
    await must('ip', ['link', 'set', HOST_IF, 'up']);
    await must('ip', ['-n', PP_NS, 'addr', 'add', `${PP_IP}/24`, 'dev', 'eth0']);
    await must('ip', ['-n', PP_NS, 'link', 'set', 'eth0', 'up']);
    await must('ip', ['-n', PP_NS, 'route', 'add', 'default', 'via', H]);

    const meshCa = makeTestCa('mesh root');
    externalCa = makeTestCa('external CA');
    gwSds = await new FakeSdsServer().start();
    gwSds.setCertificate('default', issueTestCert(meshCa, `spiffe://cluster.local/ns/${NSP}/sa/ingressgateway`));
    gwSds.setTrustBundle('ROOTCA', meshCa.certPem);
    ppSds = await new FakeSdsServer().start();
    ppSds.setCertificate('default', issueTestCert(meshCa, `spiffe://cluster.local/ns/${NSP}/sa/bookinfo-productpage`));
    ppSds.setTrustBundle('ROOTCA', meshCa.certPem);
    // the sidecar runs as uid 1337
    chmodSync(dirname(ppSds.socketPath), 0o755);
    chmodSync(ppSds.socketPath, 0o666);

    P.http = await freePort();
    P.egress = await freePort();
    const ext = issueTestCert(externalCa, 'spiffe://external/site', { dnsNames: ['external.example.com'] });
    external = tls.createServer({ cert: ext.chainPem, key: ext.keyPem }, (s) => s.end(`external saw ${s.remoteAddress}`));
    await new Promise<void>((r) => external!.listen(0, H, r));
    const extPort = (external.address() as net.AddressInfo).port;
    // a host no ServiceEntry names: REGISTRY_ONLY keeps the namespace from reaching it
    const other = issueTestCert(externalCa, 'spiffe://external/unlisted', { dnsNames: ['unlisted.example.com'] });
    unlisted = tls.createServer({ cert: other.chainPem, key: other.keyPem }, (s) => s.end('unlisted'));
    await new Promise<void>((r) => unlisted!.listen(0, H, r));

    // Bookinfo outside the namespace: plaintext, no sidecar; reviews v2 reaches ratings through the ingress gateway.
    const via = { TRELLIS_DEMO_VIA: `127.0.0.1:${P.http}` };
    const ports: Record<string, number> = {};
    for (const [key, role, version] of [['details', 'details', 'v1'], ['reviews-v1', 'reviews', 'v1'], ['reviews-v2', 'reviews', 'v2'], ['ratings', 'ratings', 'v1']] as const) {
      const a = await startBookinfo(role, version, via, H);
      apps.push(a.proc);
      ports[key] = a.port;
    }

    const se = (name: string, endpoints: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: ${NSP}}
spec:
  hosts: [${svc(name)}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: ${endpoints}
`;
    writeFileSync(join(dir, 'config', 'services.yaml'), [
      se('productpage', `[{address: ${PP_IP}, ports: {http: 9080}, labels: {app: productpage, version: v1}, serviceAccount: bookinfo-productpage}]`),
      se('details', `[{address: ${H}, ports: {http: ${ports.details}}, labels: {app: details, version: v1}}]`),
      se('reviews', `[{address: ${H}, ports: {http: ${ports['reviews-v1']}}, labels: {app: reviews, version: v1}}, {address: ${H}, ports: {http: ${ports['reviews-v2']}}, labels: {app: reviews, version: v2}}]`),
      se('ratings', `[{address: ${H}, ports: {http: ${ports.ratings}}, labels: {app: ratings, version: v1}}]`),
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: ${NSP}}
spec:
  hosts: [external.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: ${H}, ports: {tls: ${extPort}}}]
`,
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: istio-egressgateway, namespace: ${NSP}}
spec:
  hosts: [istio-egressgateway.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: ${H}, ports: {tls: ${P.egress}}, labels: {istio: egressgateway}}]
`,
    ].join('---\n'));
    writeFileSync(join(dir, 'config', 'policy.yaml'), `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: ${NSP}}
spec:
  host: ${svc('reviews')}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: productpage, namespace: ${NSP}}
spec:
  selector: {matchLabels: {app: productpage}}
  mtls: {mode: STRICT}
`);
    writeFileSync(join(dir, 'config', 'gateways.yaml'), `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: ${NSP}}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: ${P.http}, name: http, protocol: HTTP}
      hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: ${NSP}}
spec:
  hosts: ['*']
  gateways: [bookinfo-gateway]
  http:
    - match: [{uri: {exact: /productpage}}]
      route: [{destination: {host: ${svc('productpage')}, port: {number: 9080}}}]
---
${['details', 'ratings'].map((n) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${n}, namespace: ${NSP}}
spec:
  hosts: [${svc(n)}]
  gateways: [bookinfo-gateway, mesh]
  http:
    - route: [{destination: {host: ${svc(n)}, port: {number: 9080}}}]
`).join('---\n')}---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: ${NSP}}
spec:
  selector: {istio: egressgateway}
  servers:
    - port: {number: 443, name: tls, protocol: TLS}
      hosts: [external.example.com]
      tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: external-through-egress-gateway, namespace: ${NSP}}
spec:
  hosts: [external.example.com]
  gateways: [mesh, istio-egressgateway]
  tls:
    - match: [{gateways: [mesh], port: 443, sniHosts: [external.example.com]}]
      route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 443}}}]
    - match: [{gateways: [istio-egressgateway], port: 443, sniHosts: [external.example.com]}]
      route: [{destination: {host: external.example.com, port: {number: 443}}}]
`);
    writeFileSync(join(dir, 'config', 'reviews-vs.yaml'), reviewsVs('bookinfo-gateway'));
    writeFileSync(join(dir, 'config', 'mesh.yaml'), `apiVersion: trellis.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: ${NSP}}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`);

    control = await startControl([
      '--config-dir', join(dir, 'config'), '--state-dir', join(dir, 'control-state'), '--listen-xds', '127.0.0.1:0',
      '--listen-xds-plaintext', `${H}:0`, '--listen-http', '127.0.0.1:0', '--debounce-after', '20ms', '--debounce-max', '200ms',
    ], ['xds-plaintext', 'http']);
    const xds = control.addresses['xds-plaintext']!;
    ingress = await startGateway({ xds, labels: 'istio=ingressgateway', name: 'ingressgateway', sdsSocket: gwSds.socketPath });
    // The egress gateway is the endpoint of its own service (443 → P.egress): it listens on P.egress for the
    // Gateway's port 443, as an Istio gateway behind its Service does.
    egress = await startGateway({ xds, labels: 'istio=egressgateway', name: 'egressgateway', sdsSocket: gwSds.socketPath, listenerAddress: H, ip: H });

    // The productpage "VM": capture rules, the sidecar as uid 1337, the app (as root: its traffic is captured).
    await must('ip', ['netns', 'exec', PP_NS, NODE, AGENT_BIN, 'iptables', 'install', '--inbound-ports', '9080', '--no-dns', '--no-ipv6'], 30_000);
    sidecar = procs.start('productpage-sidecar', PP_NS, ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', NODE, PROXY_BIN,
      '--xds-address', xds, '--xds-plaintext', '--sds-socket', ppSds.socketPath, '--namespace', NSP, '--workload-name', 'productpage-v1',
      '--service-account', 'bookinfo-productpage', '--labels', 'app=productpage,version=v1', '--ip', PP_IP, '--concurrency', '1', '--drain-time', '0'], { env: { HOME: '/tmp' } });
    procs.start('productpage', PP_NS, [NODE, BOOKINFO_APP, 'productpage', '--port', '9080', '--host', '0.0.0.0'], { env: { TRELLIS_DEMO_VIA: `${H}:9080` } });
    await eventually('the sidecar to be ready', async () => {
      procs.assertAlive();
      const r = await inNs(PP_NS, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:15021/healthz/ready']);
      return r.stdout === '200';
    }, 60_000);
    for (const g of [ingress, egress]) {
      await eventually('the gateways to be ready', async () => {
        const r = await fetch(`http://127.0.0.1:${g.healthPort}/healthz/ready`);
        if (r.status !== 200) throw new Error(await r.text());
        return true;
      });
    }
  });

  after(async function () {
    this.timeout(60_000);
    await procs.killAll();
    await ingress?.stop();
    await egress?.stop();
    await control?.stop();
    for (const a of apps) { a.child.kill('SIGTERM'); await a.exit; }
    for (const srv of [external, unlisted]) if (srv) await new Promise<void>((r) => srv.close(() => r()));
    await gwSds?.stop();
    await ppSds?.stop();
    if (nsCreated) {
      await run('ip', ['link', 'del', HOST_IF]);
      await run('ip', ['netns', 'del', PP_NS]);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const productpage = async (): Promise<{ service: string; details: { service?: string; error?: string }; reviews: { service?: string; version?: string; error?: string } }> => {
    const r = await httpGet(P.http, '/productpage', 'bookinfo.example.com');
    if (r.status !== 200) throw new Error(`/productpage: ${r.status} ${r.body}`);
    return JSON.parse(r.body) as Awaited<ReturnType<typeof productpage>>;
  };

  it('DS-03: /productpage from outside the mesh through the ingress gateway, over mTLS to productpage\'s sidecar', async () => {
    const page = await eventually('/productpage with details and reviews', async () => {
      const p = await productpage();
      return p.details.service === 'details' && p.reviews.service === 'reviews' ? p : null;
    }, 30_000);
    expect(page.service).to.equal('productpage');
    // STRICT: a plaintext client is refused, so the gateway's requests came over mTLS; the sidecar's metrics say whose.
    const plain = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', `http://${PP_IP}:9080/productpage`]);
    expect(plain.stdout).to.equal('000');
    const metrics = (await inNs(PP_NS, ['curl', '-s', 'http://127.0.0.1:15090/stats/prometheus'])).stdout;
    const line = metrics.split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes('reporter="destination"') && l.includes('source_principal="spiffe://cluster.local/ns/default/sa/ingressgateway"'));
    expect(line, metrics.split('\n').filter((l) => l.startsWith('istio_requests_total')).join('\n')).to.be.a('string');
    expect(line).to.include('connection_security_policy="mutual_tls"');
  });

  it('DS-17: a VirtualService bound only to the gateway leaves sidecar routing alone; adding mesh applies it to sidecars too', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) seen.add(String((await productpage()).reviews.version));
    // productpage's own calls to reviews: the default route, both versions
    expect([...seen].sort()).to.deep.equal(['v1', 'v2']);
    writeFileSync(join(dir, 'config', 'reviews-vs.yaml'), reviewsVs('bookinfo-gateway, mesh'));
    await eventually('reviews v2 only', async () => {
      for (let i = 0; i < 6; i++) if ((await productpage()).reviews.version !== 'v2') return false;
      return true;
    }, 15_000);
  });

  it('DS-26: egress through the egress gateway: TLS passthrough by SNI to an external host, which sees the gateway', async () => {
    const out = await eventually('the external host through the egress gateway', async () => {
      const r = await inNs(PP_NS, [NODE, '-e', tlsClient(externalCa.certPem)]);
      const j = JSON.parse(r.stdout.trim() || '{}') as { san?: string; body?: string; error?: string };
      if (j.error) throw new Error(j.error);
      return j;
    }, 20_000);
    // the external host's own certificate (passthrough end to end), reached from the egress gateway's address
    expect(out.san).to.include('DNS:external.example.com');
    expect(out.body).to.equal(`external saw ${H}`);
    // REGISTRY_ONLY: a host no ServiceEntry names is unreachable from the namespace, directly or otherwise
    const port = (unlisted!.address() as net.AddressInfo).port;
    const direct = await inNs(PP_NS, [NODE, '-e', tlsClient(externalCa.certPem, port, 'unlisted.example.com')]);
    expect(JSON.parse(direct.stdout.trim() || '{}')).to.have.property('error');
  });
});
