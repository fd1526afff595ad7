/**
 * Helpers for the gateway tests (test/gateway-*.test.ts): free loopback ports for Gateway servers, credential
 * directories in the layout `trellis-proxy --gateway-credentials` reads, a gateway process, the demo's Bookinfo
 * apps, and TLS/HTTP clients that report what the server presented.
 */
import { renameSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { ROOT, start, type Proc } from './processes.js';

export const PROXY_BIN = join(ROOT, 'packages/proxy/bin/trellis-proxy.js');
export const BOOKINFO_APP = join(ROOT, 'demo/app/bookinfo.mjs');

/**
 * A free port for a Gateway server (Gateway servers name real port numbers). Picked at random below the kernel's
 * ephemeral range, so that OS-chosen ports (port 0) of the apps and servers started later never take it, and
 * checked by binding it on 0.0.0.0. `taken` holds the ports already handed out in this run.
 */
const taken = new Set<number>();
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    const s = net.createServer();
    const ok = await new Promise<boolean>((r) => { s.once('error', () => r(false)); s.listen(port, '0.0.0.0', () => r(true)); });
    if (!ok) continue;
    await new Promise<void>((r) => s.close(() => r()));
    taken.add(port);
    return port;
  }
}

/** Writes `<dir>/<name>/{tls.crt,tls.key[,ca.crt]}` atomically per file (write a temp file, rename). */
export function writeCredential(dir: string, name: string, files: { cert?: string; key?: string; ca?: string }): void {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const put = (f: string, text: string) => { writeFileSync(join(d, `.${f}.tmp`), text); renameSync(join(d, `.${f}.tmp`), join(d, f)); };
  if (files.cert !== undefined) put('tls.crt', files.cert);
  if (files.key !== undefined) put('tls.key', files.key);
  if (files.ca !== undefined) put('ca.crt', files.ca);
}

export interface GatewayProcess {
  readonly proc: Proc;
  readonly adminPort: number;
  readonly healthPort: number;
  stop(): Promise<void>;
}

/** `trellis-proxy --mode gateway` on plaintext xDS, listeners on 127.0.0.1 (or `listenerAddress`); resolves once it logged its ports. */
export async function startGateway(o: { xds: string; labels: string; name: string; namespace?: string; credentials?: string; sdsSocket?: string; listenerAddress?: string; ip?: string; env?: NodeJS.ProcessEnv }): Promise<GatewayProcess> {
  const proc = start(PROXY_BIN, [
    '--mode', 'gateway', '--xds-address', o.xds, '--xds-plaintext', '--sds-socket', o.sdsSocket ?? '',
    '--namespace', o.namespace ?? 'default', '--workload-name', o.name, '--labels', o.labels, '--listener-address', o.listenerAddress ?? '127.0.0.1',
    '--admin-port', '0', '--prometheus-port', '0', '--health-port', '0', '--concurrency', '1', '--drain-time', '0',
    ...(o.credentials ? ['--gateway-credentials', o.credentials] : []),
    ...(o.ip ? ['--ip', o.ip] : []),
  ], o.env);
  const started = /"msg":"trellis-proxy started".*?"admin":(\d+),"prometheus":\d+,"health":(\d+)/;
  await proc.waitFor(started, `${o.name} to start`);
  const m = started.exec(proc.output())!;
  return {
    proc, adminPort: Number(m[1]), healthPort: Number(m[2]),
    stop: async () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
      await proc.exit;
    },
  };
}

/** A demo Bookinfo app on `host` (127.0.0.1) with an OS-chosen port. */
export async function startBookinfo(role: string, version: string, env: NodeJS.ProcessEnv = {}, host = '127.0.0.1'): Promise<{ proc: Proc; port: number }> {
  const proc = start(BOOKINFO_APP, [role, '--version', version, '--port', '0', '--host', host], env);
  const addr = await proc.waitFor(/"msg":"bookinfo listening".*?"address":"([^"]+)"/, `bookinfo ${role} ${version}`);
  return { proc, port: Number(addr.split(':').pop()) };
}

export interface HttpReply { status: number; headers: http.IncomingHttpHeaders; body: string }

export function httpGet(port: number, path: string, host: string, headers: Record<string, string> = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host, ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

export interface TlsReply extends HttpReply {
  /** The server certificate's serial and subject alt names, as node:tls reports them. */
  readonly peer: { serial: string; san: string };
  readonly reusedSocket: boolean;
}

/** HTTPS GET to 127.0.0.1 with SNI `servername`, trusting `ca`, optionally with a client certificate. */
export function httpsGet(port: number, servername: string, path: string, o: { ca: string; cert?: string; key?: string; agent?: https.Agent; anyServerName?: boolean }): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, path, servername, headers: { host: servername }, ca: o.ca, cert: o.cert, key: o.key,
      // mesh certificates carry a SPIFFE id, no DNS name: the chain is still verified against `ca`
      ...(o.anyServerName ? { checkServerIdentity: () => undefined } : {}),
      ...(o.agent ? { agent: o.agent } : { agent: false }),
    }, (res) => {
      const c = (res.socket as tls.TLSSocket).getPeerCertificate();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (x: string) => (body += x));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, peer: { serial: c.serialNumber, san: c.subjectaltname ?? '' }, reusedSocket: req.reusedSocket }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

/** A TLS handshake only: the server certificate, or the error that ended it (client-certificate refusals show on the first request instead: see httpsGet). */
export function tlsHandshake(port: number, servername: string, o: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean; maxVersion?: tls.SecureVersion } = {}): Promise<{ ok: true; serial: string; san: string; subjectCn: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca: o.ca, cert: o.cert, key: o.key, rejectUnauthorized: o.rejectUnauthorized ?? true, ALPNProtocols: ['http/1.1'], ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}) });
    const timer = setTimeout(() => { s.destroy(); resolve({ ok: false, error: 'timed out' }); }, 5000);
    s.once('secureConnect', () => {
      const c = s.getPeerCertificate();
      clearTimeout(timer);
      s.destroy();
      resolve({ ok: true, serial: c.serialNumber, san: c.subjectaltname ?? '', subjectCn: String(c.subject?.CN ?? '') });
    });
    s.once('error', (err) => { clearTimeout(timer); s.destroy(); resolve({ ok: false, error: err.message }); });
  });
}

/** Connects, writes `payload`, returns what comes back (an echo ends it early) within `ms`. */
export function tcpExchange(port: number, payload: string, ms = 1000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => { out += d.toString('utf8'); if (out.length >= payload.length) s.end(); });
    s.on('error', () => resolve(out));
    s.on('close', () => resolve(out));
    s.write(payload);
    setTimeout(() => { s.destroy(); resolve(out); }, ms);
  });
}
