/**
 * `/metrics`: a prom-client Registry of its own (never the global one), fed by the ADS server's
 * diagnostics_channel events and by gauges read at scrape time. Names follow istiod's where one exists
 * (`pilot_xds_pushes`, `pilot_xds`, `pilot_total_xds_rejects`), so existing dashboards work.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { TYPE_SHORT_NAME } from '@trellis/api';
import { XDS_CHANNELS, type NackEvent, type PushEvent } from '../xds/events.js';
import type { ShardView } from '../aggregate/aggregate.js';

export interface MetricsSources {
  connectedProxies(): number;
  shards(): readonly ShardView[];
  conflicts(): number;
  /** Problems (invalid files/items) across all shards plus MeshConfig/snapshot errors. */
  configErrors(): number;
}

const typeLabel = (t: string): string => (TYPE_SHORT_NAME[t] ?? t).toLowerCase();

export class ControlMetrics {
  readonly registry = new Registry();
  readonly #unsubscribe: (() => void)[] = [];

  constructor(sources: MetricsSources, options: { defaultMetrics?: boolean } = {}) {
    const r = this.registry;
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: r });
    const pushes = new Counter({ name: 'pilot_xds_pushes', help: 'xDS responses sent, by type', labelNames: ['type'], registers: [r] });
    const pushTime = new Histogram({
      name: 'pilot_xds_push_time', help: 'Seconds to generate and send one xDS response', labelNames: ['type'], registers: [r],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    });
    const rejects = new Counter({ name: 'pilot_total_xds_rejects', help: 'NACKs received from proxies, by type', labelNames: ['type'], registers: [r] });
    new Gauge({ name: 'pilot_xds', help: 'Connected xDS clients', registers: [r], collect() { this.set(sources.connectedProxies()); } });
    new Gauge({
      name: 'trellis_registry_shard_state', help: '1 for the current state of each registry shard (syncing, synced, stale)',
      labelNames: ['shard', 'kind', 'state'], registers: [r],
      collect() {
        this.reset();
        for (const s of sources.shards()) for (const st of ['syncing', 'synced', 'stale']) this.set({ shard: s.shard, kind: s.kind, state: st }, s.status.state === st ? 1 : 0);
      },
    });
    new Gauge({
      name: 'trellis_registry_services', help: 'Services held by each registry shard', labelNames: ['shard'], registers: [r],
      collect() { this.reset(); for (const s of sources.shards()) this.set({ shard: s.shard }, s.counts.services); },
    });
    new Gauge({ name: 'trellis_registry_conflicts', help: 'Field disagreements between shards on the same service', registers: [r], collect() { this.set(sources.conflicts()); } });
    new Gauge({ name: 'trellis_config_errors', help: 'Invalid resources or items currently reported by the registries', registers: [r], collect() { this.set(sources.configErrors()); } });

    const onPush = (m: unknown): void => {
      const e = m as PushEvent;
      pushes.inc({ type: typeLabel(e.type) });
      pushTime.observe({ type: typeLabel(e.type) }, e.ms / 1000);
    };
    const onNack = (m: unknown): void => rejects.inc({ type: typeLabel((m as NackEvent).type) });
    XDS_CHANNELS.push.subscribe(onPush);
    XDS_CHANNELS.nack.subscribe(onNack);
    this.#unsubscribe.push(() => XDS_CHANNELS.push.unsubscribe(onPush), () => XDS_CHANNELS.nack.unsubscribe(onNack));
  }

  close(): void {
    for (const u of this.#unsubscribe.splice(0)) u();
    this.registry.clear();
  }
}
