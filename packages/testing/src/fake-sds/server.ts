/**
 * A fake node agent's SDS server: Envoy SDS v3 (`SecretDiscoveryService/StreamSecrets`) on a Unix socket.
 * `setCertificate('default', cert)` and `setTrustBundle('ROOTCA', pem)` store secrets and push them to streams
 * that asked for them; requests (ACK/NACK) are recorded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type AnyMessage, TYPE_URL, encodeAny, grpcService } from '@trellis/api';
import type { TestCert } from './certs.js';

export interface SdsRequestRecord {
  readonly versionInfo: string;
  readonly nonce: string;
  readonly resourceNames: readonly string[];
  readonly errorDetail: string | null;
}

interface Stream {
  readonly call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>;
  names: readonly string[];
  nonce: number;
}

export class FakeSdsServer {
  private readonly server = new grpc.Server();
  private readonly dir = mkdtempSync(join(tmpdir(), 'trellis-sds-'));
  private readonly secrets = new Map<string, AnyMessage>();
  private readonly streams = new Set<Stream>();
  private version = 0;
  readonly requests: SdsRequestRecord[] = [];
  /** Path of the Unix socket. */
  readonly socketPath = join(this.dir, 'socket');

  constructor() {
    const svc = grpcService('envoy.service.secret.v3.SecretDiscoveryService');
    this.server.addService(svc.service, {
      StreamSecrets: (call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>) => this.onStream(call),
      DeltaSecrets: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
      FetchSecrets: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED }),
    });
  }

  async start(): Promise<this> {
    await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`unix://${this.socketPath}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    return this;
  }

  setCertificate(name: string, cert: TestCert): void {
    this.put(name, { name, tls_certificate: { certificate_chain: { inline_bytes: Buffer.from(cert.chainPem) }, private_key: { inline_bytes: Buffer.from(cert.keyPem) } } });
  }

  setTrustBundle(name: string, pem: string): void {
    this.put(name, { name, validation_context: { trusted_ca: { inline_bytes: Buffer.from(pem) } } });
  }

  /** Stores any Secret object (even an invalid one) and pushes it. */
  put(name: string, secret: Record<string, unknown>): void {
    this.secrets.set(name, encodeAny(TYPE_URL.secret, secret));
    this.version += 1;
    for (const s of this.streams) if (s.names.includes(name)) this.push(s);
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'fake SDS shutdown' });
    this.streams.clear();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private onStream(call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>): void {
    const s: Stream = { call, names: [], nonce: 0 };
    this.streams.add(s);
    call.on('data', (req: Record<string, unknown>) => {
      const names = (req.resource_names as string[] | undefined) ?? [];
      const err = req.error_detail as { message?: string } | null;
      this.requests.push({ versionInfo: String(req.version_info ?? ''), nonce: String(req.response_nonce ?? ''), resourceNames: names, errorDetail: err?.message || null });
      const changed = names.join('\0') !== s.names.join('\0');
      s.names = names;
      if (changed || !req.response_nonce) this.push(s);
    });
    const done = () => this.streams.delete(s);
    call.on('end', () => { done(); call.end(); });
    call.on('error', done);
  }

  private push(s: Stream): void {
    const resources = s.names.flatMap((n) => (this.secrets.has(n) ? [this.secrets.get(n)!] : []));
    if (!resources.length) return;
    s.nonce += 1;
    s.call.write({ version_info: String(this.version), type_url: TYPE_URL.secret, nonce: String(s.nonce), resources });
  }
}
