/**
 * A client that stops reading must not make the control plane queue one response per snapshot: pushes to a stream
 * whose responses are not taken wait, and once they drain the client gets the current state in one push.
 * Driven through the service handler the ADS server registers, with a stream whose writes complete only when the
 * test says so (a real gRPC client cannot be told to stop reading).
 */
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { decodeMessage, TYPE_URL } from '@trellis/api';
import { DEFAULT_MESH_SETTINGS } from '../src/config/mesh-settings.js';
import { indexConfigs } from '../src/snapshot/build.js';
import type { Generator, Snapshot } from '../src/snapshot/types.js';
import { AdsServer } from '../src/xds/ads-server.js';

class StuckStream extends EventEmitter {
  readonly written: Buffer[] = [];
  readonly #callbacks: (() => void)[] = [];
  get writableLength(): number {
    return this.#callbacks.length;
  }
  write(chunk: Buffer, cb: () => void): boolean {
    this.written.push(chunk);
    this.#callbacks.push(cb);
    return this.#callbacks.length < 16;
  }
  end(): void { /* nothing */ }
  /** The client reads everything queued. */
  drain(): void {
    for (const cb of this.#callbacks.splice(0)) cb();
  }
}

const snapshot = (n: number): Snapshot => Object.freeze({
  version: `v${n}`,
  services: [],
  workloads: [],
  config: indexConfigs([]),
  // A mesh change makes every step a full one, so each snapshot changes the cluster below.
  mesh: { ...DEFAULT_MESH_SETTINGS, clusterId: `c${n}` },
});

describe('ADS server: backpressure', () => {
  it('stops pushing to a stream that does not drain, then sends the latest state once', async () => {
    let current = snapshot(0);
    const gens: Record<string, Generator> = {
      [TYPE_URL.cluster]: (s) => [{ name: 'c', body: { name: 'c', alt_stat_name: s.mesh.clusterId } }],
    };
    const ads = new AdsServer({ generators: gens, snapshots: { current: () => current }, identifier: 't' });
    let handler: ((s: unknown) => void) | undefined;
    ads.addTo({ addService: (_d: unknown, impl: Record<string, (s: unknown) => void>) => { handler = impl.StreamAggregatedResources; } } as unknown as grpc.Server);
    const stream = new StuckStream();
    handler!(stream);
    stream.emit('data', { node: { id: 'sidecar~10.0.0.1~a.default~default.svc.cluster.local' }, type_url: TYPE_URL.cluster, resource_names: [] });
    expect(stream.written).to.have.length(1);
    for (let i = 1; i <= 40; i++) {
      current = snapshot(i);
      ads.onSnapshot();
      await new Promise((r) => setImmediate(r));
    }
    expect(stream.written.length).to.be.at.most(8);
    const before = stream.written.length;
    stream.drain();
    expect(stream.written).to.have.length(before + 1);
    const last = decodeMessage('type.googleapis.com/envoy.service.discovery.v3.DiscoveryResponse', stream.written.at(-1)!) as { resources: Record<string, unknown>[] };
    expect(last.resources.map((r) => r.alt_stat_name)).to.deep.equal(['c40']);
    ads.close();
  });

  it('holds responses back while the in-flight budget is spent and sends them as it frees up', () => {
    const current = snapshot(1);
    const gens: Record<string, Generator> = {
      [TYPE_URL.cluster]: (s) => [{ name: 'c', body: { name: 'c', alt_stat_name: s.mesh.clusterId } }],
    };
    const ads = new AdsServer({ generators: gens, snapshots: { current: () => current }, identifier: 't', maxInflightBytes: 1 });
    let handler: ((s: unknown) => void) | undefined;
    ads.addTo({ addService: (_d: unknown, impl: Record<string, (s: unknown) => void>) => { handler = impl.StreamAggregatedResources; } } as unknown as grpc.Server);
    const a = new StuckStream();
    const b = new StuckStream();
    handler!(a);
    handler!(b);
    a.emit('data', { node: { id: 'sidecar~10.0.0.1~a.default~default.svc.cluster.local' }, type_url: TYPE_URL.cluster, resource_names: [] });
    b.emit('data', { node: { id: 'sidecar~10.0.0.2~b.default~default.svc.cluster.local' }, type_url: TYPE_URL.cluster, resource_names: [] });
    expect([a.written.length, b.written.length]).to.deep.equal([1, 0]);
    a.drain();
    expect([a.written.length, b.written.length]).to.deep.equal([1, 1]);
    // A stream that goes away gives its share back.
    const c = new StuckStream();
    handler!(c);
    c.emit('data', { node: { id: 'sidecar~10.0.0.3~c.default~default.svc.cluster.local' }, type_url: TYPE_URL.cluster, resource_names: [] });
    expect(c.written).to.have.length(0);
    b.emit('close');
    expect(c.written).to.have.length(1);
    ads.close();
  });
});
