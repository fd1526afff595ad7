import { expect } from 'chai';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProbeRunner, ProbeThresholds, parseLabels, parseProbe, probeOnce, readProbeFile, registrationNode, defaultWorkloadIp, WorkloadRegistrar, type ProbeResult } from '../src/registration/index.js';

async function listen(server: Server | ReturnType<typeof createTcpServer>): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function closedPort(): Promise<number> {
  const s = createTcpServer();
  const port = await listen(s);
  s.close();
  await once(s, 'close');
  return port;
}

describe('registration: readiness probes', () => {
  let http: Server;
  let httpPort: number;
  let status = 200;
  let seenHeader: string | undefined;
  before(async () => {
    http = createHttpServer((req, res) => {
      seenHeader = req.headers['x-probe'] as string | undefined;
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 3000);
      res.writeHead(req.url === '/ready' ? status : 404).end();
    });
    httpPort = await listen(http);
  });
  after(() => { http.closeAllConnections(); http.close(); });

  it('httpGet: 2xx is healthy, other statuses and refused connections are not (with the reason)', async () => {
    status = 200;
    expect(await probeOnce({ httpGet: { port: httpPort, path: '/ready', httpHeaders: [{ name: 'x-probe', value: 'yes' }] } }, 1000)).to.deep.equal({ healthy: true });
    expect(seenHeader).to.equal('yes');
    status = 503;
    const bad = await probeOnce({ httpGet: { port: httpPort, path: 'ready' } }, 1000);
    expect(bad.healthy).to.equal(false);
    expect(bad.message).to.match(/status 503/);
    const refused = await probeOnce({ httpGet: { port: await closedPort() } }, 1000);
    expect(refused.message).to.match(/ECONNREFUSED/);
  });

  it('httpGet: a response slower than the timeout fails', async () => {
    const r = await probeOnce({ httpGet: { port: httpPort, path: '/slow' } }, 200);
    expect(r.healthy).to.equal(false);
    expect(r.message).to.match(/timed out|ECONNRESET|socket hang up/);
  });

  it('tcpSocket: an open port is healthy, a closed one is not', async () => {
    const tcp = createTcpServer((s) => s.destroy());
    const port = await listen(tcp);
    try {
      expect(await probeOnce({ tcpSocket: { port } }, 1000)).to.deep.equal({ healthy: true });
      const r = await probeOnce({ tcpSocket: { host: '127.0.0.1', port: await closedPort() } }, 1000);
      expect(r).to.include({ healthy: false });
      expect(r.message).to.match(/ECONNREFUSED/);
    } finally {
      tcp.close();
    }
  });

  it('exec: exit status 0 is healthy; otherwise the status and output are the reason', async () => {
    expect(await probeOnce({ exec: { command: ['true'] } }, 2000)).to.deep.equal({ healthy: true });
    const r = await probeOnce({ exec: { command: ['sh', '-c', 'echo not ready >&2; exit 3'] } }, 2000);
    expect(r.healthy).to.equal(false);
    expect(r.message).to.contain('exit status 3').and.contain('not ready');
    const missing = await probeOnce({ exec: { command: ['/nonexistent/probe'] } }, 2000);
    expect(missing.message).to.match(/ENOENT/);
  });

  it('grpc probes are reported as unsupported', async () => {
    expect((await probeOnce({ grpc: { port: 1 } }, 100)).message).to.match(/not supported/);
  });
});

