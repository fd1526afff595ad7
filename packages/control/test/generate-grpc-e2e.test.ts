/**
 * End to end with a real third-party xDS client: the generators' output for a proxyless node, served by a minimal
 * state-of-the-world ADS responder in this test, drives `@grpc/grpc-js-xds` (in a child process, so its global
 * resolver registration stays out of this one) to two real gRPC backends: the header match routes
 * deterministically and the 80/20 split shows up in the counts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { encodeAny, grpcService } from '@trellis/api';
import { generateAll } from '../src/generate/index.js';
import { fixtureFromYaml } from './golden/harness.js';

const require = createRequire(import.meta.url);
const identity = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const ECHO = { Call: { path: '/test.Echo/Call', requestStream: false, responseStream: false, requestSerialize: identity.serialize, requestDeserialize: identity.deserialize, responseSerialize: identity.serialize, responseDeserialize: identity.deserialize } };

function listen(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port))));
}

function backend(name: string): grpc.Server {
  const s = new grpc.Server();
  s.addService(ECHO as unknown as grpc.ServiceDefinition, { Call: (_call: unknown, cb: (e: null, b: Buffer) => void) => cb(null, Buffer.from(name)) });
  return s;
}

const CLIENT_SCRIPT = `
const grpc = require(process.env.GRPC_JS);
require(process.env.GRPC_XDS).register();
const C = grpc.makeGenericClientConstructor({ Call: { path: '/test.Echo/Call', requestStream: false, responseStream: false,
  requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b } });
const client = new C('xds:///echo.default.svc.cluster.local:7070', grpc.credentials.createInsecure());
const call = (md) => new Promise((res, rej) => client.Call(Buffer.alloc(0), md, { deadline: Date.now() + 5000 }, (e, b) => e ? rej(e) : res(b.toString())));
(async () => {
  const counts = { plain: {}, header: {} };
  for (let i = 0; i < 200; i++) { const v = await call(new grpc.Metadata()); counts.plain[v] = (counts.plain[v] || 0) + 1; }
  const md = new grpc.Metadata(); md.set('x-version', 'v2');
  for (let i = 0; i < 20; i++) { const v = await call(md); counts.header[v] = (counts.header[v] || 0) + 1; }
  process.stdout.write(JSON.stringify(counts));
  process.exit(0);
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`;

describe('generate: a real grpc-js-xds client follows the generated routes', function () {
  this.timeout(30_000);
  const servers: grpc.Server[] = [];
  let dir = '';
  after(() => {
    for (const s of servers) s.forceShutdown();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('header match → v2 every time; no header → about 80 % v1, 20 % v2', async () => {
    const v1 = backend('v1');
    const v2 = backend('v2');
    servers.push(v1, v2);
    const [p1, p2] = await Promise.all([listen(v1), listen(v2)]);
    const { snapshot, proxies } = fixtureFromYaml(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  addresses: [10.96.2.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: ${p1}}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {grpc: ${p2}}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http:
  - match: [{headers: {x-version: {exact: v2}}}]
    route: [{destination: {host: echo, subset: v2}}]
  - route:
    - {destination: {host: echo, subset: v1}, weight: 80}
    - {destination: {host: echo, subset: v2}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
kind: TestProxy
spec: {type: proxyless, ipAddresses: [10.0.0.9], namespace: default, workloadName: echo-client}
`);
    const proxy = proxies[0];
    if (proxy === undefined) throw new Error('no proxy');
    const all = generateAll(snapshot, proxy) as Readonly<Record<string, readonly { name: string; body: Readonly<Record<string, unknown>> }[]>>;

    // Minimal state-of-the-world ADS: answer every request whose names differ from the last answer for its type;
    // ACKs (same names) get nothing; a NACK fails the test.
    const nacks: string[] = [];
    const ads = new grpc.Server();
    servers.push(ads);
    const ADS = grpcService('envoy.service.discovery.v3.AggregatedDiscoveryService');
    ads.addService(ADS.service, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>) => {
        const sent = new Map<string, string>();
        let nonce = 0;
        call.on('data', (req: { type_url: string; resource_names: string[]; error_detail?: { message?: string } | null }) => {
          if (req.error_detail?.message) nacks.push(`${req.type_url}: ${req.error_detail.message}`);
          const names = [...req.resource_names].sort();
          const key = names.join(',');
          if (sent.get(req.type_url) === key) return;
          sent.set(req.type_url, key);
          const resources = (all[req.type_url] ?? []).filter((r) => names.length === 0 || names.includes(r.name));
          call.write({
            version_info: '1',
            type_url: req.type_url,
            nonce: String(++nonce),
            resources: resources.map((r) => ({ type_url: req.type_url, value: Buffer.from(encodeAny(req.type_url, r.body as Record<string, unknown>).value) })),
          });
        });
        call.on('error', () => undefined);
      },
    });
    const adsPort = await listen(ads);

    dir = mkdtempSync(join(tmpdir(), 'trellis-gen-e2e-'));
    const script = join(dir, 'client.cjs');
    writeFileSync(script, CLIENT_SCRIPT);
    const bootstrap = {
      xds_servers: [{ server_uri: `127.0.0.1:${adsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: proxy.id, locality: {} },
    };
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [script], {
        env: { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap), GRPC_JS: require.resolve('@grpc/grpc-js'), GRPC_XDS: require.resolve('@grpc/grpc-js-xds') },
        timeout: 25_000,
      }, (e, stdout, stderr) => (e ? reject(new Error(`client failed: ${stderr || e.message}`)) : resolve(stdout)));
    });
    expect(nacks).to.deep.equal([]);
    const counts = JSON.parse(out) as { plain: Record<string, number>; header: Record<string, number> };
    expect(counts.header).to.deep.equal({ v2: 20 });
    const v1Share = (counts.plain.v1 ?? 0) / 200;
    // Binomial(200, 0.8): sd ≈ 2.8 %; 0.65–0.93 is more than 4.5 sd either way.
    expect(v1Share).to.be.within(0.65, 0.93);
    expect((counts.plain.v1 ?? 0) + (counts.plain.v2 ?? 0)).to.equal(200);
  });
});
