/**
 * A small, faithful stand-in for the control plane's CSR service (`istio.v1.auth.IstioCertificateService`), for
 * tests of the node agent that must not depend on the real CA.
 *
 * - TLS on 127.0.0.1 with a serving certificate (IP SAN 127.0.0.1, DNS localhost) issued by its own root.
 * - Client certificates are requested but optional: a call either carries `authorization: Bearer <token>` (a
 *   single-use join token added with `addToken`) or presents a certificate this CA issued (renewal).
 * - Issues `spiffe://<trustDomain>/ns/<ns>/sa/<sa>` as the only URI SAN whatever the CSR asks, with the
 *   configured lifetime (`ttlSeconds`, capped by the requested one), chain `[leaf, root]`.
 * - `unavailable = true` answers UNAVAILABLE, to exercise retries; `hang = true` never answers.
 */
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import forge from 'node-forge';
import { grpcService } from '@trellis/api';

export interface FakeCaOptions {
  readonly trustDomain?: string;
  /** Lifetime of issued workload certificates, seconds (default 3600). */
  readonly ttlSeconds?: number;
}

export interface FakeCaIssued {
  readonly spiffeId: string;
  readonly auth: 'token' | 'certificate';
  readonly certPem: string;
}

interface Registration {
  readonly namespace: string;
  readonly serviceAccount: string;
}

interface StaticProvider extends grpc.experimental.CertificateProvider {}

function staticProvider(ca: Buffer | null, identity: { certificate: Buffer; privateKey: Buffer } | null): StaticProvider {
  return {
    // Asynchronously: grpc-js registers its watcher only after adding these listeners.
    addCaCertificateListener: (l) => queueMicrotask(() => l(ca ? { caCertificate: ca } : null)),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => queueMicrotask(() => l(identity)),
    removeIdentityCertificateListener: () => {},
  };
}

function forgeKeyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const key = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return { privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e), pem };
}

function serial(): string {
  return `01${randomBytes(15).toString('hex')}`;
}

export class FakeCa {
  readonly trustDomain: string;
  ttlSeconds: number;
  unavailable = false;
  /** When true, calls are accepted and never answered (until close), to exercise deadlines and cancellation. */
  hang = false;
  /** CreateCertificate calls received. */
  calls = 0;
  readonly issued: FakeCaIssued[] = [];
  readonly refusals: string[] = [];
  readonly rootCertPem: string;
  readonly #rootKey: forge.pki.rsa.PrivateKey;
  readonly #rootCert: forge.pki.Certificate;
  readonly #tokens = new Map<string, Registration & { used: boolean }>();
  readonly #server = new grpc.Server();
  #port = 0;

