/**
 * Golden-file tests of the xDS generators: each `golden/<case>/input.yaml` is turned into a snapshot and proxies,
 * `generateAll` runs per proxy, and the result (JSON, keys sorted) must equal `golden/<case>/expected.json`.
 * `UPDATE_GOLDEN=1 npx mocha packages/control/test/generate-golden.test.ts` rewrites the expected files; review the
 * diff by eye against Istio's behaviour before accepting it. Every generated body must also encode with
 * `encodeAny`, keep its nested `@type`s through a decode, and pass the proxy's decoders (`decodeEnvoyResource`).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { decodeAny, decodeEnvoyResource, encodeAny, TYPE_SHORT_NAME, TYPE_URL, type DecodableTypeUrl } from '@trellis/api';
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

/**
 * What Envoy rejects besides bad encodings: duplicate filter-chain names in a listener, duplicate virtual-host
 * names or domains in a route configuration.
 */
function assertUniqueNames(name: string, body: Readonly<Record<string, unknown>>): void {
  const chains = (body.filter_chains as { name?: string }[] | undefined) ?? [];
  const chainNames = chains.map((c) => c.name).filter((n) => n !== undefined);
  expect(new Set(chainNames).size, `${name}: duplicate filter chain names`).to.equal(chainNames.length);
  const vhosts = (body.virtual_hosts as { name: string; domains: string[] }[] | undefined) ?? [];
  expect(new Set(vhosts.map((v) => v.name)).size, `${name}: duplicate virtual host names`).to.equal(vhosts.length);
  const domains = vhosts.flatMap((v) => v.domains);
  expect(new Set(domains).size, `${name}: duplicate domains`).to.equal(domains.length);
}

/** The first differing line of two texts with a little context, for a readable failure. */
function firstDifference(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 3);
  return [`at line ${i + 1}:`, ...a.slice(from, i + 3).map((l) => `- ${l}`), ...b.slice(from, i + 3).map((l) => `+ ${l}`)].join('\n');
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
            expect(back.name ?? back.cluster_name ?? '').to.equal(r.name);
            // The proxy's own decoders (what trellis-proxy ACKs or NACKs) must accept it too; API listeners are for
            // gRPC clients (checked by generate-proxyless.test.ts), not for trellis-proxy. The name table is the
            // agent's (its DNS proxy decodes it), not the proxy's.
            if (proxy.type !== 'proxyless' && url !== TYPE_URL.nameTable) try {
              decodeEnvoyResource(url as DecodableTypeUrl, back);
            } catch (e) {
              throw new Error(`${proxy.id} ${r.name}: rejected by decodeEnvoyResource: ${(e as Error).message}`);
            }
          }
          for (const r of resources) assertUniqueNames(r.name, r.body);
          byType[TYPE_SHORT_NAME[url] ?? url] = [...resources].sort((a, b) => a.name.localeCompare(b.name)).map((r) => r.body);
        }
        rendered[proxy.id] = byType;
      }
      const text = stableJson(rendered);
      const file = join(goldenDir, name, 'expected.json');
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, text);
      const expected = readFileSync(file, 'utf8');
      if (text !== expected) expect.fail(`${name}: output differs from expected.json (UPDATE_GOLDEN=1 to rewrite)\n${firstDifference(expected, text)}`);
    });
  }
});
