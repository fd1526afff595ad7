/**
 * The policy filters a workload's listeners carry (see docs/security-policy.md): on HTTP connection managers
 * `jwt_authn` (RequestAuthentication) then the RBAC filters (AuthorizationPolicy: AUDIT, CUSTOM, DENY, ALLOW), placed
 * before the other HTTP filters; on TCP chains the network RBAC filters before tcp_proxy.
 */
import type { ProxyNode, Snapshot } from '../../snapshot/types.js';
import { jwtAuthnFilter } from '../jwt-authn.js';
import { httpRbacFilters, networkRbacFilters } from '../rbac.js';

type Obj = Record<string, unknown>;

export interface SecurityFilters {
  /** HTTP filters to put first in the HCM's `http_filters`. */
  readonly http: readonly Obj[];
  /** Network filters to put before the terminal filter of TCP chains. */
  readonly network: readonly Obj[];
}

export function securityFilters(snapshot: Snapshot, proxy: ProxyNode): SecurityFilters {
  const jwt = jwtAuthnFilter(snapshot, proxy);
  return {
    http: [...(jwt !== undefined ? [jwt] : []), ...httpRbacFilters(snapshot, proxy)],
    network: networkRbacFilters(snapshot, proxy),
  };
}
