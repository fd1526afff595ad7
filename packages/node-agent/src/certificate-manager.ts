/**
 * Obtains the workload certificate and keeps it fresh.
 *
 * - Start: a persisted certificate that is still valid and names the expected identity is used as is (no token,
 *   no CA call). Otherwise the bundle's unused join token is redeemed (retrying with backoff while the CA is
 *   unreachable); with no such token, `initialize` fails with TRELLIS_ERR_TOKEN_NEEDED and says what to do.
 * - Renewal: at about half the lifetime (uniformly 45–55 % of obtained → notAfter), with a new key, authenticated by the current
 *   certificate over mTLS; failures retry with exponential backoff (1 s doubling to 30 s, jittered). If the
 *   certificate expires meanwhile, a fresh token dropped into the bundle is used instead.
 * - Every new identity is persisted (0600) before it is published to listeners.
 */
import { setTimeout as sleepTimer } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { TrellisError } from '@trellis/api';
import { expectedSpiffeId, TOKEN_FILE, type Bundle } from './bundle.js';
import { isRefusal, requestCertificate, type CaClientOptions, type CertificateRequest } from './ca-client.js';
import { buildCsr, generateKey, loadIdentity, saveIdentity, toIdentity, type Identity } from './identity.js';
import { markRedeemed, readFreshToken } from './join-token.js';
import { silentLogger, type AgentObserver, type Logger } from './observer.js';
import { join } from 'node:path';

export interface CertificateManagerOptions {
  readonly bundle: Bundle;
  readonly stateDir: string;
  /** Lifetime to ask for, seconds; 0 lets the CA choose. */
  readonly validitySeconds?: number;
  readonly logger?: Logger;
  readonly observer?: AgentObserver;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly request?: (ca: CaClientOptions, request: CertificateRequest) => Promise<string[]>;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

export type IdentityListener = (identity: Identity) => void;

/**
 * When to renew: 45–55 % into the certificate's useful life, which runs from when this host obtained it
 * (`obtainedAt`; CAs backdate notBefore) to notAfter. Epoch ms.
 */
export function renewalTime(identity: Pick<Identity, 'obtainedAt' | 'notAfter'>, random: () => number): number {
  const lifetime = identity.notAfter - identity.obtainedAt;
  return identity.obtainedAt + lifetime * (0.45 + 0.1 * random());
}

/** Delay before retry `attempt` (0-based): initial·2^attempt capped at max, jittered to 50–100 %. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return base * (0.5 + 0.5 * random());
}

export class CertificateManager {
  readonly #o: CertificateManagerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #request: (ca: CaClientOptions, request: CertificateRequest) => Promise<string[]>;
  readonly #listeners = new Set<IdentityListener>();
  readonly #spiffeId: string;
  #current: Identity | null = null;

  constructor(options: CertificateManagerOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? ((ms, signal) => sleepTimer(ms, undefined, { signal }));
    this.#request = options.request ?? requestCertificate;
    this.#spiffeId = expectedSpiffeId(options.bundle.mesh);
  }

  /** The identity being served, or null before `initialize` succeeded. */
  current(): Identity | null {
    return this.#current;
  }

