/**
 * Lexical checks shared by the kinds: durations, DNS names, hostnames, label keys and values, IPs and CIDRs.
 * Each check returns an error message (without the field path) or undefined when the value is valid.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
const DURATION = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/;

/**
 * Parses a Go/protobuf duration (`1.5s`, `500ms`, `1m30s`, `1h`) into nanoseconds, or returns a message.
 * A bare number (`5`) and a negative duration (`-1s`) are rejected: the unit is never guessed.
 */
export function parseDurationNs(text: string): number | string {
  const hint = 'use a number with a unit: ns, us, ms, s, m or h, like 1.5s, 500ms, 1m';
  if (text.startsWith('-')) return `invalid duration \`${text}\`: must not be negative`;
  if (text === '') return `invalid duration \`\`: ${hint}`;
  if (/^\d+(\.\d*)?$/.test(text)) return `invalid duration \`${text}\`: missing unit; ${hint}`;
  let rest = text.startsWith('+') ? text.slice(1) : text;
  let ns = 0;
  while (rest.length > 0) {
    const m = DURATION.exec(rest);
    if (m === null) return `invalid duration \`${text}\`: ${hint}`;
    ns += Math.round(Number(m[1]) * UNIT_NS[m[2]]);
    rest = rest.slice(m[0].length);
  }
  if (!Number.isFinite(ns) || ns > 315_576_000_000e9) return `invalid duration \`${text}\`: too large`;
  return ns;
}

/** Formats milliseconds back into the shortest exact duration string (`1.5s`, `500ms`, `3m`, `1h`). */
export function formatDurationMs(ms: number): string {
  const ns = Math.round(ms * 1e6);
  if (ns === 0) return '0s';
  if (ns % 3600e9 === 0) return `${ns / 3600e9}h`;
  if (ns % 60e9 === 0) return `${ns / 60e9}m`;
  if (ns % 1e9 === 0) return `${ns / 1e9}s`;
  if (ns % 1e6 === 0) return ns % 1e8 === 0 ? `${ns / 1e9}s` : `${ns / 1e6}ms`;
  return `${ns}ns`;
}

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS_LABEL.test(s);
}

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && s.split('.').every((l) => l.length > 0 && DNS_LABEL.test(l));
}

/** A Kubernetes resource name (DNS-1123 subdomain). */
export function checkResourceName(s: string): string | undefined {
  if (s === '') return 'must not be empty';
  return isDns1123Subdomain(s)
    ? undefined
    : `invalid name \`${s}\`: must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)`;
}

export function checkDnsLabel(s: string): string | undefined {
  return isDns1123Label(s)
    ? undefined
    : `invalid name \`${s}\`: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)`;
}

/** Kubernetes label key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters. */
export function checkLabelKey(k: string): string | undefined {
  const slash = k.indexOf('/');
  const prefix = slash >= 0 ? k.slice(0, slash) : undefined;
  const name = slash >= 0 ? k.slice(slash + 1) : k;
  if (prefix !== undefined && !isDns1123Subdomain(prefix)) return `invalid label key \`${k}\`: prefix must be a DNS-1123 subdomain`;
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return `invalid label key \`${k}\`: name must be 1-63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

export function checkLabelValue(v: string): string | undefined {
  if (v === '') return undefined;
  if (v.length > 63 || !LABEL_NAME.test(v)) {
    return `invalid label value \`${v}\`: must be at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

export function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

export function isIPv6(s: string): boolean {
  if (s.includes('%')) return false;
  let groups = s;
  let extra = 0;
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.slice(lastColon + 1).includes('.')) {
    if (!isIPv4(s.slice(lastColon + 1))) return false;
    groups = s.slice(0, lastColon + 1) + '0';
    extra = 1;
  }
  const halves = groups.split('::');
  if (halves.length > 2) return false;
  const hex = (h: string): string[] | undefined => {
    if (h === '') return [];
    const g = h.split(':');
    return g.every((x) => /^[0-9a-fA-F]{1,4}$/.test(x)) ? g : undefined;
  };
  const a = hex(halves[0]);
  const b = halves.length === 2 ? hex(halves[1]) : [];
  if (a === undefined || b === undefined) return false;
  const n = a.length + b.length + extra;
  return halves.length === 2 ? n <= 7 : n === 8;
}

export function isIP(s: string): boolean {
  return isIPv4(s) || isIPv6(s);
}

export function isCidr(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return false;
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits)) return false;
  if (isIPv4(ip)) return Number(bits) <= 32;
  if (isIPv6(ip)) return Number(bits) <= 128;
  return false;
}

export function checkIpOrCidr(s: string): string | undefined {
  return isIP(s) || isCidr(s) ? undefined : `invalid address \`${s}\`: expected an IP address or a CIDR block`;
}

/** Every dot-separated label is a DNS-1123 label (case-insensitive), at most 255 characters overall. */
function isFqdnish(host: string): boolean {
  if (host.length === 0 || host.length > 255) return false;
  return host.split('.').every((l) => isDns1123Label(l.toLowerCase()));
}

export interface HostRules {
  /** `*` alone. */
  readonly bareWildcard?: boolean;
  /** `*.example.com`. */
  readonly wildcard?: boolean;
  /** IP addresses, as Istio allows in VirtualService hosts. */
  readonly ip?: boolean;
}

/**
 * A hostname as Istio's ValidateWildcardDomain / ValidateFQDN accept it: DNS labels separated by dots (short names
 * such as `reviews` included, which Istio expands with the resource's namespace), optionally a leading `*.` label,
 * or `*` alone where the kind allows it.
 */
export function checkHost(host: string, rules: HostRules = {}): string | undefined {
  if (host === '') return 'hostname must not be empty';
  if (host === '*') return rules.bareWildcard === false ? 'wildcard host `*` is not allowed here' : undefined;
  if (rules.ip && isIP(host)) return undefined;
  let rest = host;
  if (host.startsWith('*.')) {
    if (rules.wildcard === false) return `wildcard host \`${host}\` is not allowed here`;
    rest = host.slice(2);
  } else if (host.includes('*')) {
    return `invalid host \`${host}\`: a wildcard is only allowed as the whole first label (\`*.example.com\`)`;
  }
  if (rest.endsWith('.')) return `invalid host \`${host}\`: must not end with a dot`;
  if (!isFqdnish(rest)) {
    return `invalid host \`${host}\`: each dot-separated label must be 1-63 letters, digits or '-', not starting or ending with '-'`;
  }
  return undefined;
}

/** Gateway/Sidecar host: `namespace/host` where namespace is `*`, `.`, `~` or a DNS label; host as checkHost. */
export function checkNamespacedHost(value: string, requireNamespace: boolean): string | undefined {
  const slash = value.indexOf('/');
  if (slash < 0) {
    if (requireNamespace) return `invalid host \`${value}\`: expected \`namespace/dnsName\` (\`*/\` for any namespace, \`./\` for this one)`;
    return checkHost(value);
  }
  const ns = value.slice(0, slash);
  const host = value.slice(slash + 1);
  if (ns !== '*' && ns !== '.' && ns !== '~' && !isDns1123Label(ns)) return `invalid namespace \`${ns}\` in host \`${value}\``;
  return checkHost(host);
}
