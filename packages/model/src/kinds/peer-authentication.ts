/** `security.istio.io` PeerAuthentication (istio/api security/v1beta1/peer_authentication.proto). */
import { enumOf, mapOf, obj, withDefault, type Schema } from '../decode/schema.js';
import { joinKey } from '../decode/violations.js';
import { matchLabelsSelector, type MatchLabelsSelector } from './common.js';

export type MutualTLSMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';
export interface PeerAuthenticationMutualTLS {
  /** Default UNSET (inherit from the parent scope: namespace, then mesh). */
  readonly mode: MutualTLSMode;
}
const mtls = (): Schema<PeerAuthenticationMutualTLS> =>
  obj<PeerAuthenticationMutualTLS>({
    mode: withDefault(enumOf<MutualTLSMode>(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'], { what: 'mTLS mode' }), 'UNSET'),
  });

export interface PeerAuthenticationSpec {
  readonly selector?: MatchLabelsSelector;
  readonly mtls?: PeerAuthenticationMutualTLS;
  /** Workload port number (as a string key, 1–65535) → mode; needs a `selector`. */
  readonly portLevelMtls?: Readonly<Record<string, PeerAuthenticationMutualTLS>>;
}

const portKey = (k: string): string | undefined =>
  /^\d+$/.test(k) && Number(k) >= 1 && Number(k) <= 65535 ? undefined : `invalid port \`${k}\`: expected a port number 1-65535`;

export const peerAuthenticationSpec = (): Schema<PeerAuthenticationSpec> =>
  obj<PeerAuthenticationSpec>(
    { selector: matchLabelsSelector(), mtls: mtls(), portLevelMtls: mapOf(mtls(), portKey) },
    {
      check(pa, path, cx) {
        if (pa.portLevelMtls !== undefined && pa.selector === undefined) cx.add(joinKey(path, 'portLevelMtls'), 'portLevelMtls requires a workload `selector`');
      },
    },
  );
