/**
 * Envoy's jittered exponential back-off between retries (JitteredExponentialBackOffStrategy, "full jitter"): retry
 * number `n` (1-based) waits a uniformly random time in [0, base × (2ⁿ − 1)), never more than `max`. With Envoy's
 * defaults (base 25 ms, max 250 ms) the first retry waits < 25 ms, the second < 75 ms, the third < 175 ms.
 */
export function backoffMs(retry: number, baseMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, baseMs * (2 ** Math.max(1, retry) - 1));
  return Math.min(maxMs, Math.floor(random() * ceiling));
}
