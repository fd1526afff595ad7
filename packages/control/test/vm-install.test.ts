import { expect } from 'chai';
import { Command } from 'commander';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createProgram, runProgram } from '../src/cli/program.js';
import { registerVm } from '../src/cli/vm.js';
import { formatStep, planVmInstall, registerVmInstall, runVmInstall, type VmInstallDeps } from '../src/cli/vm-install.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
/** Golden output; paths of the fixture are shown as <PREFIX>, <BUNDLE> and <TREE>. */
const GOLDEN: Readonly<Record<string, string>> = Object.freeze({
    'dry-run-prefix': [
    'skip   groupadd --system --gid 1337 trellis-proxy (--prefix: not run on this host)',
    'skip   useradd --system --uid 1337 --gid trellis-proxy --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment \'Trellis proxy\' trellis-proxy (--prefix: not run on this host)',
    'mkdir  <PREFIX>/etc/trellis (0755)',
    'write  <PREFIX>/etc/trellis/mesh.yaml (0644) from <BUNDLE>/mesh.yaml',
    'write  <PREFIX>/etc/trellis/root-cert.pem (0644) from <BUNDLE>/root-cert.pem',
    'write  <PREFIX>/etc/trellis/agent.env (0640) from <BUNDLE>/agent.env',
    'write  <PREFIX>/etc/trellis/token (0600) from <BUNDLE>/token',
    'link   <PREFIX>/opt/trellis -> <TREE>',
    'link   <PREFIX>/usr/local/bin/trellis-agent -> /opt/trellis/packages/node-agent/bin/trellis-agent.js',
    'link   <PREFIX>/usr/local/bin/trellis-proxy -> /opt/trellis/packages/proxy/bin/trellis-proxy.js',
    'link   <PREFIX>/usr/local/bin/trellisctl -> /opt/trellis/packages/control/bin/trellisctl.js',
    'mkdir  <PREFIX>/etc/systemd/system (0755)',
    'write  <PREFIX>/etc/systemd/system/trellis-agent.service (0644) from <TREE>/deploy/systemd/trellis-agent.service',
    'write  <PREFIX>/etc/systemd/system/trellis-proxy.service (0644) from <TREE>/deploy/systemd/trellis-proxy.service',
    'skip   systemctl daemon-reload (--prefix: not run on this host)',
    'skip   systemctl enable trellis-agent.service trellis-proxy.service (--prefix: not run on this host)',
    'dry run: 12 changes planned, nothing done',
  ].join('\n') + '\n',
  'plan-system': [
    'run    groupadd --system --gid 1337 trellis-proxy',
    'run    useradd --system --uid 1337 --gid trellis-proxy --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment \'Trellis proxy\' trellis-proxy',
    'mkdir  <PREFIX>/etc/trellis (0755)',
    'write  <PREFIX>/etc/trellis/mesh.yaml (0644) from <BUNDLE>/mesh.yaml',
    'write  <PREFIX>/etc/trellis/root-cert.pem (0644) from <BUNDLE>/root-cert.pem',
    'write  <PREFIX>/etc/trellis/agent.env (0640) from <BUNDLE>/agent.env',
    'write  <PREFIX>/etc/trellis/token (0600) from <BUNDLE>/token',
    'link   <PREFIX>/opt/trellis -> <TREE>',
    'link   <PREFIX>/usr/local/bin/trellis-agent -> /opt/trellis/packages/node-agent/bin/trellis-agent.js',
    'link   <PREFIX>/usr/local/bin/trellis-proxy -> /opt/trellis/packages/proxy/bin/trellis-proxy.js',
    'link   <PREFIX>/usr/local/bin/trellisctl -> /opt/trellis/packages/control/bin/trellisctl.js',
    'mkdir  <PREFIX>/etc/systemd/system (0755)',
    'write  <PREFIX>/etc/systemd/system/trellis-agent.service (0644) from <TREE>/deploy/systemd/trellis-agent.service',
    'write  <PREFIX>/etc/systemd/system/trellis-proxy.service (0644) from <TREE>/deploy/systemd/trellis-proxy.service',
    'run    systemctl daemon-reload',
    'run    systemctl enable trellis-agent.service trellis-proxy.service',
  ].join('\n') + '\n',
});

