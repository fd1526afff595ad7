/**
 * The retry budget of a cluster: how many retries may be outstanding at once, so that retries cannot multiply the
 * load on an upstream that is already failing.
 *
 * limit = min(circuit breaker `max_retries`, max(3, ⌊20 % × active requests of the cluster⌋))
 *
 * - `max_retries` is Envoy's circuit-breaker threshold (DestinationRule `connectionPool.http.maxRetries`; Envoy's
 *   default 3, Istio sends 2³²−1 when the DestinationRule does not set it).
 * - the second term is Envoy's `retry_budget` with its defaults (budget_percent 20 %, min_retry_concurrency 3),
 *   applied always (Envoy applies it only when a cluster configures a budget, and then instead of max_retries).
 * - a retry holds its slot from the decision to retry until the retried attempt ends (its back-off included), so
 *   the limit bounds the extra requests actually in flight to the upstream. (Envoy releases the slot when the
 *   back-off timer fires.)
 *
 * A retry that finds the budget spent is not made: the failing response (or local error reply) goes to the
 * caller with flag UO, and `retryOverflow` (upstream_rq_retry_overflow) counts it.
 */
export const RETRY_BUDGET_PERCENT = 20;
export const MIN_RETRY_CONCURRENCY = 3;

export function retryLimit(activeRequests: number, maxRetries: number): number {
  return Math.min(maxRetries, Math.max(MIN_RETRY_CONCURRENCY, Math.floor((activeRequests * RETRY_BUDGET_PERCENT) / 100)));
}

/** The counters the budget reads and writes (a cluster's stats). */
export interface RetryBudgetState {
  rqActive: number;
  retriesActive: number;
}

/** Takes a retry slot if the budget allows; the caller must `releaseRetry` once the retried attempt has ended. */
export function tryAcquireRetry(s: RetryBudgetState, maxRetries: number): boolean {
  if (s.retriesActive >= retryLimit(s.rqActive, maxRetries)) return false;
  s.retriesActive += 1;
  return true;
}

export function releaseRetry(s: RetryBudgetState): void {
  s.retriesActive -= 1;
}
