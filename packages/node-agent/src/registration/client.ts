/**
 * The agent's registration stream: an ADS stream (state of the world) whose node carries `WORKLOAD_GROUP`, so the
 * control plane auto-registers this host's WorkloadEntry for as long as the stream (or a successor within the grace
 * period) is open. It subscribes to nothing; it carries Istio's health reports: a DiscoveryRequest with
 * `type_url: 'istio.io/health'`, no `error_detail` when the readiness probe passes, an `error_detail` with the
 * reason when it fails. The last report is re-sent on every new stream (a restarted control plane learns it again).
 *
 * It reconnects with exponential backoff (0.5 s doubling to 30 s, ±20 % jitter; reset after a stream that lasted
 * 10 s). `start(signal)` runs until the signal aborts and never rejects.
 */
import * as grpc from '@grpc/grpc-js';
import { grpcService } from '@trellis/api';
import { silentLogger, type Logger } from '../observer.js';
import type { ProbeResult } from './probe.js';

export const HEALTH_TYPE_URL = 'istio.io/health';

export interface RegistrationStreamOptions {
  /** Control plane address, `host:port`. */
  readonly address: string;
  /** TLS with the workload certificate: the control plane registers only authenticated streams. */
  readonly credentials: grpc.ChannelCredentials;
  /** The Envoy `Node` in proto field form (metadata as a Struct). */
  readonly node: Readonly<Record<string, unknown>>;
  readonly logger?: Logger;
  readonly initialRetryMs?: number;
  readonly maxRetryMs?: number;
}

type AdsStream = grpc.ClientDuplexStream<Record<string, unknown>, unknown>;

export class RegistrationStream {
  readonly #o: RegistrationStreamOptions;
  readonly #logger: Logger;
  #health: ProbeResult | undefined;
  #stream: AdsStream | undefined;
  #streams = 0;

  constructor(options: RegistrationStreamOptions, health?: ProbeResult) {
    this.#o = options;
    this.#logger = options.logger ?? silentLogger;
    this.#health = health;
  }

  /** Streams opened so far. */
  get streams(): number {
    return this.#streams;
  }

  /** Records and sends a probe result (kept for the next stream when none is open). */
  report(result: ProbeResult): void {
    this.#health = result;
    if (this.#stream) this.#send(this.#stream, result);
  }

  async start(signal: AbortSignal): Promise<void> {
    const Ctor = grpcService('envoy.service.discovery.v3.AggregatedDiscoveryService');
    const client = new Ctor(this.#o.address, this.#o.credentials);
    const initial = this.#o.initialRetryMs ?? 500;
    const max = this.#o.maxRetryMs ?? 30_000;
    let delay = initial;
    try {
      while (!signal.aborted) {
        const opened = Date.now();
        await this.#runStream(client, signal);
        if (signal.aborted) break;
        delay = Date.now() - opened > 10_000 ? initial : Math.min(max, delay * 2);
        await sleep(delay * (0.8 + Math.random() * 0.4), signal);
      }
    } finally {
      client.close();
    }
  }

  #runStream(client: grpc.Client, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const stream = (client as unknown as { StreamAggregatedResources(): AdsStream }).StreamAggregatedResources();
      this.#stream = stream;
      this.#streams++;
      let finished = false;
      const finish = (reason: string): void => {
        if (finished) return;
        finished = true;
        if (this.#stream === stream) this.#stream = undefined;
        signal.removeEventListener('abort', onAbort);
        if (!signal.aborted) this.#logger.warn('registration stream ended; reconnecting', { address: this.#o.address, reason });
        resolve();
      };
      const onAbort = (): void => {
        stream.cancel();
        finish('aborted');
      };
      signal.addEventListener('abort', onAbort, { once: true });
      stream.on('data', () => { /* nothing is subscribed */ });
      stream.on('error', (err: grpc.ServiceError) => finish(`${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
      stream.on('end', () => finish('closed by the control plane'));
      // The first request only announces the node (an empty type URL subscribes to nothing).
      stream.write({ node: this.#o.node, type_url: '', resource_names: [], version_info: '', response_nonce: '' });
      if (this.#health) this.#send(stream, this.#health);
    });
  }

  #send(stream: AdsStream, result: ProbeResult): void {
    stream.write({
      type_url: HEALTH_TYPE_URL,
      ...(result.healthy ? {} : { error_detail: { code: grpc.status.INTERNAL, message: result.message || 'readiness probe failed' } }),
    });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