describe('registration: probe thresholds', () => {
  const ok: ProbeResult = { healthy: true };
  const ko: ProbeResult = { healthy: false, message: 'down' };

  it('starts not ready, reports the first failure, then needs successThreshold successes in a row', () => {
    const t = new ProbeThresholds({ successThreshold: 2, failureThreshold: 2 });
    expect(t.record(ko)).to.deep.equal(ko);
    expect(t.record(ko)).to.equal(undefined);
    expect(t.record(ok)).to.equal(undefined);
    expect(t.record(ko)).to.equal(undefined); // streak broken
    expect(t.record(ok)).to.equal(undefined);
    expect(t.record(ok)).to.deep.equal(ok);
    expect(t.healthy).to.equal(true);
  });

  it('needs failureThreshold failures in a row to become unready (default 3)', () => {
    const t = new ProbeThresholds({});
    expect(t.record(ok)).to.deep.equal(ok);
    expect(t.record(ko)).to.equal(undefined);
    expect(t.record(ko)).to.equal(undefined);
    expect(t.record(ok)).to.equal(undefined);
    expect(t.record(ko)).to.equal(undefined);
    expect(t.record(ko)).to.equal(undefined);
    expect(t.record(ko)).to.deep.equal(ko);
    expect(t.healthy).to.equal(false);
  });

  it('a runner reports its first result and stops on abort', async () => {
    const tcp = createTcpServer((s) => s.destroy());
    const port = await listen(tcp);
    const seen: ProbeResult[] = [];
    const ac = new AbortController();
    const runner = new ProbeRunner({ spec: { tcpSocket: { port }, periodSeconds: 1 }, onChange: (r) => { seen.push(r); ac.abort(); } });
    await runner.start(ac.signal);
    tcp.close();
    expect(seen).to.deep.equal([{ healthy: true }]);
    expect(runner.last).to.deep.equal({ healthy: true });
  });
});

describe('registration: settings and bundle', () => {
  it('parses probe.json and rejects bad ones with the file and field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-probe-'));
    try {
      expect(readProbeFile(dir)).to.equal(undefined);
      writeFileSync(join(dir, 'probe.json'), JSON.stringify({ periodSeconds: 5, httpGet: { port: 8080, path: '/ready' } }));
      expect(readProbeFile(dir)).to.deep.equal({ periodSeconds: 5, httpGet: { port: 8080, path: '/ready' } });
      writeFileSync(join(dir, 'probe.json'), '{');
      expect(() => readProbeFile(dir)).to.throw(/probe\.json: not JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => parseProbe({ httpGet: { port: 0 }, exec: { command: [] } }, 'p.json')).to.throw(/exactly one of/);
    expect(() => parseProbe({ tcpSocket: { port: 70000 }, periodSeconds: -1 }, 'p.json')).to.throw(/periodSeconds[\s\S]*tcpSocket\.port/);
  });

  it('registers only bundles naming a WorkloadGroup, and refuses a bad probe.json', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-registrar-'));
    const logger = { info: () => {}, warn: () => {}, error: () => {} };
    const mesh = { xdsAddress: 'h:1', trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'billing', workloadGroup: '', clusterId: '', network: '' };
    try {
      const opts = { workloadIp: '10.0.0.1', locality: '', labels: '', logger };
      expect(WorkloadRegistrar.create({ ...opts, bundle: { dir, rootCertsPem: '', mesh } })).to.equal(undefined);
      writeFileSync(join(dir, 'probe.json'), JSON.stringify({ tcpSocket: {} }));
      expect(() => WorkloadRegistrar.create({ ...opts, bundle: { dir, rootCertsPem: '', mesh: { ...mesh, workloadGroup: 'g' } } })).to.throw(/probe\.json: tcpSocket\.port/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds the registration node with Istio metadata keys', () => {
    const bundle = { dir: '/x', rootCertsPem: '', mesh: { xdsAddress: 'h:1', trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'billing', workloadGroup: 'billing-vms', clusterId: 'c1', network: 'n1' } };
    const n = registrationNode(bundle, '10.1.2.3', 'eu/eu-1/a', { rack: 'r1' }, 'vm1') as { id: string; locality: unknown; metadata: { fields: Record<string, { stringValue?: string }> } };
    expect(n.id).to.equal('sidecar~10.1.2.3~vm1.shop~shop.svc.cluster.local');
    expect(n.locality).to.deep.equal({ region: 'eu', zone: 'eu-1', sub_zone: 'a' });
    expect(n.metadata.fields.WORKLOAD_GROUP!.stringValue).to.equal('billing-vms');
    expect(n.metadata.fields.INSTANCE_IPS!.stringValue).to.equal('10.1.2.3');
    expect(parseLabels('a=1, b=2', '--workload-labels')).to.deep.equal({ a: '1', b: '2' });
    expect(() => parseLabels('a', '--workload-labels')).to.throw(/--workload-labels: "a" is not key=value/);
    expect(defaultWorkloadIp({ lo: [{ family: 'IPv4', internal: true, address: '127.0.0.1' } as never], eth0: [{ family: 'IPv4', internal: false, address: '10.9.8.7' } as never] })).to.equal('10.9.8.7');
  });
});
