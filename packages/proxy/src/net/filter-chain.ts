/**
 * Filter chain selection in Envoy's order: destination port, destination IP (longest prefix), server name
 * (exact, then longest wildcard), transport protocol, application protocols. At each step chains that name a value
 * beat chains that leave it empty; a step with no candidate falls back to `default_filter_chain`.
 */
import type { FilterChain, ListenerConfig } from '@trellis/api';
import { inCidr } from './cidr.js';

export interface ConnectionFacts {
  readonly destIp: string;
  readonly destPort: number;
  /** 'tls' or 'raw_buffer'. */
  readonly transportProtocol: string;
  readonly serverName: string | null;
  readonly applicationProtocols: readonly string[];
}

export function selectFilterChain(l: ListenerConfig, f: ConnectionFacts): FilterChain | null {
  let c: readonly FilterChain[] = l.filterChains;
  // destination_port
  const byPort = c.filter((fc) => fc.match.destinationPort === f.destPort);
  c = byPort.length ? byPort : c.filter((fc) => fc.match.destinationPort === null);
  // prefix_ranges: longest matching prefix wins
  let best = -1;
  let byIp: FilterChain[] = [];
  for (const fc of c) {
    for (const r of fc.match.prefixRanges) {
      if (!inCidr(f.destIp, r.address, r.prefixLen)) continue;
      if (r.prefixLen > best) { best = r.prefixLen; byIp = [fc]; } else if (r.prefixLen === best && !byIp.includes(fc)) byIp.push(fc);
    }
  }
  c = byIp.length ? byIp : c.filter((fc) => fc.match.prefixRanges.length === 0);
  // server_names
  const sni = f.serverName?.toLowerCase() ?? null;
  if (sni) {
    const exact = c.filter((fc) => fc.match.serverNames.includes(sni));
    if (exact.length) c = exact;
    else {
      let bestLen = -1;
      let wild: FilterChain[] = [];
      for (const fc of c) for (const n of fc.match.serverNames) {
        if (n.startsWith('*.') && sni.endsWith(n.slice(1))) {
          if (n.length > bestLen) { bestLen = n.length; wild = [fc]; } else if (n.length === bestLen) wild.push(fc);
        }
      }
      c = wild.length ? wild : c.filter((fc) => fc.match.serverNames.length === 0);
    }
  } else c = c.filter((fc) => fc.match.serverNames.length === 0);
  // transport_protocol
  const byTransport = c.filter((fc) => fc.match.transportProtocol === f.transportProtocol);
  c = byTransport.length ? byTransport : c.filter((fc) => fc.match.transportProtocol === null);
  // application_protocols
  const byAlpn = c.filter((fc) => fc.match.applicationProtocols.some((p) => f.applicationProtocols.includes(p)));
  c = byAlpn.length ? byAlpn : c.filter((fc) => fc.match.applicationProtocols.length === 0);
  return c[0] ?? l.defaultFilterChain;
}
