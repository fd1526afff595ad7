/** Protocol names as registries spell them → hub `Protocol`. Shared by the Consul, Eureka and Kubernetes mappings. */
import type { Protocol } from '@trellis/model';

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
