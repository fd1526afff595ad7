/**
 * Mesh DNS on the host: the DNS proxy, fed by the agent's own name-table (NDS) subscription to the control plane.
 *
 * The subscription authenticates with the workload certificate over mTLS, so it is (re)started with each new
 * identity: a rotation aborts the old stream and opens one with the new key. Until the first table arrives the
 * proxy forwards every query upstream, so DNS on the host never breaks because the mesh is not ready.
 */
import { hostname } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { toStruct } from '@trellis/api';
import type { Bundle } from './bundle.js';
import { DnsProxy, NameTableSubscription } from './dns/index.js';
import type { Identity } from './identity.js';
import type { Logger } from './observer.js';

export interface MeshDnsOptions {
  readonly bundle: Bundle;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
}

export class MeshDns {
  readonly #o: MeshDnsOptions;
  readonly #proxy: DnsProxy;
  #subscription: AbortController | undefined;

  constructor(options: MeshDnsOptions) {
    this.#o = options;
    this.#proxy = new DnsProxy({ hosts: [options.host], port: options.port, namespace: options.bundle.mesh.namespace, logger: options.logger });
  }

  /** Binds the DNS proxy (UDP and TCP). It forwards everything until `useIdentity` has brought a name table. */
  async start(signal: AbortSignal): Promise<void> {
    await this.#proxy.start(signal);
    signal.addEventListener('abort', () => this.#subscription?.abort(), { once: true });
  }

  /** (Re)subscribes to the name table with this identity's certificate. */
  useIdentity(identity: Identity, signal: AbortSignal): void {
    this.#subscription?.abort();
    if (signal.aborted) return;
    const controller = new AbortController();
    this.#subscription = controller;
    const { mesh, rootCertsPem } = this.#o.bundle;
    const credentials = grpc.credentials.createSsl(Buffer.from(rootCertsPem), Buffer.from(identity.keyPem), Buffer.from(identity.chainPem.join('')));
    const node = {
      id: `sidecar~0.0.0.0~${hostname()}.${mesh.namespace}~${mesh.namespace}.svc.cluster.local`,
      cluster: mesh.clusterId,
      metadata: toStruct({ NAMESPACE: mesh.namespace, SERVICE_ACCOUNT: mesh.serviceAccount, CLUSTER_ID: mesh.clusterId, NETWORK: mesh.network, WORKLOAD_NAME: hostname(), DNS_AGENT: 'true' }),
    };
    const subscription = new NameTableSubscription({
      address: mesh.xdsAddress,
      credentials,
      node,
      onTable: (table) => this.#proxy.setNameTable(table),
      logger: this.#o.logger,
    });
    void subscription.start(controller.signal);
  }

  async close(): Promise<void> {
    this.#subscription?.abort();
    await this.#proxy.close();
  }
}
