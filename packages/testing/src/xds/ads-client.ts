/**
 * A small ADS (state of the world) client for tests and benchmarks: opens `StreamAggregatedResources`, subscribes
 * to types, and ACKs (or NACKs, when `reject` says so) every response, recording what it received.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeAny, grpcService, toStruct } from '@trellis/api';

export interface AdsResponse {
  readonly type: string;
  readonly version: string;
  readonly nonce: string;
  readonly names: readonly string[];
  readonly resources: readonly Record<string, unknown>[];
}

export interface AdsClientOptions {
  /** `host:port` of a plaintext ADS listener. */
  readonly address: string;
  readonly nodeId: string;
  readonly metadata?: Record<string, unknown>;
  readonly locality?: { region?: string; zone?: string; sub_zone?: string };
  /** Return an error message to NACK a response instead of ACKing it. */
  readonly reject?: (r: AdsResponse) => string | undefined;
  /** Decode resources (costly): true (default), false, or only the listed type URLs. */
  readonly decode?: boolean | readonly string[];
}

interface WireResponse { version_info: string; nonce: string; type_url: string; resources: { type_url: string; value: Uint8Array }[] }

export class AdsTestClient {
  readonly responses: AdsResponse[] = [];
  /** Last ACKed version per type. */
  readonly acked = new Map<string, string>();
  readonly #client: grpc.Client;
  readonly #stream: grpc.ClientDuplexStream<unknown, WireResponse>;
  readonly #opts: AdsClientOptions;
  readonly #names = new Map<string, readonly string[]>();
  readonly #waiters: { pred: (r: AdsResponse) => boolean; resolve: (r: AdsResponse) => void }[] = [];
  #sentNode = false;
  /** Called after every response was ACKed/NACKed. */
  onResponse?: (r: AdsResponse) => void;

  constructor(options: AdsClientOptions) {
    this.#opts = options;
    const Ctor = grpcService('envoy.service.discovery.v3.AggregatedDiscoveryService');
    this.#client = new Ctor(options.address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
    this.#stream = (this.#client as unknown as { StreamAggregatedResources(): grpc.ClientDuplexStream<unknown, WireResponse> }).StreamAggregatedResources();
    this.#stream.on('data', (r: WireResponse) => this.#onData(r));
    this.#stream.on('error', () => { /* closed by the server or by close() */ });
  }

  #node(): Record<string, unknown> | undefined {
    if (this.#sentNode) return undefined;
    this.#sentNode = true;
    return { id: this.#opts.nodeId, metadata: toStruct(this.#opts.metadata ?? {}), locality: this.#opts.locality ?? {} };
  }

  /** Subscribes to a type (empty names: wildcard for LDS/CDS). */
  subscribe(type: string, names: readonly string[] = []): void {
    this.#names.set(type, names);
    this.#stream.write({ node: this.#node(), type_url: type, resource_names: [...names], version_info: this.acked.get(type) ?? '', response_nonce: this.#lastNonce.get(type) ?? '' });
  }

  readonly #lastNonce = new Map<string, string>();

  #onData(r: WireResponse): void {
    const d = this.#opts.decode ?? true;
    const decode = typeof d === 'boolean' ? d : d.includes(r.type_url);
    const resources = decode ? r.resources.map((a) => decodeAny(a)) : [];
    const names = decode ? resources.map((x) => String(x.name ?? x.cluster_name ?? '')) : [];
    const resp: AdsResponse = { type: r.type_url, version: r.version_info, nonce: r.nonce, names, resources };
    this.responses.push(resp);
    this.#lastNonce.set(r.type_url, r.nonce);
    const err = this.#opts.reject?.(resp);
    if (err === undefined) this.acked.set(r.type_url, r.version_info);
    this.#stream.write({
      type_url: r.type_url, resource_names: [...(this.#names.get(r.type_url) ?? [])], version_info: this.acked.get(r.type_url) ?? '',
      response_nonce: r.nonce, ...(err !== undefined ? { error_detail: { code: 3, message: err } } : {}),
    });
    this.onResponse?.(resp);
    for (const w of [...this.#waiters]) {
      if (w.pred(resp)) { this.#waiters.splice(this.#waiters.indexOf(w), 1); w.resolve(resp); }
    }
  }

  /** Resolves with the next response (already received ones included when `fromIndex` is given) matching `pred`. */
  next(pred: (r: AdsResponse) => boolean = () => true, fromIndex?: number, timeoutMs = 5000): Promise<AdsResponse> {
    if (fromIndex !== undefined) {
      const found = this.responses.slice(fromIndex).find(pred);
      if (found) return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (r: AdsResponse) => { clearTimeout(t); resolve(r); } };
      const t = setTimeout(() => { this.#waiters.splice(this.#waiters.indexOf(w), 1); reject(new Error('timed out waiting for an ADS response')); }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  close(): void {
    this.#stream.cancel();
    this.#client.close();
  }
}
