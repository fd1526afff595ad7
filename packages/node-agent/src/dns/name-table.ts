/**
 * The mesh names the DNS proxy answers, built from an NDS name table (`istio.networking.nds.v1.NameTable`, as
 * decoded: `{ table: { [fqdn]: { ips, shortname, namespace, alt_hosts } } }`).
 *
 * For each hostname: the FQDN; the `alt_hosts` the control plane sent; for Kubernetes-style entries (shortname and
 * namespace set) `<short>.<ns>`, `<short>.<ns>.svc` and, when `<ns>` is the VM's namespace, `<short>`; and each
 * of those names followed by every search domain of resolv.conf (so `reviews` looked up with search domain
 * `corp.example` is answered on the resolver's first try, `reviews.corp.example`). An exact FQDN always wins
 * over a derived name of another service.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** One entry as decoded from NDS (proto field names); missing fields are treated as empty. */
export interface NameInfoInput {
  readonly ips?: readonly string[];
  readonly registry?: string;
  readonly shortname?: string;
  readonly namespace?: string;
  readonly alt_hosts?: readonly string[];
}

export interface NameTableInput {
  readonly table?: Readonly<Record<string, NameInfoInput>>;
}

export interface MeshAddresses {
  readonly host: string;
  readonly v4: readonly string[];
  readonly v6: readonly string[];
}

const norm = (n: string): string => n.toLowerCase().replace(/\.$/, '');

/** name → addresses, frozen. */
export function buildNameIndex(input: NameTableInput, namespace: string, search: readonly string[]): ReadonlyMap<string, MeshAddresses> {
  const exact = new Map<string, MeshAddresses>();
  const derived = new Map<string, MeshAddresses>();
  for (const [fqdn, info] of Object.entries(input.table ?? {})) {
    const ips = info.ips ?? [];
    const entry: MeshAddresses = Object.freeze({ host: norm(fqdn), v4: Object.freeze(ips.filter((ip) => isIPv4(ip))), v6: Object.freeze(ips.filter((ip) => isIPv6(ip))) });
    exact.set(entry.host, entry);
    const names = new Set<string>((info.alt_hosts ?? []).map(norm));
    if (info.shortname && info.namespace) {
      names.add(`${info.shortname}.${info.namespace}`);
      names.add(`${info.shortname}.${info.namespace}.svc`);
      if (info.namespace === namespace) names.add(info.shortname);
    }
    for (const n of [entry.host, ...names]) {
      if (n !== entry.host && !derived.has(n)) derived.set(n, entry);
      for (const s of search) if (!derived.has(`${n}.${s}`)) derived.set(`${n}.${s}`, entry);
    }
  }
  for (const [n, e] of exact) derived.set(n, e);
  return derived;
}
