/**
 * Outlier detection, Envoy's consecutive-error kinds (`outlier_detection`): consecutive 5xx, consecutive gateway
 * failures (502/503/504) and, with `split_external_local_origin_errors`, consecutive local-origin failures (connect
 * failure, timeout, reset; without the split they count as a 503, or a 504 for a timeout).
 *
 * An ejection lasts `base_ejection_time × n` (n = the host's ejection count, capped at `max_ejection_time`) and ends
 * at the first analysis tick (every `interval`, counted from the detector's start) after that time; each tick a host
 * spends un-ejected lowers n by one, so a host that keeps failing stays out longer and one that recovers is forgiven.
 * No ejection happens while `max_ejection_percent` of the cluster's hosts are already out. Evaluation is lazy (at
 * each result and each pick): no timers. Success-rate and failure-percentage detection are not implemented.
 */
import type { OutlierDetection } from '@trellis/api';
import type { Host } from '../lb/hosts.js';

/** What an upstream attempt came to, as outlier detection sees it. */
export type AttemptResult =
  | { readonly kind: 'response'; readonly status: number }
  | { readonly kind: 'connect_failure' | 'timeout' | 'reset' }
  /** A TCP connection opened (tcp_proxy: resets the local-origin count). */
  | { readonly kind: 'connect_success' };

/** Per-host detector state (kept across EDS updates with the host). */
export interface OutlierHostState {
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveLocalOrigin: number;
  /** Ejections so far, lowered by one per analysis tick spent un-ejected. */
  ejections: number;
  /** When the last ejection ended (ms), to forgive one ejection per tick since. */
  unejectedAt: number;
}

export interface OutlierStats {
  ejectionsTotal: number;
  ejectionsConsecutive5xx: number;
  ejectionsConsecutiveGateway: number;
  ejectionsConsecutiveLocalOrigin: number;
  /** Ejections not made because `max_ejection_percent` hosts were out already. */
  ejectionsOverflow: number;
}

export class OutlierDetector {
  readonly stats: OutlierStats = { ejectionsTotal: 0, ejectionsConsecutive5xx: 0, ejectionsConsecutiveGateway: 0, ejectionsConsecutiveLocalOrigin: 0, ejectionsOverflow: 0 };

  /** `epoch`: the clock time analysis ticks are counted from. `random` decides the enforcing percentages. */
  constructor(readonly config: OutlierDetection, private readonly epoch: number, private readonly random: () => number = Math.random) {}

  /** Accounts one attempt's result to its host; `hosts` are the cluster's, for the ejection cap. */
  record(host: Host, result: AttemptResult, hosts: readonly Host[], now: number): void {
    const c = this.config;
    const s = (host.outlier ??= { consecutive5xx: 0, consecutiveGateway: 0, consecutiveLocalOrigin: 0, ejections: 0, unejectedAt: 0 });
    let status: number;
    if (result.kind === 'response') status = result.status;
    else if (result.kind === 'connect_success') { s.consecutiveLocalOrigin = 0; return; }
    else if (c.splitExternalLocalOriginErrors) {
      s.consecutiveLocalOrigin += 1;
      if (s.consecutiveLocalOrigin >= c.consecutiveLocalOriginFailure) {
        s.consecutiveLocalOrigin = 0;
        this.eject(host, s, c.enforcingConsecutiveLocalOriginFailure, 'ejectionsConsecutiveLocalOrigin', hosts, now);
      }
      return;
    } else status = result.kind === 'timeout' ? 504 : 503;
    if (status < 500) {
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
      if (c.splitExternalLocalOriginErrors) s.consecutiveLocalOrigin = 0;
      return;
    }
    s.consecutive5xx += 1;
    const gateway = status === 502 || status === 503 || status === 504;
    if (gateway) s.consecutiveGateway += 1; else s.consecutiveGateway = 0;
    if (gateway && s.consecutiveGateway >= c.consecutiveGatewayFailure) {
      s.consecutiveGateway = 0;
      if (this.eject(host, s, c.enforcingConsecutiveGatewayFailure, 'ejectionsConsecutiveGateway', hosts, now)) { s.consecutive5xx = 0; return; }
    }
    if (s.consecutive5xx >= c.consecutive5xx) {
      s.consecutive5xx = 0;
      this.eject(host, s, c.enforcingConsecutive5xx, 'ejectionsConsecutive5xx', hosts, now);
    }
  }

  /** Number of the cluster's hosts ejected at `now`. */
  ejected(hosts: readonly Host[], now: number): number {
    let n = 0;
    for (const h of hosts) if (h.ejectedUntil > now) n += 1;
    return n;
  }

  private eject(host: Host, s: OutlierHostState, enforcing: number, counter: keyof OutlierStats, hosts: readonly Host[], now: number): boolean {
    if (host.ejectedUntil > now) return false;
    if (enforcing < 100 && this.random() * 100 >= enforcing) return false;
    if (hosts.length > 0 && (this.ejected(hosts, now) * 100) / hosts.length >= this.config.maxEjectionPercent) {
      this.stats.ejectionsOverflow += 1;
      return false;
    }
    const { intervalMs, baseEjectionTimeMs, maxEjectionTimeMs } = this.config;
    if (s.ejections > 0 && s.unejectedAt > 0) s.ejections = Math.max(0, s.ejections - Math.floor((now - s.unejectedAt) / intervalMs));
    s.ejections += 1;
    const until = now + Math.min(baseEjectionTimeMs * s.ejections, Math.max(maxEjectionTimeMs, baseEjectionTimeMs));
    // Un-ejected at the first analysis tick at or after `until`.
    const ticks = Math.ceil((until - this.epoch) / intervalMs);
    host.ejectedUntil = this.epoch + ticks * intervalMs;
    s.unejectedAt = host.ejectedUntil;
    this.stats.ejectionsTotal += 1;
    this.stats[counter] += 1;
    return true;
  }
}
