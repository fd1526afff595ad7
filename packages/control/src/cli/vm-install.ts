/**
 * `trellisctl vm install --bundle DIR [--dry-run] [--prefix DIR]`: turns a host into a mesh VM from the bundle
 * written by `trellisctl vm configure` (docs/systemd.md):
 *
 *   1. the `trellis-proxy` system user and group, uid/gid 1337 (the ids the capture rules exempt; the agent runs
 *      with that gid as its primary group);
 *   2. `/etc/trellis/`: mesh.yaml and root-cert.pem 0644, agent.env 0640, token 0600 (where the agent reads it,
 *      and deletes it once redeemed);
 *   3. `/opt/trellis` → the Trellis tree this trellisctl runs from (left alone if it exists), and
 *      `/usr/local/bin/{trellis-agent,trellis-proxy,trellisctl}` → its bins;
 *   4. `trellis-agent.service` and `trellis-proxy.service` into `/etc/systemd/system`;
 *   5. `systemctl daemon-reload` (only when a unit changed) and `systemctl enable` (only when not enabled).
 *
 * The plan is computed from the target's current state, so a re-run prints `ok` lines and changes nothing.
 * `--dry-run` prints the same lines and changes nothing. `--prefix DIR` installs under another root (tests, image
 * builds): useradd/groupadd/systemctl are printed as `skip`, never run.
 * Exit status: 0 done, 1 a bad bundle or a failed step (the message names the file or command), 2 bad arguments.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { type Stats, chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { TrellisError } from '@trellis/model';

/** The uid (and gid) of the proxy: the capture rules send every other uid's TCP through the proxy. */
export const PROXY_UID = 1337;
export const PROXY_USER = 'trellis-proxy';
export const INSTALL_DIR = '/opt/trellis';
export const BUNDLE_DIR = '/etc/trellis';
export const UNIT_DIR = '/etc/systemd/system';
export const AGENT_STATE_DIR = '/var/lib/trellis';
/** The units a VM runs; trellis-control.service is for the control plane's host and is installed by hand. */
export const VM_UNITS = Object.freeze(['trellis-agent.service', 'trellis-proxy.service'] as const);
export const BIN_LINKS: readonly (readonly [string, string])[] = Object.freeze([
  Object.freeze(['trellis-agent', 'packages/node-agent/bin/trellis-agent.js'] as const),
  Object.freeze(['trellis-proxy', 'packages/proxy/bin/trellis-proxy.js'] as const),
  Object.freeze(['trellisctl', 'packages/control/bin/trellisctl.js'] as const),
]);
/** Files of the tree the units execute (relative to /opt/trellis). */
const UNIT_EXECUTABLES = Object.freeze(['deploy/systemd/trellis-capture', 'packages/node-agent/bin/trellis-agent.js', 'packages/proxy/bin/trellis-proxy.js']);

/** The Trellis tree this module belongs to (packages/control/src/cli → the repository root). */
export function ownTree(): string {
  return fileURLToPath(new URL('../../../../', import.meta.url)).replace(/\/$/, '');
}

export type CaptureOnStop = 'remove' | 'keep';

export interface VmInstallOptions {
  /** Bundle directory from `trellisctl vm configure`. */
  readonly bundle: string;
  /** Root to install under; undefined or `/` is the running system. */
  readonly prefix?: string;
  readonly dryRun?: boolean;
  /** Sets TRELLIS_CAPTURE_ON_STOP in the installed agent.env. */
  readonly captureOnStop?: CaptureOnStop;
  /** The Trellis tree /opt/trellis should point at (default: this trellisctl's own tree). */
  readonly tree?: string;
  /**
   * Whether useradd/groupadd/systemctl are run (true) or printed as skipped (false). Defaults to "no prefix".
   * Tests set it with a prefix to see the system plan without touching the system.
   */
  readonly system?: boolean;
}

export interface VmInstallDeps {
  /** Runs one command; throws on failure. Default: execFileSync with inherited output. */
  readonly exec?: (command: string, args: readonly string[]) => void;
  /** Whether the process may write system paths; default `process.getuid() === 0`. */
  readonly isRoot?: () => boolean;
}

/** One line of the plan: `verb  target  (detail)`; `apply` is absent for `ok`, `skip` and `warn` lines. */
export interface InstallStep {
  readonly verb: 'user' | 'mkdir' | 'write' | 'chmod' | 'link' | 'run' | 'ok' | 'skip' | 'warn';
  readonly text: string;
  readonly apply?: () => void;
}

