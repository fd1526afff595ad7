#!/usr/bin/env node
// Fails when a package imports against the dependency direction of DESIGN.md §3:
//   model, api, native      -> nothing in the workspace
//   registry-adapters       -> model
//   control                 -> model, api, registry-adapters, native (main.ts: sd_notify); only src/generate/**
//                              and main/bin files may see both model and api
//   node-agent, proxy       -> api, native (never model)
//   testing                 -> model, api (test support only: no package's src may import it)
// Also checks that each workspace import is declared in the importing package's package.json.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const allowed = {
  native: [],
  model: [],
  api: [],
  testing: ['model', 'api'],
  'registry-adapters': ['model'],
  control: ['model', 'api', 'registry-adapters', 'native'],
  'node-agent': ['api', 'native'],
  proxy: ['api', 'native'],
};
const importRe = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;

function* files(dir) {
  let entries;
  try { entries = readdirSync(dir); } catch { return; }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (/\.(ts|mts|js|mjs)$/.test(e)) yield p;
  }
}

const violations = [];
for (const [pkg, deps] of Object.entries(allowed)) {
  const manifest = JSON.parse(readFileSync(join(root, 'packages', pkg, 'package.json'), 'utf8'));
  const declared = new Set(Object.keys({ ...manifest.dependencies, ...manifest.devDependencies }));
  for (const file of files(join(root, 'packages', pkg, 'src'))) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(root, file);
    const seen = new Set();
    for (const m of text.matchAll(importRe)) {
      const spec = m[1] ?? m[2] ?? m[3];
      const hit = /^@trellis\/([^/]+)/.exec(spec);
      if (!hit) continue;
      const target = hit[1];
      seen.add(target);
      if (!deps.includes(target)) violations.push(`${rel}: imports @trellis/${target}; ${pkg} may import ${deps.length ? deps.map((d) => '@trellis/' + d).join(', ') : 'nothing in the workspace'}`);
      else if (!declared.has(`@trellis/${target}`)) violations.push(`${rel}: imports @trellis/${target}, which ${pkg}/package.json does not declare`);
    }
    if (pkg === 'control' && seen.has('model') && seen.has('api')) {
      const inner = relative(join(root, 'packages', 'control', 'src'), file);
      if (!inner.startsWith('generate/') && !/(^|\/)main\.ts$/.test(inner) && !inner.startsWith('bin/')) {
        violations.push(`${rel}: sees both @trellis/model and @trellis/api; only control/src/generate/** and main.ts may`);
      }
    }
  }
}
if (violations.length) {
  console.error(`dependency direction: ${violations.length} violation(s)\n  ` + violations.join('\n  '));
  process.exit(1);
}
console.log('dependency direction: ok');
