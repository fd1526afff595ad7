/**
 * Network RBAC (`envoy.filters.network.rbac`, which Istio puts before tcp_proxy on TCP chains): decided once per
 * connection when the listener dispatches it (after TLS termination, so the peer principal is known). A denied
 * connection is closed before any upstream is contacted. Envoy decides on the first byte (ONE_TIME_ON_FIRST_BYTE);
 * deciding at dispatch is the same decision (it depends on no data), only earlier — server-first protocols never
 * see an upstream connection.
 */
import type { FilterChain, RbacFilterConfig } from '@trellis/api';
import { type AuthzFacts, evaluateFilters } from './engine.js';
import { publishDecision } from './publish.js';

export const NETWORK_RBAC_FILTER = 'envoy.filters.network.rbac';

function isRbacConfig(c: unknown): c is RbacFilterConfig {
  return typeof c === 'object' && c !== null && (c as { kind?: unknown }).kind === 'network' && 'rules' in c;
}

/** The decoded network RBAC filters of a chain, in order. */
export function networkRbacFilters(chain: FilterChain): RbacFilterConfig[] {
  const out: RbacFilterConfig[] = [];
  for (const f of chain.filters) if (f.kind === 'other' && isRbacConfig(f.config)) out.push(f.config);
  return out;
}

export interface ConnectionFacts {
  readonly instance: string;
  readonly direction: 'inbound' | 'outbound';
  readonly sourceIp: string;
  readonly destIp: string;
  readonly destPort: number;
  readonly peer: string | null;
  readonly serverName: string | null;
}

/** True when the chain's network RBAC filters refuse the connection (the caller closes it). Publishes AuthzEvents. */
export function connectionDenied(chain: FilterChain, c: ConnectionFacts): boolean {
  const configs = networkRbacFilters(chain);
  if (configs.length === 0) return false;
  const facts: AuthzFacts = {
    principal: c.peer, directRemoteIp: c.sourceIp, remoteIp: c.sourceIp, destinationIp: c.destIp, destinationPort: c.destPort,
    serverName: c.serverName, path: null,
  };
  const d = evaluateFilters(configs, facts);
  publishDecision(d, { instance: c.instance, direction: c.direction, protocol: 'tcp', sourcePrincipal: c.peer, sourceIp: c.sourceIp, destinationPort: c.destPort });
  return !d.allowed;
}
