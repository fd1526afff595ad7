/** `networking.istio.io` WorkloadEntry (istio/api networking/v1alpha3/workload_entry.proto). */
import { int, labels, mapOf, obj, port, str, type Fields, type Schema } from '../decode/schema.js';
import { checkDnsLabel, checkHost, isIP } from '../decode/syntax.js';

export interface WorkloadEntrySpec {
  /** IP address, DNS name (for DNS resolution) or `unix:///path` socket. Required unless `network` is set. */
  readonly address?: string;
  /** Port name (as the service names it) → port on this workload. */
  readonly ports?: Readonly<Record<string, number>>;
  readonly labels?: Readonly<Record<string, string>>;
  /** Network the workload is on; workloads on another network are reached through that network's gateway. */
  readonly network?: string;
  /** `region/zone/subzone`. */
  readonly locality?: string;
  /** Load-balancing weight; absent means 1 (Istio's default). */
  readonly weight?: number;
  readonly serviceAccount?: string;
}

export function checkWorkloadAddress(a: string): string | undefined {
  if (a.startsWith('unix://')) return a.length > 'unix://'.length ? undefined : 'unix domain socket path must not be empty';
  if (isIP(a)) return undefined;
  const m = checkHost(a, { bareWildcard: false, wildcard: false });
  return m === undefined ? undefined : `invalid address \`${a}\`: expected an IP address, a hostname or unix:///path`;
}

/** The field table, shared with WorkloadGroup's `template`. */
export const workloadEntryFields: Fields<WorkloadEntrySpec> = {
  address: str(checkWorkloadAddress),
  ports: mapOf(port(), checkDnsLabel),
  labels: labels(),
  network: str(),
  locality: str((l) => (l.split('/').length <= 3 ? undefined : `invalid locality \`${l}\`: expected region/zone/subzone`)),
  weight: int({ min: 0, max: 4294967295 }),
  serviceAccount: str(),
};

export const workloadEntrySpec = (opts: { addressRequired: boolean }): Schema<WorkloadEntrySpec> =>
  obj<WorkloadEntrySpec>(workloadEntryFields, {
    check(v, path, cx) {
      if (opts.addressRequired && v.address === undefined && v.network === undefined) {
        cx.add(path === '' ? 'address' : `${path}.address`, 'required field is missing (an address is required unless `network` is set)');
      }
    },
  });
