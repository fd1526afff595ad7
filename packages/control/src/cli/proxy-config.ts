/**
 * `trellisctl proxy-config listeners|routes|clusters|endpoints PROXY [-o json]`: what the control plane generates
 * for one connected proxy, from `/debug/config_dump?proxy=ID`, as istioctl-like tables. PROXY is the node id, the
 * connection id, or any unique substring of a connected node id.
 */
import type { Command } from 'commander';
import { TrellisError } from '@trellis/model';
import { DEFAULT_CONTROL_URL, getJson, table } from './control-client.js';
import type { Syncz } from './proxy-status.js';

type Obj = Record<string, unknown>;
interface Dump { readonly proxy: { readonly id: string }; readonly version: string; readonly types: Record<string, readonly { name: string; body: Obj }[]> }

const o = (v: unknown): Obj => (v !== null && typeof v === 'object' ? (v as Obj) : {});
const a = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const s = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

/** A `UInt32Value` (`{value}`) or a bare number. */
function weight(v: unknown): string {
  const n = v !== null && typeof v === 'object' ? (v as Obj).value : v;
  return n === undefined || n === null ? '-' : String(n);
}

function socket(addr: unknown): { address: string; port: string } {
  const sa = o(o(addr).socket_address);
  return { address: s(sa.address), port: s(sa.port_value) };
}

function hcmOf(filter: Obj): Obj | undefined {
  const tc = o(filter.typed_config);
  return s(tc['@type']).endsWith('HttpConnectionManager') ? tc : undefined;
}

export function listenerRows(list: readonly { name: string; body: Obj }[]): string[][] {
  const rows: string[][] = [];
  for (const { name, body } of list) {
    const api = o(o(body.api_listener).api_listener);
    if (Object.keys(api).length > 0) {
      const rds = o(api.rds).route_config_name;
      rows.push([name, '-', '-', 'proxyless API listener', rds ? `Route: ${s(rds)}` : 'inline route']);
      continue;
    }
    const { address, port } = socket(body.address);
    const chains = a(body.filter_chains).map(o);
    if (chains.length === 0) rows.push([name, address, port, 'ALL', '-']);
    for (const fc of chains) {
      const m = o(fc.filter_chain_match);
      const match = [
        a(m.prefix_ranges).length ? `addr ${a(m.prefix_ranges).map((p) => `${s(o(p).address_prefix)}/${s(o(p).prefix_len)}`).join(',')}` : '',
        m.destination_port ? `port ${s(m.destination_port)}` : '',
        a(m.server_names).length ? `SNI ${a(m.server_names).join(',')}` : '',
        m.transport_protocol ? `${s(m.transport_protocol)}` : '',
        a(m.application_protocols).length ? `ALPN ${a(m.application_protocols).join(',')}` : '',
      ].filter(Boolean).join('; ') || 'ALL';
      const dest = a(fc.filters).map(o).map((f) => {
        const hcm = hcmOf(f);
        if (hcm) return hcm.rds ? `Route: ${s(o(hcm.rds).route_config_name)}` : 'Route: inline';
        const tc = o(f.typed_config);
        return tc.cluster ? `Cluster: ${s(tc.cluster)}` : s(f.name);
      }).join(', ');
      rows.push([name, address, port, match, dest || '-']);
    }
  }
  return rows;
}

export function routeRows(list: readonly { name: string; body: Obj }[], listeners: readonly { name: string; body: Obj }[]): string[][] {
  const rows: string[][] = [];
  const emit = (rcName: string, rc: Obj): void => {
    for (const vh of a(rc.virtual_hosts).map(o)) {
      const domains = a(vh.domains).map(s);
      const dom = domains.length > 3 ? `${domains.slice(0, 2).join(', ')} + ${domains.length - 2} more` : domains.join(', ');
      const routes = a(vh.routes).map(o);
      if (routes.length === 0) rows.push([rcName, s(vh.name), dom, '-', '-']);
      for (const r of routes) {
        const m = o(r.match);
        const path = m.prefix !== undefined ? `${s(m.prefix)}*` : m.path !== undefined ? s(m.path) : m.safe_regex ? `~${s(o(m.safe_regex).regex)}` : m.path_separated_prefix ? `${s(m.path_separated_prefix)}/*` : '/*';
        const hdrs = a(m.headers).map(o).map((h) => `${s(h.name)}`);
        const action = o(r.route);
        const wc = a(o(action.weighted_clusters).clusters).map(o);
        const to = action.cluster ? s(action.cluster) : wc.length ? wc.map((c) => `${s(c.name)} ${s(c.weight)}`).join(', ') : r.direct_response ? `direct ${s(o(r.direct_response).status)}` : r.redirect ? 'redirect' : '-';
        rows.push([rcName, s(vh.name), dom, hdrs.length ? `${path} [headers ${hdrs.join(',')}]` : path, to]);
      }
    }
  };
  for (const { name, body } of list) emit(name, body);
  // Proxyless listeners may carry their route config inline.
  for (const { name, body } of listeners) {
    const rc = o(o(o(body.api_listener).api_listener).route_config);
    if (Object.keys(rc).length > 0) emit(s(rc.name) || `${name} (inline)`, rc);
  }
  return rows;
}

