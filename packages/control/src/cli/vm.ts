/**
 * `trellisctl vm`: onboarding of VMs and bare-metal hosts (docs/vm-onboarding.md).
 *
 *   vm configure --workload-group NAME --namespace NS --out DIR   writes the bundle a VM needs:
 *       mesh.yaml      mesh settings read by trellis-agent (flat `key: value`, values JSON-quoted)
 *       root-cert.pem  the mesh trust bundle (the VM verifies the control plane against it)
 *       token          a fresh single-use join token (0600)
 *       agent.env      TRELLIS_* environment for the agent's systemd unit (EnvironmentFile=)
 *       probe.json     the WorkloadGroup's readiness probe, when it has one (the agent runs it; see auto-registration)
 *   vm token --workload-group NAME --namespace NS [--out DIR]      mints another token (into DIR/token, or stdout)
 *   vm tokens                                                      lists tokens
 *   vm revoke ID                                                   revokes one
 *
 * All talk to the control plane's HTTP token API (`--control`, default http://127.0.0.1:15014).
 * Exit status: 0 done, 1 the control plane refused or could not be reached, 2 bad arguments.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { TrellisError } from '@trellis/model';
import { DEFAULT_CONTROL_URL, table } from './control-client.js';
import { UsageError } from './program.js';
import { registerVmInstall } from './vm-install.js';

export interface MeshInfo {
  readonly trustDomain: string;
  readonly clusterId: string;
  readonly network: string;
  readonly xdsAddress: string;
  readonly rootCertsPem: string;
}

export interface MintedToken {
  readonly id: string;
  readonly token: string;
  readonly expiresAt: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly workloadGroup: string;
}

interface TokenRow {
  readonly id: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly workloadGroup: string;
  readonly expiresAt: string;
  readonly used: boolean;
  readonly revoked: boolean;
}

export interface VmIo {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
}

/** Where the bundle is expected on the VM when none is given (the agent's default `--bundle`). */
export const DEFAULT_VM_BUNDLE_DIR = '/etc/trellis';

/** `90`, `90s`, `10m`, `1h30m` → seconds; UsageError otherwise. */
export function parseDuration(value: string, flag: string): number {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const re = /(\d+)(h|m|s)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== text.length) throw new UsageError(`${flag}: "${value}" is not a duration (use e.g. 90s, 10m, 1h)`);
  return total;
}

/** Checks `HOST:PORT` (DNS name, IPv4, or `[IPv6]`); UsageError otherwise. */
export function checkHostPort(value: string, flag: string): string {
  const m = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$/.exec(value);
  if (!m || Number(m[1]) > 65535 || Number(m[1]) === 0) throw new UsageError(`${flag}: "${value}" is not HOST:PORT`);
  return value;
}

const q = (v: string): string => JSON.stringify(v);

/** mesh.yaml: the agent's strict flat format (see the node agent's bundle.ts). */
export function renderMeshYaml(mesh: MeshInfo, token: Pick<MintedToken, 'namespace' | 'serviceAccount' | 'workloadGroup'>, xdsAddress: string): string {
  return [
    '# Trellis mesh settings for a VM, written by `trellisctl vm configure`; read by trellis-agent --bundle.',
    'apiVersion: trellis.dev/v1alpha1',
    'kind: VmMesh',
    `xdsAddress: ${q(xdsAddress)}`,
    `trustDomain: ${q(mesh.trustDomain)}`,
    `namespace: ${q(token.namespace)}`,
    `serviceAccount: ${q(token.serviceAccount)}`,
    `workloadGroup: ${q(token.workloadGroup)}`,
    `clusterId: ${q(mesh.clusterId)}`,
    `network: ${q(mesh.network)}`,
    '',
  ].join('\n');
}

/** agent.env: systemd EnvironmentFile for trellis-agent (and facts for the proxy on the same host). */
export function renderAgentEnv(mesh: MeshInfo, token: Pick<MintedToken, 'namespace' | 'serviceAccount' | 'workloadGroup'>, xdsAddress: string, bundleDir: string): string {
  const line = (k: string, v: string): string => `${k}=${/^[A-Za-z0-9_./:@[\]-]*$/.test(v) ? v : q(v)}`;
  return [
    '# trellis-agent environment (systemd EnvironmentFile=), written by `trellisctl vm configure`.',
    '# Agent settings; each also has a flag (trellis-agent --help).',
    line('TRELLIS_BUNDLE_DIR', bundleDir),
    line('TRELLIS_STATE_DIR', '/var/lib/trellis'),
    line('TRELLIS_SDS_SOCKET', '/var/run/trellis/sds/socket'),
    line('TRELLIS_LISTEN_HTTP', '127.0.0.1:15020'),
    '# Mesh facts for the proxy and tools on this host (the agent reads them from mesh.yaml).',
    line('TRELLIS_XDS_ADDRESS', xdsAddress),
    line('TRELLIS_TRUST_DOMAIN', mesh.trustDomain),
    line('TRELLIS_NAMESPACE', token.namespace),
    line('TRELLIS_SERVICE_ACCOUNT', token.serviceAccount),
    line('TRELLIS_WORKLOAD_GROUP', token.workloadGroup),
    line('TRELLIS_CLUSTER_ID', mesh.clusterId),
    line('TRELLIS_NETWORK', mesh.network),
    '',
  ].join('\n');
}

