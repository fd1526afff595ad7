/** The CA's Prometheus metrics. Registering twice on one registry reuses the existing metrics. */
import { Counter, Histogram, Registry, type Metric } from 'prom-client';

export interface CaMetrics {
  readonly issued: Counter<'via'>;
  readonly refused: Counter<'reason'>;
  readonly signing: Histogram<string>;
}

function reuse<T extends Metric>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function caMetrics(registry: Registry = new Registry()): CaMetrics {
  const registers = [registry];
  return Object.freeze({
    issued: reuse(registry, 'trellis_ca_certificates_issued_total', () => new Counter({
      name: 'trellis_ca_certificates_issued_total',
      help: 'Workload certificates issued by the mesh CA, by authentication method.',
      labelNames: ['via'] as const,
      registers,
    })),
    refused: reuse(registry, 'trellis_ca_requests_refused_total', () => new Counter({
      name: 'trellis_ca_requests_refused_total',
      help: 'Certificate requests refused by the mesh CA, by reason.',
      labelNames: ['reason'] as const,
      registers,
    })),
    signing: reuse(registry, 'trellis_ca_signing_duration_seconds', () => new Histogram({
      name: 'trellis_ca_signing_duration_seconds',
      help: 'Time to check a CSR and sign its certificate.',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25],
      registers,
    })),
  });
}
