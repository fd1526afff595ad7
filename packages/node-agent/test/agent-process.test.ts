import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeCa, SdsTestClient } from '@trellis/testing';
import { CertificateManager, readBundle } from '../src/index.js';

const BIN = fileURLToPath(new URL('../bin/trellis-agent.js', import.meta.url));

interface Agent {
  readonly child: ChildProcess;
  readonly stderr: () => string;
  readonly httpAddress: Promise<string>;
  readonly exit: Promise<number | null>;
}

function startAgent(args: string[], env: NodeJS.ProcessEnv = {}): Agent {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NOTIFY_SOCKET: '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  let resolveAddress: (a: string) => void = () => {};
  const httpAddress = new Promise<string>((resolve) => (resolveAddress = resolve));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    text += chunk;
    const m = /"msg":"health and metrics listening","address":"([^"]+)"/.exec(text);
    if (m) resolveAddress(m[1]!);
  });
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  return { child, stderr: () => text, httpAddress, exit };
}

async function waitReady(address: string, agent: Agent): Promise<void> {
  for (;;) {
    const res = await fetch(`http://${address}/healthz/ready`).catch(() => null);
    if (res?.status === 200) return;
    if (agent.child.exitCode !== null) throw new Error(`agent exited: ${agent.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('node-agent: trellis-agent process', function () {
  this.timeout(40_000);
  let ca: FakeCa;
  let dir: string;
  let bundleDir: string;
  let stateDir: string;
  let socket: string;
  const agents: Agent[] = [];

  before(async () => {
    ca = new FakeCa();
    await ca.listen();
  });
  after(() => ca.close());
  beforeEach(async () => {
    ca.ttlSeconds = 4;
    dir = mkdtempSync(join(tmpdir(), 'trellis-agent-proc-'));
    bundleDir = join(dir, 'bundle');
    stateDir = join(dir, 'state');
    socket = join(dir, 'run', 'sds', 'socket');
    mkdirSync(bundleDir);
    writeFileSync(join(bundleDir, 'mesh.yaml'), `xdsAddress: "${ca.address}"\ntrustDomain: cluster.local\nnamespace: shop\nserviceAccount: billing\nworkloadGroup: billing-vms\n`);
    writeFileSync(join(bundleDir, 'root-cert.pem'), ca.rootCertPem);
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) if (a.child.exitCode === null) {
      a.child.kill('SIGKILL');
      await a.exit;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const args = (): string[] => ['--bundle', bundleDir, '--state-dir', stateDir, '--sds-socket', socket, '--listen-http', '127.0.0.1:0', '--dns-listen', '127.0.0.1:0'];

  it('gets a certificate with the token, serves SDS and metrics, rotates, stops on SIGTERM, and restarts without a token', async () => {
    writeFileSync(join(bundleDir, 'token'), ca.addToken('shop', 'billing'));
    const issuedBefore = ca.issued.length;
    const agent = startAgent(args());
    agents.push(agent);
    const address = await agent.httpAddress;
    await waitReady(address, agent);
    expect(existsSync(join(bundleDir, 'token'))).to.equal(false);

    const sds = new SdsTestClient(socket, ['default', 'ROOTCA']);
    try {
      const [first] = await sds.waitFor(1);
      expect(first!.secrets.map((s) => s.name).sort()).to.deep.equal(['ROOTCA', 'default']);
      // 4-second certificates: the renewal (over mTLS) is pushed on the open stream.
      const responses = await sds.waitFor(2);
      expect(responses[1]!.secrets[0]!.certificateChain).to.not.equal(first!.secrets.find((s) => s.name === 'default')!.certificateChain);
    } finally {
      sds.close();
    }
    const issuedHere = ca.issued.slice(issuedBefore);
    expect(issuedHere.map((i) => i.auth).slice(0, 2)).to.deep.equal(['token', 'certificate']);

    const metrics = await (await fetch(`http://${address}/metrics`)).text();
    expect(metrics).to.match(/trellis_agent_cert_expiry_timestamp_seconds \d/);
    expect(metrics).to.match(/trellis_agent_cert_expiry_seconds -?\d/);
    expect(metrics).to.match(/trellis_agent_cert_rotations_total\{reason="renewal"\} [1-9]/);
    expect(metrics).to.contain('trellis_agent_sds_clients_connected');

    agent.child.kill('SIGTERM');
    expect(await agent.exit).to.equal(0);
    expect(existsSync(socket)).to.equal(false);

    const again = startAgent(args());
    agents.push(again);
    await waitReady(await again.httpAddress, again);
    expect(again.stderr()).to.contain('"reason":"persisted"');
    again.child.kill('SIGTERM');
    expect(await again.exit).to.equal(0);
  });

  it('with an expired certificate and no token, exits 3 saying that a new token is needed', async () => {
    ca.ttlSeconds = 1;
    const bundle = readBundle(bundleDir);
    writeFileSync(join(bundleDir, 'token'), ca.addToken('shop', 'billing'));
    const identity = await new CertificateManager({ bundle, stateDir }).initialize(new AbortController().signal);
    await new Promise((r) => setTimeout(r, Math.max(0, identity.notAfter - Date.now()) + 100));
    const agent = startAgent(args());
    agents.push(agent);
    expect(await agent.exit).to.equal(3);
    expect(agent.stderr()).to.match(/expired at .* a new join token is needed: mint a new one .*trellisctl vm token --workload-group billing-vms --namespace shop --out DIR/);
  });

  it('exits 2 naming the file when the bundle is incomplete', async () => {
    rmSync(join(bundleDir, 'root-cert.pem'));
    const agent = startAgent(args());
    agents.push(agent);
    expect(await agent.exit).to.equal(2);
    expect(agent.stderr()).to.contain('cannot read root-cert.pem');
  });

  it('lists every flag with its environment variable and default in --help', async () => {
    const child = spawn(process.execPath, [BIN, '--help'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await once(child, 'exit');
    for (const s of ['--bundle', 'TRELLIS_BUNDLE_DIR', '--state-dir', 'TRELLIS_STATE_DIR', '/var/lib/trellis', '--sds-socket',
      'TRELLIS_SDS_SOCKET', '/var/run/trellis/sds/socket', '--listen-http', 'TRELLIS_LISTEN_HTTP', '127.0.0.1:15020',
      '--socket-group', 'TRELLIS_SOCKET_GROUP', '--dns-listen', 'TRELLIS_DNS_LISTEN', '127.0.0.1:15053']) expect(out).to.contain(s);
  });
});
