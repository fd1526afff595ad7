/**
 * The mesh CA: its signing material (generated on first start, or plug-in files), the trust bundle, and issuance
 * of workload and serving certificates.
 *
 * Files, all in `<stateDir>/ca/` (directory 0700), or read from `pluginDir` when one is given:
 *   ca-key.pem    the signing key (must be 0600 or stricter: group/other access is refused)
 *   ca-cert.pem   the signing certificate (a self-signed root, or an intermediate under a company root)
 *   root-cert.pem the root(s) ca-cert.pem chains to
 *   cert-chain.pem ca-cert.pem followed by any intermediates up to the root (optional; may include the root)
 *   extra-roots.pem (always in `<stateDir>/ca/`, optional) more trusted roots, for staged root rotation
 * See docs/ca.md.
 */
import { createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkTrustDomain, formatSpiffeId, TrellisError } from '@trellis/api';
import { parseCsr } from './csr.js';
import { pemBlocks, toPem } from './der.js';
import {
  buildCertificate, keyIdentifier, name, randomSerial, readCertificateParts, signerFor, type SignerKey,
} from './x509-builder.js';

export interface CertificateAuthorityOptions {
  readonly stateDir: string;
  readonly trustDomain: string;
  /** Directory with plug-in CA files; when unset, `<stateDir>/ca/` is used and a root is generated if empty. */
  readonly pluginDir?: string;
  /** Default workload certificate lifetime: 24 h. */
  readonly workloadTtlSeconds?: number;
  /** Longest lifetime a caller may ask for: 7 days. Longer requests are refused, not clamped. */
  readonly maxTtlSeconds?: number;
  /** Milliseconds since the epoch; `Date.now` by default. */
  readonly clock?: () => number;
  /** RSA size of a generated root key: 3072 by default. */
  readonly keyBits?: number;
  /** Lifetime of a generated root: 10 years. */
  readonly rootTtlSeconds?: number;
}

export interface IssuedCert {
  /** PEM certificates, the leaf first and the root last. */
  readonly certChain: readonly string[];
  readonly notAfter: Date;
  readonly spiffeId: string;
  /** Hex, upper case, as `openssl x509 -serial` prints it. */
  readonly serial: string;
}

export interface WorkloadIdentityRef {
  readonly namespace: string;
  readonly serviceAccount: string;
}

export const DEFAULT_WORKLOAD_TTL_SECONDS = 24 * 3600;
export const DEFAULT_MAX_TTL_SECONDS = 7 * 24 * 3600;
const DEFAULT_ROOT_TTL_SECONDS = 10 * 365 * 24 * 3600;
/** notBefore is backdated this much so peers with a slow clock accept a fresh certificate. */
export const CLOCK_SKEW_SECONDS = 60;

interface Material {
  readonly signer: SignerKey;
  readonly caCert: X509Certificate;
  readonly subjectName: Buffer;
  readonly keyId: Buffer;
  /** ca-cert, then intermediates, then the root it chains to: appended after each leaf. */
  readonly chain: readonly X509Certificate[];
  readonly roots: readonly X509Certificate[];
  readonly source: 'generated' | 'state-dir' | 'plugin-dir';
}

function caError(code: `TRELLIS_ERR_${string}`, message: string, cause?: unknown): TrellisError {
  return new TrellisError(code, message, cause === undefined ? undefined : { cause });
}

function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function readCerts(path: string, what: string): X509Certificate[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw caError('TRELLIS_ERR_CA_FILE', `${path}: cannot read ${what}: ${(cause as Error).message}`, cause);
  }
  try {
    const certs = pemBlocks(text).filter((b) => b.label === 'CERTIFICATE').map((b) => new X509Certificate(b.der));
    if (certs.length === 0) throw new Error('no CERTIFICATE block');
    return certs;
  } catch (cause) {
    throw caError('TRELLIS_ERR_CA_FILE', `${path}: ${what} is not PEM certificates: ${(cause as Error).message}`, cause);
  }
}

function isSelfSigned(c: X509Certificate): boolean {
  return c.checkIssued(c) && c.verify(c.publicKey);
}

