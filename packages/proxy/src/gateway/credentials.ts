/**
 * Gateway credentials from files: the SDS secrets a gateway server's TLS context names (`credentialName`,
 * `<credentialName>-cacert`, `file-cert:…`, `file-root:…`; see credential-files.ts) are read from disk by the proxy
 * itself and put into the config store beside the agent's `default`/`ROOTCA`, as Istio's agent does for a
 * gateway's file-mounted certificates and Kubernetes secrets.
 *
 * - Loaded when the listeners or clusters name them, reloaded on file events (debounced, so a cert and key
 *   written one after the other land together) and on a periodic resync (fs.watch can miss events).
 *   A rotated certificate replaces the secret object: new handshakes use it, open connections keep theirs.
 * - A credential that is missing or invalid on first load is *unavailable*: it is logged once per reason (error,
 *   naming the credential, the file and why), connections to the servers that use it are refused, every other
 *   server keeps serving, and it does not hold readiness back. A bad update of a credential that was good keeps
 *   the last good one (logged), so a half-written rotation never takes a server down.
 */
import { watch, type FSWatcher, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SecretConfig } from '@trellis/api';
import type { ConfigStore } from '../config/store.js';
import type { Logger } from '../log.js';
import { credentialSource, type CredentialSource } from './credential-files.js';
import { loadCredential } from './load-credential.js';

export interface GatewayCredentialsOptions {
  readonly store: ConfigStore;
  readonly logger: Logger;
  /** Directory of `<credentialName>/{tls.crt,tls.key,ca.crt}`; null serves only `file-cert:`/`file-root:` names. */
  readonly dir: string | null;
  /** Quiet time after a file event before reloading. */
  readonly debounceMs?: number;
  /** Reload this often even without file events (0 = never). */
  readonly resyncMs?: number;
}

interface Status {
  /** What was last logged for this name (so a reason is logged once, not on every resync). */
  logged: string;
}

function filesOf(src: CredentialSource): string[] {
  return src.kind === 'tls_certificate' ? [src.certFile, src.keyFile] : [src.caFile];
}

function rawOf(name: string, src: CredentialSource): Record<string, unknown> {
  return src.kind === 'tls_certificate'
    ? { name, tls_certificate: { certificate_chain: { filename: src.certFile }, private_key: { filename: src.keyFile } } }
    : { name, validation_context: { trusted_ca: { filename: src.caFile } } };
}

export class GatewayCredentials {
  private readonly status = new Map<string, Status>();
  private readonly unavailable = new Set<string>();
  /** Names this loader put into the store (the only ones it may replace). */
  private readonly loaded = new Set<string>();
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private version = 0;
  private reloading = false;

  constructor(private readonly o: GatewayCredentialsOptions) {}

  /** Names whose files are missing or invalid (their servers refuse connections). */
  unavailableNames(): string[] {
    return [...this.unavailable].sort();
  }

  start(signal: AbortSignal): void {
    const { store } = this.o;
    store.optionalSecret = (n) => this.unavailable.has(n);
    const unsubscribe = store.onChange((k) => { if (k === 'listener' || k === 'cluster') this.reload(); });
    if (this.o.dir !== null) {
      if (!existsSync(this.o.dir)) this.o.logger.error('gateway credentials directory does not exist; servers naming a credentialName refuse TLS until it does', { dir: this.o.dir });
      this.watchDir(this.o.dir, true);
    }
    this.reload();
    const resyncMs = this.o.resyncMs ?? 10_000;
    const resync = resyncMs > 0 ? setInterval(() => this.reload(), resyncMs) : undefined;
    resync?.unref();
    signal.addEventListener('abort', () => {
      unsubscribe();
      clearInterval(resync);
      clearTimeout(this.timer);
      for (const w of this.watchers.values()) w.close();
      this.watchers.clear();
    }, { once: true });
  }

  /** Re-reads every locally served secret the config names; applies what changed in one store update. */
  reload(): void {
    if (this.reloading) return;
    this.reloading = true;
    try {
      this.reloadNow();
    } finally {
      this.reloading = false;
    }
  }

  private reloadNow(): void {
    const { store, logger } = this.o;
    const updates = new Map<string, SecretConfig>();
    const raw = new Map<string, unknown>();
    const wasUnavailable = new Set(this.unavailable);
    if (this.o.dir !== null) this.watchDir(this.o.dir, true);
    for (const name of store.secretNamesNeeded()) {
      const src = credentialSource(name, this.o.dir);
      if (src === null) continue;
      for (const f of filesOf(src)) this.watchDir(dirname(f), false);
      const st = this.status.get(name) ?? { logged: '' };
      this.status.set(name, st);
      const r = loadCredential(name, src);
      const current = this.loaded.has(name) ? store.secrets().get(name) : undefined;
      if (r.ok) {
        this.unavailable.delete(name);
        if (current !== undefined && sameSecret(current, r.secret)) continue;
        updates.set(name, r.secret);
        raw.set(name, rawOf(name, src));
        logger.info(current === undefined ? 'gateway credential loaded' : 'gateway credential rotated', { credential: name, files: filesOf(src), ...(r.notAfter ? { notAfter: r.notAfter } : {}) });
        st.logged = 'ok';
        continue;
      }
      const what = `${r.file}: ${r.reason}`;
      if (current !== undefined) {
        if (st.logged !== what) logger.error('gateway credential update rejected; the last good one stays in use', { credential: name, file: r.file, reason: r.reason });
      } else {
        this.unavailable.add(name);
        if (st.logged !== what) logger.error('gateway credential unavailable; TLS connections to the servers using it are refused, other servers keep serving', { credential: name, file: r.file, reason: r.reason });
      }
      st.logged = what;
    }
    const availabilityChanged = wasUnavailable.size !== this.unavailable.size || [...wasUnavailable].some((n) => !this.unavailable.has(n));
    if (updates.size === 0 && !availabilityChanged) return;
    for (const n of updates.keys()) this.loaded.add(n);
    // merge: the agent's secrets (SDS) stay; an empty update still tells readiness that availability changed
    store.replace('secret', `files-${++this.version}`, updates, raw, true);
  }

  private watchDir(dir: string, recursive: boolean): void {
    if (this.watchers.has(dir) || !existsSync(dir)) return;
    try {
      const w = watch(dir, { recursive, persistent: false }, () => this.schedule());
      w.on('error', () => { w.close(); this.watchers.delete(dir); });
      this.watchers.set(dir, w);
    } catch (err) {
      this.o.logger.warn('cannot watch a credentials directory; changes are picked up by the periodic resync', { dir, error: (err as Error).message });
    }
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload(), this.o.debounceMs ?? 200);
    this.timer.unref();
  }
}

function sameSecret(a: SecretConfig, b: SecretConfig): boolean {
  if (a.kind === 'tls_certificate' && b.kind === 'tls_certificate') return a.certificateChain === b.certificateChain && a.privateKey === b.privateKey;
  if (a.kind === 'validation_context' && b.kind === 'validation_context') return a.trustedCa === b.trustedCa;
  return false;
}
