/**
 * The `trellis` registry adapter (shard `trellis:<name>`): another Trellis control plane's exported services
 * (`GET <address>/v1/export/services`), for several control planes in one mesh (multi-primary; docs/multicluster.md).
 *
 * A long poll: each request carries the version last seen and `wait`; the remote answers when its export changes
 * (200 with the new export) or when the wait ends (304). Over `https://` the remote's certificate is verified against
 * `caPem` (e.g. the shared mesh root) or the system roots. When the remote is unreachable or answers garbage, the
 * shard goes `stale` and keeps its last content; it is retried with jittered backoff and becomes `synced` again with
 * the next good answer. Nothing here blocks the importing control plane's start-up or readiness.
 */
import { Agent, request, type Dispatcher } from 'undici';
import type { RegistryAdapter, RegistryChange, SourceKind } from '@trellis/model';
import { TrellisError } from '@trellis/model';
import { Backoff, childSignal, systemClock, type BackoffOptions, type Clock } from '../runtime.js';
import { ShardPublisher } from '../shard-publisher.js';
import { convertTrellisExport } from './convert.js';

export interface TrellisAdapterOptions {
  /** Base URL of the remote control plane's export (its HTTP port, or its HTTPS `--listen-webhook` port). */
  readonly address: string;
  /** Shard name: the shard id is `trellis:<name>` (the Registry's clusterId, else its name). */
  readonly name: string;
  /** Network of endpoints that name none. */
  readonly network?: string;
  /** PEM roots that verify an `https://` address; absent = the system's roots. */
  readonly caPem?: string;
  /** Sent as `authorization: Bearer …` when set. */
  readonly token?: string;
  /** How long the remote may hold a request open waiting for a change. Default 30 s. */
  readonly waitMs?: number;
  /** Per-request timeout on top of `waitMs`. Default 10 s. */
  readonly requestTimeoutMs?: number;
  readonly backoff?: BackoffOptions;
  readonly clock?: Clock;
}

export class TrellisAdapter implements RegistryAdapter {
  readonly kind: SourceKind = 'trellis';
  readonly shard: string;
  readonly #o: TrellisAdapterOptions;
  readonly #base: string;
  readonly #clock: Clock;

  constructor(options: TrellisAdapterOptions) {
    let url: URL;
    try {
      url = new URL(options.address);
    } catch (cause) {
      throw new TrellisError('TRELLIS_ERR_CONFIG', `trellis: address ${JSON.stringify(options.address)} is not a URL (expected http(s)://host:port)`, { cause });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TrellisError('TRELLIS_ERR_CONFIG', `trellis: address ${JSON.stringify(options.address)} must be http:// or https://`);
    }
    this.#o = options;
    this.#base = options.address.replace(/\/+$/, '');
    this.#clock = options.clock ?? systemClock;
    this.shard = `trellis:${options.name}`;
  }

  watch(signal: AbortSignal): AsyncIterable<RegistryChange> {
    const publisher = new ShardPublisher('trellis', this.shard, this.#clock);
    const dispatcher = new Agent({
      connect: { timeout: 5000, ...(this.#o.caPem ? { ca: this.#o.caPem } : {}) },
      keepAliveTimeout: 60_000,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    void this.#run(publisher, dispatcher, signal)
      .catch((err: unknown) => publisher.fail(err))
      .finally(() => void dispatcher.close().catch(() => {}));
    return publisher.changes(signal);
  }

  async #run(publisher: ShardPublisher, dispatcher: Dispatcher, signal: AbortSignal): Promise<void> {
    // A peer control plane is worth retrying often: at most 5 s between attempts unless told otherwise.
    const backoff = new Backoff(this.#o.backoff ?? { initialMs: 500, maxMs: 5000 });
    const waitMs = this.#o.waitMs ?? 30_000;
    let version = '';
    while (!signal.aborted) {
      const url = `${this.#base}/v1/export/services${version ? `?version=${encodeURIComponent(version)}&wait=${Math.ceil(waitMs / 1000)}s` : ''}`;
      // The first request (no version) is answered at once: only it bounds how long the shard stays `syncing`.
      const child = childSignal(signal, (version ? waitMs : 0) + (this.#o.requestTimeoutMs ?? 10_000));
      try {
        const res = await request(url, {
          dispatcher, signal: child.signal,
          headers: { accept: 'application/json', ...(this.#o.token ? { authorization: `Bearer ${this.#o.token}` } : {}) },
        });
        const text = await res.body.text();
        if (res.statusCode === 304) {
          publisher.ready();
          backoff.reset();
          continue;
        }
        if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}: ${text.trim().slice(0, 200)}`);
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          throw new Error(`${url}: the answer is not JSON`);
        }
        const c = convertTrellisExport(body, { shard: this.shard, url: this.#base, ...(this.#o.network ? { network: this.#o.network } : {}) });
        publisher.setGroup('export', c.services, c.workloads);
        publisher.setProblems(c.problems);
        publisher.ready();
        backoff.reset();
        version = c.header.version;
      } catch (err) {
        if (signal.aborted) return;
        publisher.fail(err instanceof Error && !err.message.includes(this.#base) ? new Error(`${this.#base}: ${err.message}`, { cause: err }) : err);
        // A version from before the outage may be stale on the remote's side too: ask for the full export again.
        version = '';
        await this.#clock.sleep(backoff.next(), signal);
      } finally {
        child.dispose();
      }
    }
  }
}
