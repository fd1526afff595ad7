/** TRELLIS_A0003: a DestinationRule whose host no ServiceEntry defines has no effect. */
import type { AnalysisContext, DestinationRuleView } from './context.js';
import { candidates } from './hosts.js';

export function checkDestinationRuleHosts(cx: AnalysisContext): void {
  for (const dr of cx.ofKind('DestinationRule')) {
    const host = (dr.resource.spec as DestinationRuleView).host;
    const names = candidates(host, dr.resource.metadata.namespace);
    const known = names[0].includes('*') ? cx.services.coversPattern(names[0]) : cx.services.lookup(names).length > 0;
    if (!known) cx.report('destinationRuleUnknownHost', dr, 'spec.host', `host ${names[0]} is not defined by any ServiceEntry; this DestinationRule applies to nothing`);
  }
}
