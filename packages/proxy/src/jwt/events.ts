/**
 * `trellis:proxy:jwt_authn`: one message per request refused by jwt_authn (hot path: published only when someone
 * subscribes). Metrics and access logs subscribe by channel name.
 */
import diagnostics_channel from 'node:diagnostics_channel';

export interface JwtDenialEvent {
  /** The publishing proxy instance. */
  readonly instance: string;
  readonly direction: 'inbound' | 'outbound';
  readonly listener: string;
  /** 401, or 403 for `Audiences in Jwt are not allowed`. */
  readonly responseCode: number;
  /** Envoy's status text, also the response body (`Jwt is expired`, `Jwt verification fails`, …). */
  readonly status: string;
  /** `iss` of the presented token when it parsed (unverified), else null. */
  readonly issuer: string | null;
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly sourceIp: string;
  /** The downstream peer's SPIFFE id (mTLS), or null. */
  readonly sourcePrincipal: string | null;
}

export const jwtDenialChannel = diagnostics_channel.channel('trellis:proxy:jwt_authn');
