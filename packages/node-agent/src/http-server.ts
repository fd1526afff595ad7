/** Health (`/healthz/ready`: 200 when a valid certificate is served over SDS, else 503) and `/metrics`. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthServerOptions {
  readonly host: string;
  readonly port: number;
  readonly registry: Registry;
  /** Null when ready, else the reason it is not. */
  readonly notReadyReason: () => string | null;
}

export class HealthServer {
  readonly #o: HealthServerOptions;
  #server: Server | null = null;

  constructor(options: HealthServerOptions) {
    this.#o = options;
  }

  /** The bound address (after listen). */
  get address(): AddressInfo {
    return this.#server!.address() as AddressInfo;
  }

  async listen(): Promise<void> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/healthz/ready') {
        const reason = this.#o.notReadyReason();
        res.writeHead(reason === null ? 200 : 503, { 'content-type': 'text/plain' }).end(reason === null ? 'ok\n' : `${reason}\n`);
        return;
      }
      if (path === '/metrics') {
        this.#o.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.#o.registry.contentType }).end(text),
          (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
        );
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz/ready or /metrics\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port, this.#o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
