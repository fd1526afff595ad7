/**
 * `trellisctl proxy-status`: one row per connected proxy with the sync state of CDS, LDS, EDS and RDS
 * (SYNCED, NOT SENT, STALE, NACKED), then the node agents' own streams (the DNS name table over NDS, the
 * auto-registration stream, which subscribes to nothing), the NACK errors, and the control plane's version.
 * Reads `/debug/syncz`.
 */
import type { Command } from 'commander';
import { TrellisError } from '@trellis/model';
import { DEFAULT_CONTROL_URL, getJson, table } from './control-client.js';

export interface SynczTypes {
  readonly short: string;
  readonly state: string;
  /** Resource names asked for (`*` = wildcard); empty when the stream never asked for the type. */
  readonly subscribed?: readonly string[] | '*';
  readonly sentVersion?: string;
  readonly ackedVersion?: string;
  readonly nack?: { readonly version: string; readonly message: string; readonly at: string };
}
export interface SynczProxy {
  readonly proxy: string;
  readonly connection: string;
  readonly clusterId: string;
  readonly type: string;
  readonly types: readonly SynczTypes[];
}
export interface Syncz {
  readonly controlPlaneVersion: string;
  readonly snapshotVersion?: string;
  readonly proxies: readonly SynczProxy[];
}

const COLUMNS = ['CDS', 'LDS', 'EDS', 'RDS'] as const;

/** Whether a stream asked for a type (a type the server lists with nothing asked for is just never sent). */
function asked(t: SynczTypes | undefined): boolean {
  if (t === undefined) return false;
  if (t.subscribed === undefined) return t.state !== 'NOT SENT';
  return t.subscribed === '*' || t.subscribed.length > 0 || t.state !== 'NOT SENT';
}

/** A proxy's stream asks for at least one of CDS/LDS/EDS/RDS; the agent's DNS and registration streams don't. */
function isProxyStream(p: SynczProxy): boolean {
  return COLUMNS.some((c) => asked(p.types.find((t) => t.short === c)));
}

/** The human rendering (pure, for tests). */
export function renderProxyStatus(s: Syncz): string {
  const proxies = s.proxies.filter(isProxyStream);
  const agents = s.proxies.filter((p) => !isProxyStream(p));
  const rows = proxies.map((p) => [
    p.proxy,
    p.clusterId || '-',
    ...COLUMNS.map((c) => p.types.find((t) => t.short === c)?.state ?? 'NOT SENT'),
    `trellis-control ${s.controlPlaneVersion}`,
  ]);
  let out = table(['NAME', 'CLUSTER', ...COLUMNS, 'VERSION'], rows);
  if (proxies.length === 0) out += '(no proxies connected)\n';
  if (agents.length > 0) {
    const agentRows = agents.map((p) => {
      const streams = p.types.filter(asked);
      const what = streams.length === 0 ? 'registration' : streams.map((t) => (t.short === 'NDS' ? 'DNS name table' : t.short)).join(', ');
      return [p.proxy, p.clusterId || '-', what, streams.length === 0 ? 'CONNECTED' : streams.map((t) => t.state).join(', ')];
    });
    out += '\nNode agent streams:\n' + table(['NAME', 'CLUSTER', 'STREAM', 'STATE'], agentRows);
  }
  const nacks = s.proxies.flatMap((p) => p.types.filter((t) => t.state === 'NACKED' && t.nack).map((t) => ({ p, t })));
  if (nacks.length > 0) {
    out += '\nNACK errors:\n';
    for (const { p, t } of nacks) out += `  ${p.proxy} ${t.short} (rejected version ${t.nack!.version}, at ${t.nack!.at}): ${t.nack!.message}\n`;
  }
  out += `\ncontrol plane trellis-control ${s.controlPlaneVersion}, snapshot ${s.snapshotVersion ?? '(none yet)'}\n`;
  return out;
}

export function registerProxyStatus(program: Command): void {
  program
    .command('proxy-status')
    .description('Show, for every connected proxy, whether CDS/LDS/EDS/RDS are SYNCED, NOT SENT, STALE or NACKED')
    .option('--control <url>', 'control plane HTTP address', DEFAULT_CONTROL_URL)
    .option('-o, --output <format>', 'table or json', 'table')
    .action(async (opts: { control: string; output: string }) => {
      try {
        const s = await getJson<Syncz>(opts.control, '/debug/syncz');
        process.stdout.write(opts.output === 'json' ? JSON.stringify(s, null, 2) + '\n' : renderProxyStatus(s));
      } catch (err) {
        if (!(err instanceof TrellisError)) throw err;
        process.stderr.write(`trellisctl: ${err.message}\n`);
        process.exitCode = 1;
      }
    });
}
