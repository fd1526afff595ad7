/**
 * `npm run demo` (demo/main.ts) as a user runs it: start it, wait for "demo ready.", run the commands it printed
 * exactly as printed (through `sh -c`), check the routing by header (no header → reviews v1, `end-user: jason` →
 * reviews v2), then stop it and check that everything it created is gone.
 *
 * - netns mode (root only): Ctrl-C (SIGINT) → no `trellis-demo-*` namespaces, no demo links, no processes, no run dir.
 * - a start-up failure: reported (exit 1) and cleaned up.
 * - loopback mode: the demo is killed with SIGKILL (a crash); a second run with `--self-check` removes the leftovers,
 *   checks the routing itself, cleans up and exits 0.
 */
import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = join(ROOT, 'demo/main.ts');

interface Demo {
  readonly proc: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
}

function startDemo(args: readonly string[]): Demo {
  const proc = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(l));
  createInterface({ input: proc.stderr! }).on('line', (l) => lines.push(`stderr: ${l}`));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  return { proc, lines, exited };
}

async function waitFor(demo: Demo, text: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!demo.lines.some((l) => l.includes(text))) {
    if (demo.proc.exitCode !== null) throw new Error(`demo exited ${demo.proc.exitCode} before "${text}":\n${demo.lines.join('\n')}`);
    if (Date.now() > end) throw new Error(`no "${text}" after ${timeoutMs} ms:\n${demo.lines.join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The printed commands under "Try:", as printed (leading spaces removed). */
function printedCommands(demo: Demo): string[] {
  const start = demo.lines.indexOf('Try:');
  const out: string[] = [];
  for (const l of demo.lines.slice(start + 1)) {
    if (!l.startsWith('  ')) break;
    out.push(l.trim());
  }
  return out;
}

const sh = (command: string): string => execFileSync('sh', ['-c', command], { cwd: ROOT, timeout: 30_000 }).toString();

function reviewsVersion(json: string): string {
  const page = JSON.parse(json) as { service: string; reviews: { version: string; error?: string } };
  expect(page.service).to.equal('productpage');
  expect(page.reviews.error).to.equal(undefined);
  return page.reviews.version;
}

function runDirOf(demo: Demo): string {
  const m = /run directory (\S+)/.exec(demo.lines.join('\n'));
  if (!m) throw new Error('no run directory printed');
  return m[1]!;
}

function pidsOf(runDir: string): number[] {
  return readFileSync(join(runDir, 'pids'), 'utf8').split('\n').map((l) => Number(l.split(' ')[0])).filter((n) => n > 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2]?.startsWith('Z');
  } catch {
    return false;
  }
}

/** Runs the printed curl commands for the product page and checks v1 without the header, v2 with it. */
function checkRouting(commands: readonly string[]): void {
  const page = commands.filter((c) => c.startsWith('curl') && c.includes('/productpage'));
  expect(page, commands.join('\n')).to.have.length(2);
  expect(reviewsVersion(sh(page.find((c) => !c.includes('end-user'))!))).to.equal('v1');
  expect(reviewsVersion(sh(page.find((c) => c.includes('end-user: jason'))!))).to.equal('v2');
}

function checkOperatorCommands(commands: readonly string[], proxyName: string): void {
  const metrics = commands.find((c) => c.includes('/stats/prometheus'))!;
  expect(sh(metrics)).to.contain('istio_requests_total{');
  const status = commands.find((c) => c.includes('proxy-status'))!;
  expect(sh(status)).to.contain(proxyName).and.to.contain('SYNCED');
  const routes = commands.find((c) => c.includes('proxy-config routes'))!;
  expect(sh(routes)).to.contain('reviews.default.svc.cluster.local');
}

function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, iptables)';
  for (const [cmd, args] of [['ip', ['netns', 'list']], ['iptables', ['--version']], ['setpriv', ['--version']], ['curl', ['--version']]] as const) {
    try { execFileSync(cmd, args, { stdio: 'ignore' }); } catch { return `needs ${cmd}`; }
  }
  return undefined;
}

describe('npm run demo', function () {
  this.timeout(90_000);
  let demo: Demo | undefined;

  afterEach(async () => {
    if (demo && demo.proc.exitCode === null && demo.proc.signalCode === null) {
      demo.proc.kill('SIGINT');
      await demo.exited;
    }
    demo = undefined;
  });

  it('netns mode (root): namespaces with agents, capture, DNS and proxies; routing by header; Ctrl-C removes everything', async function () {
    const skip = netnsSkipReason();
    if (skip) this.skip();
    demo = startDemo(['--mode', 'netns', '--timeout', '70']);
    await waitFor(demo, 'demo ready.', 80_000);
    const runDir = runDirOf(demo);
    const pids = pidsOf(runDir);
    const commands = printedCommands(demo);
    checkRouting(commands);
    // The app in the productpage namespace calls a name only the mesh knows (DNS proxy + capture).
    const inNs = commands.find((c) => c.startsWith('ip netns exec'))!;
    expect(JSON.parse(sh(inNs))).to.include({ service: 'reviews', version: 'v1' });
    checkOperatorCommands(commands, 'productpage');

    demo.proc.kill('SIGINT');
    expect(await demo.exited).to.equal(0);
    expect(demo.lines.join('\n')).to.contain('everything removed');
    expect(execFileSync('ip', ['netns', 'list']).toString()).not.to.contain('trellis-demo-');
    expect(execFileSync('ip', ['-o', 'link', 'show']).toString()).not.to.match(/\d+: (trellis-demo|tdemo)/);
    expect(existsSync(runDir)).to.equal(false);
    expect(pids.filter(alive)).to.deep.equal([]);
  });

  it('a start-up failure (a demo port taken) is reported with the log of the process that died, and cleaned up', async function () {
    const blocker = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => blocker.once('error', reject).listen(15014, '127.0.0.1', resolve));
    try {
      demo = startDemo(['--mode', 'loopback', '--self-check', '--timeout', '30']);
      expect(await demo.exited).to.equal(1);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    const out = demo.lines.join('\n');
    expect(out).to.contain('stderr: demo: trellis-control exited (1)');
    expect(out).to.contain('TRELLIS_ERR_LISTEN: 127.0.0.1:15014 is already in use');
    expect(out).to.contain('everything removed');
    expect(existsSync(runDirOf(demo))).to.equal(false);
  });

  it('loopback mode: ingress gateway on 127.0.0.1:8080; a run after a crash removes the leftovers; --self-check', async function () {
    demo = startDemo(['--mode', 'loopback', '--timeout', '40']);
    await waitFor(demo, 'demo ready.', 45_000);
    const runDir = runDirOf(demo);
    const pids = pidsOf(runDir);
    const commands = printedCommands(demo);
    checkRouting(commands);
    checkOperatorCommands(commands, 'bookinfo-ingressgateway');

    // A crash: the demo dies without cleaning up; its children (own process groups) live on.
    demo.proc.kill('SIGKILL');
    await demo.exited;
    expect(pids.filter(alive)).to.not.deep.equal([]);

    demo = startDemo(['--mode', 'loopback', '--self-check', '--timeout', '30']);
    expect(await demo.exited, demo.lines.join('\n')).to.equal(0);
    const out = demo.lines.join('\n');
    expect(out).to.contain(`leftover: removing ${runDir}`);
    expect(out).to.contain('routing checked: no header → reviews v1, end-user: jason → reviews v2');
    expect(out).to.contain('everything removed');
    expect(existsSync(runDir)).to.equal(false);
    expect(existsSync(runDirOf(demo))).to.equal(false);
    expect(pids.filter(alive)).to.deep.equal([]);
  });
});
