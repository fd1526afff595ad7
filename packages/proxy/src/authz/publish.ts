/** Turns a chain decision into AuthzEvents on the authz channel (only when subscribed). */
import type { ChainDecision, RulesResult } from './engine.js';
import { type AuthzEvent, authzChannel } from './events.js';

export interface EventContext {
  readonly instance: string;
  readonly direction: 'inbound' | 'outbound';
  readonly protocol: 'http' | 'tcp';
  readonly sourcePrincipal: string | null;
  readonly sourceIp: string;
  readonly destinationPort: number;
}

function resultOf(r: RulesResult): AuthzEvent['result'] {
  if (r.action === 'LOG') return r.matchedPolicy !== null ? 'logged' : 'not_logged';
  return r.allowed ? 'allowed' : 'denied';
}

export function publishDecision(d: ChainDecision, c: EventContext): void {
  if (!authzChannel.hasSubscribers) return;
  const base = { instance: c.instance, reporter: c.direction === 'outbound' ? 'source' as const : 'destination' as const, protocol: c.protocol, sourcePrincipal: c.sourcePrincipal, sourceIp: c.sourceIp, destinationPort: c.destinationPort };
  for (const r of d.results) {
    if (r.shadow) authzChannel.publish({ ...base, statPrefix: r.config.shadowRulesStatPrefix, shadow: true, action: r.shadow.action, result: resultOf(r.shadow), policy: r.shadow.matchedPolicy, enforcedDenial: false } satisfies AuthzEvent);
    if (r.enforced) authzChannel.publish({ ...base, statPrefix: r.config.statPrefix, shadow: false, action: r.enforced.action, result: resultOf(r.enforced), policy: r.enforced.matchedPolicy, enforcedDenial: d.deniedBy === r } satisfies AuthzEvent);
  }
}
