/**
 * Helpers for the multi-namespace VM end-to-end test (test/vm-mesh-e2e.test.ts): run commands and long-lived
 * processes inside network namespaces the test created, poll with a bound, and read a pcap file.
 *
 * Every command has a timeout; every spawned process is remembered so that `killAll` can end it.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (never rejects); `timeoutMs` kills it. */
export function run(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, [...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Runs a command and rejects with its output when it fails. */
export async function must(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** `ip netns exec NS …` to completion. */
export const inNs = (ns: string, args: readonly string[], timeoutMs?: number): Promise<RunResult> => run('ip', ['netns', 'exec', ns, ...args], timeoutMs);
export const mustInNs = (ns: string, args: readonly string[], timeoutMs?: number): Promise<string> => must('ip', ['netns', 'exec', ns, ...args], timeoutMs);

/** A long-lived process started inside a namespace; its stdout and stderr are kept. */
export interface NsProc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: () => boolean;
  readonly exit: Promise<void>;
}

export class Processes {
  readonly #all: NsProc[] = [];

  /** `ip netns exec NS argv…` (ip execs the command, so the child's pid is the command's). */
  start(name: string, ns: string, argv: readonly string[], options: SpawnOptions = {}): NsProc {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...options, env: { ...process.env, NOTIFY_SOCKET: '', ...options.env } });
    let text = '';
    for (const s of [child.stdout, child.stderr]) {
      s?.setEncoding('utf8');
      s?.on('data', (c: string) => { text = (text + c).slice(-400_000); });
    }
    const exit = once(child, 'exit').then(() => undefined, () => undefined);
    const p: NsProc = { name, child, output: () => text, exited: () => child.exitCode !== null || child.signalCode !== null, exit };
    this.#all.push(p);
    return p;
  }

  /** Throws naming the first process that has exited, with the tail of its output. */
  assertAlive(): void {
    for (const p of this.#all) {
      if (p.exited() && !p.name.startsWith('tcpdump')) throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.output().slice(-4000)}`);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`, for one process. */
  static async stop(p: NsProc, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
    if (p.exited()) return;
    p.child.kill(signal);
    const timer = setTimeout(() => { if (!p.exited()) p.child.kill('SIGKILL'); }, graceMs);
    await p.exit;
    clearTimeout(timer);
  }

  async killAll(): Promise<void> {
    await Promise.all(this.#all.map((p) => Processes.stop(p)));
  }

  /** Output of every process, for a failure message. */
  dump(): string {
    return this.#all.map((p) => `----- ${p.name} -----\n${p.output().slice(-3000)}`).join('\n');
  }
}

/** Polls `check` every `intervalMs` until it returns a non-undefined value; rejects after `timeoutMs`. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** `curl` inside a namespace: status (0 when the connection failed) and body. */
export async function curlIn(ns: string, url: string, maxSeconds = 5): Promise<{ status: number; body: string; stderr: string; code: number | null }> {
  const r = await inNs(ns, ['curl', '-sS', '-m', String(maxSeconds), '-o', '-', '-w', '\n%{http_code}', url], (maxSeconds + 5) * 1000);
  const nl = r.stdout.lastIndexOf('\n');
  const status = Number(r.stdout.slice(nl + 1)) || 0;
  return { status, body: nl >= 0 ? r.stdout.slice(0, nl) : '', stderr: r.stderr, code: r.code };
}

/** One TCP segment with payload from a classic pcap file (Ethernet, IPv4). */
export interface Segment {
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly payload: Buffer;
}

/** Parses a libpcap file written by `tcpdump -w` (Ethernet link type, IPv4 TCP only; other frames skipped). */
export function tcpSegments(file: Buffer): Segment[] {
  if (file.length < 24) return [];
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (o: number) => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const linkType = u32(20);
  const out: Segment[] = [];
  for (let off = 24; off + 16 <= file.length;) {
    const incl = u32(off + 8);
    const frame = file.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    let ip = 0;
    if (linkType === 1) {
      if (frame.length < 14 || frame.readUInt16BE(12) !== 0x0800) continue;
      ip = 14;
    } else if (linkType === 113) { // Linux cooked capture
      if (frame.length < 16 || frame.readUInt16BE(14) !== 0x0800) continue;
      ip = 16;
    } else continue;
    if (frame.length < ip + 20 || frame[ip]! >> 4 !== 4 || frame[ip + 9] !== 6) continue;
    const ihl = (frame[ip]! & 0x0f) * 4;
    const total = frame.readUInt16BE(ip + 2);
    const tcp = ip + ihl;
    const dataOff = (frame[tcp + 12]! >> 4) * 4;
    const payload = frame.subarray(tcp + dataOff, ip + total);
    if (payload.length === 0) continue;
    const addr = (o: number) => `${frame[o]}.${frame[o + 1]}.${frame[o + 2]}.${frame[o + 3]}`;
    out.push({ src: addr(ip + 12), dst: addr(ip + 16), srcPort: frame.readUInt16BE(tcp), dstPort: frame.readUInt16BE(tcp + 2), payload: Buffer.from(payload) });
  }
  return out;
}
