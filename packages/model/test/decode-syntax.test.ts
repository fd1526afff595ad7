import { expect } from 'chai';
import fc from 'fast-check';
import { formatDurationMs, parseDurationNs } from '@trellis/model';

describe('durations', () => {
  const ms = (s: string): number | string => {
    const ns = parseDurationNs(s);
    return typeof ns === 'number' ? ns / 1e6 : ns;
  };
  it('parses the forms Istio users write', () => {
    expect(ms('1.5s')).to.equal(1500);
    expect(ms('500ms')).to.equal(500);
    expect(ms('1m')).to.equal(60_000);
    expect(ms('1h')).to.equal(3_600_000);
    expect(ms('1m30s')).to.equal(90_000);
    expect(ms('0.1s')).to.equal(100);
    expect(ms('250us')).to.equal(0.25);
    expect(ms('0s')).to.equal(0);
  });
  it('rejects bare numbers, negatives and junk with a reason', () => {
    expect(ms('5')).to.match(/missing unit/);
    expect(ms('-1s')).to.match(/must not be negative/);
    expect(ms('1d')).to.match(/use a number with a unit/);
    expect(ms('')).to.match(/invalid duration/);
    expect(ms('s')).to.match(/invalid duration/);
  });
  it('formats back to the shortest exact string', () => {
    expect(formatDurationMs(1500)).to.equal('1.5s');
    expect(formatDurationMs(500)).to.equal('0.5s');
    expect(formatDurationMs(25)).to.equal('25ms');
    expect(formatDurationMs(180_000)).to.equal('3m');
    expect(formatDurationMs(7_200_000)).to.equal('2h');
    expect(formatDurationMs(0)).to.equal('0s');
    expect(formatDurationMs(0.25)).to.equal('250000ns');
  });
  it('round-trips every whole number of nanoseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 ** 15 }), (ns) => {
        const back = parseDurationNs(formatDurationMs(ns / 1e6));
        return back === ns;
      }),
    );
  });
});

describe('addresses and hosts', () => {
  it('recognizes IPv4, IPv6 and CIDRs', async () => {
    const { isIPv4, isIPv6, isCidr } = await import('../src/decode/syntax.js');
    const v6: [string, boolean][] = [
      ['::1', true], ['::', true], ['fe80::1', true], ['2001:db8::8a2e:370:7334', true], ['1:2:3:4:5:6:7:8', true],
      ['1:2:3:4:5:6:7', false], ['1:2:3:4:5:6:7:8:9', false], ['::ffff:1.2.3.4', true], ['1:2:3:4:5:6:1.2.3.4', true],
      ['1:2:3:4:5:6:7:1.2.3.4', false], ['1::2::3', false], ['12345::', false], ['1:2:3:4:5:6:7::', true],
    ];
    for (const [s, want] of v6) expect(isIPv6(s), s).to.equal(want);
    for (const [s, want] of [['1.2.3.4', true], ['01.2.3.4', false], ['256.1.1.1', false], ['1.2.3', false]] as [string, boolean][]) {
      expect(isIPv4(s), s).to.equal(want);
    }
    expect([isCidr('10.0.0.0/8'), isCidr('::/0'), isCidr('10.0.0.0/33'), isCidr('10.0.0.0')]).to.deep.equal([true, true, false, false]);
  });
  it('checks hostnames the way Istio does', async () => {
    const { checkHost } = await import('../src/decode/syntax.js');
    expect(checkHost('reviews')).to.equal(undefined);
    expect(checkHost('reviews.default.svc.cluster.local')).to.equal(undefined);
    expect(checkHost('*.foo.com')).to.equal(undefined);
    expect(checkHost('*')).to.equal(undefined);
    expect(checkHost('*', { bareWildcard: false })).to.be.a('string');
    expect(checkHost('*.foo.com', { wildcard: false })).to.be.a('string');
    expect(checkHost('foo*.com')).to.be.a('string');
    expect(checkHost('foo.com.')).to.be.a('string');
    expect(checkHost(`${'a'.repeat(64)}.com`)).to.be.a('string');
    expect(checkHost('10.0.0.1', { ip: true })).to.equal(undefined);
  });
});
