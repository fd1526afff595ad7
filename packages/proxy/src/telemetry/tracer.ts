/**
 * The tracer of one proxy: which requests are traced (the HCM's `tracing`, or the `--trace-sampling` / `--zipkin`
 * flags), the sampling decision, span ids, and one Zipkin reporter per collector.
 *
 * Precedence: a flag wins over the control plane's HCM config, field by field (sampling; collector). A request on an
 * HCM without `tracing` is traced only when `--zipkin` is given.
 */
import type { HttpConnectionManager, TracingConfig } from '@trellis/api';
import type { Logger } from '../log.js';
import { IdGenerator } from './trace-context.js';
import { type CollectorTarget, type ZipkinSpan, ZipkinReporter, parseCollectorAddress } from './zipkin.js';

export interface TracerOptions {
  readonly logger: Logger;
  /** Zipkin `localEndpoint.serviceName`: `<app>.<namespace>` as Istio names it. */
  readonly serviceName: string;
  readonly ip: string;
  readonly nodeId: string;
  readonly namespace: string;
  /** `--trace-sampling` (percent), overriding the HCM's. */
  readonly sampling?: number;
  /** `--zipkin HOST:PORT`, overriding the HCM's collector. */
  readonly zipkin?: string;
  /** A host of a cluster (`ip:port`), to reach a collector named by `collector_cluster` only. */
  readonly clusterHost?: (cluster: string) => { address: string; port: number } | null;
  readonly random?: () => number;
  /** Reporter tuning (tests). */
  readonly reporter?: { readonly maxQueue?: number; readonly batchSize?: number; readonly flushIntervalMs?: number };
}

/** What the layer needs for one request. */
export interface TraceDecision {
  /** Percent 0-100 of requests without an upstream decision that get sampled. */
  readonly sampling: number;
  readonly traceId128: boolean;
  readonly reporter: ZipkinReporter | null;
}

export class Tracer {
  readonly ids = new IdGenerator();
  private readonly reporters = new Map<string, ZipkinReporter>();
  private readonly decisions = new WeakMap<HttpConnectionManager, TraceDecision | null>();
  private readonly flagTarget: CollectorTarget | null;
  private readonly random: () => number;

  constructor(readonly o: TracerOptions) {
    this.random = o.random ?? Math.random;
    this.flagTarget = o.zipkin ? parseCollectorAddress(o.zipkin) : null;
    if (o.zipkin && !this.flagTarget) throw new Error(`--zipkin: "${o.zipkin}" is not HOST:PORT`);
    if (o.sampling !== undefined && !(o.sampling >= 0 && o.sampling <= 100)) throw new Error(`--trace-sampling: ${o.sampling} is not a percentage 0-100`);
  }

  /**
   * Whether and how to trace requests on this HCM; null = not at all (the layer is a pass-through). Computed once
   * per (frozen) HCM config, except when the collector is found through `collector_cluster`, whose hosts change.
   */
  decide(hcm: HttpConnectionManager): TraceDecision | null {
    const cached = this.decisions.get(hcm);
    if (cached !== undefined) return cached;
    const t: TracingConfig | null = hcm.tracing ?? null;
    if (!t && !this.flagTarget) { this.decisions.set(hcm, null); return null; }
    const sampling = this.o.sampling ?? t?.randomSampling ?? 1;
    const named = this.flagTarget ?? this.namedTarget(t);
    const target = named ?? this.clusterTarget(t);
    const d: TraceDecision = { sampling, traceId128: t?.provider?.traceId128bit ?? true, reporter: target ? this.reporter(target) : null };
    if (named || !t?.provider) this.decisions.set(hcm, d);
    return d;
  }

  sample(percent: number): boolean {
    return percent >= 100 || (percent > 0 && this.random() * 100 < percent);
  }

  /** The collector named `host:port` by `collector_hostname`. */
  private namedTarget(t: TracingConfig | null): CollectorTarget | null {
    const p = t?.provider;
    return p?.collectorHostname ? parseCollectorAddress(p.collectorHostname, p.collectorEndpoint) : null;
  }

  /** A host of `collector_cluster`, now. */
  private clusterTarget(t: TracingConfig | null): CollectorTarget | null {
    const p = t?.provider;
    if (!p) return null;
    const h = this.o.clusterHost?.(p.collectorCluster);
    return h ? { host: h.address, port: h.port, path: p.collectorEndpoint, ...(p.collectorHostname ? { hostHeader: p.collectorHostname } : {}) } : null;
  }

  private reporter(t: CollectorTarget): ZipkinReporter {
    const key = `${t.host}|${t.port}|${t.path}|${t.hostHeader ?? ''}`;
    let r = this.reporters.get(key);
    if (!r) {
      r = new ZipkinReporter({ target: t, logger: this.o.logger, ...this.o.reporter });
      this.reporters.set(key, r);
    }
    return r;
  }

  get spansReported(): number {
    let n = 0;
    for (const r of this.reporters.values()) n += r.reported;
    return n;
  }

  get spansDropped(): number {
    let n = 0;
    for (const r of this.reporters.values()) n += r.dropped;
    return n;
  }

  async flush(): Promise<void> {
    await Promise.all([...this.reporters.values()].map((r) => r.flush()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.reporters.values()].map((r) => r.close()));
    this.reporters.clear();
  }

  /** The local endpoint of every span this proxy reports. */
  localEndpoint(): ZipkinSpan['localEndpoint'] {
    return this.o.ip.includes(':') ? { serviceName: this.o.serviceName, ipv6: this.o.ip } : { serviceName: this.o.serviceName, ipv4: this.o.ip };
  }
}
