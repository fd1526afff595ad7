/**
 * List + watch of one resource collection, with Kubernetes' rules: page the list with `limit`/`continue`, watch
 * from the list's `resourceVersion` with `allowWatchBookmarks=true`, follow bookmarks, re-watch from the last seen
 * version when the server ends a watch, and on `410 Gone` (an HTTP 410 or an ERROR event with code 410) drop
 * everything and re-list. Other errors back off with jitter and retry.
 */
import type { BackoffOptions, Clock } from '../runtime.js';
import { Backoff } from '../runtime.js';
import { KubeApiError, type KubeHttpClient } from './client.js';
import type { KubeObject } from './convert.js';

export interface ListWatchHandlers<T extends KubeObject> {
  /** A (re-)list finished: `items` replace everything known. */
  replace(items: readonly T[]): void;
  /** One watch event. */
  event(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: T): void;
  /** The collection is in sync (a list finished or a watch was accepted). */
  ok(): void;
  /** The collection is failing; it retries by itself. */
  error(err: unknown): void;
}

export interface ListWatchOptions {
  /** Page size of lists. Default 500. */
  readonly pageSize?: number;
  /** `timeoutSeconds` asked of each watch (the server ends it then; the loop re-watches). Default 300. */
  readonly watchTimeoutSeconds?: number;
  readonly backoff?: BackoffOptions;
  readonly clock: Clock;
  readonly random?: () => number;
  /**
   * Treat a 404 on the list as an empty collection and look again after this many ms (a CRD that is not
   * installed). Default: a 404 is an error.
   */
  readonly missingRetryMs?: number;
}

interface List<T> {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items?: readonly T[] | null;
}

interface WatchEvent<T> {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: T & { readonly code?: number; readonly message?: string };
}

export class Gone extends Error {}

/** Runs until `signal` aborts; `path` is a collection such as `/api/v1/services`. */
export async function listWatch<T extends KubeObject>(
  client: KubeHttpClient,
  path: string,
  handlers: ListWatchHandlers<T>,
  options: ListWatchOptions,
  signal: AbortSignal,
): Promise<{ lists: number }> {
  const backoff = new Backoff(options.backoff, options.random);
  const stats = { lists: 0 };
  let rv: string | undefined;
  // A 410 right after a list (a server that keeps answering Gone) must not spin: only the first is retried at once.
  let gone = 0;
  while (!signal.aborted) {
    try {
      if (rv === undefined) {
        let listed: { items: T[]; resourceVersion: string };
        try {
          listed = await listAll<T>(client, path, options.pageSize ?? 500, signal);
        } catch (err) {
          if (options.missingRetryMs === undefined || !(err instanceof KubeApiError && err.status === 404)) throw err;
          handlers.replace([]);
          handlers.ok();
          backoff.reset();
          await options.clock.sleep(options.missingRetryMs, signal);
          continue;
        }
        const { items, resourceVersion } = listed;
        stats.lists++;
        rv = resourceVersion;
        gone = 0;
        handlers.replace(items);
        handlers.ok();
      }
      const q = new URLSearchParams({
        watch: '1',
        resourceVersion: rv,
        allowWatchBookmarks: 'true',
        timeoutSeconds: String(options.watchTimeoutSeconds ?? 300),
      });
      await client.stream(
        `${path}?${q}`,
        signal,
        () => {
          backoff.reset();
          handlers.ok();
        },
        (line) => {
          const e = line as WatchEvent<T>;
          if (e.type === 'ERROR') {
            if (e.object?.code === 410) throw new Gone(e.object.message ?? 'Gone');
            throw new KubeApiError(e.object?.code ?? 0, `watch ${path}: ${e.object?.message ?? 'error event'}`);
          }
          const next = e.object?.metadata?.resourceVersion;
          if (e.type !== 'BOOKMARK') handlers.event(e.type, e.object);
          if (next) rv = next;
        },
      );
    } catch (err) {
      if (signal.aborted) break;
      if (err instanceof Gone || (err instanceof KubeApiError && err.status === 410) || (err as { cause?: unknown })?.cause instanceof Gone) {
        rv = undefined; // history is gone: clear and re-list
        if (gone++ === 0) continue;
      }
      handlers.error(err);
      await options.clock.sleep(backoff.next(), signal);
    }
  }
  return stats;
}

/** Lists every page; a continue token that expired (410) restarts the list from the beginning once. */
async function listAll<T>(client: KubeHttpClient, path: string, limit: number, signal: AbortSignal): Promise<{ items: T[]; resourceVersion: string }> {
  for (let attempt = 0; ; attempt++) {
    const items: T[] = [];
    let token: string | undefined;
    let resourceVersion = '';
    try {
      do {
        const q = new URLSearchParams({ limit: String(limit) });
        if (token) q.set('continue', token);
        const page = await client.request<List<T>>('GET', `${path}?${q}`, undefined, signal);
        items.push(...(page.items ?? []));
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        token = page.metadata?.continue || undefined;
      } while (token);
      return { items, resourceVersion };
    } catch (err) {
      if (attempt === 0 && err instanceof KubeApiError && err.status === 410 && token) continue;
      throw err;
    }
  }
}
