/**
 * What the upstream stage publishes for retries and timeouts, on the channels of telemetry/events.ts:
 * - `retryChannel` (`trellis:proxy:retry`): one `RetryEvent` per retry actually scheduled, with the detail below;
 * - `timeoutChannel` (`trellis:proxy:timeout`): one `TimeoutEvent` per per-try timeout (`per_try`, the attempt may
 *   still be retried) and per route timeout (`route`, the request ended with 504 UT).
 * Overflowed retries (budget spent) publish nothing: the cluster counter `retryOverflow` counts them.
 */
import { type RetryEvent, type TimeoutEvent, retryChannel, timeoutChannel } from '../../telemetry/events.js';
import type { HttpContext } from '../context.js';

export interface RetryDetail extends RetryEvent {
  readonly reporter: 'source' | 'destination';
  /** The attempt that failed and is being retried, 1-based. */
  readonly attempt: number;
  /** That attempt's response status, 0 when there was none (reset, timeout, connect failure). */
  readonly responseCode: number;
  /** `address:port` of that attempt's host. */
  readonly upstreamHost: string | null;
}

export function publishRetry(ctx: HttpContext, attempt: number, reason: string, responseCode: number): void {
  if (!retryChannel.hasSubscribers) return;
  const e: RetryDetail = {
    instance: ctx.conn.instance, cluster: ctx.clusterName, reason,
    reporter: ctx.conn.direction === 'outbound' ? 'source' : 'destination', attempt, responseCode, upstreamHost: ctx.host?.key ?? null,
  };
  retryChannel.publish(e);
}

export function publishTimeout(ctx: HttpContext, kind: TimeoutEvent['kind']): void {
  if (!timeoutChannel.hasSubscribers) return;
  const e: TimeoutEvent = { instance: ctx.conn.instance, cluster: ctx.clusterName, kind };
  timeoutChannel.publish(e);
}
