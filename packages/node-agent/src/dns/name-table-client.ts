/**
 * The agent's own xDS subscription to the name table (NDS): an ADS stream (state of the world) subscribed to
 * `TYPE_URL.nameTable` only, feeding each table it receives to `onTable` (e.g. `DnsProxy.setNameTable`).
 *
 * Every response is ACKed (`version_info` and `response_nonce` echoed); one that does not decode is NACKed with the
 * reason and the last good table stays in force. When the stream ends or fails, it reconnects with exponential
 * backoff (0.5 s doubling to 30 s, ±20 % jitter, reset after a response), resending the subscription with the last
 * ACKed version. `start(signal)` runs until the signal aborts.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeAny, grpcService, TYPE_URL } from '@trellis/api';
import { silentLogger, type Logger } from '../observer.js';
import type { NameTableInput } from './name-table.js';

export interface NameTableSubscriptionOptions {
  /** Control plane address, `host:port` (or `unix:///path`). */
  readonly address: string;
  /** TLS (with the agent's certificate) or insecure for the loopback plaintext port. */
  readonly credentials: grpc.ChannelCredentials;
  /** The Envoy `Node` in proto field form (`id`, `metadata` as a Struct, …), sent on the first request of a stream. */
  readonly node: Readonly<Record<string, unknown>>;
  readonly onTable: (table: NameTableInput) => void;
  readonly logger?: Logger;
  readonly initialRetryMs?: number;
  readonly maxRetryMs?: number;
}

interface WireResponse {
  version_info: string;
  nonce: string;
  type_url: string;
  resources: { type_url: string; value: Uint8Array }[];
}

type AdsStream = grpc.ClientDuplexStream<Record<string, unknown>, WireResponse>;

export class NameTableSubscription {
  readonly #o: NameTableSubscriptionOptions;
  readonly #logger: Logger;
  #version = '';
  #tables = 0;

  constructor(options: NameTableSubscriptionOptions) {
    this.#o = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Number of tables handed to `onTable` so far. */
  get received(): number {
    return this.#tables;
  }

  /** Runs the subscription until `signal` aborts; never rejects. */
  async start(signal: AbortSignal): Promise<void> {
    const Ctor = grpcService('envoy.service.discovery.v3.AggregatedDiscoveryService');
    const client = new Ctor(this.#o.address, this.#o.credentials);
    const initial = this.#o.initialRetryMs ?? 500;
    const max = this.#o.maxRetryMs ?? 30_000;
    let delay = initial;
    try {
      while (!signal.aborted) {
        const gotResponse = await this.#runStream(client, signal);
        if (signal.aborted) break;
        delay = gotResponse ? initial : Math.min(max, delay * 2);
        const wait = delay * (0.8 + Math.random() * 0.4);
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, wait);
          function done(): void {
            clearTimeout(t);
            signal.removeEventListener('abort', done);
            resolve();
          }
          signal.addEventListener('abort', done, { once: true });
        });
      }
    } finally {
      client.close();
    }
  }

  /** One stream; resolves when it ends, with whether any response arrived. */
  #runStream(client: grpc.Client, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const stream = (client as unknown as { StreamAggregatedResources(): AdsStream }).StreamAggregatedResources();
      let got = false;
      let finished = false;
      const finish = (reason: string): void => {
        if (finished) return;
        finished = true;
        signal.removeEventListener('abort', onAbort);
        if (!signal.aborted) this.#logger.warn('name table stream ended; reconnecting', { address: this.#o.address, reason });
        resolve(got);
      };
      const onAbort = (): void => {
        stream.cancel();
        finish('aborted');
      };
      signal.addEventListener('abort', onAbort, { once: true });
      stream.on('data', (r: WireResponse) => {
        got = true;
        this.#onResponse(stream, r);
      });
      stream.on('error', (err: grpc.ServiceError) => finish(`${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
      stream.on('end', () => finish('closed by the control plane'));
      stream.write({ node: this.#o.node, type_url: TYPE_URL.nameTable, resource_names: [], version_info: this.#version, response_nonce: '' });
    });
  }

  #onResponse(stream: AdsStream, r: WireResponse): void {
    if (r.type_url !== TYPE_URL.nameTable) return;
    let table: NameTableInput;
    try {
      // One resource (named ''); several are merged, later names winning.
      const merged: Record<string, unknown> = {};
      for (const any of r.resources) Object.assign(merged, (decodeAny(any) as { table?: Record<string, unknown> }).table ?? {});
      table = { table: merged as NameTableInput['table'] };
    } catch (err) {
      const message = (err as Error).message;
      this.#logger.warn('name table rejected', { version: r.version_info, error: message });
      stream.write({ type_url: r.type_url, resource_names: [], version_info: this.#version, response_nonce: r.nonce, error_detail: { code: grpc.status.INVALID_ARGUMENT, message } });
      return;
    }
    this.#version = r.version_info;
    this.#tables++;
    try {
      this.#o.onTable(table);
    } finally {
      stream.write({ type_url: r.type_url, resource_names: [], version_info: r.version_info, response_nonce: r.nonce });
    }
  }
}