function uniqueByFingerprint(certs: X509Certificate[]): X509Certificate[] {
  const seen = new Set<string>();
  return certs.filter((c) => (seen.has(c.fingerprint256) ? false : (seen.add(c.fingerprint256), true)));
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly workloadTtlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly #clock: () => number;
  readonly #material: Material;
  readonly #extraRootsPath: string;
  /** `mtime:size` of extra-roots.pem when last read ('' when absent), and its roots. */
  #extraRoots: { stamp: string; certs: readonly X509Certificate[] } = { stamp: '', certs: [] };

  private constructor(opts: CertificateAuthorityOptions, material: Material, workloadTtl: number, maxTtl: number) {
    this.trustDomain = opts.trustDomain;
    this.workloadTtlSeconds = workloadTtl;
    this.maxTtlSeconds = maxTtl;
    this.#clock = opts.clock ?? Date.now;
    this.#material = material;
    this.#extraRootsPath = join(opts.stateDir, 'ca', 'extra-roots.pem');
    this.#loadExtraRoots(true);
  }

  /**
   * Loads the CA from `pluginDir`, else from `<stateDir>/ca/`, else generates a root there. Throws `TrellisError`
   * (`TRELLIS_ERR_CA_*`) naming the file and the problem: unreadable or malformed files, a key that does not match
   * the certificate, a certificate that is not a CA or does not chain to root-cert.pem, an expired CA, or a key file
   * readable by group/other.
   */
  static async open(opts: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    checkTrustDomain(opts.trustDomain);
    const workloadTtl = opts.workloadTtlSeconds ?? DEFAULT_WORKLOAD_TTL_SECONDS;
    const maxTtl = opts.maxTtlSeconds ?? Math.max(DEFAULT_MAX_TTL_SECONDS, workloadTtl);
    if (!Number.isInteger(workloadTtl) || workloadTtl <= 0) throw caError('TRELLIS_ERR_CA_CONFIG', `workloadTtlSeconds must be a positive integer, got ${workloadTtl}`);
    if (!Number.isInteger(maxTtl) || maxTtl < workloadTtl) throw caError('TRELLIS_ERR_CA_CONFIG', `maxTtlSeconds (${maxTtl}) must be an integer no smaller than workloadTtlSeconds (${workloadTtl})`);
    const clock = opts.clock ?? Date.now;
    const caDir = join(opts.stateDir, 'ca');
    mkdirSync(caDir, { recursive: true, mode: 0o700 });
    let material: Material;
    if (opts.pluginDir) material = loadMaterial(opts.pluginDir, 'plugin-dir', clock);
    else if (existsSync(join(caDir, 'ca-key.pem'))) material = loadMaterial(caDir, 'state-dir', clock);
    else material = generateRoot(caDir, opts, clock);
    return new CertificateAuthority(opts, material, workloadTtl, maxTtl);
  }

  /** Where the material came from: `generated` (this start), `state-dir` or `plugin-dir`. */
  get source(): Material['source'] {
    return this.#material.source;
  }

  /** The CA's own certificate chain, ca-cert first and the root last (PEM each). */
  caChainPem(): string[] {
    return this.#material.chain.map((c) => c.toString());
  }

  /** The root this CA's chain ends in. */
  rootCertPem(): string {
    return this.#material.chain[this.#material.chain.length - 1].toString();
  }

  /** When the signing certificate expires. */
  get caNotAfter(): Date {
    return new Date(this.#material.caCert.validTo);
  }

  /** Every trusted root, concatenated PEM: root-cert.pem's roots, then extra-roots.pem's (re-read when it changes). */
  trustBundlePem(): string {
    this.#loadExtraRoots();
    return uniqueByFingerprint([...this.#material.roots, ...this.#extraRoots.certs]).map((c) => c.toString()).join('');
  }

  #loadExtraRoots(strict = false): void {
    let stamp: string;
    try {
      const st = statSync(this.#extraRootsPath);
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch {
      this.#extraRoots = { stamp: '', certs: [] };
      return;
    }
    if (stamp === this.#extraRoots.stamp) return;
    // A malformed file must not take the bundle down at run time: keep the last good roots until the file changes
    // again (open() throws instead).
    try {
      const text = readFileSync(this.#extraRootsPath, 'utf8');
      const certs = text.trim() === '' ? [] : readCerts(this.#extraRootsPath, 'extra roots');
      for (const c of certs) {
        if (!isSelfSigned(c)) throw caError('TRELLIS_ERR_CA_FILE', `${this.#extraRootsPath}: "${c.subject.replace(/\n/g, ', ')}" is not a self-signed root`);
      }
      this.#extraRoots = { stamp, certs };
    } catch (err) {
      if (strict) throw err;
      this.#extraRoots = { stamp, certs: this.#extraRoots.certs };
    }
  }

  /**
   * Signs a workload certificate for `identity` from a PEM CSR. The certificate carries
   * `spiffe://<td>/ns/<ns>/sa/<sa>` as its only URI SAN (no DNS SANs), whatever the CSR asked for; a CSR that asks
   * for another name is refused. Lifetime `ttlSeconds` (default `workloadTtlSeconds`; 0 means the default), never
   * past the signing certificate's own expiry. Throws `TrellisError` with a code from refusals.ts.
   */
  sign(csrPem: string, identity: WorkloadIdentityRef, ttlSeconds?: number): IssuedCert {
    const ttl = this.#checkTtl(ttlSeconds);
    let spiffeId: string;
    try {
      spiffeId = formatSpiffeId({ trustDomain: this.trustDomain, namespace: identity.namespace, serviceAccount: identity.serviceAccount });
    } catch (cause) {
      throw caError('TRELLIS_ERR_CA_BAD_IDENTITY', `the authenticated identity cannot form a SPIFFE id: ${(cause as Error).message}`, cause);
    }
    const csr = parseCsr(csrPem);
    const foreign = csr.requestedNames.filter((n) => !(n.type === 'URI' && n.value === spiffeId));
    if (foreign.length > 0) {
      const asked = foreign.slice(0, 3).map((n) => `${n.type}:${n.value.slice(0, 200)}`).join(', ');
      throw caError('TRELLIS_ERR_CSR_IDENTITY_MISMATCH',
        `csr asks for ${asked}${foreign.length > 3 ? ` and ${foreign.length - 3} more` : ''}, but the caller is ${spiffeId}; leave the SAN out or use exactly ${spiffeId}`);
    }
    if (csr.requestsCa) {
      throw caError('TRELLIS_ERR_CSR_CA_REQUESTED', 'csr asks for a CA certificate (basicConstraints CA:true or keyUsage keyCertSign/cRLSign); workload certificates cannot sign');
    }
    const { der, notAfter, serial } = this.#issue({ spki: csr.spki, ttl, uris: [spiffeId], subjectName: name({}) });
    return Object.freeze({
      certChain: Object.freeze([toPem('CERTIFICATE', der), ...this.caChainPem()]),
      notAfter,
      spiffeId,
      serial,
    });
  }

  /**
   * A serving certificate (fresh RSA 2048 key) for the control plane's own names; EKU serverAuth+clientAuth.
   * `certChainPem` is the leaf followed by the CA chain without the root.
   */
  issueServing(dnsNames: string[], ipAddresses: string[], ttlSeconds?: number): { keyPem: string; certChainPem: string; notAfter: Date; serial: string } {
    if (dnsNames.length + ipAddresses.length === 0) throw caError('TRELLIS_ERR_CA_BAD_NAME', 'a serving certificate needs at least one DNS name or IP address');
    for (const d of dnsNames) {
      // Host names as they occur (underscores included: container and Windows host names have them).
      if (d.length > 253 || !/^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/.test(d)) {
        throw caError('TRELLIS_ERR_CA_BAD_NAME', `not a DNS name: ${JSON.stringify(d)}`);
      }
    }
    const ttl = ttlSeconds ?? this.workloadTtlSeconds;
    if (!Number.isInteger(ttl) || ttl <= 0) throw caError('TRELLIS_ERR_CA_BAD_TTL', `ttlSeconds must be a positive integer, got ${ttl}`);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const { der, notAfter, serial } = this.#issue({
      spki, ttl, dnsNames, ipAddresses, // CN is informational (clients check the SANs) and limited to 64 characters (RFC 5280 ub-common-name).
      subjectName: name({ organization: this.trustDomain, commonName: [...dnsNames, ...ipAddresses].find((n) => n.length <= 64) }),
    });
    const chain = this.#material.chain;
    const intermediates = chain.slice(0, isSelfSigned(chain[chain.length - 1]) ? -1 : chain.length);
    return {
      keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      certChainPem: [toPem('CERTIFICATE', der), ...intermediates.map((c) => c.toString())].join(''),
      notAfter,
      serial,
    };
  }

  #checkTtl(ttlSeconds: number | undefined): number {
    if (ttlSeconds === undefined || ttlSeconds === 0) return this.workloadTtlSeconds;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 0) {
      throw caError('TRELLIS_ERR_CA_BAD_TTL', `validity_duration must be a whole, non-negative number of seconds, got ${ttlSeconds}`);
    }
    if (ttlSeconds > this.maxTtlSeconds) {
      throw caError('TRELLIS_ERR_CA_TTL_TOO_LONG', `validity_duration ${ttlSeconds}s is over the maximum of ${this.maxTtlSeconds}s`);
    }
    return ttlSeconds;
  }

  #issue(p: { spki: Buffer; ttl: number; subjectName: Buffer; uris?: string[]; dnsNames?: string[]; ipAddresses?: string[] }): { der: Buffer; notAfter: Date; serial: string } {
    const now = this.#clock();
    const caNotAfter = new Date(this.#material.caCert.validTo).getTime();
    if (caNotAfter <= now) throw caError('TRELLIS_ERR_CA_EXPIRED', `the CA certificate expired at ${new Date(caNotAfter).toISOString()}`);
    // Whole seconds: X.509 times have no fractions, and notAfter must be what the certificate says.
    const notBefore = new Date(Math.floor(now / 1000) * 1000 - CLOCK_SKEW_SECONDS * 1000);
    const notAfter = new Date(Math.min(Math.floor(now / 1000) * 1000 + p.ttl * 1000, Math.floor(caNotAfter / 1000) * 1000));
    const serialBytes = randomSerial();
    const der = buildCertificate({
      serial: serialBytes,
      issuerName: this.#material.subjectName,
      subjectName: p.subjectName,
      spki: p.spki,
      notBefore,
      notAfter,
      isCa: false,
      uris: p.uris,
      dnsNames: p.dnsNames,
      ipAddresses: p.ipAddresses,
      authorityKeyId: this.#material.keyId,
    }, this.#material.signer);
    return { der, notAfter, serial: serialBytes.toString('hex').toUpperCase() };
  }
}

function generateRoot(caDir: string, opts: CertificateAuthorityOptions, clock: () => number): Material {
  const bits = opts.keyBits ?? 3072;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const signer = signerFor(privateKey);
  const subjectName = name({ organization: opts.trustDomain, commonName: 'Trellis Root CA' });
  const now = clock();
  const der = buildCertificate({
    serial: randomSerial(),
    issuerName: subjectName,
    subjectName,
    spki,
    notBefore: new Date(Math.floor(now / 1000) * 1000 - CLOCK_SKEW_SECONDS * 1000),
    notAfter: new Date(Math.floor(now / 1000) * 1000 + (opts.rootTtlSeconds ?? DEFAULT_ROOT_TTL_SECONDS) * 1000),
    isCa: true,
  }, signer);
  const certPem = toPem('CERTIFICATE', der);
  // Key first: a crash between writes leaves a key without a cert, which open() reports rather than overwrites.
  writeAtomic(join(caDir, 'ca-key.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 0o600);
  writeAtomic(join(caDir, 'ca-cert.pem'), certPem, 0o644);
  writeAtomic(join(caDir, 'root-cert.pem'), certPem, 0o644);
  writeAtomic(join(caDir, 'cert-chain.pem'), certPem, 0o644);
  const cert = new X509Certificate(der);
  return Object.freeze({
    signer, caCert: cert, subjectName, keyId: keyIdentifier(spki), chain: Object.freeze([cert]), roots: Object.freeze([cert]), source: 'generated',
  });
}

function loadMaterial(dir: string, source: 'state-dir' | 'plugin-dir', clock: () => number): Material {
  const keyPath = join(dir, 'ca-key.pem');
  const certPath = join(dir, 'ca-cert.pem');
  const rootPath = join(dir, 'root-cert.pem');
  const chainPath = join(dir, 'cert-chain.pem');
  let keyText: string;
  try {
    const st = statSync(keyPath);
    // A Kubernetes Secret volume (its `..data` link marks it) makes files group-readable for the pod's fsGroup and
    // cannot be chmod'ed: there group read is the pod's own access, so only write bits and other access are refused.
    const allowed = source === 'plugin-dir' && existsSync(join(dir, '..data')) ? 0o040 : 0;
    if ((st.mode & 0o077 & ~allowed) !== 0) {
      throw caError('TRELLIS_ERR_CA_KEY_PERMISSIONS',
        `${keyPath}: mode ${(st.mode & 0o777).toString(8)} lets group/other read the CA key; run chmod 600 ${keyPath}`);
    }
    keyText = readFileSync(keyPath, 'utf8');
  } catch (err) {
    if (err instanceof TrellisError) throw err;
    throw caError('TRELLIS_ERR_CA_FILE', `${keyPath}: cannot read the CA key: ${(err as Error).message}`, err);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyText);
  } catch (cause) {
    throw caError('TRELLIS_ERR_CA_FILE', `${keyPath}: not a PEM private key: ${(cause as Error).message}`, cause);
  }
  const signer = signerFor(key);
  const [caCert] = readCerts(certPath, 'CA certificate');
  if (!caCert.checkPrivateKey(key)) throw caError('TRELLIS_ERR_CA_KEY_MISMATCH', `${keyPath} does not match the certificate in ${certPath}`);
  if (!caCert.ca) throw caError('TRELLIS_ERR_CA_NOT_CA', `${certPath}: certificate is not a CA (basicConstraints CA:true missing)`);
  const now = clock();
  if (new Date(caCert.validTo).getTime() <= now) throw caError('TRELLIS_ERR_CA_EXPIRED', `${certPath}: CA certificate expired at ${new Date(caCert.validTo).toISOString()}`);
  const roots = existsSync(rootPath) ? readCerts(rootPath, 'root certificates') : isSelfSigned(caCert) ? [caCert] : [];
  if (roots.length === 0) throw caError('TRELLIS_ERR_CA_FILE', `${rootPath}: missing; a CA certificate that is not self-signed needs its root`);
  for (const r of roots) {
    if (!isSelfSigned(r)) throw caError('TRELLIS_ERR_CA_FILE', `${rootPath}: "${r.subject.replace(/\n/g, ', ')}" is not a self-signed root`);
  }
  const pool = uniqueByFingerprint([...(existsSync(chainPath) ? readCerts(chainPath, 'certificate chain') : []), ...roots]);
  // Walk ca-cert → issuer → … until a root from root-cert.pem.
  const chain: X509Certificate[] = [caCert];
  for (let current = caCert; ;) {
    const root = roots.find((r) => r.fingerprint256 === current.fingerprint256);
    if (root) break;
    const issuer = pool.find((c) => c.fingerprint256 !== current.fingerprint256 && current.checkIssued(c) && current.verify(c.publicKey));
    if (!issuer || chain.length > 8) {
      throw caError('TRELLIS_ERR_CA_CHAIN', `${certPath} does not chain to a root in ${rootPath} (through ${chainPath}); issuer "${current.issuer.replace(/\n/g, ', ')}" not found`);
    }
    chain.push(issuer);
    current = issuer;
  }
  const parts = readCertificateParts(caCert.raw);
  return Object.freeze({
    signer,
    caCert,
    subjectName: parts.subjectName,
    keyId: parts.subjectKeyId ?? keyIdentifier(parts.spki),
    chain: Object.freeze(chain),
    roots: Object.freeze(roots),
    source,
  });
}
