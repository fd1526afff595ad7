/** `networking.istio.io` WorkloadGroup (istio/api networking/v1alpha3/workload_group.proto). */
import { arrayOf, enumOf, int, labels, obj, port, required, str, stringMap, strings, type Schema } from '../decode/schema.js';
import { workloadEntryFields, type WorkloadEntrySpec } from './workload-entry.js';

export interface HTTPHeader {
  readonly name: string;
  readonly value?: string;
}
export interface HTTPHealthCheckConfig {
  readonly path?: string;
  readonly port: number;
  readonly host?: string;
  /** Default HTTP. */
  readonly scheme?: 'HTTP' | 'HTTPS';
  readonly httpHeaders?: readonly HTTPHeader[];
}
export interface TCPHealthCheckConfig {
  readonly host?: string;
  readonly port: number;
}
export interface ExecHealthCheckConfig {
  readonly command: readonly string[];
}
export interface GrpcHealthCheckConfig {
  readonly port?: number;
  readonly service?: string;
}
/** Seconds fields keep Istio's units (they are integers in the proto, not durations). */
export interface ReadinessProbe {
  readonly initialDelaySeconds?: number;
  readonly timeoutSeconds?: number;
  readonly periodSeconds?: number;
  readonly successThreshold?: number;
  readonly failureThreshold?: number;
  readonly httpGet?: HTTPHealthCheckConfig;
  readonly tcpSocket?: TCPHealthCheckConfig;
  readonly exec?: ExecHealthCheckConfig;
  readonly grpc?: GrpcHealthCheckConfig;
}
export interface ObjectMeta {
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}
export interface WorkloadGroupSpec {
  readonly metadata?: ObjectMeta;
  /** Template for the WorkloadEntries of the group; `address` must be left out. */
  readonly template: WorkloadEntrySpec;
  readonly probe?: ReadinessProbe;
}

export const workloadGroupSpec = (): Schema<WorkloadGroupSpec> =>
  obj<WorkloadGroupSpec>({
    metadata: obj<ObjectMeta>({ labels: labels(), annotations: stringMap() }),
    template: required(
      obj<WorkloadEntrySpec>({
        ...workloadEntryFields,
        address: str(() => 'must not be set in a template; each WorkloadEntry gets its own address'),
      }),
    ),
    probe: obj<ReadinessProbe>(
      {
        initialDelaySeconds: int(),
        timeoutSeconds: int(),
        periodSeconds: int(),
        successThreshold: int(),
        failureThreshold: int(),
        httpGet: obj<HTTPHealthCheckConfig>({
          path: str(),
          port: required(port()),
          host: str(),
          scheme: enumOf(['HTTP', 'HTTPS'] as const, { caseInsensitive: true }),
          httpHeaders: arrayOf(obj<HTTPHeader>({ name: required(str()), value: str() })),
        }),
        tcpSocket: obj<TCPHealthCheckConfig>({ host: str(), port: required(port()) }),
        exec: obj<ExecHealthCheckConfig>({ command: required(strings()) }),
        grpc: obj<GrpcHealthCheckConfig>({ port: port(), service: str() }),
      },
      { exactlyOne: [['httpGet', 'tcpSocket', 'exec', 'grpc']] },
    ),
  });

