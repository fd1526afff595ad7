/** Opening a connection to an upstream host: plain TCP, or TLS with a shared secure context, ALPN and SAN checks. */
import net from 'node:net';
import tls from 'node:tls';
import type { UpstreamTls } from '@trellis/api';
import { verifyPeerSans } from '../tls/peer-identity.js';

export interface UpstreamTlsParams {
  readonly config: UpstreamTls;
  readonly ctx: tls.SecureContext;
  readonly alpn: readonly string[];
}

export function connectUpstream(host: string, port: number, timeoutMs: number, t: UpstreamTlsParams | null, cb: (err: Error | null, socket: net.Socket | null) => void): net.Socket {
  let done = false;
  const finish = (err: Error | null, s: net.Socket | null) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    cb(err, s);
  };
  const socket: net.Socket = t
    ? tls.connect({
      host, port, secureContext: t.ctx, servername: t.config.sni ?? undefined, ALPNProtocols: [...t.alpn],
      rejectUnauthorized: true, checkServerIdentity: (_h, cert) => verifyPeerSans(t.config, cert),
    })
    : net.connect({ host, port, allowHalfOpen: true });
  socket.setNoDelay(true);
  const timer = setTimeout(() => { socket.destroy(); finish(Object.assign(new Error('upstream connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), null); }, timeoutMs || 5000);
  socket.once(t ? 'secureConnect' : 'connect', () => finish(null, socket));
  socket.once('error', (err) => finish(err, null));
  return socket;
}
