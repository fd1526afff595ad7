/** One multiplexed HTTP/2 session per upstream host (h2c or TLS with ALPN h2), re-opened when it goes away. */
import http2 from 'node:http2';
import type { UpstreamTlsParams } from './connect.js';
import { connectUpstream } from './connect.js';

export class H2Upstream {
  private session: http2.ClientHttp2Session | null = null;
  private closing = false;

  constructor(private readonly host: string, private readonly port: number, private readonly connectTimeoutMs: number, private readonly tls: UpstreamTlsParams | null, private readonly localAddress?: string) {}

  /** The current session, connecting when needed. */
  get(): http2.ClientHttp2Session {
    const s = this.session;
    if (s && !s.closed && !s.destroyed) return s;
    const authority = `${this.tls ? 'https' : 'http'}://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
    const session = http2.connect(authority, {
      createConnection: () => connectUpstream(this.host, this.port, this.connectTimeoutMs, this.tls, () => {}, this.localAddress),
      settings: { enablePush: false, initialWindowSize: 1 << 20 },
    });
    session.on('error', () => {});
    session.on('close', () => { if (this.session === session) this.session = null; });
    session.on('goaway', () => { if (this.session === session) this.session = null; });
    this.session = session;
    return session;
  }

  /** Finishes in-flight streams, then closes. */
  close(): void {
    this.closing = true;
    this.session?.close();
    this.session = null;
  }

  get isClosing(): boolean {
    return this.closing;
  }
}
