/**
 * Consul registry adapter: one instance watches one datacenter (shard `consul:<dc>`).
 *
 * A blocking query on `/v1/catalog/services` lists the names; each service gets its own blocking query on
 * `/v1/health/service/:name` (`?passing` unless warnings are included). Blocking-query rules from Consul's docs:
 * the index goes back to 0 (a non-blocking read) when it moves backwards, it is kept ≥ 1 otherwise, each loop is
 * rate-limited by a token bucket (burst 2), and errors back off exponentially with jitter. An unreachable agent
 * turns the shard `stale` with the error and keeps the last content.
 */
import { setMaxListeners } from 'node:events';
import type { Problem, Protocol, RegistryAdapter, RegistryChange, SourceKind } from '@trellis/model';
import { TrellisError } from '@trellis/model';
import { convertConsulService, type ConsulHealthEntry } from './convert.js';
import { Backoff, TokenBucket, childSignal, systemClock, type BackoffOptions, type Clock } from '../runtime.js';
import { ShardPublisher } from '../shard-publisher.js';
import type { FetchFunction } from '../runtime.js';

export type { FetchFunction };

export interface ConsulAdapterOptions {
  /** Base URL of a Consul agent or server, e.g. `http://127.0.0.1:8500`. */
  readonly address: string;
  /** Datacenter to watch (`?dc=`); also names the shard `consul:<dc>`. Default `dc1`. */
  readonly datacenter?: string;
  /** ACL token sent as `X-Consul-Token`. Default none. */
  readonly token?: string;
  /** Consul namespace (Enterprise, `?ns=`). Default none (the token's namespace). */
  readonly consulNamespace?: string;
  /** Hub namespace of the produced values. Default `default`. */
  readonly namespace?: string;
  /** Include instances whose checks are `warning` (at `Weights.Warning`). Default false: `?passing`. */
  readonly includeWarning?: boolean;
  /** Hostname template, tokens `{service}`, `{dc}`, `{namespace}`. Default `{service}.service.consul`. */
  readonly hostnameTemplate?: string;
  /** Node meta keys for the locality. Default `{ region: 'region', zone: 'zone' }`. */
  readonly localityKeys?: { readonly region?: string; readonly zone?: string };
  /** Protocol when an instance has no `protocol` meta. Default `TCP`. */
  readonly defaultProtocol?: Protocol;
  /** Network of the workloads. Default `''`. */
  readonly network?: string;
  /** Blocking query `wait`, seconds (Consul caps it at 600). Default 300. */
  readonly waitSeconds?: number;
  /** Per-loop token bucket: requests per second and burst. Default `{ perSecond: 5, burst: 2 }`. */
  readonly rateLimit?: { readonly perSecond?: number; readonly burst?: number };
  /** Backoff after errors. Default 500 ms doubling to 30 s, equal jitter. */
  readonly backoff?: BackoffOptions;
  /** Services to ignore (e.g. `consul` itself). Default `['consul']`. */
  readonly ignoreServices?: readonly string[];
  readonly fetch?: FetchFunction;
  readonly clock?: Clock;
  readonly random?: () => number;
}

/** Next blocking index from `X-Consul-Index`: 0 (non-blocking re-read) if it went backwards, else at least 1. */
export function nextConsulIndex(previous: number, header: string | null): number {
  const index = Number(header);
  if (!Number.isFinite(index) || index < previous) return 0;
  return Math.max(1, Math.floor(index));
}

export class ConsulAdapter implements RegistryAdapter {
  readonly kind: SourceKind = 'consul';
  readonly shard: string;
  private readonly datacenter: string;
  private readonly fetchFn: FetchFunction;
  private readonly clock: Clock;
  private readonly base: string;

  constructor(private readonly options: ConsulAdapterOptions) {
    this.datacenter = options.datacenter ?? 'dc1';
    this.shard = `consul:${this.datacenter}`;
    this.fetchFn = options.fetch ?? (globalThis.fetch as unknown as FetchFunction);
    this.clock = options.clock ?? systemClock;
    this.base = options.address.replace(/\/+$/, '');
  }

  watch(signal: AbortSignal): AsyncIterable<RegistryChange> {
    const publisher = new ShardPublisher('consul', this.shard, this.clock);
    this.run(publisher, signal).catch((err: unknown) => publisher.fail(err));
    return publisher.changes(signal);
  }

