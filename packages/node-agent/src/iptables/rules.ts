/**
 * The capture rule set, as `iptables-restore` input: a pure function of the options (golden-tested).
 *
 * Layout (nat table, per family; modelled on Istio's `istio-iptables`, see docs/capture.md for the differences):
 *
 * - `TRELLIS_REDIRECT`    → REDIRECT to the outbound capture port (15001).
 * - `TRELLIS_IN_REDIRECT` → REDIRECT to the inbound capture port (15006).
 * - `TRELLIS_INBOUND`     (from PREROUTING, TCP): excluded inbound ports RETURN, the rest (or the listed ports) go
 *                         to `TRELLIS_IN_REDIRECT`.
 * - `TRELLIS_OUTPUT`      (from OUTPUT): inbound-passthrough traffic (source 127.0.0.6 / ::6 on lo) RETURNs; for
 *                         each excluded owner (proxy uid, proxy gid, agent gid) the proxy's own loopback calls to
 *                         a local non-127.0.0.1 address go to `TRELLIS_IN_REDIRECT`, other processes' loopback
 *                         traffic RETURNs, and the owner's traffic RETURNs; then DNS goes to `TRELLIS_DNS`;
 *                         127.0.0.1, the excluded CIDRs and ports RETURN; TCP to the included CIDRs goes to
 *                         `TRELLIS_REDIRECT`.
 * - `TRELLIS_DNS`         UDP and TCP to port 53 → REDIRECT to the DNS proxy (15053).
 *
 * With DNS capture on, the raw table gets Istio's conntrack zones, so the DNS proxy's own query to an upstream can
 * never be taken for (and NATed like) an application's query that happens to use the same 5-tuple:
 * - `TRELLIS_DNS_CT`    (from OUTPUT, UDP): the excluded owners' queries to port 53 → zone 1, their answers from
 *                       the DNS proxy port → zone 2; everyone else's queries to port 53 → zone 2.
 * - `TRELLIS_DNS_CT_IN` (from PREROUTING, UDP): answers from port 53 (upstream → DNS proxy) → zone 1.
 * The CT target only sets the zone of a packet's first match, so the order above decides. This requires the DNS
 * proxy to run under an excluded uid/gid (the agent's primary group is the proxy gid), or its answers would not be
 * un-NATed.
 *
 * Lines are in restore syntax. Lines appending to a built-in chain (`-A OUTPUT …`, `-A PREROUTING …`) are the jump
 * rules: `install` adds them only when missing and `uninstall` deletes them, so they are never duplicated.
 */
import { cidrFamily, resolveCaptureOptions, type CaptureOptions } from './options.js';

export const CHAINS = Object.freeze({
  output: 'TRELLIS_OUTPUT',
  redirect: 'TRELLIS_REDIRECT',
  inbound: 'TRELLIS_INBOUND',
  inRedirect: 'TRELLIS_IN_REDIRECT',
  dns: 'TRELLIS_DNS',
});

/** Chains in the raw table (DNS conntrack zones). */
export const RAW_CHAINS = Object.freeze({ dnsOut: 'TRELLIS_DNS_CT', dnsIn: 'TRELLIS_DNS_CT_IN' });

/** Chains of the nat table, in declaration order. */
export const TRELLIS_CHAINS: readonly string[] = Object.freeze([CHAINS.inbound, CHAINS.inRedirect, CHAINS.output, CHAINS.redirect, CHAINS.dns]);

/** Every chain whose name starts with `TRELLIS_` belongs to Trellis (uninstall removes all of them). */
export const isTrellisChain = (name: string): boolean => name.startsWith('TRELLIS_');

/** The tables Trellis writes to. */
export const TRELLIS_TABLES: readonly string[] = Object.freeze(['nat', 'raw']);

export interface CaptureRules {
  /** iptables-restore input for IPv4, one line per element. */
  readonly v4: readonly string[];
  /** iptables-restore input for IPv6 (ip6tables-restore); empty when IPv6 is off. */
  readonly v6: readonly string[];
}

interface Family {
  readonly family: 4 | 6;
  readonly passthroughSource: string;
  readonly localhost: string;
}

const V4: Family = { family: 4, passthroughSource: '127.0.0.6/32', localhost: '127.0.0.1/32' };
const V6: Family = { family: 6, passthroughSource: '::6/128', localhost: '::1/128' };

function withPrefix(cidr: string, family: 4 | 6): string {
  return cidr.includes('/') ? cidr : `${cidr}/${family === 4 ? 32 : 128}`;
}

