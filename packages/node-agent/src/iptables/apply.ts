/**
 * Applies and removes the capture rules on the host.
 *
 * `install` is idempotent: it restores Trellis's own chains with `iptables-restore --noflush` (declaring a chain
 * flushes it, so the chains are refilled, never appended to), then adds each jump rule from a built-in chain only
 * when `iptables -C` says it is missing. Jumps are inserted at the top of the built-in chain so host rules that
 * ACCEPT or RETURN early cannot bypass capture. `uninstall` deletes Trellis's jump rules (every copy), then flushes
 * and deletes Trellis's chains (every `TRELLIS_*` chain of the nat and raw tables, whatever options installed
 * them); the host's own rules and chains are never touched. Both work per family
 * (iptables, and ip6tables unless IPv6 is off).
 *
 * Commands run through an injected `CommandRunner` so tests can run them inside a network namespace
 * (`ip netns exec NS …`) or record them.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { TrellisError } from '@trellis/api';
import { resolveCaptureOptions, type CaptureOptions } from './options.js';
import { captureRules, isTrellisChain, splitRules, TRELLIS_TABLES, type JumpRule } from './rules.js';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one command (no shell), feeding `input` on stdin. Never rejects for a non-zero exit; rejects if it cannot start. */
export type CommandRunner = (command: string, args: readonly string[], input?: string) => Promise<CommandResult>;

/** Runs commands directly; with `netns`, inside that network namespace through `ip netns exec`. */
export function spawnRunner(netns?: string): CommandRunner {
  return (command, args, input) =>
    new Promise((resolve, reject) => {
      const [cmd, argv] = netns === undefined ? [command, [...args]] : ['ip', ['netns', 'exec', netns, command, ...args]];
      const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', (cause) => reject(new TrellisError('TRELLIS_ERR_CAPTURE_COMMAND', `cannot run ${command}: ${cause.message}`, { cause })));
      child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
      child.stdin.on('error', () => undefined);
      child.stdin.end(input ?? '');
    });
}

interface Tools {
  readonly iptables: string;
  readonly restore: string;
}

const TOOLS: Readonly<Record<4 | 6, Tools>> = Object.freeze({
  4: { iptables: 'iptables', restore: 'iptables-restore' },
  6: { iptables: 'ip6tables', restore: 'ip6tables-restore' },
});

async function must(run: CommandRunner, command: string, args: readonly string[], input?: string): Promise<CommandResult> {
  const r = await run(command, args, input);
  if (r.code !== 0) {
    throw new TrellisError('TRELLIS_ERR_CAPTURE_COMMAND', `${command} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r;
}

const jumpArgs = (j: JumpRule, op: '-C' | '-I' | '-D'): string[] => ['-w', '-t', j.table, op, j.chain, ...(op === '-I' ? ['1'] : []), ...j.spec];

async function installFamily(run: CommandRunner, tools: Tools, lines: readonly string[]): Promise<void> {
  const { ownChains, jumps } = splitRules(lines);
  await must(run, tools.restore, ['-w', '--noflush'], ownChains);
  // Insert in reverse so that, when several jumps land in one chain, they end up in declaration order.
  for (const j of [...jumps].reverse()) {
    if ((await run(tools.iptables, jumpArgs(j, '-C'))).code === 0) continue;
    await must(run, tools.iptables, jumpArgs(j, '-I'));
  }
}

/** Whether the kernel has IPv6 (the file is absent when IPv6 is disabled with `ipv6.disable=1`). */
export const kernelHasIpv6 = (): boolean => existsSync('/proc/net/if_inet6');

export interface ApplyEnvironment {
  /** Default: `kernelHasIpv6`. When false, IPv6 is skipped even if asked for (there is nothing to capture). */
  readonly ipv6Available?: () => boolean;
}

/** What was applied: IPv4 always, IPv6 when asked for and the kernel has it. */
export interface ApplyResult {
  readonly ipv6: boolean;
}

/** Installs (or refreshes) the rules; running it again changes nothing. */
export async function installCapture(options: Partial<CaptureOptions>, run: CommandRunner = spawnRunner(), env: ApplyEnvironment = {}): Promise<ApplyResult> {
  const o = resolveCaptureOptions(options);
  const rules = captureRules(o);
  const ipv6 = o.ipv6 && (env.ipv6Available ?? kernelHasIpv6)();
  await installFamily(run, TOOLS[4], rules.v4);
  if (ipv6) {
    await installFamily(run, TOOLS[6], rules.v6);
    // The proxy's inbound connections come from ::6 (as from 127.0.0.6, which lo has as part of 127/8); IPv6 lo
    // only has ::1, so the address is added (Istio's istio-iptables does the same). `replace` keeps it idempotent.
    await must(run, 'ip', ['-6', 'addr', 'replace', INBOUND_SOURCE_V6, 'dev', 'lo']);
  }
  return Object.freeze({ ipv6 });
}

const INBOUND_SOURCE_V6 = '::6/128';

/** The rules of built-in chains that jump to a Trellis chain, as `iptables-save` prints them. */
function trellisJumps(saved: string, table: string): JumpRule[] {
  const out: JumpRule[] = [];
  for (const line of saved.split('\n')) {
    const m = /^-A (\S+) (.*-j (\S+).*)$/.exec(line);
    if (m === null || isTrellisChain(m[1]!) || !isTrellisChain(m[3]!)) continue;
    out.push({ table, chain: m[1]!, spec: m[2]!.split(/\s+/) });
  }
  return out;
}

async function uninstallFamily(run: CommandRunner, tools: Tools, saveCommand: string): Promise<void> {
  for (const table of TRELLIS_TABLES) {
    const saved = await run(saveCommand, ['-t', table]);
    if (saved.code !== 0) {
      throw new TrellisError('TRELLIS_ERR_CAPTURE_COMMAND', `${saveCommand} -t ${table} failed (exit ${saved.code}): ${saved.stderr.trim()}`);
    }
    // Every jump into a Trellis chain from a built-in chain, whatever options installed it.
    for (const j of trellisJumps(saved.stdout, table)) {
      while ((await run(tools.iptables, jumpArgs(j, '-C'))).code === 0) await must(run, tools.iptables, jumpArgs(j, '-D'));
    }
    const present = [...saved.stdout.matchAll(/^:(TRELLIS_\S+) /gm)].map((m) => m[1]!);
    for (const c of present) await must(run, tools.iptables, ['-w', '-t', table, '-F', c]);
    for (const c of present) await must(run, tools.iptables, ['-w', '-t', table, '-X', c]);
  }
}

/**
 * Removes every Trellis jump rule and chain (IPv4, and IPv6 unless `ipv6: false`); leaves everything else alone.
 * Safe to run when nothing is installed.
 */
export async function uninstallCapture(options: { readonly ipv6?: boolean } = {}, run: CommandRunner = spawnRunner(), env: ApplyEnvironment = {}): Promise<ApplyResult> {
  const ipv6 = options.ipv6 !== false && (env.ipv6Available ?? kernelHasIpv6)();
  await uninstallFamily(run, TOOLS[4], 'iptables-save');
  if (ipv6) {
    await uninstallFamily(run, TOOLS[6], 'ip6tables-save');
    await run('ip', ['-6', 'addr', 'del', INBOUND_SOURCE_V6, 'dev', 'lo']); // absent already: nothing to do
  }
  return Object.freeze({ ipv6 });
}
