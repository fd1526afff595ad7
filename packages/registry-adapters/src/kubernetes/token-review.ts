/**
 * The CA's service-account-token authenticator: asks the API server (`authentication.k8s.io/v1` TokenReview)
 * whether a bearer token is valid, and if it is a service account's, which one. Pods get certificates this way,
 * as VMs do with join tokens.
 */
import { TrellisError } from '@trellis/model';
import { KubeApiError, type KubeHttpClient } from './client.js';

export type TokenReviewResult =
  | { readonly authenticated: true; readonly namespace: string; readonly serviceAccount: string; readonly username: string; readonly uid?: string }
  | { readonly authenticated: false; readonly reason: string };

export interface TokenReviewerOptions {
  /** Audiences the token must be valid for (`spec.audiences`). Default: the API server's own. */
  readonly audiences?: readonly string[];
}

interface TokenReviewStatus {
  readonly status?: {
    readonly authenticated?: boolean;
    readonly error?: string;
    readonly user?: { readonly username?: string; readonly uid?: string };
    readonly audiences?: readonly string[];
  };
}

const SA_PREFIX = 'system:serviceaccount:';

export class TokenReviewer {
  constructor(
    private readonly client: KubeHttpClient,
    private readonly options: TokenReviewerOptions = {},
  ) {}

  /**
   * A refusal (`authenticated: false`) for an invalid token or a user that is not a service account; throws
   * TrellisError `TRELLIS_ERR_TOKEN_REVIEW_UNAVAILABLE` when the API server cannot answer (the caller must not
   * read that as a refusal).
   */
  async review(token: string, signal?: AbortSignal): Promise<TokenReviewResult> {
    if (!token) return { authenticated: false, reason: 'empty token' };
    let body: TokenReviewStatus;
    try {
      body = await this.client.request<TokenReviewStatus>(
        'POST',
        '/apis/authentication.k8s.io/v1/tokenreviews',
        {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, ...(this.options.audiences ? { audiences: this.options.audiences } : {}) },
        },
        signal,
      );
    } catch (err) {
      const status = err instanceof KubeApiError ? err.status : 0;
      throw new TrellisError('TRELLIS_ERR_TOKEN_REVIEW_UNAVAILABLE', `TokenReview failed${status ? ` (HTTP ${status})` : ''}: ${(err as Error).message}`, { cause: err });
    }
    const s = body.status ?? {};
    if (!s.authenticated) return { authenticated: false, reason: s.error || 'token not authenticated' };
    const username = s.user?.username ?? '';
    if (!username.startsWith(SA_PREFIX)) return { authenticated: false, reason: `"${username}" is not a service account` };
    const [namespace, serviceAccount, ...rest] = username.slice(SA_PREFIX.length).split(':');
    if (!namespace || !serviceAccount || rest.length > 0) return { authenticated: false, reason: `malformed service account user "${username}"` };
    if (this.options.audiences && s.audiences && !this.options.audiences.some((a) => s.audiences!.includes(a))) {
      return { authenticated: false, reason: 'token is not valid for the required audiences' };
    }
    return { authenticated: true, namespace, serviceAccount, username, ...(s.user?.uid ? { uid: s.user.uid } : {}) };
  }
}
