import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { fnv1a, formatIPv4, parseCidr, VipAllocator } from '../src/aggregate/vip.js';

describe('VIP allocation', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vip-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('gives a deterministic address in the range, never network or broadcast', () => {
    const a = new VipAllocator({ range: '240.240.0.0/16' }).allocate(['a.example.com', 'b.example.com']);
    const b = new VipAllocator({ range: '240.240.0.0/16' }).allocate(['b.example.com', 'a.example.com']);
    expect([...a]).to.deep.equal([...b]);
    for (const ip of a.values()) {
      expect(ip).to.match(/^240\.240\.\d+\.\d+$/);
      expect(ip).not.to.equal('240.240.0.0');
      expect(ip).not.to.equal('240.240.255.255');
    }
    const usable = 65534;
    expect(a.get('a.example.com')).to.equal(formatIPv4(parseCidr('240.240.0.0/16').base + 1 + (fnv1a('a.example.com') % usable)));
  });

  it('resolves collisions by linear probing in hostname order', () => {
    // A /30 has 2 usable addresses: every hostname collides with one of them.
    const hosts = ['z.test', 'y.test'];
    const m = new VipAllocator({ range: '10.0.0.0/30' }).allocate(hosts);
    expect(new Set(m.values()).size).to.equal(2);
    const first = 1 + (fnv1a('y.test') % 2);
    expect(m.get('y.test')).to.equal(`10.0.0.${first}`);
    expect(m.get('z.test')).to.equal(`10.0.0.${first === 1 ? 2 : 1}`);
  });

  it('keeps an allocation across restarts even when a later-sorted hostname arrived first', () => {
    // Find two hostnames that collide in a /29 (6 usable addresses).
    const names: string[] = [];
    for (let i = 0; names.length < 2; i++) {
      const h = `svc${i}.test`;
      if (names.length === 0 || fnv1a(h) % 6 === fnv1a(names[0]) % 6) names.push(h);
    }
    const [early, late] = names.sort().reverse(); // `early` sorts after `late` but arrives first
    const one = new VipAllocator({ range: '10.1.0.0/29', stateDir: dir });
    const ipEarly = one.allocate([early]).get(early);
    const ipLate = one.allocate([early, late]).get(late);
    expect(ipLate).not.to.equal(ipEarly);
    const persisted = JSON.parse(readFileSync(join(dir, 'vips.json'), 'utf8')) as { vips: Record<string, string> };
    expect(persisted.vips[early]).to.equal(ipEarly);
    const two = new VipAllocator({ range: '10.1.0.0/29', stateDir: dir }).allocate([late, early]);
    expect(two.get(early)).to.equal(ipEarly);
    expect(two.get(late)).to.equal(ipLate);
    // Without the persisted table, sorting would have given `late` the preferred slot.
    const fresh = new VipAllocator({ range: '10.1.0.0/29' }).allocate([late, early]);
    expect(fresh.get(late)).to.equal(ipEarly);
  });

  it('reclaims addresses of gone hostnames only when the range is full, and reports exhaustion', () => {
    const v = new VipAllocator({ range: '10.2.0.0/30' });
    v.allocate(['a.test', 'b.test']);
    const m = v.allocate(['a.test', 'c.test']);
    expect(m.size).to.equal(2);
    expect(() => v.allocate(['a.test', 'c.test', 'd.test'])).to.throw(/has 2 addresses/);
  });

  it('rejects a bad range', () => {
    expect(() => new VipAllocator({ range: '240.240.0.0' })).to.throw(/IPv4 CIDR/);
  });
});
