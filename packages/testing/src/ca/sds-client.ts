/**
 * A test SDS client on `@grpc/grpc-js` and Envoy's SDS v3 protos: opens StreamSecrets on a Unix socket, asks for
 * the given names, ACKs every response (or NACKs when told to), and records each decoded response.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeAny, grpcService, TYPE_URL } from '@trellis/api';

export interface SdsSecretView {
  readonly name: string;
  /** PEM of tls_certificate.certificate_chain, when present. */
  readonly certificateChain?: string;
  readonly privateKey?: string;
  /** PEM of validation_context.trusted_ca, when present. */
  readonly trustedCa?: string;
}

export interface SdsResponseView {
  readonly version: string;
  readonly nonce: string;
  readonly secrets: readonly SdsSecretView[];
  readonly receivedAt: number;
}

interface RawResponse {
  version_info: string;
  nonce: string;
  resources: { type_url: string; value: Uint8Array }[];
}

function bytes(field: unknown): string | undefined {
  const b = (field as { inline_bytes?: string } | undefined)?.inline_bytes;
  return b === undefined ? undefined : Buffer.from(b, 'base64').toString('utf8');
}

export function viewSecret(any: { type_url: string; value: Uint8Array }): SdsSecretView {
  const s = decodeAny(any) as { name: string; tls_certificate?: Record<string, unknown>; validation_context?: Record<string, unknown> };
  return {
    name: s.name,
    certificateChain: bytes(s.tls_certificate?.certificate_chain),
    privateKey: bytes(s.tls_certificate?.private_key),
    trustedCa: bytes(s.validation_context?.trusted_ca),
  };
}

export class SdsTestClient {
  readonly responses: SdsResponseView[] = [];
  /** Set to make the next responses NACKed instead of ACKed. */
  nack = false;
  readonly #client: grpc.Client;
  readonly #stream: grpc.ClientDuplexStream<unknown, RawResponse>;
  readonly #waiters: { count: number; resolve: () => void }[] = [];
  #names: string[];
  #error: Error | null = null;

  constructor(socketPath: string, names: string[], nodeId = 'sidecar~127.0.0.1~test.default~default.svc.cluster.local') {
    const Service = grpcService('envoy.service.secret.v3.SecretDiscoveryService');
    this.#client = new Service(`unix:${socketPath}`, grpc.credentials.createInsecure());
    this.#names = names;
    const stream = (this.#client as unknown as { StreamSecrets(): grpc.ClientDuplexStream<unknown, RawResponse> }).StreamSecrets();
    this.#stream = stream;
    stream.on('data', (r: RawResponse) => {
      this.responses.push({ version: r.version_info, nonce: r.nonce, secrets: r.resources.map(viewSecret), receivedAt: Date.now() });
      stream.write({
        version_info: this.nack ? '' : r.version_info,
        resource_names: this.#names,
        type_url: TYPE_URL.secret,
        response_nonce: r.nonce,
        node: { id: nodeId },
        ...(this.nack ? { error_detail: { code: 3, message: 'test NACK' } } : {}),
      });
      this.#wake();
    });
    stream.on('error', (e: Error) => {
      this.#error = e;
      this.#wake();
    });
    stream.write({ resource_names: names, type_url: TYPE_URL.secret, node: { id: nodeId } });
  }

  /** Sends a new request for a different set of names (state of the world). */
  request(names: string[]): void {
    this.#names = names;
    const last = this.responses[this.responses.length - 1];
    this.#stream.write({ resource_names: names, type_url: TYPE_URL.secret, version_info: last?.version ?? '', response_nonce: last?.nonce ?? '' });
  }

  /** Resolves once at least `count` responses arrived; rejects on stream error or after `timeoutMs`. */
  async waitFor(count: number, timeoutMs = 15_000): Promise<SdsResponseView[]> {
    if (this.responses.length < count && !this.#error) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`SDS: ${this.responses.length}/${count} responses after ${timeoutMs} ms`)), timeoutMs);
        this.#waiters.push({ count, resolve: () => { clearTimeout(timer); resolve(); } });
      });
    }
    if (this.#error) throw this.#error;
    return this.responses;
  }

  close(): void {
    this.#stream.cancel();
    this.#client.close();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) {
      if (this.#error || this.responses.length >= w.count) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }
}

/** One FetchSecrets call. */
export async function fetchSecrets(socketPath: string, names: string[]): Promise<SdsSecretView[]> {
  const Service = grpcService('envoy.service.secret.v3.SecretDiscoveryService');
  const client = new Service(`unix:${socketPath}`, grpc.credentials.createInsecure());
  try {
    const response = await new Promise<RawResponse>((resolve, reject) => {
      (client as unknown as { FetchSecrets(req: unknown, cb: (e: Error | null, r: RawResponse) => void): void })
        .FetchSecrets({ resource_names: names, type_url: TYPE_URL.secret }, (e, r) => (e ? reject(e) : resolve(r)));
    });
    return response.resources.map(viewSecret);
  } finally {
    client.close();
  }
}
