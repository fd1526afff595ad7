/** `networking.istio.io` Gateway (istio/api networking/v1alpha3/gateway.proto). */
import { arrayOf, bool, enumOf, labels, obj, required, str, strings, type Schema } from '../decode/schema.js';
import { joinIndex, joinKey } from '../decode/violations.js';
import { checkNamespacedHost } from '../decode/syntax.js';
import { portSpec, type PortSpec } from './common.js';

export type ServerTLSMode = 'PASSTHROUGH' | 'SIMPLE' | 'MUTUAL' | 'AUTO_PASSTHROUGH' | 'ISTIO_MUTUAL' | 'OPTIONAL_MUTUAL';
export type TLSProtocol = 'TLS_AUTO' | 'TLSV1_0' | 'TLSV1_1' | 'TLSV1_2' | 'TLSV1_3';

export interface TLSCertificate {
  readonly serverCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
}

export interface ServerTLSSettings {
  /** Answer plain HTTP on this server with a 301 to HTTPS. */
  readonly httpsRedirect?: boolean;
  /**
   * No default is filled in. Istio's enum default is PASSTHROUGH; Trellis asks HTTPS and TLS servers to say which mode
   * they mean (a `tls` block holding only `httpsRedirect: true` needs none).
   */
  readonly mode?: ServerTLSMode;
  readonly serverCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  readonly caCrl?: string;
  /** Secret holding the certificate (and `ca.crt` for MUTUAL); replaces the file paths. */
  readonly credentialName?: string;
  readonly credentialNames?: readonly string[];
  readonly tlsCertificates?: readonly TLSCertificate[];
  readonly subjectAltNames?: readonly string[];
  readonly verifyCertificateSpki?: readonly string[];
  readonly verifyCertificateHash?: readonly string[];
  readonly minProtocolVersion?: TLSProtocol;
  readonly maxProtocolVersion?: TLSProtocol;
  readonly cipherSuites?: readonly string[];
}

const TLS_PROTOCOLS: readonly TLSProtocol[] = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'];

export const serverTls = (): Schema<ServerTLSSettings> =>
  obj<ServerTLSSettings>(
    {
      httpsRedirect: bool(),
      mode: enumOf<ServerTLSMode>(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'], { what: 'TLS mode' }),
      serverCertificate: str(),
      privateKey: str(),
      caCertificates: str(),
      caCrl: str(),
      credentialName: str(),
      credentialNames: strings(),
      tlsCertificates: arrayOf(obj<TLSCertificate>({ serverCertificate: str(), privateKey: str(), caCertificates: str() })),
      subjectAltNames: strings(),
      verifyCertificateSpki: strings(),
      verifyCertificateHash: strings(),
      minProtocolVersion: enumOf(TLS_PROTOCOLS, { what: 'TLS version' }),
      maxProtocolVersion: enumOf(TLS_PROTOCOLS, { what: 'TLS version' }),
      cipherSuites: strings(),
    },
    {
      oneOf: [['credentialName', 'credentialNames', 'tlsCertificates']],
      check(t, path, cx) {
        const mode = t.mode;
        if (mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
          const fromSecret = t.credentialName !== undefined || t.credentialNames !== undefined || t.tlsCertificates !== undefined;
          if (!fromSecret) {
            if (t.serverCertificate === undefined) cx.add(joinKey(path, 'serverCertificate'), `${mode} TLS requires a server certificate (or \`credentialName\`)`);
            if (t.privateKey === undefined) cx.add(joinKey(path, 'privateKey'), `${mode} TLS requires a private key (or \`credentialName\`)`);
            if (mode !== 'SIMPLE' && t.caCertificates === undefined) cx.add(joinKey(path, 'caCertificates'), `${mode} TLS requires a client CA bundle (or \`credentialName\`)`);
          }
        }
        if (t.minProtocolVersion !== undefined && t.maxProtocolVersion !== undefined && t.minProtocolVersion !== 'TLS_AUTO' && t.maxProtocolVersion !== 'TLS_AUTO'
          && TLS_PROTOCOLS.indexOf(t.minProtocolVersion) > TLS_PROTOCOLS.indexOf(t.maxProtocolVersion)) {
          cx.add(joinKey(path, 'minProtocolVersion'), 'must not be higher than `maxProtocolVersion`');
        }
      },
    },
  );

export interface Server {
  /** `protocol` is always set after decoding (derived from the port name, else TCP). */
  readonly port: PortSpec;
  readonly bind?: string;
  /** `namespace/host` or `host`: `*`, `*.example.com`, `bookinfo.com`, `./foo.com`, `ns/*`. */
  readonly hosts: readonly string[];
  readonly tls?: ServerTLSSettings;
  readonly defaultEndpoint?: string;
  readonly name?: string;
}

export interface GatewaySpec {
  readonly servers: readonly Server[];
  /** Labels of the gateway workloads (e.g. `istio: ingressgateway`). */
  readonly selector?: Readonly<Record<string, string>>;
}

const server = (): Schema<Server> =>
  obj<Server>(
    {
      port: required(portSpec({ nameRequired: false })),
      bind: str(),
      hosts: required(arrayOf(str((h) => checkNamespacedHost(h, false)), { min: 1 })),
      tls: serverTls(),
      defaultEndpoint: str(),
      name: str(),
    },
    {
      check(s, path, cx) {
        const p = s.port.protocol;
        if ((p === 'HTTPS' || p === 'TLS') && s.tls === undefined) cx.add(joinKey(path, 'tls'), `server must have TLS settings for protocol ${p}`);
        if ((p === 'HTTPS' || p === 'TLS') && s.tls !== undefined && s.tls.mode === undefined && s.tls.httpsRedirect !== true) {
          cx.add(joinKey(joinKey(path, 'tls'), 'mode'), `required field is missing (protocol ${p} needs a TLS mode)`);
        }
        if (p === 'HTTPS' && s.tls?.mode !== undefined && (s.tls.mode === 'PASSTHROUGH' || s.tls.mode === 'AUTO_PASSTHROUGH')) {
          cx.add(joinKey(joinKey(path, 'tls'), 'mode'), `TLS mode ${s.tls.mode} needs protocol TLS, not HTTPS`);
        }
      },
    },
  );

export const gatewaySpec = (): Schema<GatewaySpec> =>
  obj<GatewaySpec>(
    { servers: required(arrayOf(server(), { min: 1 })), selector: labels() },
    {
      check(g, path, cx) {
        const names = new Map<string, number>();
        g.servers.forEach((s, i) => {
          if (s.port.name === undefined) return;
          const first = names.get(s.port.name);
          if (first !== undefined) cx.add(joinKey(joinKey(joinIndex(joinKey(path, 'servers'), i), 'port'), 'name'), `port name \`${s.port.name}\` already defined at servers[${first}]`);
          else names.set(s.port.name, i);
        });
      },
    },
  );
