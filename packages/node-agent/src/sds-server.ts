/**
 * Envoy SDS v3 server (`envoy.service.secret.v3.SecretDiscoveryService`) on a Unix domain socket.
 *
 * Resources: `default` (Secret.tls_certificate: the leaf and intermediates, and the private key, inline) and
 * `ROOTCA` (Secret.validation_context.trusted_ca: every trusted root). StreamSecrets is state of the world per
 * stream: each request carries the full set of names wanted; a response carries every wanted, known secret with
 * `version_info` = the secret generation and a fresh nonce. A request echoing the last nonce is an ACK (no
 * `error_detail`) or a NACK (with it: logged, counted, nothing resent until the next rotation). A rotation is
 * pushed at once to every stream that asked for something. Unknown names get nothing and a log line.
 * DeltaSecrets is answered UNIMPLEMENTED.
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { encodeAny, grpcService, TrellisError, TYPE_URL, type AnyMessage } from '@trellis/api';
import type { Identity } from './identity.js';
import { splitPem } from './identity.js';
import { silentLogger, type AgentObserver, type Logger } from './observer.js';

export const SECRET_DEFAULT = 'default';
export const SECRET_ROOTCA = 'ROOTCA';

/** The secrets being served, replaced as a whole on rotation. */
export interface SecretSet {
  readonly identity: Identity;
  /** Every trusted root, PEM. */
  readonly rootsPem: string;
}

interface DiscoveryRequest {
  version_info?: string;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
  node?: { id?: string } | null;
}

interface DiscoveryResponse {
  version_info: string;
  resources: AnyMessage[];
  type_url: string;
  nonce: string;
}

/** Roots for ROOTCA: the bundle's roots plus the chain's last certificate when it is a root not listed yet. */
export function trustBundle(bundleRootsPem: string, identity: Identity): string {
  const roots = splitPem(bundleRootsPem);
  const chainRoot = identity.chainPem.length > 1 ? identity.chainPem[identity.chainPem.length - 1]! : undefined;
  const norm = (p: string): string => p.replace(/\s+/g, '');
  if (chainRoot && !roots.some((r) => norm(r) === norm(chainRoot))) roots.push(chainRoot);
  return roots.join('');
}

/** Encodes one secret by name, or null for a name this agent does not serve. */
export function encodeSecret(name: string, secrets: SecretSet): AnyMessage | null {
  const { identity } = secrets;
  if (name === SECRET_DEFAULT) {
    // Leaf and intermediates; the root is what peers trust, not something to present.
    const presented = identity.chainPem.length > 1 ? identity.chainPem.slice(0, -1) : identity.chainPem;
    return encodeAny(TYPE_URL.secret, {
      name,
      tls_certificate: {
        certificate_chain: { inline_bytes: Buffer.from(presented.join('')) },
        private_key: { inline_bytes: Buffer.from(identity.keyPem) },
      },
    });
  }
  if (name === SECRET_ROOTCA) {
    return encodeAny(TYPE_URL.secret, { name, validation_context: { trusted_ca: { inline_bytes: Buffer.from(secrets.rootsPem) } } });
  }
  return null;
}

export interface SdsServerOptions {
  readonly socketPath: string;
  /** Group name or numeric gid for the socket and its directory; empty keeps the process's group. */
  readonly socketGroup?: string;
  readonly logger?: Logger;
  readonly observer?: AgentObserver;
}

/** Resolves a group name via /etc/group, or a numeric gid. Throws TRELLIS_ERR_CONFIG for an unknown group. */
export function resolveGid(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text = '';
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    // fall through to the error below
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new TrellisError('TRELLIS_ERR_CONFIG', `socket group "${group}" is not in ${groupFile}`);
}

interface StreamState {
  names: Set<string>;
  lastNonce: string;
  lastVersion: string;
  /** Names last sent, so a request for new names is answered even at the same version. */
  sentNames: Set<string>;
}

export class SdsServer {
  readonly #o: SdsServerOptions;
  readonly #log: Logger;
  readonly #gid: number;
  readonly #streams = new Map<grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>, StreamState>();
  #server: grpc.Server | null = null;
  #secrets: SecretSet | null = null;
  #generation = 0;
  #nonce = 0;

  /** Throws TRELLIS_ERR_CONFIG at once for an unknown socket group (before any certificate work). */
  constructor(options: SdsServerOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#gid = options.socketGroup ? resolveGid(options.socketGroup) : -1;
  }

  /** Number of open StreamSecrets streams. */
  get clients(): number {
    return this.#streams.size;
  }

