/**
 * `trellisctl registry status`: each registry shard's state (syncing, synced, stale), last change, last error and
 * counts, from `/debug/registryz`, and the conflicts between shards from `/debug/conflicts`.
 */
import type { Command } from 'commander';
import { TrellisError } from '@trellis/model';
import { DEFAULT_CONTROL_URL, getJson, table } from './control-client.js';

export interface RegistryzShard {
  readonly shard: string;
  readonly kind: string;
  readonly state: string;
  readonly lastError?: string;
  readonly staleSince?: string;
  readonly lastChange?: string;
  readonly problems: readonly { readonly file?: string; readonly line?: number; readonly path: string; readonly message: string }[];
  readonly counts: { readonly services: number; readonly workloads: number; readonly configs: number };
}
export interface Conflictz {
  readonly conflicts: readonly { hostname: string; namespace: string; field: string; values: { shard: string; value: unknown }[]; winner: string }[];
}

export function renderRegistryStatus(shards: readonly RegistryzShard[], conflicts: Conflictz['conflicts']): string {
  let out = table(
    ['SHARD', 'KIND', 'STATE', 'SERVICES', 'WORKLOADS', 'CONFIGS', 'LAST CHANGE', 'LAST ERROR'],
    shards.map((s) => [
      s.shard, s.kind, s.state === 'stale' && s.staleSince ? `stale since ${s.staleSince}` : s.state,
      String(s.counts.services), String(s.counts.workloads), String(s.counts.configs), s.lastChange ?? '-', s.lastError ?? '-',
    ]),
  );
  const problems = shards.flatMap((s) => s.problems.map((p) => ({ s, p })));
  if (problems.length > 0) {
    out += '\nProblems (invalid items dropped or kept at their last good version):\n';
    for (const { s, p } of problems) out += `  ${s.shard}: ${p.file ?? ''}${p.line ? `:${p.line}` : ''} ${p.path ? `${p.path}: ` : ''}${p.message}\n`;
  }
  if (conflicts.length > 0) {
    out += '\nConflicts (same service from several shards; the winner is used):\n';
    for (const c of conflicts) {
      out += `  ${c.namespace}/${c.hostname} ${c.field}: ${c.values.map((v) => `${v.shard}=${JSON.stringify(v.value)}`).join(' vs ')} → ${c.winner}\n`;
    }
  }
  return out;
}

export function registerRegistryStatus(program: Command): void {
  const registry = program.commands.find((c) => c.name() === 'registry') ?? program.command('registry').description('Inspect the registries the control plane merges');
  registry
    .command('status')
    .description('Show each registry shard: state, last change, last error, counts, and conflicts between shards')
    .option('--control <url>', 'control plane HTTP address', DEFAULT_CONTROL_URL)
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (opts: { control: string; output: string }) => {
      try {
        const r = await getJson<{ shards: RegistryzShard[] }>(opts.control, '/debug/registryz');
        const c = await getJson<Conflictz>(opts.control, '/debug/conflicts');
        process.stdout.write(opts.output === 'json' ? JSON.stringify({ shards: r.shards, conflicts: c.conflicts }, null, 2) + '\n' : renderRegistryStatus(r.shards, c.conflicts));
      } catch (err) {
        if (!(err instanceof TrellisError)) throw err;
        process.stderr.write(`trellisctl: ${err.message}\n`);
        process.exitCode = 1;
      }
    });
}
