/**
 * Options of the traffic-capture rules, their defaults (Istio's numbers) and their validation.
 *
 * `resolveCaptureOptions` takes partial input (from flags or code), applies the defaults and returns a frozen,
 * validated value, or throws `TRELLIS_ERR_CAPTURE_OPTIONS` listing every bad field.
 */
import { isIP } from 'node:net';
import { TrellisError } from '@trellis/api';

export interface CaptureOptions {
  /** Uid of the proxy: its traffic is never captured. Default 1337. */
  readonly proxyUid: number;
  /**
   * Gid whose traffic is never captured. Default: the proxy uid's number (as Istio's `-g` defaults to `-u`).
   * The agent runs as root with this gid as its primary group (systemd `Group=`), so its connections to the
   * control plane and its upstream DNS queries bypass capture too, without exempting every root process.
   */
  readonly proxyGid: number;
  /** Extra gid excluded from capture (e.g. a dedicated `trellis-agent` group); none by default. */
  readonly agentGid?: number;
  /** Proxy outbound capture port. Default 15001. */
  readonly outboundPort: number;
  /** Proxy inbound capture port. Default 15006. */
  readonly inboundPort: number;
  /** Inbound ports redirected to the proxy: `'*'` (all but the excluded) or a list; `[]` disables inbound capture. */
  readonly inboundPorts: '*' | readonly number[];
  /** Inbound ports never redirected. Default 22, 15020, 15021, 15090. */
  readonly excludeInboundPorts: readonly number[];
  /** Outbound destinations redirected: `'*'` (all) or a list of CIDRs (either family); `[]` disables outbound capture. */
  readonly includeOutboundCidrs: '*' | readonly string[];
  /** Outbound destinations never redirected (CIDRs, either family). */
  readonly excludeOutboundCidrs: readonly string[];
  /** Outbound destination ports never redirected. */
  readonly excludeOutboundPorts: readonly number[];
  /** Also write ip6tables rules. Default true. */
  readonly ipv6: boolean;
  /** Redirect DNS (UDP and TCP port 53) of every process but the excluded uid/gids to the DNS proxy. Default true. */
  readonly dns: boolean;
  /** The DNS proxy's port. Default 15053. */
  readonly dnsPort: number;
}

export const DEFAULT_CAPTURE_OPTIONS: CaptureOptions = Object.freeze({
  proxyUid: 1337,
  proxyGid: 1337,
  outboundPort: 15001,
  inboundPort: 15006,
  inboundPorts: '*',
  excludeInboundPorts: Object.freeze([22, 15020, 15021, 15090]),
  includeOutboundCidrs: '*',
  excludeOutboundCidrs: Object.freeze([]),
  excludeOutboundPorts: Object.freeze([]),
  ipv6: true,
  dns: true,
  dnsPort: 15053,
});

/** Parses `'*'`, `''` or `'80,8080'` as flags give them. */
export function parsePortList(text: string, flag: string): '*' | number[] {
  const t = text.trim();
  if (t === '*') return '*';
  if (t === '') return [];
  return t.split(',').map((p) => {
    const n = Number(p.trim());
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new TrellisError('TRELLIS_ERR_CAPTURE_OPTIONS', `${flag}: "${p.trim()}" is not a port (1-65535)`);
    return n;
  });
}

/** Parses `'*'`, `''` or `'10.0.0.0/8,fd00::/8'`; validation happens in `resolveCaptureOptions`. */
export function parseCidrList(text: string): '*' | string[] {
  const t = text.trim();
  if (t === '*') return '*';
  if (t === '') return [];
  return t.split(',').map((c) => c.trim());
}

/** 4 or 6 for a valid CIDR (a bare address counts as /32 or /128), 0 otherwise. */
export function cidrFamily(cidr: string): 0 | 4 | 6 {
  const [addr = '', prefix, ...rest] = cidr.split('/');
  if (rest.length > 0) return 0;
  const family = isIP(addr);
  if (family === 0) return 0;
  if (prefix !== undefined) {
    const n = Number(prefix);
    if (prefix === '' || !Number.isInteger(n) || n < 0 || n > (family === 4 ? 32 : 128)) return 0;
  }
  return family as 4 | 6;
}

function checkPort(v: unknown, path: string, problems: string[]): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) problems.push(`${path}: must be a port 1-65535, got ${String(v)}`);
}

function checkId(v: unknown, path: string, problems: string[]): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xfffffffe) problems.push(`${path}: must be a uid/gid (integer ≥ 0), got ${String(v)}`);
}

/** Defaults applied, every field validated, result frozen. `proxyGid` defaults to `proxyUid` when only the uid is given. */
export function resolveCaptureOptions(input: Partial<CaptureOptions> = {}): CaptureOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<CaptureOptions>;
  const o: CaptureOptions = { ...DEFAULT_CAPTURE_OPTIONS, proxyGid: defined.proxyUid ?? DEFAULT_CAPTURE_OPTIONS.proxyGid, ...defined };
  const problems: string[] = [];
  checkId(o.proxyUid, 'proxyUid', problems);
  checkId(o.proxyGid, 'proxyGid', problems);
  if (o.agentGid !== undefined) checkId(o.agentGid, 'agentGid', problems);
  checkPort(o.outboundPort, 'outboundPort', problems);
  checkPort(o.inboundPort, 'inboundPort', problems);
  checkPort(o.dnsPort, 'dnsPort', problems);
  if (o.inboundPorts !== '*') o.inboundPorts.forEach((p, i) => checkPort(p, `inboundPorts[${i}]`, problems));
  o.excludeInboundPorts.forEach((p, i) => checkPort(p, `excludeInboundPorts[${i}]`, problems));
  o.excludeOutboundPorts.forEach((p, i) => checkPort(p, `excludeOutboundPorts[${i}]`, problems));
  if (o.includeOutboundCidrs !== '*') {
    o.includeOutboundCidrs.forEach((c, i) => cidrFamily(c) === 0 && problems.push(`includeOutboundCidrs[${i}]: "${c}" is not a CIDR`));
  }
  o.excludeOutboundCidrs.forEach((c, i) => cidrFamily(c) === 0 && problems.push(`excludeOutboundCidrs[${i}]: "${c}" is not a CIDR`));
  if (problems.length > 0) throw new TrellisError('TRELLIS_ERR_CAPTURE_OPTIONS', `invalid capture options:\n  ${problems.join('\n  ')}`);
  return Object.freeze({
    ...o,
    inboundPorts: o.inboundPorts === '*' ? '*' : Object.freeze([...o.inboundPorts]),
    excludeInboundPorts: Object.freeze([...o.excludeInboundPorts]),
    includeOutboundCidrs: o.includeOutboundCidrs === '*' ? '*' : Object.freeze([...o.includeOutboundCidrs]),
    excludeOutboundCidrs: Object.freeze([...o.excludeOutboundCidrs]),
    excludeOutboundPorts: Object.freeze([...o.excludeOutboundPorts]),
  });
}
