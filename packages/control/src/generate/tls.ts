/**
 * TLS transport sockets: mesh mTLS through the node agent's SDS (`default` = key and chain, `ROOTCA` = trust
 * bundle, both fetched over gRPC from the bootstrap cluster `sds-grpc`, as Istio's bootstrap does), DestinationRule
 * SIMPLE/MUTUAL origination, and server contexts for inbound mTLS and gateway servers.
 *
 * SDS names for file- and credential-based material follow Istio (pilot/pkg/networking/core/…/tls):
 * `file-root:<ca path>`, `file-cert:<cert path>~<key path>`, `<credentialName>` and `<credentialName>-cacert`.
 */
import { EXT_TYPE_URL } from '@trellis/api';
import { duration } from './proto.js';
import { SDS_CLUSTER, SDS_DEFAULT, SDS_ROOTCA } from './names.js';

type Obj = Record<string, unknown>;

export const TLS_SOCKET_NAME = 'envoy.transport_sockets.tls';

/** `ConfigSource` for SDS: gRPC to the agent through the bootstrap cluster `sds-grpc`. */
export function sdsConfigSource(): Obj {
  return {
    api_config_source: {
      api_type: 'GRPC',
      set_node_on_first_message_only: true,
      transport_api_version: 'V3',
      grpc_services: [{ envoy_grpc: { cluster_name: SDS_CLUSTER } }],
    },
    initial_fetch_timeout: duration(0),
    resource_api_version: 'V3',
  };
}

export function sdsSecret(name: string): Obj {
  return { name, sds_config: sdsConfigSource() };
}

const TLS_PARAMS: Obj = { tls_minimum_protocol_version: 'TLSv1_2', tls_maximum_protocol_version: 'TLSv1_3' };

/** Subject-alt-name matchers: SPIFFE ids as URI SANs, anything else as DNS SANs. */
export function sanMatchers(sans: readonly string[]): Obj[] {
  return [...new Set(sans)].sort().map((san) => ({ san_type: san.startsWith('spiffe://') ? 'URI' : 'DNS', matcher: { exact: san } }));
}

function transportSocket(typeUrl: string, context: Obj): Obj {
  return { name: TLS_SOCKET_NAME, typed_config: { '@type': typeUrl, ...context } };
}

/** Client side of mesh mTLS (ISTIO_MUTUAL or auto mTLS): SDS `default` + `ROOTCA`, peers checked by SPIFFE id. */
export function istioMutualUpstream(sni: string, spiffeIds: readonly string[], alpn: readonly string[]): Obj {
  return transportSocket(EXT_TYPE_URL.upstreamTlsContext, {
    common_tls_context: {
      tls_params: TLS_PARAMS,
      alpn_protocols: [...alpn],
      tls_certificate_sds_secret_configs: [sdsSecret(SDS_DEFAULT)],
      combined_validation_context: {
        default_validation_context: spiffeIds.length === 0 ? {} : { match_typed_subject_alt_names: sanMatchers(spiffeIds) },
        validation_context_sds_secret_config: sdsSecret(SDS_ROOTCA),
      },
    },
    sni,
  });
}

export interface OriginationSettings {
  readonly mode: 'SIMPLE' | 'MUTUAL';
  readonly sni?: string;
  readonly caCertificates?: string;
  readonly clientCertificate?: string;
  readonly privateKey?: string;
  readonly credentialName?: string;
  readonly subjectAltNames?: readonly string[];
  readonly insecureSkipVerify?: boolean;
}

/** Client side of DestinationRule SIMPLE/MUTUAL TLS origination. */
export function originationUpstream(tls: OriginationSettings, defaultSni: string | undefined, alpn: readonly string[]): Obj {
  const common: Obj = { tls_params: TLS_PARAMS };
  if (alpn.length > 0) common.alpn_protocols = [...alpn];
  if (tls.mode === 'MUTUAL') {
    const cert = tls.credentialName ?? (tls.clientCertificate !== undefined && tls.privateKey !== undefined ? `file-cert:${tls.clientCertificate}~${tls.privateKey}` : undefined);
    if (cert !== undefined) common.tls_certificate_sds_secret_configs = [sdsSecret(cert)];
  }
  const ca = tls.credentialName !== undefined ? `${tls.credentialName}-cacert` : tls.caCertificates !== undefined ? `file-root:${tls.caCertificates}` : undefined;
  const sans = tls.subjectAltNames ?? [];
  if (tls.insecureSkipVerify !== true && ca !== undefined) {
    common.combined_validation_context = {
      default_validation_context: sans.length === 0 ? {} : { match_typed_subject_alt_names: sanMatchers(sans) },
      validation_context_sds_secret_config: sdsSecret(ca),
    };
  } else if (tls.insecureSkipVerify !== true && sans.length > 0) {
    common.validation_context = { match_typed_subject_alt_names: sanMatchers(sans) };
  }
  const ctx: Obj = { common_tls_context: common };
  const sni = tls.sni ?? defaultSni;
  if (sni !== undefined && sni !== '') ctx.sni = sni;
  return transportSocket(EXT_TYPE_URL.upstreamTlsContext, ctx);
}