  /** Subscribes to new identities (called after they are persisted). Returns the unsubscribe function. */
  onIdentity(listener: IdentityListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Loads the persisted identity or redeems the join token. Throws TRELLIS_ERR_TOKEN_NEEDED (no valid certificate
   * and no unused token) or TRELLIS_ERR_TOKEN_REFUSED (the CA refused the token: used, expired, revoked, unknown);
   * both messages say what to do. TRELLIS_ERR_CA_REFUSED when the CA refused the CSR itself (INVALID_ARGUMENT).
   */
  async initialize(signal: AbortSignal): Promise<Identity> {
    const { identity, problem } = loadIdentity(this.#o.stateDir);
    let why = problem ?? '';
    if (identity) {
      if (identity.spiffeId !== this.#spiffeId) why = `persisted certificate is for ${identity.spiffeId}, the bundle says ${this.#spiffeId}`;
      else if (identity.notAfter <= this.#now()) why = `persisted certificate expired at ${new Date(identity.notAfter).toISOString()}`;
      else {
        this.#publish(identity, 'persisted');
        return identity;
      }
    }
    const token = readFreshToken(this.#o.bundle.dir, this.#o.stateDir);
    if (token === null) throw this.#tokenNeeded(why);
    this.#log.info('redeeming join token', { reason: why });
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#issueWithToken(token, signal);
      } catch (e) {
        if (signal.aborted) throw e;
        if (isRefusal(e) && (e as { grpcCode?: number }).grpcCode === grpc.status.INVALID_ARGUMENT) {
          throw new TrellisError('TRELLIS_ERR_CA_REFUSED', `the CA refused the certificate request: ${(e as Error).message}`, { cause: e });
        }
        if (isRefusal(e)) {
          throw new TrellisError('TRELLIS_ERR_TOKEN_REFUSED',
            `the CA refused the join token in ${join(this.#o.bundle.dir, TOKEN_FILE)} (${(e as Error).message}). `
            + `It was used already, expired or was revoked: ${this.#whatToDo()}`, { cause: e });
        }
        const delay = this.#backoff(attempt);
        this.#log.warn('CA unreachable, retrying', { error: (e as Error).message, retryInMs: Math.round(delay) });
        await this.#sleep(delay, signal);
      }
    }
  }

  /** Renews for as long as `signal` is not aborted. Requires a successful `initialize`. */
  async run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    let tokenNeededLogged = false;
    while (!signal.aborted) {
      const current = this.#current;
      if (!current) throw new TrellisError('TRELLIS_ERR_STATE', 'CertificateManager.run before initialize');
      const wait = attempt === 0 ? Math.max(0, renewalTime(current, this.#random) - this.#now()) : this.#retryDelay(attempt - 1, current);
      try {
        await this.#sleep(wait, signal);
      } catch {
        return; // aborted
      }
      try {
        if (this.#current!.notAfter > this.#now()) await this.#renew(this.#current!, signal);
        else {
          const token = readFreshToken(this.#o.bundle.dir, this.#o.stateDir);
          if (token === null) {
            if (!tokenNeededLogged) this.#log.error(this.#tokenNeeded('the certificate expired before it could be renewed').message);
            tokenNeededLogged = true;
            attempt++;
            continue;
          }
          await this.#issueWithToken(token, signal);
        }
        attempt = 0;
        tokenNeededLogged = false;
      } catch (e) {
        if (signal.aborted) return;
        this.#log.warn('certificate renewal failed, retrying', { error: (e as Error).message, attempt });
        attempt++;
      }
    }
  }

  /** Backoff, but never sleeping through more than half of what is left of a still-valid certificate. */
  #retryDelay(attempt: number, current: Identity): number {
    const left = current.notAfter - this.#now();
    const { initialMs } = this.#o.backoff ?? { initialMs: 1000 };
    return left > 0 ? Math.min(this.#backoff(attempt), Math.max(initialMs, left / 2)) : this.#backoff(attempt);
  }

  #backoff(attempt: number): number {
    const { initialMs, maxMs } = this.#o.backoff ?? { initialMs: 1000, maxMs: 30_000 };
    return backoffDelay(attempt, initialMs, maxMs, this.#random);
  }

  #whatToDo(): string {
    const { mesh, dir } = this.#o.bundle;
    return `mint a new one on the control plane with "trellisctl vm token --workload-group ${mesh.workloadGroup || 'GROUP'} `
      + `--namespace ${mesh.namespace} --out DIR", copy DIR/token to ${join(dir, TOKEN_FILE)} and restart the agent`;
  }

  #tokenNeeded(why: string): TrellisError {
    return new TrellisError('TRELLIS_ERR_TOKEN_NEEDED',
      `no valid certificate in ${this.#o.stateDir} (${why || 'none'}) and no unused join token in `
      + `${join(this.#o.bundle.dir, TOKEN_FILE)}: a new join token is needed: ${this.#whatToDo()}`);
  }

  async #csr(credential: CertificateRequest['credential'], signal: AbortSignal): Promise<Identity> {
    const keyPem = await generateKey();
    const csrPem = buildCsr(keyPem, this.#spiffeId);
    const ca = { address: this.#o.bundle.mesh.xdsAddress, rootCertsPem: this.#o.bundle.rootCertsPem };
    let chain: string[];
    try {
      chain = await this.#request(ca, { csrPem, validitySeconds: this.#o.validitySeconds ?? 0, credential, signal });
    } catch (e) {
      this.#o.observer?.caError?.(e as Error);
      throw e;
    }
    const identity = toIdentity(keyPem, chain, this.#now());
    if (identity.spiffeId !== this.#spiffeId) {
      this.#log.warn('CA issued a different identity than the bundle names', { issued: identity.spiffeId, expected: this.#spiffeId });
    }
    return identity;
  }

  async #issueWithToken(token: string, signal: AbortSignal): Promise<Identity> {
    const identity = await this.#csr({ kind: 'token', token }, signal);
    saveIdentity(this.#o.stateDir, identity);
    const note = markRedeemed(this.#o.bundle.dir, this.#o.stateDir, token);
    if (note) this.#log.warn(note);
    this.#publish(identity, 'token');
    return identity;
  }

  async #renew(current: Identity, signal: AbortSignal): Promise<void> {
    const identity = await this.#csr({ kind: 'certificate', keyPem: current.keyPem, chainPem: current.chainPem }, signal);
    saveIdentity(this.#o.stateDir, identity);
    this.#publish(identity, 'renewal');
  }

  #publish(identity: Identity, reason: 'token' | 'persisted' | 'renewal'): void {
    this.#current = identity;
    this.#log.info('certificate ready', {
      reason, spiffeId: identity.spiffeId, serial: identity.serialNumber,
      notBefore: new Date(identity.notBefore).toISOString(), notAfter: new Date(identity.notAfter).toISOString(),
    });
    this.#o.observer?.identity?.(identity, reason);
    for (const l of this.#listeners) l(identity);
  }
}
