/** Auto-registration metrics, registered on the control plane's Prometheus registry. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RefusalReason } from './registry.js';

export interface AutoRegistrationMetrics {
  readonly refused: (reason: RefusalReason) => void;
}

export function autoRegistrationMetrics(registry: Registry, entries: () => number): AutoRegistrationMetrics {
  const refused = new Counter({
    name: 'trellis_autoregistration_refused_total',
    help: 'ADS streams that asked for WorkloadEntry auto-registration and were refused, by reason',
    labelNames: ['reason'], registers: [registry],
  });
  new Gauge({
    name: 'trellis_autoregistered_workloads',
    help: 'WorkloadEntries held by auto-registration (including those in their grace period)',
    registers: [registry],
    collect() { this.set(entries()); },
  });
  return { refused: (reason) => refused.inc({ reason }) };
}