export function clusterRows(list: readonly { name: string; body: Obj }[]): string[][] {
  return list.map(({ name, body }) => {
    const parts = name.split('|');
    const [direction, port, subset, host] = parts.length === 4 ? parts : ['-', '-', '-', name];
    return [host || '-', port || '-', subset || '-', direction, s(body.type) || (body.cluster_type ? 'CUSTOM' : 'EDS'), s(body.lb_policy) || 'ROUND_ROBIN'];
  });
}

export function endpointRows(list: readonly { name: string; body: Obj }[]): string[][] {
  const rows: string[][] = [];
  for (const { name, body } of list) {
    for (const le of a(body.endpoints).map(o)) {
      const loc = o(le.locality);
      const locality = [loc.region, loc.zone, loc.sub_zone].map(s).join('/');
      for (const lb of a(le.lb_endpoints).map(o)) {
        const { address, port } = socket(o(lb.endpoint).address);
        rows.push([`${address}:${port}`, s(lb.health_status) || 'HEALTHY', locality === '//' ? '-' : locality, weight(lb.load_balancing_weight ?? le.load_balancing_weight), s(body.cluster_name) || name]);
      }
    }
  }
  return rows;
}

const KINDS = { listeners: 'LDS', routes: 'RDS', clusters: 'CDS', endpoints: 'EDS' } as const;
type What = keyof typeof KINDS;

export function renderProxyConfig(what: What, dump: Dump): string {
  const t = (k: string): readonly { name: string; body: Obj }[] => dump.types[k] ?? [];
  switch (what) {
    case 'listeners': return table(['NAME', 'ADDRESS', 'PORT', 'MATCH', 'DESTINATION'], listenerRows(t('LDS')));
    case 'routes': return table(['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'DESTINATION'], routeRows(t('RDS'), t('LDS')));
    case 'clusters': return table(['SERVICE FQDN', 'PORT', 'SUBSET', 'DIRECTION', 'TYPE', 'LB POLICY'], clusterRows(t('CDS')));
    case 'endpoints': return table(['ENDPOINT', 'STATUS', 'LOCALITY', 'WEIGHT', 'CLUSTER'], endpointRows(t('EDS')));
  }
}

/** Resolves PROXY to a connected node id: exact id, connection id, or a unique substring. */
async function resolveProxy(control: string, arg: string): Promise<string> {
  const syncz = await getJson<Syncz>(control, '/debug/syncz');
  const exact = syncz.proxies.find((p) => p.proxy === arg || p.connection === arg);
  if (exact) return exact.proxy;
  const partial = [...new Set(syncz.proxies.filter((p) => p.proxy.includes(arg)).map((p) => p.proxy))];
  if (partial.length === 1) return partial[0];
  if (partial.length > 1) throw new TrellisError('TRELLIS_ERR_AMBIGUOUS_PROXY', `${arg} matches ${partial.length} proxies: ${partial.join(', ')}`);
  throw new TrellisError('TRELLIS_ERR_NOT_FOUND', `no connected proxy matches ${arg} (see trellisctl proxy-status)`);
}

export function registerProxyConfig(program: Command): void {
  const pc = program.command('proxy-config').description('Show the xDS config the control plane generates for one connected proxy');
  for (const what of Object.keys(KINDS) as What[]) {
    pc.command(`${what} <proxy>`)
      .description(`${KINDS[what]} resources for PROXY (node id, connection id or a unique part of the node id)`)
      .option('--control <url>', 'control plane HTTP address', DEFAULT_CONTROL_URL)
      .option('-o, --output <format>', 'table or json', 'table')
      .action(async (proxy: string, opts: { control: string; output: string }) => {
        try {
          const id = await resolveProxy(opts.control, proxy);
          const dump = await getJson<Dump>(opts.control, `/debug/config_dump?proxy=${encodeURIComponent(id)}`);
          process.stdout.write(opts.output === 'json' ? JSON.stringify(dump.types[KINDS[what]] ?? [], null, 2) + '\n' : renderProxyConfig(what, dump));
        } catch (err) {
          if (!(err instanceof TrellisError)) throw err;
          process.stderr.write(`trellisctl: ${err.message}\n`);
          process.exitCode = 1;
        }
      });
  }
}
