/** `trellis-control` as a process: start-up errors, readiness, clean shutdown. */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '../bin/trellis-control.js');

interface Run { code: number | null; stderr: string }

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('trellis-control process', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'tc-main-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const base = (): string[] => ['--state-dir', join(dir, 'state'), '--listen-xds', 'off'];

  it('exits 1 with one clear line when the HTTP port is in use', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await run([...base(), '--listen-http', `127.0.0.1:${port}`]);
      expect(r.code).to.equal(1);
      expect(r.stderr.trim().split('\n').pop()).to.equal(`TRELLIS_ERR_LISTEN: 127.0.0.1:${port} is already in use`);
    } finally {
      blocker.close();
    }
  });

  it('exits 1 with one clear line when the xDS port is in use (env variable form)', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await run([...base(), '--listen-http', 'off'], { TRELLIS_LISTEN_XDS_PLAINTEXT: `127.0.0.1:${port}` });
      expect(r.code).to.equal(1);
      expect(r.stderr.trim().split('\n').pop()).to.equal(`TRELLIS_ERR_LISTEN: 127.0.0.1:${port} is already in use`);
    } finally {
      blocker.close();
    }
  });

  it('exits 1 for a missing or unreadable config directory', async () => {
    const missing = await run([...base(), '--listen-http', 'off', '--config-dir', join(dir, 'nope')]);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.contain(`TRELLIS_ERR_CONFIG_DIR: --config-dir ${join(dir, 'nope')} does not exist`);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked');
      mkdirSync(locked);
      chmodSync(locked, 0o000);
      const r = await run([...base(), '--listen-http', 'off', '--config-dir', locked]);
      chmodSync(locked, 0o755);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.contain('is not readable');
    }
  });

  it('rejects a bad flag value with one line', async () => {
    const r = await run([...base(), '--listen-http', 'localhost'], {});
    expect(r.code).to.equal(1);
    expect(r.stderr.trim()).to.match(/^TRELLIS_ERR_CONFIG: --listen-http "localhost": expected HOST:PORT/);
  });

  it('lists every environment variable in --help', async () => {
    const p = spawn(process.execPath, [BIN, '--help'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => p.on('exit', r));
    for (const v of ['TRELLIS_CONFIG_DIR', 'TRELLIS_LISTEN_XDS_PLAINTEXT', 'TRELLIS_DEBOUNCE_MAX', 'TRELLIS_MESH_CONFIG']) expect(out).to.contain(v);
  });

  it('becomes ready, serves /debug, and exits 0 on SIGTERM', async () => {
    const cfg = join(dir, 'cfg');
    mkdirSync(cfg);
    const p = spawn(process.execPath, [BIN, ...base(), '--config-dir', cfg, '--listen-http', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const http = await new Promise<string>((resolve, reject) => {
      createInterface({ input: p.stderr }).on('line', (l) => {
        const e = JSON.parse(l) as { event: string; listener?: string; address?: string };
        if (e.event === 'listening' && e.listener === 'http') resolve(`http://${e.address}`);
      });
      p.once('exit', (c) => reject(new Error(`exited ${c}`)));
    });
    let ready = 0;
    for (let i = 0; i < 100 && ready !== 200; i++) {
      ready = (await fetch(`${http}/ready`)).status;
      if (ready !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(ready).to.equal(200);
    const reg = await (await fetch(`${http}/debug/registryz`)).json() as { shards: { shard: string; state: string }[] };
    expect(reg.shards).to.have.length(1);
    expect(reg.shards[0].state).to.equal('synced');
    const notFound = await fetch(`${http}/nope`);
    expect(notFound.status).to.equal(404);
    expect(await notFound.json()).to.deep.equal({ code: 'TRELLIS_ERR_NOT_FOUND', message: 'no such endpoint: /nope' });
    const exit = new Promise<number | null>((r) => p.once('exit', r));
    p.kill('SIGTERM');
    expect(await exit).to.equal(0);
  });
});