export interface InstallResult {
  readonly steps: readonly InstallStep[];
  readonly changed: number;
}

interface BundleFile {
  readonly name: 'mesh.yaml' | 'root-cert.pem' | 'agent.env' | 'token';
  readonly mode: number;
}

const BUNDLE_FILES: readonly BundleFile[] = Object.freeze([
  { name: 'mesh.yaml', mode: 0o644 },
  { name: 'root-cert.pem', mode: 0o644 },
  { name: 'agent.env', mode: 0o640 },
  { name: 'token', mode: 0o600 },
] as const);

/** Quotes one argument for display the way a shell would need it. */
const shellQuote = (arg: string): string => (/^[A-Za-z0-9_./:=@-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`);
const octal = (mode: number): string => `0${(mode & 0o777).toString(8)}`;
const bundleError = (message: string): TrellisError => new TrellisError('TRELLIS_ERR_BUNDLE', message);
const installError = (message: string, cause?: unknown): TrellisError => new TrellisError('TRELLIS_ERR_INSTALL', message, { cause });

/** Reads and checks the bundle; every problem names the file. */
function readBundle(dir: string, installedDir: string): Map<BundleFile['name'], string | undefined> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw bundleError(`bundle ${dir}: no such directory (write one with \`trellisctl vm configure --out DIR\`)`);
  const files = new Map<BundleFile['name'], string | undefined>();
  for (const f of BUNDLE_FILES) {
    const path = join(dir, f.name);
    if (!existsSync(path)) {
      // Installing from the installed directory itself: the agent deletes the token once it is redeemed.
      if (f.name === 'token' && resolve(dir) === resolve(installedDir)) {
        files.set(f.name, undefined);
        continue;
      }
      throw bundleError(`bundle ${dir}: ${f.name} is missing (re-run \`trellisctl vm configure\`${f.name === 'token' ? ' or `trellisctl vm token --out DIR`' : ''})`);
    }
    const text = readFileSync(path, 'utf8');
    if (text.trim() === '') throw bundleError(`bundle ${dir}: ${f.name} is empty`);
    files.set(f.name, text);
  }
  const mesh = files.get('mesh.yaml')!;
  if (!/^xdsAddress:/m.test(mesh)) throw bundleError(`bundle ${dir}: mesh.yaml: xdsAddress: required (not a bundle from \`trellisctl vm configure\`?)`);
  if (!files.get('root-cert.pem')!.includes('-----BEGIN CERTIFICATE-----')) throw bundleError(`bundle ${dir}: root-cert.pem: no PEM certificate in it`);
  const env = files.get('agent.env')!;
  env.split('\n').forEach((line, i) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(line)) throw bundleError(`bundle ${dir}: agent.env:${i + 1}: expected KEY=VALUE`);
  });
  const bundleDir = /^TRELLIS_BUNDLE_DIR=(.*)$/m.exec(env)?.[1]?.replace(/^"(.*)"$/, '$1');
  if (bundleDir !== undefined && resolve(bundleDir) !== BUNDLE_DIR) {
    throw bundleError(`bundle ${dir}: agent.env: TRELLIS_BUNDLE_DIR=${bundleDir}, but the units read the bundle from ${BUNDLE_DIR} (re-run \`trellisctl vm configure\` with --bundle-dir ${BUNDLE_DIR})`);
  }
  return files;
}

/** agent.env as installed: the bundle's, with TRELLIS_CAPTURE_ON_STOP set when asked. */
export function installedAgentEnv(bundleEnv: string, captureOnStop: CaptureOnStop | undefined): string {
  if (captureOnStop === undefined) return bundleEnv;
  const line = `TRELLIS_CAPTURE_ON_STOP=${captureOnStop}`;
  if (/^TRELLIS_CAPTURE_ON_STOP=.*$/m.test(bundleEnv)) return bundleEnv.replace(/^TRELLIS_CAPTURE_ON_STOP=.*$/m, line);
  return `${bundleEnv.endsWith('\n') ? bundleEnv : `${bundleEnv}\n`}# What happens to the capture rules when the agent stops: remove (fail-open) or keep (fail-closed).\n${line}\n`;
}

interface PasswdEntry {
  readonly name: string;
  readonly id: number;
}

