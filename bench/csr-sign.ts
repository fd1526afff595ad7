/**
 * CSR signing throughput of the mesh CA: certificates per second.
 *
 *   npx tsx bench/csr-sign.ts [--seconds 2] [--concurrency 16]
 *
 * Rows, each with the figure and the ratio to the reference measured in the same run:
 *   - reference: the CA key's bare private-key operation (`crypto.sign` over a certificate-sized buffer), the
 *     floor under any certificate signing with that key;
 *   - sign only: `CertificateAuthority.sign()` on RSA 2048 CSRs (parse, verify the CSR signature, checks, build,
 *     sign), for a generated RSA 3072 root (the default) and an RSA 2048 one;
 *   - node-forge: the same certificate built and signed with node-forge's pure-JS RSA (what the CA would cost
 *     if it signed with forge), for comparison;
 *   - end to end over gRPC: `CreateCertificate` on a TLS port on loopback, renewal over mTLS (no token file
 *     writes), sequential and with N requests in flight.
 */
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import forge from 'node-forge';
import { grpcService } from '@trellis/api';
import { addCertificateService, CertificateAuthority, JoinTokens, serverCredentials } from '../packages/control/src/ca/index.js';
import { buildCsr } from '../packages/control/test/ca-fixtures.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const SECONDS = arg('seconds', 2);
const CONCURRENCY = arg('concurrency', 16);

interface Row { name: string; perSecond: number; reference?: number }

function measureSync(fn: (i: number) => void, seconds = SECONDS): number {
  for (let i = 0; i < 20; i++) fn(i); // warm up
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  let n = 0;
  while (performance.now() < end) fn(n++);
  return n / ((performance.now() - start) / 1000);
}

async function measureAsync(fn: (i: number) => Promise<void>, concurrency: number, seconds = SECONDS): Promise<number> {
  for (let i = 0; i < 10; i++) await fn(i);
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  let n = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) await fn(n++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n / ((performance.now() - start) / 1000);
}

async function main(): Promise<void> {
  const dirs: string[] = [];
  const temp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'trellis-bench-ca-'));
    dirs.push(d);
    return d;
  };
  const rows: Row[] = [];
  try {
    const keys = Array.from({ length: 8 }, () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    const csrs = keys.map((key, i) => buildCsr({ key, sans: i % 2 ? [{ type: 'URI', value: 'spiffe://cluster.local/ns/bench/sa/bench' }] : undefined }));
    const who = { namespace: 'bench', serviceAccount: 'bench' };
    const tbsLike = Buffer.alloc(900, 7);

    for (const bits of [3072, 2048]) {
      const dir = temp();
      const ca = await CertificateAuthority.open({ stateDir: dir, trustDomain: 'cluster.local', keyBits: bits });
      const key = createPrivateKey(readFileSync(join(dir, 'ca', 'ca-key.pem')));
      const ref = measureSync(() => void sign('sha256', tbsLike, key));
      rows.push({ name: `reference: crypto.sign, RSA ${bits} CA key`, perSecond: ref });
      rows.push({ name: `sign only, RSA ${bits} CA, RSA 2048 CSRs`, perSecond: measureSync((i) => void ca.sign(csrs[i % csrs.length], who)), reference: ref });
      if (bits === 2048) {
        const forgeKey = forge.pki.privateKeyFromPem(key.export({ format: 'pem', type: 'pkcs1' }).toString());
        const forgeCa = forge.pki.certificateFromPem(ca.rootCertPem());
        const forgeCsrs = csrs.map((c) => forge.pki.certificationRequestFromPem(c));
        rows.push({
          name: 'node-forge build + sign, RSA 2048 CA',
          perSecond: measureSync((i) => {
            const csr = forgeCsrs[i % forgeCsrs.length];
            const cert = forge.pki.createCertificate();
            cert.publicKey = csr.publicKey as forge.pki.rsa.PublicKey;
            cert.serialNumber = '01' + forge.util.bytesToHex(forge.random.getBytesSync(15));
            cert.validity.notBefore = new Date();
            cert.validity.notAfter = new Date(Date.now() + 86400_000);
            cert.setIssuer(forgeCa.subject.attributes);
            cert.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 6, value: 'spiffe://cluster.local/ns/bench/sa/bench' }] }]);
            cert.sign(forgeKey, forge.md.sha256.create());
          }, Math.min(SECONDS, 1)),
          reference: ref,
        });
      }
      if (bits === 3072) {
        // End to end over gRPC + TLS, renewing over mTLS with a certificate from this CA.
        const tokens = await JoinTokens.open({ stateDir: dir });
        const server = new grpc.Server();
        addCertificateService(server, { ca, tokens, logger: { info() {}, warn() {} } });
        const tls = serverCredentials(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
        const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', tls.credentials, (e, p) => (e ? rej(e) : res(p))));
        const issued = ca.sign(csrs[0], who);
        const Client = grpcService('istio.v1.auth.IstioCertificateService');
        const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createSsl(
          Buffer.from(ca.trustBundlePem()), Buffer.from(keys[0].export({ format: 'pem', type: 'pkcs8' }).toString()), Buffer.from(issued.certChain.join('')),
        ), { 'grpc.ssl_target_name_override': 'localhost' }) as unknown as grpc.Client & { CreateCertificate: (r: unknown, cb: (e: Error | null) => void) => void };
        const one = (i: number): Promise<void> => new Promise((res, rej) => client.CreateCertificate({ csr: csrs[i % csrs.length] }, (e) => (e ? rej(e) : res())));
        rows.push({ name: 'end to end gRPC+mTLS, sequential', perSecond: await measureAsync(one, 1), reference: ref });
        rows.push({ name: `end to end gRPC+mTLS, ${CONCURRENCY} in flight`, perSecond: await measureAsync(one, CONCURRENCY), reference: ref });
        client.close();
        tls.close();
        await new Promise<void>((r) => server.tryShutdown(() => r()));
      }
    }
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }

  const width = Math.max(...rows.map((r) => r.name.length));
  console.log(`CSR signing throughput (${SECONDS}s per row, node ${process.version})\n`);
  console.log(`${'case'.padEnd(width)}  ${'certs/s'.padStart(9)}  ${'µs/cert'.padStart(9)}  ${'× reference'.padStart(11)}`);
  for (const r of rows) {
    const ratio = r.reference ? (r.perSecond / r.reference).toFixed(2) : '1.00';
    console.log(`${r.name.padEnd(width)}  ${r.perSecond.toFixed(0).padStart(9)}  ${(1e6 / r.perSecond).toFixed(0).padStart(9)}  ${ratio.padStart(11)}`);
  }
}

await main();
