/**
 * Diagnostics channels the data path publishes on (hot paths don't log: metrics and access logs subscribe).
 * A message is published once per finished request / closed TCP connection.
 */
import diagnostics_channel from 'node:diagnostics_channel';

export interface RequestEvent {
  /** The publishing proxy instance. */
  readonly instance: string;
  readonly reporter: 'source' | 'destination';
  readonly protocol: 'http' | 'grpc';
  readonly cluster: string;
  readonly responseCode: number;
  readonly grpcStatus: string | null;
  readonly responseFlags: string;
  readonly durationMs: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** SPIFFE id of the downstream peer (inbound mTLS), or null. */
  readonly sourcePrincipal: string | null;
  /** SPIFFE id of the upstream peer (outbound mTLS), or null. */
  readonly destinationPrincipal: string | null;
  readonly mtls: boolean;
  readonly destinationWorkload: string | null;
  readonly destinationWorkloadNamespace: string | null;
}

export interface TcpEvent {
  readonly instance: string;
  readonly kind: 'open' | 'close' | 'bytes';
  readonly reporter: 'source' | 'destination';
  readonly cluster: string;
  readonly sentBytes: number;
  readonly receivedBytes: number;
  readonly sourcePrincipal: string | null;
  readonly destinationPrincipal: string | null;
  readonly mtls: boolean;
  readonly responseFlags: string;
}

export const requestChannel = diagnostics_channel.channel('trellis:proxy:request');
export const tcpChannel = diagnostics_channel.channel('trellis:proxy:tcp');
