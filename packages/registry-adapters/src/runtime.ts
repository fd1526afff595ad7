/**
 * Pieces every polling/watching adapter (Consul, Eureka, Kubernetes) shares: an injectable clock, jittered
 * exponential backoff, a token bucket, and deep freezing. Kept free of I/O so tests can drive them.
 */

/** Time as the adapters see it; tests inject a fake to make backoff and rate limits deterministic. */
export interface Clock {
  now(): number;
  /** Resolves after `ms` or as soon as `signal` aborts (never rejects). */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal.addEventListener('abort', done, { once: true });
    });
  },
});

export interface BackoffOptions {
  /** First delay after a failure. Default 500 ms. */
  readonly initialMs?: number;
  /** Upper bound of the delay. Default 30 s. */
  readonly maxMs?: number;
  /** Growth per consecutive failure. Default 2. */
  readonly factor?: number;
  /** Fraction of the delay that is randomised ("equal jitter"): 0.5 gives [d/2, d]. Default 0.5. */
  readonly jitter?: number;
}

/** Jittered exponential backoff. `next()` after each failure, `reset()` after a success. */
export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;

  constructor(options: BackoffOptions = {}, private readonly random: () => number = Math.random) {
    this.initialMs = options.initialMs ?? 500;
    this.maxMs = options.maxMs ?? 30_000;
    this.factor = options.factor ?? 2;
    this.jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
  }

  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt++;
    return Math.round(base * (1 - this.jitter) + base * this.jitter * this.random());
  }

  reset(): void {
    this.attempt = 0;
  }
}

/**
 * Token bucket: `take()` waits until a token is available. Used to rate-limit blocking-query loops, which
 * can spin when the server returns early (an index that moved on unrelated churn).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly clock: Clock,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  async take(signal: AbortSignal): Promise<void> {
    for (;;) {
      const now = this.clock.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      if (signal.aborted) return;
      await this.clock.sleep(Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSecond), signal);
      if (signal.aborted) return;
    }
  }
}

/** Freezes a value and everything reachable from it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

/** The message of an unknown thrown value, with its cause when that adds something. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const c = cause instanceof Error ? cause.message : undefined;
    return c && !err.message.includes(c) ? `${err.message}: ${c}` : err.message;
  }
  return String(err);
}

/**
 * A signal that aborts with `parent` or after `timeoutMs`; call `dispose()` when done. Cheaper than
 * `AbortSignal.any` + `AbortSignal.timeout`, which slow down with thousands of dependents of one parent.
 */
export function childSignal(parent: AbortSignal, timeoutMs?: number): { readonly signal: AbortSignal; abort(): void; dispose(): void } {
  const ctl = new AbortController();
  const abort = (): void => ctl.abort(parent.reason);
  if (parent.aborted) ctl.abort(parent.reason);
  else parent.addEventListener('abort', abort, { once: true });
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => ctl.abort(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
  return {
    signal: ctl.signal,
    abort(): void {
      ctl.abort();
    },
    dispose(): void {
      parent.removeEventListener('abort', abort);
      if (timer) clearTimeout(timer);
    },
  };
}

/** The subset of `fetch` the adapters use; inject one to stub the network. */
export type FetchFunction = (url: string, init: { headers: Record<string, string>; signal: AbortSignal; method?: string; body?: string }) => Promise<{
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}>;
