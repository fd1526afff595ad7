/**
 * The agent's Prometheus metrics, on a registry of its own (no global state), fed through an AgentObserver.
 *
 *   trellis_agent_cert_expiry_timestamp_seconds   gauge    notAfter of the served certificate (Unix seconds)
 *   trellis_agent_cert_expiry_seconds             gauge    seconds until it expires (computed at scrape)
 *   trellis_agent_cert_rotations_total            counter  certificates obtained, by reason (token|persisted|renewal)
 *   trellis_agent_ca_errors_total                 counter  failed CSRs, by gRPC status
 *   trellis_agent_sds_clients_connected           gauge    open StreamSecrets streams
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import * as grpc from '@grpc/grpc-js';
import type { AgentObserver } from './observer.js';

export interface AgentMetrics {
  readonly registry: Registry;
  readonly observer: AgentObserver;
}

export function createAgentMetrics(now: () => number = Date.now, options: { defaultMetrics?: boolean } = {}): AgentMetrics {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  let notAfter = 0;
  new Gauge({
    name: 'trellis_agent_cert_expiry_timestamp_seconds',
    help: 'Expiry (notAfter) of the workload certificate being served, Unix seconds.',
    registers: [registry],
    collect() {
      if (notAfter > 0) this.set(notAfter / 1000);
    },
  });
  new Gauge({
    name: 'trellis_agent_cert_expiry_seconds',
    help: 'Seconds until the workload certificate being served expires (negative once expired).',
    registers: [registry],
    collect() {
      if (notAfter > 0) this.set((notAfter - now()) / 1000);
    },
  });
  const rotations = new Counter({
    name: 'trellis_agent_cert_rotations_total',
    help: 'Workload certificates put into service, by how they were obtained.',
    labelNames: ['reason'],
    registers: [registry],
  });
  const caErrors = new Counter({
    name: 'trellis_agent_ca_errors_total',
    help: 'Certificate signing requests that failed, by gRPC status.',
    labelNames: ['code'],
    registers: [registry],
  });
  const sdsClients = new Gauge({
    name: 'trellis_agent_sds_clients_connected',
    help: 'Open SDS StreamSecrets streams.',
    registers: [registry],
  });
  sdsClients.set(0);
  const observer: AgentObserver = {
    identity(identity, reason) {
      notAfter = identity.notAfter;
      rotations.inc({ reason });
    },
    caError(error) {
      const code = (error as { grpcCode?: number }).grpcCode;
      caErrors.inc({ code: code === undefined ? 'UNKNOWN' : (grpc.status[code] ?? String(code)) });
    },
    sdsClients(count) {
      sdsClients.set(count);
    },
  };
  return Object.freeze({ registry, observer });
}