/** Server side of mesh mTLS on the inbound listener: any peer whose certificate chains to ROOTCA and has a SPIFFE id. */
export function istioMutualDownstream(alpn: readonly string[]): Obj {
  return transportSocket(EXT_TYPE_URL.downstreamTlsContext, {
    common_tls_context: {
      tls_params: TLS_PARAMS,
      alpn_protocols: [...alpn],
      tls_certificate_sds_secret_configs: [sdsSecret(SDS_DEFAULT)],
      combined_validation_context: {
        default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://' } }] },
        validation_context_sds_secret_config: sdsSecret(SDS_ROOTCA),
      },
    },
    require_client_certificate: { value: true },
  });
}

export interface GatewayTlsSettings {
  readonly mode?: string;
  readonly credentialName?: string;
  readonly credentialNames?: readonly string[];
  readonly tlsCertificates?: readonly { readonly serverCertificate?: string; readonly privateKey?: string; readonly caCertificates?: string }[];
  readonly serverCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  readonly subjectAltNames?: readonly string[];
  readonly minProtocolVersion?: string;
  readonly maxProtocolVersion?: string;
  readonly cipherSuites?: readonly string[];
}

/** Istio's `TLSV1_2` → Envoy's `TLSv1_2` (TLS_AUTO and unset keep the mesh default). */
function envoyTlsVersion(v: string | undefined, dflt: string): string {
  if (v === undefined || v === 'TLS_AUTO') return dflt;
  return `TLSv${v.slice('TLSV'.length)}`;
}

/** The server's protocol versions and ciphers, as Istio writes them for gateways. */
function gatewayTlsParams(tls: GatewayTlsSettings): Obj {
  return {
    tls_minimum_protocol_version: envoyTlsVersion(tls.minProtocolVersion, 'TLSv1_2'),
    tls_maximum_protocol_version: envoyTlsVersion(tls.maxProtocolVersion, 'TLSv1_3'),
    ...(tls.cipherSuites !== undefined && tls.cipherSuites.length > 0 ? { cipher_suites: [...tls.cipherSuites] } : {}),
  };
}

/**
 * Server side of a gateway's SIMPLE / MUTUAL / ISTIO_MUTUAL server. The certificate comes from `credentialName`
 * (SDS `<name>`, clients' CA `<name>-cacert`), `credentialNames` / `tlsCertificates` (several key types: one SDS
 * config each, the first one's CA), or the file paths (`file-cert:<cert>~<key>`, `file-root:<ca>`), as Istio names them.
 */
export function gatewayDownstream(tls: GatewayTlsSettings, alpn: readonly string[]): Obj {
  const mode = tls.mode ?? 'SIMPLE';
  if (mode === 'ISTIO_MUTUAL') return istioMutualDownstream(alpn);
  const fileCert = (c: { serverCertificate?: string; privateKey?: string }) => (c.serverCertificate !== undefined && c.privateKey !== undefined ? `file-cert:${c.serverCertificate}~${c.privateKey}` : undefined);
  const certs = tls.credentialName !== undefined ? [tls.credentialName]
    : tls.credentialNames !== undefined ? [...tls.credentialNames]
      : tls.tlsCertificates !== undefined ? tls.tlsCertificates.map(fileCert).filter((c): c is string => c !== undefined)
        : [fileCert(tls)].filter((c): c is string => c !== undefined);
  const common: Obj = { tls_params: gatewayTlsParams(tls), alpn_protocols: [...alpn] };
  if (certs.length > 0) common.tls_certificate_sds_secret_configs = certs.map(sdsSecret);
  const ctx: Obj = { common_tls_context: common };
  if (mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
    const secretName = tls.credentialName ?? tls.credentialNames?.[0];
    const caFile = tls.caCertificates ?? tls.tlsCertificates?.find((c) => c.caCertificates !== undefined)?.caCertificates;
    const ca = secretName !== undefined ? `${secretName}-cacert` : caFile !== undefined ? `file-root:${caFile}` : undefined;
    const sans = tls.subjectAltNames ?? [];
    common.combined_validation_context = {
      default_validation_context: sans.length === 0 ? {} : { match_typed_subject_alt_names: sanMatchers(sans) },
      validation_context_sds_secret_config: sdsSecret(ca ?? SDS_ROOTCA),
    };
    ctx.require_client_certificate = { value: mode === 'MUTUAL' };
  }
  return transportSocket(EXT_TYPE_URL.downstreamTlsContext, ctx);
}
