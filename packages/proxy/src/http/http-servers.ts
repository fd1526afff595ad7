/**
 * The HTTP codecs: one `node:http` server and one `node:http2` server, never listening themselves; the listener
 * layer hands them connections (`emit('connection')`) after filter-chain selection and TLS termination, with the
 * connection's facts attached under CONNECTION_INFO. Every request then runs the layer stack.
 *
 * Request smuggling shapes are stopped by Node's llhttp parser before any layer runs (conflicting
 * Content-Length/Transfer-Encoding, obs-fold, invalid chunk sizes, duplicate Content-Length): `clientError` answers
 * 400 and closes the connection, with response flag DPE.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { ConnectionInfo, DownstreamRequest, DownstreamResponse, Handler, HttpContext } from './context.js';
import { forwardableRequestHeaders } from './hop-by-hop.js';
import { requestChannel } from '../telemetry/events.js';

export const CONNECTION_INFO = Symbol('trellis.connectionInfo');

export type InfoSocket = Socket & { [CONNECTION_INFO]?: ConnectionInfo };

export class HttpServers {
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  private readonly h2Sessions = new Set<http2.ServerHttp2Session>();

  constructor(private readonly handler: Handler) {
    this.h1 = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 300_000, requireHostHeader: false }, (req, res) => this.onRequest(req, res, false));
    this.h1.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
      const info = (socket as InfoSocket)[CONNECTION_INFO];
      if (socket.writable && !(socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      }
      socket.destroy();
      if (info && requestChannel.hasSubscribers && err.code !== 'ECONNRESET') {
        requestChannel.publish({ instance: info.instance, reporter: info.direction === 'outbound' ? 'source' : 'destination', protocol: 'http', cluster: '', responseCode: 400, grpcStatus: null, responseFlags: 'DPE', durationMs: 0, requestBytes: 0, responseBytes: 0, sourcePrincipal: info.peerPrincipal, destinationPrincipal: null, mtls: info.peerPrincipal !== null, destinationWorkload: null, destinationWorkloadNamespace: null });
      }
    });
    // Upgrade (WebSocket): routed like any request, then the two connections are spliced (see upstream.ts).
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      const res = new http.ServerResponse(req);
      res.assignSocket(socket);
      res.shouldKeepAlive = false;
      socket.on('error', () => socket.destroy());
      // A local reply (404, 503, redirect) to an upgrade request ends the connection.
      res.once('finish', () => socket.end());
      this.onRequest(req, res, false, { socket, head, value: String(req.headers.upgrade) });
    });
    this.h2 = http2.createServer({ settings: { initialWindowSize: 1 << 20, maxConcurrentStreams: 1000 }, maxSessionMemory: 64 }, (req, res) => this.onRequest(req, res, true));
    this.h2.on('session', (s) => { this.h2Sessions.add(s); s.once('close', () => this.h2Sessions.delete(s)); s.on('error', () => {}); });
  }

  /** Hands an accepted (and possibly TLS-terminated) connection to the HTTP/1.1 or HTTP/2 codec. */
  accept(socket: Socket, info: ConnectionInfo, h2: boolean): void {
    (socket as InfoSocket)[CONNECTION_INFO] = info;
    (h2 ? this.h2 : this.h1).emit('connection', socket);
  }

  private onRequest(req: DownstreamRequest, res: DownstreamResponse, h2: boolean, upgrade: HttpContext['upgrade'] = null): void {
    const socket = (h2 ? (req as http2.Http2ServerRequest).stream.session?.socket : req.socket) as InfoSocket | undefined;
    const info = socket?.[CONNECTION_INFO];
    if (!info) { res.writeHead(500); res.end(); return; }
    const raw = req.headers as Record<string, string | string[] | undefined>;
    const authority = (h2 ? (raw[':authority'] as string | undefined) ?? raw.host : raw.host) as string | undefined ?? '';
    const ctx: HttpContext = {
      req, res, conn: info, startNs: process.hrtime.bigint(), h2,
      method: req.method ?? 'GET', authority, path: (h2 ? (raw[':path'] as string | undefined) : req.url) ?? '/',
      headers: forwardableRequestHeaders(raw),
      routeConfig: null, vhost: null, route: null, clusterName: '', cluster: null, host: null,
      responseHeadersToAdd: [], responseHeadersToRemove: [], responseFlags: '-', upstreamPrincipal: null,
      requestBytes: 0, responseBytes: 0, grpcStatus: null, upgrade,
    };
    // While draining, HTTP/1.1 responses carry `connection: close` so clients move to another instance.
    if (this.draining && !h2) (res as http.ServerResponse).shouldKeepAlive = false;
    this.handler(ctx);
  }

  /** Stops HTTP/1.1 keep-alive reuse and sends GOAWAY on HTTP/2 sessions (graceful drain). */
  drain(): void {
    this.draining = true;
    this.h1.closeIdleConnections();
    for (const s of this.h2Sessions) s.close();
  }

  private draining = false;

  close(): void {
    this.h1.closeAllConnections();
    for (const s of this.h2Sessions) s.destroy();
  }
}