const MESH = [
  'apiVersion: trellis.dev/v1alpha1',
  'kind: VmMesh',
  'xdsAddress: "10.0.0.1:15012"',
  'trustDomain: "cluster.local"',
  'namespace: "billing"',
  'serviceAccount: "billing"',
  '',
].join('\n');
const ROOT_CERT = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const AGENT_ENV = 'TRELLIS_BUNDLE_DIR=/etc/trellis\nTRELLIS_XDS_ADDRESS=10.0.0.1:15012\n';

interface Fixture {
  readonly base: string;
  readonly bundle: string;
  readonly prefix: string;
  readonly tree: string;
}

/** A bundle as `vm configure` writes it, an empty target root, and a Trellis tree with the repo's units and stub bins. */
function fixture(): Fixture {
  const base = mkdtempSync(join(tmpdir(), 'trellis-vm-install-'));
  const bundle = join(base, 'bundle');
  mkdirSync(bundle, { mode: 0o700 });
  writeFileSync(join(bundle, 'mesh.yaml'), MESH);
  writeFileSync(join(bundle, 'root-cert.pem'), ROOT_CERT);
  writeFileSync(join(bundle, 'agent.env'), AGENT_ENV);
  writeFileSync(join(bundle, 'token'), 'join-secret\n', { mode: 0o600 });
  const prefix = join(base, 'root');
  mkdirSync(prefix);
  const tree = join(base, 'tree');
  mkdirSync(join(tree, 'deploy/systemd'), { recursive: true });
  for (const f of readdirSync(join(REPO, 'deploy/systemd'))) copyFileSync(join(REPO, 'deploy/systemd', f), join(tree, 'deploy/systemd', f));
  for (const bin of ['packages/node-agent/bin/trellis-agent.js', 'packages/proxy/bin/trellis-proxy.js', 'packages/control/bin/trellisctl.js']) {
    mkdirSync(join(tree, bin, '..'), { recursive: true });
    writeFileSync(join(tree, bin), '#!/usr/bin/env node\n', { mode: 0o755 });
  }
  return { base, bundle, prefix, tree };
}

/** Runs `trellisctl vm install ARGS` the way the binary does; returns status and output. */
async function cli(args: string[], deps: VmInstallDeps = {}): Promise<{ status: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (c: Buffer) => (o += c.toString()));
  err.on('data', (c: Buffer) => (e += c.toString()));
  const program = createProgram().configureOutput({ writeOut: (s) => (o += s), writeErr: (s) => (e += s) });
  registerVmInstall(program.command('vm'), { out, err }, deps);
  const before = process.exitCode;
  process.exitCode = undefined;
  try {
    const status = await runProgram(program, ['node', 'trellisctl', 'vm', 'install', ...args]);
    return { status, out: o, err: e };
  } finally {
    process.exitCode = before;
  }
}

function placeholders(text: string, f: Fixture): string {
  return text.split(f.prefix).join('<PREFIX>').split(f.bundle).join('<BUNDLE>').split(f.tree).join('<TREE>');
}

function golden(name: string, actual: string): void {
  expect(actual).to.equal(GOLDEN[name], `golden ${name}`);
}

