/**
 * What the demo starts and how it is taken down again: child processes (each in its own process group, logging to
 * `<run>/logs/<name>.log`, its pid recorded in `<run>/pids` so a later run can end it after a crash) and undo
 * steps (namespaces, links, directories) run in reverse order.
 */
import { spawn, execFile, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { appendFileSync, existsSync, openSync, closeSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

/** Every name the demo gives to things outside its run directory starts with this. */
export const PREFIX = 'trellis-demo';

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly log: string;
  readonly exited: Promise<void>;
}

export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 30_000, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Like `run`, but a non-zero exit is an error naming the command and its output. */
export async function must(cmd: string, args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

export class Supervisor {
  private readonly children: Child[] = [];
  private readonly undo: Array<{ what: string; fn: () => Promise<void> | void }> = [];

  constructor(readonly runDir: string, private readonly say: (line: string) => void) {}

  /** Starts a long-running child; its stdout and stderr go to `<run>/logs/<name>.log`. */
  start(name: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): Child {
    const log = join(this.runDir, 'logs', `${name}.log`);
    const fd = openSync(log, 'a', 0o644);
    // TRELLIS_DEMO_RUN marks the process as ours, so a later run ends only its own leftovers (pids get reused).
    const env = { ...(opts.env ?? process.env), TRELLIS_DEMO_RUN: this.runDir };
    const proc = spawn(cmd, args, { ...opts, env, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    const exited = new Promise<void>((res) => {
      proc.once('exit', () => res());
      proc.once('error', () => res());
    });
    if (proc.pid) appendFileSync(join(this.runDir, 'pids'), `${proc.pid} ${name}\n`);
    const child = { name, proc, log, exited };
    this.children.push(child);
    return child;
  }

  /** Registers an undo step; steps run last-registered first, after every child has stopped. */
  onCleanup(what: string, fn: () => Promise<void> | void): void {
    this.undo.push({ what, fn });
  }

  /** Stops the children (reverse start order, SIGTERM then SIGKILL after `graceMs`), then runs the undo steps. */
  async cleanup(graceMs = 4000): Promise<void> {
    const alive = this.children.filter((c) => c.proc.exitCode === null && c.proc.signalCode === null).reverse();
    for (const c of alive) {
      try { c.proc.kill('SIGTERM'); } catch { /* gone */ }
    }
    await Promise.all(alive.map(async (c) => {
      const t = setTimeout(() => { try { c.proc.kill('SIGKILL'); } catch { /* gone */ } }, graceMs);
      await c.exited;
      clearTimeout(t);
    }));
    while (this.undo.length > 0) {
      const step = this.undo.pop()!;
      try {
        await step.fn();
      } catch (err) {
        this.say(`cleanup: ${step.what} failed: ${(err as Error).message}`);
      }
    }
  }

  /** The last lines of a child's log, for error messages. */
  tail(child: Child, lines = 15): string {
    try {
      return readFileSync(child.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

function environOf(pid: number): string {
  try {
    return `\0${readFileSync(`/proc/${pid}/environ`, 'utf8')}`;
  } catch {
    return '';
  }
}

/** True when a process with that pid exists and its command line contains `marker`. */
export function aliveWith(pid: number, marker: string): boolean {
  return cmdlineOf(pid).includes(marker);
}

/**
 * Removes what an earlier run left behind (a crash, SIGKILL): processes listed in `/tmp/trellis-demo-*​/pids`
 * that still run, network namespaces `trellis-demo-*` (and the processes in them), links `trellis-demo*` and
 * `tdemo*`, and the old run directories. Refuses (throws) while another demo is running.
 */
export async function removeLeftovers(say: (line: string) => void, lockFile: string, root: boolean): Promise<void> {
  if (existsSync(lockFile)) {
    const pid = Number(readFileSync(lockFile, 'utf8').trim());
    if (pid && pid !== process.pid && aliveWith(pid, 'demo/main')) {
      throw new Error(`another demo is running (pid ${pid}); stop it with Ctrl-C or "kill ${pid}" first`);
    }
  }
  const tmp = tmpdir();
  for (const entry of readdirSync(tmp)) {
    if (!entry.startsWith(`${PREFIX}-`)) continue;
    const dir = join(tmp, entry);
    const pidsFile = join(dir, 'pids');
    if (existsSync(pidsFile)) {
      for (const line of readFileSync(pidsFile, 'utf8').split('\n')) {
        const pid = Number(line.split(' ')[0]);
        if (!pid) continue;
        // Only our own children: they carry TRELLIS_DEMO_RUN=<that run directory> in their environment.
        if (environOf(pid).includes(`\0TRELLIS_DEMO_RUN=${dir}\0`)) {
          say(`leftover: stopping pid ${pid} (${line.split(' ')[1] ?? '?'})`);
          try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        }
      }
    }
    say(`leftover: removing ${dir}`);
    rmSync(dir, { recursive: true, force: true });
  }
  if (!root) return;
  const ns = await run('ip', ['netns', 'list']);
  for (const line of ns.stdout.split('\n')) {
    const name = line.split(' ')[0];
    if (!name?.startsWith(`${PREFIX}-`)) continue;
    const pids = await run('ip', ['netns', 'pids', name]);
    for (const p of pids.stdout.split('\n').map(Number).filter((n) => n > 0)) {
      try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    }
    say(`leftover: deleting network namespace ${name}`);
    await run('ip', ['netns', 'delete', name]);
  }
  const links = await run('ip', ['-o', 'link', 'show']);
  for (const line of links.stdout.split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name && (name.startsWith(PREFIX) || name.startsWith('tdemo'))) {
      say(`leftover: deleting link ${name}`);
      await run('ip', ['link', 'delete', name]);
    }
  }
}
