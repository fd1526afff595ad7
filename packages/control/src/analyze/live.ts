/**
 * Findings from a running control plane (`trellisctl analyze --control URL`): the live conflicts between registry
 * shards (`/debug/conflicts`), stale shards and the invalid items shards dropped (`/debug/registryz`). Pure: the
 * CLI fetches the two documents and passes them in. The finding's `file` is `<shard>` or `<namespace>/<hostname>`
 * prefixed with `live:`, so these lines sort apart from file findings.
 */
import { CODES, compareFindings, type Finding } from './findings.js';

export interface LiveConflict {
  readonly hostname: string;
  readonly namespace: string;
  readonly field: string;
  readonly values: readonly { readonly shard: string; readonly value: unknown }[];
  readonly winner: string;
}

export interface LiveShard {
  readonly shard: string;
  readonly state: string;
  readonly lastError?: string;
  readonly staleSince?: string;
  readonly problems?: readonly { readonly file?: string; readonly line?: number; readonly path: string; readonly message: string }[];
}

export function liveFindings(conflicts: readonly LiveConflict[], shards: readonly LiveShard[]): Finding[] {
  const out: Finding[] = [];
  for (const c of conflicts) {
    out.push({
      ...CODES.registryConflict, file: `live:${c.namespace}/${c.hostname}`, line: 0, path: c.field,
      message: `registry shards disagree on ${c.field}: ${c.values.map((v) => `${v.shard}=${JSON.stringify(v.value)}`).join(' vs ')}; ${c.winner} wins`,
    });
  }
  for (const s of shards) {
    if (s.state === 'stale') {
      out.push({
        ...CODES.registryStale, file: `live:${s.shard}`, line: 0, path: '',
        message: `shard is stale${s.staleSince ? ` since ${s.staleSince}` : ''} (serving its last-known state): ${s.lastError ?? 'unknown error'}`,
      });
    }
    for (const p of s.problems ?? []) {
      out.push({ ...CODES.registryProblem, file: `live:${s.shard}`, line: 0, path: p.path, message: `${p.file ? `${p.file}: ` : ''}${p.message}` });
    }
  }
  return out.sort(compareFindings);
}
