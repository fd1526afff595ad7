/**
 * Renders the Trellis Helm chart as `helm template NAME CHART -n NS -f FILE… --include-crds` does, with the
 * template subset interpreter in ./template.ts: CRDs from `crds/` verbatim first, then each `templates/*.yaml` (not
 * `_*.tpl`) in name order, blank results dropped, every document headed `# Source: <chart>/<dir>/<file>`.
 *
 * Values: the chart's values.yaml deep-merged with each values file in order (maps merge key by key; lists and
 * scalars replace), as Helm merges `-f` files.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parse } from 'yaml';
import { TrellisError } from '@trellis/model';
import { TemplateSet } from './template.js';

export interface RenderChartOptions {
  readonly chartDir: string;
  readonly valuesFiles?: readonly string[];
  readonly releaseName?: string;
  readonly namespace?: string;
}

type Values = Record<string, unknown>;

function isMap(v: unknown): v is Values {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readYamlMap(file: string): Values {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_VALUES', `${file}: ${(cause as Error).message}`, { cause });
  }
  let v: unknown;
  try {
    // YAML 1.2 core schema, as gopkg.in/yaml.v3 reads into interface{} (test/helm-render); Helm's go-yaml v2 would
    // also read `yes`/`on` as booleans: quote such strings in values files.
    v = parse(text);
  } catch (cause) {
    throw new TrellisError('TRELLIS_ERR_VALUES', `${file}: ${(cause as Error).message}`, { cause });
  }
  if (v === null || v === undefined) return {};
  if (!isMap(v)) throw new TrellisError('TRELLIS_ERR_VALUES', `${file}: expected a map of values at the top level`);
  return v;
}

/** `over` laid over `base` (neither is modified). */
export function mergeValues(base: Values, over: Values): Values {
  const out: Values = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isMap(v) && isMap(out[k]) ? mergeValues(out[k] as Values, v) : v;
  return out;
}

export function renderChart(opts: RenderChartOptions): string {
  const { chartDir } = opts;
  const chart = readYamlMap(join(chartDir, 'Chart.yaml'));
  let values = readYamlMap(join(chartDir, 'values.yaml'));
  for (const f of opts.valuesFiles ?? []) values = mergeValues(values, readYamlMap(f));
  const chartName = String(chart.name ?? '');
  const top = {
    Values: values,
    Release: { Name: opts.releaseName ?? 'trellis', Namespace: opts.namespace ?? 'trellis-system', Service: 'Helm', IsInstall: true, IsUpgrade: false, Revision: 1 },
    Chart: { Name: chartName, Version: String(chart.version ?? ''), AppVersion: String(chart.appVersion ?? '') },
  };

  const set = new TemplateSet();
  const tdir = join(chartDir, 'templates');
  const files = readdirSync(tdir).filter((n) => n.endsWith('.yaml') || n.endsWith('.tpl')).sort();
  for (const n of files) set.add(n, readFileSync(join(tdir, n), 'utf8'));

  const out: string[] = [];
  const crdDir = join(chartDir, 'crds');
  let crds: string[] = [];
  try {
    crds = readdirSync(crdDir).filter((n) => n.endsWith('.yaml')).sort();
  } catch {
    // a chart without CRDs
  }
  for (const c of crds) out.push(`---\n# Source: ${chartName}/crds/${basename(c)}\n${readFileSync(join(crdDir, c), 'utf8').trim()}\n`);
  for (const n of files) {
    if (n.startsWith('_')) continue;
    const text = set.execute(n, top);
    if (text.trim() === '') continue;
    out.push(`---\n# Source: ${chartName}/templates/${n}\n${text.trim()}\n`);
  }
  return out.join('');
}
