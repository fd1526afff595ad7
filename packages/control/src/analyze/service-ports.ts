/**
 * TRELLIS_A0004: two ServiceEntries for one host must agree on their ports: the same port number with a different
 * protocol or name, or the same port name with a different number, is a conflict. The first ServiceEntry (file
 * order) is taken as the reference; the finding is on the later one.
 */
import type { AnalysisContext, Located, PortView, ServiceEntryView } from './context.js';
import { describe } from './context.js';
import { fqdn } from './hosts.js';

export function checkServicePorts(cx: AnalysisContext): void {
  const byHost = new Map<string, Located[]>();
  for (const se of cx.ofKind('ServiceEntry')) {
    for (const h of (se.resource.spec as ServiceEntryView).hosts) {
      const host = fqdn(h, se.resource.metadata.namespace);
      let l = byHost.get(host);
      if (l === undefined) byHost.set(host, (l = []));
      if (!l.includes(se)) l.push(se);
    }
  }
  for (const [host, list] of byHost) {
    for (let i = 1; i < list.length; i++) {
      for (let j = 0; j < i; j++) compare(cx, host, list[j], list[i]);
    }
  }
}

function compare(cx: AnalysisContext, host: string, first: Located, later: Located): void {
  const ref = (first.resource.spec as ServiceEntryView).ports ?? [];
  ((later.resource.spec as ServiceEntryView).ports ?? []).forEach((p: PortView, k) => {
    const path = `spec.ports[${k}]`;
    const sameNumber = ref.find((q) => q.number === p.number);
    if (sameNumber !== undefined && (sameNumber.protocol ?? '') !== (p.protocol ?? '')) {
      cx.report('conflictingPorts', later, `${path}.protocol`,
        `port ${p.number} of host ${host} is ${p.protocol ?? 'unset'} here but ${sameNumber.protocol ?? 'unset'} in ${describe(first)}`);
    } else if (sameNumber !== undefined && (sameNumber.name ?? '') !== (p.name ?? '')) {
      cx.report('conflictingPorts', later, `${path}.name`,
        `port ${p.number} of host ${host} is named "${p.name ?? ''}" here but "${sameNumber.name ?? ''}" in ${describe(first)}`);
    }
    const sameName = p.name === undefined ? undefined : ref.find((q) => q.name === p.name);
    if (sameName !== undefined && sameName.number !== p.number) {
      cx.report('conflictingPorts', later, `${path}.number`,
        `port "${p.name}" of host ${host} is number ${p.number} here but ${sameName.number} in ${describe(first)}`);
    }
  });
}
