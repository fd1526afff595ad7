/**
 * Decoders of the typed configs of HTTP and network filters (`http_filters[].typed_config`, `filters[].typed_config`)
 * and of per-route overrides (`typed_per_filter_config`), keyed by type URL. A filter whose type has no decoder here
 * keeps `config: null` (the proxy ignores filters it does not implement, as before). Each decoder lives in the module
 * of its filter and returns a deep-frozen value; errors use `fail(path, reason)` like every other decoder.
 */
import type { Obj } from './read.js';
import { decodeHttpRbac, decodeNetworkRbac } from './rbac.js';
import { decodeJwtAuthn } from './jwt-authn.js';
import { decodeCorsFilter, decodeCorsPolicy } from './cors.js';
import { decodeHttpFault } from './fault.js';

export type FilterConfigDecoder = (typedConfig: Obj, path: string) => unknown;

/** HTTP filter configs (HCM `http_filters`), by type URL. */
export const HTTP_FILTER_DECODERS: Readonly<Record<string, FilterConfigDecoder>> = Object.freeze({
  'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC': decodeHttpRbac,
  'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication': decodeJwtAuthn,
  'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault': decodeHttpFault,
  'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors': decodeCorsFilter,
});

/** Network filter configs (filter chain `filters`, other than HCM and tcp_proxy), by type URL. */
export const NETWORK_FILTER_DECODERS: Readonly<Record<string, FilterConfigDecoder>> = Object.freeze({
  'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC': decodeNetworkRbac,
});

/** Per-route filter configs (`typed_per_filter_config` of routes and virtual hosts), by type URL. */
export const PER_ROUTE_DECODERS: Readonly<Record<string, FilterConfigDecoder>> = Object.freeze({
  'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault': decodeHttpFault,
  'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy': decodeCorsPolicy,
});

/** Decodes one typed config with the table's decoder for its `@type`, or null when the type has none. */
export function decodeFilterConfig(table: Readonly<Record<string, FilterConfigDecoder>>, tc: Obj | undefined, path: string): unknown {
  const type = tc?.['@type'];
  if (typeof type !== 'string') return null;
  const d = table[type];
  return d ? d(tc!, path) : null;
}
