/** `security.istio.io` RequestAuthentication (istio/api security/v1beta1/request_authentication.proto, jwt.proto). */
import { arrayOf, bool, duration, obj, required, str, strings, type Schema } from '../decode/schema.js';
import { matchLabelsSelector, policyTargetReference, type MatchLabelsSelector, type PolicyTargetReference } from './common.js';

export interface JWTHeader {
  readonly name: string;
  /** e.g. `Bearer `. */
  readonly prefix?: string;
}
export interface ClaimToHeader {
  readonly header: string;
  readonly claim: string;
}
export interface JWTRule {
  readonly issuer: string;
  readonly audiences?: readonly string[];
  /** HTTP(S) URL of the JWKS, or `file:///path` (Trellis: a file on the proxy's host); exclusive with `jwks`. */
  readonly jwksUri?: string;
  /** Inline JWKS JSON. */
  readonly jwks?: string;
  /** Where to read the token; default `Authorization: Bearer` and the `access_token` query parameter. */
  readonly fromHeaders?: readonly JWTHeader[];
  readonly fromParams?: readonly string[];
  readonly fromCookies?: readonly string[];
  readonly outputPayloadToHeader?: string;
  readonly forwardOriginalToken?: boolean;
  readonly outputClaimToHeaders?: readonly ClaimToHeader[];
  /** Milliseconds to wait for the JWKS fetch. */
  readonly timeout?: number;
}
export interface RequestAuthenticationSpec {
  readonly selector?: MatchLabelsSelector;
  readonly targetRef?: PolicyTargetReference;
  readonly targetRefs?: readonly PolicyTargetReference[];
  readonly jwtRules?: readonly JWTRule[];
}

const url = (u: string): string | undefined => {
  if (!/^https?:\/\/[^\s/]+/.test(u) && !/^file:\/\/\/\S+/.test(u)) return `invalid jwksUri \`${u}\`: expected an http://, https:// or file:/// URL`;
  return undefined;
};
const headerName = (h: string): string | undefined => (/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(h) ? undefined : `invalid header name \`${h}\``);

export const requestAuthenticationSpec = (): Schema<RequestAuthenticationSpec> =>
  obj<RequestAuthenticationSpec>(
    {
      selector: matchLabelsSelector(),
      targetRef: policyTargetReference(),
      targetRefs: arrayOf(policyTargetReference()),
      jwtRules: arrayOf(
        obj<JWTRule>(
          {
            issuer: required(str((s) => (s === '' ? 'must not be empty' : undefined))),
            audiences: strings(),
            jwksUri: str(url),
            jwks: str(),
            fromHeaders: arrayOf(obj<JWTHeader>({ name: required(str(headerName)), prefix: str() })),
            fromParams: strings(),
            fromCookies: strings(),
            outputPayloadToHeader: str(headerName),
            forwardOriginalToken: bool(),
            outputClaimToHeaders: arrayOf(obj<ClaimToHeader>({ header: required(str(headerName)), claim: required(str()) })),
            timeout: duration({ min: 1 }),
          },
          { oneOf: [['jwksUri', 'jwks']] },
        ),
      ),
    },
    { oneOf: [['selector', 'targetRef', 'targetRefs']] },
  );
