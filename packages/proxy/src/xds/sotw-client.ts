/**
 * A state-of-the-world xDS client over one gRPC bidi stream (ADS, or SDS on a Unix socket).
 *
 * Per type it sends DiscoveryRequests with the names it wants, decodes every resource of a response at the edge
 * (`@trellis/api` decoders) and either applies the whole response to the ConfigStore and ACKs it, or NACKs it with
 * `error_detail` naming the resource and field — the last good value keeps serving. When the stream breaks it
 * reconnects with backoff and re-sends every subscription with the versions it holds.
 */
import * as grpc from '@grpc/grpc-js';
import { type DecodableTypeUrl, TYPE_URL, decodeAny, decodeEnvoyResource, grpcService, resourceName } from '@trellis/api';
import { type ConfigStore, KIND_OF_TYPE_URL } from '../config/store.js';
import type { Logger } from '../log.js';
import { Backoff } from './backoff.js';
import { type NodeIdentity, nodeMessage } from './node.js';

export interface Subscription {
  readonly typeUrl: DecodableTypeUrl;
  /** Resource names wanted now; null = wildcard. */
  names(): readonly string[] | null;
}

export interface SotwClientOptions {
  readonly target: string;
  readonly credentials: grpc.ChannelCredentials;
  readonly service: string;
  readonly method: string;
  readonly node: NodeIdentity;
  readonly subscriptions: readonly Subscription[];
  readonly store: ConfigStore;
  readonly logger: Logger;
  /** SDS pushes secrets one name at a time: merge into the store instead of replacing. */
  readonly merge?: boolean;
  readonly backoff?: Backoff;
  readonly channelOptions?: grpc.ChannelOptions;
}

interface TypeProgress {
  version: string;
  nonce: string;
  /** Whether a request was sent on the current stream, and with which names ('*' = wildcard). */
  sent: boolean;
  sentKey: string;
}

interface Counters {
  acks: number;
  nacks: number;
  reconnects: number;
  lastError: string | null;
}

export class SotwClient {
  private readonly client: grpc.Client;
  private readonly progress = new Map<string, TypeProgress>();
  private call: grpc.ClientDuplexStream<Record<string, unknown>, Record<string, unknown>> | null = null;
  private readonly backoff: Backoff;
  private nodeSent = false;
  readonly counters: Counters = { acks: 0, nacks: 0, reconnects: 0, lastError: null };
  connected = false;

  constructor(private readonly o: SotwClientOptions) {
    const Ctor = grpcService(o.service);
    this.client = new Ctor(o.target, o.credentials, { 'grpc.keepalive_time_ms': 30_000, ...o.channelOptions });
    this.backoff = o.backoff ?? new Backoff();
  }

  /** Runs until `signal` aborts. */
  start(signal: AbortSignal): void {
    let timer: NodeJS.Timeout | undefined;
    const open = () => {
      if (signal.aborted) return;
      const call = (this.client as unknown as Record<string, (opts?: grpc.CallOptions) => grpc.ClientDuplexStream<Record<string, unknown>, Record<string, unknown>>>)[this.o.method]();
      this.call = call;
      this.nodeSent = false;
      let healthy = false;
      call.on('data', (resp: Record<string, unknown>) => {
        if (!healthy) { healthy = true; this.backoff.reset(); }
        this.connected = true;
        this.onResponse(resp);
      });
      const retry = (err?: Error) => {
        if (this.call !== call) return;
        this.call = null;
        this.connected = false;
        if (err) this.counters.lastError = err.message;
        if (signal.aborted) return;
        this.counters.reconnects += 1;
        const delay = this.backoff.next();
        this.o.logger.warn('xds stream closed; reconnecting', { service: this.o.service, error: err?.message, delayMs: delay });
        timer = setTimeout(open, delay);
      };
      call.on('error', retry);
      call.on('end', () => retry());
      for (const s of this.o.subscriptions) {
        const p = this.progress.get(s.typeUrl);
        if (p) p.sent = false;
        this.sendRequest(s.typeUrl, null);
      }
    };
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      const c = this.call;
      this.call = null;
      c?.cancel();
      this.client.close();
    }, { once: true });
    open();
  }

  /** Re-sends subscriptions whose wanted names changed (called when the store changes). */
  refresh(): void {
    for (const s of this.o.subscriptions) {
      const names = s.names();
      const key = names === null ? '*' : names.join('\0');
      const p = this.progress.get(s.typeUrl);
      if (!p || !p.sent || p.sentKey !== key) this.sendRequest(s.typeUrl, null);
    }
  }

  private sendRequest(typeUrl: string, error: string | null): void {
    const call = this.call;
    if (!call) return;
    const sub = this.o.subscriptions.find((s) => s.typeUrl === typeUrl)!;
    const names = sub.names();
    let p = this.progress.get(typeUrl);
    if (!p) { p = { version: '', nonce: '', sent: false, sentKey: '' }; this.progress.set(typeUrl, p); }
    // A named subscription with nothing to ask for is left unsent until it has names.
    if (names !== null && names.length === 0 && !p.sent && !error) return;
    p.sent = true;
    p.sentKey = names === null ? '*' : names.join('\0');
    const req: Record<string, unknown> = {
      version_info: p.version,
      response_nonce: p.nonce,
      type_url: typeUrl,
      resource_names: names ?? [],
    };
    if (!this.nodeSent) { req.node = nodeMessage(this.o.node); this.nodeSent = true; }
    if (error) req.error_detail = { code: grpc.status.INVALID_ARGUMENT, message: error };
    call.write(req);
  }

  private onResponse(resp: Record<string, unknown>): void {
    const typeUrl = String(resp.type_url) as DecodableTypeUrl;
    const kind = KIND_OF_TYPE_URL[typeUrl];
    const version = String(resp.version_info ?? '');
    const nonce = String(resp.nonce ?? '');
    let p = this.progress.get(typeUrl);
    if (!p) { p = { version: '', nonce: '', sent: false, sentKey: '' }; this.progress.set(typeUrl, p); }
    p.nonce = nonce;
    if (!kind) {
      this.sendRequest(typeUrl, `unsupported type ${typeUrl}`);
      return;
    }
    const resources = new Map<string, never>();
    const raw = new Map<string, unknown>();
    const list = (resp.resources as { type_url: string; value: Uint8Array }[] | undefined) ?? [];
    try {
      list.forEach((any, i) => {
        let name = `resource ${i}`;
        try {
          if (any.type_url !== typeUrl) throw new Error(`type_url ${any.type_url} does not match ${typeUrl}`);
          const obj = decodeAny(any);
          const value = decodeEnvoyResource(typeUrl, obj);
          name = resourceName(typeUrl, value);
          if (resources.has(name)) throw new Error('duplicate resource name');
          resources.set(name, value as never);
          raw.set(name, obj);
        } catch (err) {
          const n = typeUrl === TYPE_URL.endpoint ? 'cluster_name' : 'name';
          throw new Error(`${typeUrl.slice(typeUrl.lastIndexOf('.') + 1)} ${JSON.stringify(name)} (${n} at index ${i}): ${(err as Error).message}`);
        }
      });
    } catch (err) {
      this.counters.nacks += 1;
      this.o.logger.warn('NACK', { typeUrl, version, error: (err as Error).message });
      this.sendRequest(typeUrl, (err as Error).message);
      return;
    }
    p.version = version;
    this.counters.acks += 1;
    this.o.store.replace(kind, version, resources, raw, this.o.merge);
    this.sendRequest(typeUrl, null);
    // A change of listeners/clusters may need more RDS/EDS/SDS names.
    this.refresh();
  }
}
