/**
 * Issue 9's first "Done when": two clusters on two networks, one mesh, end to end in network namespaces (root only).
 *
 *   cluster A, network net-a (10.67.1.0/24)              cluster B, network net-b (10.67.2.0/24)
 *   ra  10.67.1.1 bridge; trellis-control A   ──x0──   rb  10.67.2.1 bridge; trellis-control B
 *       10.67.0.1/30: routes ONLY 10.67.2.20/32 to B       10.67.0.2/30: routes 10.67.1.0/24 back to A
 *   a1  10.67.1.10  client "sleep" (agent, capture, DNS, proxy)
 *   a2  10.67.1.11  httpbin in A (agent, proxy, app)        b1  10.67.2.11  httpbin in B (agent, proxy, app)
 *                                                           bg  10.67.2.20  east-west gateway (trellis-proxy
 *                                                               --mode gateway, no SDS: it holds no secrets)
 *
 * One shared root (made here with openssl); each control plane signs with its own intermediate (`--ca-dir`).
 * Each control plane reads its own config directory: its WorkloadGroups (its workloads auto-register), MeshConfig
 * with both networks (net-b's gateway 10.67.2.20:15443), and the services; A's directory also holds a WorkloadEntry
 * for B's httpbin with `network: net-b` (how A learns B's endpoint). B has the AUTO_PASSTHROUGH Gateway on 15443.
 * A's workloads cannot reach 10.67.2.11 at all: only the gateway's address is routed between the clusters.
 *
 * Asserts: a call from A to `echo-b` (endpoints only in B) succeeds through B's gateway with A's SPIFFE id seen by
 * B's proxy (source_principal); the gateway's config terminates nothing and the bytes on B's bridge are TLS only;
 * a 50/50 VirtualService splits calls across the clusters (DS-38); with A's httpbin stopped, outlier detection
 * (DestinationRule) sends every call to B (DS-37). Everything is removed in `after`, also on failure.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_BIN, CONTROL_BIN, CTL_BIN, ROOT } from './processes.js';
import { curlIn, inNs, must, mustInNs, Processes, run, tcpSegments, waitUntil, type NsProc } from './vm-mesh/netns.js';

const PROXY_BIN = join(ROOT, 'packages/proxy/bin/trellis-proxy.js');
const NODE = process.execPath;
const CAPTURE_HOOK = join(ROOT, 'deploy/systemd/trellis-capture');
const P = `tG${process.pid % 100000}`;
const HTTPBIN = 'httpbin.default.svc.cluster.local';
const ECHO_B = 'echo-b.default.svc.cluster.local';
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/sleep';
const GW_IP = '10.67.2.20';
const ANSWER_A = 'httpbin in cluster-a';
const ANSWER_B = 'httpbin in cluster-b';

interface Cluster {
  readonly key: 'a' | 'b';
  readonly ns: string;
  readonly ip: string;
  readonly network: string;
  dir: string;
  configDir: string;
}
const CA: Cluster = { key: 'a', ns: `${P}-ra`, ip: '10.67.1.1', network: 'net-a', dir: '', configDir: '' };
const CB: Cluster = { key: 'b', ns: `${P}-rb`, ip: '10.67.2.1', network: 'net-b', dir: '', configDir: '' };

interface Workload {
  readonly key: string;
  readonly cluster: Cluster;
  readonly ns: string;
  readonly ip: string;
  readonly group: string;
  readonly serviceAccount: string;
  readonly labels: string;
  readonly app?: string;
}
const A1: Workload = { key: 'a1', cluster: CA, ns: `${P}-a1`, ip: '10.67.1.10', group: 'sleep', serviceAccount: 'sleep', labels: 'app=sleep' };
const A2: Workload = { key: 'a2', cluster: CA, ns: `${P}-a2`, ip: '10.67.1.11', group: 'httpbin-a', serviceAccount: 'httpbin', labels: 'app=httpbin,version=a', app: ANSWER_A };
const B1: Workload = { key: 'b1', cluster: CB, ns: `${P}-b1`, ip: '10.67.2.11', group: 'httpbin-b', serviceAccount: 'httpbin', labels: 'app=httpbin,version=b,cluster=b', app: ANSWER_B };
const WORKLOADS = [A1, A2, B1];
const GW_NS = `${P}-bg`;

const yamlLabels = (l: string): string => `{${l.replace(/=/g, ': ').replace(/,/g, ', ')}}`;

const services = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [${HTTPBIN}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: httpbin}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo-b, namespace: default}
spec:
  hosts: [${ECHO_B}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  workloadSelector: {labels: {cluster: b}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: ${HTTPBIN}
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
    loadBalancer:
      localityLbSetting:
        failover: [{from: region-a, to: region-b}]
  subsets:
  - {name: a, labels: {version: a}}
  - {name: b, labels: {version: b}}
`;
const meshConfig = (network: string): string => `apiVersion: trellis.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh, namespace: default}
spec:
  network: ${network}
  networks:
    net-a:
      endpoints: [{fromCidr: 10.67.1.0/24}]
    net-b:
      endpoints: [{fromCidr: 10.67.2.0/24}]
      gateways: [{address: ${GW_IP}, port: 15443}]
`;
const groups = (ws: readonly Workload[]): string => ws.map((w) => `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ${w.group}, namespace: default}
spec:
  metadata:
    labels: ${yamlLabels(w.labels)}
  template:
    serviceAccount: ${w.serviceAccount}
    ports: {http: 8000}
`).join('---\n');
const CONFIG_A: Record<string, string> = {
  'services.yaml': services,
  'mesh.yaml': meshConfig('net-a'),
  'groups.yaml': groups([A1, A2]),
  // How cluster A learns cluster B's workload: its address is on net-b, so A's proxies reach it via B's gateway.
  'remote-b.yaml': `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-b1, namespace: default}
spec:
  address: ${B1.ip}
  network: net-b
  locality: region-b/zone-1
  serviceAccount: httpbin
  labels: ${yamlLabels(B1.labels)}
  ports: {http: 8000}
`,
};
const CONFIG_B: Record<string, string> = {
  'services.yaml': services,
  'mesh.yaml': meshConfig('net-b'),
  'groups.yaml': groups([B1]),
  'eastwest-gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: AUTO_PASSTHROUGH}
    hosts: ['*.local']
`,
};
const SPLIT_VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [${HTTPBIN}]
  http:
  - route:
    - {destination: {host: ${HTTPBIN}, subset: a}, weight: 50}
    - {destination: {host: ${HTTPBIN}, subset: b}, weight: 50}
`;

const APP = `require('http').createServer((q, s) => {
  console.log('REQ ' + JSON.stringify({ remote: q.socket.remoteAddress, line: q.method + ' ' + q.url, headers: q.headers }));
  s.end(process.env.APP_ANSWER + '\\n');
}).listen(Number(process.env.APP_PORT), process.env.APP_HOST, () => console.log('app listening'));`;

/** Connects from inside a namespace as uid 1337 (exempt from capture): prints `connected` or the error code. */
const PROBE = `const s = require('net').connect(Number(process.argv[2]), process.argv[1]); s.setTimeout(1500);
s.on('connect', () => { console.log('connected'); s.destroy(); }); s.on('timeout', () => { console.log('ETIMEDOUT'); s.destroy(); });
s.on('error', (e) => console.log(e.code));`;