/** Every path under `dir` with its type, mode and (for links) target: a fingerprint to prove nothing changed. */
function snapshotTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      out.push(`${p.slice(dir.length)} ${st.mode.toString(8)} ${st.isSymbolicLink() ? readlinkSync(p) : st.isFile() ? `${st.size}:${st.mtimeMs}` : ''}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

const mode = (path: string): string => (statSync(path).mode & 0o777).toString(8).padStart(4, '0');

describe('trellisctl vm install', () => {
  let f: Fixture;
  beforeEach(() => {
    f = fixture();
  });
  afterEach(() => rmSync(f.base, { recursive: true, force: true }));

  it('--dry-run prints each action in order and changes nothing (golden)', async () => {
    const r = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run']);
    expect(r.err).to.equal('');
    expect(r.status).to.equal(0);
    golden('dry-run-prefix', placeholders(r.out, f));
    expect(readdirSync(f.prefix)).to.deep.equal([]);
  });

  it('plans useradd, groupadd and systemctl as commands to run when installing into the system (golden)', () => {
    const steps = planVmInstall({ bundle: f.bundle, prefix: f.prefix, tree: f.tree, dryRun: true, system: true });
    golden('plan-system', placeholders(`${steps.map(formatStep).join('\n')}\n`, f));
    expect(readdirSync(f.prefix)).to.deep.equal([]);
  });

  it('lays out the bundle, the units and the links under --prefix with the right modes', async () => {
    const r = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree]);
    expect(r.err).to.equal('');
    expect(r.status).to.equal(0);
    const etc = join(f.prefix, 'etc/trellis');
    expect(mode(etc)).to.equal('0755');
    expect(mode(join(etc, 'mesh.yaml'))).to.equal('0644');
    expect(mode(join(etc, 'root-cert.pem'))).to.equal('0644');
    expect(mode(join(etc, 'agent.env'))).to.equal('0640');
    expect(mode(join(etc, 'token'))).to.equal('0600');
    expect(readFileSync(join(etc, 'mesh.yaml'), 'utf8')).to.equal(MESH);
    expect(readFileSync(join(etc, 'root-cert.pem'), 'utf8')).to.equal(ROOT_CERT);
    expect(readFileSync(join(etc, 'agent.env'), 'utf8')).to.equal(AGENT_ENV);
    expect(readFileSync(join(etc, 'token'), 'utf8')).to.equal('join-secret\n');
    for (const unit of ['trellis-agent.service', 'trellis-proxy.service']) {
      const path = join(f.prefix, 'etc/systemd/system', unit);
      expect(mode(path)).to.equal('0644');
      expect(readFileSync(path, 'utf8')).to.equal(readFileSync(join(REPO, 'deploy/systemd', unit), 'utf8'));
    }
    expect(existsSync(join(f.prefix, 'etc/systemd/system/trellis-control.service')), 'the control unit is not a VM unit').to.equal(false);
    expect(readlinkSync(join(f.prefix, 'opt/trellis'))).to.equal(f.tree);
    expect(readlinkSync(join(f.prefix, 'usr/local/bin/trellis-agent'))).to.equal('/opt/trellis/packages/node-agent/bin/trellis-agent.js');
    expect(readlinkSync(join(f.prefix, 'usr/local/bin/trellis-proxy'))).to.equal('/opt/trellis/packages/proxy/bin/trellis-proxy.js');
    expect(readlinkSync(join(f.prefix, 'usr/local/bin/trellisctl'))).to.equal('/opt/trellis/packages/control/bin/trellisctl.js');
    expect(r.out).to.match(/^skip {3}useradd --system --uid 1337 .* trellis-proxy \(--prefix: not run on this host\)$/m);
    expect(r.out).to.match(/^skip {3}systemctl enable trellis-agent\.service trellis-proxy\.service /m);
    expect(r.out.trimEnd().split('\n').at(-1)).to.equal('done: 12 changes');
  });

  it('is idempotent: a re-run changes nothing and says so', async () => {
    expect((await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree])).status).to.equal(0);
    const before = snapshotTree(f.prefix);
    const r = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree]);
    expect(r.status).to.equal(0);
    expect(snapshotTree(f.prefix)).to.deep.equal(before);
    const verbs = r.out.trimEnd().split('\n').slice(0, -1).map((l) => l.split(' ')[0]);
    expect(verbs.filter((v) => v !== 'ok' && v !== 'skip'), r.out).to.deep.equal([]);
    expect(r.out.trimEnd().split('\n').at(-1)).to.equal('nothing to do: already installed');
    const dry = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run']);
    expect(dry.out.trimEnd().split('\n').at(-1)).to.equal('dry run: 0 changes planned, nothing done');
  });

  it('repairs a mode and a changed file, leaving the rest alone', async () => {
    await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree]);
    chmodSync(join(f.prefix, 'etc/trellis/token'), 0o644);
    writeFileSync(join(f.bundle, 'mesh.yaml'), `${MESH}network: "net-2"\n`);
    const r = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree]);
    expect(r.status).to.equal(0);
    expect(placeholders(r.out, f)).to.include('chmod  <PREFIX>/etc/trellis/token 0644 -> 0600\n');
    expect(placeholders(r.out, f)).to.include('write  <PREFIX>/etc/trellis/mesh.yaml (0644) from <BUNDLE>/mesh.yaml\n');
    expect(mode(join(f.prefix, 'etc/trellis/token'))).to.equal('0600');
    expect(readFileSync(join(f.prefix, 'etc/trellis/mesh.yaml'), 'utf8')).to.contain('net-2');
    expect(r.out.trimEnd().split('\n').at(-1)).to.equal('done: 2 changes');
  });

  for (const missing of ['mesh.yaml', 'root-cert.pem', 'agent.env', 'token']) {
    it(`a bundle without ${missing} is refused with its name, exit 1, nothing written`, async () => {
      unlinkSync(join(f.bundle, missing));
      const r = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree]);
      expect(r.status).to.equal(1);
      expect(r.err).to.equal(`trellisctl: bundle ${f.bundle}: ${missing} is missing (re-run \`trellisctl vm configure\`${missing === 'token' ? ' or `trellisctl vm token --out DIR`' : ''})\n`);
      expect(r.out).to.equal('');
      expect(readdirSync(f.prefix)).to.deep.equal([]);
    });
  }

  it('refuses a missing bundle directory, a non-PEM root cert and an agent.env for another bundle directory', async () => {
    const none = await cli(['--bundle', join(f.base, 'nope'), '--prefix', f.prefix, '--tree', f.tree]);
    expect(none.status).to.equal(1);
    expect(none.err).to.contain(`bundle ${join(f.base, 'nope')}: no such directory`);

    writeFileSync(join(f.bundle, 'root-cert.pem'), 'not a cert\n');
    const pem = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree]);
    expect(pem.status).to.equal(1);
    expect(pem.err).to.contain('root-cert.pem: no PEM certificate in it');

    writeFileSync(join(f.bundle, 'root-cert.pem'), ROOT_CERT);
    writeFileSync(join(f.bundle, 'agent.env'), 'TRELLIS_BUNDLE_DIR=/srv/trellis\n');
    const env = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree]);
    expect(env.status).to.equal(1);
    expect(env.err).to.contain('agent.env: TRELLIS_BUNDLE_DIR=/srv/trellis, but the units read the bundle from /etc/trellis');
    expect(readdirSync(f.prefix)).to.deep.equal([]);
  });

  it('--capture-on-stop sets TRELLIS_CAPTURE_ON_STOP in the installed agent.env; a bad value is a usage error', async () => {
    const r = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--capture-on-stop', 'keep']);
    expect(r.status).to.equal(0);
    const env = readFileSync(join(f.prefix, 'etc/trellis/agent.env'), 'utf8');
    expect(env.startsWith(AGENT_ENV)).to.equal(true);
    expect(env).to.match(/^TRELLIS_CAPTURE_ON_STOP=keep$/m);
    const again = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--capture-on-stop', 'remove']);
    expect(again.status).to.equal(0);
    const env2 = readFileSync(join(f.prefix, 'etc/trellis/agent.env'), 'utf8');
    expect(env2.match(/TRELLIS_CAPTURE_ON_STOP=/g)).to.have.length(1);
    expect(env2).to.match(/^TRELLIS_CAPTURE_ON_STOP=remove$/m);
    const bad = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--capture-on-stop', 'open']);
    expect(bad.status).to.equal(2);
    expect(bad.err).to.equal('trellisctl: --capture-on-stop: "open": expected remove or keep\n');
  });

  it('checks the proxy user and group: trellis-proxy with 1337 is kept, another id or a squatter on 1337 is an error', async () => {
    mkdirSync(join(f.prefix, 'etc'));
    writeFileSync(join(f.prefix, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\ntrellis-proxy:x:1337:1337::/nonexistent:/usr/sbin/nologin\n');
    const ok = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run']);
    expect(ok.status).to.equal(0);
    expect(ok.out.split('\n')[0]).to.equal('ok     user trellis-proxy (uid 1337) exists');
    expect(ok.out).not.to.contain('useradd');

    writeFileSync(join(f.prefix, 'etc/passwd'), 'trellis-proxy:x:1001:1001::/nonexistent:/usr/sbin/nologin\n');
    const other = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run']);
    expect(other.status).to.equal(1);
    expect(other.err).to.contain('user trellis-proxy exists with uid 1001; the capture rules exempt uid 1337 only');

    writeFileSync(join(f.prefix, 'etc/passwd'), 'envoy:x:1337:1337::/nonexistent:/usr/sbin/nologin\n');
    const squat = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run']);
    expect(squat.status).to.equal(1);
    expect(squat.err).to.contain('uid 1337 belongs to user envoy');

    writeFileSync(join(f.prefix, 'etc/passwd'), '');
    writeFileSync(join(f.prefix, 'etc/group'), 'trellis-proxy:x:999:\n');
    const gid = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run']);
    expect(gid.status).to.equal(1);
    expect(gid.err).to.contain('group trellis-proxy exists with gid 999; the capture rules exempt gid 1337');

    writeFileSync(join(f.prefix, 'etc/group'), 'envoy:x:1337:\n');
    const gsquat = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run']);
    expect(gsquat.status).to.equal(1);
    expect(gsquat.err).to.contain('gid 1337 belongs to group envoy');

    writeFileSync(join(f.prefix, 'etc/group'), 'trellis-proxy:x:1337:\n');
    const onlyUser = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run']);
    expect(onlyUser.status).to.equal(0);
    expect(onlyUser.out).not.to.contain('groupadd');
    expect(onlyUser.out.split('\n')[0]).to.match(/^skip {3}useradd --system --uid 1337 --gid trellis-proxy /);
  });

  it('into the system: runs groupadd, useradd, daemon-reload and enable in order, and none of them on a re-run', () => {
    const calls: string[] = [];
    const deps: VmInstallDeps = { exec: (cmd, args) => void calls.push([cmd, ...args].join(' ')), isRoot: () => true };
    const out = new PassThrough();
    runVmInstall({ bundle: f.bundle, prefix: f.prefix, tree: f.tree, system: true }, out, deps);
    expect(calls).to.deep.equal([
      'groupadd --system --gid 1337 trellis-proxy',
      'useradd --system --uid 1337 --gid trellis-proxy --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment Trellis proxy trellis-proxy',
      'systemctl daemon-reload',
      'systemctl enable trellis-agent.service trellis-proxy.service',
    ]);
    // What those commands would have done on a real host.
    writeFileSync(join(f.prefix, 'etc/passwd'), 'trellis-proxy:x:1337:1337::/nonexistent:/usr/sbin/nologin\n');
    writeFileSync(join(f.prefix, 'etc/group'), 'trellis-proxy:x:1337:\n');
    mkdirSync(join(f.prefix, 'etc/systemd/system/multi-user.target.wants'));
    for (const u of ['trellis-agent.service', 'trellis-proxy.service']) symlinkSync(`/etc/systemd/system/${u}`, join(f.prefix, 'etc/systemd/system/multi-user.target.wants', u));
    calls.length = 0;
    const result = runVmInstall({ bundle: f.bundle, prefix: f.prefix, tree: f.tree, system: true }, out, deps);
    expect(calls).to.deep.equal([]);
    expect(result.changed).to.equal(0);
  });

  it('into the system as a non-root user: refused before anything is done; --dry-run still works', () => {
    const deps: VmInstallDeps = { exec: () => expect.fail('nothing may run'), isRoot: () => false };
    expect(() => runVmInstall({ bundle: f.bundle, prefix: f.prefix, tree: f.tree, system: true }, new PassThrough(), deps))
      .to.throw(/needs root/);
    expect(readdirSync(f.prefix)).to.deep.equal([]);
    expect(() => runVmInstall({ bundle: f.bundle, prefix: f.prefix, tree: f.tree, system: true, dryRun: true }, new PassThrough(), deps)).not.to.throw();
  });

  it('does not copy back a join token the agent has already redeemed', async () => {
    mkdirSync(join(f.prefix, 'var/lib/trellis'), { recursive: true });
    writeFileSync(join(f.prefix, 'var/lib/trellis/redeemed-tokens'), `${createHash('sha256').update('join-secret').digest('hex')}\n`);
    const r = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree]);
    expect(r.status).to.equal(0);
    expect(existsSync(join(f.prefix, 'etc/trellis/token'))).to.equal(false);
    expect(placeholders(r.out, f)).to.include('ok     <PREFIX>/etc/trellis/token (this token was already redeemed by the agent; not copied again)\n');
  });

  it('re-installing from /etc/trellis itself tolerates the token the agent deleted', async () => {
    await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree]);
    unlinkSync(join(f.prefix, 'etc/trellis/token'));
    const r = await cli(['--bundle', join(f.prefix, 'etc/trellis'), '--prefix', f.prefix, '--tree', f.tree]);
    expect(r.err).to.equal('');
    expect(r.status).to.equal(0);
    expect(placeholders(r.out, f)).to.include('ok     <PREFIX>/etc/trellis/token (absent: redeemed by the agent)\n');
  });

  it('warns when the tree lacks a program a unit runs, and leaves an existing /opt/trellis alone', async () => {
    unlinkSync(join(f.tree, 'packages/proxy/bin/trellis-proxy.js'));
    mkdirSync(join(f.prefix, 'opt/trellis/deploy/systemd'), { recursive: true });
    const r = await cli(['--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run']);
    expect(r.status).to.equal(0);
    const out = placeholders(r.out, f);
    expect(out).to.include('ok     <PREFIX>/opt/trellis (a Trellis tree is installed there)\n');
    // The units run what /opt/trellis holds, not --tree.
    expect(out).to.include('warn   /opt/trellis/deploy/systemd/trellis-capture is missing: the unit that runs it will fail to start\n');
    expect(out).to.include('warn   /opt/trellis/packages/proxy/bin/trellis-proxy.js is missing');
  });

  it('is reachable as `trellisctl vm install` next to the other vm subcommands', async () => {
    const program = createProgram().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    registerVm(program, { out: new PassThrough(), err: new PassThrough() });
    const vm = program.commands.find((c: Command) => c.name() === 'vm')!;
    expect(vm.commands.map((c) => c.name())).to.include.members(['configure', 'install']);
    const before = process.exitCode;
    try {
      expect(await runProgram(program, ['node', 'trellisctl', 'vm', 'install', '--bundle', f.bundle, '--prefix', f.prefix, '--tree', f.tree, '--dry-run'])).to.equal(0);
      expect(await runProgram(program, ['node', 'trellisctl', 'vm', 'install'])).to.equal(2);
    } finally {
      process.exitCode = before;
    }
  });
});
