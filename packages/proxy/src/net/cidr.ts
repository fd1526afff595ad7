/** CIDR containment for IPv4 and IPv6 literals (IPv4-mapped IPv6 is treated as IPv4). */
import { isIPv4, isIPv6 } from 'node:net';

function v4(ip: string): bigint {
  return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

function v6(ip: string): bigint {
  let [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  let t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const last = (t.length ? t : h)[(t.length ? t : h).length - 1];
  const extra: string[] = [];
  if (last && last.includes('.')) {
    const n = v4(last);
    extra.push((n >> 16n).toString(16), (n & 0xffffn).toString(16));
    if (t.length) t = t.slice(0, -1); else h.pop();
  }
  const groups = tail !== undefined ? [...h, ...Array(8 - h.length - t.length - extra.length).fill('0'), ...t, ...extra] : [...h, ...extra];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

export function inCidr(ipIn: string, prefix: string, len: number): boolean {
  const ip = normalizeIp(ipIn);
  if (isIPv4(ip) && isIPv4(prefix)) {
    if (len === 0) return true;
    const shift = BigInt(32 - len);
    return v4(ip) >> shift === v4(prefix) >> shift;
  }
  if (isIPv6(ip) && isIPv6(prefix)) {
    if (len === 0) return true;
    const shift = BigInt(128 - len);
    return v6(ip) >> shift === v6(prefix) >> shift;
  }
  return false;
}
