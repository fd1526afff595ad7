/**
 * The serving certificate of the webhook port (Kubernetes calls admission webhooks over HTTPS only). Either files
 * (`--webhook-cert`/`--webhook-key`, e.g. a cert-manager Secret; re-read when their modification time changes) or a
 * certificate issued by the mesh CA for the control plane's names and re-issued at half its lifetime. `update` is
 * called with each new key pair (not the first); a failure keeps the current pair and is retried.
 */
import { statSync, readFileSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import { TrellisError } from '@trellis/model';
import type { CertificateAuthority } from '../ca/authority.js';

export type WebhookTlsSource =
  | { readonly kind: 'files'; readonly certFile: string; readonly keyFile: string }
  | { readonly kind: 'ca'; readonly ca: CertificateAuthority; readonly dnsNames: readonly string[]; readonly ipAddresses: readonly string[] };

export interface WebhookTls {
  readonly initial: SecureContextOptions;
  /** Where the current certificate came from, for the start-up log line. */
  readonly describe: string;
  close(): void;
}

const FILE_CHECK_MS = 30_000;
const RETRY_MS = 60_000;

function readPair(certFile: string, keyFile: string): SecureContextOptions {
  const read = (f: string, what: string): string => {
    try {
      return readFileSync(f, 'utf8');
    } catch (cause) {
      throw new TrellisError('TRELLIS_ERR_WEBHOOK_TLS', `${f}: cannot read the webhook ${what}: ${(cause as Error).message}`, { cause });
    }
  };
  return { cert: read(certFile, 'certificate'), key: read(keyFile, 'key') };
}

/** Throws TRELLIS_ERR_WEBHOOK_TLS when the files cannot be read. */
export function webhookTls(source: WebhookTlsSource, update: (tls: SecureContextOptions) => void, onError: (err: unknown) => void): WebhookTls {
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const arm = (ms: number, fn: () => void): void => {
    if (closed) return;
    timer = setTimeout(fn, Math.min(Math.max(ms, 1000), 2 ** 31 - 1));
    timer.unref();
  };
  if (source.kind === 'files') {
    const stamp = (): string => [source.certFile, source.keyFile].map((f) => { try { const s = statSync(f); return `${s.mtimeMs}:${s.size}`; } catch { return '-'; } }).join('|');
    let last = stamp();
    const initial = readPair(source.certFile, source.keyFile);
    const check = (): void => {
      const now = stamp();
      if (now !== last) {
        try {
          update(readPair(source.certFile, source.keyFile));
          last = now;
        } catch (err) {
          onError(err);
        }
      }
      arm(FILE_CHECK_MS, check);
    };
    arm(FILE_CHECK_MS, check);
    return { initial, describe: `files ${source.certFile}`, close: () => { closed = true; clearTimeout(timer); } };
  }
  const issue = (): { tls: SecureContextOptions; halfLifeMs: number } => {
    const s = source.ca.issueServing([...source.dnsNames], [...source.ipAddresses]);
    return { tls: { cert: s.certChainPem, key: s.keyPem }, halfLifeMs: (s.notAfter.getTime() - Date.now()) / 2 };
  };
  const first = issue();
  const rotate = (): void => {
    try {
      const next = issue();
      update(next.tls);
      arm(next.halfLifeMs, rotate);
    } catch (err) {
      onError(err);
      arm(RETRY_MS, rotate);
    }
  };
  arm(first.halfLifeMs, rotate);
  return { initial: first.tls, describe: 'mesh CA', close: () => { closed = true; clearTimeout(timer); } };
}
