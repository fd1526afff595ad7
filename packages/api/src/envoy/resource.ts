/** One entry point: decode a resource by its xDS type URL. */
import { TYPE_URL } from '../type-urls.js';
import { type ClusterConfig, decodeCluster } from './cluster.js';
import { type ClusterLoadAssignmentConfig, decodeClusterLoadAssignment } from './endpoint.js';
import { type ListenerConfig, decodeListener } from './listener.js';
import { fail, type Obj } from './read.js';
import { type RouteConfig, decodeRouteConfig } from './route.js';
import { type SecretConfig, decodeSecret } from './secret.js';

export interface EnvoyResourceByType {
  [TYPE_URL.listener]: ListenerConfig;
  [TYPE_URL.route]: RouteConfig;
  [TYPE_URL.cluster]: ClusterConfig;
  [TYPE_URL.endpoint]: ClusterLoadAssignmentConfig;
  [TYPE_URL.secret]: SecretConfig;
}

export type DecodableTypeUrl = keyof EnvoyResourceByType;

/** Resource name per type (Listener/Route/Cluster/Secret `name`, CLA `cluster_name`). */
export function resourceName(typeUrl: DecodableTypeUrl, value: ListenerConfig | RouteConfig | ClusterConfig | ClusterLoadAssignmentConfig | SecretConfig): string {
  return typeUrl === TYPE_URL.endpoint ? (value as ClusterLoadAssignmentConfig).clusterName : (value as { name: string }).name;
}

/** Decodes an xDS resource; throws EnvoyResourceError (TRELLIS_ERR_INVALID_RESOURCE) with the field path. */
export function decodeEnvoyResource<T extends DecodableTypeUrl>(typeUrl: T, o: Obj): EnvoyResourceByType[T] {
  switch (typeUrl) {
    case TYPE_URL.listener: return decodeListener(o) as EnvoyResourceByType[T];
    case TYPE_URL.route: return decodeRouteConfig(o) as EnvoyResourceByType[T];
    case TYPE_URL.cluster: return decodeCluster(o) as EnvoyResourceByType[T];
    case TYPE_URL.endpoint: return decodeClusterLoadAssignment(o) as EnvoyResourceByType[T];
    case TYPE_URL.secret: return decodeSecret(o) as EnvoyResourceByType[T];
    default: return fail('', `unsupported type ${String(typeUrl)}`);
  }
}