function whyNot(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, veth pairs, iptables, tcpdump)';
  for (const tool of [['ip', 'netns', 'list'], ['iptables-save', '--version'], ['tcpdump', '--version'], ['curl', '--version'], ['setpriv', '--version'], ['openssl', 'version']]) {
    try { execFileSync(tool[0]!, tool.slice(1), { stdio: 'ignore', timeout: 10_000 }); } catch { return `${tool[0]} is unavailable`; }
  }
  return null;
}

/** A shared root and one intermediate per cluster, in the layout `--ca-dir` reads. */
async function makePki(dir: string): Promise<void> {
  const ext = join(dir, 'ca-ext.cnf');
  writeFileSync(ext, '[v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n');
  const rootKey = join(dir, 'root-key.pem');
  const rootCert = join(dir, 'root-cert.pem');
  await must('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', rootKey, '-out', rootCert, '-days', '2', '-subj', '/O=trellis-test/CN=shared mesh root',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], 60_000);
  for (const c of [CA, CB]) {
    const caDir = join(dir, `ca-${c.key}`);
    mkdirSync(caDir, { mode: 0o700 });
    await must('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(caDir, 'ca-key.pem'), '-out', join(caDir, 'ca.csr'), '-subj', `/O=trellis-test/CN=cluster-${c.key} intermediate`], 60_000);
    await must('openssl', ['x509', '-req', '-in', join(caDir, 'ca.csr'), '-CA', rootCert, '-CAkey', rootKey, '-set_serial', `0x${c.key === 'a' ? '0a' : '0b'}${Date.now().toString(16)}`,
      '-days', '2', '-out', join(caDir, 'ca-cert.pem'), '-extfile', ext, '-extensions', 'v3_ca']);
    chmodSync(join(caDir, 'ca-key.pem'), 0o600);
    copyFileSync(rootCert, join(caDir, 'root-cert.pem'));
    writeFileSync(join(caDir, 'cert-chain.pem'), readFileSync(join(caDir, 'ca-cert.pem'), 'utf8') + readFileSync(rootCert, 'utf8'));
    rmSync(join(caDir, 'ca.csr'));
  }
}

