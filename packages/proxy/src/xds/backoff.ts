/** Exponential backoff with full jitter, reset after a stream has been healthy. */
export class Backoff {
  private attempt = 0;
  constructor(private readonly baseMs = 200, private readonly maxMs = 15_000, private readonly random = Math.random) {}

  next(): number {
    const cap = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(cap / 2 + (this.random() * cap) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}
