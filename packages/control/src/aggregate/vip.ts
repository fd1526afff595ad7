/**
 * VIP allocation for services that give no address, so a VM's DNS proxy can answer for them.
 *
 * A hostname's preferred address is `range.base + fnv1a(hostname) mod size` (network and broadcast addresses are
 * never used). A collision is resolved by linear probing, new hostnames taken in hostname order, so the same set of
 * hostnames always gives the same table. Because arrival order could still matter across restarts (B arriving after
 * A took B's slot), the table is persisted: an address once given keeps being given to the same hostname, also for
 * hostnames that went away and came back, until the range runs out and old unused entries are reclaimed.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrellisError } from '@trellis/model';

export interface VipRange {
  readonly base: number;
  readonly size: number;
}

export function parseCidr(cidr: string): VipRange {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const bits = m ? Number(m[5]) : -1;
  if (!m || octets.some((o) => o > 255) || bits < 8 || bits > 30) {
    throw new TrellisError('TRELLIS_ERR_CONFIG', `vipRange ${JSON.stringify(cidr)}: expected an IPv4 CIDR with prefix /8 to /30`);
  }
  const size = 2 ** (32 - bits);
  const ip = ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3];
  return { base: ip - (ip % size), size };
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** 32-bit FNV-1a over the UTF-8 bytes: stable across Node versions and platforms. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(text, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export interface VipAllocatorOptions {
  readonly range: string;
  /** Directory to persist `vips.json` in; undefined keeps the table in memory only. */
  readonly stateDir?: string;
  /** Called when the table cannot be persisted (the allocation still works in memory). */
  readonly onPersistError?: (err: Error) => void;
}

interface TableFile {
  readonly range: string;
  readonly vips: Record<string, string>;
}

export class VipAllocator {
  readonly #range: VipRange;
  readonly #rangeText: string;
  readonly #file?: string;
  readonly #onPersistError?: (err: Error) => void;
  /** hostname → offset within the range. */
  readonly #table = new Map<string, number>();

  constructor(options: VipAllocatorOptions) {
    this.#range = parseCidr(options.range);
    this.#rangeText = options.range;
    this.#onPersistError = options.onPersistError;
    if (options.stateDir !== undefined) {
      this.#file = join(options.stateDir, 'vips.json');
      this.#load();
    }
  }

  /** The current table, hostname → address, sorted by hostname. */
  table(): Readonly<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const h of [...this.#table.keys()].sort()) out[h] = formatIPv4(this.#range.base + this.#table.get(h)!);
    return Object.freeze(out);
  }

  /**
   * Returns an address for every hostname given (deduplicated), allocating for new ones and persisting the table
   * when it changed. Throws TRELLIS_ERR_VIP_EXHAUSTED when the range has no room even after reclaiming.
   */
  allocate(hostnames: Iterable<string>): ReadonlyMap<string, string> {
    const wanted = [...new Set(hostnames)].sort();
    const used = new Set(this.#table.values());
    const fresh = wanted.filter((h) => !this.#table.has(h));
    const usable = this.#range.size - 2;
    if (fresh.length > 0 && used.size + fresh.length > usable) {
      // Reclaim entries of hostnames that are gone, oldest-sorted first, until the new ones fit.
      const live = new Set(wanted);
      for (const [h, off] of [...this.#table].sort((a, b) => a[0].localeCompare(b[0]))) {
        if (used.size + fresh.length <= usable) break;
        if (!live.has(h)) { this.#table.delete(h); used.delete(off); }
      }
      if (used.size + fresh.length > usable) {
        throw new TrellisError('TRELLIS_ERR_VIP_EXHAUSTED', `vipRange ${this.#rangeText} has ${usable} addresses, ${wanted.length} services need one`);
      }
    }
    for (const h of fresh) {
      let off = 1 + (fnv1a(h) % usable);
      while (used.has(off)) off = off === usable ? 1 : off + 1;
      used.add(off);
      this.#table.set(h, off);
    }
    if (fresh.length > 0) this.#persist();
    const out = new Map<string, string>();
    for (const h of wanted) out.set(h, formatIPv4(this.#range.base + this.#table.get(h)!));
    return out;
  }

  #load(): void {
    let parsed: TableFile;
    try {
      parsed = JSON.parse(readFileSync(this.#file!, 'utf8')) as TableFile;
    } catch {
      return; // no table yet (or unreadable): start empty, the next allocation writes a new one
    }
    if (parsed.range !== this.#rangeText || typeof parsed.vips !== 'object' || parsed.vips === null) return;
    const seen = new Set<number>();
    for (const [h, ip] of Object.entries(parsed.vips)) {
      const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(String(ip));
      if (!m) continue;
      const n = ((Number(m[1]) << 24) >>> 0) + (Number(m[2]) << 16) + (Number(m[3]) << 8) + Number(m[4]);
      const off = n - this.#range.base;
      if (off < 1 || off > this.#range.size - 2 || seen.has(off)) continue;
      seen.add(off);
      this.#table.set(h, off);
    }
  }

  #persist(): void {
    if (this.#file === undefined) return;
    try {
      mkdirSync(join(this.#file, '..'), { recursive: true });
      const tmp = `${this.#file}.tmp`;
      writeFileSync(tmp, JSON.stringify({ range: this.#rangeText, vips: this.table() }, null, 1) + '\n', { mode: 0o644 });
      renameSync(tmp, this.#file);
    } catch (err) {
      this.#onPersistError?.(err as Error);
    }
  }
}