describe('multicluster end to end: two clusters on two networks, an east-west gateway, one root', function () {
  this.timeout(150_000);
  const reason = whyNot();
  const procs = new Processes();
  const created: string[] = [];
  let dir = '';
  let tcpdump: NsProc | null = null;
  const pcapFile = (): string => join(dir, 'rb-br0.pcap');
  const byName = new Map<string, NsProc>();

  const call = (host: string) => curlIn(A1.ns, `http://${host}:8000/`);
  /** Several calls over one curl (keep-alive to the local proxy; the proxy picks an endpoint per request). */
  const calls = async (host: string, n: number): Promise<string[]> => {
    const r = await inNs(A1.ns, ['curl', '-sS', '-m', '20', ...Array.from({ length: n }, () => `http://${host}:8000/`)], 30_000);
    return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  };
  const ctlHttp = async (c: Cluster, path: string): Promise<string> => (await curlIn(c.ns, `http://127.0.0.1:15014${path}`)).body;

  before(async function () {
    if (reason) { this.skip(); return; }
    dir = mkdtempSync(join(tmpdir(), 'trellis-mc-e2e-'));
    chmodSync(dir, 0o755);
    await makePki(dir);
    for (const [c, files] of [[CA, CONFIG_A], [CB, CONFIG_B]] as const) {
      c.dir = join(dir, `cluster-${c.key}`);
      c.configDir = join(c.dir, 'config');
      mkdirSync(c.configDir, { recursive: true });
      for (const [f, text] of Object.entries(files)) writeFileSync(join(c.configDir, f), text);
    }

    // Namespaces: two routers (bridge + control plane each), the workloads, the gateway.
    for (const ns of [CA.ns, CB.ns, ...WORKLOADS.map((w) => w.ns), GW_NS]) {
      await must('ip', ['netns', 'add', ns]);
      created.push(ns);
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    for (const c of [CA, CB]) {
      await must('ip', ['-n', c.ns, 'link', 'add', 'br0', 'type', 'bridge']);
      await must('ip', ['-n', c.ns, 'addr', 'add', `${c.ip}/24`, 'dev', 'br0']);
      await must('ip', ['-n', c.ns, 'link', 'set', 'br0', 'up']);
      await mustInNs(c.ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    }
    // The link between the clusters: A routes only the gateway's address to B; B routes A's subnet back.
    await must('ip', ['-n', CA.ns, 'link', 'add', 'x0', 'type', 'veth', 'peer', 'name', 'x0', 'netns', CB.ns]);
    await must('ip', ['-n', CA.ns, 'addr', 'add', '10.67.0.1/30', 'dev', 'x0']);
    await must('ip', ['-n', CB.ns, 'addr', 'add', '10.67.0.2/30', 'dev', 'x0']);
    await must('ip', ['-n', CA.ns, 'link', 'set', 'x0', 'up']);
    await must('ip', ['-n', CB.ns, 'link', 'set', 'x0', 'up']);
    await must('ip', ['-n', CA.ns, 'route', 'add', `${GW_IP}/32`, 'via', '10.67.0.2']);
    await must('ip', ['-n', CB.ns, 'route', 'add', '10.67.1.0/24', 'via', '10.67.0.1']);
    const attach = async (c: Cluster, ns: string, key: string, ip: string): Promise<void> => {
      await must('ip', ['-n', c.ns, 'link', 'add', `v${key}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await must('ip', ['-n', c.ns, 'link', 'set', `v${key}`, 'master', 'br0', 'up']);
      await must('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await must('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      await must('ip', ['-n', ns, 'route', 'add', 'default', 'via', c.ip]);
    };
    for (const w of WORKLOADS) {
      await attach(w.cluster, w.ns, w.key, w.ip);
      mkdirSync(`/etc/netns/${w.ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${w.ns}/resolv.conf`, `nameserver ${w.cluster.ip}\n`);
    }
    await attach(CB, GW_NS, 'bg', GW_IP);

    // The control planes, each with its intermediate under the shared root.
    for (const c of [CA, CB]) {
      procs.start(`control-${c.key}`, c.ns, [NODE, CONTROL_BIN, '--config-dir', c.configDir, '--state-dir', join(c.dir, 'state'), '--ca-dir', join(dir, `ca-${c.key}`),
        '--listen-xds', `${c.ip}:15012`, '--listen-http', '127.0.0.1:15014', '--cluster-id', `cluster-${c.key}`, '--network', c.network]);
    }
    await Promise.all([CA, CB].map((c) => waitUntil(`trellis-control ${c.key} /ready`, async () => { procs.assertAlive(); return (await curlIn(c.ns, 'http://127.0.0.1:15014/ready')).status === 200 || undefined; }, 30_000)));

    // Bundles and capture rules for the workloads.
    await Promise.all(WORKLOADS.map(async (w) => {
      const wDir = join(w.cluster.dir, w.key);
      mkdirSync(wDir, { mode: 0o755 });
      const bundle = join(wDir, 'bundle');
      await waitUntil(`trellisctl vm configure --workload-group ${w.group}`, async () => {
        const r = await inNs(w.cluster.ns, [NODE, CTL_BIN, 'vm', 'configure', '--workload-group', w.group, '--namespace', 'default', '--out', bundle,
          '--xds-address', `${w.cluster.ip}:15012`, '--control', 'http://127.0.0.1:15014'], 30_000);
        if (r.code === 0) return true;
        if (!`${r.stdout}${r.stderr}`.includes('TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN')) throw new Error(`vm configure: ${r.stderr || r.stdout}`);
        return undefined;
      }, 30_000);
      copyFileSync(join(bundle, 'root-cert.pem'), join(wDir, 'root-cert.pem'));
      chmodSync(join(wDir, 'root-cert.pem'), 0o644);
      await mustInNs(w.ns, ['env', `TRELLIS_AGENT=${NODE} ${AGENT_BIN}`, CAPTURE_HOOK, 'install'], 30_000);
    }));
    for (const w of WORKLOADS) {
      const wDir = join(w.cluster.dir, w.key);
      procs.start(`agent-${w.key}`, w.ns, [NODE, AGENT_BIN, '--bundle', join(wDir, 'bundle'), '--state-dir', join(wDir, 'state'),
        '--sds-socket', join(wDir, 'sds', 'socket'), '--socket-group', '1337', '--listen-http', '127.0.0.1:15020',
        '--dns-listen', '127.0.0.1:15053', '--workload-ip', w.ip, '--locality', `region-${w.cluster.key}/zone-1`], { gid: 1337 });
      procs.start(`proxy-${w.key}`, w.ns, ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', NODE, PROXY_BIN,
        '--xds-address', `${w.cluster.ip}:15012`, '--xds-root-cert', join(wDir, 'root-cert.pem'), '--sds-socket', join(wDir, 'sds', 'socket'),
        '--namespace', 'default', '--workload-name', w.key, '--service-account', w.serviceAccount, '--labels', w.labels,
        '--ip', w.ip, '--cluster-id', `cluster-${w.cluster.key}`, '--network', w.cluster.network, '--concurrency', '1'], { env: { HOME: '/tmp' } });
      if (w.app) byName.set(`app-${w.key}`, procs.start(`app-${w.key}`, w.ns, [NODE, '-e', APP], { env: { APP_ANSWER: w.app, APP_PORT: '8000', APP_HOST: '0.0.0.0' } }));
    }
    // The east-west gateway: a router proxy with no SDS socket at all.
    procs.start('eastwest-gateway', GW_NS, [NODE, PROXY_BIN, '--mode', 'gateway', '--xds-address', `${CB.ip}:15012`, '--xds-root-cert', join(dir, 'root-cert.pem'),
      '--sds-socket', '', '--namespace', 'istio-system', '--workload-name', 'eastwest', '--service-account', 'eastwest', '--labels', 'istio=eastwestgateway',
      '--ip', GW_IP, '--cluster-id', 'cluster-b', '--network', 'net-b', '--concurrency', '1']);

    await Promise.all([...WORKLOADS.map(async (w) => {
      await waitUntil(`agent ${w.key} ready`, async () => { procs.assertAlive(); return (await curlIn(w.ns, 'http://127.0.0.1:15020/healthz/ready')).status === 200 || undefined; }, 60_000, 300);
      await waitUntil(`proxy ${w.key} ready`, async () => { procs.assertAlive(); return (await curlIn(w.ns, 'http://127.0.0.1:15021/healthz/ready')).status === 200 || undefined; }, 60_000, 300);
    }), waitUntil('gateway listening on 15443', async () => {
      procs.assertAlive();
      const dump = (await curlIn(GW_NS, 'http://127.0.0.1:15000/config_dump')).body;
      return dump.includes('outbound_.8000_._.echo-b.default.svc.cluster.local') || undefined;
    }, 60_000, 300)]);

    // Watch B's bridge: the hops A→gateway and gateway→B's workload both cross it.
    tcpdump = procs.start('tcpdump-rb', CB.ns, ['tcpdump', '-i', 'br0', '--immediate-mode', '-U', '-n', '-s', '0', '-Z', 'root', '-w', pcapFile(), 'tcp']);
    await waitUntil('tcpdump to listen', async () => (tcpdump!.output().includes('listening on') ? true : undefined), 10_000, 100);
  });

  after(async function () {
    this.timeout(60_000);
    await procs.killAll();
    for (const ns of created) {
      const pids = await run('ip', ['netns', 'pids', ns]);
      for (const pid of pids.stdout.split('\n').map(Number).filter((n) => n > 0)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await run('ip', ['netns', 'delete', ns]);
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`\n${procs.dump()}\n`);
  });

  const appRequests = (w: Workload): Array<{ headers: Record<string, string> }> =>
    (byName.get(`app-${w.key}`)!.output().match(/^REQ .*$/gm) ?? []).map((l) => JSON.parse(l.slice(4)) as { headers: Record<string, string> });

  it(reason ? `(skipped: ${reason})` : 'A\'s workloads cannot reach B\'s workload address, only B\'s gateway', async () => {
    const probe = async (ip: string, port: number) => (await mustInNs(A1.ns, ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', NODE, '-e', PROBE, ip, String(port)])).trim();
    expect(await probe(B1.ip, 8000)).to.not.equal('connected');
    expect(await probe(GW_IP, 15443)).to.equal('connected');
  });

  it('a client in A calls a service whose endpoints are only in B and gets B\'s answer through B\'s gateway', async () => {
    let last = '';
    const r = await waitUntil('A\'s call to echo-b', async () => {
      const res = await call(ECHO_B);
      last = `${res.status} ${res.body} ${res.stderr}`;
      return res.status === 200 ? res : undefined;
    }, 30_000, 300).catch(async (err: Error) => {
      throw new Error(`${err.message}; last: ${last}\nA proxy clusters:\n${(await curlIn(A1.ns, 'http://127.0.0.1:15000/clusters')).body.split('\n').filter((l) => l.includes('echo-b')).join('\n')}\ncontrol A endpointz:\n${(await ctlHttp(CA, '/debug/endpointz')).slice(0, 3000)}`);
    });
    expect(r.body.trim()).to.equal(ANSWER_B);
    // B's application got the request from its local proxy, which saw A's client certificate.
    const reqs = appRequests(B1);
    expect(reqs.length).to.be.greaterThan(0);
    expect(reqs[reqs.length - 1]!.headers['x-forwarded-client-cert'] ?? '').to.contain(CLIENT_ID);
  });

  it('B\'s proxy reports A\'s SPIFFE id as source_principal over mutual TLS', async () => {
    const r = await curlIn(B1.ns, 'http://127.0.0.1:15090/stats/prometheus');
    const lines = r.body.split('\n').filter((l) => l.startsWith('istio_requests_total{') && l.includes('reporter="destination"'));
    const match = lines.find((l) => l.includes(`source_principal="${CLIENT_ID}"`) && l.includes('connection_security_policy="mutual_tls"'));
    expect(match, `istio_requests_total on B:\n${lines.join('\n')}`).to.not.equal(undefined);
  });

  it('the gateway never holds the plaintext: its 15443 chains terminate nothing and B\'s bridge carries TLS only', async () => {
    const dump = JSON.parse((await curlIn(GW_NS, 'http://127.0.0.1:15000/config_dump')).body) as unknown;
    // The 15443 listener and the SNI clusters it forwards to: no TLS context anywhere in them.
    const named = (v: unknown, test: (name: string) => boolean, out: unknown[] = []): unknown[] => {
      if (Array.isArray(v)) for (const x of v) named(x, test, out);
      else if (v !== null && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        if (typeof o.name === 'string' && test(o.name)) out.push(o);
        else for (const x of Object.values(o)) named(x, test, out);
      }
      return out;
    };
    const listener = named(dump, (n) => n === '0.0.0.0_15443');
    const sniClusters = named(dump, (n) => n.startsWith('outbound_.'));
    expect(listener.length, 'the 15443 listener in /config_dump').to.be.greaterThan(0);
    expect(JSON.stringify(listener)).to.contain('outbound_.8000_._.echo-b.default.svc.cluster.local');
    expect(sniClusters.length, 'SNI clusters in /config_dump').to.be.greaterThan(0);
    for (const x of [...listener, ...sniClusters]) expect(JSON.stringify(x), 'TLS context on the passthrough path').to.not.match(/TlsContext|tls_certificate|sds_secret|"transport_?socket(_matches)?":\s*[{[]/i);
    await new Promise((r) => setTimeout(r, 300));
    await Processes.stop(tcpdump!, 'SIGINT');
    expect(statSync(pcapFile()).size).to.be.greaterThan(24);
    const segments = tcpSegments(readFileSync(pcapFile()));
    const toGw = segments.filter((s) => s.dst === GW_IP && s.dstPort === 15443);
    expect(toGw.length, 'segments from A to the gateway').to.be.greaterThan(0);
    expect(new Set(toGw.map((s) => s.src)), 'who talks to the gateway').to.deep.equal(new Set([A1.ip]));
    const firstByConn = new Map<number, Buffer>();
    for (const s of toGw) if (!firstByConn.has(s.srcPort)) firstByConn.set(s.srcPort, s.payload);
    for (const [port, first] of firstByConn) expect([...first.subarray(0, 2)], `first bytes of connection from port ${port}`).to.deep.equal([0x16, 0x03]);
    const fromGw = segments.filter((s) => s.src === GW_IP && s.dst === B1.ip);
    expect(fromGw.length, 'segments from the gateway to B\'s workload').to.be.greaterThan(0);
    const wire = Buffer.concat(segments.map((s) => s.payload)).toString('latin1');
    expect(wire).to.not.contain('GET / HTTP/1.1');
    expect(wire).to.not.contain(ANSWER_B);
  });

  it('DS-38: a 50/50 VirtualService splits A\'s calls across the clusters', async () => {
    writeFileSync(join(CA.configDir, 'virtual-service.yaml'), SPLIT_VS);
    await waitUntil('both clusters to answer', async () => {
      const answers = await calls(HTTPBIN, 10);
      return answers.includes(ANSWER_A) && answers.includes(ANSWER_B) ? true : undefined;
    }, 20_000, 300);
    const N = 80;
    const answers = await calls(HTTPBIN, N);
    const a = answers.filter((x) => x === ANSWER_A).length;
    const b = answers.filter((x) => x === ANSWER_B).length;
    process.stdout.write(`      (${N} calls: ${a} from cluster A, ${b} from cluster B)\n`);
    expect(a + b).to.equal(N);
    // Binomial(80, 0.5): sd ≈ 4.5; 20..60 is more than 4 sd either side.
    expect(a).to.be.within(20, 60);
  });

  it('DS-37: locality failover: A\'s calls stay in A while A\'s httpbin is healthy, and go to B through the gateway when it fails', async () => {
    rmSync(join(CA.configDir, 'virtual-service.yaml'));
    // Without the VirtualService the default cluster holds A's endpoint (priority 0: the client's own locality,
    // from its auto-registered WorkloadEntry) and B's gateway (priority 1: the failover region).
    await waitUntil('every call to stay in A', async () => {
      const answers = await calls(HTTPBIN, 10);
      return answers.length === 10 && answers.every((x) => x === ANSWER_A) ? true : undefined;
    }, 20_000, 300);
    expect(await calls(HTTPBIN, 20)).to.deep.equal(Array.from({ length: 20 }, () => ANSWER_A));
    await Processes.stop(byName.get('app-a2')!, 'SIGKILL');
    let failed = 0;
    let sent = 0;
    await waitUntil('every call to be answered by B', async () => {
      const answers = await calls(HTTPBIN, 10);
      sent += 10;
      failed += answers.filter((x) => x !== ANSWER_B).length;
      return answers.length === 10 && answers.every((x) => x === ANSWER_B) ? true : undefined;
    }, 20_000, 200);
    process.stdout.write(`      (failover: ${failed} of ${sent} calls failed before A's endpoint was ejected)\n`);
    for (let i = 0; i < 2; i++) expect(await calls(HTTPBIN, 10)).to.deep.equal(Array.from({ length: 10 }, () => ANSWER_B));
  });
});
