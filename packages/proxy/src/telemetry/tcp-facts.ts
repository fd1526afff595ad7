/** Access-log facts of a closed TCP connection (tcp_proxy), in the shape HTTP requests use. */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { TcpProxy } from '@trellis/api';
import type { AccessLogFacts } from './events.js';

export interface TcpFactsInput {
  readonly filter: TcpProxy;
  readonly cluster: string;
  readonly down: Socket;
  readonly destIp: string;
  readonly destPort: number;
  readonly peerPrincipal: string | null;
  readonly upstreamPrincipal: string | null;
  /** Bytes written to / read from the upstream (= received from / sent to the downstream). */
  readonly sent: number;
  readonly received: number;
  readonly flags: string;
  readonly startMs: number;
  /** `ip:port` of the downstream, read when the connection was accepted (a closed socket no longer says). */
  readonly downstreamRemote: string;
  readonly upstreamHost: string | null;
  readonly upstreamLocal: string | null;
  readonly failure: string | null;
}

const none = (): null => null;

function address(ip: string | undefined, port: number | undefined): string {
  if (!ip) return '-';
  return `${ip.includes(':') ? `[${ip}]` : ip}${port === undefined ? '' : `:${port}`}`;
}

export function remoteAddressOf(s: Socket): string {
  return address(s.remoteAddress, s.remotePort);
}

export function tcpAccessLogFacts(i: TcpFactsInput): AccessLogFacts {
  const sni = (i.down as TLSSocket & { servername?: string | false }).servername;
  const durationMs = Date.now() - i.startMs;
  return {
    startTimeMs: i.startMs, protocol: null, method: null, path: null, authority: null,
    responseCode: 0, responseCodeDetails: null, responseFlags: i.flags, connectionTerminationDetails: null,
    bytesReceived: i.sent, bytesSent: i.received, durationMs, upstreamServiceTimeMs: null,
    upstreamHost: i.upstreamHost, upstreamCluster: i.cluster, upstreamLocalAddress: i.upstreamLocal, upstreamTransportFailureReason: i.failure,
    downstreamLocalAddress: address(i.destIp, i.destPort), downstreamRemoteAddress: i.downstreamRemote,
    downstreamPeerPrincipal: i.peerPrincipal, upstreamPeerPrincipal: i.upstreamPrincipal,
    requestedServerName: typeof sni === 'string' ? sni : null, routeName: null, traceId: null,
    requestHeader: none, responseHeader: none, accessLog: i.filter.accessLog ?? [],
  };
}
