import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { Aggregate } from '../src/aggregate/aggregate.js';
import { Debouncer, type Timers } from '../src/snapshot/debounce.js';
import { SnapshotController } from '../src/snapshot/controller.js';
import { mergeShards } from '../src/aggregate/merge.js';
import { DEFAULT_MESH_SETTINGS } from '../src/config/mesh-settings.js';
import { buildSnapshot } from '../src/snapshot/build.js';
import { endpointOnlyDelta } from '../src/snapshot/delta.js';
import { snapshotChange, svc, wl } from './aggregate-fixtures.js';

/** Manual timers: `advance(ms)` runs what falls due. */
export class ManualTimers implements Timers {
  t = 0;
  #q: { at: number; fn: () => void; id: number }[] = [];
  #id = 0;
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): unknown { const id = ++this.#id; this.#q.push({ at: this.t + ms, fn, id }); return id; }
  clearTimeout(h: unknown): void { this.#q = this.#q.filter((x) => x.id !== h); }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.#q.sort((a, b) => a.at - b.at);
      const next = this.#q[0];
      if (!next || next.at > end) break;
      this.#q.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

describe('debounce', () => {
  it('fires `after` ms after the last change', () => {
    const timers = new ManualTimers();
    let fired = 0;
    const d = new Debouncer({ afterMs: 100, maxMs: 1000, timers }, () => fired++);
    d.trigger();
    timers.advance(60);
    d.trigger();
    timers.advance(60);
    expect(fired).to.equal(0);
    timers.advance(40);
    expect(fired).to.equal(1);
    d.close();
  });

  it('fires at most `max` ms after the first change of a continuous burst', () => {
    const timers = new ManualTimers();
    const at: number[] = [];
    const d = new Debouncer({ afterMs: 100, maxMs: 1000, timers }, () => at.push(timers.now()));
    for (let i = 0; i < 30; i++) { d.trigger(); timers.advance(50); }
    expect(at[0]).to.equal(1000);
    expect(at.length).to.equal(1);
    d.close();
    timers.advance(5000);
    expect(at.length).to.equal(1);
  });
});

describe('snapshot controller', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'snap-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('builds only after every shard\'s first snapshot, debounced, with growing versions and VIPs', () => {
    const timers = new ManualTimers();
    let ctl: SnapshotController | undefined;
    const agg = new Aggregate({ onChange: () => ctl?.changed() });
    ctl = new SnapshotController({ aggregate: agg, meshDefaults: {}, stateDir: dir, debounceAfterMs: 100, debounceMaxMs: 1000, timers, now: () => new Date(0) });
    const versions: string[] = [];
    ctl.subscribe((s) => versions.push(s.version));
    agg.addShard('a', 'file');
    agg.addShard('b', 'consul');
    agg.apply('a', snapshotChange('a', 'file', [svc('x.test', 'a', 'file')]));
    timers.advance(200);
    expect(versions).to.deep.equal([]);
    expect(ctl.notReadyReason()).to.match(/shard\(s\): b/);
    agg.apply('b', snapshotChange('b', 'consul', []));
    timers.advance(99);
    expect(versions).to.deep.equal([]);
    timers.advance(1);
    expect(versions).to.deep.equal(['1970-01-01T00:00:00.000Z/1']);
    expect(ctl.notReadyReason()).to.equal(undefined);
    expect(ctl.current!.snapshot.services[0].vip).to.match(/^240\.240\./);
    agg.apply('a', snapshotChange('a', 'file', [svc('x.test', 'a', 'file'), svc('y.test', 'a', 'file')]));
    timers.advance(100);
    expect(versions).to.have.length(2);
    expect(versions[1]).to.match(/\/2$/);
    ctl.close();
  });
});

describe('endpoint-only delta', () => {
  const mk = (version: string, eps: [string, string][], resolution: 'STATIC' | 'DNS' = 'STATIC'): import('../src/snapshot/types.js').Snapshot => {
    const s = svc('api.test', 'f', 'file', { resolution });
    const ws = eps.map(([a, sa], i) => wl(`w${i}`, a, 'f', 'file', { services: ['api.test'], serviceAccount: sa }));
    const merged = mergeShards([{ shard: 'f', kind: 'file', services: new Map([['k', s]]), workloads: new Map(ws.map((w) => [w.name, w])) }], ['file']);
    return buildSnapshot({ view: { ...merged, shards: [], configs: [] }, mesh: DEFAULT_MESH_SETTINGS, vips: new Map(), version });
  };

  it('names the changed addresses when only STATIC endpoints moved', () => {
    const d = endpointOnlyDelta(mk('1', [['10.0.0.1', 'a']]), mk('2', [['10.0.0.1', 'a'], ['10.0.0.2', 'a']]));
    expect(d && [...d.addresses]).to.deep.equal(['10.0.0.2']);
  });

  it('says no when identities change, when a DNS service changes, or when the service itself changes', () => {
    expect(endpointOnlyDelta(mk('1', [['10.0.0.1', 'a']]), mk('2', [['10.0.0.1', 'b']]))).to.equal(undefined);
    expect(endpointOnlyDelta(mk('1', [['10.0.0.1', 'a']], 'DNS'), mk('2', [['10.0.0.2', 'a']], 'DNS'))).to.equal(undefined);
    expect(endpointOnlyDelta(mk('1', [['10.0.0.1', 'a']], 'STATIC'), mk('2', [['10.0.0.1', 'a']], 'DNS'))).to.equal(undefined);
  });
});
