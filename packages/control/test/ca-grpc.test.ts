/**
 * The CSR service over real TLS on a loopback port, driven by a client built from the same protos: first
 * certificate with a join token, renewal over mTLS with the issued certificate, and each refusal class. Also the
 * serving certificate's rotation and the token admin routes over HTTP.
 */
import { expect } from 'chai';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { grpcService } from '@trellis/api';
import {
  addCertificateService, CertificateAuthority, ERROR_CODE_METADATA, JoinTokens, serverCredentials, tokenRoutes,
  TRUST_BUNDLE_METADATA, type CaHttpRoute,
} from '../src/ca/index.js';
import { buildCsr, keyPool, openssl, tempDir, writePem, type San } from './ca-fixtures.js';

const TD = 'cluster.local';
const BINDING = { namespace: 'shop', serviceAccount: 'billing', workloadGroup: 'billing-vms' };
const BILLING_ID = 'spiffe://cluster.local/ns/shop/sa/billing';

interface Reply {
  err: grpc.ServiceError | null;
  chain?: string[];
  headers?: grpc.Metadata;
}

describe('ca: CreateCertificate over gRPC + TLS', function () {
  this.timeout(30_000);
  let dir: { path: string; cleanup(): void };
  let ca: CertificateAuthority;
  let tokens: JoinTokens;
  let server: grpc.Server;
  let tls: ReturnType<typeof serverCredentials>;
  let port: number;
  let now = Date.now();
  const registry = new Registry();
  const lines: Array<{ level: string; message: string; fields?: Record<string, unknown> }> = [];
  const Client = grpcService('istio.v1.auth.IstioCertificateService');
  const clients: grpc.Client[] = [];

  before(async () => {
    dir = tempDir();
    ca = await CertificateAuthority.open({ stateDir: dir.path, trustDomain: TD, keyBits: 2048, maxTtlSeconds: 7 * 24 * 3600 });
    tokens = await JoinTokens.open({ stateDir: dir.path, clock: () => now });
    server = new grpc.Server();
    addCertificateService(server, {
      ca, tokens, metrics: registry,
      logger: {
        info: (message, fields) => lines.push({ level: 'info', message, fields }),
        warn: (message, fields) => lines.push({ level: 'warn', message, fields }),
      },
    });
    tls = serverCredentials(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', tls.credentials, (e, p) => (e ? reject(e) : resolve(p))));
  });

  after(async () => {
    for (const c of clients) c.close();
    tls.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    dir.cleanup();
  });

  function client(identity?: { keyPem: string; chainPem: string }, rootPem = ca.trustBundlePem()): grpc.Client & Record<string, unknown> {
    const creds = identity
      ? grpc.credentials.createSsl(Buffer.from(rootPem), Buffer.from(identity.keyPem), Buffer.from(identity.chainPem))
      : grpc.credentials.createSsl(Buffer.from(rootPem));
    const c = new Client(`127.0.0.1:${port}`, creds, { 'grpc.ssl_target_name_override': 'localhost' }) as grpc.Client & Record<string, unknown>;
    clients.push(c);
    return c;
  }

  function call(c: grpc.Client & Record<string, unknown>, req: { csr: string; validity_duration?: number | string }, token?: string): Promise<Reply> {
    const md = new grpc.Metadata();
    if (token) md.set('authorization', `Bearer ${token}`);
    return new Promise((resolve) => {
      let headers: grpc.Metadata | undefined;
      const fn = c.CreateCertificate as (r: unknown, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: { cert_chain: string[] }) => void) => grpc.ClientUnaryCall;
      const unary = fn.call(c, req, md, (err, res) => resolve({ err, chain: res?.cert_chain, headers }));
      unary.on('metadata', (m: grpc.Metadata) => {
        headers = m;
      });
    });
  }

  const rsa = (i = 0): KeyObject => keyPool().rsa2048[i];
  const csr = (sans?: San[], key = rsa()): string => buildCsr({ key, sans });

  let issuedKeyPem = '';
  let issuedChain: string[] = [];

  it('issues the first certificate for a join token, with the bound identity, leaf first and root last', async () => {
    const { token } = await tokens.mint(BINDING);
    const reply = await call(client(), { csr: csr([{ type: 'URI', value: BILLING_ID }]), validity_duration: 3600 }, token);
    expect(reply.err).to.equal(null);
    const chain = reply.chain ?? [];
    expect(chain).to.have.length(2);
    expect(new X509Certificate(chain[0]).subjectAltName).to.equal(`URI:${BILLING_ID}`);
    expect(chain[1]).to.equal(ca.rootCertPem());
    expect(reply.headers?.get(TRUST_BUNDLE_METADATA)[0].toString()).to.equal(ca.trustBundlePem());
    const d = tempDir();
    try {
      expect(openssl(['verify', '-CAfile', writePem(d.path, 'root.pem', chain[chain.length - 1]), writePem(d.path, 'leaf.pem', chain[0])])).to.contain('OK');
    } finally {
      d.cleanup();
    }
    issuedKeyPem = rsa().export({ format: 'pem', type: 'pkcs8' }).toString();
    issuedChain = chain;
    expect(tokens.list().find((t) => t.used)?.workloadGroup).to.equal('billing-vms');
    const line = lines.find((l) => l.message === 'certificate issued');
    expect(line?.fields).to.include({ spiffeId: BILLING_ID, via: 'join-token', workloadGroup: 'billing-vms' });
  });

  it('renews over mTLS with the issued certificate (no token), for the same identity and a new key', async () => {
    const renewer = client({ keyPem: issuedKeyPem, chainPem: issuedChain.join('') });
    const reply = await call(renewer, { csr: csr(undefined, rsa(1)) });
    expect(reply.err).to.equal(null);
    const leaf = new X509Certificate(reply.chain?.[0] ?? '');
    expect(leaf.subjectAltName).to.equal(`URI:${BILLING_ID}`);
    expect(leaf.checkPrivateKey(rsa(1))).to.equal(true);
    expect(lines.filter((l) => l.message === 'certificate issued').at(-1)?.fields).to.include({ via: 'mtls', peerSpiffeId: BILLING_ID });
  });

  it('a renewal cannot ask for another identity', async () => {
    const renewer = client({ keyPem: issuedKeyPem, chainPem: issuedChain.join('') });
    const reply = await call(renewer, { csr: csr([{ type: 'URI', value: 'spiffe://cluster.local/ns/shop/sa/admin' }]) });
    expect(reply.err?.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(reply.err?.details).to.match(/caller is spiffe:\/\/cluster.local\/ns\/shop\/sa\/billing/);
  });

  it('refuses each class with a clear status, without burning the token on a bad CSR', async () => {
    const k = keyPool();
    const { token } = await tokens.mint(BINDING);
    const anon = client();
    const cases: Array<[string, { csr: string; validity_duration?: number }, number, string]> = [
      ['other SPIFFE id', { csr: csr([{ type: 'URI', value: 'spiffe://cluster.local/ns/kube-system/sa/admin' }]) }, grpc.status.PERMISSION_DENIED, 'TRELLIS_ERR_CSR_IDENTITY_MISMATCH'],
      ['DNS SAN', { csr: csr([{ type: 'DNS', value: 'billing.shop.svc' }]) }, grpc.status.PERMISSION_DENIED, 'TRELLIS_ERR_CSR_IDENTITY_MISMATCH'],
      ['CA:true', { csr: buildCsr({ key: rsa(), ca: true }) }, grpc.status.PERMISSION_DENIED, 'TRELLIS_ERR_CSR_CA_REQUESTED'],
      ['keyCertSign', { csr: buildCsr({ key: rsa(), keyCertSign: true }) }, grpc.status.PERMISSION_DENIED, 'TRELLIS_ERR_CSR_CA_REQUESTED'],
      ['RSA 1024', { csr: buildCsr({ key: k.rsa1024 }) }, grpc.status.INVALID_ARGUMENT, 'TRELLIS_ERR_CSR_WEAK_KEY'],
      ['Ed25519', { csr: buildCsr({ key: k.ed25519 }) }, grpc.status.INVALID_ARGUMENT, 'TRELLIS_ERR_CSR_UNSUPPORTED_KEY'],
      ['bad signature', { csr: buildCsr({ key: rsa(), tamperSignature: true }) }, grpc.status.INVALID_ARGUMENT, 'TRELLIS_ERR_CSR_BAD_SIGNATURE'],
      ['over 64 KiB', { csr: csr() + '\n'.repeat(64 * 1024) }, grpc.status.INVALID_ARGUMENT, 'TRELLIS_ERR_CSR_TOO_LARGE'],
      ['garbage', { csr: 'garbage' }, grpc.status.INVALID_ARGUMENT, 'TRELLIS_ERR_CSR_MALFORMED'],
      ['lifetime over maximum', { csr: csr(), validity_duration: 7 * 24 * 3600 + 1 }, grpc.status.INVALID_ARGUMENT, 'TRELLIS_ERR_CA_TTL_TOO_LONG'],
    ];
    for (const [what, req, status, code] of cases) {
      const reply = await call(anon, req, token);
      expect(reply.err?.code, what).to.equal(status);
      expect(reply.err?.metadata.get(ERROR_CODE_METADATA)[0], what).to.equal(code);
    }
    // The token survived all of that, and works once.
    expect((await call(anon, { csr: csr() }, token)).err).to.equal(null);
    const reused = await call(anon, { csr: csr() }, token);
    expect(reused.err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(reused.err?.details).to.match(/already used/);
  });

  it('refuses unknown, expired and revoked tokens, no credentials, and a certificate from another CA', async () => {
    const anon = client();
    const unknown = await call(anon, { csr: csr() }, 'trellis-jt.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    expect(unknown.err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(unknown.err?.metadata.get(ERROR_CODE_METADATA)[0]).to.equal('TRELLIS_ERR_TOKEN_UNKNOWN');
    const expiring = await tokens.mint(BINDING, 60);
    now += 61_000;
    const expired = await call(anon, { csr: csr() }, expiring.token);
    expect(expired.err?.details).to.match(/expired/);
    now = Date.now();
    const revoked = await tokens.mint(BINDING);
    await tokens.revoke(revoked.id);
    expect((await call(anon, { csr: csr() }, revoked.token)).err?.details).to.match(/revoked/);
    const none = await call(anon, { csr: csr() });
    expect(none.err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    expect(none.err?.details).to.match(/no credentials/);
    const jwt = await call(anon, { csr: csr() }, 'eyJhbGciOiJSUzI1NiJ9.e30.sig');
    expect(jwt.err?.details).to.match(/not a Trellis join token/);

    // A certificate with the right-looking SPIFFE id, from another CA: TLS does not verify it, so it is no credential.
    const d = tempDir();
    try {
      const rogue = await CertificateAuthority.open({ stateDir: d.path, trustDomain: TD, keyBits: 2048 });
      const forged = rogue.sign(csr(undefined, rsa(2)), { namespace: 'shop', serviceAccount: 'billing' });
      const c = client({ keyPem: rsa(2).export({ format: 'pem', type: 'pkcs8' }).toString(), chainPem: forged.certChain.join('') });
      const reply = await call(c, { csr: csr() });
      expect(reply.err?.code).to.equal(grpc.status.UNAUTHENTICATED);
    } finally {
      d.cleanup();
    }
  });

  it('counts issuances and refusals by reason, and logs one line for each', async () => {
    const text = await registry.metrics();
    expect(text).to.match(/trellis_ca_certificates_issued_total\{via="join-token"\} [2-9]/);
    expect(text).to.match(/trellis_ca_certificates_issued_total\{via="mtls"\} 1/);
    for (const reason of ['identity_mismatch', 'ca_requested', 'weak_key', 'bad_signature', 'csr_too_large', 'ttl_too_long', 'token_used', 'token_unknown', 'token_expired', 'token_revoked', 'unauthenticated']) {
      expect(text, reason).to.match(new RegExp(`trellis_ca_requests_refused_total\\{reason="${reason}"\\} [1-9]`));
    }
    expect(text).to.match(/trellis_ca_signing_duration_seconds_count [1-9]/);
    const refusals = lines.filter((l) => l.message === 'certificate request refused');
    expect(refusals.length).to.be.greaterThan(10);
    expect(refusals.every((l) => l.level === 'warn' && typeof l.fields?.reason === 'string')).to.equal(true);
  });

  it('a client dialing the IP address verifies the serving certificate by its IP SAN', async () => {
    const byIp = new Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(ca.trustBundlePem()))) as grpc.Client & Record<string, unknown>;
    clients.push(byIp);
    const { token } = await tokens.mint(BINDING);
    expect((await call(byIp, { csr: csr() }, token)).err).to.equal(null);
    const d = tempDir();
    try {
      const stranger = await CertificateAuthority.open({ stateDir: d.path, trustDomain: TD, keyBits: 2048 });
      const wrongRoot = client(undefined, stranger.trustBundlePem());
      const reply = await call(wrongRoot, { csr: csr() });
      expect(reply.err?.code).to.equal(grpc.status.UNAVAILABLE);
    } finally {
      d.cleanup();
    }
  });

  it('rotates the serving certificate in place: new handshakes see the new one', async () => {
    const serial = async (): Promise<string> => new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.trustBundlePem(), ALPNProtocols: ['h2'] }, () => {
        resolve(s.getPeerCertificate().serialNumber);
        s.destroy();
      });
      s.on('error', reject);
    });
    const before = await serial();
    expect(before).to.equal(tls.current().serial);
    const rotated = tls.rotateNow();
    expect(await serial()).to.equal(rotated.serial).and.not.equal(before);
    // The CSR service still works on the rotated port.
    const { token } = await tokens.mint(BINDING);
    expect((await call(client(), { csr: csr() }, token)).err).to.equal(null);
  });

  it('rotates on its own at half life', async () => {
    const rotations: string[] = [];
    const t = serverCredentials(ca, { dnsNames: ['localhost'], ipAddresses: [] }, {
      ttlSecondsOverride: 2,
      onRotate: (info) => rotations.push(info.serial),
    });
    const first = t.current().serial;
    // Half of a 2 s lifetime (cut to whole seconds), and the 1 s timer floor: a rotation after about 1 s.
    for (let waited = 0; rotations.length === 0 && waited < 10_000; waited += 100) await new Promise((r) => setTimeout(r, 100));
    t.close();
    expect(rotations.length).to.be.at.least(1);
    expect(rotations[0]).not.to.equal(first);
  });
});

