/**
 * Capture rules as data: golden files per option set (`UPDATE_GOLDEN=1` rewrites them; review the diff against
 * Istio's istio-iptables goldens, see docs/capture.md), option validation, and the CLI's `print` and `install`
 * with a recording runner (the rules applied for real are in iptables-netns.test.ts).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { Command } from 'commander';
import { registerIptablesCommand } from '../src/cli/iptables.js';
import type { CommandRunner } from '../src/iptables/apply.js';
import { installCapture } from '../src/iptables/apply.js';
import { resolveCaptureOptions, type CaptureOptions } from '../src/iptables/options.js';
import { captureRules, formatRules, splitRules } from '../src/iptables/rules.js';

const goldenDir = join(dirname(fileURLToPath(import.meta.url)), 'golden', 'iptables');

const CASES: Readonly<Record<string, Partial<CaptureOptions>>> = {
  default: {},
  'inbound-list': { inboundPorts: [8080, 9080, 22], excludeInboundPorts: [22] },
  'cidrs-and-ports': {
    includeOutboundCidrs: ['10.0.0.0/8', '240.240.0.0/16', 'fd00::/8'],
    excludeOutboundCidrs: ['10.0.0.5', '169.254.169.254/32', 'fd00::5/128'],
    excludeOutboundPorts: [5432, 6379],
  },
  'no-dns-no-ipv6': { dns: false, ipv6: false, inboundPorts: [] },
  'uid-gid-agent': { proxyUid: 2000, proxyGid: 2001, agentGid: 2002, dnsPort: 5353, outboundPort: 16001, inboundPort: 16006 },
};

describe('iptables: capture rules', () => {
  for (const [name, options] of Object.entries(CASES)) {
    it(`${name}: matches golden/iptables/${name}.golden`, () => {
      const text = formatRules(captureRules(options));
      const file = join(goldenDir, `${name}.golden`);
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, text);
      expect(text === readFileSync(file, 'utf8'), `${name}: rules differ from ${file} (UPDATE_GOLDEN=1 to rewrite)`).to.equal(true);
    });
  }

  it('excludes the proxy uid before any redirect and keeps inbound-passthrough (127.0.0.6) out of capture', () => {
    const { v4, v6 } = captureRules();
    const out = v4.filter((l) => l.startsWith('-A TRELLIS_OUTPUT'));
    expect(out[0]).to.equal('-A TRELLIS_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN');
    const uidReturn = out.indexOf('-A TRELLIS_OUTPUT -m owner --uid-owner 1337 -j RETURN');
    const redirect = out.indexOf('-A TRELLIS_OUTPUT -p tcp -j TRELLIS_REDIRECT');
    const dns = out.indexOf('-A TRELLIS_OUTPUT -j TRELLIS_DNS');
    expect(uidReturn).to.be.greaterThan(0);
    expect(dns).to.be.greaterThan(uidReturn);
    expect(redirect).to.be.greaterThan(dns);
    expect(v6).to.include('-A TRELLIS_OUTPUT -o lo -s ::6/128 -j RETURN');
    expect(v4).to.include('-A TRELLIS_DNS -p udp --dport 53 -j REDIRECT --to-ports 15053');
    expect(v4).to.include('-A TRELLIS_DNS -p tcp --dport 53 -j REDIRECT --to-ports 15053');
  });

  it('never redirects an excluded inbound port, in wildcard or list mode', () => {
    const wildcard = captureRules().v4.filter((l) => l.startsWith('-A TRELLIS_INBOUND'));
    expect(wildcard.slice(0, 4)).to.deep.equal([22, 15020, 15021, 15090].map((p) => `-A TRELLIS_INBOUND -p tcp --dport ${p} -j RETURN`));
    const listed = captureRules({ inboundPorts: [22, 8080] }).v4.filter((l) => l.startsWith('-A TRELLIS_INBOUND'));
    expect(listed).to.deep.equal(['-A TRELLIS_INBOUND -p tcp --dport 8080 -j TRELLIS_IN_REDIRECT']);
  });

  it('splits restore input into own chains and jump rules', () => {
    const { ownChains, jumps } = splitRules(captureRules().v4);
    expect(ownChains).to.not.match(/^-A (OUTPUT|PREROUTING) /m);
    expect(jumps.map((j) => `${j.table} ${j.chain} ${j.spec.join(' ')}`)).to.deep.equal([
      'nat PREROUTING -p tcp -j TRELLIS_INBOUND',
      'nat OUTPUT -j TRELLIS_OUTPUT',
      'raw OUTPUT -p udp -j TRELLIS_DNS_CT',
      'raw PREROUTING -p udp -j TRELLIS_DNS_CT_IN',
    ]);
  });

  it('rejects bad options with every problem listed', () => {
    expect(() => resolveCaptureOptions({ proxyUid: -1, dnsPort: 70000, excludeOutboundCidrs: ['10.0.0.0/33', 'nope'] }))
      .to.throw(/proxyUid.*\n.*dnsPort.*\n.*excludeOutboundCidrs\[0\].*\n.*excludeOutboundCidrs\[1\]/s)
      .with.property('code', 'TRELLIS_ERR_CAPTURE_OPTIONS');
    expect(resolveCaptureOptions({ proxyUid: 2000 }).proxyGid).to.equal(2000);
  });

  it('install adds a jump only when `iptables -C` says it is missing', async () => {
    const calls: string[] = [];
    const present = new Set<string>();
    const runner: CommandRunner = async (cmd, args) => {
      const line = `${cmd} ${args.join(' ')}`;
      calls.push(line);
      if (args.includes('-C')) return { code: present.has(line.replace(' -C ', ' -I ').replace(/ -I (\S+) /, ' -I $1 1 ')) ? 0 : 1, stdout: '', stderr: '' };
      if (args.includes('-I')) present.add(line);
      return { code: 0, stdout: '', stderr: '' };
    };
    await installCapture({ ipv6: false }, runner);
    const first = calls.filter((c) => c.includes(' -I ')).length;
    calls.length = 0;
    await installCapture({ ipv6: false }, runner);
    expect(first).to.equal(4);
    expect(calls.filter((c) => c.includes(' -I '))).to.deep.equal([]);
    expect(calls[0]).to.equal('iptables-restore -w --noflush');
  });
});

describe('iptables: apply without IPv6 in the kernel', () => {
  it('skips ip6tables and says so', async () => {
    const commands: string[] = [];
    const runner: CommandRunner = async (cmd, args) => {
      commands.push(cmd);
      return { code: args.includes('-C') ? 1 : 0, stdout: '', stderr: '' };
    };
    const applied = await installCapture({}, runner, { ipv6Available: () => false });
    expect(applied.ipv6).to.equal(false);
    expect(commands.filter((c) => c.startsWith('ip6tables'))).to.deep.equal([]);
  });
});

describe('iptables: CLI', () => {
  function program(out: string[], runner?: CommandRunner): Command {
    const p = new Command('trellis-agent').exitOverride().configureOutput({ writeErr: (s) => void out.push(s), writeOut: (s) => void out.push(s) });
    registerIptablesCommand(p, { stdout: { write: (s: string) => out.push(s) }, ...(runner ? { runner } : {}) });
    return p;
  }

  it('print honours the flags', async () => {
    const out: string[] = [];
    await program(out).parseAsync(['iptables', 'print', '--proxy-uid', '2000', '--inbound-ports', '8080', '--no-ipv6', '--no-dns', '--exclude-outbound-cidrs', '10.1.0.0/16'], { from: 'user' });
    const text = out.join('');
    expect(text).to.include('-A TRELLIS_OUTPUT -m owner --uid-owner 2000 -j RETURN');
    expect(text).to.include('-A TRELLIS_INBOUND -p tcp --dport 8080 -j TRELLIS_IN_REDIRECT');
    expect(text).to.include('-A TRELLIS_OUTPUT -d 10.1.0.0/16 -j RETURN');
    expect(text).to.not.include('ip6tables');
    expect(text).to.not.include('TRELLIS_DNS -p');
  });

  it('exits 2 with the option problem on a bad flag', async () => {
    const out: string[] = [];
    let error: unknown;
    try {
      await program(out).parseAsync(['iptables', 'print', '--dns-port', 'x'], { from: 'user' });
    } catch (err) {
      error = err;
    }
    expect(error).to.have.property('exitCode', 2);
    expect(out.join('')).to.match(/TRELLIS_ERR_CAPTURE_OPTIONS: --dns-port: "x" is not an integer/);
  });

  it('exits 1 and names the failing command when iptables fails', async () => {
    const out: string[] = [];
    const runner: CommandRunner = async () => ({ code: 4, stdout: '', stderr: 'iptables-restore: unable to initialize table nat' });
    let error: unknown;
    try {
      await program(out, runner).parseAsync(['iptables', 'install'], { from: 'user' });
    } catch (err) {
      error = err;
    }
    expect(error).to.have.property('exitCode', 1);
    expect(out.join('')).to.include('iptables-restore -w --noflush failed (exit 4): iptables-restore: unable to initialize table nat');
  });
});
