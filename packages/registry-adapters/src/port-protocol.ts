/** Protocol names as registries spell them → hub `Protocol`. Shared by the Consul, Eureka and Kubernetes mappings. */
import type { Protocol, ServicePort, WorkloadEntry } from '@trellis/model';

const PROTOCOLS: Readonly<Record<string, Protocol>> = Object.freeze({
  http: 'HTTP',
  'http/1.1': 'HTTP',
  http1: 'HTTP',
  https: 'HTTPS',
  grpc: 'GRPC',
  'grpc-web': 'GRPC_WEB',
  grpc_web: 'GRPC_WEB',
  http2: 'HTTP2',
  h2: 'HTTP2',
  h2c: 'HTTP2',
  'kubernetes.io/h2c': 'HTTP2',
  'kubernetes.io/ws': 'HTTP',
  'kubernetes.io/wss': 'HTTPS',
  mongo: 'MONGO',
  mysql: 'MYSQL',
  redis: 'REDIS',
  tcp: 'TCP',
  tls: 'TLS',
  udp: 'UDP',
});

/** Case-insensitive; `undefined` for a name that is not a known protocol. */
export function parseProtocol(name: string | undefined | null): Protocol | undefined {
  if (!name) return undefined;
  return PROTOCOLS[name.trim().toLowerCase()];
}

/** Istio's port-name convention: `http`, `http-foo`, `grpc-web-x` … → protocol. */
export function protocolFromPortName(name: string | undefined): Protocol | undefined {
  if (!name) return undefined;
  const lower = name.toLowerCase();
  if (lower.startsWith('grpc-web')) return 'GRPC_WEB';
  const i = lower.indexOf('-');
  return parseProtocol(i < 0 ? lower : lower.slice(0, i));
}

/** A port name derived from a protocol (`HTTP` → `http`, `GRPC_WEB` → `grpc-web`). */
export function portNameFor(protocol: Protocol): string {
  return protocol.toLowerCase().replace(/_/g, '-');
}

/**
 * Chooses the service-level port number for instances that may listen on different ports: the most common one,
 * the lowest on a tie. Each workload keeps its own port in `WorkloadEntry.ports`.
 */
export function commonestPort(ports: readonly number[]): number | undefined {
  const counts = new Map<number, number>();
  for (const p of ports) counts.set(p, (counts.get(p) ?? 0) + 1);
  let best: number | undefined;
  let bestCount = 0;
  for (const [p, c] of counts) {
    if (c > bestCount || (c === bestCount && best !== undefined && p < best)) {
      best = p;
      bestCount = c;
    }
  }
  return best;
}

/** `region/zone` from its parts, dropping trailing empty parts (`''` when neither is known). */
export function localityOf(region: string | undefined, zone: string | undefined, subzone?: string): string {
  const parts = [region ?? '', zone ?? '', subzone ?? ''];
  while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts.join('/');
}

/** Replaces `{token}` in a hostname template; unknown tokens are left as written. */
export function expandTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{([a-zA-Z]+)\}/g, (m, k: string) => (k in values ? values[k] : m));
}

/**
 * Service ports from the ports instances declared (port name → protocol and the instances' numbers). Two names
 * that would share a service port number are a disagreement between instances: the name with more instances wins,
 * the other's workloads are renamed onto it, and a message is returned for each such conflict.
 */
export function reconcilePorts(
  byName: ReadonlyMap<string, { readonly protocol: Protocol; readonly numbers: readonly number[] }>,
  workloads: WorkloadEntry[],
): { ports: ServicePort[]; conflicts: string[] } {
  const candidates = [...byName.entries()]
    .map(([name, e]) => ({ name, protocol: e.protocol, number: commonestPort(e.numbers)!, count: e.numbers.length }))
    .sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
  const byNumber = new Map<number, string>();
  const rename = new Map<string, string>();
  const ports: ServicePort[] = [];
  const conflicts: string[] = [];
  for (const c of candidates) {
    const winner = byNumber.get(c.number);
    if (winner !== undefined) {
      rename.set(c.name, winner);
      conflicts.push(`instances disagree on port ${c.number}: ${c.count} say "${c.name}", as many or more say "${winner}"; using "${winner}"`);
      continue;
    }
    byNumber.set(c.number, c.name);
    ports.push({ number: c.number, protocol: c.protocol, name: c.name });
  }
  if (rename.size > 0) {
    for (const [i, w] of workloads.entries()) {
      const p: Record<string, number> = {};
      for (const [name, n] of Object.entries(w.ports)) {
        const to = rename.get(name) ?? name;
        if (!(to in p)) p[to] = n;
      }
      workloads[i] = { ...w, ports: p };
    }
  }
  ports.sort((a, b) => a.number - b.number || a.name.localeCompare(b.name));
  return { ports, conflicts };
}