  /** Replaces the served secrets and pushes them to every connected stream. */
  update(secrets: SecretSet): void {
    this.#secrets = secrets;
    this.#generation++;
    for (const [stream, state] of this.#streams) this.#push(stream, state);
  }

  /** Creates the socket directory (0750), removes a stale socket, binds, and sets the socket to 0660. */
  async listen(): Promise<void> {
    const path = this.#o.socketPath;
    const dir = dirname(path);
    const gid = this.#gid;
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    chmodSync(dir, 0o750);
    if (gid >= 0) chownSync(dir, -1, gid);
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket()) throw new TrellisError('TRELLIS_ERR_CONFIG', `SDS socket path ${path} exists and is not a socket`);
      unlinkSync(path);
    }
    const server = new grpc.Server();
    const Service = grpcService('envoy.service.secret.v3.SecretDiscoveryService');
    server.addService(Service.service, {
      StreamSecrets: (stream: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => this.#onStream(stream),
      FetchSecrets: (call: grpc.ServerUnaryCall<DiscoveryRequest, DiscoveryResponse>, cb: grpc.sendUnaryData<DiscoveryResponse>) => this.#onFetch(call, cb),
      DeltaSecrets: (stream: grpc.ServerDuplexStream<unknown, unknown>) => {
        stream.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'DeltaSecrets is not served; use StreamSecrets' });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${path}`, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve()));
    });
    chmodSync(path, 0o660);
    if (gid >= 0) chownSync(path, -1, gid);
    this.#server = server;
    this.#log.info('SDS serving', { socket: path });
  }

  /** Ends every stream and closes the socket. */
  async close(): Promise<void> {
    for (const stream of this.#streams.keys()) stream.end();
    this.#streams.clear();
    this.#o.observer?.sdsClients?.(0);
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    server.forceShutdown();
    try {
      unlinkSync(this.#o.socketPath);
    } catch {
      // already gone
    }
  }

  #onStream(stream: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    const state: StreamState = { names: new Set(), lastNonce: '', lastVersion: '', sentNames: new Set() };
    this.#streams.set(stream, state);
    this.#o.observer?.sdsClients?.(this.#streams.size);
    const drop = (): void => {
      if (this.#streams.delete(stream)) this.#o.observer?.sdsClients?.(this.#streams.size);
    };
    stream.on('data', (request: DiscoveryRequest) => this.#onRequest(stream, state, request));
    stream.on('end', () => {
      drop();
      stream.end();
    });
    stream.on('error', drop);
    stream.on('cancelled', drop);
    stream.on('close', drop);
  }

  #onRequest(stream: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>, state: StreamState, request: DiscoveryRequest): void {
    if (request.type_url && request.type_url !== TYPE_URL.secret) {
      this.#log.warn('SDS request for a type this server does not serve', { typeUrl: request.type_url });
      return;
    }
    const names = new Set(request.resource_names ?? []);
    const isResponseToUs = request.response_nonce !== undefined && request.response_nonce !== '' && request.response_nonce === state.lastNonce;
    if (isResponseToUs && request.error_detail) {
      this.#log.warn('SDS NACK', { node: request.node?.id, version: state.lastVersion, error: request.error_detail.message });
    }
    const unknown = [...names].filter((n) => n !== SECRET_DEFAULT && n !== SECRET_ROOTCA);
    if (unknown.length > 0) this.#log.warn('SDS request for unknown secrets; they get nothing', { names: unknown, node: request.node?.id });
    state.names = names;
    const known = [...names].filter((n) => !unknown.includes(n));
    const sameNames = known.length === state.sentNames.size && known.every((n) => state.sentNames.has(n));
    // An ACK or NACK of what was sent asks for nothing new (a rotation is pushed by update()); so does a
    // late request echoing an older nonce. Anything else (first request, changed names) is answered now.
    if (sameNames && request.response_nonce) return;
    this.#push(stream, state);
  }

  #push(stream: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>, state: StreamState): void {
    const secrets = this.#secrets;
    if (!secrets) return;
    const resources: AnyMessage[] = [];
    const sent = new Set<string>();
    for (const name of state.names) {
      const any = encodeSecret(name, secrets);
      if (any) {
        resources.push(any);
        sent.add(name);
      }
    }
    if (resources.length === 0) return;
    state.lastVersion = String(this.#generation);
    state.lastNonce = String(++this.#nonce);
    state.sentNames = sent;
    stream.write({ version_info: state.lastVersion, resources, type_url: TYPE_URL.secret, nonce: state.lastNonce });
  }

  #onFetch(call: grpc.ServerUnaryCall<DiscoveryRequest, DiscoveryResponse>, cb: grpc.sendUnaryData<DiscoveryResponse>): void {
    const secrets = this.#secrets;
    if (!secrets) return cb({ code: grpc.status.UNAVAILABLE, details: 'no certificate yet' });
    const resources: AnyMessage[] = [];
    for (const name of call.request.resource_names ?? []) {
      const any = encodeSecret(name, secrets);
      if (any) resources.push(any);
      else this.#log.warn('SDS fetch for an unknown secret; it gets nothing', { name });
    }
    cb(null, { version_info: String(this.#generation), resources, type_url: TYPE_URL.secret, nonce: String(++this.#nonce) });
  }
}
