/**
 * Base of the registry fakes: an HTTP server on a loopback port chosen by the OS, with `stop()`/`restart()` on
 * the same port to simulate an outage (open connections, including blocked long polls and watches, are cut).
 */
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export abstract class HttpFake {
  private server: http.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;

  /** Closed by stop(): long-running handlers (blocking queries, watches) listen to it to end early. */
  protected outage = new AbortController();

  get port(): number {
    return this.boundPort;
  }

  /** `http://127.0.0.1:<port>` */
  get url(): string {
    return `http://127.0.0.1:${this.boundPort}`;
  }

  protected abstract handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): Promise<void> | void;

  /** Starts listening (port 0 the first time, the same port after stop()). */
  async start(): Promise<this> {
    if (this.server) return this;
    this.outage = new AbortController();
    // Every held request (blocking query, watch) listens for the outage: thousands are normal in scale tests.
    setMaxListeners(0, this.outage.signal);
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        Promise.resolve()
          .then(() => this.handle(req, res, Buffer.concat(chunks).toString('utf8')))
          .catch((err: unknown) => {
            if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
            res.end(String((err as Error)?.stack ?? err));
          });
      });
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.boundPort, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  /** Simulates an outage: stops listening and cuts every open connection. State is kept. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.outage.abort();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }

  /** Listens again on the same port. */
  async restart(): Promise<void> {
    await this.start();
  }

  async close(): Promise<void> {
    await this.stop();
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Resolves after `ms`, or early when any of `signals` aborts. */
export function delay(ms: number, ...signals: AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      for (const s of signals) s.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    for (const s of signals) {
      if (s.aborted) return done();
      s.addEventListener('abort', done, { once: true });
    }
  });
}
