/**
 * Process helpers shared by the end-to-end tests: start a Trellis binary under Node, capture its output, wait for
 * lines in it (the binaries log `{"event":"listening",...}` with their bound ports), run trellisctl, poll HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CONTROL_BIN = join(ROOT, 'packages/control/bin/trellis-control.js');
export const CTL_BIN = join(ROOT, 'packages/control/bin/trellisctl.js');
export const AGENT_BIN = join(ROOT, 'packages/node-agent/bin/trellis-agent.js');

export interface Proc {
  readonly child: ChildProcess;
  readonly output: () => string;
  /** Resolves with the first capture of `re` in the output so far or to come. */
  readonly waitFor: (re: RegExp, what: string, timeoutMs?: number) => Promise<string>;
  readonly exit: Promise<number | null>;
}

export function start(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, NOTIFY_SOCKET: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const listeners = new Set<() => void>();
  for (const s of [child.stdout!, child.stderr!]) {
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      text += c;
      for (const l of [...listeners]) l();
    });
  }
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  const waitFor = (re: RegExp, what: string, timeoutMs = 20_000): Promise<string> => new Promise((resolve, reject) => {
    const check = (): void => {
      const m = re.exec(text);
      if (m) {
        listeners.delete(check);
        clearTimeout(timer);
        resolve(m[1] ?? m[0]);
      }
    };
    const timer = setTimeout(() => {
      listeners.delete(check);
      reject(new Error(`timed out waiting for ${what}; output:\n${text}`));
    }, timeoutMs);
    listeners.add(check);
    void exit.then((code) => {
      if (listeners.delete(check)) {
        clearTimeout(timer);
        reject(new Error(`exited ${code} before ${what}; output:\n${text}`));
      }
    });
    check();
  });
  return { child, output: () => text, waitFor, exit };
}

export async function stop(p: Proc): Promise<number | null> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  return p.exit;
}

export async function ctl(args: string[]): Promise<{ code: number | null; out: string }> {
  const p = start(CTL_BIN, args);
  const code = await p.exit;
  return { code, out: p.output() };
}

export async function waitHttp(url: string, ok: (status: number) => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await fetch(url).then((r) => r.status, () => 0);
    if (ok(status)) return;
    if (Date.now() > deadline) throw new Error(`${url}: still ${status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A running trellis-control with the addresses its listeners announced (by listener name: xds, xds-plaintext, http). */
export interface ControlProcess {
  readonly proc: Proc;
  readonly addresses: Readonly<Record<string, string>>;
  /** Output lines so far (stdout and stderr). */
  readonly lines: readonly string[];
  stop(): Promise<number | null>;
}

/** Starts trellis-control and waits until each of `listeners` has logged its bound address. */
export async function startControl(args: string[], listeners: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ControlProcess> {
  const proc = start(CONTROL_BIN, args, env);
  const addresses: Record<string, string> = {};
  try {
    for (const l of listeners) {
      addresses[l] = await proc.waitFor(new RegExp(`"listener":"${l.replace(/[-]/g, '\\-')}","address":"([^"]+)"`), `the control plane ${l} listener`);
    }
  } catch (err) {
    await stop(proc);
    throw err;
  }
  return {
    proc,
    addresses,
    get lines() { return proc.output().split('\n').filter((l) => l !== ''); },
    stop: () => stop(proc),
  };
}

/** Runs trellisctl to completion. */
export async function runCtl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CTL_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  const [code] = await once(child, 'close') as [number | null];
  return { code, stdout, stderr };
}

/** Polls `check` (every 100 ms) until it returns a truthy value, which it resolves with; rejects naming `what` after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
