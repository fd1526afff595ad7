/**
 * The per-scope memo (`memoizeGenerators`, `snapshot/scope-key.ts`) must never serve one proxy another's config:
 * for every golden fixture and a varied, deterministic set of proxies (types, namespaces, label sets taken from the
 * fixture's workloads and selectors, own IPs that are or are not endpoints, localities, networks, and fields no
 * generator reads such as id and service account), each memoised result equals direct generation.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { TYPE_SHORT_NAME, TYPE_URL } from '@trellis/api';
import { generators, memoizeGenerators } from '../src/generate/index.js';
import type { ProxyNode } from '../src/snapshot/types.js';
import { loadFixture, stableJson } from './golden/harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const goldenDir = join(here, 'golden');
const cases = readdirSync(goldenDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

/** A small deterministic PRNG (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('generate: per-scope memo equals direct generation', () => {
  for (const name of cases) {
    it(`${name}: varied proxies get exactly what direct generation gives them`, () => {
      const { snapshot, proxies } = loadFixture(join(goldenDir, name, 'input.yaml'));
      const endpoints = snapshot.services.flatMap((m) => m.endpoints);
      const namespaces = [...new Set([...proxies.map((p) => p.namespace), ...snapshot.services.map((m) => m.service.namespace), 'istio-system', 'other'])];
      const labelSets: Record<string, string>[] = [{}, ...proxies.map((p) => ({ ...p.labels })), ...endpoints.map((w) => ({ ...w.labels })), ...snapshot.workloads.map((w) => ({ ...w.labels }))];
      labelSets.push(...labelSets.slice(1, 6).map((l) => ({ ...l, unrelated: 'x' })));
      const ipSets: string[][] = [[], ['10.250.0.1'], ...proxies.map((p) => [...p.ipAddresses]), ...endpoints.slice(0, 8).map((w) => [w.address]), ...endpoints.slice(0, 4).map((w) => ['10.250.0.2', w.address])];
      const localities = ['', ...new Set(endpoints.map((w) => w.locality)), 'eu-west/zone-z'];
      const networks = ['', ...new Set(endpoints.map((w) => w.network)), 'net-other'];
      const types: ProxyNode['type'][] = ['sidecar', 'router', 'proxyless'];
      const next = rng(name.length * 7919);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
      const varied: ProxyNode[] = [...proxies];
      for (let i = 0; i < 40; i++) {
        const base = pick(proxies);
        varied.push(Object.freeze({
          ...base,
          id: `${base.id}-${i}`,
          workloadName: `w-${i}`,
          serviceAccount: `sa-${i % 3}`,
          type: next() < 0.7 ? base.type : pick(types),
          namespace: next() < 0.6 ? base.namespace : pick(namespaces),
          labels: Object.freeze(next() < 0.5 ? { ...base.labels } : pick(labelSets)),
          ipAddresses: Object.freeze(next() < 0.5 ? [...base.ipAddresses] : pick(ipSets)),
          locality: next() < 0.5 ? base.locality : pick(localities),
          network: next() < 0.7 ? base.network : pick(networks),
        }));
      }
      // Forward and reverse order with separate memos: whichever proxy fills a scope first, the others must match.
      for (const order of [varied, [...varied].reverse()]) {
        const memo = memoizeGenerators(generators);
        for (const proxy of order) {
          for (const [url, gen] of Object.entries(generators)) {
            const direct = stableJson(gen(snapshot, proxy));
            const cached = stableJson(memo[url](snapshot, proxy));
            expect(cached, `${name} ${proxy.id} ${TYPE_SHORT_NAME[url] ?? url}`).to.equal(direct);
          }
        }
      }
    });
  }

  it('shares one result between proxies that differ only in what no generator reads', () => {
    const { snapshot, proxies } = loadFixture(join(goldenDir, 'bookinfo', 'input.yaml'));
    const base = proxies[0];
    const twin: ProxyNode = Object.freeze({ ...base, id: `${base.id}-twin`, workloadName: 'twin', serviceAccount: 'other', labels: Object.freeze({ ...base.labels, unrelated: 'x' }) });
    const memo = memoizeGenerators(generators);
    for (const url of Object.keys(generators)) expect(memo[url](snapshot, twin), TYPE_SHORT_NAME[url] ?? url).to.equal(memo[url](snapshot, base));
  });

  it('shares LDS and CDS between replicas of one service (own IPs differ, ports the same)', () => {
    const { snapshot, proxies } = loadFixture(join(goldenDir, 'bookinfo', 'input.yaml'));
    const base = proxies[0];
    const reviews = snapshot.services.find((m) => m.service.hostname.startsWith('reviews'))!;
    const [r1, r2] = reviews.endpoints.map((w) => Object.freeze({ ...base, id: `sidecar~${w.address}~r`, ipAddresses: Object.freeze([w.address]), labels: Object.freeze({ app: 'reviews' }) }));
    const memo = memoizeGenerators(generators);
    for (const url of [TYPE_URL.listener, TYPE_URL.cluster]) {
      expect(memo[url](snapshot, r1), TYPE_SHORT_NAME[url]).to.equal(memo[url](snapshot, r2));
      expect(stableJson(memo[url](snapshot, r2))).to.equal(stableJson(generators[url as keyof typeof generators](snapshot, r2)));
    }
  });

  it('leaves generators it does not know uncached', () => {
    const own = () => [];
    expect(memoizeGenerators({ x: own }).x).to.equal(own);
  });
});
