import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { TrellisError } from '@trellis/api';
import { CertificateAuthority } from '../src/ca/index.js';
import { ipBytes } from '../src/ca/x509-builder.js';
import { buildCsr, keyPool, openssl, tempDir, writePem } from './ca-fixtures.js';

const TD = 'cluster.local';
const WEB = { namespace: 'default', serviceAccount: 'web' };
const WEB_ID = 'spiffe://cluster.local/ns/default/sa/web';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof TrellisError ? err.code : `not-trellis: ${(err as Error).message}`;
  }
  return undefined;
}

async function codeOfAsync(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
  } catch (err) {
    return err instanceof TrellisError ? err.code : `not-trellis: ${(err as Error).message}`;
  }
  return undefined;
}

describe('ca: CertificateAuthority', () => {
  const dirs: Array<{ cleanup(): void }> = [];
  const temp = (): string => {
    const d = tempDir();
    dirs.push(d);
    return d.path;
  };
  after(() => dirs.forEach((d) => d.cleanup()));

  describe('generated root', () => {
    let stateDir: string;
    let ca: CertificateAuthority;
    let now = Date.parse('2026-06-01T00:00:00Z');
    before(async () => {
      stateDir = temp();
      ca = await CertificateAuthority.open({ stateDir, trustDomain: TD, keyBits: 2048, clock: () => now });
    });

    it('writes the root files with the key at 0600 and reloads the same root', async () => {
      expect(ca.source).to.equal('generated');
      for (const f of ['ca-key.pem', 'ca-cert.pem', 'root-cert.pem', 'cert-chain.pem']) expect(existsSync(join(stateDir, 'ca', f)), f).to.equal(true);
      expect(statSync(join(stateDir, 'ca', 'ca-key.pem')).mode & 0o777).to.equal(0o600);
      expect(statSync(join(stateDir, 'ca')).mode & 0o777).to.equal(0o700);
      const root = new X509Certificate(readFileSync(join(stateDir, 'ca', 'root-cert.pem')));
      expect(root.ca).to.equal(true);
      expect(root.subject).to.contain('O=cluster.local');
      const again = await CertificateAuthority.open({ stateDir, trustDomain: TD, clock: () => now });
      expect(again.source).to.equal('state-dir');
      expect(again.trustBundlePem()).to.equal(ca.trustBundlePem());
    });

    it('issues a workload certificate that openssl verifies and shows the SPIFFE id as the only SAN', () => {
      now = Date.now();
      const issued = ca.sign(buildCsr({ key: keyPool().rsa2048[0], sans: [{ type: 'URI', value: WEB_ID }] }), WEB);
      expect(issued.spiffeId).to.equal(WEB_ID);
      expect(issued.certChain).to.have.length(2);
      const dir = temp();
      const leaf = writePem(dir, 'leaf.pem', issued.certChain[0]);
      const root = writePem(dir, 'root.pem', ca.trustBundlePem());
      expect(openssl(['verify', '-CAfile', root, leaf])).to.contain(': OK');
      const text = openssl(['x509', '-in', leaf, '-noout', '-text']);
      expect(text).to.contain(`URI:${WEB_ID}`);
      expect(text).not.to.contain('DNS:');
      expect(text).to.match(/Basic Constraints: critical\s+CA:FALSE/);
      expect(text).to.match(/Key Usage: critical\s+Digital Signature, Key Encipherment/);
      expect(text).to.match(/TLS Web Server Authentication, TLS Web Client Authentication/);
      expect(openssl(['x509', '-in', leaf, '-noout', '-serial'])).to.equal(`serial=${issued.serial}\n`);
      const x = new X509Certificate(issued.certChain[0]);
      expect(x.subjectAltName).to.equal(`URI:${WEB_ID}`);
      expect(Date.parse(x.validFrom)).to.be.at.most(now - 59_000);
      expect(Date.parse(x.validTo)).to.equal(issued.notAfter.getTime());
      expect(issued.notAfter.getTime() - Math.floor(now / 1000) * 1000).to.equal(24 * 3600 * 1000);
    });

    it('issues for a CSR with no SAN, ignores the subject, and gives every certificate a fresh 128-bit serial', () => {
      const csr = buildCsr({ key: keyPool().rsa2048[1], commonName: 'someone-else.example' });
      const a = ca.sign(csr, WEB);
      const b = ca.sign(csr, WEB);
      expect(a.serial).to.match(/^[0-9A-F]{30,34}$/);
      expect(a.serial).not.to.equal(b.serial);
      expect(new X509Certificate(a.certChain[0]).subject ?? '').to.equal('');
    });

    it('accepts ECDSA P-256 and P-384 CSRs and RSA 3072', () => {
      for (const key of [keyPool().p256[0], keyPool().p384, keyPool().rsa3072]) {
        const issued = ca.sign(buildCsr({ key, sans: [{ type: 'URI', value: WEB_ID }] }), WEB);
        const dir = temp();
        expect(openssl(['verify', '-CAfile', writePem(dir, 'r.pem', ca.trustBundlePem()), writePem(dir, 'l.pem', issued.certChain[0])])).to.contain('OK');
      }
    });

    it('accepts a CSR built with node-forge (as the node agent builds it)', () => {
      const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001, workers: -1 } as never) as forge.pki.rsa.KeyPair;
      const csr = forge.pki.createCertificationRequest();
      csr.publicKey = keys.publicKey;
      csr.setSubject([{ name: 'organizationName', value: 'cluster.local' }]);
      csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: WEB_ID }] }] }]);
      csr.sign(keys.privateKey, forge.md.sha256.create());
      const issued = ca.sign(forge.pki.certificationRequestToPem(csr), WEB);
      expect(issued.spiffeId).to.equal(WEB_ID);
      // …and one signed with forge's default (SHA-1) is refused with a message that says what to do.
      csr.sign(keys.privateKey);
      expect(() => ca.sign(forge.pki.certificationRequestToPem(csr), WEB)).to.throw(/sha256/);
    });

    it('refuses each class of bad request with its code', () => {
      const k = keyPool();
      const cases: Array<[string, () => unknown, string]> = [
        ['another SPIFFE id', () => ca.sign(buildCsr({ key: k.rsa2048[0], sans: [{ type: 'URI', value: 'spiffe://cluster.local/ns/default/sa/admin' }] }), WEB), 'TRELLIS_ERR_CSR_IDENTITY_MISMATCH'],
        ['own id plus a DNS name', () => ca.sign(buildCsr({ key: k.rsa2048[0], sans: [{ type: 'URI', value: WEB_ID }, { type: 'DNS', value: 'web.example' }] }), WEB), 'TRELLIS_ERR_CSR_IDENTITY_MISMATCH'],
        ['an IP SAN', () => ca.sign(buildCsr({ key: k.rsa2048[0], sans: [{ type: 'IP', value: '10.0.0.1' }] }), WEB), 'TRELLIS_ERR_CSR_IDENTITY_MISMATCH'],
        ['CA:true', () => ca.sign(buildCsr({ key: k.rsa2048[0], ca: true }), WEB), 'TRELLIS_ERR_CSR_CA_REQUESTED'],
        ['keyCertSign', () => ca.sign(buildCsr({ key: k.rsa2048[0], keyCertSign: true }), WEB), 'TRELLIS_ERR_CSR_CA_REQUESTED'],
        ['RSA 1024', () => ca.sign(buildCsr({ key: k.rsa1024 }), WEB), 'TRELLIS_ERR_CSR_WEAK_KEY'],
        ['secp256k1', () => ca.sign(buildCsr({ key: k.secp256k1 }), WEB), 'TRELLIS_ERR_CSR_UNSUPPORTED_KEY'],
        ['Ed25519', () => ca.sign(buildCsr({ key: k.ed25519 }), WEB), 'TRELLIS_ERR_CSR_UNSUPPORTED_KEY'],
        ['tampered signature', () => ca.sign(buildCsr({ key: k.rsa2048[0], tamperSignature: true }), WEB), 'TRELLIS_ERR_CSR_BAD_SIGNATURE'],
        ['tampered body', () => ca.sign(buildCsr({ key: k.p256[0], tamperInfo: true }), WEB), 'TRELLIS_ERR_CSR_BAD_SIGNATURE'],
        ['SHA-1 signature', () => ca.sign(buildCsr({ key: k.rsa2048[0], hash: 'sha1' }), WEB), 'TRELLIS_ERR_CSR_SIGNATURE_ALGORITHM'],
        ['over 64 KiB', () => ca.sign(buildCsr({ key: k.rsa2048[0] }) + ' '.repeat(65536), WEB), 'TRELLIS_ERR_CSR_TOO_LARGE'],
        ['garbage', () => ca.sign('hello', WEB), 'TRELLIS_ERR_CSR_MALFORMED'],
        ['a certificate instead', () => ca.sign(ca.trustBundlePem(), WEB), 'TRELLIS_ERR_CSR_MALFORMED'],
        ['truncated DER', () => ca.sign('-----BEGIN CERTIFICATE REQUEST-----\nMIIBIjAN\n-----END CERTIFICATE REQUEST-----\n', WEB), 'TRELLIS_ERR_CSR_MALFORMED'],
        ['lifetime over the maximum', () => ca.sign(buildCsr({ key: k.rsa2048[0] }), WEB, ca.maxTtlSeconds + 1), 'TRELLIS_ERR_CA_TTL_TOO_LONG'],
        ['negative lifetime', () => ca.sign(buildCsr({ key: k.rsa2048[0] }), WEB, -5), 'TRELLIS_ERR_CA_BAD_TTL'],
        ['identity that is no SPIFFE path', () => ca.sign(buildCsr({ key: k.rsa2048[0] }), { namespace: 'a/b', serviceAccount: 'c' }), 'TRELLIS_ERR_CA_BAD_IDENTITY'],
      ];
      for (const [what, fn, code] of cases) expect(codeOf(fn), what).to.equal(code);
    });

    it('honours a requested lifetime and never outlives the CA', () => {
      now = Date.now();
      const short = ca.sign(buildCsr({ key: keyPool().rsa2048[0] }), WEB, 20);
      expect(short.notAfter.getTime() - Math.floor(now / 1000) * 1000).to.equal(20_000);
      expect(ca.sign(buildCsr({ key: keyPool().rsa2048[0] }), WEB, ca.maxTtlSeconds).notAfter.getTime()).to.be.at.most(ca.caNotAfter.getTime());
    });

    it('adds extra roots to the trust bundle (staged rotation) and keeps the last good set when the file breaks', async () => {
      const other = temp();
      const otherCa = await CertificateAuthority.open({ stateDir: other, trustDomain: TD, keyBits: 2048 });
      const extra = join(stateDir, 'ca', 'extra-roots.pem');
      writeFileSync(extra, otherCa.trustBundlePem());
      const bundle = ca.trustBundlePem();
      expect(bundle.match(/BEGIN CERTIFICATE/g)).to.have.length(2);
      expect(bundle.startsWith(ca.rootCertPem())).to.equal(true);
      writeFileSync(extra, 'broken');
      const t = new Date(Date.now() + 5000);
      const { utimesSync } = await import('node:fs');
      utimesSync(extra, t, t);
      expect(ca.trustBundlePem()).to.equal(bundle);
      // open() is strict about it.
      expect(await codeOfAsync(() => CertificateAuthority.open({ stateDir, trustDomain: TD }))).to.equal('TRELLIS_ERR_CA_FILE');
      // An emptied file means no extra roots (step 3 of a rotation), at run time and at start.
      writeFileSync(extra, '\n');
      expect(ca.trustBundlePem().match(/BEGIN CERTIFICATE/g)).to.have.length(1);
      expect((await CertificateAuthority.open({ stateDir, trustDomain: TD })).trustBundlePem()).to.equal(ca.trustBundlePem());
      const { rmSync } = await import('node:fs');
      rmSync(extra);
      expect(ca.trustBundlePem().match(/BEGIN CERTIFICATE/g)).to.have.length(1);
    });

    it('issues serving certificates for DNS names and IPs that openssl verifies', () => {
      const s = ca.issueServing(['trellis-control.trellis-system.svc', 'localhost'], ['127.0.0.1', '::1'], 3600);
      const dir = temp();
      const p = writePem(dir, 's.pem', s.certChainPem);
      expect(openssl(['verify', '-CAfile', writePem(dir, 'r.pem', ca.trustBundlePem()), '-purpose', 'sslserver', p])).to.contain('OK');
      const text = openssl(['x509', '-in', p, '-noout', '-ext', 'subjectAltName']);
      expect(text).to.contain('DNS:trellis-control.trellis-system.svc, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
      expect(codeOf(() => ca.issueServing([], []))).to.equal('TRELLIS_ERR_CA_BAD_NAME');
      expect(codeOf(() => ca.issueServing(['bad name'], []))).to.equal('TRELLIS_ERR_CA_BAD_NAME');
    });
  });

  it('encodes IP SANs (v4, v6, v4-mapped) as 4 and 16 octets', () => {
    const table: Array<[string, string]> = [
      ['10.1.2.3', '0a010203'],
      ['::1', '00000000000000000000000000000001'],
      ['fe80::1', 'fe800000000000000000000000000001'],
      ['2001:db8::', '20010db8000000000000000000000000'],
      ['::ffff:10.0.0.1', '00000000000000000000ffff0a000001'],
      ['64:ff9b::192.0.2.33', '0064ff9b0000000000000000c0000221'],
      ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
    ];
    for (const [ip, hex] of table) expect(ipBytes(ip).toString('hex'), ip).to.equal(hex);
    expect(() => ipBytes('300.1.1.1')).to.throw(/not an IP address/);
  });

  describe('loading', () => {
    it('refuses a CA key readable by group/other, and a key that does not match', async () => {
      const stateDir = temp();
      await CertificateAuthority.open({ stateDir, trustDomain: TD, keyBits: 2048 });
      const keyPath = join(stateDir, 'ca', 'ca-key.pem');
      chmodSync(keyPath, 0o644);
      expect(await codeOfAsync(() => CertificateAuthority.open({ stateDir, trustDomain: TD }))).to.equal('TRELLIS_ERR_CA_KEY_PERMISSIONS');
      const other = temp();
      await CertificateAuthority.open({ stateDir: other, trustDomain: TD, keyBits: 2048 });
      copyFileSync(join(other, 'ca', 'ca-key.pem'), keyPath);
      chmodSync(keyPath, 0o600);
      expect(await codeOfAsync(() => CertificateAuthority.open({ stateDir, trustDomain: TD }))).to.equal('TRELLIS_ERR_CA_KEY_MISMATCH');
    });

    it('refuses a bad trust domain and an inconsistent lifetime configuration', async () => {
      expect(await codeOfAsync(() => CertificateAuthority.open({ stateDir: temp(), trustDomain: 'Bad_Domain' }))).to.equal('TRELLIS_ERR_SPIFFE_ID');
      expect(await codeOfAsync(() => CertificateAuthority.open({ stateDir: temp(), trustDomain: TD, workloadTtlSeconds: 100, maxTtlSeconds: 50 }))).to.equal('TRELLIS_ERR_CA_CONFIG');
    });
  });

  describe('plug-in intermediate CA under a company root (made with openssl)', () => {
    let plugin: string;
    let ca: CertificateAuthority;
    before(async () => {
      plugin = temp();
      const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: plugin, stdio: 'ignore' });
      run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'company-root.key', '-out', 'root-cert.pem', '-days', '365',
        '-subj', '/O=Example Corp/CN=Example Corp Root', '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
      run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca-key.pem', '-out', 'int.csr',
        '-subj', '/O=Example Corp/OU=Mesh/CN=Trellis Intermediate']);
      writeFileSync(join(plugin, 'ext.cnf'), 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
      run(['x509', '-req', '-in', 'int.csr', '-CA', 'root-cert.pem', '-CAkey', 'company-root.key', '-CAcreateserial', '-out', 'ca-cert.pem', '-days', '90', '-extfile', 'ext.cnf']);
      writeFileSync(join(plugin, 'cert-chain.pem'), readFileSync(join(plugin, 'ca-cert.pem'), 'utf8') + readFileSync(join(plugin, 'root-cert.pem'), 'utf8'));
      chmodSync(join(plugin, 'ca-key.pem'), 0o600);
      ca = await CertificateAuthority.open({ stateDir: temp(), pluginDir: plugin, trustDomain: TD });
    });

    it('issues leaf, intermediate, root; openssl verifies against the company root', () => {
      expect(ca.source).to.equal('plugin-dir');
      const issued = ca.sign(buildCsr({ key: keyPool().rsa2048[2], sans: [{ type: 'URI', value: WEB_ID }] }), WEB);
      expect(issued.certChain).to.have.length(3);
      expect(new X509Certificate(issued.certChain[1]).subject).to.contain('CN=Trellis Intermediate');
      expect(new X509Certificate(issued.certChain[2]).subject).to.contain('CN=Example Corp Root');
      const dir = temp();
      const leaf = writePem(dir, 'leaf.pem', issued.certChain[0]);
      const chain = writePem(dir, 'chain.pem', issued.certChain.slice(1, 2));
      expect(openssl(['verify', '-CAfile', join(plugin, 'root-cert.pem'), '-untrusted', chain, leaf])).to.contain(': OK');
      expect(openssl(['x509', '-in', leaf, '-noout', '-text'])).to.contain('Signature Algorithm: ecdsa-with-SHA256');
      expect(ca.trustBundlePem()).to.equal(new X509Certificate(readFileSync(join(plugin, 'root-cert.pem'))).toString());
    });

    it('serving certificates carry the intermediate in their chain', () => {
      const s = ca.issueServing(['localhost'], ['127.0.0.1'], 600);
      expect(s.certChainPem.match(/BEGIN CERTIFICATE/g)).to.have.length(2);
      const dir = temp();
      const leafOnly = s.certChainPem.slice(0, s.certChainPem.indexOf('-----END CERTIFICATE-----') + 26);
      expect(openssl(['verify', '-CAfile', join(plugin, 'root-cert.pem'), '-untrusted', writePem(dir, 'c.pem', s.certChainPem), writePem(dir, 'l.pem', leafOnly)])).to.contain('OK');
    });

    it('refuses a plug-in CA whose chain does not reach root-cert.pem', async () => {
      const broken = temp();
      for (const f of ['ca-key.pem', 'ca-cert.pem']) copyFileSync(join(plugin, f), join(broken, f));
      chmodSync(join(broken, 'ca-key.pem'), 0o600);
      const unrelated = temp();
      await CertificateAuthority.open({ stateDir: unrelated, trustDomain: TD, keyBits: 2048 });
      copyFileSync(join(unrelated, 'ca', 'root-cert.pem'), join(broken, 'root-cert.pem'));
      expect(await codeOfAsync(() => CertificateAuthority.open({ stateDir: temp(), pluginDir: broken, trustDomain: TD }))).to.equal('TRELLIS_ERR_CA_CHAIN');
    });
  });
});
