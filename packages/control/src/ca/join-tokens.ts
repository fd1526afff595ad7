/**
 * Join tokens: single-use, short-lived bearer secrets that let a new VM ask for its first certificate.
 *
 * A token is bound to a namespace, service account and WorkloadGroup when minted. Only its SHA-256 is kept, in
 * `<stateDir>/tokens.json` (0600), so a copy of the state directory does not let anyone join. A token looks like
 * `trellis-jt.<43 base64url chars>` (256 random bits); the prefix lets the CSR service tell it from other bearer
 * tokens (a Kubernetes service-account JWT goes to another authenticator).
 *
 * Redemption is atomic within the process: the token is marked used before anything awaits, so two concurrent
 * requests with the same token cannot both succeed.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TrellisError } from '@trellis/api';

export const JOIN_TOKEN_PREFIX = 'trellis-jt.';
export const DEFAULT_TOKEN_TTL_SECONDS = 600;
/** Longest lifetime a token may be minted with (a day): tokens are for bootstrapping, not standing access. */
export const MAX_TOKEN_TTL_SECONDS = 24 * 3600;
/** Tokens are forgotten this long after they expire (kept a while so `list` can show what happened). */
const RETAIN_AFTER_EXPIRY_MS = 24 * 3600 * 1000;

export interface TokenBinding {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly workloadGroup: string;
}

export interface TokenInfo extends TokenBinding {
  readonly id: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly used: boolean;
  readonly usedAt?: string;
  readonly revoked: boolean;
}

interface StoredToken extends TokenInfo {
  /** hex SHA-256 of the whole token string. */
  readonly sha256: string;
}

interface TokenFile {
  readonly version: 1;
  readonly tokens: StoredToken[];
}

const NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class JoinTokens {
  readonly #path: string;
  readonly #clock: () => number;
  readonly #defaultTtl: number;
  #tokens = new Map<string, StoredToken>();
  /** Serializes writes so the file always holds the latest state. */
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string, clock: () => number, defaultTtl: number) {
    this.#path = path;
    this.#clock = clock;
    this.#defaultTtl = defaultTtl;
  }

  /** Opens (or starts) the token store in `<stateDir>/tokens.json`. A corrupt file is an error, not a reset. */
  static async open(opts: { stateDir: string; clock?: () => number; defaultTtlSeconds?: number }): Promise<JoinTokens> {
    const ttl = opts.defaultTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    if (!Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_TOKEN_TTL_SECONDS) {
      throw new TrellisError('TRELLIS_ERR_TOKEN_CONFIG', `defaultTtlSeconds must be an integer in 1..${MAX_TOKEN_TTL_SECONDS}, got ${ttl}`);
    }
    await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
    const store = new JoinTokens(join(opts.stateDir, 'tokens.json'), opts.clock ?? Date.now, ttl);
    let text: string | undefined;
    try {
      text = await readFile(store.#path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new TrellisError('TRELLIS_ERR_TOKEN_STORE', `${store.#path}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (text !== undefined) {
      try {
        const parsed = JSON.parse(text) as TokenFile;
        if (parsed.version !== 1 || !Array.isArray(parsed.tokens)) throw new Error('unexpected shape (want {version: 1, tokens: [...]})');
        for (const t of parsed.tokens) {
          if (typeof t.id !== 'string' || typeof t.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(t.sha256)) throw new Error('a token entry lacks id or sha256');
          store.#tokens.set(t.sha256, Object.freeze({ ...t }));
        }
      } catch (cause) {
        throw new TrellisError('TRELLIS_ERR_TOKEN_STORE', `${store.#path}: not a token store: ${(cause as Error).message}`, { cause });
      }
    }
    return store;
  }

  /** Mints a token. The secret is returned once and never stored. */
  async mint(binding: TokenBinding, ttlSeconds?: number): Promise<{ id: string; token: string; expiresAt: string }> {
    for (const [field, value] of Object.entries({ namespace: binding.namespace, serviceAccount: binding.serviceAccount, workloadGroup: binding.workloadGroup })) {
      if (typeof value !== 'string' || !NAME.test(value)) {
        throw new TrellisError('TRELLIS_ERR_TOKEN_BINDING', `${field}: ${JSON.stringify(value)} is not a valid name (lower-case letters, digits, "-", ".")`);
      }
    }
    const ttl = ttlSeconds ?? this.#defaultTtl;
    if (!Number.isInteger(ttl) || ttl <= 0 || ttl > MAX_TOKEN_TTL_SECONDS) {
      throw new TrellisError('TRELLIS_ERR_TOKEN_TTL', `ttlSeconds must be an integer in 1..${MAX_TOKEN_TTL_SECONDS}, got ${ttl}`);
    }
    const now = this.#clock();
    const token = JOIN_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const entry: StoredToken = Object.freeze({
      id: randomUUID(),
      namespace: binding.namespace,
      serviceAccount: binding.serviceAccount,
      workloadGroup: binding.workloadGroup,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + ttl * 1000).toISOString(),
      used: false,
      revoked: false,
      sha256: hashToken(token).toString('hex'),
    });
    this.#prune(now);
    this.#tokens.set(entry.sha256, entry);
    await this.#persist();
    return Object.freeze({ id: entry.id, token, expiresAt: entry.expiresAt });
  }

  /**
   * Checks a token without spending it: the binding it would redeem to, or the same errors `redeem` throws.
   * The CSR service checks first and redeems only once the certificate is signed, so a CSR refused for its
   * content does not burn the token.
   */
  check(token: string): TokenBinding & { id: string } {
    const entry = this.#usable(token);
    return Object.freeze({ id: entry.id, namespace: entry.namespace, serviceAccount: entry.serviceAccount, workloadGroup: entry.workloadGroup });
  }

  /**
   * Spends a token. Throws `TrellisError` `TRELLIS_ERR_TOKEN_UNKNOWN`, `_REVOKED`, `_USED` or `_EXPIRED`
   * (checked in that order). The returned binding is the identity the CA issues for.
   */
  async redeem(token: string): Promise<TokenBinding & { id: string }> {
    const entry = this.#usable(token);
    // Marked before the first await: this is what makes redemption single-use under concurrency.
    this.#tokens.set(entry.sha256, Object.freeze({ ...entry, used: true, usedAt: new Date(this.#clock()).toISOString() }));
    await this.#persist();
    return Object.freeze({ id: entry.id, namespace: entry.namespace, serviceAccount: entry.serviceAccount, workloadGroup: entry.workloadGroup });
  }

  #usable(token: string): StoredToken {
    const digest = hashToken(typeof token === 'string' ? token : '');
    const entry = this.#tokens.get(digest.toString('hex'));
    // The map lookup is by hash; the constant-time compare guards against a future change of lookup.
    if (!entry || !timingSafeEqual(Buffer.from(entry.sha256, 'hex'), digest)) {
      throw new TrellisError('TRELLIS_ERR_TOKEN_UNKNOWN', 'join token is not known to this control plane (mint one with `trellisctl vm token`)');
    }
    if (entry.revoked) throw new TrellisError('TRELLIS_ERR_TOKEN_REVOKED', `join token ${entry.id} was revoked`);
    if (entry.used) throw new TrellisError('TRELLIS_ERR_TOKEN_USED', `join token ${entry.id} was already used at ${entry.usedAt ?? 'an earlier time'}; tokens are single use, mint a new one`);
    if (Date.parse(entry.expiresAt) <= this.#clock()) throw new TrellisError('TRELLIS_ERR_TOKEN_EXPIRED', `join token ${entry.id} expired at ${entry.expiresAt}; mint a new one`);
    return entry;
  }

  /** Revokes an unused token by id. Returns false when the id is unknown. */
  async revoke(id: string): Promise<boolean> {
    for (const entry of this.#tokens.values()) {
      if (entry.id === id) {
        if (!entry.revoked) {
          this.#tokens.set(entry.sha256, Object.freeze({ ...entry, revoked: true }));
          await this.#persist();
        }
        return true;
      }
    }
    return false;
  }

  /** Every known token, oldest first, without secrets or hashes. */
  list(): TokenInfo[] {
    return [...this.#tokens.values()]
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .map(({ sha256: _omit, ...info }) => Object.freeze(info));
  }

  #prune(now: number): void {
    for (const [k, t] of this.#tokens) {
      if (Date.parse(t.expiresAt) + RETAIN_AFTER_EXPIRY_MS < now) this.#tokens.delete(k);
    }
  }

  #persist(): Promise<void> {
    const snapshot: TokenFile = { version: 1, tokens: [...this.#tokens.values()] };
    const text = `${JSON.stringify(snapshot, null, 2)}\n`;
    const write = async (): Promise<void> => {
      const tmp = `${this.#path}.tmp-${process.pid}`;
      await writeFile(tmp, text, { mode: 0o600 });
      await chmod(tmp, 0o600);
      await rename(tmp, this.#path);
    };
    this.#writing = this.#writing.then(write, write);
    return this.#writing;
  }
}
