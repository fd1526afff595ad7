/**
 * One DNS exchange with an upstream resolver over UDP (fresh socket, so a random source port, per query) or TCP
 * (two-byte length prefix, RFC 1035 §4.2.2). Both reject with `TRELLIS_ERR_DNS_UPSTREAM` on timeout or error;
 * a UDP reply whose id or question does not match the query is ignored (spoofing, stale replies).
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { connect } from 'node:net';
import { TrellisError } from '@trellis/api';
import type { Upstream } from './resolv-conf.js';

const upstreamError = (u: Upstream, what: string, cause?: unknown): TrellisError =>
  new TrellisError('TRELLIS_ERR_DNS_UPSTREAM', `upstream ${u.host}:${u.port} ${what}`, cause === undefined ? undefined : { cause });

export function exchangeUdp(u: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(u.host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => finish(upstreamError(u, `did not answer over UDP within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null, reply?: Buffer): void => {
      clearTimeout(timer);
      socket.removeAllListeners('message');
      socket.close();
      if (err !== null) reject(err);
      else resolve(reply!);
    };
    socket.on('error', (cause) => finish(upstreamError(u, `UDP error: ${cause.message}`, cause)));
    socket.on('message', (msg, rinfo) => {
      if (rinfo.port !== u.port || msg.length < 12 || msg.readUInt16BE(0) !== query.readUInt16BE(0)) return;
      finish(null, msg);
    });
    socket.send(query, u.port, u.host);
  });
}

export function exchangeTcp(u: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.host, port: u.port });
    let buffered = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | null, reply?: Buffer): void => {
      if (done) return;
      done = true;
      socket.destroy();
      if (err !== null) reject(err);
      else resolve(reply!);
    };
    socket.setTimeout(timeoutMs, () => finish(upstreamError(u, `did not answer over TCP within ${timeoutMs} ms`)));
    socket.on('error', (cause) => finish(upstreamError(u, `TCP error: ${cause.message}`, cause)));
    socket.on('close', () => finish(upstreamError(u, 'closed the TCP connection before answering')));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) finish(null, buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
    });
    const len = Buffer.alloc(2);
    len.writeUInt16BE(query.length, 0);
    socket.write(Buffer.concat([len, query]));
  });
}
