/** Opening a connection to an upstream host: plain TCP, or TLS with a shared secure context, ALPN and SAN checks. */
import net from 'node:net';
import tls from 'node:tls';
import type { ClusterConfig, UpstreamTls } from '@trellis/api';
import { verifyPeerSans } from '../tls/peer-identity.js';

export interface UpstreamTlsParams {
  readonly config: UpstreamTls;
  readonly ctx: tls.SecureContext;
  readonly alpn: readonly string[];
}

/**
 * Source address for a connection to `host` from a cluster's bind addresses (`ClusterConfig.bindAddresses`): the one
 * of the destination's family, or undefined (the kernel picks).
 */
export function bindAddressFor(host: string, bind: ClusterConfig['bindAddresses']): string | undefined {
  return (net.isIPv6(host) ? bind.v6 : bind.v4) ?? undefined;
}

export function connectUpstream(host: string, port: number, timeoutMs: number, t: UpstreamTlsParams | null, cb: (err: Error | null, socket: net.Socket | null) => void, localAddress?: string): net.Socket {
  let done = false;
  const finish = (err: Error | null, s: net.Socket | null) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    cb(err, s);
  };
  const socket: net.Socket = t
    // tls.connect takes every socket.connect() option (localAddress too), which its types don't list.
    ? tls.connect({
      host, port, ...({ localAddress } as tls.ConnectionOptions), secureContext: t.ctx, servername: t.config.sni ?? undefined, ALPNProtocols: [...t.alpn],
      rejectUnauthorized: true, checkServerIdentity: (_h, cert) => verifyPeerSans(t.config, cert),
    })
    : net.connect({ host, port, localAddress, allowHalfOpen: true });
  socket.setNoDelay(true);
  const timer = setTimeout(() => { socket.destroy(); finish(Object.assign(new Error('upstream connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), null); }, timeoutMs || 5000);
  socket.once(t ? 'secureConnect' : 'connect', () => finish(null, socket));
  socket.once('error', (err) => finish(err, null));
  return socket;
}
