/**
 * Debounce: a burst of changes becomes one snapshot. The build runs `after` ms after the last change, but never more
 * than `max` ms after the first change of the burst. Timers are injected so tests drive time by hand.
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export const realTimers: Timers = Object.freeze({
  setTimeout: (fn: () => void, ms: number): unknown => setTimeout(fn, ms),
  clearTimeout: (h: unknown): void => clearTimeout(h as NodeJS.Timeout),
  now: (): number => performance.now(),
});

export interface DebounceOptions {
  readonly afterMs: number;
  readonly maxMs: number;
  readonly timers?: Timers;
}

export class Debouncer {
  readonly #fire: () => void;
  readonly #after: number;
  readonly #max: number;
  readonly #timers: Timers;
  #first: number | undefined;
  #handle: unknown;
  #closed = false;

  constructor(options: DebounceOptions, fire: () => void) {
    this.#after = options.afterMs;
    this.#max = Math.max(options.maxMs, options.afterMs);
    this.#timers = options.timers ?? realTimers;
    this.#fire = fire;
  }

  /** Records a change; schedules (or re-schedules) the build. */
  trigger(): void {
    if (this.#closed) return;
    const now = this.#timers.now();
    this.#first ??= now;
    if (this.#handle !== undefined) this.#timers.clearTimeout(this.#handle);
    const delay = Math.max(0, Math.min(this.#after, this.#first + this.#max - now));
    this.#handle = this.#timers.setTimeout(() => this.#run(), delay);
  }

  /** Whether a build is scheduled. */
  get pending(): boolean {
    return this.#handle !== undefined;
  }

  #run(): void {
    this.#handle = undefined;
    this.#first = undefined;
    this.#fire();
  }

  close(): void {
    this.#closed = true;
    if (this.#handle !== undefined) this.#timers.clearTimeout(this.#handle);
    this.#handle = undefined;
  }
}
