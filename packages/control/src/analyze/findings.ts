/**
 * What `trellisctl analyze` reports: findings with a stable code, a level, and a location.
 * Codes never change meaning; new checks get new codes. The table is printed in docs/trellisctl.md.
 */

export type Level = 'error' | 'warning' | 'info';

export interface Finding {
  readonly code: string;
  readonly level: Level;
  readonly file: string;
  /** 1-based line; 0 when unknown. */
  readonly line: number;
  /** Field path such as `spec.http[0].route[0].destination.subset`; '' for the whole document or file. */
  readonly path: string;
  readonly message: string;
}

export const CODES = Object.freeze({
  /** VirtualService destination host that no ServiceEntry defines. */
  unknownHost: { code: 'TRELLIS_A0001', level: 'error' },
  /** VirtualService destination subset that no DestinationRule for the host defines. */
  unknownSubset: { code: 'TRELLIS_A0002', level: 'error' },
  /** DestinationRule whose host no ServiceEntry defines. */
  destinationRuleUnknownHost: { code: 'TRELLIS_A0003', level: 'warning' },
  /** Two ServiceEntries for one host with conflicting ports or protocols. */
  conflictingPorts: { code: 'TRELLIS_A0004', level: 'error' },
  /** A Gateway referenced by a VirtualService but not defined. */
  unknownGateway: { code: 'TRELLIS_A0005', level: 'error' },
  /** VirtualService bound to gateways without `mesh` while its hosts are mesh services (scenario DS-17). */
  meshGatewayMissing: { code: 'TRELLIS_A0006', level: 'warning' },
  /** AuthorizationPolicy principal not of the form `<trust-domain>/ns/<ns>/sa/<sa>`. */
  malformedPrincipal: { code: 'TRELLIS_A0007', level: 'error' },
  /** The same resource (kind, namespace, name) defined in two files. */
  duplicateResource: { code: 'TRELLIS_A0008', level: 'error' },
  /** (--control) The same service from several registry shards disagrees on ports/protocol/resolution/addresses; the winner is used. */
  registryConflict: { code: 'TRELLIS_A0200', level: 'warning' },
  /** (--control) A registry shard is stale: unreachable, serving its last-known state. */
  registryStale: { code: 'TRELLIS_A0201', level: 'warning' },
  /** (--control) A registry shard dropped or corrected invalid items. */
  registryProblem: { code: 'TRELLIS_A0202', level: 'warning' },
  /** A document that does not parse or decode (YAML syntax, limits, field violations). */
  invalidDocument: { code: 'TRELLIS_A0100', level: 'error' },
} as const satisfies Record<string, { code: string; level: Level }>);

export type CodeName = keyof typeof CODES;

/** `error TRELLIS_A0002 dir/vs.yaml:12 spec.http[0]…: message` */
export function formatFinding(f: Finding): string {
  const where = f.line > 0 ? `${f.file}:${f.line}` : f.file;
  return f.path === '' ? `${f.level} ${f.code} ${where}: ${f.message}` : `${f.level} ${f.code} ${where} ${f.path}: ${f.message}`;
}

export function compareFindings(a: Finding, b: Finding): number {
  return a.file.localeCompare(b.file) || a.line - b.line || a.code.localeCompare(b.code) || a.path.localeCompare(b.path);
}