function familyRules(o: CaptureOptions, f: Family): string[] {
  const inboundOn = o.inboundPorts === '*' || o.inboundPorts.length > 0;
  const lines: string[] = ['*nat', ...TRELLIS_CHAINS.map((c) => `:${c} - [0:0]`)];
  const add = (chain: string, spec: string): void => void lines.push(`-A ${chain} ${spec}`);

  add(CHAINS.redirect, `-p tcp -j REDIRECT --to-ports ${o.outboundPort}`);
  add(CHAINS.inRedirect, `-p tcp -j REDIRECT --to-ports ${o.inboundPort}`);

  // Inbound.
  if (o.inboundPorts === '*') {
    for (const p of o.excludeInboundPorts) add(CHAINS.inbound, `-p tcp --dport ${p} -j RETURN`);
    add(CHAINS.inbound, `-p tcp -j ${CHAINS.inRedirect}`);
  } else {
    for (const p of o.inboundPorts) if (!o.excludeInboundPorts.includes(p)) add(CHAINS.inbound, `-p tcp --dport ${p} -j ${CHAINS.inRedirect}`);
  }

  // Outbound: owners and loopback.
  add(CHAINS.output, `-o lo -s ${f.passthroughSource} -j RETURN`);
  const owners: string[] = [`--uid-owner ${o.proxyUid}`, `--gid-owner ${o.proxyGid}`];
  if (o.agentGid !== undefined && o.agentGid !== o.proxyGid) owners.push(`--gid-owner ${o.agentGid}`);
  // With DNS capture on, loopback DNS (e.g. to a local stub resolver) must still reach TRELLIS_DNS.
  const notDns = o.dns ? ' ! --dport 53' : '';
  for (const owner of owners) {
    if (inboundOn) add(CHAINS.output, `-o lo ! -d ${f.localhost} -p tcp${notDns} -m owner ${owner} -j ${CHAINS.inRedirect}`);
    add(CHAINS.output, `-o lo${o.dns ? ' -p tcp ! --dport 53' : ''} -m owner ! ${owner} -j RETURN`);
    add(CHAINS.output, `-m owner ${owner} -j RETURN`);
  }
  if (o.dns) {
    add(CHAINS.output, `-j ${CHAINS.dns}`);
    add(CHAINS.dns, `-p udp --dport 53 -j REDIRECT --to-ports ${o.dnsPort}`);
    add(CHAINS.dns, `-p tcp --dport 53 -j REDIRECT --to-ports ${o.dnsPort}`);
  }
  add(CHAINS.output, `-d ${f.localhost} -j RETURN`);

  // Outbound: destinations.
  for (const c of o.excludeOutboundCidrs) if (cidrFamily(c) === f.family) add(CHAINS.output, `-d ${withPrefix(c, f.family)} -j RETURN`);
  for (const p of o.excludeOutboundPorts) add(CHAINS.output, `-p tcp --dport ${p} -j RETURN`);
  if (o.includeOutboundCidrs === '*') {
    add(CHAINS.output, `-p tcp -j ${CHAINS.redirect}`);
  } else {
    for (const c of o.includeOutboundCidrs) if (cidrFamily(c) === f.family) add(CHAINS.output, `-d ${withPrefix(c, f.family)} -p tcp -j ${CHAINS.redirect}`);
  }

  // Jumps from the built-in chains.
  if (inboundOn) lines.push(`-A PREROUTING -p tcp -j ${CHAINS.inbound}`);
  lines.push(o.dns ? `-A OUTPUT -j ${CHAINS.output}` : `-A OUTPUT -p tcp -j ${CHAINS.output}`);
  lines.push('COMMIT');

  if (o.dns) {
    lines.push('*raw', `:${RAW_CHAINS.dnsOut} - [0:0]`, `:${RAW_CHAINS.dnsIn} - [0:0]`);
    for (const owner of owners) {
      add(RAW_CHAINS.dnsOut, `-p udp --dport 53 -m owner ${owner} -j CT --zone 1`);
      add(RAW_CHAINS.dnsOut, `-p udp --sport ${o.dnsPort} -m owner ${owner} -j CT --zone 2`);
    }
    add(RAW_CHAINS.dnsOut, '-p udp --dport 53 -j CT --zone 2');
    add(RAW_CHAINS.dnsIn, '-p udp --sport 53 -j CT --zone 1');
    lines.push(`-A OUTPUT -p udp -j ${RAW_CHAINS.dnsOut}`, `-A PREROUTING -p udp -j ${RAW_CHAINS.dnsIn}`, 'COMMIT');
  }
  return lines;
}

/** The rule set for the given options (defaults applied and validated first). */
export function captureRules(options: Partial<CaptureOptions> = {}): CaptureRules {
  const o = resolveCaptureOptions(options);
  return Object.freeze({
    v4: Object.freeze(familyRules(o, V4)),
    v6: Object.freeze(o.ipv6 ? familyRules(o, V6) : []),
  });
}

/** One jump rule from a built-in chain, split into iptables arguments (`-t nat`, `-C`/`-I`/`-D` are added by the caller). */
export interface JumpRule {
  readonly table: string;
  readonly chain: string;
  readonly spec: readonly string[];
}

/**
 * Splits restore input into the part that only touches Trellis's chains (safe to restore with `--noflush` any
 * number of times: declaring a chain flushes it) and the jump rules from built-in chains.
 */
export function splitRules(lines: readonly string[]): { readonly ownChains: string; readonly jumps: readonly JumpRule[] } {
  const own: string[] = [];
  const jumps: JumpRule[] = [];
  let table = '';
  for (const line of lines) {
    if (line.startsWith('*')) table = line.slice(1);
    const m = /^-A (\S+) (.*)$/.exec(line);
    if (m !== null && !isTrellisChain(m[1]!)) {
      jumps.push(Object.freeze({ table, chain: m[1]!, spec: Object.freeze(m[2]!.split(/\s+/)) }));
      continue;
    }
    own.push(line);
  }
  return Object.freeze({ ownChains: own.length > 0 ? `${own.join('\n')}\n` : '', jumps: Object.freeze(jumps) });
}

/** The rule set as `trellis-agent iptables print` shows it. */
export function formatRules(rules: CaptureRules): string {
  const parts = [`# iptables-restore --noflush (IPv4)\n${rules.v4.join('\n')}\n`];
  if (rules.v6.length > 0) parts.push(`# ip6tables-restore --noflush (IPv6)\n${rules.v6.join('\n')}\n`);
  return parts.join('\n');
}
