/**
 * Fixtures for the authorization integration tests: a mesh config directory (ServiceEntries whose endpoints are
 * the test's workloads, AuthorizationPolicies), in-process proxies connected to a real trellis-control over its
 * plaintext xDS port with certificates from a fake SDS, and raw HTTP/TCP clients that choose their source address.
 *
 * Every workload's inbound listener is the generated `virtualInbound`; the original destination of a connection
 * is injected from the client's source address: 127.61.1.x → the workload's HTTP port, 127.61.2.x → its TCP port.
 */
import * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import tls from 'node:tls';
import { Proxy, nodeIdentity, silentLogger } from '@trellis/proxy';
import { FakeSdsServer, type TestCa, type TestCert, issueTestCert } from '@trellis/testing';

export const spiffe = (ns: string, sa: string): string => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

export interface Workload {
  readonly name: string;
  readonly namespace: string;
  readonly sa: string;
  /** The workload's (node's) IP: its ServiceEntry endpoint address, never dialled. */
  readonly ip: string;
  readonly tcp?: boolean;
}

/** One ServiceEntry per workload: port 9080 (HTTP) → the shared HTTP app, 3306 (TCP) → the shared TCP echo. */
export function serviceEntries(workloads: readonly Workload[], ports: { http: number; tcp: number }): string {
  return workloads.map((w) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${w.name}, namespace: ${w.namespace}}
spec:
  hosts: [${w.name}.${w.namespace}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
${w.tcp ? '  - {number: 3306, name: tcp, protocol: TCP}\n' : ''}  endpoints:
  - {address: ${w.ip}, ports: {http: ${ports.http}${w.tcp ? `, tcp: ${ports.tcp}` : ''}}, labels: {app: ${w.name}}, serviceAccount: ${w.sa}}
`).join('---\n');
}

export interface MeshProxy {
  readonly workload: Workload;
  readonly proxy: Proxy;
  /** The bound port of the workload's inbound capture listener. */
  readonly inbound: number;
  stop(): Promise<void>;
}

/** Starts a proxy for `w` against the control plane's plaintext xDS address; resolves when it is ready. */
export async function startMeshProxy(o: { xds: string; ca: TestCa; workload: Workload; ports: { http: number; tcp: number } }): Promise<MeshProxy> {
  const w = o.workload;
  const sds = await new FakeSdsServer().start();
  sds.setCertificate('default', issueTestCert(o.ca, spiffe(w.namespace, w.sa)));
  sds.setTrustBundle('ROOTCA', o.ca.certPem);
  const proxy = new Proxy({
    node: nodeIdentity({ mode: 'sidecar', ip: w.ip, workloadName: w.name, namespace: w.namespace, serviceAccount: w.sa, labels: { app: w.name }, clusterId: 'c1', network: '' }),
    xds: { target: o.xds, credentials: grpc.credentials.createInsecure() },
    sdsSocket: sds.socketPath,
    logger: silentLogger(),
    ports: { outbound: 0, inbound: 0, admin: 0, prometheus: 0, health: 0 },
    bindAddress: '127.0.0.1', adminAddress: '127.0.0.1', statusAddress: '127.0.0.1',
    namespace: w.namespace, serviceAccount: w.sa, workloadName: w.name,
    originalDst: (s) => {
      const third = (s.remoteAddress ?? '').replace(/^::ffff:/, '').split('.')[2];
      return { address: w.ip, port: third === '2' ? o.ports.tcp : o.ports.http };
    },
  });
  try {
    await proxy.start();
    await proxy.whenReady();
  } catch (err) {
    await proxy.close();
    await sds.stop();
    throw err;
  }
  const inbound = proxy.listeners.port('virtualInbound');
  if (inbound === undefined) throw new Error(`${w.name}: virtualInbound is not bound`);
  return { workload: w, proxy, inbound, stop: async () => { await proxy.close(); await sds.stop(); } };
}

export interface RawReply {
  /** 0 when the connection closed without a response. */
  readonly status: number;
  readonly body: string;
  readonly raw: string;
}

/** Writes `payload` on a fresh connection and collects everything until the peer closes. */
function exchange(socket: net.Socket, payload: Buffer): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const timer = setTimeout(() => socket.destroy(), 5000);
    socket.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    socket.on('close', () => { clearTimeout(timer); resolve(out); });
    socket.on('error', () => socket.destroy());
    socket.write(payload);
  });
}

function parse(raw: string): RawReply {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
  const sep = raw.indexOf('\r\n\r\n');
  return { status: m ? Number(m[1]) : 0, body: sep >= 0 ? raw.slice(sep + 4) : '', raw };
}

function request(method: string, target: string, headers: Record<string, string>): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`, 'host: web', 'connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (method !== 'GET' && method !== 'HEAD' && !('content-length' in headers)) lines.push('content-length: 0');
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** A plaintext HTTP/1.1 request with a verbatim request-target, from source address `from`. */
export async function rawHttp(port: number, from: string, target: string, o: { method?: string; headers?: Record<string, string> } = {}): Promise<RawReply> {
  const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
  return parse(await exchange(s, request(o.method ?? 'GET', target, o.headers ?? {})));
}

/** An HTTP/1.1 request over mTLS presenting `cert` (a workload certificate of the test CA). */
export async function mtlsHttp(port: number, from: string, ca: TestCa, cert: TestCert, target: string, o: { method?: string; headers?: Record<string, string> } = {}): Promise<RawReply> {
  const s = tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress: from }), ca: ca.certPem, cert: cert.chainPem, key: cert.keyPem, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined });
  await new Promise<void>((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
  return parse(await exchange(s, request(o.method ?? 'GET', target, o.headers ?? {})));
}

/** Opens a TCP connection (mTLS when `cert` is given), writes `payload`, returns what came back before the close. */
export async function tcpExchange(port: number, from: string, payload: string, tlsOpts?: { ca: TestCa; cert: TestCert }): Promise<string> {
  let s: net.Socket;
  if (tlsOpts) {
    const t = tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress: from }), ca: tlsOpts.ca.certPem, cert: tlsOpts.cert.chainPem, key: tlsOpts.cert.keyPem, checkServerIdentity: () => undefined });
    const ok = await new Promise<boolean>((resolve) => { t.once('secureConnect', () => resolve(true)); t.once('error', () => resolve(false)); t.once('close', () => resolve(false)); });
    if (!ok) return '';
    s = t;
  } else {
    s = net.connect({ host: '127.0.0.1', port, localAddress: from });
  }
  return new Promise((resolve) => {
    let out = '';
    const timer = setTimeout(() => s.destroy(), 3000);
    s.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.length >= payload.length) s.end();
    });
    s.on('close', () => { clearTimeout(timer); resolve(out); });
    s.on('error', () => s.destroy());
    s.write(payload);
  });
}
