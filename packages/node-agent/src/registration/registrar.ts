/**
 * Auto-registration on the agent side: when the bundle names a WorkloadGroup, the agent keeps a registration stream
 * to the control plane (see client.ts) and, when the bundle carries the group's probe (probe.json), runs it and
 * reports each transition. The stream authenticates with the workload certificate, so it is re-opened with each new
 * identity; the new stream opens before the old one is cancelled, so the control plane never sees a gap.
 */
import { hostname, networkInterfaces } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { toStruct, TrellisError } from '@trellis/api';
import type { Bundle } from '../bundle.js';
import type { Identity } from '../identity.js';
import type { Logger } from '../observer.js';
import { RegistrationStream } from './client.js';
import { ProbeRunner, readProbeFile, type ProbeResult, type ProbeSpec } from './probe.js';

export interface RegistrarOptions {
  readonly bundle: Bundle;
  /** The address registered; empty means the first non-loopback IPv4 address of the host. */
  readonly workloadIp: string;
  /** `region/zone/subzone` (any part may be empty). */
  readonly locality: string;
  /** Extra labels, `k=v,k=v`. */
  readonly labels: string;
  readonly logger: Logger;
}

/** The first non-internal IPv4 address of the host (the default `--workload-ip`). */
export function defaultWorkloadIp(interfaces = networkInterfaces()): string | undefined {
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

/** `k=v,k=v` → labels; TRELLIS_ERR_CONFIG naming the setting otherwise. */
export function parseLabels(text: string, setting: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new TrellisError('TRELLIS_ERR_CONFIG', `${setting}: "${part}" is not key=value`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** The Envoy node of the registration stream (Istio's metadata keys). */
export function registrationNode(bundle: Bundle, ip: string, locality: string, labels: Readonly<Record<string, string>>, host = hostname()): Record<string, unknown> {
  const { mesh } = bundle;
  const [region = '', zone = '', subZone = ''] = locality.split('/');
  return {
    id: `sidecar~${ip}~${host}.${mesh.namespace}~${mesh.namespace}.svc.cluster.local`,
    cluster: mesh.clusterId,
    ...(locality ? { locality: { region, zone, sub_zone: subZone } } : {}),
    metadata: toStruct({
      NAMESPACE: mesh.namespace, SERVICE_ACCOUNT: mesh.serviceAccount, CLUSTER_ID: mesh.clusterId, NETWORK: mesh.network,
      WORKLOAD_NAME: host, WORKLOAD_GROUP: mesh.workloadGroup, INSTANCE_IPS: ip, LABELS: labels,
    }),
  };
}

export class WorkloadRegistrar {
  readonly #o: RegistrarOptions;
  readonly #probe: ProbeSpec | undefined;
  readonly #node: Record<string, unknown>;
  #current: { stream: RegistrationStream; controller: AbortController } | undefined;
  #health: ProbeResult | undefined;

  /**
   * Undefined when there is nothing to register: the bundle names no WorkloadGroup, or no address was given and the
   * host has no non-loopback IPv4 address (logged; the agent's other duties go on). Throws TRELLIS_ERR_CONFIG on
   * bad settings or a bad probe.json.
   */
  static create(options: RegistrarOptions): WorkloadRegistrar | undefined {
    if (!options.bundle.mesh.workloadGroup) return undefined;
    const ip = options.workloadIp || defaultWorkloadIp();
    if (!ip) {
      options.logger.warn('auto-registration off: the host has no non-loopback IPv4 address; set --workload-ip', { workloadGroup: options.bundle.mesh.workloadGroup });
      return undefined;
    }
    return new WorkloadRegistrar(options, ip);
  }

  private constructor(options: RegistrarOptions, ip: string) {
    this.#o = options;
    if (options.locality.split('/').length > 3) throw new TrellisError('TRELLIS_ERR_CONFIG', `--locality: "${options.locality}" is not region/zone/subzone`);
    this.#probe = readProbeFile(options.bundle.dir);
    this.#node = registrationNode(options.bundle, ip, options.locality, parseLabels(options.labels, '--workload-labels'));
    options.logger.info('auto-registration', { workloadGroup: options.bundle.mesh.workloadGroup, address: ip, probe: this.#probe ? Object.keys(this.#probe).find((k) => ['httpGet', 'tcpSocket', 'exec', 'grpc'].includes(k)) : 'none' });
  }

  /** Starts the probe (if any); streams start with `useIdentity`. */
  start(signal: AbortSignal): void {
    if (!this.#probe) return;
    const runner = new ProbeRunner({
      spec: this.#probe,
      onChange: (r) => {
        this.#health = r;
        this.#o.logger.info('readiness probe', { healthy: r.healthy, ...(r.message ? { reason: r.message } : {}) });
        this.#current?.stream.report(r);
      },
    });
    void runner.start(signal);
  }

  /** (Re)opens the registration stream with this identity's certificate. */
  useIdentity(identity: Identity, signal: AbortSignal): void {
    if (signal.aborted) return;
    const previous = this.#current;
    const { mesh, rootCertsPem } = this.#o.bundle;
    const credentials = grpc.credentials.createSsl(Buffer.from(rootCertsPem), Buffer.from(identity.keyPem), Buffer.from(identity.chainPem.join('')));
    const stream = new RegistrationStream({ address: mesh.xdsAddress, credentials, node: this.#node, logger: this.#o.logger }, this.#health);
    const controller = new AbortController();
    this.#current = { stream, controller };
    signal.addEventListener('abort', () => controller.abort(), { once: true });
    void stream.start(controller.signal);
    // Let the new stream announce itself before the old one goes, so the entry never loses its last stream.
    if (previous) setTimeout(() => previous.controller.abort(), 2000).unref();
  }

  close(): void {
    this.#current?.controller.abort();
  }
}
