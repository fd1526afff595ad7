import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeCa } from '@trellis/testing';
import {
  buildCsr, CertificateManager, generateKey, isRefusal, loadIdentity, readBundle, requestCertificate, saveIdentity,
  type Bundle, type Identity,
} from '../src/index.js';

function writeBundle(dir: string, ca: FakeCa, token?: string): Bundle {
  writeFileSync(join(dir, 'mesh.yaml'), [
    'apiVersion: trellis.dev/v1alpha1', 'kind: VmMesh', `xdsAddress: "${ca.address}"`, 'trustDomain: "cluster.local"',
    'namespace: "shop"', 'serviceAccount: "billing"', 'workloadGroup: "billing-vms"', '',
  ].join('\n'));
  writeFileSync(join(dir, 'root-cert.pem'), ca.rootCertPem);
  if (token) writeFileSync(join(dir, 'token'), `${token}\n`, { mode: 0o600 });
  return readBundle(dir);
}

describe('node-agent: certificate manager against a fake CA', function () {
  this.timeout(30_000);
  let ca: FakeCa;
  let dir: string;
  let bundleDir: string;
  let stateDir: string;

  // One CA for the suite (its keys take a while to generate); each test starts from a clean setting.
  before(async () => {
    ca = new FakeCa({ ttlSeconds: 3600 });
    await ca.listen();
  });
  after(() => ca.close());
  beforeEach(async () => {
    Object.assign(ca, { ttlSeconds: 3600, unavailable: false, hang: false });
    dir = mkdtempSync(join(tmpdir(), 'trellis-agent-'));
    bundleDir = join(dir, 'bundle');
    stateDir = join(dir, 'state');
    mkdirSync(bundleDir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('redeems the join token once, persists key and chain privately, and deletes the token', async () => {
    const token = ca.addToken('shop', 'billing');
    const bundle = writeBundle(bundleDir, ca, token);
    const seen: string[] = [];
    const manager = new CertificateManager({ bundle, stateDir, observer: { identity: (_i, reason) => seen.push(reason) } });
    const identity = await manager.initialize(new AbortController().signal);
    expect(identity.spiffeId).to.equal('spiffe://cluster.local/ns/shop/sa/billing');
    expect(identity.chainPem).to.have.length(2);
    expect(seen).to.deep.equal(['token']);
    expect(ca.issued.at(-1)!.auth).to.equal('token');
    expect(statSync(stateDir).mode & 0o777).to.equal(0o700);
    expect(statSync(join(stateDir, 'key.pem')).mode & 0o777).to.equal(0o600);
    expect(statSync(join(stateDir, 'cert-chain.pem')).mode & 0o777).to.equal(0o600);
    expect(existsSync(join(bundleDir, 'token'))).to.equal(false);

    // The same token presented again is refused by the CA, and the agent would never present it again anyway.
    writeFileSync(join(bundleDir, 'token'), token);
    let refused: unknown;
    try {
      await requestCertificate({ address: ca.address, rootCertsPem: ca.rootCertPem }, {
        csrPem: buildCsr(await generateKey(), identity.spiffeId), validitySeconds: 0, credential: { kind: 'token', token },
      });
    } catch (e) {
      refused = e;
    }
    expect(isRefusal(refused), String(refused)).to.equal(true);
    expect((refused as Error).message).to.match(/UNAUTHENTICATED.*already used/);
  });

  it('comes back from a valid persisted certificate with no token and no CA call', async () => {
    const bundle = writeBundle(bundleDir, ca, ca.addToken('shop', 'billing'));
    const first = await new CertificateManager({ bundle, stateDir }).initialize(new AbortController().signal);
    ca.unavailable = true;
    const calls = ca.calls;
    const seen: string[] = [];
    const again = await new CertificateManager({ bundle, stateDir, observer: { identity: (_i, r) => seen.push(r) } })
      .initialize(new AbortController().signal);
    expect(again.serialNumber).to.equal(first.serialNumber);
    expect(seen).to.deep.equal(['persisted']);
    expect(ca.calls).to.equal(calls);
  });

  it('with an expired certificate and no unused token, fails saying how to get a new token', async () => {
    const bundle = writeBundle(bundleDir, ca, ca.addToken('shop', 'billing'));
    const identity = await new CertificateManager({ bundle, stateDir }).initialize(new AbortController().signal);
    const later = identity.notAfter + 1000;
    let error: (Error & { code?: string }) | undefined;
    try {
      await new CertificateManager({ bundle, stateDir, now: () => later }).initialize(new AbortController().signal);
    } catch (e) {
      error = e as Error & { code?: string };
    }
    expect(error?.code).to.equal('TRELLIS_ERR_TOKEN_NEEDED');
    expect(error?.message).to.contain('expired at');
    expect(error?.message).to.contain('trellisctl vm token --workload-group billing-vms --namespace shop --out DIR');
  });

  it('a refused token fails with TRELLIS_ERR_TOKEN_REFUSED', async () => {
    const bundle = writeBundle(bundleDir, ca, 'never-issued');
    let error: (Error & { code?: string }) | undefined;
    try {
      await new CertificateManager({ bundle, stateDir }).initialize(new AbortController().signal);
    } catch (e) {
      error = e as Error & { code?: string };
    }
    expect(error?.code).to.equal('TRELLIS_ERR_TOKEN_REFUSED');
    expect(error?.message).to.contain('trellisctl vm token');
  });

  it('retries with backoff while the CA is away, then renews over mTLS with a new key', async () => {
    const bundle = writeBundle(bundleDir, ca, ca.addToken('shop', 'billing'));
    const delays: number[] = [];
    const controller = new AbortController();
    const identities: Identity[] = [];
    let errors = 0;
    const manager = new CertificateManager({
      bundle, stateDir, random: () => 1, backoff: { initialMs: 100, maxMs: 400 },
      observer: { caError: () => errors++ },
      // An injected sleep: records the delay asked for and returns at once, driving the schedule without waiting.
      sleep: async (ms) => {
        delays.push(Math.round(ms));
        if (delays.length === 2) ca.unavailable = true;
        if (delays.length === 5) ca.unavailable = false;
        if (identities.length >= 3) controller.abort();
        if (controller.signal.aborted) throw new Error('aborted');
      },
    });
    manager.onIdentity((i) => identities.push(i));
    const first = await manager.initialize(controller.signal);
    await manager.run(controller.signal);
    expect(identities).to.have.length(3);
    const [initial, renewed, third] = identities;
    expect(initial).to.equal(first);
    expect(third!.spiffeId).to.equal(first.spiffeId);
    expect(renewed!.keyPem).to.not.equal(first.keyPem);
    expect(ca.issued.slice(-3).map((i) => i.auth)).to.deep.equal(['token', 'certificate', 'certificate']);
    // delay 1: renewal wait; 2: renewal wait after the first renewal (CA then goes away); 3–5 backoff 100, 200, 400.
    expect(delays.slice(2, 5)).to.deep.equal([100, 200, 400]);
    expect(errors).to.equal(3);
    const persisted = loadIdentity(stateDir).identity!;
    expect(persisted.serialNumber).to.equal(third!.serialNumber);
  });

  it('cancels an outstanding CSR when stopped, instead of waiting for the deadline', async () => {
    const bundle = writeBundle(bundleDir, ca, ca.addToken('shop', 'billing'));
    ca.hang = true;
    const controller = new AbortController();
    const pending = new CertificateManager({ bundle, stateDir }).initialize(controller.signal);
    while (ca.calls === 0) await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    let error: Error | undefined;
    try {
      await pending;
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).to.match(/CANCELLED/);
    expect(existsSync(join(bundleDir, 'token')), 'token kept: it was never redeemed').to.equal(true);
  });

  it('refuses to use a persisted certificate whose key does not match', async () => {
    const bundle = writeBundle(bundleDir, ca, ca.addToken('shop', 'billing'));
    const identity = await new CertificateManager({ bundle, stateDir }).initialize(new AbortController().signal);
    saveIdentity(stateDir, { ...identity, keyPem: await generateKey() });
    expect(loadIdentity(stateDir).problem).to.match(/does not match the private key/);
    expect(readFileSync(join(stateDir, 'redeemed-tokens'), 'utf8').trim()).to.match(/^[0-9a-f]{64}$/);
  });
});
