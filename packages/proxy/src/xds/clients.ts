/** The two config streams of a proxy: ADS to the control plane (LDS, CDS wildcard; RDS, EDS by name) and SDS to the agent. */
import * as grpc from '@grpc/grpc-js';
import { TYPE_URL } from '@trellis/api';
import type { ConfigStore } from '../config/store.js';
import type { Logger } from '../log.js';
import type { NodeIdentity } from './node.js';
import { SotwClient } from './sotw-client.js';

export function createAdsClient(o: { target: string; credentials: grpc.ChannelCredentials; node: NodeIdentity; store: ConfigStore; logger: Logger }): SotwClient {
  const client = new SotwClient({
    ...o,
    service: 'envoy.service.discovery.v3.AggregatedDiscoveryService',
    method: 'StreamAggregatedResources',
    subscriptions: [
      { typeUrl: TYPE_URL.cluster, names: () => null },
      { typeUrl: TYPE_URL.listener, names: () => null },
      { typeUrl: TYPE_URL.route, names: () => o.store.routeNamesNeeded() },
      { typeUrl: TYPE_URL.endpoint, names: () => o.store.endpointNamesNeeded() },
    ],
  });
  return client;
}

/** SDS over a Unix socket: always asks for `default` and `ROOTCA`, plus any other name the config references. */
export function createSdsClient(o: { socketPath: string; node: NodeIdentity; store: ConfigStore; logger: Logger }): SotwClient {
  return new SotwClient({
    target: `unix://${o.socketPath}`,
    credentials: grpc.credentials.createInsecure(),
    node: o.node,
    store: o.store,
    logger: o.logger,
    merge: true,
    service: 'envoy.service.secret.v3.SecretDiscoveryService',
    method: 'StreamSecrets',
    subscriptions: [{ typeUrl: TYPE_URL.secret, names: () => [...new Set(['default', 'ROOTCA', ...o.store.secretNamesNeeded()])].sort() }],
  });
}