describe('ca: token admin routes over HTTP', () => {
  let dir: { path: string; cleanup(): void };
  let http: Server;
  let base: string;
  before(async () => {
    dir = tempDir();
    const ca = await CertificateAuthority.open({ stateDir: dir.path, trustDomain: TD, keyBits: 2048 });
    const tokens = await JoinTokens.open({ stateDir: dir.path });
    const routes = tokenRoutes({
      ca, tokens,
      lookupWorkloadGroup: (ns, name) => (ns === 'shop' && name === 'billing-vms' ? { serviceAccount: 'billing' } : undefined),
      mesh: () => ({ trustDomain: TD, clusterId: 'vm-cluster', network: 'net1', xdsAddress: 'trellis.example:15012' }),
    });
    http = createServer((req, res) => void route(routes, req, res));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((r) => http.close(() => r()));
    dir.cleanup();
  });

  /** A stand-in for the control plane's router: exact or `:param` match, JSON body. */
  async function route(routes: CaHttpRoute[], req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
    const path = (req.url ?? '/').split('?')[0].split('/');
    for (const r of routes) {
      const parts = r.path.split('/');
      if (r.method !== req.method || parts.length !== path.length) continue;
      const params: Record<string, string> = {};
      if (parts.every((p, i) => (p.startsWith(':') ? ((params[p.slice(1)] = path[i]), true) : p === path[i]))) {
        await r.handler(req, res, params, body);
        return;
      }
    }
    res.writeHead(404).end();
  }

  it('mints (service account from the WorkloadGroup), lists without secrets, revokes, and serves mesh settings', async () => {
    const minted = await fetch(`${base}/v1/tokens`, { method: 'POST', body: JSON.stringify({ namespace: 'shop', workloadGroup: 'billing-vms', ttlSeconds: 300 }) });
    expect(minted.status).to.equal(201);
    const m = await minted.json() as Record<string, string>;
    expect(m).to.include({ namespace: 'shop', serviceAccount: 'billing', workloadGroup: 'billing-vms' });
    expect(m.token.startsWith('trellis-jt.')).to.equal(true);
    const list = await (await fetch(`${base}/v1/tokens`)).text();
    expect(list).to.contain(m.id);
    expect(list).not.to.contain(m.token);
    expect((await fetch(`${base}/v1/tokens/${m.id}`, { method: 'DELETE' })).status).to.equal(204);
    expect((await fetch(`${base}/v1/tokens/${m.id}`, { method: 'DELETE' })).status).to.equal(204);
    expect((await fetch(`${base}/v1/tokens/nope`, { method: 'DELETE' })).status).to.equal(404);
    const listed = await (await fetch(`${base}/v1/tokens`)).json() as Array<{ revoked: boolean }>;
    expect(listed[0].revoked).to.equal(true);
    const mesh = await (await fetch(`${base}/v1/mesh`)).json() as Record<string, string>;
    expect(mesh).to.include({ trustDomain: TD, clusterId: 'vm-cluster', network: 'net1', xdsAddress: 'trellis.example:15012' });
    expect(mesh.rootCertsPem).to.contain('BEGIN CERTIFICATE');
  });

  it('answers 404 for an unknown WorkloadGroup and 400 for a bad body', async () => {
    const unknown = await fetch(`${base}/v1/tokens`, { method: 'POST', body: JSON.stringify({ namespace: 'shop', workloadGroup: 'nope' }) });
    expect(unknown.status).to.equal(404);
    expect(await unknown.json()).to.deep.equal({ code: 'TRELLIS_ERR_WORKLOAD_GROUP_UNKNOWN', message: 'no WorkloadGroup shop/nope' });
    const bad = await fetch(`${base}/v1/tokens`, { method: 'POST', body: JSON.stringify({ namespace: 'shop', workloadGroup: 'billing-vms', serviceAccount: 'admin' }) });
    expect(bad.status).to.equal(400);
    expect(((await bad.json()) as { message: string }).message).to.match(/serviceAccount/);
    const ttl = await fetch(`${base}/v1/tokens`, { method: 'POST', body: JSON.stringify({ namespace: 'shop', workloadGroup: 'billing-vms', ttlSeconds: 10 ** 9 }) });
    expect(ttl.status).to.equal(400);
  });
});

