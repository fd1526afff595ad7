/**
 * Where a provider's keys come from: inline text, a file (read when the config is first used), or a remote JWKS
 * fetched through a cluster and cached.
 *
 * Remote behaviour (Envoy's, plus a refetch on an unknown `kid`):
 * - fetched on first use; requests wait for that fetch, and when it fails they are refused with
 *   `Jwks remote fetch is failed` (the next request tries again; concurrent requests share one fetch);
 * - kept for `cache_duration`; after that the old keys keep serving while one refresh runs in the background;
 *   a failed refresh keeps the last good keys and is retried after `failureRetryMs`;
 * - a token whose `kid` no cached key has triggers a refetch at most once per `minRefetchIntervalMs`
 *   (key rotation at the issuer), so a stream of forged `kid`s cannot turn into a stream of fetches.
 */
import type { JwksSource } from '@trellis/api';
import { EMPTY_KEYS, type KeySet, parseJwks } from './jwks.js';
import { JwtStatus } from './status.js';

/** Fetches a JWKS document: GET `uri` through `cluster` within `timeoutMs`; rejects on a non-200 answer. */
export type JwksFetcher = (uri: string, cluster: string, timeoutMs: number) => Promise<string>;

export interface KeySource {
  /** The keys now, or a promise when they must be fetched first. */
  keys(): KeySet | Promise<KeySet>;
  /** A refetch for a token whose key is unknown, or null when none is allowed now (static keys, rate limit). */
  refetchForUnknownKid(): Promise<KeySet> | null;
  /** Changes whenever the keys change (verified-token caches are keyed on it). */
  readonly version: number;
}

export class StaticKeySource implements KeySource {
  readonly version = 0;
  constructor(private readonly set: KeySet) {}
  keys(): KeySet { return this.set; }
  refetchForUnknownKid(): null { return null; }
}

const FETCH_FAILED: KeySet = Object.freeze({ status: JwtStatus.JwksFetchFail, keys: Object.freeze([]) });
/** Bodies larger than this are not a JWKS. */
export const MAX_JWKS_BYTES = 1 << 20;

export interface RemoteJwksOptions {
  readonly fetch: JwksFetcher;
  /** Milliseconds clock. */
  readonly now: () => number;
  readonly minRefetchIntervalMs: number;
  readonly failureRetryMs: number;
}

export class RemoteJwks implements KeySource {
  private current: KeySet | null = null;
  private expiresAt = 0;
  private inflight: Promise<KeySet> | null = null;
  private lastKidRefetch = Number.NEGATIVE_INFINITY;
  version = 0;
  /** Counters for /stats-like views and tests. */
  readonly stats = { fetchOk: 0, fetchFailed: 0 };

  constructor(private source: Extract<JwksSource, { kind: 'remote' }>, private readonly o: RemoteJwksOptions) {}

  /** A newer config for the same URI and cluster (timeout, cache duration). */
  update(source: Extract<JwksSource, { kind: 'remote' }>): void {
    this.source = source;
  }

  keys(): KeySet | Promise<KeySet> {
    if (this.current === null) return this.refresh();
    if (this.o.now() >= this.expiresAt) void this.refresh();
    return this.current;
  }

  refetchForUnknownKid(): Promise<KeySet> | null {
    const now = this.o.now();
    if (now - this.lastKidRefetch < this.o.minRefetchIntervalMs) return null;
    this.lastKidRefetch = now;
    return this.refresh();
  }

  private refresh(): Promise<KeySet> {
    if (this.inflight) return this.inflight;
    const { uri, cluster, timeoutMs, cacheDurationMs } = this.source;
    const p = this.o.fetch(uri, cluster, timeoutMs).then(
      (text) => {
        const set = text.length > MAX_JWKS_BYTES ? EMPTY_KEYS : parseJwks(text);
        if (set.status !== JwtStatus.Ok) throw new Error(set.status);
        this.stats.fetchOk++;
        this.current = set;
        this.version++;
        this.expiresAt = this.o.now() + cacheDurationMs;
        return set;
      },
    ).catch(() => {
      this.stats.fetchFailed++;
      if (this.current !== null) {
        this.expiresAt = this.o.now() + Math.min(this.o.failureRetryMs, cacheDurationMs);
        return this.current;
      }
      return FETCH_FAILED;
    }).finally(() => { this.inflight = null; });
    this.inflight = p;
    return p;
  }
}

export interface KeySourcesOptions extends RemoteJwksOptions {
  /** Reads a `local_jwks.filename`; throws when it cannot. */
  readonly readFile: (filename: string) => string;
}

/**
 * One remote cache per (cluster, URI) for the proxy's lifetime, so a config push does not drop fetched keys;
 * inline and file sources are parsed per config version.
 */
export class KeySources {
  private readonly remotes = new Map<string, RemoteJwks>();
  constructor(private readonly o: KeySourcesOptions) {}

  for(source: JwksSource): KeySource {
    switch (source.kind) {
      case 'inline':
        return new StaticKeySource(parseJwks(source.text));
      case 'file': {
        let text: string;
        try {
          text = this.o.readFile(source.filename);
        } catch {
          return new StaticKeySource(EMPTY_KEYS);
        }
        return new StaticKeySource(parseJwks(text));
      }
      case 'remote': {
        const key = `${source.cluster}|${source.uri}`;
        let r = this.remotes.get(key);
        if (r) r.update(source);
        else this.remotes.set(key, (r = new RemoteJwks(source, this.o)));
        return r;
      }
    }
  }

  /** Remote caches by `cluster|uri` (admin views, tests). */
  get remoteCaches(): ReadonlyMap<string, RemoteJwks> {
    return this.remotes;
  }
}
