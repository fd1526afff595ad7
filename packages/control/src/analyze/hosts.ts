/**
 * Hostname resolution as Istio applies it to config: a name without a dot is short for
 * `<name>.<namespace>.svc.cluster.local` in the namespace of the resource that wrote it; `name.ns` is accepted for
 * `name.ns.svc.cluster.local`; `*.example.com` matches any name ending in `.example.com`, `*` matches every name.
 */

export const CLUSTER_SUFFIX = 'svc.cluster.local';

export function fqdn(host: string, namespace: string): string {
  if (host.includes('*') || host.includes('.')) return host;
  return `${host}.${namespace}.${CLUSTER_SUFFIX}`;
}

/** True when `pattern` (a host, possibly a wildcard) matches the concrete or wildcard `host`. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern === host) return true;
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1); // `.example.com`
    if (host.startsWith('*.')) return host.slice(1).endsWith(suffix);
    return host.endsWith(suffix);
  }
  return false;
}

/** The names a destination host may stand for: itself, and `name.ns` → `name.ns.svc.cluster.local`. */
export function candidates(host: string, namespace: string): string[] {
  const full = fqdn(host, namespace);
  const out = [full];
  if (full.split('.').length === 2 && !full.includes('*')) out.push(`${full}.${CLUSTER_SUFFIX}`);
  return out;
}

/** A set of defined hosts (FQDNs and wildcards) that answers "is this host defined?". */
export class HostSet<V> {
  readonly #exact = new Map<string, V[]>();
  readonly #wild: { pattern: string; value: V }[] = [];

  add(host: string, value: V): void {
    if (host.includes('*')) this.#wild.push({ pattern: host, value });
    else {
      let l = this.#exact.get(host);
      if (l === undefined) this.#exact.set(host, (l = []));
      l.push(value);
    }
  }

  /** Values whose host matches one of `names` (exact first, then wildcards). */
  lookup(names: readonly string[]): V[] {
    const out: V[] = [];
    for (const n of names) out.push(...(this.#exact.get(n) ?? []));
    for (const w of this.#wild) if (names.some((n) => hostMatches(w.pattern, n))) out.push(w.value);
    return out;
  }

  /** True when some defined concrete host falls under the wildcard `pattern`, or `pattern` is itself defined. */
  coversPattern(pattern: string): boolean {
    if (this.lookup([pattern]).length > 0) return true;
    for (const h of this.#exact.keys()) if (hostMatches(pattern, h)) return true;
    return this.#wild.some((w) => hostMatches(pattern, w.pattern));
  }
}
