/**
 * TLS for the control plane's shared gRPC port (xDS + CSR): a serving certificate from the mesh CA for the
 * control plane's names, client certificates requested but optional (join-token callers have none; renewals
 * present theirs), rotated at half its lifetime without re-binding the port.
 *
 * How rotation works with grpc-js 1.14: `ServerCredentials` keeps a set of watchers, one per bound http2 server,
 * and `updateSecureContextOptions()` (protected) calls each, which does `http2Server.setSecureContext(...)`: new
 * handshakes get the new certificate and bundle, open connections keep theirs. This module subclasses
 * `ServerCredentials` to reach that method — the same path grpc-js's own certificate-provider credentials use —
 * and, unlike them, has a context from the start, so the first handshake after `bindAsync` already succeeds.
 * (`createSsl` credentials are fixed at bind; swapping them would mean unbind and re-bind.)
 */
import * as grpc from '@grpc/grpc-js';
import type { SecureContextOptions } from 'node:tls';
import type { CertificateAuthority } from './authority.js';

export interface ServerTlsOptions {
  /** Lifetime of each serving certificate: the CA's workload lifetime by default. */
  readonly ttlSecondsOverride?: number;
  /** Milliseconds since the epoch; `Date.now` by default. Timers still run on real time. */
  readonly clock?: () => number;
  /** Called after each rotation (not the first issuance). */
  readonly onRotate?: (info: ServingCertInfo) => void;
  /** Called when a rotation fails; it is retried in a minute. */
  readonly onError?: (err: unknown) => void;
}

export interface ServingCertInfo {
  readonly serial: string;
  readonly notAfter: Date;
  readonly certChainPem: string;
}

/** Retry delay after a failed rotation. */
const RETRY_MS = 60_000;

class RotatingServerCredentials extends grpc.ServerCredentials {
  constructor(initial: SecureContextOptions) {
    // requestCert: ask for a client certificate; rejectUnauthorized false: a caller without one (join token) or
    // with one that does not verify still connects, and then simply is not authenticated by certificate.
    super({ requestCert: true, rejectUnauthorized: false }, initial);
  }

  update(options: SecureContextOptions): void {
    this.updateSecureContextOptions(options);
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return this === other;
  }
}

/**
 * Serving credentials for `names`, issued now and re-issued at half life. `close()` stops the rotation timer;
 * `rotateNow()` re-issues at once (after a root change, say). The trust bundle (`ca` for client certificates) is
 * re-read at each rotation, so roots added to extra-roots.pem are accepted from the next rotation on.
 */
export function serverCredentials(
  ca: CertificateAuthority,
  names: { dnsNames: string[]; ipAddresses: string[] },
  opts: ServerTlsOptions = {},
): { credentials: grpc.ServerCredentials; close(): void; rotateNow(): ServingCertInfo; current(): ServingCertInfo } {
  const clock = opts.clock ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let current: ServingCertInfo;
  /** Half way between issuance and expiry, by `clock`. */
  let rotateAt = 0;

  const issue = (): SecureContextOptions => {
    const issuedAt = clock();
    const served = ca.issueServing([...names.dnsNames], [...names.ipAddresses], opts.ttlSecondsOverride);
    current = Object.freeze({ serial: served.serial, notAfter: served.notAfter, certChainPem: served.certChainPem });
    rotateAt = issuedAt + (served.notAfter.getTime() - issuedAt) / 2;
    return { key: served.keyPem, cert: served.certChainPem, ca: ca.trustBundlePem() };
  };

  const schedule = (delayMs: number): void => {
    if (closed) return;
    clearTimeout(timer);
    // setTimeout holds at most ~24.8 days; longer lifetimes just re-arm.
    timer = setTimeout(tick, Math.min(Math.max(delayMs, 1000), 2 ** 31 - 1));
    timer.unref();
  };

  const credentials = new RotatingServerCredentials(issue());

  const rotateNow = (): ServingCertInfo => {
    credentials.update(issue());
    schedule(rotateAt - clock());
    opts.onRotate?.(current);
    return current;
  };

  function tick(): void {
    if (closed) return;
    if (clock() < rotateAt - 1000) {
      schedule(rotateAt - clock());
      return;
    }
    try {
      rotateNow();
    } catch (err) {
      opts.onError?.(err);
      schedule(RETRY_MS);
    }
  }

  schedule(rotateAt - clock());
  return {
    credentials,
    close(): void {
      closed = true;
      clearTimeout(timer);
    },
    rotateNow,
    current: () => current,
  };
}
