/**
 * Done-when of issue 4 over loopback: trellis-control (real CA, TLS gRPC port, token API) + `trellisctl vm
 * configure` + trellis-agent, observed through a test SDS client built on @grpc/grpc-js and Envoy's SDS protos,
 * and checked with openssl.
 *
 * The 20-second lifetime is asked for by the agent (`--cert-ttl 20`, the CSR's validity_duration), which the CA
 * honours below its maximum; the control plane has no flag for its default workload lifetime.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SdsTestClient, type SdsResponseView } from '@trellis/testing';
import { buildCsr, generateKey, isRefusal, requestCertificate } from '@trellis/node-agent';
import { AGENT_BIN, CONTROL_BIN, CTL_BIN, ctl, start, stop, waitHttp, type Proc } from './processes.js';

const SPIFFE_ID = 'spiffe://cluster.local/ns/shop/sa/billing';

const WORKLOAD_GROUP = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: billing-vms
  namespace: shop
spec:
  metadata:
    labels:
      app: billing
  template:
    serviceAccount: billing
    ports:
      http: 8080
`;

function leafOf(response: SdsResponseView): X509Certificate {
  const chain = response.secrets.find((s) => s.name === 'default')!.certificateChain!;
  return new X509Certificate(chain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)![0]);
}

describe('identity end to end: trellis-control + trellisctl vm configure + trellis-agent', function () {
  this.timeout(120_000);
  let dir: string;
  let control: Proc;
  let httpAddress: string;
  let expiredScenario: Promise<{ code: number | null; output: string }>;
  const procs: Proc[] = [];
  const clients: SdsTestClient[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'trellis-identity-e2e-'));
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'config', 'billing-vms.yaml'), WORKLOAD_GROUP);
    control = start(CONTROL_BIN, [
      '--config-dir', join(dir, 'config'), '--state-dir', join(dir, 'control-state'),
      '--listen-xds', '127.0.0.1:0', '--listen-xds-plaintext', 'off', '--listen-http', '127.0.0.1:0',
    ]);
    procs.push(control);
    httpAddress = await control.waitFor(/"listener":"http","address":"([^"]+)"/, 'the control plane HTTP listener');
    await control.waitFor(/"listener":"xds","address":"([^"]+)"/, 'the control plane xDS listener');
    await waitHttp(`http://${httpAddress}/ready`, (s) => s === 200);
    // Runs alongside the first test (which mostly waits for rotations): a second VM with 2-second certificates is
    // onboarded, stopped, left until its certificate expired, and started again.
    expiredScenario = (async () => {
      await configure('vm2');
      const agent = start(AGENT_BIN, agentArgs('vm2', 2));
      procs.push(agent);
      const agentHttp = await agent.waitFor(/"msg":"health and metrics listening","address":"([^"]+)"/, 'the agent HTTP listener');
      await waitHttp(`http://${agentHttp}/healthz/ready`, (st) => st === 200);
      if ((await stop(agent)) !== 0) throw new Error(`vm2 agent did not stop cleanly:\n${agent.output()}`);
      const persisted = new X509Certificate(readFileSync(join(dir, 'vm2-state', 'cert-chain.pem')));
      await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(persisted.validTo) - Date.now()) + 1100));
      const again = start(AGENT_BIN, agentArgs('vm2', 2));
      procs.push(again);
      return { code: await again.exit, output: again.output() };
    })();
    expiredScenario.catch(() => {}); // asserted in its own test
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const p of procs.reverse()) await stop(p);
    rmSync(dir, { recursive: true, force: true });
  });

  const agentArgs = (name: string, ttl: number): string[] => [
    '--bundle', join(dir, `${name}-bundle`), '--state-dir', join(dir, `${name}-state`),
    '--sds-socket', join(dir, `${name}-run`, 'sds', 'socket'), '--listen-http', '127.0.0.1:0', '--dns-listen', '127.0.0.1:0', '--cert-ttl', String(ttl),
  ];

  async function configure(name: string): Promise<string> {
    const bundle = join(dir, `${name}-bundle`);
    // The WorkloadGroup reaches the token API with the first snapshot; retry briefly until it does.
    for (let attempt = 0; ; attempt++) {
      const r = await ctl(['vm', 'configure', '--workload-group', 'billing-vms', '--namespace', 'shop', '--out', bundle, '--control', `http://${httpAddress}`]);
      if (r.code === 0) return r.out;
      if (attempt > 20 || !r.out.includes('TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN')) throw new Error(`vm configure failed (${r.code}):\n${r.out}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  it('onboards a VM: token → certificate, SDS default and ROOTCA, rotation without a gap, openssl, restart', async () => {
    const out = await configure('vm1');
    expect(out).to.contain(SPIFFE_ID);
    const bundle = join(dir, 'vm1-bundle');
    for (const f of ['mesh.yaml', 'root-cert.pem', 'token', 'agent.env']) expect(existsSync(join(bundle, f)), f).to.equal(true);
    expect(statSync(join(bundle, 'token')).mode & 0o777).to.equal(0o600);
    const token = readFileSync(join(bundle, 'token'), 'utf8').trim();
    const rootPem = readFileSync(join(bundle, 'root-cert.pem'), 'utf8');
    const xdsAddress = /xdsAddress: "([^"]+)"/.exec(readFileSync(join(bundle, 'mesh.yaml'), 'utf8'))![1]!;

    // The agent redeems the token for its certificate.
    const agent = start(AGENT_BIN, agentArgs('vm1', 20));
    procs.push(agent);
    const agentHttp = await agent.waitFor(/"msg":"health and metrics listening","address":"([^"]+)"/, 'the agent HTTP listener');
    await waitHttp(`http://${agentHttp}/healthz/ready`, (s) => s === 200);
    expect(existsSync(join(bundle, 'token')), 'token file deleted after use').to.equal(false);
    expect(statSync(join(dir, 'vm1-state')).mode & 0o777).to.equal(0o700);
    expect(statSync(join(dir, 'vm1-state', 'key.pem')).mode & 0o777).to.equal(0o600);
    expect(statSync(join(dir, 'vm1-state', 'cert-chain.pem')).mode & 0o777).to.equal(0o600);

    // The same token, presented again directly to CreateCertificate, is refused.
    let refused: unknown;
    try {
      await requestCertificate({ address: xdsAddress, rootCertsPem: rootPem }, {
        csrPem: buildCsr(await generateKey(), SPIFFE_ID), validitySeconds: 20, credential: { kind: 'token', token },
      });
    } catch (e) {
      refused = e;
    }
    expect(refused, 'reused token must be refused').to.be.instanceOf(Error);
    expect(isRefusal(refused), String(refused)).to.equal(true);

    // A test SDS client gets default and ROOTCA …
    const sds = new SdsTestClient(join(dir, 'vm1-run', 'sds', 'socket'), ['default', 'ROOTCA']);
    clients.push(sds);
    const [first] = await sds.waitFor(1);
    expect(first!.secrets.map((s) => s.name).sort()).to.deep.equal(['ROOTCA', 'default']);
    const rootca = first!.secrets.find((s) => s.name === 'ROOTCA')!.trustedCa!;
    expect(rootca.replace(/\s+/g, '')).to.contain(rootPem.replace(/\s+/g, ''));
    const firstLeaf = leafOf(first!);
    // 20 seconds of life from issuance (the CA may backdate notBefore against clock skew).
    expect(Date.parse(firstLeaf.validTo) - first!.receivedAt).to.be.within(10_000, 21_000);

    // … and, with 20-second certificates, two rotations pushed on the open stream, each valid before the last expired.
    const responses = await sds.waitFor(3, 60_000);
    for (let i = 1; i < 3; i++) {
      const previous = leafOf(responses[i - 1]!);
      const next = leafOf(responses[i]!);
      expect(next.serialNumber).to.not.equal(previous.serialNumber);
      expect(Date.parse(next.validFrom)).to.be.at.most(responses[i]!.receivedAt);
      expect(responses[i]!.receivedAt, `rotation ${i} arrived before the previous certificate expired`).to.be.below(Date.parse(previous.validTo));
    }

    // openssl accepts the served chain against the root and shows the SPIFFE id.
    const served = responses[2]!.secrets.find((s) => s.name === 'default')!.certificateChain!;
    const pems = served.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
    writeFileSync(join(dir, 'leaf.pem'), `${pems[0]}\n`);
    writeFileSync(join(dir, 'intermediates.pem'), pems.slice(1).join('\n') + '\n');
    writeFileSync(join(dir, 'root.pem'), rootca);
    const verifyArgs = ['verify', '-CAfile', join(dir, 'root.pem'), ...(pems.length > 1 ? ['-untrusted', join(dir, 'intermediates.pem')] : []), join(dir, 'leaf.pem')];
    expect(execFileSync('openssl', verifyArgs, { encoding: 'utf8' }).trim()).to.equal(`${join(dir, 'leaf.pem')}: OK`);
    const san = execFileSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', join(dir, 'leaf.pem')], { encoding: 'utf8' });
    expect(san).to.contain(`URI:${SPIFFE_ID}`);

    const metrics = await (await fetch(`http://${agentHttp}/metrics`)).text();
    expect(metrics).to.match(/trellis_agent_cert_rotations_total\{reason="renewal"\} [2-9]/);
    expect(metrics).to.match(/trellis_agent_sds_clients_connected 1/);

    // Restarted with its persisted (valid) certificate, the agent comes back without a token.
    sds.close();
    expect(await stop(agent)).to.equal(0);
    const again = start(AGENT_BIN, agentArgs('vm1', 20));
    procs.push(again);
    const againHttp = await again.waitFor(/"msg":"health and metrics listening","address":"([^"]+)"/, 'the restarted agent');
    await waitHttp(`http://${againHttp}/healthz/ready`, (s) => s === 200);
    expect(again.output()).to.contain('"reason":"persisted"');
    expect(await stop(again)).to.equal(0);
  });

  it('an agent whose persisted certificate expired, with no token, exits non-zero saying what to do', async () => {
    const { code, output } = await expiredScenario;
    expect(code).to.not.equal(0);
    expect(output).to.match(/persisted certificate expired at .*a new join token is needed: .*trellisctl vm token --workload-group billing-vms --namespace shop --out DIR/);
  });
});
