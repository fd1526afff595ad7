/**
 * A fake control plane: an ADS (state of the world) gRPC server on a loopback port chosen by the OS.
 *
 * Feed it resources with `set(typeUrl, resources)` (plain objects in proto field names, as `encodeAny` takes
 * them); every stream subscribed to that type gets a new version. Every DiscoveryRequest is recorded in
 * `requests` (ACKs and NACKs, with `error_detail`), and `waitFor(predicate)` resolves when one matches.
 */
import * as grpc from '@grpc/grpc-js';
import { type AnyMessage, TYPE_URL, encodeAny, fromStruct, grpcService } from '@trellis/api';

export interface RecordedRequest {
  readonly typeUrl: string;
  readonly versionInfo: string;
  readonly nonce: string;
  readonly resourceNames: readonly string[];
  /** Set on a NACK. */
  readonly errorDetail: { readonly code: number; readonly message: string } | null;
  readonly nodeId: string;
  readonly nodeMetadata: Readonly<Record<string, unknown>>;
}

interface Stream {
  readonly call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>;
  /** Resource names per type; empty = wildcard. */
  readonly subscriptions: Map<string, readonly string[]>;
  nonce: number;
}

const NAME_OF = (typeUrl: string, r: Record<string, unknown>): string => String(typeUrl === TYPE_URL.endpoint ? r.cluster_name : r.name);
const WILDCARD = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster]);

export class FakeAdsServer {
  private readonly server = new grpc.Server();
  private readonly resources = new Map<string, { version: number; items: Map<string, AnyMessage> }>();
  private readonly streams = new Set<Stream>();
  private readonly waiters = new Set<{ pred: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }>();
  readonly requests: RecordedRequest[] = [];
  port = 0;

  constructor() {
    const svc = grpcService('envoy.service.discovery.v3.AggregatedDiscoveryService');
    this.server.addService(svc.service, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>) => this.onStream(call),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    });
  }

  /** Starts listening on 127.0.0.1 (port 0 the first time). */
  async start(port = 0): Promise<this> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    return this;
  }

  /** Listens on a Unix socket instead (reachable from another network namespace); `address` becomes `unix://…`. */
  async startUnix(path: string): Promise<this> {
    await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    this.unixPath = path;
    return this;
  }

  private unixPath: string | null = null;

  get address(): string {
    return this.unixPath ? `unix://${this.unixPath}` : `127.0.0.1:${this.port}`;
  }

  /** Replaces the whole set of resources of one type and pushes a new version to subscribed streams. */
  set(typeUrl: string, resources: readonly Record<string, unknown>[]): void {
    const prev = this.resources.get(typeUrl);
    const items = new Map<string, AnyMessage>();
    for (const r of resources) items.set(NAME_OF(typeUrl, r), encodeAny(typeUrl, r));
    this.resources.set(typeUrl, { version: (prev?.version ?? 0) + 1, items });
    for (const s of this.streams) if (s.subscriptions.has(typeUrl)) this.push(s, typeUrl);
  }

  /** Sends one raw resource list (even invalid ones) as a new version of a type. */
  setRaw(typeUrl: string, resources: readonly AnyMessage[], names: readonly string[]): void {
    const prev = this.resources.get(typeUrl);
    const items = new Map<string, AnyMessage>();
    resources.forEach((r, i) => items.set(names[i], r));
    this.resources.set(typeUrl, { version: (prev?.version ?? 0) + 1, items });
    for (const s of this.streams) if (s.subscriptions.has(typeUrl)) this.push(s, typeUrl);
  }

  /** Resolves with the first recorded request (past or future) matching `pred`. */
  waitFor(pred: (r: RecordedRequest) => boolean, timeoutMs = 5000): Promise<RecordedRequest> {
    const hit = this.requests.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (r: RecordedRequest) => { clearTimeout(t); resolve(r); } };
      const t = setTimeout(() => { this.waiters.delete(w); reject(new Error('FakeAdsServer.waitFor: timed out')); }, timeoutMs);
      this.waiters.add(w);
    });
  }

  /** Number of open streams. */
  get connections(): number {
    return this.streams.size;
  }

  /** Cuts every open stream (simulates a control-plane restart) without stopping the server. */
  disconnectAll(): void {
    for (const s of this.streams) s.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'fake control plane disconnect' });
    this.streams.clear();
  }

  async stop(): Promise<void> {
    this.disconnectAll();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
  }

  private onStream(call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>): void {
    const s: Stream = { call, subscriptions: new Map(), nonce: 0 };
    this.streams.add(s);
    let nodeId = '';
    let nodeMetadata: Record<string, unknown> = {};
    call.on('data', (req: Record<string, unknown>) => {
      const node = req.node as { id?: string; metadata?: { fields?: Record<string, unknown> } } | null;
      if (node?.id) { nodeId = node.id; nodeMetadata = fromStruct(node.metadata); }
      const typeUrl = String(req.type_url);
      const names = (req.resource_names as string[] | undefined) ?? [];
      const err = req.error_detail as { code?: number; message?: string } | null;
      const rec: RecordedRequest = Object.freeze({
        typeUrl, versionInfo: String(req.version_info ?? ''), nonce: String(req.response_nonce ?? ''), resourceNames: Object.freeze([...names]),
        errorDetail: err && (err.message || err.code) ? { code: err.code ?? 0, message: err.message ?? '' } : null, nodeId, nodeMetadata,
      });
      this.requests.push(rec);
      for (const w of this.waiters) if (w.pred(rec)) { this.waiters.delete(w); w.resolve(rec); }
      const prevNames = s.subscriptions.get(typeUrl);
      const changed = !prevNames || prevNames.join('\0') !== names.join('\0');
      s.subscriptions.set(typeUrl, names);
      // Respond to a new subscription or a change of names; an ACK/NACK of the current version needs nothing.
      if (changed || rec.nonce === '') this.push(s, typeUrl);
    });
    const done = () => this.streams.delete(s);
    call.on('end', () => { done(); call.end(); });
    call.on('error', done);
    call.on('cancelled', done);
  }

  private push(s: Stream, typeUrl: string): void {
    const state = this.resources.get(typeUrl);
    if (!state) return;
    const names = s.subscriptions.get(typeUrl) ?? [];
    const wanted = WILDCARD.has(typeUrl) || names.length === 0 ? [...state.items.values()] : names.flatMap((n) => (state.items.has(n) ? [state.items.get(n)!] : []));
    s.nonce += 1;
    s.call.write({ version_info: String(state.version), type_url: typeUrl, nonce: String(s.nonce), resources: wanted });
  }
}

