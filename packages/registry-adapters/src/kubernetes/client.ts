/**
 * A small Kubernetes API client on node:http/https: JSON requests and line-delimited watch streams, with
 * credentials from a kubeconfig file or from the in-cluster service account. Deliberately small (no exec
 * plugins, no auth-provider plugins); the real `@kubernetes/client-node` is used in tests to prove the fake.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { TrellisError } from '@trellis/model';

/** How to reach one API server. */
export interface KubeConnection {
  /** e.g. `https://10.0.0.1:6443` */
  readonly server: string;
  /** PEM of the CA that signs the server's certificate. */
  readonly ca?: string | Buffer;
  /** Client certificate and key (PEM). */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** Bearer token. */
  readonly token?: string;
  /** File holding a bearer token, re-read on every request (projected tokens rotate). */
  readonly tokenFile?: string;
  readonly insecureSkipTlsVerify?: boolean;
}

/** The in-cluster default: token and CA of the pod's service account. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** In-cluster credentials: `KUBERNETES_SERVICE_HOST`/`_PORT`, token and CA from the service-account directory. */
export function inClusterConnection(dir = SERVICE_ACCOUNT_DIR, env: NodeJS.ProcessEnv = process.env): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new TrellisError('TRELLIS_ERR_KUBE_CONFIG', 'not in a cluster: KUBERNETES_SERVICE_HOST is not set');
  let ca: Buffer;
  try {
    ca = readFileSync(path.join(dir, 'ca.crt'));
  } catch (err) {
    throw new TrellisError('TRELLIS_ERR_KUBE_CONFIG', `in-cluster: cannot read ${path.join(dir, 'ca.crt')}`, { cause: err });
  }
  return Object.freeze({ server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, ca, tokenFile: path.join(dir, 'token') });
}

interface KubeconfigFile {
  clusters?: { name: string; cluster: Record<string, unknown> }[];
  users?: { name: string; user: Record<string, unknown> }[];
  contexts?: { name: string; context: { cluster: string; user?: string; namespace?: string } }[];
  'current-context'?: string;
}

/** Reads a kubeconfig (the `context`, else `current-context`). Paths inside are relative to the file. */
export function loadKubeconfig(file: string, context?: string): KubeConnection {
  let doc: KubeconfigFile;
  try {
    doc = parseYaml(readFileSync(file, 'utf8')) as KubeconfigFile;
  } catch (err) {
    throw new TrellisError('TRELLIS_ERR_KUBE_CONFIG', `${file}: cannot read kubeconfig`, { cause: err });
  }
  const name = context ?? doc['current-context'];
  const ctx = doc.contexts?.find((c) => c.name === name);
  if (!ctx) throw new TrellisError('TRELLIS_ERR_KUBE_CONFIG', `${file}: context "${name ?? ''}" not found`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.context.cluster)?.cluster;
  if (!cluster || typeof cluster.server !== 'string') {
    throw new TrellisError('TRELLIS_ERR_KUBE_CONFIG', `${file}: cluster "${ctx.context.cluster}" not found or has no server`);
  }
  const user = doc.users?.find((u) => u.name === ctx.context.user)?.user ?? {};
  if (user.exec || user['auth-provider']) {
    throw new TrellisError('TRELLIS_ERR_KUBE_CONFIG', `${file}: user "${ctx.context.user}": exec and auth-provider plugins are not supported; use a token or client certificate`);
  }
  const dir = path.dirname(file);
  const data = (inline: unknown, ref: unknown): Buffer | undefined =>
    typeof inline === 'string' ? Buffer.from(inline, 'base64') : typeof ref === 'string' ? readFileSync(path.resolve(dir, ref)) : undefined;
  return Object.freeze({
    server: cluster.server,
    ca: data(cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert: data(user['client-certificate-data'], user['client-certificate']),
    key: data(user['client-key-data'], user['client-key']),
    token: typeof user.token === 'string' ? user.token : undefined,
    tokenFile: typeof user.tokenFile === 'string' ? path.resolve(dir, user.tokenFile) : undefined,
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
  });
}

/** An API error with the HTTP status (410 Gone means: re-list). */
export class KubeApiError extends TrellisError {
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('TRELLIS_ERR_KUBE_API', message, options);
  }
}

