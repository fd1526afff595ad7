/**
 * Golden-file tests of the xDS generators: each `golden/<case>/input.yaml` is turned into a snapshot and proxies,
 * `generateAll` runs per proxy, and the result (JSON, keys sorted) must equal `golden/<case>/expected.json`.
 * `UPDATE_GOLDEN=1 npx mocha packages/control/test/generate-golden.test.ts` rewrites the expected files; review the
 * diff by eye against Istio's behaviour before accepting it. Every generated body must also encode with
 * `encodeAny` and keep its nested `@type`s through a decode.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { decodeAny, encodeAny, TYPE_SHORT_NAME } from '@trellis/api';
import { generateAll } from '../src/generate/index.js';
import { loadFixture, stableJson } from './golden/harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const goldenDir = join(here, 'golden');
const cases = readdirSync(goldenDir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

function typeCount(v: unknown): number {
  if (Array.isArray(v)) return v.reduce((s: number, x) => s + typeCount(x), 0);
  if (v !== null && typeof v === 'object') return Object.entries(v).reduce((s, [k, x]) => s + (k === '@type' ? 1 : 0) + typeCount(x), 0);
  return 0;
}

describe('generate: golden files', () => {
  for (const name of cases) {
    it(`${name}: output matches expected.json and every resource encodes`, () => {
      const { snapshot, proxies } = loadFixture(join(goldenDir, name, 'input.yaml'));
      const rendered: Record<string, Record<string, unknown[]>> = {};
      for (const proxy of proxies) {
        const all = generateAll(snapshot, proxy);
        const byType: Record<string, unknown[]> = {};
        for (const [url, resources] of Object.entries(all)) {
          const names = resources.map((r) => r.name);
          expect(new Set(names).size, `${proxy.id} ${TYPE_SHORT_NAME[url]}: duplicate names ${names.join(', ')}`).to.equal(names.length);
          for (const r of resources) {
            const any = encodeAny(url, r.body as Record<string, unknown>);
            const back = decodeAny(any);
            expect(typeCount(back), `${r.name}: nested Any types lost in encoding`).to.equal(typeCount(r.body));
            expect(back.name ?? back.cluster_name).to.equal(r.name);
          }
          byType[TYPE_SHORT_NAME[url] ?? url] = [...resources].sort((a, b) => a.name.localeCompare(b.name)).map((r) => r.body);
        }
        rendered[proxy.id] = byType;
      }
      const text = stableJson(rendered);
      const file = join(goldenDir, name, 'expected.json');
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, text);
      expect(text === readFileSync(file, 'utf8'), `${name}: output differs from expected.json (UPDATE_GOLDEN=1 to rewrite)`).to.equal(true);
    });
  }
});