/** `/etc/passwd` or `/etc/group` entries (name and uid/gid); a missing file has none. */
function readIdFile(path: string): PasswdEntry[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.includes(':')).map((l) => {
    const [name, , id] = l.split(':');
    return { name: name!, id: Number(id) };
  });
}

/** Writes through a temporary file and a rename, so a reader never sees half a file; the mode is set explicitly. */
function writeAtomically(path: string, content: string, mode: number): void {
  const tmp = join(dirname(path), `.${createHash('sha256').update(path).digest('hex').slice(0, 8)}.trellis-install.tmp`);
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/**
 * Computes the plan against the target's current state. Nothing is changed; each step's `apply` does its part.
 * Throws TRELLIS_ERR_BUNDLE for a bad bundle and TRELLIS_ERR_INSTALL for a conflict on the target (a
 * `trellis-proxy` user with another uid, uid 1337 taken by someone else).
 */
export function planVmInstall(options: VmInstallOptions, deps: VmInstallDeps = {}): InstallStep[] {
  const prefix = options.prefix === undefined || resolve(options.prefix) === '/' ? '' : resolve(options.prefix);
  const system = options.system ?? prefix === '';
  const at = (path: string): string => (prefix === '' ? path : join(prefix, path));
  const exec = deps.exec ?? ((command: string, args: readonly string[]) => void execFileSync(command, [...args], { stdio: 'inherit' }));
  const tree = resolve(options.tree ?? ownTree());
  const bundleDir = resolve(options.bundle);
  const files = readBundle(bundleDir, at(BUNDLE_DIR));
  const steps: InstallStep[] = [];
  const command = (args: readonly string[], why: string): void => {
    const line = args.map(shellQuote).join(' ');
    if (system) steps.push({ verb: 'run', text: line, apply: () => exec(args[0]!, args.slice(1)) });
    else steps.push({ verb: 'skip', text: `${line} (${why})` });
  };
  const prefixNote = '--prefix: not run on this host';

  // 1. The proxy's user and group, 1337.
  const users = readIdFile(at('/etc/passwd'));
  const groups = readIdFile(at('/etc/group'));
  const user = users.find((u) => u.name === PROXY_USER);
  if (user && user.id !== PROXY_UID) {
    throw installError(`user ${PROXY_USER} exists with uid ${user.id}; the capture rules exempt uid ${PROXY_UID} only (change it with \`usermod --uid ${PROXY_UID} ${PROXY_USER}\`)`);
  }
  const squatter = users.find((u) => u.id === PROXY_UID && u.name !== PROXY_USER);
  if (squatter) throw installError(`uid ${PROXY_UID} belongs to user ${squatter.name}; the capture rules exempt that uid, so it must be ${PROXY_USER}`);
  // The agent runs with gid 1337 as its primary group (Group=trellis-proxy) and the rules exempt that gid too.
  const group = groups.find((g) => g.name === PROXY_USER);
  if (group && group.id !== PROXY_UID) {
    throw installError(`group ${PROXY_USER} exists with gid ${group.id}; the capture rules exempt gid ${PROXY_UID} (change it with \`groupmod --gid ${PROXY_UID} ${PROXY_USER}\`)`);
  }
  const groupSquatter = groups.find((g) => g.id === PROXY_UID && g.name !== PROXY_USER);
  if (groupSquatter) throw installError(`gid ${PROXY_UID} belongs to group ${groupSquatter.name}; the capture rules exempt that gid, so it must be ${PROXY_USER}`);
  if (user) steps.push({ verb: 'ok', text: `user ${PROXY_USER} (uid ${PROXY_UID}) exists` });
  else {
    if (!group) command(['groupadd', '--system', '--gid', String(PROXY_UID), PROXY_USER], prefixNote);
    command(['useradd', '--system', '--uid', String(PROXY_UID), '--gid', PROXY_USER, '--no-create-home', '--home-dir', '/nonexistent',
      '--shell', '/usr/sbin/nologin', '--comment', 'Trellis proxy', PROXY_USER], prefixNote);
  }

  // 2. Directories and the bundle.
  const ensureDir = (path: string, mode: number): void => {
    const target = at(path);
    const st = lstatOrNull(target);
    if (!st) steps.push({ verb: 'mkdir', text: `${target} (${octal(mode)})`, apply: () => { mkdirSync(target, { recursive: true, mode }); chmodSync(target, mode); } });
    else if (!st.isDirectory()) throw installError(`${target} exists and is not a directory`);
  };
  const ensureFile = (path: string, content: string, mode: number, source: string): boolean => {
    const target = at(path);
    const st = lstatOrNull(target);
    if (st && !st.isFile()) throw installError(`${target} exists and is not a regular file`);
    if (st === null || readFileSync(target, 'utf8') !== content) {
      steps.push({ verb: 'write', text: `${target} (${octal(mode)}) from ${source}`, apply: () => writeAtomically(target, content, mode) });
      return true;
    }
    if ((st.mode & 0o777) !== mode) {
      steps.push({ verb: 'chmod', text: `${target} ${octal(st.mode)} -> ${octal(mode)}`, apply: () => chmodSync(target, mode) });
      return true;
    }
    steps.push({ verb: 'ok', text: `${target} (unchanged)` });
    return false;
  };
  ensureDir(BUNDLE_DIR, 0o755);
  for (const f of BUNDLE_FILES) {
    const text = files.get(f.name);
    const dest = `${BUNDLE_DIR}/${f.name}`;
    if (text === undefined) {
      steps.push({ verb: 'ok', text: `${at(dest)} (absent: redeemed by the agent)` });
      continue;
    }
    if (f.name === 'token' && tokenRedeemed(at(AGENT_STATE_DIR), text.trim()) && !existsSync(at(dest))) {
      steps.push({ verb: 'ok', text: `${at(dest)} (this token was already redeemed by the agent; not copied again)` });
      continue;
    }
    const content = f.name === 'agent.env' ? installedAgentEnv(text, options.captureOnStop) : text;
    ensureFile(dest, content, f.mode, join(bundleDir, f.name));
  }

  // 3. The tree and its bins.
  const link = (path: string, target: string): void => {
    const where = at(path);
    const st = lstatOrNull(where);
    if (!st) {
      steps.push({ verb: 'link', text: `${where} -> ${target}`, apply: () => { mkdirSync(dirname(where), { recursive: true }); symlinkSync(target, where); } });
    } else if (st.isSymbolicLink() && readlinkSync(where) === target) {
      steps.push({ verb: 'ok', text: `${where} -> ${target}` });
    } else {
      steps.push({ verb: 'warn', text: `${where} exists${st.isSymbolicLink() ? ` (-> ${readlinkSync(where)})` : ''}; left alone` });
    }
  };
  if (!existsSync(join(tree, 'deploy/systemd/trellis-agent.service'))) {
    throw installError(`${tree} is not a Trellis tree (no deploy/systemd/trellis-agent.service); pass --tree DIR`);
  }
  const treeLink = lstatOrNull(at(INSTALL_DIR));
  if (treeLink && !treeLink.isSymbolicLink()) steps.push({ verb: 'ok', text: `${at(INSTALL_DIR)} (a Trellis tree is installed there)` });
  else link(INSTALL_DIR, tree);
  // What the units will run: the tree /opt/trellis resolves to once the plan is applied.
  const runTree = treeLink && !treeLink.isSymbolicLink() ? at(INSTALL_DIR) : treeLink ? resolve(dirname(at(INSTALL_DIR)), readlinkSync(at(INSTALL_DIR))) : tree;
  for (const rel of UNIT_EXECUTABLES) {
    if (!existsSync(join(runTree, rel))) steps.push({ verb: 'warn', text: `${INSTALL_DIR}/${rel} is missing: the unit that runs it will fail to start` });
  }
  for (const [name, rel] of BIN_LINKS) link(`/usr/local/bin/${name}`, `${INSTALL_DIR}/${rel}`);

  // 4. Units, 5. systemd.
  let unitsChanged = false;
  ensureDir(UNIT_DIR, 0o755);
  for (const unit of VM_UNITS) {
    const source = join(tree, 'deploy/systemd', unit);
    if (!existsSync(source)) throw installError(`${source} is missing from the Trellis tree`);
    if (ensureFile(`${UNIT_DIR}/${unit}`, readFileSync(source, 'utf8'), 0o644, source)) unitsChanged = true;
  }
  if (unitsChanged) command(['systemctl', 'daemon-reload'], prefixNote);
  else steps.push({ verb: 'ok', text: 'systemctl daemon-reload (no unit changed)' });
  // `systemctl enable` of a WantedBy=multi-user.target unit is exactly this symlink.
  const notEnabled = VM_UNITS.filter((u) => !lstatOrNull(at(`${UNIT_DIR}/multi-user.target.wants/${u}`)));
  if (notEnabled.length > 0) command(['systemctl', 'enable', ...notEnabled], prefixNote);
  else steps.push({ verb: 'ok', text: `${VM_UNITS.join(' ')} enabled` });

  if (system && !options.dryRun && steps.some((s) => s.apply) && !(deps.isRoot ?? (() => process.getuid?.() === 0))()) {
    throw installError('installing into the running system needs root (use sudo, --dry-run to see the plan, or --prefix DIR)');
  }
  return steps;
}

/** True when the agent's state dir records this token as redeemed (sha256 per line, see the agent's join-token.ts). */
function tokenRedeemed(stateDir: string, token: string): boolean {
  const path = join(stateDir, 'redeemed-tokens');
  if (!existsSync(path)) return false;
  const digest = createHash('sha256').update(token).digest('hex');
  return readFileSync(path, 'utf8').split('\n').includes(digest);
}

export function formatStep(step: InstallStep): string {
  return `${step.verb.padEnd(6)} ${step.text}`;
}

/**
 * Plans, prints each step (one line each, in order) and, unless `dryRun`, applies them in that order. A failing
 * step throws TRELLIS_ERR_INSTALL naming it; the steps before it stay done (re-running resumes).
 */
export function runVmInstall(options: VmInstallOptions, out: NodeJS.WritableStream, deps: VmInstallDeps = {}): InstallResult {
  const steps = planVmInstall(options, deps);
  let changed = 0;
  for (const step of steps) {
    out.write(`${formatStep(step)}\n`);
    if (options.dryRun || !step.apply) continue;
    try {
      step.apply();
      changed++;
    } catch (cause) {
      throw installError(`${step.verb} ${step.text}: ${(cause as Error).message}`, cause);
    }
  }
  const pending = steps.filter((s) => s.apply).length;
  if (options.dryRun) out.write(`dry run: ${pending} change${pending === 1 ? '' : 's'} planned, nothing done\n`);
  else out.write(`${changed === 0 ? 'nothing to do: already installed' : `done: ${changed} change${changed === 1 ? '' : 's'}`}\n`);
  const system = options.system ?? (options.prefix === undefined || resolve(options.prefix) === '/');
  if (!options.dryRun && system) out.write(`start: systemctl start ${VM_UNITS.join(' ')}; status: systemctl status ${VM_UNITS.join(' ')}\n`);
  return Object.freeze({ steps: Object.freeze(steps), changed });
}

export interface VmInstallIo {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
}

interface InstallFlags {
  bundle: string;
  dryRun?: boolean;
  prefix?: string;
  captureOnStop?: string;
  tree?: string;
}

/** Adds `install` to the `vm` command. */
export function registerVmInstall(vm: Command, io: VmInstallIo = { out: process.stdout, err: process.stderr }, deps: VmInstallDeps = {}): void {
  vm.command('install')
    .description('Install a bundle from `vm configure` on this host: files in /etc/trellis, the trellis-proxy user (uid 1337), systemd units')
    .requiredOption('--bundle <dir>', 'bundle directory written by `trellisctl vm configure`')
    .option('--dry-run', 'print each action, change nothing')
    .option('--prefix <dir>', 'install under another root (image builds, tests); useradd and systemctl are skipped', '/')
    .option('--capture-on-stop <mode>', 'when the agent stops: remove the capture rules (fail-open) or keep them (fail-closed); sets TRELLIS_CAPTURE_ON_STOP in agent.env')
    .option('--tree <dir>', 'Trellis tree /opt/trellis points at when it does not exist yet (default: this trellisctl\'s)')
    .action((flags: InstallFlags) => {
      const mode = flags.captureOnStop;
      if (mode !== undefined && mode !== 'remove' && mode !== 'keep') {
        io.err.write(`trellisctl: --capture-on-stop: "${mode}": expected remove or keep\n`);
        process.exitCode = 2;
        return;
      }
      try {
        runVmInstall({ bundle: flags.bundle, prefix: flags.prefix, dryRun: flags.dryRun === true, captureOnStop: mode, tree: flags.tree }, io.out, deps);
      } catch (err) {
        if (!(err instanceof TrellisError)) throw err;
        io.err.write(`trellisctl: ${err.message}\n`);
        process.exitCode = 1;
      }
    });
}