  private async get(path: string, query: Record<string, string>, signal: AbortSignal): Promise<{ body: unknown; index: string | null }> {
    const params = new URLSearchParams({ dc: this.datacenter, ...query });
    if (this.options.consulNamespace) params.set('ns', this.options.consulNamespace);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.options.token) headers['x-consul-token'] = this.options.token;
    const wait = this.waitSeconds();
    // The server may hold the request for wait + wait/16; allow that plus a margin.
    const child = childSignal(signal, Math.ceil((wait + wait / 16 + 15) * 1000));
    const url = `${this.base}${path}?${params.toString().replace(/passing=(&|$)/, 'passing$1')}`;
    let res;
    let text: string;
    try {
      res = await this.fetchFn(url, { headers, signal: child.signal });
      text = await res.text();
    } catch (err) {
      throw new TrellisError('TRELLIS_ERR_REGISTRY_UNREACHABLE', `consul ${this.datacenter}: GET ${path}: ${(err as Error)?.message ?? err}`, { cause: err });
    } finally {
      child.dispose();
    }
    if (res.status !== 200) {
      throw new TrellisError('TRELLIS_ERR_REGISTRY_HTTP', `consul ${this.datacenter}: GET ${path}: HTTP ${res.status}: ${text.trim().slice(0, 200)}`);
    }
    try {
      return { body: JSON.parse(text) as unknown, index: res.headers.get('x-consul-index') };
    } catch (err) {
      throw new TrellisError('TRELLIS_ERR_REGISTRY_DECODE', `consul ${this.datacenter}: GET ${path}: invalid JSON`, { cause: err });
    }
  }

  private waitSeconds(): number {
    return Math.min(600, Math.max(1, this.options.waitSeconds ?? 300));
  }

  private async run(publisher: ShardPublisher, outer: AbortSignal): Promise<void> {
    // One listener per service watch hangs off this signal: thousands are expected, not a leak.
    const root = childSignal(outer);
    setMaxListeners(0, root.signal);
    const signal = root.signal;
    const watchers = new Map<string, { abort(): void }>();
    const initial = new Set<string>();
    const failing = new Set<string>();
    let catalogDone = false;
    const ignore = new Set(this.options.ignoreServices ?? ['consul']);
    const problems = new Map<string, Problem[]>();

    const succeeded = (loop: string): void => {
      failing.delete(loop);
      initial.delete(loop);
      if (catalogDone && initial.size === 0 && failing.size === 0) publisher.ready();
    };
    const failed = (loop: string, err: unknown): void => {
      failing.add(loop);
      publisher.fail(err);
    };
    const bucket = (): TokenBucket =>
      new TokenBucket(this.options.rateLimit?.perSecond ?? 5, this.options.rateLimit?.burst ?? 2, this.clock);

    const watchService = async (name: string, own: AbortSignal): Promise<void> => {
      const loop = `service:${name}`;
      const limiter = bucket();
      const backoff = new Backoff(this.options.backoff, this.options.random);
      let index = 0;
      let seen: number | undefined;
      while (!own.aborted) {
        await limiter.take(own);
        if (own.aborted) return;
        try {
          const query: Record<string, string> = { wait: `${this.waitSeconds()}s` };
          if (index > 0) query.index = String(index);
          if (!this.options.includeWarning) query.passing = '';
          const { body, index: header } = await this.get(`/v1/health/service/${encodeURIComponent(name)}`, query, own);
          if (own.aborted) return;
          index = nextConsulIndex(index, header);
          backoff.reset();
          if (seen !== index || index === 0) {
            seen = index;
            const entries = Array.isArray(body) ? (body as ConsulHealthEntry[]) : [];
            const result = convertConsulService(name, entries, { ...this.options, datacenter: this.datacenter, shard: this.shard });
            publisher.setGroup(name, result.service ? [result.service] : [], result.workloads);
            if (result.problems.length > 0) problems.set(name, [...result.problems]);
            else problems.delete(name);
            publisher.setProblems([...problems.values()].flat());
          }
          succeeded(loop);
        } catch (err) {
          if (own.aborted) return;
          failed(loop, err);
          await this.clock.sleep(backoff.next(), own);
        }
      }
    };

    const limiter = bucket();
    const backoff = new Backoff(this.options.backoff, this.options.random);
    let index = 0;
    while (!signal.aborted) {
      await limiter.take(signal);
      if (signal.aborted) break;
      try {
        const query: Record<string, string> = { wait: `${this.waitSeconds()}s` };
        if (index > 0) query.index = String(index);
        const { body, index: header } = await this.get('/v1/catalog/services', query, signal);
        index = nextConsulIndex(index, header);
        backoff.reset();
        const names = new Set(Object.keys((body ?? {}) as Record<string, unknown>).filter((n) => !ignore.has(n)));
        for (const [name, ctl] of watchers) {
          if (!names.has(name)) {
            ctl.abort();
            watchers.delete(name);
            initial.delete(`service:${name}`);
            failing.delete(`service:${name}`);
            problems.delete(name);
            publisher.deleteGroup(name);
          }
        }
        for (const name of names) {
          if (watchers.has(name)) continue;
          const own = childSignal(signal);
          watchers.set(name, own);
          if (!catalogDone) initial.add(`service:${name}`);
          watchService(name, own.signal)
            .catch((err: unknown) => publisher.fail(err))
            .finally(() => own.dispose());
        }
        catalogDone = true;
        succeeded('catalog');
      } catch (err) {
        if (signal.aborted) break;
        failed('catalog', err);
        await this.clock.sleep(backoff.next(), signal);
      }
    }
    for (const w of watchers.values()) w.abort();
    root.dispose();
  }
}
