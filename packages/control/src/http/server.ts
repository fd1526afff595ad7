/**
 * The control plane's HTTP port (node:http): a small router of `HttpRoute`s. Other modules (the CA's token API)
 * hand in their routes; this module only matches, reads bodies and reports errors as `{code, message}` JSON.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { TrellisError } from '@trellis/model';

export interface HttpRoute {
  readonly method: string;
  /** Path with `:name` parameters, e.g. `/v1/tokens/:id`. */
  readonly path: string;
  /** `body` is the parsed JSON request body, or undefined when there was none. */
  handler(req: IncomingMessage, res: ServerResponse, params: Record<string, string>, body: unknown): void | Promise<void>;
}

const MAX_BODY = 1024 * 1024;

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { code, message });
}

interface Compiled { readonly route: HttpRoute; readonly parts: readonly string[] }

function match(parts: readonly string[], path: string): Record<string, string> | undefined {
  const segs = path.split('/');
  if (segs.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].startsWith(':')) {
      if (segs[i] === '') return undefined;
      params[parts[i].slice(1)] = decodeURIComponent(segs[i]);
    } else if (parts[i] !== segs[i]) return undefined;
  }
  return params;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new TrellisError('TRELLIS_ERR_HTTP_BODY', `request body larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new TrellisError('TRELLIS_ERR_HTTP_BODY', 'request body is not valid JSON');
  }
}

export class HttpServer {
  readonly #routes: Compiled[] = [];
  readonly #server: Server | HttpsServer;
  readonly #log?: (level: 'error', event: string, fields: Record<string, unknown>) => void;

  /** With `tls`, serves HTTPS (the webhook port); `setSecureContext()` then swaps the certificate for new handshakes. */
  constructor(routes: readonly HttpRoute[], log?: (level: 'error', event: string, fields: Record<string, unknown>) => void, tls?: SecureContextOptions) {
    for (const r of routes) this.#routes.push({ route: r, parts: r.path.split('/') });
    this.#log = log;
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.#handle(req, res);
    this.#server = tls ? createHttpsServer(tls, handler) : createServer(handler);
    this.#server.keepAliveTimeout = 5000;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    let pathMatched = false;
    for (const c of this.#routes) {
      const params = match(c.parts, path);
      if (!params) continue;
      pathMatched = true;
      if (c.route.method !== (req.method ?? 'GET') && !(c.route.method === 'GET' && req.method === 'HEAD')) continue;
      try {
        const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
        await c.route.handler(req, res, params, body);
      } catch (err) {
        const code = err instanceof TrellisError ? err.code : 'TRELLIS_ERR_INTERNAL';
        if (code === 'TRELLIS_ERR_INTERNAL') this.#log?.('error', 'http handler failed', { path, error: (err as Error).message });
        if (!res.headersSent) sendError(res, code === 'TRELLIS_ERR_HTTP_BODY' ? 400 : 500, code, (err as Error).message);
        else res.destroy();
      }
      return;
    }
    if (pathMatched) sendError(res, 405, 'TRELLIS_ERR_METHOD', `${req.method} is not allowed on ${path}`);
    else sendError(res, 404, 'TRELLIS_ERR_NOT_FOUND', `no such endpoint: ${path}`);
  }

  /** Listens; rejects with TRELLIS_ERR_LISTEN (`HOST:PORT is already in use`) when the port is taken. */
  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(listenError(host, port, err));
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** HTTPS only: the key and certificate for handshakes from now on. */
  setSecureContext(tls: SecureContextOptions): void {
    if ('setSecureContext' in this.#server) this.#server.setSecureContext(tls);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}

/** The one-line error for a listener that cannot bind. */
export function listenError(host: string, port: number, err: NodeJS.ErrnoException | Error): TrellisError {
  const code = (err as NodeJS.ErrnoException).code;
  const where = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const what = code === 'EADDRINUSE' || /address already in use|EADDRINUSE/i.test(err.message) ? 'is already in use'
    : code === 'EACCES' ? 'needs privileges to bind'
    : code === 'EADDRNOTAVAIL' ? 'is not an address of this host'
    : `cannot be bound (${err.message})`;
  return new TrellisError('TRELLIS_ERR_LISTEN', `${where} ${what}`, { cause: err });
}