  constructor(options: FakeCaOptions = {}) {
    this.trustDomain = options.trustDomain ?? 'cluster.local';
    this.ttlSeconds = options.ttlSeconds ?? 3600;
    const root = forgeKeyPair();
    const cert = forge.pki.createCertificate();
    cert.publicKey = root.publicKey;
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 60_000);
    cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86400_000);
    const subject = [{ name: 'organizationName', value: 'Trellis fake CA' }, { name: 'commonName', value: 'fake root' }];
    cert.setSubject(subject);
    cert.setIssuer(subject);
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ]);
    cert.sign(root.privateKey, forge.md.sha256.create());
    this.#rootKey = root.privateKey;
    this.#rootCert = cert;
    this.rootCertPem = forge.pki.certificateToPem(cert);
  }

  /** `127.0.0.1:PORT` once listening. */
  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** Registers a single-use join token bound to an identity. Returns the token. */
  addToken(namespace: string, serviceAccount: string, token = randomBytes(24).toString('base64url')): string {
    this.#tokens.set(token, { namespace, serviceAccount, used: false });
    return token;
  }

  async listen(port = 0): Promise<string> {
    const serving = this.#sign(forgeKeyPair(), 3600, [{ type: 7, ip: '127.0.0.1' }, { type: 2, value: 'localhost' }], false);
    // grpc-js 1.14 hands this function's first argument to the constructor's *identity* slot (the .d.ts names
    // them the other way round), so the serving identity goes first. `false`: client certificates are requested
    // (renewals) but not required (token calls).
    const creds = grpc.experimental.createCertificateProviderServerCredentials(
      staticProvider(null, { certificate: Buffer.from(serving.certPem + this.rootCertPem), privateKey: Buffer.from(serving.keyPem) }),
      staticProvider(Buffer.from(this.rootCertPem), null),
      false,
    );
    const Service = grpcService('istio.v1.auth.IstioCertificateService');
    this.#server.addService(Service.service, {
      CreateCertificate: (call: grpc.ServerUnaryCall<{ csr: string; validity_duration: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        this.calls++;
        if (this.hang) return;
        try {
          cb(null, { cert_chain: this.#handle(call) });
        } catch (e) {
          const err = e as { code?: number; message: string };
          this.refusals.push(err.message);
          cb({ code: err.code ?? grpc.status.INTERNAL, details: err.message });
        }
      },
    });
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(`127.0.0.1:${port}`, creds, (error, bound) => (error ? reject(error) : resolve(bound)));
    });
    return this.address;
  }

  /** Graceful shutdown, forced after 1 s (a `hang`ing call would otherwise hold it open). */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.#server.forceShutdown();
  }

  #handle(call: grpc.ServerUnaryCall<{ csr: string; validity_duration: string }, unknown>): string[] {
    const fail = (code: grpc.status, message: string): never => {
      throw Object.assign(new Error(message), { code });
    };
    if (this.unavailable) fail(grpc.status.UNAVAILABLE, 'fake CA is unavailable');
    let who: Registration;
    let auth: 'token' | 'certificate';
    const header = call.metadata.get('authorization')[0];
    if (typeof header === 'string' && header.startsWith('Bearer ')) {
      const reg = this.#tokens.get(header.slice(7));
      if (!reg) fail(grpc.status.UNAUTHENTICATED, 'unknown join token');
      if (reg!.used) fail(grpc.status.UNAUTHENTICATED, 'join token already used');
      reg!.used = true;
      who = reg!;
      auth = 'token';
    } else {
      const peer = call.getAuthContext()?.sslPeerCertificate;
      if (!peer?.raw) fail(grpc.status.UNAUTHENTICATED, 'no join token and no client certificate');
      const x509 = new X509Certificate(peer!.raw);
      const rootX509 = new X509Certificate(this.rootCertPem);
      if (!x509.verify(rootX509.publicKey)) fail(grpc.status.UNAUTHENTICATED, 'client certificate not issued by this CA');
      if (Date.parse(x509.validTo) <= Date.now()) fail(grpc.status.UNAUTHENTICATED, 'client certificate expired');
      const m = /URI:spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^,\s]+)/.exec(x509.subjectAltName ?? '');
      if (!m) fail(grpc.status.UNAUTHENTICATED, 'client certificate has no SPIFFE id');
      who = { namespace: m![1]!, serviceAccount: m![2]! };
      auth = 'certificate';
    }
    let csr: ReturnType<typeof forge.pki.certificationRequestFromPem>;
    try {
      csr = forge.pki.certificationRequestFromPem(call.request.csr);
    } catch {
      return fail(grpc.status.INVALID_ARGUMENT, 'CSR does not parse');
    }
    if (!csr.verify()) fail(grpc.status.INVALID_ARGUMENT, 'CSR signature invalid');
    const requested = Number(call.request.validity_duration || 0);
    const ttl = requested > 0 ? Math.min(requested, this.ttlSeconds) : this.ttlSeconds;
    const spiffeId = `spiffe://${this.trustDomain}/ns/${who.namespace}/sa/${who.serviceAccount}`;
    const leaf = this.#sign({ publicKey: csr.publicKey as forge.pki.rsa.PublicKey }, ttl, [{ type: 6, value: spiffeId }], true);
    this.issued.push({ spiffeId, auth, certPem: leaf.certPem });
    return [leaf.certPem, this.rootCertPem];
  }

  #sign(key: { publicKey: forge.pki.rsa.PublicKey; pem?: string }, ttlSeconds: number, altNames: unknown[], workload: boolean): { certPem: string; keyPem: string } {
    const cert = forge.pki.createCertificate();
    cert.publicKey = key.publicKey;
    cert.serialNumber = serial();
    // Backdated a little so a renewal is valid at once even with clock skew between hosts.
    cert.validity.notBefore = new Date(Date.now() - 5_000);
    cert.validity.notAfter = new Date(Date.now() + ttlSeconds * 1000);
    cert.setSubject(workload ? [] : [{ name: 'commonName', value: 'fake-ca.trellis' }]);
    cert.setIssuer(this.#rootCert.subject.attributes);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames, critical: workload },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.#rootCert.generateSubjectKeyIdentifier().getBytes() },
    ]);
    cert.sign(this.#rootKey, forge.md.sha256.create());
    return { certPem: forge.pki.certificateToPem(cert), keyPem: key.pem ?? '' };
  }
}