/** One JSON request to the control plane; non-2xx answers become TRELLIS_ERR_CONTROL_RESPONSE with the server's message. */
async function call<T>(control: string, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T | undefined> {
  const url = new URL(path, control.endsWith('/') ? control : `${control}/`);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (cause) {
    const reason = (cause as { cause?: { code?: string } }).cause?.code ?? (cause as Error).message;
    throw new TrellisError('TRELLIS_ERR_CONTROL_UNREACHABLE', `cannot reach the control plane at ${control} (${reason})`, { cause });
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new TrellisError('TRELLIS_ERR_CONTROL_RESPONSE', `${method} ${url.pathname}: HTTP ${res.status}, not JSON`);
  }
  if (!res.ok) {
    const e = (parsed ?? {}) as { code?: string; message?: string };
    throw new TrellisError('TRELLIS_ERR_CONTROL_RESPONSE', `${method} ${url.pathname}: ${e.message ?? `HTTP ${res.status}`}${e.code ? ` (${e.code})` : ''}`);
  }
  return parsed as T | undefined;
}

async function mint(control: string, namespace: string, workloadGroup: string, ttl: string | undefined): Promise<MintedToken> {
  const body: Record<string, unknown> = { namespace, workloadGroup };
  if (ttl !== undefined) body.ttlSeconds = parseDuration(ttl, '--token-ttl');
  const minted = await call<MintedToken>(control, 'POST', '/v1/tokens', body);
  if (!minted || typeof minted.token !== 'string') throw new TrellisError('TRELLIS_ERR_CONTROL_RESPONSE', 'POST /v1/tokens: no token in the answer');
  return minted;
}

function writeToken(dir: string, token: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'token');
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

/** Runs a subcommand body, turning control-plane errors into `trellisctl: message` and exit status 1. */
function guarded(io: VmIo, body: () => Promise<void>): Promise<void> {
  return body().catch((err: unknown) => {
    if (!(err instanceof TrellisError)) throw err;
    io.err.write(`trellisctl: ${err.message}\n`);
    process.exitCode = 1;
  });
}

interface ConfigureOptions {
  workloadGroup: string;
  namespace: string;
  out: string;
  control: string;
  xdsAddress?: string;
  tokenTtl?: string;
  bundleDir: string;
}

export function registerVm(program: Command, io: VmIo = { out: process.stdout, err: process.stderr }): void {
  const vm = program.command('vm').description('Onboard VMs and bare-metal hosts: bundles and join tokens');
  registerVmInstall(vm, io);

  vm.command('configure')
    .description('Write the bundle a VM needs (mesh.yaml, root-cert.pem, token, agent.env) into --out')
    .requiredOption('--workload-group <name>', 'WorkloadGroup the VM joins (its template names the service account)')
    .requiredOption('-n, --namespace <ns>', 'namespace of the WorkloadGroup')
    .requiredOption('--out <dir>', 'directory to write the bundle into (created 0700)')
    .option('--control <url>', 'control plane HTTP address', DEFAULT_CONTROL_URL)
    .option('--xds-address <host:port>', 'control plane address the VM dials (DNS name or IP; default: the control plane\'s own)')
    .option('--token-ttl <duration>', 'join token lifetime, e.g. 10m (default: the control plane\'s, 10m)')
    .option('--bundle-dir <dir>', 'where the bundle will live on the VM (TRELLIS_BUNDLE_DIR in agent.env)', DEFAULT_VM_BUNDLE_DIR)
    .action((opts: ConfigureOptions) => guarded(io, async () => {
      if (opts.xdsAddress !== undefined) checkHostPort(opts.xdsAddress, '--xds-address');
      if (opts.tokenTtl !== undefined) parseDuration(opts.tokenTtl, '--token-ttl');
      const mesh = await call<MeshInfo>(opts.control, 'GET', '/v1/mesh');
      if (!mesh?.rootCertsPem) throw new TrellisError('TRELLIS_ERR_CONTROL_RESPONSE', 'GET /v1/mesh: no rootCertsPem (is the CA running?)');
      const xdsAddress = opts.xdsAddress ?? mesh.xdsAddress;
      if (!xdsAddress) throw new UsageError('the control plane reports no xDS address (no --listen-xds?); pass --xds-address HOST:PORT');
      if (/^(0\.0\.0\.0|\[::\]|\[::0\]):/.test(xdsAddress)) {
        throw new UsageError(`the control plane listens on ${xdsAddress}, which a VM cannot dial; pass --xds-address with its DNS name or IP`);
      }
      const token = await mint(opts.control, opts.namespace, opts.workloadGroup, opts.tokenTtl);
      mkdirSync(opts.out, { recursive: true, mode: 0o700 });
      writeFileSync(join(opts.out, 'mesh.yaml'), renderMeshYaml(mesh, token, xdsAddress), { mode: 0o644 });
      writeFileSync(join(opts.out, 'root-cert.pem'), mesh.rootCertsPem.endsWith('\n') ? mesh.rootCertsPem : `${mesh.rootCertsPem}\n`, { mode: 0o644 });
      writeFileSync(join(opts.out, 'agent.env'), renderAgentEnv(mesh, token, xdsAddress, opts.bundleDir), { mode: 0o644 });
      writeToken(opts.out, token.token);
      // The group's readiness probe travels in the bundle (probe.json); the agent runs it and reports over ADS.
      const group = await call<{ probe?: unknown }>(opts.control, 'GET', `/v1/workloadgroups/${encodeURIComponent(opts.namespace)}/${encodeURIComponent(opts.workloadGroup)}`).catch(() => undefined);
      const probeFile = join(opts.out, 'probe.json');
      if (group?.probe) writeFileSync(probeFile, `${JSON.stringify(group.probe, null, 2)}\n`, { mode: 0o644 });
      else rmSync(probeFile, { force: true });
      io.out.write([
        `Wrote ${opts.out}: mesh.yaml root-cert.pem agent.env token${group?.probe ? ' probe.json' : ''}`,
        `  identity:   spiffe://${mesh.trustDomain}/ns/${token.namespace}/sa/${token.serviceAccount}`,
        `  xDS and CA: ${xdsAddress}`,
        `  token:      ${token.id} (single use, expires ${token.expiresAt})`,
        `Copy the directory to the VM as ${opts.bundleDir} and start the agent: trellis-agent --bundle ${opts.bundleDir}`,
        '',
      ].join('\n'));
    }));

  vm.command('token')
    .description('Mint another join token: into DIR/token with --out, else print it on stdout')
    .requiredOption('--workload-group <name>', 'WorkloadGroup the VM joins')
    .requiredOption('-n, --namespace <ns>', 'namespace of the WorkloadGroup')
    .option('--out <dir>', 'bundle directory to write the token into (0600)')
    .option('--control <url>', 'control plane HTTP address', DEFAULT_CONTROL_URL)
    .option('--token-ttl <duration>', 'join token lifetime, e.g. 10m')
    .action((opts: { workloadGroup: string; namespace: string; out?: string; control: string; tokenTtl?: string }) => guarded(io, async () => {
      const token = await mint(opts.control, opts.namespace, opts.workloadGroup, opts.tokenTtl);
      if (opts.out) {
        const path = writeToken(opts.out, token.token);
        io.out.write(`Wrote ${path}: token ${token.id} for ${token.namespace}/${token.serviceAccount} (single use, expires ${token.expiresAt})\n`);
      } else {
        io.out.write(`${token.token}\n`);
        io.err.write(`token ${token.id} for ${token.namespace}/${token.serviceAccount} (single use, expires ${token.expiresAt})\n`);
      }
    }));

  vm.command('tokens')
    .description('List join tokens (never their secret values)')
    .option('--control <url>', 'control plane HTTP address', DEFAULT_CONTROL_URL)
    .option('-o, --output <format>', 'table or json', 'table')
    .action((opts: { control: string; output: string }) => guarded(io, async () => {
      const rows = (await call<TokenRow[]>(opts.control, 'GET', '/v1/tokens')) ?? [];
      if (opts.output === 'json') io.out.write(`${JSON.stringify(rows, null, 2)}\n`);
      else {
        io.out.write(table(['ID', 'NAMESPACE', 'SERVICE ACCOUNT', 'WORKLOAD GROUP', 'EXPIRES', 'STATE'], rows.map((r) => [
          r.id, r.namespace, r.serviceAccount, r.workloadGroup, r.expiresAt, r.revoked ? 'revoked' : r.used ? 'used' : 'unused',
        ])));
      }
    }));

  vm.command('revoke')
    .description('Revoke a join token by id')
    .argument('<id>', 'token id (from vm configure, vm token or vm tokens)')
    .option('--control <url>', 'control plane HTTP address', DEFAULT_CONTROL_URL)
    .action((id: string, opts: { control: string }) => guarded(io, async () => {
      await call(opts.control, 'DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
      io.out.write(`revoked token ${id}\n`);
    }));
}
