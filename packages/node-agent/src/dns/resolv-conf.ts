/**
 * The parts of resolv.conf(5) the DNS proxy uses: `nameserver` lines (the upstream resolvers, port 53) and the
 * search list (`search`, or `domain` when no `search` line is present; the last such line wins, as in glibc).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { TrellisError } from '@trellis/api';

export interface Upstream {
  readonly host: string;
  readonly port: number;
}

export interface ResolvConf {
  readonly nameservers: readonly Upstream[];
  readonly search: readonly string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const nameservers: Upstream[] = [];
  let search: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...values] = line.split(/\s+/);
    if (key === 'nameserver' && values[0] !== undefined) {
      const host = values[0].replace(/%.*$/, '');
      if (isIP(host) !== 0) nameservers.push(Object.freeze({ host, port: 53 }));
    } else if (key === 'search' || key === 'domain') {
      search = values.map((v) => v.toLowerCase().replace(/\.$/, '')).filter((v) => v !== '');
    }
  }
  return Object.freeze({ nameservers: Object.freeze(nameservers), search: Object.freeze(search) });
}

/** Reads and parses the file; a missing or unreadable file is `TRELLIS_ERR_DNS_RESOLV_CONF`. */
export function readResolvConf(path: string): ResolvConf {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_DNS_RESOLV_CONF', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  return parseResolvConf(text);
}
