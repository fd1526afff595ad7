/** `networking.istio.io` Sidecar (istio/api networking/v1alpha3/sidecar.proto). */
import { arrayOf, enumOf, obj, required, str, type Schema } from '../decode/schema.js';
import { checkNamespacedHost } from '../decode/syntax.js';
import { destination, portSpec, workloadSelector, type Destination, type PortSpec, type WorkloadSelector } from './common.js';
import { connectionPool, type ConnectionPoolSettings } from './destination-rule.js';
import { serverTls, type ServerTLSSettings } from './gateway.js';

export type CaptureMode = 'DEFAULT' | 'IPTABLES' | 'NONE';
const captureMode = (): Schema<CaptureMode> => enumOf<CaptureMode>(['DEFAULT', 'IPTABLES', 'NONE'], { what: 'capture mode' });

export interface IstioIngressListener {
  readonly port: PortSpec;
  readonly bind?: string;
  readonly captureMode?: CaptureMode;
  /** `127.0.0.1:PORT`, `0.0.0.0:PORT` or `unix:///path`. */
  readonly defaultEndpoint?: string;
  readonly tls?: ServerTLSSettings;
  readonly connectionPool?: ConnectionPoolSettings;
}

export interface IstioEgressListener {
  readonly port?: PortSpec;
  readonly bind?: string;
  readonly captureMode?: CaptureMode;
  /** `namespace/dnsName`, e.g. `./*`, `istio-system/*`, `*` + `/foo.example.com` (any namespace). */
  readonly hosts: readonly string[];
}

export interface OutboundTrafficPolicy {
  /** Default ALLOW_ANY (Istio's default). */
  readonly mode: 'REGISTRY_ONLY' | 'ALLOW_ANY';
  readonly egressProxy?: Destination;
}

export interface SidecarSpec {
  readonly workloadSelector?: WorkloadSelector;
  readonly ingress?: readonly IstioIngressListener[];
  readonly egress?: readonly IstioEgressListener[];
  readonly outboundTrafficPolicy?: OutboundTrafficPolicy;
  readonly inboundConnectionPool?: ConnectionPoolSettings;
}

const defaultEndpoint = (e: string): string | undefined =>
  e.startsWith('unix://') || /^(127\.0\.0\.1|0\.0\.0\.0|\[::1?\]):\d{1,5}$/.test(e) ? undefined : `invalid defaultEndpoint \`${e}\`: expected 127.0.0.1:PORT, 0.0.0.0:PORT or unix:///path`;

export const sidecarSpec = (): Schema<SidecarSpec> =>
  obj<SidecarSpec>({
    workloadSelector: workloadSelector(),
    ingress: arrayOf(
      obj<IstioIngressListener>({
        port: required(portSpec({ nameRequired: false })),
        bind: str(),
        captureMode: captureMode(),
        defaultEndpoint: str(defaultEndpoint),
        tls: serverTls(),
        connectionPool: connectionPool(),
      }),
    ),
    egress: arrayOf(
      obj<IstioEgressListener>({
        port: portSpec({ nameRequired: false }),
        bind: str(),
        captureMode: captureMode(),
        hosts: required(arrayOf(str((h) => checkNamespacedHost(h, true)), { min: 1 })),
      }),
    ),
    outboundTrafficPolicy: obj<OutboundTrafficPolicy>({
      mode: { schema: enumOf(['REGISTRY_ONLY', 'ALLOW_ANY'] as const, { what: 'mode' }), default: 'ALLOW_ANY' },
      egressProxy: destination(),
    }),
    inboundConnectionPool: connectionPool(),
  });
