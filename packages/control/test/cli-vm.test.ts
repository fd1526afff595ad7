import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createProgram, runProgram } from '../src/cli/program.js';
import { registerVm, renderAgentEnv, renderMeshYaml } from '../src/cli/vm.js';

const ROOT = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';

/** The control plane's token API as documented (POST/GET/DELETE /v1/tokens, GET /v1/mesh), in memory. */
function fakeControl(mesh: Record<string, string> = {}): { server: Server; requests: { method: string; path: string; body: unknown }[]; url: () => string } {
  const requests: { method: string; path: string; body: unknown }[] = [];
  const tokens = new Map<string, { id: string; namespace: string; workloadGroup: string; revoked: boolean }>();
  let n = 0;
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const body = raw ? JSON.parse(raw) as Record<string, unknown> : undefined;
      requests.push({ method: req.method!, path: req.url!, body });
      const json = (status: number, value?: unknown): void => {
        res.writeHead(status, value === undefined ? {} : { 'content-type': 'application/json' }).end(value === undefined ? undefined : JSON.stringify(value));
      };
      if (req.method === 'GET' && req.url === '/v1/mesh') {
        return json(200, { trustDomain: 'example.org', clusterId: 'vm-cluster', network: 'net-1', xdsAddress: '127.0.0.1:15012', rootCertsPem: ROOT, ...mesh });
      }
      if (req.method === 'POST' && req.url === '/v1/tokens') {
        if (body!.workloadGroup !== 'billing-vms') return json(404, { code: 'TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN', message: `no WorkloadGroup ${String(body!.namespace)}/${String(body!.workloadGroup)}` });
        const id = `t${++n}`;
        tokens.set(id, { id, namespace: body!.namespace as string, workloadGroup: 'billing-vms', revoked: false });
        return json(201, { id, token: `secret-${n}`, expiresAt: '2030-01-01T00:10:00.000Z', namespace: body!.namespace, serviceAccount: 'billing', workloadGroup: 'billing-vms' });
      }
      if (req.method === 'GET' && req.url === '/v1/tokens') {
        return json(200, [...tokens.values()].map((t) => ({ ...t, serviceAccount: 'billing', expiresAt: '2030-01-01T00:10:00.000Z', used: false })));
      }
      const del = /^\/v1\/tokens\/([^/]+)$/.exec(req.url!);
      if (req.method === 'DELETE' && del) {
        const t = tokens.get(del[1]!);
        if (!t) return json(404, { code: 'TRELLIS_ERR_TOKEN_UNKNOWN', message: `no token with id ${del[1]}` });
        t.revoked = true;
        return json(204);
      }
      json(404, { code: 'NOT_FOUND', message: 'not found' });
    });
  });
  return { server, requests, url: () => `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

async function run(args: string[]): Promise<{ status: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (c: Buffer) => (o += c.toString()));
  err.on('data', (c: Buffer) => (e += c.toString()));
  const program = createProgram().configureOutput({ writeOut: (s) => (o += s), writeErr: (s) => (e += s) });
  registerVm(program, { out, err });
  const stderrWrite = process.stderr.write;
  // runProgram reports UsageErrors on process.stderr; capture them for the assertions.
  process.stderr.write = ((s: string) => ((e += s), true)) as typeof process.stderr.write;
  let status: number;
  try {
    status = await runProgram(program, ['node', 'trellisctl', ...args]);
  } finally {
    process.stderr.write = stderrWrite;
    process.exitCode = undefined;
  }
  return { status, out: o, err: e };
}

describe('trellisctl vm', () => {
  let control: ReturnType<typeof fakeControl>;
  let dir: string;
  beforeEach(async () => {
    control = fakeControl();
    await new Promise<void>((r) => control.server.listen(0, '127.0.0.1', r));
    dir = mkdtempSync(join(tmpdir(), 'trellis-cli-vm-'));
  });
  afterEach(async () => {
    await new Promise((r) => control.server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('configure writes mesh.yaml, root-cert.pem, a 0600 token and agent.env', async () => {
    const out = join(dir, 'bundle');
    const r = await run(['vm', 'configure', '--workload-group', 'billing-vms', '--namespace', 'shop', '--out', out,
      '--control', control.url(), '--xds-address', 'cp.example.org:15012', '--token-ttl', '15m']);
    expect(r.err).to.equal('');
    expect(r.status).to.equal(0);
    expect(r.out).to.contain('spiffe://example.org/ns/shop/sa/billing');
    expect(r.out).to.contain('token:      t1');
    expect(control.requests.find((q) => q.method === 'POST')!.body).to.deep.equal({ namespace: 'shop', workloadGroup: 'billing-vms', ttlSeconds: 900 });
    expect(readFileSync(join(out, 'mesh.yaml'), 'utf8')).to.contain('xdsAddress: "cp.example.org:15012"\ntrustDomain: "example.org"\nnamespace: "shop"\nserviceAccount: "billing"\nworkloadGroup: "billing-vms"\nclusterId: "vm-cluster"\nnetwork: "net-1"\n');
    expect(readFileSync(join(out, 'root-cert.pem'), 'utf8')).to.equal(ROOT);
    expect(readFileSync(join(out, 'token'), 'utf8')).to.equal('secret-1\n');
    expect(statSync(join(out, 'token')).mode & 0o777).to.equal(0o600);
    expect(statSync(out).mode & 0o777).to.equal(0o700);
    const env = readFileSync(join(out, 'agent.env'), 'utf8');
    expect(env).to.contain('TRELLIS_BUNDLE_DIR=/etc/trellis\n');
    expect(env).to.contain('TRELLIS_XDS_ADDRESS=cp.example.org:15012\n');
    expect(env).to.contain('TRELLIS_SERVICE_ACCOUNT=billing\n');
  });

  it('configure defaults the xDS address to the control plane\'s own', async () => {
    const out = join(dir, 'b');
    const r = await run(['vm', 'configure', '--workload-group', 'billing-vms', '-n', 'shop', '--out', out, '--control', control.url()]);
    expect(r.status).to.equal(0);
    expect(readFileSync(join(out, 'mesh.yaml'), 'utf8')).to.contain('xdsAddress: "127.0.0.1:15012"');
    expect(control.requests.find((q) => q.method === 'POST')!.body).to.deep.equal({ namespace: 'shop', workloadGroup: 'billing-vms' });
  });

  it('configure refuses a wildcard listen address as what the VM dials', async () => {
    await new Promise((r) => control.server.close(r));
    control = fakeControl({ xdsAddress: '0.0.0.0:15012' });
    await new Promise<void>((r) => control.server.listen(0, '127.0.0.1', r));
    const r = await run(['vm', 'configure', '--workload-group', 'billing-vms', '-n', 'shop', '--out', join(dir, 'x'), '--control', control.url()]);
    expect(r.status).to.equal(2);
    expect(r.err).to.contain('pass --xds-address');
  });

  it('reports an unknown WorkloadGroup with the server\'s message and status 1, writing nothing', async () => {
    const out = join(dir, 'nope');
    const r = await run(['vm', 'configure', '--workload-group', 'ghost', '-n', 'shop', '--out', out, '--control', control.url()]);
    expect(r.status).to.equal(1);
    expect(r.err).to.equal('trellisctl: POST /v1/tokens: no WorkloadGroup shop/ghost (TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN)\n');
    expect(() => statSync(out)).to.throw();
  });

  it('rejects bad --token-ttl and --xds-address before calling the control plane', async () => {
    const a = await run(['vm', 'configure', '--workload-group', 'g', '-n', 'shop', '--out', dir, '--control', control.url(), '--token-ttl', 'soon']);
    expect(a.status).to.equal(2);
    expect(a.err).to.contain('--token-ttl: "soon" is not a duration');
    const b = await run(['vm', 'configure', '--workload-group', 'g', '-n', 'shop', '--out', dir, '--control', control.url(), '--xds-address', 'no-port']);
    expect(b.status).to.equal(2);
    expect(b.err).to.contain('--xds-address: "no-port" is not HOST:PORT');
    expect(control.requests).to.have.length(0);
  });

  it('says plainly when the control plane cannot be reached', async () => {
    const url = control.url();
    await new Promise((r) => control.server.close(r));
    const r = await run(['vm', 'token', '--workload-group', 'billing-vms', '-n', 'shop', '--control', url]);
    await new Promise<void>((r2) => control.server.listen(0, '127.0.0.1', r2));
    expect(r.status).to.equal(1);
    expect(r.err).to.equal(`trellisctl: cannot reach the control plane at ${url} (ECONNREFUSED)\n`);
  });

  it('token mints into a bundle dir or prints the token, tokens lists, revoke revokes', async () => {
    const out = join(dir, 'bundle');
    const a = await run(['vm', 'token', '--workload-group', 'billing-vms', '-n', 'shop', '--out', out, '--control', control.url()]);
    expect(a.status).to.equal(0);
    expect(readFileSync(join(out, 'token'), 'utf8')).to.equal('secret-1\n');
    expect(statSync(join(out, 'token')).mode & 0o777).to.equal(0o600);
    const b = await run(['vm', 'token', '--workload-group', 'billing-vms', '-n', 'shop', '--control', control.url()]);
    expect(b.out).to.equal('secret-2\n');
    expect(b.err).to.contain('token t2 for shop/billing');
    const c = await run(['vm', 'revoke', 't1', '--control', control.url()]);
    expect(c.status).to.equal(0);
    expect(c.out).to.equal('revoked token t1\n');
    const list = await run(['vm', 'tokens', '--control', control.url()]);
    expect(list.out).to.match(/^ID\s+NAMESPACE\s+SERVICE ACCOUNT\s+WORKLOAD GROUP\s+EXPIRES\s+STATE\n/);
    expect(list.out).to.match(/t1 .*revoked\n/);
    expect(list.out).to.match(/t2 .*unused\n/);
    const d = await run(['vm', 'revoke', 'zzz', '--control', control.url()]);
    expect(d.status).to.equal(1);
    expect(d.err).to.contain('no token with id zzz');
  });

  it('renders values that need it quoted', () => {
    const mesh = { trustDomain: 'td', clusterId: 'c 1', network: '', xdsAddress: 'x:1', rootCertsPem: ROOT };
    const who = { namespace: 'ns', serviceAccount: 'sa', workloadGroup: 'g' };
    expect(renderAgentEnv(mesh, who, 'x:1', '/etc/trellis')).to.contain('TRELLIS_CLUSTER_ID="c 1"\nTRELLIS_NETWORK=\n');
    expect(renderMeshYaml(mesh, who, 'x:1')).to.contain('clusterId: "c 1"\nnetwork: ""\n');
  });
});