export class KubeHttpClient {
  private readonly url: URL;
  private readonly agent: http.Agent;

  constructor(
    private readonly connection: KubeConnection,
    private readonly options: { readonly timeoutMs?: number } = {},
  ) {
    this.url = new URL(connection.server);
    this.agent =
      this.url.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            ca: connection.ca,
            cert: connection.cert,
            key: connection.key,
            rejectUnauthorized: !connection.insecureSkipTlsVerify,
          })
        : new http.Agent({ keepAlive: true });
  }

  get server(): string {
    return this.connection.server;
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json', 'user-agent': 'trellis-registry', ...extra };
    let token = this.connection.token;
    if (this.connection.tokenFile) token = readFileSync(this.connection.tokenFile, 'utf8').trim();
    if (token) h.authorization = `Bearer ${token}`;
    return h;
  }

  private open(method: string, p: string, body: string | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const mod = this.url.protocol === 'https:' ? https : http;
      const basePath = this.url.pathname.replace(/\/+$/, '');
      let headers: Record<string, string>;
      try {
        headers = this.headers(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {});
      } catch (err) {
        return reject(new KubeApiError(0, `cannot read token: ${(err as Error).message}`, { cause: err }));
      }
      const req = mod.request(
        { protocol: this.url.protocol, hostname: this.url.hostname.replace(/^\[|\]$/g, ''), port: this.url.port, path: basePath + p, method, headers, agent: this.agent, signal, timeout: timeoutMs },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new KubeApiError(0, `${method} ${this.connection.server}${p}: ${err.message}`, { cause: err })));
      req.end(body);
    });
  }

  /** A JSON request; rejects with KubeApiError on a non-2xx answer. */
  async request<T>(method: string, p: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await this.open(method, p, body === undefined ? undefined : JSON.stringify(body), signal, this.options.timeoutMs ?? 30_000);
    const chunks: Buffer[] = [];
    try {
      for await (const c of res) chunks.push(c as Buffer);
    } catch (err) {
      throw new KubeApiError(0, `${method} ${p}: ${(err as Error).message}`, { cause: err });
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw new KubeApiError(status, `${method} ${p}: HTTP ${status}: ${statusMessage(text)}`);
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new KubeApiError(status, `${method} ${p}: invalid JSON`, { cause: err });
    }
  }

  /**
   * Streams a watch: calls `onOpen` once the server accepted it, then `onLine` with each JSON line. Resolves
   * when the server ends the stream; rejects with KubeApiError for a non-200 answer or a cut connection.
   */
  async stream(p: string, signal: AbortSignal, onOpen: () => void, onLine: (line: unknown) => void): Promise<void> {
    const res = await this.open('GET', p, undefined, signal, undefined);
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      throw new KubeApiError(status, `GET ${p}: HTTP ${status}: ${statusMessage(Buffer.concat(chunks).toString('utf8'))}`);
    }
    onOpen();
    let buffer = '';
    try {
      res.setEncoding('utf8');
      for await (const chunk of res) {
        buffer += chunk as string;
        let i: number;
        while ((i = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, i).trim();
          buffer = buffer.slice(i + 1);
          if (line) onLine(JSON.parse(line));
        }
      }
      if (buffer.trim()) onLine(JSON.parse(buffer));
    } catch (err) {
      if (signal.aborted) return;
      throw new KubeApiError(0, `watch ${p}: ${(err as Error).message}`, { cause: err });
    }
  }

  close(): void {
    this.agent.destroy();
  }
}

function statusMessage(text: string): string {
  try {
    const s = JSON.parse(text) as { message?: string };
    if (s?.message) return s.message;
  } catch {
    /* not a Status */
  }
  return text.trim().slice(0, 200);
}
