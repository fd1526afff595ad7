/**
 * Test PKI: a self-signed mesh root and workload certificates whose URI SAN is a SPIFFE id (RSA 2048, keys from
 * node:crypto, certificates from node-forge). Good for TLS tests; not for anything else.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface TestCa {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface TestCert {
  readonly certPem: string;
  readonly keyPem: string;
  /** Leaf followed by the CA (what an SDS `default` secret carries). */
  readonly chainPem: string;
}

function keyPair(): { pub: forge.pki.PublicKey; priv: forge.pki.PrivateKey; keyPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const priv = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  return { pub: forge.pki.setRsaPublicKey(priv.n, priv.e), priv, keyPem };
}

function serial(): string {
  return '01' + randomBytes(8).toString('hex');
}

/** A self-signed CA valid for a day. */
export function makeTestCa(commonName = 'trellis test root'): TestCa {
  const { pub, priv, keyPem } = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const attrs = [{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'trellis' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }]);
  cert.sign(priv as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

/** A workload certificate with URI SAN `spiffeId` (and optional DNS names), usable as TLS client and server. */
export function issueTestCert(ca: TestCa, spiffeId: string, opts: { dnsNames?: readonly string[]; validMs?: number } = {}): TestCert {
  const { pub, keyPem } = keyPair();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem) as forge.pki.rsa.PrivateKey;
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + (opts.validMs ?? 3_600_000));
  cert.setSubject([]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames: { type: number; value: string }[] = [{ type: 6, value: spiffeId }, ...(opts.dnsNames ?? []).map((d) => ({ type: 2, value: d }))];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames, critical: true },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);
  return { certPem, keyPem, chainPem: certPem + ca.certPem };
}
