/**
 * `trellisctl analyze`, the pure part: parsed files in, findings out.
 *
 * Steps: every problem of parsing/decoding becomes a TRELLIS_A0100 finding; a resource defined in two files is
 * TRELLIS_A0008 (the first in file order is analyzed, as the file registry would keep it); then the
 * cross-resource checks run over the resources in force. Findings are sorted by file, line and code.
 */
import { resourceKey } from '@trellis/model';
import type { ParsedFile } from '@trellis/registry-adapters/file';
import { AnalysisContext, type Located } from './context.js';
import { checkDestinationRuleHosts } from './destination-rules.js';
import { checkDestinations } from './destinations.js';
import { CODES, compareFindings, type Finding } from './findings.js';
import { checkGateways } from './gateways.js';
import { checkPrincipals } from './principals.js';
import { checkServicePorts } from './service-ports.js';

/** The checks, in the order they run. Each reads the context and reports into it. */
export const CHECKS: readonly ((cx: AnalysisContext) => void)[] = [
  checkDestinations,
  checkDestinationRuleHosts,
  checkServicePorts,
  checkGateways,
  checkPrincipals,
];

export function analyze(files: readonly ParsedFile[]): Finding[] {
  const findings: Finding[] = [];
  const ordered = [...files].sort((a, b) => a.file.localeCompare(b.file));
  for (const f of ordered) {
    for (const p of f.problems) {
      findings.push({ ...CODES.invalidDocument, file: p.file ?? f.file, line: p.line ?? 0, path: p.path, message: p.message });
    }
  }
  const byKey = new Map<string, Located>();
  const resources: Located[] = [];
  for (const f of ordered) {
    for (const doc of f.documents) {
      if (doc.resource === undefined) continue;
      const located: Located = { resource: doc.resource, file: f.file, lineOf: (path) => doc.lineOf(path) };
      const key = resourceKey(doc.resource);
      const first = byKey.get(key);
      if (first !== undefined) {
        if (first.file !== f.file) {
          findings.push({
            ...CODES.duplicateResource, file: f.file, line: doc.lineOf('metadata.name'), path: 'metadata.name',
            message: `${key} is also defined in ${first.file}:${first.lineOf('metadata.name')}; only the first definition (in file order) is used`,
          });
        }
        continue;
      }
      byKey.set(key, located);
      resources.push(located);
    }
  }
  const cx = new AnalysisContext(resources);
  for (const check of CHECKS) check(cx);
  findings.push(...cx.findings);
  return findings.sort(compareFindings);
}
