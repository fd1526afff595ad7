/**
 * What every check sees: the resources in force (one per kind/namespace/name), each with its file and a way to
 * find the line of a field, and indexes of the ServiceEntry hosts, DestinationRules and Gateways.
 *
 * Specs are read through small structural views (Istio's camelCase field names) so a check depends only on the
 * fields it reads.
 */
import type { Resource } from '@trellis/model';
import { CODES, type CodeName, type Finding } from './findings.js';
import { HostSet, fqdn } from './hosts.js';

export interface Located {
  readonly resource: Resource;
  readonly file: string;
  lineOf(path: string): number;
}

export interface PortView {
  readonly number: number;
  readonly name?: string;
  readonly protocol?: string;
}
export interface ServiceEntryView {
  readonly hosts: readonly string[];
  readonly ports?: readonly PortView[];
}
export interface SubsetView {
  readonly name: string;
}
export interface DestinationRuleView {
  readonly host: string;
  readonly subsets?: readonly SubsetView[];
}

export class AnalysisContext {
  /** FQDN (or wildcard) host → the ServiceEntries defining it. */
  readonly services = new HostSet<Located>();
  readonly destinationRules = new HostSet<Located>();
  /** `namespace/name` of every Gateway. */
  readonly gateways = new Set<string>();
  readonly findings: Finding[] = [];

  constructor(readonly resources: readonly Located[]) {
    for (const l of resources) {
      const r = l.resource;
      const ns = r.metadata.namespace;
      if (r.kind === 'ServiceEntry') {
        for (const h of (r.spec as ServiceEntryView).hosts) this.services.add(fqdn(h, ns), l);
      } else if (r.kind === 'DestinationRule') {
        this.destinationRules.add(fqdn((r.spec as DestinationRuleView).host, ns), l);
      } else if (r.kind === 'Gateway') {
        this.gateways.add(`${ns}/${r.metadata.name}`);
      }
    }
  }

  ofKind(kind: string): Located[] {
    return this.resources.filter((l) => l.resource.kind === kind);
  }

  report(name: CodeName, at: Located, path: string, message: string): void {
    const { code, level } = CODES[name];
    this.findings.push({ code, level, file: at.file, line: at.lineOf(path), path, message });
  }
}

/** `Kind namespace/name`, how findings name another resource. */
export function describe(l: Located): string {
  return `${l.resource.kind} ${l.resource.metadata.namespace}/${l.resource.metadata.name} (${l.file}:${l.lineOf('metadata.name')})`;
}
