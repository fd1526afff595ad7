/**
 * Done-when for issue 3: a real third-party xDS client (@grpc/grpc-js-xds, proxyless) drives trellis-control.
 *
 * The control plane runs as a child process on a temp config dir; three gRPC backends answer with their own name;
 * the xDS client runs in its own child process (grpc-js-xds reads its bootstrap at register()) and keeps ONE channel
 * for the whole test: weights, header routes, edits and an invalid file all apply without reconnecting, and the
 * client's NACK shows up in `trellisctl proxy-status`.
 */
import { spawn, execFile, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { expect } from 'chai';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const CONTROL_BIN = join(root, 'packages/control/bin/trellis-control.js');
const CTL_BIN = join(root, 'packages/control/bin/trellisctl.js');
const HOST = 'echo.trellis.test';
const PORT = 50051;
const NODE_ID = 'sidecar~127.0.0.1~echo-client.default~default.svc.cluster.local';

interface Reply { id: number; counts: Record<string, number>; errors: number; lastError?: string }

async function startBackend(name: string): Promise<{ port: number; server: grpc.Server }> {
  const def = protoLoader.loadSync(join(here, 'control-grpc-xds/echo.proto'), { keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { trellis: { test: { Echo: grpc.ServiceClientConstructor } } };
  const server = new grpc.Server();
  server.addService(pkg.trellis.test.Echo.service, { Say: (_call: unknown, cb: grpc.sendUnaryData<{ from: string }>) => cb(null, { from: name }) });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { port, server };
}

function serviceEntry(ports: Record<string, number>): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: echo
  namespace: default
spec:
  hosts: [${HOST}]
  location: MESH_INTERNAL
  ports:
  - number: ${PORT}
    name: grpc
    protocol: GRPC
  resolution: STATIC
  endpoints:
${Object.entries(ports).map(([v, p]) => `  - address: 127.0.0.1\n    ports: { grpc: ${p} }\n    labels: { version: ${v} }`).join('\n')}
`;
}

function destinationRule(extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: echo
  namespace: default
spec:
  host: ${HOST}
${extra}  subsets:
  - name: v1
    labels: { version: v1 }
  - name: v2
    labels: { version: v2 }
  - name: v3
    labels: { version: v3 }
`;
}

function virtualService(http: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: echo
  namespace: default
spec:
  hosts: [${HOST}]
  http:
${http}`;
}

const weighted = (w1: number | string, w2: number | string): string => `  - route:
    - destination: { host: ${HOST}, subset: v1 }
      weight: ${w1}
    - destination: { host: ${HOST}, subset: v2 }
      weight: ${w2}
`;

const headerRoute = `  - match:
    - headers:
        x-canary: { exact: "yes" }
    route:
    - destination: { host: ${HOST}, subset: v3 }
  - route:
    - destination: { host: ${HOST}, subset: v1 }
`;

describe('trellis-control driven by a real xDS client (@grpc/grpc-js-xds)', function () {
  this.timeout(60_000);
  let dir: string;
  let stateDir: string;
  let control: ChildProcessWithoutNullStreams;
  let client: ChildProcessWithoutNullStreams;
  const backends: grpc.Server[] = [];
  let httpUrl = '';
  let ports: Record<string, number> = {};
  const stderrLines: string[] = [];
  let nextId = 0;
  const pending = new Map<number, (r: Reply) => void>();

  const calls = (n: number, headers?: Record<string, string>): Promise<Reply> =>
    new Promise((resolve) => {
      const id = ++nextId;
      pending.set(id, resolve);
      client.stdin.write(JSON.stringify({ id, n, headers }) + '\n');
    });

  const write = (name: string, text: string): void => {
    // Write then rename, so the watcher never sees a half-written file.
    writeFileSync(join(dir, `.${name}.tmp`), text);
    writeFileSync(join(dir, name), text);
    rmSync(join(dir, `.${name}.tmp`), { force: true });
  };

  async function until(pred: (r: Reply) => boolean, headers?: Record<string, string>, timeoutMs = 10_000): Promise<{ reply: Reply; ms: number }> {
    const started = Date.now();
    let reply: Reply;
    do {
      reply = await calls(10, headers);
      if (pred(reply)) return { reply, ms: Date.now() - started };
      await new Promise((r) => setTimeout(r, 50));
    } while (Date.now() - started < timeoutMs);
    throw new Error(`condition not met after ${timeoutMs} ms; last reply ${JSON.stringify(reply)}`);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-xds-'));
    stateDir = mkdtempSync(join(tmpdir(), 'trellis-state-'));
    for (const v of ['v1', 'v2', 'v3']) {
      const b = await startBackend(v);
      backends.push(b.server);
      ports[v] = b.port;
    }
    write('echo-se.yaml', serviceEntry(ports));
    write('echo-dr.yaml', destinationRule());
    control = spawn(process.execPath, [CONTROL_BIN, '--config-dir', dir, '--state-dir', stateDir, '--listen-xds', 'off',
      '--listen-xds-plaintext', '127.0.0.1:0', '--listen-http', '127.0.0.1:0', '--debounce-after', '50ms', '--debounce-max', '500ms'], { stdio: 'pipe' });
    const addresses: Record<string, string> = {};
    await new Promise<void>((resolve, reject) => {
      const rl = createInterface({ input: control.stderr });
      rl.on('line', (line) => {
        stderrLines.push(line);
        try {
          const e = JSON.parse(line) as { event?: string; listener?: string; address?: string };
          if (e.event === 'listening' && e.listener && e.address) addresses[e.listener] = e.address;
          if (addresses['xds-plaintext'] && addresses.http) resolve();
        } catch { /* not a log line */ }
      });
      control.once('exit', (code) => reject(new Error(`trellis-control exited ${code}: ${stderrLines.join('\n')}`)));
    });
    httpUrl = `http://${addresses.http}`;
    const bootstrap = {
      xds_servers: [{ server_uri: addresses['xds-plaintext'], channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: NODE_ID, locality: {}, metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' } },
    };
    client = spawn(process.execPath, ['--import', 'tsx', join(here, 'control-grpc-xds/xds-client.ts'), `${HOST}:${PORT}`], {
      stdio: 'pipe', env: { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap) },
    });
    client.stderr.on('data', () => {});
    createInterface({ input: client.stdout }).on('line', (line) => {
      const r = JSON.parse(line) as Reply;
      pending.get(r.id)?.(r);
      pending.delete(r.id);
    });
  });

  after(async () => {
    client?.stdin.end();
    client?.kill();
    if (control && control.exitCode === null) {
      const exited = new Promise<number | null>((r) => control.once('exit', (c) => r(c)));
      control.kill('SIGTERM');
      expect(await exited).to.equal(0);
    }
    for (const b of backends) b.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('routes to the ServiceEntry endpoints through xds:///HOST:PORT', async () => {
    const { reply } = await until((r) => r.errors === 0 && Object.values(r.counts).reduce((a, b) => a + b, 0) === 10, undefined, 20_000);
    for (const name of Object.keys(reply.counts)) expect(['v1', 'v2', 'v3']).to.include(name);
    const ready = await fetch(`${httpUrl}/ready`);
    expect(ready.status).to.equal(200);
  });

  it('shifts traffic 80/20 with a weighted VirtualService (statistically)', async () => {
    write('echo-vs.yaml', virtualService(weighted(80, 20)));
    await until((r) => r.errors === 0 && (r.counts.v3 ?? 0) === 0 && (r.counts.v1 ?? 0) > 0);
    const r = await calls(400);
    expect(r.errors).to.equal(0);
    const v1 = (r.counts.v1 ?? 0) / 400;
    expect(v1).to.be.within(0.72, 0.88);
    expect((r.counts.v1 ?? 0) + (r.counts.v2 ?? 0)).to.equal(400);
  });

  it('routes a header match deterministically', async () => {
    write('echo-vs.yaml', virtualService(headerRoute));
    await until((r) => r.counts.v3 === 10, { 'x-canary': 'yes' });
    const canary = await calls(50, { 'x-canary': 'yes' });
    expect(canary.counts).to.deep.equal({ v3: 50 });
    const plain = await calls(50);
    expect(plain.counts).to.deep.equal({ v1: 50 });
  });

  it('applies a file edit within 2 s', async () => {
    write('echo-vs.yaml', virtualService(weighted(0, 100)));
    const { ms } = await until((r) => r.counts.v2 === 10, undefined, 5000);
    expect(ms).to.be.below(2000);
  });

  it('keeps routing as it was when the file becomes invalid', async () => {
    write('echo-vs.yaml', virtualService(weighted(0, 150)));
    // Give the watcher and the debounce ample time to act on the bad file.
    await new Promise((r) => setTimeout(r, 1000));
    const r = await calls(50);
    expect(r.counts).to.deep.equal({ v2: 50 });
    const configz = await (await fetch(`${httpUrl}/debug/configz`)).json() as { problems: { file?: string; path: string; message: string }[] };
    expect(configz.problems.some((p) => (p.file ?? '').endsWith('echo-vs.yaml'))).to.equal(true);
  });

  it('shows the client\'s NACK in trellisctl proxy-status', async () => {
    // grpc-js-xds refuses ring_hash minimum_ring_size above 8M (8388608); Istio's API allows it.
    write('echo-dr.yaml', destinationRule('  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpHeaderName: x-user\n        ringHash: { minimumRingSize: 10000000 }\n'));
    let out = '';
    for (let i = 0; i < 100 && !out.includes('NACKED'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      out = (await promisify(execFile)(process.execPath, [CTL_BIN, 'proxy-status', '--control', httpUrl])).stdout;
    }
    expect(out).to.match(/^NAME\s+CLUSTER\s+CDS\s+LDS\s+EDS\s+RDS\s+VERSION/m);
    const row = out.split('\n').find((l) => l.startsWith(NODE_ID))!;
    expect(row).to.match(/\bNACKED\b/);
    expect(out).to.match(/NACK errors:\n.*CDS.*minimum_ring_size is too large/);
    // The last ACKed clusters keep serving.
    const r = await calls(20);
    expect(r.counts).to.deep.equal({ v2: 20 });
  });
});
