/**
 * `envoy.extensions.filters.http.cors.v3.CorsPolicy` (per-route / per-virtual-host override) and the empty
 * `envoy.extensions.filters.http.cors.v3.Cors` filter config. Istio writes a VirtualService `corsPolicy` as a
 * CorsPolicy under `typed_per_filter_config['envoy.filters.http.cors']`; the filter entry in the HCM is empty.
 */
import { type StringMatch, decodeStringMatcher } from './common.js';
import { type FractionalPercent, decodeFractionalPercent } from './fault.js';
import { type Obj, deepFreeze, join, list, obj, str, wrappedBool } from './read.js';

export interface CorsPolicy {
  readonly kind: 'cors_policy';
  /** Origins allowed (any of them); empty = no origin is allowed. */
  readonly allowOrigins: readonly StringMatch[];
  /** Values as written (comma-separated lists), sent as they are; '' = header not sent. */
  readonly allowMethods: string;
  readonly allowHeaders: string;
  readonly exposeHeaders: string;
  readonly maxAge: string;
  readonly allowCredentials: boolean;
  /** Share of requests the policy is enforced on (default 100 %). */
  readonly filterEnabled: FractionalPercent;
  /** Share of requests it is evaluated on without enforcement (stats only), or null. */
  readonly shadowEnabled: FractionalPercent | null;
  /** A preflight whose origin is not allowed goes upstream (true, Envoy's default) or is answered 200 without CORS headers. */
  readonly forwardNotMatchingPreflights: boolean;
  readonly allowPrivateNetworkAccess: boolean;
}

const ALL: FractionalPercent = Object.freeze({ numerator: 100, denominator: 100 });

function runtimeFraction(o: Obj, key: string, path: string, dflt: FractionalPercent): FractionalPercent | null {
  const rf = obj(o, key, path);
  if (!rf) return null;
  const p = join(path, key);
  return decodeFractionalPercent(obj(rf, 'default_value', p), join(p, 'default_value'), dflt);
}

export function decodeCorsPolicy(o: Obj, path: string): CorsPolicy {
  const allowOrigins = list(o, 'allow_origin_string_match', path, (m, p) => decodeStringMatcher(m, p));
  return deepFreeze({
    kind: 'cors_policy' as const,
    allowOrigins,
    allowMethods: str(o, 'allow_methods', path) ?? '',
    allowHeaders: str(o, 'allow_headers', path) ?? '',
    exposeHeaders: str(o, 'expose_headers', path) ?? '',
    maxAge: str(o, 'max_age', path) ?? '',
    allowCredentials: wrappedBool(o, 'allow_credentials', path) ?? false,
    filterEnabled: runtimeFraction(o, 'filter_enabled', path, ALL) ?? ALL,
    shadowEnabled: runtimeFraction(o, 'shadow_enabled', path, { numerator: 0, denominator: 100 }),
    forwardNotMatchingPreflights: wrappedBool(o, 'forward_not_matching_preflights', path) ?? true,
    allowPrivateNetworkAccess: wrappedBool(o, 'allow_private_network_access', path) ?? false,
  });
}

/** The filter-level Cors config: nothing to configure (policies come per route). */
export interface CorsFilter {
  readonly kind: 'cors';
}

export function decodeCorsFilter(_o: Obj, _path: string): CorsFilter {
  return Object.freeze({ kind: 'cors' as const });
}
