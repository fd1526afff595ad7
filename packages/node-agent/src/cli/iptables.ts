/**
 * `trellis-agent iptables install|uninstall|print`: the capture rules from the command line.
 *
 * Exit codes: 0 on success; 2 for bad flags (`TRELLIS_ERR_CAPTURE_OPTIONS`); 1 when an iptables command fails
 * (`TRELLIS_ERR_CAPTURE_COMMAND`, the failing command and its stderr are printed). Errors go through commander's
 * `error()`, so a program with `exitOverride()` gets a `CommanderError` instead of an exit.
 */
import { Command } from 'commander';
import { TrellisError } from '@trellis/api';
import { installCapture, spawnRunner, uninstallCapture, type CommandRunner } from '../iptables/apply.js';
import { parseCidrList, parsePortList, resolveCaptureOptions, type CaptureOptions } from '../iptables/options.js';
import { captureRules, formatRules } from '../iptables/rules.js';

export interface IptablesCommandDeps {
  /** Runs iptables commands; default spawns them directly. */
  readonly runner?: CommandRunner;
  /** Where `print` and progress lines go; default process.stdout. */
  readonly stdout?: { write(text: string): unknown };
}

interface RawFlags {
  proxyUid: string;
  proxyGid?: string;
  agentGid?: string;
  outboundPort: string;
  inboundPort: string;
  inboundPorts: string;
  excludeInboundPorts: string;
  includeOutboundCidrs: string;
  excludeOutboundCidrs: string;
  excludeOutboundPorts: string;
  ipv6: boolean;
  dns: boolean;
  dnsPort: string;
}

function int(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n)) throw new TrellisError('TRELLIS_ERR_CAPTURE_OPTIONS', `${flag}: "${text}" is not an integer`);
  return n;
}

function toOptions(f: RawFlags): CaptureOptions {
  const inbound = parsePortList(f.inboundPorts, '--inbound-ports');
  const list = (text: string, flag: string): number[] => {
    const v = parsePortList(text, flag);
    if (v === '*') throw new TrellisError('TRELLIS_ERR_CAPTURE_OPTIONS', `${flag}: "*" is not allowed here`);
    return v;
  };
  const excludeCidrs = parseCidrList(f.excludeOutboundCidrs);
  if (excludeCidrs === '*') throw new TrellisError('TRELLIS_ERR_CAPTURE_OPTIONS', '--exclude-outbound-cidrs: "*" is not allowed (use --include-outbound-cidrs "")');
  const o: Partial<CaptureOptions> = {
    proxyUid: int(f.proxyUid, '--proxy-uid'),
    proxyGid: int(f.proxyGid, '--proxy-gid'),
    agentGid: int(f.agentGid, '--agent-gid'),
    outboundPort: int(f.outboundPort, '--outbound-port'),
    inboundPort: int(f.inboundPort, '--inbound-port'),
    inboundPorts: inbound,
    excludeInboundPorts: list(f.excludeInboundPorts, '--exclude-inbound-ports'),
    includeOutboundCidrs: parseCidrList(f.includeOutboundCidrs),
    excludeOutboundCidrs: excludeCidrs,
    excludeOutboundPorts: list(f.excludeOutboundPorts, '--exclude-outbound-ports'),
    ipv6: f.ipv6,
    dns: f.dns,
    dnsPort: int(f.dnsPort, '--dns-port'),
  };
  return resolveCaptureOptions(o);
}

function withCaptureFlags(cmd: Command): Command {
  return cmd
    .option('--proxy-uid <uid>', 'uid of the proxy; its traffic is never captured', '1337')
    .option('--proxy-gid <gid>', 'gid whose traffic is never captured (run the agent with this primary group) [default: the proxy uid]')
    .option('--agent-gid <gid>', 'an extra gid whose traffic is never captured (a dedicated agent group)')
    .option('--outbound-port <port>', 'proxy outbound capture port', '15001')
    .option('--inbound-port <port>', 'proxy inbound capture port', '15006')
    .option('--inbound-ports <ports>', 'inbound ports to capture: "*" or a comma list; "" captures none', '*')
    .option('--exclude-inbound-ports <ports>', 'inbound ports never captured', '22,15020,15021,15090')
    .option('--include-outbound-cidrs <cidrs>', 'outbound destinations to capture: "*" or a comma list of CIDRs; "" captures none', '*')
    .option('--exclude-outbound-cidrs <cidrs>', 'outbound destinations never captured (comma list of CIDRs)', '')
    .option('--exclude-outbound-ports <ports>', 'outbound destination ports never captured', '')
    .option('--no-ipv6', 'do not write ip6tables rules')
    .option('--no-dns', 'do not redirect DNS (port 53) to the DNS proxy')
    .option('--dns-port <port>', 'the DNS proxy port', '15053');
}

/** Adds `iptables install|uninstall|print` to a commander 14 program (the agent's CLI). */
export function registerIptablesCommand(program: Command, deps: IptablesCommandDeps = {}): Command {
  const out = deps.stdout ?? process.stdout;
  const run = deps.runner ?? spawnRunner();
  const iptables = program.command('iptables').description('install, remove or print the traffic-capture rules (see docs/capture.md)');
  const fail = (cmd: Command, err: unknown): never => {
    if (err instanceof TrellisError) {
      cmd.error(`${err.code}: ${err.message}`, { exitCode: err.code === 'TRELLIS_ERR_CAPTURE_OPTIONS' ? 2 : 1, code: err.code });
    }
    throw err;
  };

  withCaptureFlags(iptables.command('print').description('print the rule set as iptables-restore input')).action(function (this: Command) {
    try {
      out.write(formatRules(captureRules(toOptions(this.opts<RawFlags>()))));
    } catch (err) {
      fail(this, err);
    }
  });

  withCaptureFlags(iptables.command('install').description('install (or refresh) the rules; idempotent')).action(async function (this: Command) {
    try {
      const o = toOptions(this.opts<RawFlags>());
      const applied = await installCapture(o, run);
      const note = o.ipv6 && !applied.ipv6 ? '; IPv6 skipped: the kernel has no IPv6' : '';
      out.write(`capture rules installed (IPv4${applied.ipv6 ? ' and IPv6' : ''}${note})\n`);
    } catch (err) {
      fail(this, err);
    }
  });

  // Takes the install flags too (only --no-ipv6 matters), so a unit can pass the same arguments to both.
  withCaptureFlags(iptables.command('uninstall').description("remove Trellis's chains and jump rules; the host's own rules stay"))
    .action(async function (this: Command) {
      try {
        const { ipv6 } = this.opts<{ ipv6: boolean }>();
        await uninstallCapture({ ipv6 }, run);
        out.write('capture rules removed\n');
      } catch (err) {
        fail(this, err);
      }
    });
  return iptables;
}
