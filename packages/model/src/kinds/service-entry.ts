/** `networking.istio.io` ServiceEntry (istio/api networking/v1alpha3/service_entry.proto). */
import type { Location, Resolution } from '../hub.js';
import { arrayOf, enumOf, obj, required, str, withDefault, type Schema } from '../decode/schema.js';
import { joinIndex, joinKey } from '../decode/violations.js';
import { checkDnsLabel, checkHost, isIP } from '../decode/syntax.js';
import { exportTo, ipOrCidr, portSpec, workloadSelector, type PortSpec, type WorkloadSelector } from './common.js';
import { workloadEntrySpec, type WorkloadEntrySpec } from './workload-entry.js';

export interface ServiceEntrySpec {
  /** Hostnames; `*.example.com` allowed, `*` alone not. */
  readonly hosts: readonly string[];
  /** VIPs or CIDRs. */
  readonly addresses?: readonly string[];
  /** Names are unique DNS labels, numbers unique; `protocol` is always set (derived from the name when absent). */
  readonly ports?: readonly PortSpec[];
  /** Default `MESH_EXTERNAL` (Istio's default). */
  readonly location: Location;
  /** Default `NONE` (Istio's default). */
  readonly resolution: Resolution;
  readonly endpoints?: readonly WorkloadEntrySpec[];
  readonly workloadSelector?: WorkloadSelector;
  readonly exportTo?: readonly string[];
  readonly subjectAltNames?: readonly string[];
}

export const serviceEntrySpec = (): Schema<ServiceEntrySpec> =>
  obj<ServiceEntrySpec>(
    {
      hosts: required(arrayOf(str((h) => checkHost(h, { bareWildcard: false })), { min: 1 })),
      addresses: arrayOf(ipOrCidr()),
      ports: arrayOf(portSpec({ nameRequired: true }), {}),
      location: withDefault(enumOf<Location>(['MESH_EXTERNAL', 'MESH_INTERNAL'], { what: 'location' }), 'MESH_EXTERNAL'),
      resolution: withDefault(enumOf<Resolution>(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN'], { what: 'resolution' }), 'NONE'),
      endpoints: arrayOf(workloadEntrySpec({ addressRequired: true })),
      workloadSelector: workloadSelector(),
      exportTo: exportTo(),
      subjectAltNames: arrayOf(str()),
    },
    {
      oneOf: [['workloadSelector', 'endpoints']],
      check(se, path, cx) {
        const names = new Map<string, number>();
        const numbers = new Map<number, number>();
        (se.ports ?? []).forEach((p, i) => {
          const pp = joinIndex(joinKey(path, 'ports'), i);
          if (p.name !== undefined) {
            const m = checkDnsLabel(p.name);
            if (m !== undefined) cx.add(joinKey(pp, 'name'), m.replace('invalid name', 'invalid port name'));
            if (names.has(p.name)) cx.add(joinKey(pp, 'name'), `port name \`${p.name}\` already defined at ports[${names.get(p.name)}]`);
            else names.set(p.name, i);
          }
          if (numbers.has(p.number)) cx.add(joinKey(pp, 'number'), `port ${p.number} already defined at ports[${numbers.get(p.number)}]`);
          else numbers.set(p.number, i);
        });
        if (se.resolution !== 'NONE' && se.resolution !== 'STATIC') {
          (se.addresses ?? []).forEach((a, i) => {
            if (a.includes('/')) cx.add(joinIndex(joinKey(path, 'addresses'), i), `CIDR addresses are allowed only with resolution NONE or STATIC, not ${se.resolution}`);
          });
        }
        if (se.resolution !== 'NONE' && se.hosts.length > 1) {
          const l7 = (se.ports ?? []).every((p) => ['HTTP', 'HTTP2', 'GRPC', 'GRPC_WEB', 'HTTPS', 'TLS'].includes(p.protocol));
          if (!l7) cx.add(joinKey(path, 'hosts'), `multiple hosts need HTTP or TLS ports with resolution ${se.resolution}: a TCP port cannot tell the hosts apart`);
        }
        const eps = se.endpoints ?? [];
        const unix = eps.filter((ep) => ep.address?.startsWith('unix://'));
        if (unix.length > 0 && (se.ports ?? []).length !== 1) cx.add(joinKey(path, 'ports'), 'exactly one service port is required with unix:// endpoints');
        eps.forEach((ep, i) => {
          const ep_ = joinIndex(joinKey(path, 'endpoints'), i);
          if (ep.address?.startsWith('unix://') && ep.ports !== undefined) cx.add(joinKey(ep_, 'ports'), `unix endpoint ${ep.address} must not include ports`);
          for (const name of Object.keys(ep.ports ?? {})) {
            if (!names.has(name)) cx.add(joinKey(joinKey(ep_, 'ports'), name), `endpoint port \`${name}\` is not defined by the service entry`);
          }
          if (se.resolution === 'STATIC' && ep.address !== undefined && !isIP(ep.address) && !ep.address.startsWith('unix://')) {
            cx.add(joinKey(ep_, 'address'), `endpoint address \`${ep.address}\` is not a valid IP address (resolution STATIC)`);
          }
        });
        if (se.resolution === 'NONE' && eps.length > 0) {
          cx.add(joinKey(path, 'endpoints'), 'no endpoints should be provided for resolution NONE');
        }
        if (se.resolution === 'DNS' || se.resolution === 'DNS_ROUND_ROBIN') {
          if (eps.length === 0) {
            se.hosts.forEach((h, i) => {
              if (h.startsWith('*')) cx.add(joinIndex(joinKey(path, 'hosts'), i), `wildcard host \`${h}\` is not allowed with resolution ${se.resolution} and no endpoints`);
            });
          }
          if (se.resolution === 'DNS_ROUND_ROBIN' && eps.length > 1) {
            cx.add(joinKey(path, 'endpoints'), 'resolution DNS_ROUND_ROBIN allows at most one endpoint');
          }
        }
      },
    },
  );
