/**
 * The authorization channel: one event per RBAC filter evaluation (enforced rules and shadow rules separately), so
 * metrics can count what Envoy's `<stat_prefix>rbac.{allowed,denied,shadow_allowed,shadow_denied,logged,not_logged}`
 * counters count. Published only when someone subscribes (hot paths don't log).
 */
import diagnostics_channel from 'node:diagnostics_channel';
import type { RbacAction } from '@trellis/api';

export interface AuthzEvent {
  /** The publishing proxy instance. */
  readonly instance: string;
  readonly reporter: 'source' | 'destination';
  /** 'http' for `envoy.filters.http.rbac` (per request), 'tcp' for `envoy.filters.network.rbac` (per connection). */
  readonly protocol: 'http' | 'tcp';
  /** The filter's stat prefix (HTTP `rules_stat_prefix` / network `stat_prefix`; for shadow rules `shadow_rules_stat_prefix`). */
  readonly statPrefix: string;
  /** True for shadow rules (dry run): they never deny. */
  readonly shadow: boolean;
  readonly action: RbacAction;
  /** ALLOW/DENY rules: 'allowed' | 'denied'; LOG rules: 'logged' (a policy matched) | 'not_logged'. */
  readonly result: 'allowed' | 'denied' | 'logged' | 'not_logged';
  /** The policy that matched (`ns[<ns>]-policy[<name>]-rule[<i>]` for Istio's), or null. */
  readonly policy: string | null;
  /** Whether this evaluation stopped the request / closed the connection. */
  readonly enforcedDenial: boolean;
  readonly sourcePrincipal: string | null;
  readonly sourceIp: string;
  readonly destinationPort: number;
}

export const authzChannel = diagnostics_channel.channel('trellis:proxy:authz');
